// Command heap fills -mb MiB of heap with a deterministic pattern, plus one
// 64 KiB buffer whose bytes the tests check in the snapshot. Before READY it
// prints
//
//	PATTERN 0x<addr> <len> <hex of the first 16 bytes>
//
// Byte i of the buffer is PatternByte(i, patternSeed); byte i of the bulk heap
// (counted across all chunks) is PatternByte(i, bulkSeed).
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
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
)

func main() {
	mb := flag.Int("mb", 64, "MiB of heap to fill")
	flag.Parse()
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
	fmt.Printf("PATTERN 0x%x %d %s\n", uintptr(unsafe.Pointer(&pattern[0])), len(pattern), hex.EncodeToString(pattern[:16]))
	oracle.ReadyAndPark()
}
