// Command churn keeps writing memory, flat out, while it is being captured,
// so that a snapshot mixing memory from before and after the freeze is
// detectable. Four regions, each with its own writer goroutine that never
// sleeps; every stamp is an 8-byte little-endian integer. Before READY each
// writer completes one full pass (so every stamp is at least 1), and the
// program prints one line per region:
//
//	REGION seq 0x<addr> <len>
//	REGION dontneed 0x<addr> <len>
//	REGION heap 0x<addr> <len>
//	REGION remap 0x<addr> <len>
//	REGION remaptable 0x<addr> 4096
//
// Every byte of a page that is not a stamp is zero. A "pass" g stamps every
// page with g; the writer then starts pass g+1 from page 0. So at any
// instant the process is stopped, with k the page the writer is on:
//
//   - seq (anonymous private mmap of -mb MiB): per page, write g at offset 0,
//     then g at offset 4088. Pages [0,k) read (g+1, g+1), pages (k,n) read
//     (g, g), page k reads (g, g), (g+1, g) or (g+1, g+1).
//   - dontneed (another mmap of -mb MiB): per page, madvise(MADV_DONTNEED)
//     the page, then stamp it as seq does. As seq, except page k reads
//     (g, g), (0, 0), (g+1, 0) or (g+1, g+1), never (g+1, g).
//   - heap (a Go []byte of -mb MiB, page aligned, live in a global): as seq.
//   - remap: a ring of 64 slots of 64 KiB at fixed addresses, and a separate
//     table page (never remapped) whose word s is the pass that last
//     completed slot s. Per slot s of pass g: munmap the slot, mmap a fresh
//     anonymous 64 KiB at the same address (MAP_FIXED_NOREPLACE, so nothing
//     of the Go runtime that took the hole meanwhile is ever clobbered), on
//     each of its 16 pages write g at offset 0, then s at offset 8, then g at
//     offset 4088, and finally table[s] = g. Invariant: the table reads g+1
//     for slots [0,k) and g for slots [k,64) (k = 0 when the table is
//     uniform, then g+1 is the table value plus one); every slot other than
//     k is mapped and each of its pages reads (table[s], s, table[s]); slot
//     k is one of: old, every page (g, k, g); absent (between munmap and
//     mmap, the only slot that may be absent); or fresh, with pages [0,j)
//     reading (g+1, k, g+1), page j holding a prefix of its three writes and
//     zeros after it, and pages (j,16) all zero. A snapshot that took a slot
//     before a remap and the table after it (or the reverse) breaks this.
//
// A snapshot whose memory was not all taken at one instant of the process
// (a page copied before the freeze and not re-copied after a later write,
// a DONTNEED or a remap) breaks these invariants; that is what the e2e test
// checks (tests/e2e/churn.rs).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"corpus/internal/oracle"
)

const (
	pageSize = 4096
	// lastStampOff is the offset of the second stamp of a page (its last 8 bytes).
	lastStampOff = pageSize - 8
	ringSlots    = 64
	slotLen      = 64 << 10
	ringLen      = ringSlots * slotLen
	// ringHint is where the ring is placed: far below the libraries and the
	// kernel's top-down mmap area, and off the Go heap's arena hints
	// (i<<40 | 0xc000000000), so a hole left by munmap is unlikely to be
	// handed to anyone else before the slot is mapped again.
	ringHint = 0x2a0000000000
	// mapFixedNoreplace is MAP_FIXED_NOREPLACE (Linux 4.17), missing from package syscall.
	mapFixedNoreplace = 0x100000
)

var (
	// heapRegion keeps the Go heap buffer live for the life of the process.
	heapRegion []byte
	// firstPass counts the writers that have not completed their first pass.
	firstPass sync.WaitGroup
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "churn: "+format+"\n", args...)
	os.Exit(1)
}

func mmapAnon(length int) []byte {
	b, err := syscall.Mmap(-1, 0, length, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fail("mmap %d bytes: %v", length, err)
	}
	return b
}

func addrOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(&b[0]))
}

// stampPage writes gen at the page's first and then its last 8 bytes.
func stampPage(page []byte, gen uint64) {
	binary.LittleEndian.PutUint64(page[0:8], gen)
	binary.LittleEndian.PutUint64(page[lastStampOff:pageSize], gen)
}

// seqWriter stamps every page of region in order, pass after pass.
func seqWriter(region []byte) {
	for gen := uint64(1); ; gen++ {
		for off := 0; off+pageSize <= len(region); off += pageSize {
			stampPage(region[off:off+pageSize], gen)
		}
		if gen == 1 {
			firstPass.Done()
		}
	}
}

// dontneedWriter drops each page (it reads as zero until written again) and
// stamps it, pass after pass.
func dontneedWriter(region []byte) {
	for gen := uint64(1); ; gen++ {
		for off := 0; off+pageSize <= len(region); off += pageSize {
			page := region[off : off+pageSize]
			if err := syscall.Madvise(page, syscall.MADV_DONTNEED); err != nil {
				fail("madvise(MADV_DONTNEED) at 0x%x: %v", addrOf(page), err)
			}
			stampPage(page, gen)
		}
		if gen == 1 {
			firstPass.Done()
		}
	}
}

func rawMmap(addr uintptr, length uintptr, flags uintptr) (uintptr, syscall.Errno) {
	r, _, errno := syscall.Syscall6(syscall.SYS_MMAP, addr, length,
		syscall.PROT_READ|syscall.PROT_WRITE, flags, ^uintptr(0), 0)
	return r, errno
}

// bytesAt views length bytes at addr, a mapping made outside the Go heap
// (the garbage collector neither scans nor moves it). The uintptr is
// reinterpreted through memory rather than converted, which is what vet's
// unsafeptr check accepts for addresses returned by a raw mmap.
func bytesAt(addr uintptr, length int) []byte {
	p := *(*unsafe.Pointer)(unsafe.Pointer(&addr))
	return unsafe.Slice((*byte)(p), length)
}

// remapWriter replaces the ring's slots one by one with fresh mappings,
// stamps them and records each completed slot in table.
func remapWriter(ring uintptr, table []byte) {
	for gen := uint64(1); ; gen++ {
		for s := uintptr(0); s < ringSlots; s++ {
			addr := ring + s*slotLen
			if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, addr, slotLen, 0); errno != 0 {
				fail("munmap slot %d at 0x%x: %v", s, addr, errno)
			}
			got, errno := rawMmap(addr, slotLen, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapFixedNoreplace)
			if errno != 0 || got != addr {
				fail("mmap slot %d at 0x%x: got 0x%x, %v (another mapping took the hole?)", s, addr, got, errno)
			}
			slot := bytesAt(got, slotLen)
			for off := 0; off < slotLen; off += pageSize {
				binary.LittleEndian.PutUint64(slot[off:off+8], gen)
				binary.LittleEndian.PutUint64(slot[off+8:off+16], uint64(s))
				binary.LittleEndian.PutUint64(slot[off+lastStampOff:off+pageSize], gen)
			}
			binary.LittleEndian.PutUint64(table[s*8:s*8+8], gen)
		}
		if gen == 1 {
			firstPass.Done()
		}
	}
}

func main() {
	mb := flag.Int("mb", 16, "MiB in each of the seq, dontneed and heap regions")
	flag.Parse()
	if *mb < 1 || *mb > 1<<12 {
		fail("-mb must be in 1..4096")
	}
	size := *mb << 20

	seq := mmapAnon(size)
	dontneed := mmapAnon(size)
	// One page more than needed, so a page-aligned window always fits.
	heapRegion = make([]byte, size+pageSize)
	skip := (pageSize - int(addrOf(heapRegion)%pageSize)) % pageSize
	heap := heapRegion[skip : skip+size]

	ring, errno := rawMmap(ringHint, ringLen, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapFixedNoreplace)
	if errno != 0 {
		fail("mmap the remap ring at 0x%x: %v", uintptr(ringHint), errno)
	}
	table := mmapAnon(pageSize)

	firstPass.Add(4)
	go seqWriter(seq)
	go dontneedWriter(dontneed)
	go seqWriter(heap)
	go remapWriter(ring, table)
	firstPass.Wait()

	fmt.Printf("REGION seq 0x%x %d\n", addrOf(seq), len(seq))
	fmt.Printf("REGION dontneed 0x%x %d\n", addrOf(dontneed), len(dontneed))
	fmt.Printf("REGION heap 0x%x %d\n", addrOf(heap), len(heap))
	fmt.Printf("REGION remap 0x%x %d\n", ring, ringLen)
	fmt.Printf("REGION remaptable 0x%x %d\n", addrOf(table), len(table))
	// The writers never park, so READY does not wait for a settled state.
	oracle.ReadyUnsettled()
	select {}
}
