package oracle

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

type node struct {
	Name string
	Next *node
}

type withBlank struct {
	A int
	_ int
	B string
}

func canon(t *testing.T, v Named) string {
	t.Helper()
	text, err := Canonical(v.value)
	if err != nil {
		t.Fatalf("Canonical(%s): %v", v.name, err)
	}
	if !json.Valid(text) {
		t.Fatalf("Canonical(%s) is not valid JSON: %s", v.name, text)
	}
	return string(text)
}

func TestCanonicalTable(t *testing.T) {
	var nilSlice []int
	var nilMap map[string]int
	var nilIface error
	var nilChan chan int
	var nilFunc func()
	cyc := &node{Name: "a"}
	cyc.Next = &node{Name: "b", Next: cyc}
	ch := make(chan string, 4)
	ch <- "x"
	var iface any = &node{Name: "p"}
	x := 7
	cases := []struct {
		v    Named
		want string
	}{
		{V("b", true), `true`},
		{V("i", int64(-42)), `-42`},
		{V("big", int64(math.MaxInt64)), `"9223372036854775807"`},
		{V("edge", int64(1<<53)), `9007199254740992`},
		{V("edge1", uint64(1<<53+1)), `"9007199254740993"`},
		{V("neg", int64(-(1<<53)-1)), `"-9007199254740993"`},
		{V("f32", float32(0.1)), `0.1`},
		{V("f64", 0.1), `0.1`},
		{V("f64e", 1e21), `1e+21`},
		{V("nan", math.NaN()), `"NaN"`},
		{V("pinf", math.Inf(1)), `"+Inf"`},
		{V("ninf", float32(math.Inf(-1))), `"-Inf"`},
		{V("c64", complex64(complex(1.5, -0.1))), `[1.5,-0.1]`},
		{V("s", "héllo\n\"q\"\x01"), `"héllo\n\"q\"\u0001"`},
		{V("bad", "a\xffb\xfe"), "\"a\ufffdb\ufffd\""},
		{V("nilslice", nilSlice), `null`},
		{V("empty", []int{}), `[]`},
		{V("bytes", []byte{1, 255}), `[1,255]`},
		{V("arr", [2]int8{-1, 2}), `[-1,2]`},
		{V("blank", withBlank{A: 1, B: "x"}), `{"A":1,"B":"x"}`},
		{V("cycle", cyc), `{"Name":"a","Next":{"Name":"b","Next":{"$cycle":"0x` + hexAddr(cyc) + `"}}}`},
		{V("nilmap", nilMap), `null`},
		{V("map", map[string]int{"b": 2, "a": 1, "c": 3}), `[["a",1],["b",2],["c",3]]`},
		{V("intmap", map[int]bool{10: true, 9: false}), `[[10,true],[9,false]]`},
		{V("niliface", nilIface), `null`},
		{V("err", errors.New("boom")), `{"$type":"*errors.errorString","$value":{"s":"boom"}}`},
		{V("ifaceptr", iface), `{"$type":"*oracle.node","$value":{"Name":"p","Next":null}}`},
		{V("nilchan", nilChan), `null`},
		{V("chan", ch), `{"$chan":"string","len":1,"cap":4}`},
		{V("nilfunc", nilFunc), `null`},
		{V("func", TestCanonicalTable), `{"$func":"corpus/internal/oracle.TestCanonicalTable"}`},
		{V("uptr", unsafe.Pointer(&x)), `"0x` + hexAddr(&x) + `"`},
	}
	for _, c := range cases {
		if got := canon(t, c.v); got != c.want {
			t.Errorf("%s: got %s, want %s", c.v.name, got, c.want)
		}
	}
}

func hexAddr[T any](p *T) string {
	return reflectHex(reflect.ValueOf(p).Pointer())
}

func reflectHex(u uintptr) string {
	const digits = "0123456789abcdef"
	if u == 0 {
		return "0"
	}
	var out []byte
	for u > 0 {
		out = append([]byte{digits[u&0xf]}, out...)
		u >>= 4
	}
	return string(out)
}

func TestParkedViewExcludesSelfAndRunning(t *testing.T) {
	dump := "goroutine 1 [running]:\nmain.main()\n\tx.go:1\n\n" +
		"goroutine 2 [chan receive]:\nmain.wait()\n\tx.go:2\n\n" +
		"goroutine 3 [runnable]:\nmain.spin()\n\tx.go:3\n"
	spin := [][]byte{[]byte("\nmain.spin(")}
	view, ok := parkedView([]byte(dump), []byte("1"), spin)
	if !ok {
		t.Fatalf("expected all parked")
	}
	if _, ok := parkedView([]byte(dump), []byte("2"), spin); ok {
		t.Fatalf("goroutine 1 is running, should not count as parked")
	}
	if _, ok := parkedView([]byte(dump), []byte("1"), nil); ok {
		t.Fatalf("goroutine 3 is runnable and not allowed to run")
	}
	changed := strings.Replace(dump, "x.go:2", "x.go:9", 1)
	if other, _ := parkedView([]byte(changed), []byte("1"), spin); other == view {
		t.Fatalf("a changed parked goroutine must change the view")
	}
	changedSpin := strings.Replace(dump, "x.go:3", "x.go:7", 1)
	if other, _ := parkedView([]byte(changedSpin), []byte("1"), spin); other != view {
		t.Fatalf("an allowed running goroutine must not change the view")
	}
}
