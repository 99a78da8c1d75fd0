package oracle

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds the nesting of values the encoder follows, so that a value
// graph cycling through something other than a pointer (which the canonical
// form does not detect) fails loudly instead of overflowing the stack.
const maxDepth = 2000

// exactIntLimit is 2^53: integers whose magnitude exceeds it are not exactly
// representable as a JSON number read into a float64, so the canonical form
// prints them as decimal strings.
const exactIntLimit = 1 << 53

// pathKey identifies a pointer on the current path: the same address seen
// with the same pointer type means the value graph loops back on itself.
type pathKey struct {
	addr uintptr
	typ  reflect.Type
}

type encoder struct {
	onPath map[pathKey]bool
	depth  int
}

// Canonical returns the canonical JSON text (CONTRACT.md, "print --format
// json") of v, computed by reflection.
func Canonical(v reflect.Value) ([]byte, error) {
	e := &encoder{onPath: map[pathKey]bool{}}
	var b bytes.Buffer
	if err := e.encode(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (e *encoder) encode(b *bytes.Buffer, v reflect.Value) error {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxDepth {
		return fmt.Errorf("value nested deeper than %d levels", maxDepth)
	}
	if !v.IsValid() {
		b.WriteString("null")
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		writeInt(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		writeUint(b, v.Uint())
	case reflect.Float32:
		writeFloat(b, v.Float(), 32)
	case reflect.Float64:
		writeFloat(b, v.Float(), 64)
	case reflect.Complex64, reflect.Complex128:
		bits := 64
		if v.Kind() == reflect.Complex64 {
			bits = 32
		}
		c := v.Complex()
		b.WriteByte('[')
		writeFloat(b, real(c), bits)
		b.WriteByte(',')
		writeFloat(b, imag(c), bits)
		b.WriteByte(']')
	case reflect.String:
		writeString(b, v.String())
	case reflect.Slice:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return e.encodeElems(b, v)
	case reflect.Array:
		return e.encodeElems(b, v)
	case reflect.Struct:
		return e.encodeStruct(b, v)
	case reflect.Pointer:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		key := pathKey{v.Pointer(), v.Type()}
		if e.onPath[key] {
			fmt.Fprintf(b, `{"$cycle":"0x%x"}`, v.Pointer())
			return nil
		}
		e.onPath[key] = true
		err := e.encode(b, v.Elem())
		delete(e.onPath, key)
		return err
	case reflect.Map:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return e.encodeMap(b, v)
	case reflect.Interface:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		inner := v.Elem()
		b.WriteString(`{"$type":`)
		writeString(b, inner.Type().String())
		b.WriteString(`,"$value":`)
		if err := e.encode(b, inner); err != nil {
			return err
		}
		b.WriteByte('}')
	case reflect.Chan:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		b.WriteString(`{"$chan":`)
		writeString(b, v.Type().Elem().String())
		fmt.Fprintf(b, `,"len":%d,"cap":%d}`, v.Len(), v.Cap())
	case reflect.Func:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		name := "?"
		if f := runtime.FuncForPC(v.Pointer()); f != nil {
			name = f.Name()
		}
		b.WriteString(`{"$func":`)
		writeString(b, name)
		b.WriteByte('}')
	case reflect.UnsafePointer:
		fmt.Fprintf(b, `"0x%x"`, v.Pointer())
	default:
		return fmt.Errorf("no canonical form for kind %s (type %s)", v.Kind(), v.Type())
	}
	return nil
}

func (e *encoder) encodeElems(b *bytes.Buffer, v reflect.Value) error {
	b.WriteByte('[')
	for i := 0; i < v.Len(); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := e.encode(b, v.Index(i)); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	return nil
}

func (e *encoder) encodeStruct(b *bytes.Buffer, v reflect.Value) error {
	t := v.Type()
	b.WriteByte('{')
	first := true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == "_" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(b, f.Name)
		b.WriteByte(':')
		if err := e.encode(b, v.Field(i)); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

type mapPair struct {
	key   []byte
	value []byte
}

func (e *encoder) encodeMap(b *bytes.Buffer, v reflect.Value) error {
	pairs := make([]mapPair, 0, v.Len())
	iter := v.MapRange()
	for iter.Next() {
		var kb, vb bytes.Buffer
		if err := e.encode(&kb, iter.Key()); err != nil {
			return err
		}
		if err := e.encode(&vb, iter.Value()); err != nil {
			return err
		}
		pairs = append(pairs, mapPair{kb.Bytes(), vb.Bytes()})
	}
	sort.Slice(pairs, func(i, j int) bool { return bytes.Compare(pairs[i].key, pairs[j].key) < 0 })
	b.WriteByte('[')
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		b.Write(p.key)
		b.WriteByte(',')
		b.Write(p.value)
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return nil
}

func writeInt(b *bytes.Buffer, i int64) {
	if i > exactIntLimit || i < -exactIntLimit {
		b.WriteByte('"')
		b.WriteString(strconv.FormatInt(i, 10))
		b.WriteByte('"')
		return
	}
	b.WriteString(strconv.FormatInt(i, 10))
}

func writeUint(b *bytes.Buffer, u uint64) {
	if u > exactIntLimit {
		b.WriteByte('"')
		b.WriteString(strconv.FormatUint(u, 10))
		b.WriteByte('"')
		return
	}
	b.WriteString(strconv.FormatUint(u, 10))
}

// writeFloat prints the shortest text that reads back to the same value at
// the given width. strconv's 'g' output is already valid JSON for finite
// values (exponents look like "e+21" or "e-07"); only NaN and the infinities
// need the string forms of the canonical table.
func writeFloat(b *bytes.Buffer, f float64, bits int) {
	switch {
	case math.IsNaN(f):
		b.WriteString(`"NaN"`)
	case math.IsInf(f, 1):
		b.WriteString(`"+Inf"`)
	case math.IsInf(f, -1):
		b.WriteString(`"-Inf"`)
	default:
		b.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	}
}

// writeString quotes s as serde_json would (so that map keys sort the same
// way on both sides): `"` and `\` escaped, \b \f \n \r \t short forms, other
// control characters as \u00xx, everything else literal. Each byte that is
// not part of valid UTF-8 becomes U+FFFD.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
			i++
			continue
		}
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}
