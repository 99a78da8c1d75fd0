// Command many parks -n goroutines (default 10000) in three kinds of
// identical stacks, for goroutine grouping and the large-count benchmark.
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
func start(kind int) {
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
	flag.Parse()
	if *n < 0 || *n > 10_000_000 {
		fmt.Fprintln(os.Stderr, "many: -n must be in 0..10000000")
		os.Exit(2)
	}
	blocked.Lock()
	for i := 0; i < *n; i++ {
		go start(i % 3)
	}
	oracle.ReadyAndPark()
}
