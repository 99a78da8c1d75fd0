// Command many parks -n goroutines (default 10000) in three kinds of
// identical stacks, for goroutine grouping and the large-count benchmark.
// -depth D adds D frames of user code under each (a real service's
// goroutines are often 8-15 frames deep).
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"

	"corpus/internal/oracle"
)

var (
	never   = make(chan int)
	gate    = make(chan int)
	blocked sync.Mutex
)

//go:noinline
func waitReceive() { <-never }

//go:noinline
func waitSelect() {
	select {
	case <-never:
	case gate <- 1:
	}
}

//go:noinline
func waitMutex() {
	blocked.Lock()
	defer blocked.Unlock()
}

//go:noinline
func nest(depth, kind int) {
	if depth > 0 {
		nest(depth-1, kind)
		return
	}
	park(kind)
}

//go:noinline
func start(kind, depth int) {
	nest(depth, kind)
}

//go:noinline
func park(kind int) {
	switch kind {
	case 0:
		waitReceive()
	case 1:
		waitSelect()
	default:
		waitMutex()
	}
}

func main() {
	n := flag.Int("n", 10000, "number of parked goroutines")
	depth := flag.Int("depth", 0, "extra frames of user code under each parked goroutine")
	flag.Parse()
	if *n < 0 || *n > 10_000_000 {
		fmt.Fprintln(os.Stderr, "many: -n must be in 0..10000000")
		os.Exit(2)
	}
	if *depth < 0 || *depth > 1000 {
		fmt.Fprintln(os.Stderr, "many: -depth must be in 0..1000")
		os.Exit(2)
	}
	blocked.Lock()
	for i := 0; i < *n; i++ {
		go start(i%3, *depth)
	}
	oracle.ReadyAndPark()
}
