// Command heapprof records every allocation in the heap profile
// (runtime.MemProfileRate = 1 from the start of main), makes known live and
// dead objects from distinct stacks (a small struct, large buffers, an
// inlined allocator, garbage), publishes them with two GCs, turns the GC
// off (so the published profile cannot move between a capture and the
// oracle signal) and registers the extra oracle file heap.pb.gz: its own
// pprof.Lookup("heap").WriteTo(w, 0), taken at signal time.
//
// $HEAPPROF_RATE, when set, replaces the rate 1 right after (a sampled
// profile, whose values the runtime scales).
package main

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"

	"corpus/internal/oracle"
)

type node struct {
	id   int
	next *node
	pad  [4]int64
}

var (
	small   []*node
	big     [][]byte
	inlined []*[24]byte
	sink    []byte
)

//go:noinline
func allocSmall(n int) {
	for i := 0; i < n; i++ {
		small = append(small, &node{id: i})
	}
}

//go:noinline
func allocBig(n int) {
	for i := 0; i < n; i++ {
		big = append(big, make([]byte, 64<<10))
	}
}

// newBlock is inlined into its caller: its allocation site folds into the
// caller's location.
func newBlock() *[24]byte { return new([24]byte) }

//go:noinline
func allocInlined(n int) {
	for i := 0; i < n; i++ {
		inlined = append(inlined, newBlock())
	}
}

//go:noinline
func allocGarbage(n int) {
	for i := 0; i < n; i++ {
		sink = make([]byte, 1000+i%3)
	}
	sink = nil
}

func main() {
	runtime.MemProfileRate = 1
	if n, err := strconv.Atoi(os.Getenv("HEAPPROF_RATE")); err == nil {
		runtime.MemProfileRate = n
	}
	allocSmall(100)
	allocBig(10)
	allocInlined(50)
	allocGarbage(300)
	runtime.GC()
	runtime.GC()
	debug.SetGCPercent(-1)
	oracle.Extra("heap.pb.gz", func() ([]byte, error) {
		var b bytes.Buffer
		err := pprof.Lookup("heap").WriteTo(&b, 0)
		return b.Bytes(), err
	})
	oracle.ReadyAndPark()
}
