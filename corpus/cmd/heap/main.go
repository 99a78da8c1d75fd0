// Command heap fills -mb MiB of heap with a deterministic pattern, plus one
// 64 KiB buffer whose bytes the tests check in the snapshot. Before READY it
// prints
//
//	PATTERN 0x<addr> <len> <hex of the first 16 bytes>
//
// Byte i of the buffer is PatternByte(i, patternSeed); byte i of the bulk heap
// (counted across all chunks) is PatternByte(i, bulkSeed).
//
// With -dirty-mibps N a goroutine keeps writing N MiB/s worth of bulk-heap
// pages (one byte per page, rewritten with its own pattern value, so the
// contents never change but every page it touches is written), like a
// service whose working set is busy while it is captured.
//
// With -canary N it also keeps a secret: N random bytes (crypto/rand, drawn
// at start-up, so in no file on disk) as a heap string in a global map, and
// prints before READY
//
//	CANARY 0x<addr> <len> <hex of all the bytes>
//
// so a test can look for them in what a capture wrote.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"
	"unsafe"

	"corpus/internal/oracle"
)

const (
	patternLen  = 64 << 10
	patternSeed = 0x12345678
	bulkSeed    = 0
	chunkLen    = 1 << 20
)

// PatternByte is a cheap multiplicative hash: the top byte of
// i*2654435761 + seed (mod 2^32). The tests recompute it.
func PatternByte(i int, seed uint32) byte {
	return byte((uint32(i)*2654435761 + seed) >> 24)
}

var (
	pattern []byte
	bulk    [][]byte
	// secrets holds the -canary string, reachable from a global like a
	// service's credentials cache.
	secrets = map[string]string{}
)

func main() {
	mb := flag.Int("mb", 64, "MiB of heap to fill")
	dirtyMiBps := flag.Int("dirty-mibps", 0, "MiB/s of bulk-heap pages to keep writing")
	canary := flag.Int("canary", 0, "bytes of random secret to keep in a heap string")
	filter := flag.String("seccomp", "", "seccomp filter for every thread: kill-userfaultfd or deny-unrelated")
	flag.Parse()
	if *filter != "" {
		if err := installFilter(*filter); err != nil {
			fmt.Fprintln(os.Stderr, "heap: seccomp:", err)
			os.Exit(1)
		}
	}
	if *canary < 0 || *canary > 1<<20 {
		fmt.Fprintln(os.Stderr, "heap: -canary must be in 0..1048576")
		os.Exit(2)
	}
	if *mb < 0 || *mb > 1<<16 {
		fmt.Fprintln(os.Stderr, "heap: -mb must be in 0..65536")
		os.Exit(2)
	}
	pattern = make([]byte, patternLen)
	for i := range pattern {
		pattern[i] = PatternByte(i, patternSeed)
	}
	bulk = make([][]byte, *mb)
	for k := range bulk {
		chunk := make([]byte, chunkLen)
		for j := range chunk {
			chunk[j] = PatternByte(k*chunkLen+j, bulkSeed)
		}
		bulk[k] = chunk
	}
	if *dirtyMiBps > 0 && *mb > 0 {
		go dirtyPages(*dirtyMiBps)
	}
	if *canary > 0 {
		secret := make([]byte, *canary)
		if _, err := rand.Read(secret); err != nil {
			fmt.Fprintln(os.Stderr, "heap: crypto/rand:", err)
			os.Exit(1)
		}
		secrets["token"] = string(secret)
		s := secrets["token"]
		fmt.Printf("CANARY 0x%x %d %s\n", uintptr(unsafe.Pointer(unsafe.StringData(s))), len(s), hex.EncodeToString(secret))
	}
	fmt.Printf("PATTERN 0x%x %d %s\n", uintptr(unsafe.Pointer(&pattern[0])), len(pattern), hex.EncodeToString(pattern[:16]))
	oracle.ReadyAndPark()
}

// dirtyPages writes one byte in each of mibps MiB worth of 4 KiB pages of
// the bulk heap per second, cycling through it, every millisecond a slice.
func dirtyPages(mibps int) {
	const page = 4096
	perTick := mibps * (1 << 20) / page / 1000
	if perTick < 1 {
		perTick = 1
	}
	pages := len(bulk) * chunkLen / page
	next := 0
	ticker := time.NewTicker(time.Millisecond)
	for range ticker.C {
		for n := 0; n < perTick; n++ {
			i := next * page
			bulk[i/chunkLen][i%chunkLen] = PatternByte(i, bulkSeed)
			next = (next + 1) % pages
		}
	}
}
