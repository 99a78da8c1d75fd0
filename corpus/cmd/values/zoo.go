package main

// The expression zoo: package variables and a parked frame for the
// Delve-parity expression table (tests/e2e/values.rs). The names follow the
// shapes of Delve's own test fixtures (i1, f1, str1, ...) so each row of the
// table reads like the expression a user types.

import (
	"errors"
	"math/big"
	"reflect"
	"runtime"
	"time"
	_ "time/tzdata" // zones without the machine's database
	"unsafe"
)

// astruct is a small struct that implements error through its pointer.
type astruct struct {
	A int
	B int
}

func (a *astruct) Error() string { return "astruct error" }

// Get is a method for method values.
func (a astruct) Get() int { return a.A }

// bstruct holds an embedded astruct.
type bstruct struct {
	a astruct
	N string
}

// ConstType is a named integer type with named constants: Delve prints a
// value equal to one of them as `Name (value)`.
type ConstType uint8

const (
	ConstZero ConstType = iota
	ConstOne
	ByteConst ConstType = 255
)

// BitFlags has power-of-two constants.
type BitFlags int

const (
	FlagA BitFlags = 1 << iota
	FlagB
	FlagC
)

type zooIface interface{ Get() int }

var (
	i1 = 1
	i2 = 2
	i3 = 3
	i4 = 800
	i5 = -3
	i6 = -500
	i7 = 1<<62 + 7

	f1           = 3.0
	f2           = 2.5
	f3           = -7.75
	f4   float64 = 1e10
	f32a float32 = 1.5

	u8a  uint8   = 200
	u16a uint16  = 65000
	u32a uint32  = 4000000000
	u64a uint64  = 1<<63 + 5
	i8a  int8    = -100
	i16a int16   = -30000
	i32a int32   = -2000000000
	upa  uintptr = 0x1000

	b1 = true
	b2 = false

	str1  = "01234567890"
	str2  = "héllo"
	str3  = "012"
	strEm = ""

	byteslice = []byte{116, 195, 168, 115, 116}
	runeslice = []rune{116, 232, 115, 116}
	bytearray = [5]byte{116, 195, 168, 115, 116}
	runearray = [4]rune{116, 232, 115, 116}

	arr1 = [4]int{0, 1, 2, 3}
	parr = &arr1
	sl1  = []int{10, 20, 30, 40, 50}
	sl2  = sl1[1:3]

	as1  = astruct{1, 1}
	as2  = astruct{1, 1}
	as3  = astruct{2, 1}
	pas1 = &as1
	pas2 = &as1
	pas3 = &as3
	bs1  = bstruct{a: astruct{5, 6}, N: "bee"}

	err1   error = &astruct{1, 2}
	err2   error = errors.New("plain")
	errnil error

	iface1   any = &as1
	iface2   any = 5
	iface3   any = 5
	iface4   any = "x"
	iface5   any = as3
	ifacenil any
	// ifacebig holds a type whose package path has a slash: reflect names it
	// *big.Int, DWARF (and Delve) *math/big.Int.
	ifacebig any = big.NewInt(7)
	// ifacebigdeep shows it past the print depth, where only the dynamic
	// type is printed.
	ifacebigdeep          = []struct{ V any }{{big.NewInt(7)}}
	zi           zooIface = as1

	ch1     = make(chan int, 11)
	chnil   chan int
	mapzoo             = map[string]astruct{"one": {1, 1}, "two": {2, 2}}
	mapint             = map[int]string{1: "a", 2: "b"}
	c1      complex128 = complex(1, 2)
	c2      complex64  = complex(-1.5, 0.5)
	cv      ConstType  = 255
	cvOne   ConstType  = 1
	cvOther ConstType  = 7
	flags   BitFlags   = FlagA | FlagC
	flagOne BitFlags   = FlagB

	afunc    = func(i int) int { return i * 2 }
	fnsq     = square
	fnnil    func()
	as1Get   = as1.Get
	badslice []int
	zoneCST  = time.Date(2021, time.March, 4, 5, 6, 7, 0, time.FixedZone("CST", -6*3600))
	zoneIST  = time.Date(2021, time.March, 4, 5, 6, 7, 8, time.FixedZone("IST", 5*3600+1800))
	dur1     = 90 * time.Second
	up1      = unsafe.Pointer(&as1)
	ppas1    = &pas1
	huges    = make([]int, 20)
	emptyStr struct{}
)

// A zone with daylight saving time: the Location caches the zone in effect
// when it was loaded, which is not the one of every time in it.
var (
	denver           = mustZone("America/Denver")
	zoneDenverSummer = time.Date(2021, time.July, 4, 12, 0, 0, 0, denver)
	zoneDenverWinter = time.Date(2021, time.January, 4, 12, 0, 0, 0, denver)
)

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// zooEscaped keeps the frame's escaped local on the heap.
var zooEscaped *int

func init() {
	ch1 <- 1
	ch1 <- 2
	ch1 <- 3
	ch1 <- 4
	h := (*reflect.SliceHeader)(unsafe.Pointer(&badslice))
	h.Len, h.Cap = 3, 3
	for i := range huges {
		huges[i] = i * i
	}
}

// zooFrame parks with an escaped local, a shadowed name inside a lexical
// block, and a local declared after the park point.
//
//go:noinline
func zooFrame(arg1 int, argstr string, ready chan<- struct{}, done <-chan struct{}) int {
	loc1 := arg1 * 2
	esc := 10 + arg1
	zooEscaped = &esc
	sh := "outer"
	lslice := huges[:arg1]
	{
		sh := "inner"
		inblock := loc1 + 1
		ready <- struct{}{}
		<-done
		loc1 += len(sh) + inblock
	}
	later := len(argstr) + loc1
	runtime.KeepAlive(lslice)
	return later + len(sh) + *zooEscaped + len(lslice)
}

// startZoo runs zooFrame and waits until it is about to park.
func startZoo() {
	ready := make(chan struct{})
	go zooFrame(3, "argument", ready, make(chan struct{}))
	<-ready
	time.Sleep(20 * time.Millisecond)
}

// zooSink keeps every zoo variable reachable (the linker drops package
// variables nothing refers to).
var zooSink []any

func keepZoo() {
	zooSink = []any{&i1, &i2, &i3, &i4, &i5, &i6, &i7, &f1, &f2, &f3, &f4, &f32a,
		&u8a, &u16a, &u32a, &u64a, &i8a, &i16a, &i32a, &upa, &b1, &b2,
		&str1, &str2, &str3, &strEm, &byteslice, &runeslice, &bytearray, &runearray,
		&arr1, &parr, &sl1, &sl2, &as1, &as2, &as3, &pas1, &pas2, &pas3, &bs1,
		&err1, &err2, &errnil, &iface1, &iface2, &iface3, &iface4, &iface5, &ifacenil, &ifacebig, &ifacebigdeep, &zi,
		&ch1, &chnil, &mapzoo, &mapint, &c1, &c2, &cv, &cvOne, &cvOther, &flags, &flagOne,
		&afunc, &fnsq, &fnnil, &as1Get, &badslice, &zoneCST, &zoneIST, &dur1, &up1, &ppas1,
		&huges, &emptyStr, &zoneDenverSummer, &zoneDenverWinter}
}
