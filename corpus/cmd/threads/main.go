// Command threads keeps creating and destroying OS threads, so that a capture
// happens while threads come and go. Each of -workers goroutines loops: it
// starts a goroutine that locks itself to its OS thread, holds it for
// -hold-us microseconds and exits while still locked, which makes the Go
// runtime terminate that thread; the next iteration needs a new one.
//
// For every such thread it prints, once the thread is about to end,
//
//	THREAD <tid> <start_ns> <end_ns>
//
// with CLOCK_MONOTONIC read on that thread right after it was locked and
// right before it ends: the thread certainly existed at every instant in
// between. READY is printed without waiting for goroutines to settle.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"corpus/internal/oracle"
)

const clockMonotonic = 1

var (
	outMu sync.Mutex
	out   = bufio.NewWriter(os.Stdout)
)

func monotonicNanos() int64 {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func shortLivedThread(hold time.Duration, done chan<- struct{}) {
	defer close(done)
	runtime.LockOSThread()
	// No UnlockOSThread: a goroutine that exits locked takes its thread with it.
	tid := syscall.Gettid()
	start := monotonicNanos()
	time.Sleep(hold)
	end := monotonicNanos()
	outMu.Lock()
	fmt.Fprintf(out, "THREAD %d %d %d\n", tid, start, end)
	outMu.Unlock()
}

func churn(hold time.Duration) {
	for {
		done := make(chan struct{})
		go shortLivedThread(hold, done)
		<-done
	}
}

// flushLoop pushes buffered THREAD lines out regularly; the volume is too
// high to write each line with its own system call.
func flushLoop() {
	for {
		time.Sleep(20 * time.Millisecond)
		outMu.Lock()
		out.Flush()
		outMu.Unlock()
	}
}

func main() {
	workers := flag.Int("workers", 4, "goroutines creating threads concurrently")
	holdMicros := flag.Int("hold-us", 1000, "microseconds each thread lives")
	flag.Parse()
	if *workers < 1 || *workers > 256 || *holdMicros < 0 || *holdMicros > 10_000_000 {
		fmt.Fprintln(os.Stderr, "threads: -workers in 1..256, -hold-us in 0..10000000")
		os.Exit(2)
	}
	hold := time.Duration(*holdMicros) * time.Microsecond
	for i := 0; i < *workers; i++ {
		go churn(hold)
	}
	go flushLoop()
	outMu.Lock()
	out.Flush()
	outMu.Unlock()
	oracle.ReadyUnsettled()
	select {}
}
