// Command values holds globals covering every row of the canonical value JSON
// table (CONTRACT.md), registers each as "main.<name>" with the oracle, and
// parks a goroutine in main.parkLocals whose arguments and locals go to
// locals.json. It prints nothing but READY on stdout.
package main

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"corpus/internal/oracle"
)

// Inner is nested by value and by pointer in Config.
type Inner struct {
	Label  string
	Weight float32
}

// Base is embedded in Config.
type Base struct {
	ID      uint32
	Created time.Duration
}

// Config is a typical nested configuration struct with a blank field.
type Config struct {
	Base
	Name     string
	Port     int
	Enabled  bool
	Tags     []string
	Inner    Inner
	InnerPtr *Inner
	Limits   map[string]int
	_        int64
	Ratio    float64
	Matrix   [2][3]int8
	Parent   **Inner
}

// Describe is used as a method value.
func (c Config) Describe() string { return c.Name }

// Node links into lists and rings.
type Node struct {
	ID   int
	Next *Node
}

// Point is used as a map key.
type Point struct {
	X, Y int
}

// Pair is a generic struct instantiated with two type arguments.
type Pair[K comparable, V any] struct {
	Key K
	Val V
}

// Temperature is a named float type stored in an interface.
type Temperature float64

// ValidationError is a custom error type.
type ValidationError struct {
	Field string
	Code  int
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: code %d", e.Field, e.Code) }

//go:noinline
func square(x int) int { return x * x }

// makeAdder returns a closure capturing n (a funcval with a context word).
//
//go:noinline
func makeAdder(n int) func(int) int {
	return func(x int) int { return x + n }
}

var sharedInner = &Inner{Label: "shared", Weight: 2.5}

var (
	cfg = Config{
		Base:     Base{ID: 7, Created: 90 * time.Second},
		Name:     "orders",
		Port:     8080,
		Enabled:  true,
		Tags:     []string{"prod", "eu-west", ""},
		Inner:    Inner{Label: "inline", Weight: -0.25},
		InnerPtr: sharedInner,
		Limits:   map[string]int{"rps": 500, "burst": 50, "conns": 1 << 20},
		Ratio:    0.75,
		Matrix:   [2][3]int8{{1, -2, 3}, {-128, 0, 127}},
		Parent:   &sharedInner,
	}
	cfgPtr   = &cfg
	nilCfg   *Config
	zeroCfg  Config
	nilSlice []int
	empty    = []int{}
	nilMap   map[string]int
	emptyMap = map[string]int{}

	ring     *Node
	selfLoop *Node
	list     = &Node{ID: 1, Next: &Node{ID: 2, Next: &Node{ID: 3}}}

	unicodeText = "héllo, 世界 🌍 ∑"
	invalidUTF8 = "ok\xffbad\xfe!"
	escapes     = "tab\tnl\ncr\rquote\"bs\\ctl\x01\x1f<&>"
	emptyText   = ""
	bigText     = strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB

	maxInt64  int64  = math.MaxInt64
	minInt64  int64  = math.MinInt64
	maxUint64 uint64 = math.MaxUint64
	beyond53  int64  = 1<<53 + 1
	below53   int64  = -(1<<53 + 1)
	exact53   int64  = 1 << 53
	smallInts        = struct {
		I8  int8
		I16 int16
		I32 int32
		U8  uint8
		U16 uint16
		U32 uint32
		UP  uintptr
		I   int
		U   uint
	}{-128, -32768, -2147483648, 255, 65535, 4294967295, 0xdeadbeef, -1, 1 << 40}

	nan                  = math.NaN()
	posInf               = math.Inf(1)
	negInf               = math.Inf(-1)
	f32       float32    = 0.1
	f32NaN               = float32(math.NaN())
	f32NegInf            = float32(math.Inf(-1))
	floats               = []float64{0, math.Copysign(0, -1), 1.5, 1e21, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, 1.0 / 3}
	floats32             = []float32{0.1, math.MaxFloat32, math.SmallestNonzeroFloat32, 16777216, 1.0 / 3}
	c64       complex64  = complex(1.5, -2.25)
	c128      complex128 = complex(math.Pi, -math.E)

	byteSlice          = []byte("bytes\x00\xff")
	byteArray          = [4]byte{0xde, 0xad, 0xbe, 0xef}
	int16Arr           = [5]int16{-1, 0, 1, 32767, -32768}
	points             = []Point{{1, 2}, {-3, 4}}
	bigSlice  []uint16 // 100,000 elements

	oneEntry     = map[string]int{"only": 1}
	bigMap       map[int]int // 10,000 entries
	structKeyMap = map[Point]string{{1, 2}: "a", {0, 0}: "origin", {-1, 5}: "b"}
	nestedMap    = map[string][]int{"odd": {1, 3}, "even": {2, 4}, "none": nil}

	bufferedChan = make(chan int, 8)
	emptyChan    = make(chan string)
	nilChan      chan int

	ifaceInt     any = 42
	ifaceString  any = "boxed"
	ifaceStruct  any = Point{5, 6}
	ifacePtr     any = sharedInner
	ifaceNamed   any = Temperature(36.6)
	ifaceNil     any
	ifaceSlice   any          = []string{"a", "b"}
	stringer     fmt.Stringer = time.Duration(1500) * time.Millisecond
	errValue                  = errors.New("disk full")
	wrappedErr                = fmt.Errorf("open /data: %w", errValue)
	customErr    error        = &ValidationError{Field: "port", Code: 22}
	nilErr       error
	ifaceInIface any = [2]any{1, "two"}

	genericPair       = Pair[string, int]{Key: "answer", Val: 42}
	genericNested     = Pair[Point, *Inner]{Key: Point{7, 8}, Val: sharedInner}
	ifaceGeneric  any = Pair[string, []int]{Key: "xs", Val: []int{1, 2}}

	squareFn    = square
	counter     = 0
	closureFn   = func() int { counter++; return counter }
	nilFunc     func()
	adder       = makeAdder(5)
	methodValue = cfg.Describe

	rawPtr     = unsafe.Pointer(&cfg)
	nilRawPtr  unsafe.Pointer
	when       = time.Date(2024, time.February, 29, 13, 14, 15, 123456789, time.UTC)
	whenZoned  = time.Date(1999, time.December, 31, 23, 59, 59, 0, time.FixedZone("CET", 3600))
	timeout    = 1500 * time.Millisecond
	negativeDu = -3 * time.Nanosecond
)

func init() {
	a, b, c := &Node{ID: 10}, &Node{ID: 20}, &Node{ID: 30}
	a.Next, b.Next, c.Next = b, c, a
	ring = a
	selfLoop = &Node{ID: 99}
	selfLoop.Next = selfLoop
	bigSlice = make([]uint16, 100000)
	for i := range bigSlice {
		bigSlice[i] = uint16(i * 7)
	}
	bigMap = make(map[int]int, 10000)
	for i := 0; i < 10000; i++ {
		bigMap[i] = i * i
	}
	bufferedChan <- 1
	bufferedChan <- 2
	bufferedChan <- 3
}

// register reports every global to the oracle under "main.<name>".
func register() {
	oracle.Value("main.cfg", &cfg)
	oracle.Value("main.cfgPtr", &cfgPtr)
	oracle.Value("main.nilCfg", &nilCfg)
	oracle.Value("main.zeroCfg", &zeroCfg)
	oracle.Value("main.nilSlice", &nilSlice)
	oracle.Value("main.empty", &empty)
	oracle.Value("main.nilMap", &nilMap)
	oracle.Value("main.emptyMap", &emptyMap)
	oracle.Value("main.ring", &ring)
	oracle.Value("main.selfLoop", &selfLoop)
	oracle.Value("main.list", &list)
	oracle.Value("main.unicodeText", &unicodeText)
	oracle.Value("main.invalidUTF8", &invalidUTF8)
	oracle.Value("main.escapes", &escapes)
	oracle.Value("main.emptyText", &emptyText)
	oracle.Value("main.bigText", &bigText)
	oracle.Value("main.maxInt64", &maxInt64)
	oracle.Value("main.minInt64", &minInt64)
	oracle.Value("main.maxUint64", &maxUint64)
	oracle.Value("main.beyond53", &beyond53)
	oracle.Value("main.below53", &below53)
	oracle.Value("main.exact53", &exact53)
	oracle.Value("main.smallInts", &smallInts)
	oracle.Value("main.nan", &nan)
	oracle.Value("main.posInf", &posInf)
	oracle.Value("main.negInf", &negInf)
	oracle.Value("main.f32", &f32)
	oracle.Value("main.f32NaN", &f32NaN)
	oracle.Value("main.f32NegInf", &f32NegInf)
	oracle.Value("main.floats", &floats)
	oracle.Value("main.floats32", &floats32)
	oracle.Value("main.c64", &c64)
	oracle.Value("main.c128", &c128)
	oracle.Value("main.byteSlice", &byteSlice)
	oracle.Value("main.byteArray", &byteArray)
	oracle.Value("main.int16Arr", &int16Arr)
	oracle.Value("main.points", &points)
	oracle.Value("main.bigSlice", &bigSlice)
	oracle.Value("main.oneEntry", &oneEntry)
	oracle.Value("main.bigMap", &bigMap)
	oracle.Value("main.structKeyMap", &structKeyMap)
	oracle.Value("main.nestedMap", &nestedMap)
	oracle.Value("main.bufferedChan", &bufferedChan)
	oracle.Value("main.emptyChan", &emptyChan)
	oracle.Value("main.nilChan", &nilChan)
	oracle.Value("main.ifaceInt", &ifaceInt)
	oracle.Value("main.ifaceString", &ifaceString)
	oracle.Value("main.ifaceStruct", &ifaceStruct)
	oracle.Value("main.ifacePtr", &ifacePtr)
	oracle.Value("main.ifaceNamed", &ifaceNamed)
	oracle.Value("main.ifaceNil", &ifaceNil)
	oracle.Value("main.ifaceSlice", &ifaceSlice)
	oracle.Value("main.stringer", &stringer)
	oracle.Value("main.errValue", &errValue)
	oracle.Value("main.wrappedErr", &wrappedErr)
	oracle.Value("main.customErr", &customErr)
	oracle.Value("main.nilErr", &nilErr)
	oracle.Value("main.ifaceInIface", &ifaceInIface)
	oracle.Value("main.genericPair", &genericPair)
	oracle.Value("main.genericNested", &genericNested)
	oracle.Value("main.ifaceGeneric", &ifaceGeneric)
	oracle.Value("main.squareFn", &squareFn)
	oracle.Value("main.counter", &counter)
	oracle.Value("main.closureFn", &closureFn)
	oracle.Value("main.nilFunc", &nilFunc)
	oracle.Value("main.adder", &adder)
	oracle.Value("main.methodValue", &methodValue)
	oracle.Value("main.rawPtr", &rawPtr)
	oracle.Value("main.nilRawPtr", &nilRawPtr)
	oracle.Value("main.when", &when)
	oracle.Value("main.whenZoned", &whenZoned)
	oracle.Value("main.timeout", &timeout)
	oracle.Value("main.negativeDu", &negativeDu)
}

// parkLocals blocks with a set of live arguments and locals; the oracle
// reports them in locals.json. They are used again after the receive so
// they stay live (and readable) while parked.
//
//go:noinline
func parkLocals(id int, name string, opts *Config, done chan int) int {
	count := int64(len(name)) * 1000003
	ratio := float32(id) / 3
	words := []string{name, "beta", "γάμμα"}
	lookup := map[string]Point{"here": {1, 1}, "there": {-2, 9}}
	var boxed any = &Inner{Label: "boxed local", Weight: 1}
	var failure error = &ValidationError{Field: name, Code: id}
	pt := Point{X: id, Y: -id}
	var nothing []int
	oracle.Locals("main.parkLocals",
		[]oracle.Named{
			oracle.V("id", id),
			oracle.V("name", name),
			oracle.V("opts", opts),
			oracle.V("done", done),
		},
		[]oracle.Named{
			oracle.V("count", count),
			oracle.V("ratio", ratio),
			oracle.V("words", words),
			oracle.V("lookup", lookup),
			oracle.V("boxed", boxed),
			oracle.V("failure", failure),
			oracle.V("pt", pt),
			oracle.V("nothing", nothing),
		})
	<-done
	runtime.KeepAlive(opts)
	return int(count) + int(ratio) + len(words) + len(lookup) + pt.X + len(nothing) +
		len(fmt.Sprint(boxed, failure, name))
}

// blockedSender waits forever in emptyChan's send queue.
func blockedSender() {
	emptyChan <- "never received"
}

func main() {
	register()
	keepZoo()
	startZoo()
	go parkLocals(17, "locals-test", &cfg, make(chan int))
	// A sender no one receives from: Delve's print of main.emptyChan lists
	// the goroutines waiting on it.
	go blockedSender()
	oracle.ReadyAndPark()
}
