//! Test helpers: small Go programs (built by `rdlv-testkit`), waiting for
//! their `READY` line, a pattern target, capture options.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command};

/// Builds `source` as a Go main package with the default Go release; returns the binary.
pub fn go_program(name: &str, source: &str) -> PathBuf {
    go_program_with(name, source, &[])
}

/// Like [`go_program`] with extra `go build` flags.
pub fn go_program_with(name: &str, source: &str, flags: &[&str]) -> PathBuf {
    rdlv_testkit::build_program(rdlv_testkit::DEFAULT_GO, name, source, flags)
}

/// Reads the child's stdout until a line starting with `READY`; returns the
/// rest of that line.
pub fn wait_ready(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("child stdout must be piped");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "child exited before READY");
        if let Some(rest) = line.strip_prefix("READY") {
            let rest = rest.trim().to_string();
            // Keep the pipe open (dropping it would SIGPIPE the child on its next print).
            std::mem::forget(reader);
            return rest;
        }
    }
}

/// A `/proc/PID/maps` entry of an anonymous mapping, for planning tests.
pub fn maps_entry(start: u64, end: u64, perms: &str, flags: &[&str]) -> crate::proc::MapsEntry {
    crate::proc::MapsEntry {
        start,
        end,
        perms: perms.into(),
        offset: 0,
        dev: "00:00".into(),
        inode: 0,
        path: String::new(),
        vm_flags: flags.iter().map(|s| s.to_string()).collect(),
        anonymous_bytes: None,
    }
}

/// A Go program holding 32 MiB of a known pattern and a ticking counter;
/// prints `READY PID PAYLOAD_ADDR TICKS_ADDR`.
pub const PATTERN_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

var payload []byte
var ticks atomic.Uint64

func main() {
	payload = make([]byte, 32<<20)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	copy(payload, "RDLV-PATTERN")
	go func() {
		for {
			ticks.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	fmt.Printf("READY %d 0x%x 0x%x\n", os.Getpid(), uintptr(unsafe.Pointer(&payload[0])), uintptr(unsafe.Pointer(&ticks)))
	select {}
}
"#;

/// The bytes [`PATTERN_PROGRAM`]'s payload holds.
pub fn expected_payload() -> Vec<u8> {
    let mut data: Vec<u8> = (0..32usize << 20)
        .map(|i| (i.wrapping_mul(7) + 3) as u8)
        .collect();
    data[..12].copy_from_slice(b"RDLV-PATTERN");
    data
}

/// Reads a word of a live process's memory.
pub fn read_u64(pid: u32, addr: u64) -> u64 {
    let mut value = [0u8; 8];
    let file = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut value, addr).unwrap();
    u64::from_ne_bytes(value)
}

/// A running [`PATTERN_PROGRAM`], killed on drop.
pub struct PatternTarget {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// Address of the payload's first byte.
    pub payload: u64,
    /// Address of the tick counter.
    pub ticks: u64,
}

impl Drop for PatternTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds and starts [`PATTERN_PROGRAM`].
pub fn start_pattern_target() -> PatternTarget {
    start_pattern_built(go_program("pattern", PATTERN_PROGRAM))
}

/// Starts a build of [`PATTERN_PROGRAM`] (e.g. as a PIE).
pub fn start_pattern_built(exe: PathBuf) -> PatternTarget {
    let mut child = Command::new(exe)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_ready(&mut child);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    PatternTarget {
        pid: fields[0].parse().unwrap(),
        payload: parse(fields[1]),
        ticks: parse(fields[2]),
        child,
    }
}

/// Capture options for tests: `method`, 5 s budget, executable embedded, no progress.
pub fn capture_options(
    pid: u32,
    output: &std::path::Path,
    method: crate::capture::Requested,
) -> crate::capture::Options {
    crate::capture::Options {
        pid,
        output: output.to_string_lossy().into_owned(),
        force: false,
        max_pause: std::time::Duration::from_secs(5),
        embed_exe: true,
        level: 1,
        threads: 0,
        progress: false,
        method,
        cow_max_extra: crate::cow::DEFAULT_MAX_EXTRA,
        encryption: None,
        redact: None,
    }
}

/// Maps `len` bytes of private anonymous memory in this process (the test
/// unmaps it).
pub fn map_anonymous(len: usize) -> *mut libc::c_void {
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "mmap of {len} bytes");
    base
}

/// Kills and reaps a child when dropped, also when an assertion fails.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
