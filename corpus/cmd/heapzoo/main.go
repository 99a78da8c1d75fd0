// Command heapzoo puts a process into a heap and goroutine state known by
// construction, for `rdlv heap`, `rdlv leaks` and `rdlv waits`.
//
// Heap: objects of distinct types, each type allocated only here and in a
// known number, retained by globals, a map, a goroutine's stack locals, a
// closure and interfaces; small ones (no malloc header, so untyped in the
// heap), 513 B-32 KiB ones with a header, large ones; and a garbage batch
// of its own types made unreachable and collected (runtime.GC) before
// READY. -small N adds N 16-byte pointerful objects in a list and -blob M
// adds M MiB of 64 KiB byte slices (a big heap for the benchmark).
//
// Goroutines: some blocked forever on channels, mutexes, RWMutexes and
// WaitGroups nothing can reach any more (leaked), among them a two-goroutine
// lock-order deadlock and a two-goroutine channel cycle; others blocked on
// primitives still reachable from a global or from a goroutine that can
// run (not leaked).
//
// Before READY it writes $ORACLE_DIR/heapzoo.json:
//
//	{"types": {"main.GlobalMid": 100, ...}, "garbage_types": [...],
//	 "small": N, "memstats": {"HeapAlloc": ..., "HeapInuse": ..., "HeapObjects": ...},
//	 "leaked": [goid, ...], "not_leaked": [goid, ...],
//	 "cycles": [[goid, goid], ...],
//	 "retained": {"main.globalMids": bytes, ...}}
//
// and on each oracle signal, when the runtime has the goroutine leak
// profile (Go 1.26 with GOEXPERIMENT=goroutineleakprofile, Go 1.27+),
// goroutineleak.txt: that profile at debug=2.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"corpus/internal/oracle"
)

// Small pointerful (16 B, no header).
type SmallPtr struct {
	next *SmallPtr
	v    int
}

// Small noscan (24 B, no header, no pointers).
type SmallNoscan struct{ a, b, c int64 }

// The 968-byte types (size class 1024, malloc header), one per retention path.
type GlobalMid struct {
	p   *int
	pad [120]int64
}
type MapMid struct {
	p   *int
	pad [120]int64
}
type StackMid struct {
	p   *int
	pad [120]int64
}
type ClosureMid struct {
	p   *int
	pad [120]int64
}
type IfaceMid struct {
	p   *int
	pad [120]int64
}
type GarbageMid struct {
	p   *int
	pad [120]int64
}

// Large pointerful objects (65544 B: size class 0, typed by largeType).
type LargePtr struct {
	p   *int
	pad [8192]int64
}
type GarbageLarge struct {
	p   *int
	pad [8192]int64
}

// Sync primitives of the goroutine scenarios live in pointerful boxes: a
// bare new(sync.Mutex) is an 8-byte noscan object that the tiny allocator
// packs into a 16-byte block with its neighbour, and a block is marked as
// a whole, so a reachable neighbour would keep a dropped mutex alive (for
// the runtime's own leak detector too).
type muBox struct {
	sync.Mutex
	_ *int
}
type rwBox struct {
	sync.RWMutex
	_ *int
}
type wgBox struct {
	sync.WaitGroup
	_ *int
}

const (
	nGlobal  = 100
	nMap     = 50
	nStack   = 20
	nClosure = 30
	nIface   = 40 // half as pointers, half boxed values
	nLarge   = 4
	nSmall   = 1000
	nGarbage = 300
)

var (
	globalMids []*GlobalMid
	mapMids    map[int]*MapMid
	keepFunc   func() int
	ifaces     []any
	larges     []*LargePtr
	smallList  *SmallPtr
	noscans    []*SmallNoscan
	bigBytes   [][]byte
	// blobs: -blob MiB of 64 KiB noscan objects (heap bytes for the benchmark).
	blobs [][]byte

	// parkForever: main waits on it; reachable from a global, so main is never leaked.
	parkForever = make(chan struct{})
	// Primitives kept reachable from globals.
	keepChan  = make(chan int)
	keepMuPtr *muBox
	// ids carries goroutine ids from the goroutines to their creator.
	ids = make(chan int64)
)

type truth struct {
	Types        map[string]int   `json:"types"`
	GarbageTypes []string         `json:"garbage_types"`
	Small        int              `json:"small"`
	MemStats     map[string]any   `json:"memstats"`
	Leaked       []int64          `json:"leaked"`
	NotLeaked    []int64          `json:"not_leaked"`
	Cycles       [][]int64        `json:"cycles"`
	Scenarios    map[string]int64 `json:"scenarios"`
	// Retained: bytes each global alone keeps alive, by the runtime's count.
	Retained map[string]uint64 `json:"retained"`
}

func main() {
	small := flag.Int("small", 0, "extra 16-byte objects to allocate")
	blob := flag.Int("blob", 0, "MiB of 64 KiB byte slices to allocate (kept by main.blobs)")
	flag.Parse()
	t := truth{Types: map[string]int{}, Scenarios: map[string]int64{}, Retained: map[string]uint64{}}
	buildHeap(&t, *small)
	seed := uint64(1)
	for i := 0; i < *blob*16; i++ {
		// Written through, so that its pages are resident and captured.
		b := make([]byte, 64<<10)
		for j := 0; j+8 <= len(b); j += 8 {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			binary.LittleEndian.PutUint64(b[j:], seed)
		}
		blobs = append(blobs, b)
	}
	makeGarbage()
	runtime.GC()
	runtime.GC()
	t.GarbageTypes = []string{"main.GarbageMid", "main.GarbageLarge"}

	done := make(chan struct{})
	go func() {
		startGoroutines(&t)
		close(done)
	}()
	<-done
	time.Sleep(50 * time.Millisecond)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.MemStats = map[string]any{"HeapAlloc": ms.HeapAlloc, "HeapInuse": ms.HeapInuse, "HeapObjects": ms.HeapObjects}
	writeTruth(&t)

	if p := pprof.Lookup("goroutineleak"); p != nil {
		oracle.Extra("goroutineleak.txt", func() ([]byte, error) {
			var b bytes.Buffer
			err := p.WriteTo(&b, 2)
			return b.Bytes(), err
		})
	}
	oracle.Ready()
	<-parkForever
}

// liveHeap is the runtime's count of live heap bytes (slot bytes) right
// after a full collection.
// It reads until two readings agree, so that what the runtime itself
// allocates in the background (mark workers started by the first
// collection, lazily built tables) is not charged to a measurement.
func liveHeap() uint64 {
	var ms runtime.MemStats
	last := uint64(0)
	for i := 0; i < 20; i++ {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc == last {
			break
		}
		last = ms.HeapAlloc
		time.Sleep(time.Millisecond)
	}
	return ms.HeapAlloc
}

// buildHeap makes the heap; for each global it records in t.Retained the
// bytes that global alone keeps alive, measured by the runtime itself as
// the growth of the live heap across its construction (what construction
// drops, such as outgrown slice arrays, is collected before the reading).
// The runtime sometimes allocates for itself during a window, which can
// only add: each global is built at least minBuilds times (dropped in
// between), and then until the least growth has been read three times (at
// most maxBuilds builds); that least growth is kept. A loaded machine made
// three builds in a row carry 16 bytes of the runtime's own, so neither
// three builds nor three agreeing ones alone end the measurement.
func buildHeap(t *truth, small int) {
	x := new(int)
	roots := []struct {
		name  string
		build func()
		drop  func()
	}{
		{"main.globalMids", func() {
			for i := 0; i < nGlobal; i++ {
				globalMids = append(globalMids, &GlobalMid{p: x})
			}
		}, func() { globalMids = nil }},
		{"main.mapMids", func() {
			// Sized so that no bucket overflows whatever the hash seed:
			// every build of it then has the same size.
			mapMids = make(map[int]*MapMid, 4*nMap)
			for i := 0; i < nMap; i++ {
				mapMids[i] = &MapMid{p: x}
			}
		}, func() { mapMids = nil }},
		{"main.keepFunc", func() {
			closure := make([]*ClosureMid, nClosure)
			for i := range closure {
				closure[i] = &ClosureMid{p: x}
			}
			keepFunc = func() int { return len(closure) }
		}, func() { keepFunc = nil }},
		{"main.ifaces", func() {
			for i := 0; i < nIface/2; i++ {
				ifaces = append(ifaces, &IfaceMid{p: x}, IfaceMid{p: x})
			}
		}, func() { ifaces = nil }},
		{"main.larges", func() {
			for i := 0; i < nLarge; i++ {
				larges = append(larges, &LargePtr{p: x})
			}
		}, func() { larges = nil }},
		{"main.smallList", func() {
			for i := 0; i < nSmall+small; i++ {
				smallList = &SmallPtr{next: smallList, v: i}
			}
		}, func() { smallList = nil }},
		{"main.noscans", func() {
			for i := 0; i < nSmall; i++ {
				noscans = append(noscans, &SmallNoscan{a: int64(i)})
			}
		}, func() { noscans = nil }},
		{"main.bigBytes", func() {
			bigBytes = append(bigBytes, make([]byte, 100000), make([]byte, 200000))
		}, func() { bigBytes = nil }},
	}
	const minBuilds, maxBuilds = 6, 16
	for _, r := range roots {
		least, seen := ^uint64(0), 0
		for try := 0; try < maxBuilds && (try < minBuilds || seen < 3); try++ {
			r.drop()
			before := liveHeap()
			r.build()
			switch grown := liveHeap() - before; {
			case grown < least:
				least, seen = grown, 1
			case grown == least:
				seen++
			}
		}
		t.Retained[r.name] = least
	}
	t.Types["main.GlobalMid"] = nGlobal
	t.Types["main.MapMid"] = nMap
	t.Types["main.ClosureMid"] = nClosure
	t.Types["main.IfaceMid"] = nIface
	t.Types["main.LargePtr"] = nLarge
	t.Types["main.StackMid"] = nStack
	t.Small = nSmall + small
}

//go:noinline
func makeGarbage() {
	var g []any
	for i := 0; i < nGarbage; i++ {
		g = append(g, &GarbageMid{})
	}
	g = append(g, &GarbageLarge{}, &GarbageLarge{})
	runtime.KeepAlive(g)
}

// stackHolder keeps nStack StackMids in its own stack locals and parks on a
// global channel (not leaked).
func stackHolder() {
	local := make([]*StackMid, nStack)
	for i := range local {
		local[i] = &StackMid{}
	}
	ids <- oracle.CurrentGoroutineID()
	<-keepChan
	runtime.KeepAlive(local)
}

func record(t *truth, name string, leaked bool, id int64) int64 {
	t.Scenarios[name] = id
	if leaked {
		t.Leaked = append(t.Leaked, id)
	} else {
		t.NotLeaked = append(t.NotLeaked, id)
	}
	return id
}

// startGoroutines starts every blocked goroutine and returns; every
// primitive of a leaked goroutine is dropped when it returns.
//
//go:noinline
func startGoroutines(t *truth) {
	// Not leaked: the stack holder (blocked on keepChan, a global).
	go stackHolder()
	record(t, "stack holder on global chan", false, <-ids)

	// Leaked: receive on a dropped channel.
	{
		c := make(chan int)
		go func() { ids <- oracle.CurrentGoroutineID(); <-c }()
		record(t, "chan receive dropped", true, <-ids)
	}
	// Leaked: send on a dropped channel.
	{
		c := make(chan int)
		go func() { ids <- oracle.CurrentGoroutineID(); c <- 1 }()
		record(t, "chan send dropped", true, <-ids)
	}
	// Leaked: select on two dropped channels.
	{
		a, b := make(chan int), make(chan string)
		go func() {
			ids <- oracle.CurrentGoroutineID()
			select {
			case <-a:
			case b <- "x":
			}
		}()
		record(t, "select dropped", true, <-ids)
	}
	// Leaked: Lock of a dropped locked mutex.
	{
		mu := new(muBox)
		mu.Lock()
		go func() { ids <- oracle.CurrentGoroutineID(); mu.Lock() }()
		record(t, "mutex dropped", true, <-ids)
	}
	// Leaked: RLock of a dropped write-locked RWMutex.
	{
		rw := new(rwBox)
		rw.Lock()
		go func() { ids <- oracle.CurrentGoroutineID(); rw.RLock() }()
		record(t, "rwmutex dropped", true, <-ids)
	}
	// Leaked: Wait on a dropped WaitGroup.
	{
		wg := new(wgBox)
		wg.Add(1)
		go func() { ids <- oracle.CurrentGoroutineID(); wg.Wait() }()
		record(t, "waitgroup dropped", true, <-ids)
	}
	// Leaked: lock-order deadlock (g1 holds A wants B, g2 holds B wants A),
	// each holding its first lock the usual way (Lock; defer Unlock).
	{
		a, b := new(muBox), new(muBox)
		step := make(chan struct{})
		go lockBoth(a, b, step)
		g1 := record(t, "deadlock A then B", true, <-ids)
		go lockBoth(b, a, step)
		g2 := record(t, "deadlock B then A", true, <-ids)
		close(step)
		t.Cycles = append(t.Cycles, []int64{g1, g2})
	}
	// Leaked: channel cycle (each sends to the other, nobody receives).
	{
		c1, c2 := make(chan int), make(chan int)
		go func() { ids <- oracle.CurrentGoroutineID(); c1 <- 1; <-c2 }()
		g1 := record(t, "chan cycle 1", true, <-ids)
		go func() { ids <- oracle.CurrentGoroutineID(); c2 <- 1; <-c1 }()
		g2 := record(t, "chan cycle 2", true, <-ids)
		t.Cycles = append(t.Cycles, []int64{g1, g2})
	}
	// Not leaked: Lock of a locked mutex a global points to.
	{
		keepMuPtr = new(muBox)
		keepMuPtr.Lock()
		go func() { ids <- oracle.CurrentGoroutineID(); keepMuPtr.Lock() }()
		record(t, "mutex in global", false, <-ids)
	}
	// Not leaked: Wait on a WaitGroup that a sleeping (runnable) goroutine holds.
	{
		wg := new(wgBox)
		wg.Add(1)
		go func() { ids <- oracle.CurrentGoroutineID(); wg.Wait() }()
		record(t, "waitgroup held by sleeper", false, <-ids)
		go func() {
			ids <- oracle.CurrentGoroutineID()
			time.Sleep(24 * time.Hour)
			wg.Done()
		}()
		record(t, "sleeper", false, <-ids)
	}
	// Not leaked: receive on a channel that a goroutine blocked on a
	// reachable channel will send on.
	{
		c := make(chan int)
		go func() { ids <- oracle.CurrentGoroutineID(); <-c }()
		record(t, "chan held by a goroutine that can run", false, <-ids)
		go func() { ids <- oracle.CurrentGoroutineID(); <-keepChan; c <- 1 }()
		record(t, "sender waiting on global chan", false, <-ids)
	}
}

// lockBoth locks first, then (after step is closed) second.
func lockBoth(first, second *muBox, step chan struct{}) {
	first.Lock()
	defer first.Unlock()
	ids <- oracle.CurrentGoroutineID()
	<-step
	second.Lock()
	second.Unlock()
}

func writeTruth(t *truth) {
	dir := os.Getenv("ORACLE_DIR")
	if dir == "" {
		return
	}
	b, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "heapzoo:", err)
		os.Exit(1)
	}
	tmp := filepath.Join(dir, ".heapzoo.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "heapzoo:", err)
		os.Exit(1)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "heapzoo.json")); err != nil {
		fmt.Fprintln(os.Stderr, "heapzoo:", err)
		os.Exit(1)
	}
}
