// Command parked puts goroutines into every common blocked state (issue 3),
// then prints READY and serves the oracle. It prints nothing else on stdout.
package main

import (
	"context"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"corpus/internal/oracle"
)

// never is closed by nobody: receiving from it blocks forever.
var never = make(chan int)

// spinCount is advanced by the busy goroutine, so the loop has an
// observable effect and is not optimised away. It is not reported to the
// oracle: it changes between the capture and the oracle's dump.
var spinCount atomic.Uint64

// Held locks: main takes them before starting the waiters.
var (
	heldMutex   sync.Mutex
	heldForRead sync.RWMutex // write-locked by main: RLock waits
	heldByRead  sync.RWMutex // read-locked by main: Lock waits
	condMu      sync.Mutex
	cond        = sync.NewCond(&condMu)
	pendingWG   sync.WaitGroup
)

// Keep listener and pipe ends reachable so they are not closed by finalizers.
var (
	listener       net.Listener
	pipeReader     *os.File
	pipeWriter     *os.File
	rawPipe        [2]int
	lockedThreadID int
)

//go:noinline
func chanSend(ch chan int) { ch <- 1 }

//go:noinline
func chanRecv(ch chan int) int { return <-ch }

//go:noinline
func selectTwo(a, b chan int) int {
	select {
	case v := <-a:
		return v
	case v := <-b:
		return v
	}
}

//go:noinline
func selectNoCases() { select {} }

//go:noinline
func nilChanSend() {
	var ch chan int
	ch <- 1
}

//go:noinline
func nilChanRecv() int {
	var ch chan int
	return <-ch
}

//go:noinline
func mutexWait() {
	heldMutex.Lock()
	defer heldMutex.Unlock()
}

//go:noinline
func rwRLockWait() {
	heldForRead.RLock()
	defer heldForRead.RUnlock()
}

//go:noinline
func rwLockWait() {
	heldByRead.Lock()
	defer heldByRead.Unlock()
}

//go:noinline
func condWait() {
	condMu.Lock()
	for {
		cond.Wait()
	}
}

//go:noinline
func waitGroupWait() { pendingWG.Wait() }

//go:noinline
func sleepLong() { time.Sleep(24 * time.Hour) }

//go:noinline
func acceptWait(l net.Listener) {
	conn, err := l.Accept()
	if err == nil {
		conn.Close()
	}
}

//go:noinline
func pipeReadWait(f *os.File) {
	buf := make([]byte, 16)
	f.Read(buf)
}

// blockingSyscall reads a pipe whose file descriptor is in blocking mode, so
// the goroutine sits in the read system call (status "syscall").
//
//go:noinline
func blockingSyscall(fd int) {
	buf := make([]byte, 16)
	syscall.Read(fd, buf)
}

//go:noinline
func lockedThreadWait() {
	runtime.LockOSThread()
	lockedThreadID = syscall.Gettid()
	<-never
}

//go:noinline
func labelledWait() {
	labels := pprof.Labels("tenant", "acme", "request", "r-42")
	pprof.Do(context.Background(), labels, func(context.Context) {
		<-never
	})
}

// recurse descends depth frames and then blocks, so that the traceback has
// more than 100 frames and Go elides the middle.
//
//go:noinline
func recurse(depth int) int {
	if depth == 0 {
		return <-never
	}
	return recurse(depth-1) + 1
}

//go:noinline
func genericWait[T any](ch chan T) T { return <-ch }

type worker struct {
	name  string
	inbox chan int
}

//go:noinline
func (w *worker) run() { <-w.inbox }

// inlineRoot calls a chain of small functions the compiler inlines (unless
// built with -l); the logical frames innermost..outermost are inlineC,
// inlineB, inlineA, inlineRoot.
//
//go:noinline
func inlineRoot(ch chan int) int { return inlineA(ch) + 1 }

func inlineA(ch chan int) int { return inlineB(ch) * 2 }
func inlineB(ch chan int) int { return inlineC(ch) - 3 }
func inlineC(ch chan int) int { return <-ch }

//go:noinline
func spin() {
	for {
		spinCount.Add(1)
	}
}

// parent starts child, which starts grandchild, each then blocks, so the
// "created by ... in goroutine N" lines chain through three goroutines.
//
//go:noinline
func parent() {
	go child()
	<-never
}

//go:noinline
func child() {
	go grandchild()
	<-never
}

//go:noinline
func grandchild() { <-never }

func main() {
	heldMutex.Lock()
	heldForRead.Lock()
	heldByRead.RLock()
	pendingWG.Add(1)

	var err error
	listener, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	pipeReader, pipeWriter, err = os.Pipe()
	if err != nil {
		panic(err)
	}
	if err := syscall.Pipe(rawPipe[:]); err != nil {
		panic(err)
	}

	go chanSend(make(chan int))
	go chanRecv(make(chan int))
	go selectTwo(make(chan int), make(chan int))
	go selectNoCases()
	go nilChanSend()
	go nilChanRecv()
	go mutexWait()
	go rwRLockWait()
	go rwLockWait()
	go condWait()
	go waitGroupWait()
	go sleepLong()
	go acceptWait(listener)
	go pipeReadWait(pipeReader)
	go blockingSyscall(rawPipe[0])
	go lockedThreadWait()
	go labelledWait()
	go recurse(150)
	go genericWait(make(chan string))
	w := &worker{name: "w1", inbox: make(chan int)}
	runMethod := w.run
	go runMethod()
	captured := make(chan int)
	closure := func() { <-captured }
	go closure()
	go inlineRoot(make(chan int))
	oracle.AllowRunning("main.spin")
	go spin()
	go parent()

	oracle.ReadyAndPark()
}
