// Package oracle implements the corpus side of the oracle protocol
// (CONTRACT.md, "Corpus oracle protocol").
//
// A corpus program starts its goroutines, registers the values it wants
// compared, then calls Ready (or ReadyAndPark). Ready waits in a background
// goroutine until every other goroutine is parked and stable, prints
// "READY <pid>" on stdout, and from then on answers each SIGUSR1 by writing
// into $ORACLE_DIR:
//
//   - stacks.txt: runtime.Stack(buf, true), buffer grown until it fits;
//   - values.json: [{"expr": ..., "value": <canonical JSON>}] for every
//     registered global, in registration order, computed at signal time;
//   - locals.json (when Locals was called): {"goroutine", "func", "locals", "args"};
//   - goroutine.pb.gz (only when $ORACLE_PPROF is set): the process's own
//     /debug/pprof/goroutine profile, pprof.Lookup("goroutine").WriteTo(w, 0),
//     taken right after stacks.txt;
//   - one file per Extra registration, computed at signal time;
//   - done: written last; it holds the number of signals answered so far.
//
// Every file is written to a temporary name and renamed, so a reader never
// sees a partial file. The harness removes `done` before signalling and waits
// for it to reappear.
package oracle

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Named is a value with the name it is compared under (a local or argument).
type Named struct {
	name  string
	value reflect.Value
}

// V captures v under name, keeping its static type T: an interface-typed
// local is encoded as an interface ({"$type", "$value"}), not as its dynamic
// value. The value is copied now; the caller's variable is not referenced,
// so it does not escape to the heap because of the oracle.
func V[T any](name string, v T) Named {
	p := &v
	return Named{name: name, value: reflect.ValueOf(p).Elem()}
}

type global struct {
	expr string
	ptr  reflect.Value
}

type localsRecord struct {
	goroutine int64
	fn        string
	args      []Named
	locals    []Named
}

var (
	mu           sync.Mutex
	globals      []global
	locals       *localsRecord
	allowRunning []string
	answered     int
	readyOnce    sync.Once
	skipSettle   bool
	extras       []extra
)

type extra struct {
	name string
	fn   func() ([]byte, error)
}

// Extra registers a file written into $ORACLE_DIR on every signal, after
// values.json and before done, with the bytes fn returns then (e.g. a
// runtime profile that must be taken after the capture).
func Extra(name string, fn func() ([]byte, error)) {
	mu.Lock()
	extras = append(extras, extra{name: name, fn: fn})
	mu.Unlock()
}

// Value registers a global to be reported in values.json under expr (e.g.
// "main.cfg"). ptr must point to the variable; the value is read when the
// signal arrives, through the pointer, so the variable's static type (an
// interface type included) is what gets encoded.
func Value(expr string, ptr any) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("oracle.Value(%q): want a non-nil pointer to the variable, got %T", expr, ptr))
	}
	mu.Lock()
	globals = append(globals, global{expr: expr, ptr: v})
	mu.Unlock()
}

// Locals records the arguments and locals of the calling goroutine's
// function fn (e.g. "main.parkLocals") for locals.json. Call it from the
// function itself, just before it parks.
func Locals(fn string, args []Named, locs []Named) {
	rec := &localsRecord{goroutine: CurrentGoroutineID(), fn: fn, args: args, locals: locs}
	mu.Lock()
	locals = rec
	mu.Unlock()
}

// AllowRunning names a function whose goroutines are expected to be running
// (busy loops): Ready does not wait for them to park.
func AllowRunning(fn string) {
	mu.Lock()
	allowRunning = append(allowRunning, fn)
	mu.Unlock()
}

// CurrentGoroutineID returns the calling goroutine's id, read from its own
// traceback header ("goroutine N [...").
func CurrentGoroutineID() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := strings.Fields(string(buf))
	if len(fields) < 2 {
		return -1
	}
	id, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return -1
	}
	return id
}

// Ready installs the SIGUSR1 handler and starts the goroutine that waits for
// the process to settle, prints "READY <pid>" and then serves oracle
// requests. It returns at once; the caller should park (see ReadyAndPark).
func Ready() {
	readyOnce.Do(func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGUSR1)
		go serve(sigs)
	})
}

// ReadyUnsettled is Ready for programs whose goroutines never settle (thread
// churn, servers under load): READY is printed as soon as the oracle is
// installed, without waiting for the goroutines to park.
func ReadyUnsettled() {
	mu.Lock()
	skipSettle = true
	mu.Unlock()
	Ready()
}

// ReadyAndPark calls Ready and blocks the calling goroutine forever in
// `select {}` (its wait reason is "select (no cases)").
func ReadyAndPark() {
	Ready()
	select {}
}

func serve(sigs chan os.Signal) {
	mu.Lock()
	unsettled := skipSettle
	mu.Unlock()
	if !unsettled {
		settle()
	}
	fmt.Fprintf(os.Stdout, "READY %d\n", os.Getpid())
	for range sigs {
		if err := answer(); err != nil {
			fmt.Fprintf(os.Stderr, "oracle: %v\n", err)
		}
	}
}

// stackSizeHint is the size of the last complete dump: with 100,000
// goroutines a dump is tens of MiB and takes a second, and growing a buffer
// from scratch would redo it a dozen times.
var stackSizeHint = 0

// AllStacks returns runtime.Stack(buf, true), growing buf until the text fits.
// The first guess is 1 KiB per goroutine, later ones the last size plus a
// quarter.
func AllStacks() []byte {
	mu.Lock()
	size := stackSizeHint + stackSizeHint/4
	mu.Unlock()
	if guess := runtime.NumGoroutine() << 10; size < guess {
		size = guess
	}
	if size < 1<<16 {
		size = 1 << 16
	}
	for {
		buf := make([]byte, size)
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			mu.Lock()
			stackSizeHint = n
			mu.Unlock()
			return buf[:n]
		}
		size *= 2
	}
}

func answer() error {
	dir := os.Getenv("ORACLE_DIR")
	if dir == "" {
		return fmt.Errorf("SIGUSR1 received but ORACLE_DIR is not set")
	}
	// Stacks first: computing values allocates, and the dump should be as
	// close as possible to the instant of the capture that preceded it.
	if err := writeAtomic(dir, "stacks.txt", AllStacks()); err != nil {
		return err
	}
	if os.Getenv("ORACLE_PPROF") != "" {
		var profile bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&profile, 0); err != nil {
			return fmt.Errorf("goroutine profile: %w", err)
		}
		if err := writeAtomic(dir, "goroutine.pb.gz", profile.Bytes()); err != nil {
			return err
		}
	}
	mu.Lock()
	gs := append([]global(nil), globals...)
	rec := locals
	more := append([]extra(nil), extras...)
	answered++
	seq := answered
	mu.Unlock()

	var b bytes.Buffer
	b.WriteString("[")
	for i, g := range gs {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n{\"expr\":")
		writeString(&b, g.expr)
		b.WriteString(",\"value\":")
		text, err := Canonical(g.ptr.Elem())
		if err != nil {
			return fmt.Errorf("value %s: %w", g.expr, err)
		}
		b.Write(text)
		b.WriteString("}")
	}
	b.WriteString("\n]\n")
	if err := writeAtomic(dir, "values.json", b.Bytes()); err != nil {
		return err
	}
	if rec != nil {
		text, err := encodeLocals(rec)
		if err != nil {
			return err
		}
		if err := writeAtomic(dir, "locals.json", text); err != nil {
			return err
		}
	}
	for _, e := range more {
		data, err := e.fn()
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if err := writeAtomic(dir, e.name, data); err != nil {
			return err
		}
	}
	return writeAtomic(dir, "done", []byte(strconv.Itoa(seq)+"\n"))
}

func encodeLocals(rec *localsRecord) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\"goroutine\":%d,\"func\":", rec.goroutine)
	writeString(&b, rec.fn)
	for _, part := range []struct {
		key  string
		vars []Named
	}{{"locals", rec.locals}, {"args", rec.args}} {
		fmt.Fprintf(&b, ",\n\"%s\":{", part.key)
		for i, n := range part.vars {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n")
			writeString(&b, n.name)
			b.WriteString(":")
			text, err := Canonical(n.value)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", part.key, n.name, err)
			}
			b.Write(text)
		}
		b.WriteString("}")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

func writeAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// settle waits until every goroutine but this one (and those running an
// AllowRunning function) is blocked, and two dumps taken a little apart are
// identical, so that a capture taken after READY sees the same stacks the
// oracle will print. It gives up after 60 s and announces anyway; the test
// comparing stacks will then report the difference.
func settle() {
	self := []byte(strconv.FormatInt(CurrentGoroutineID(), 10))
	mu.Lock()
	running := make([][]byte, len(allowRunning))
	for i, fn := range allowRunning {
		running[i] = []byte("\n" + fn + "(")
	}
	mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	var previous uint64
	for time.Now().Before(deadline) {
		current, ok := parkedView(AllStacks(), self, running)
		if ok && current == previous {
			return
		}
		previous = current
		time.Sleep(30 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "oracle: goroutines did not settle within 60s")
}

// parkedView returns a hash of the dump without the excluded goroutines, and
// whether every remaining goroutine is blocked (neither running nor
// runnable). It works on the bytes in place: with 100,000 goroutines the
// dump is tens of MiB.
func parkedView(dump []byte, self []byte, running [][]byte) (uint64, bool) {
	h := fnv.New64a()
	allParked := true
	sep := []byte("\n\n")
	for len(dump) > 0 {
		block := dump
		if i := bytes.Index(dump, sep); i >= 0 {
			block, dump = dump[:i], dump[i+len(sep):]
		} else {
			dump = nil
		}
		header := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			header = block[:i]
		}
		// header: "goroutine N [status...]:"
		rest, found := bytes.CutPrefix(header, []byte("goroutine "))
		if !found {
			continue
		}
		id, status, _ := bytes.Cut(rest, []byte(" ["))
		if bytes.Equal(id, self) {
			continue
		}
		expected := false
		for _, fn := range running {
			if bytes.Contains(block, fn) {
				expected = true
				break
			}
		}
		if expected {
			continue
		}
		if bytes.HasPrefix(status, []byte("running")) || bytes.HasPrefix(status, []byte("runnable")) {
			allParked = false
		}
		h.Write(block)
		h.Write(sep)
	}
	return h.Sum64(), allParked
}
