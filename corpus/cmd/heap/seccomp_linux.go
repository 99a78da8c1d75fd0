package main

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"
)

// installFilter puts every thread of the process under a seccomp filter,
// for the capture tests of seccomp-confined targets:
//
//	kill-userfaultfd  kill the process on userfaultfd, allow everything else
//	deny-unrelated    fail acct(2) with EPERM, allow everything else
func installFilter(mode string) error {
	const (
		ldAbsW  = 0x20
		jeqK    = 0x15
		retK    = 0x06
		allow   = 0x7fff0000
		kill    = 0x80000000
		errno   = 0x00050000
		archX86 = 0xC000003E
	)
	type insn struct {
		code   uint16
		jt, jf uint8
		k      uint32
	}
	var nr, action uint32
	switch mode {
	case "kill-userfaultfd":
		nr, action = 323, kill
	case "deny-unrelated":
		nr, action = 163, errno|uint32(syscall.EPERM)
	default:
		return fmt.Errorf("unknown -seccomp %q", mode)
	}
	prog := []insn{
		{ldAbsW, 0, 0, 4},     // A = arch
		{jeqK, 0, 3, archX86}, // not x86-64: allow
		{ldAbsW, 0, 0, 0},     // A = nr
		{jeqK, 0, 1, nr},      // the syscall: action
		{retK, 0, 0, action},
		{retK, 0, 0, allow},
	}
	fprog := struct {
		len    uint16
		filter *insn
	}{uint16(len(prog)), &prog[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, 38 /* PR_SET_NO_NEW_PRIVS */, 1, 0, 0, 0, 0); e != 0 {
		return e
	}
	// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, prog)
	if _, _, e := syscall.RawSyscall(317, 1, 1, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}
