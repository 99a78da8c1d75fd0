//! Robustness: `rdlv` on hostile snapshots (CONTRACT: "Never a panic, a hang
//! or an unbounded allocation on any input file").
//!
//! A real capture of the `values` corpus program is taken apart (metadata,
//! memory, embedded executable) and written again with
//! `rdlv_format::SnapshotWriter`, with one kind of damage per test: so every
//! container checksum is valid and the damage reaches the analyzer's own
//! parsing of the Go runtime, the pclntab, DWARF and values. Every command
//! of the command line and of the REPL then runs on each hostile snapshot
//! under a watchdog, and must end with exit code 0, 1 or 3, print no panic,
//! use less than [`COMMAND_TIMEOUT`] of CPU and stay under [`MAX_RSS_KIB`].
//!
//! Mutations come from a fixed-seed xorshift generator, so a failure names
//! its class, variant label and seed. Each run captures a fresh baseline (a
//! live process: other addresses), so the same seed damages slightly
//! different bytes from run to run; the failing snapshot itself is kept
//! under `target/robust-failures/` as the exact reproduction.
//! `RDLV_ROBUST_ROUNDS=N` changes the number of
//! random variants per class (default [`DEFAULT_ROUNDS`]);
//! `RDLV_ROBUST_SEED=N` runs only seed N of each class and keeps its
//! snapshot under `target/robust-failures/` (to inspect one variant);
//! `RDLV_ROBUST_FULL=1` runs every standalone command on every variant
//! (by default each variant runs the whole REPL script plus
//! [`STANDALONE_PER_VARIANT`] standalone commands, rotating, so every
//! standalone command runs a few times per class).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdlv_e2e::{rdlv_path, target_dirs, Target, Variant, DEFAULT_GO};
use rdlv_format::{
    FileRole, MappingCapture, MemoryRegion, Metadata, Snapshot, SnapshotWriter, WriteOptions,
};

/// CPU time (user + system, all threads) a single `rdlv` invocation may
/// use: more is a hang. CPU rather than wall time, so a loaded machine (other
/// test binaries, other builds) does not turn slowness into false hangs.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Wall-clock backstop for an invocation that sleeps or blocks instead of computing.
const WALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs slower than this are listed (not failed): a hang in the making.
const SLOW_RUN: Duration = Duration::from_secs(5);

/// Peak resident set allowed to one `rdlv` invocation: 1 GiB, in KiB. The
/// hostile snapshots hold about 2 MiB of memory and a 3 MiB executable, so
/// anything near this is an allocation sized by a damaged length.
const MAX_RSS_KIB: u64 = 1 << 20;

/// Output beyond this many bytes on stdout counts as unbounded.
const MAX_STDOUT_BYTES: u64 = 256 << 20;

/// Random variants per mutation class unless `RDLV_ROBUST_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: u64 = 30;

/// Standalone commands run on each variant (rotating through the list)
/// besides the whole REPL script, unless `RDLV_ROBUST_FULL=1`.
const STANDALONE_PER_VARIANT: usize = 2;

/// Failing snapshots kept per class under `target/robust-failures/`: one
/// per distinct problem, at most this many.
const KEPT_FAILURES_PER_CLASS: usize = 8;

/// Cap on the memory a baseline may hold (the corpus program is small).
const MAX_BASELINE_MEMORY: u64 = 512 << 20;

/// Values planted where lengths, counts and pointers are read.
const HUGE_VALUES: &[u64] = &[
    0x7fff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0x0000_0100_0000_0000,
    0x0000_0000_ffff_ffff,
    0x0000_0000_8000_0000,
    0x0000_0000_0100_0000,
    0xffff_ffff_ffff_fff8,
];

/// `AT_ENTRY` in the auxiliary vector.
const AT_ENTRY: u64 = 9;

// ---------------------------------------------------------------------------
// Deterministic randomness

/// xorshift64*: small, deterministic, good enough to choose damage.
struct Rng(u64);

impl Rng {
    fn new(class: &str, seed: u64) -> Rng {
        // Mix the class name in so classes with equal seeds differ.
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        for b in class.bytes() {
            state = (state ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(state | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A value a hostile word could hold: huge, tiny, a pointer into
    /// `anchor`'s neighbourhood, or pure noise.
    fn hostile_word(&mut self, anchor: u64) -> u64 {
        match self.below(6) {
            0 | 1 => *self.pick(HUGE_VALUES),
            2 => 0,
            3 => anchor.wrapping_add(self.below(1 << 16) & !7),
            4 => self.below(64),
            _ => self.next_u64(),
        }
    }
}

// ---------------------------------------------------------------------------
// The baseline capture, taken apart

/// Captured memory as owned, mutable regions (contiguous index ranges merged).
#[derive(Clone)]
struct Memory {
    regions: Vec<(u64, Vec<u8>)>,
}

impl Memory {
    /// The bytes at `addr..addr+len` when one region holds all of them.
    fn slice_mut(&mut self, addr: u64, len: u64) -> Option<&mut [u8]> {
        let idx = self
            .regions
            .partition_point(|(start, _)| *start <= addr)
            .checked_sub(1)?;
        let (start, data) = &mut self.regions[idx];
        let off = usize::try_from(addr - *start).ok()?;
        let end = off.checked_add(usize::try_from(len).ok()?)?;
        data.get_mut(off..end)
    }

    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        let bytes = self.slice_mut(addr, 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn write_u64(&mut self, addr: u64, value: u64) -> bool {
        match self.slice_mut(addr, 8) {
            Some(bytes) => {
                bytes.copy_from_slice(&value.to_le_bytes());
                true
            }
            None => false,
        }
    }

    /// Captured (start, end) pieces that fall inside `lo..hi`.
    fn pieces_within(&self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        self.regions
            .iter()
            .filter_map(|(start, data)| {
                let s = (*start).max(lo);
                let e = (start + data.len() as u64).min(hi);
                (s < e).then_some((s, e))
            })
            .collect()
    }

    /// Randomizes `permille`/1000 of the bytes of `addr..addr+len`.
    fn scramble(&mut self, rng: &mut Rng, addr: u64, len: u64, permille: u64) {
        for (s, e) in self.pieces_within(addr, addr.saturating_add(len)) {
            let count = ((e - s) * permille / 1000).max(1);
            for _ in 0..count {
                let at = s + rng.below(e - s);
                if let Some(b) = self.slice_mut(at, 1) {
                    b[0] = rng.next_u64() as u8;
                }
            }
        }
    }

    /// A random 8-aligned address of a captured word within the pieces.
    fn random_word(rng: &mut Rng, pieces: &[(u64, u64)]) -> Option<u64> {
        let total: u64 = pieces.iter().map(|(s, e)| (e - s) / 8).sum();
        if total == 0 {
            return None;
        }
        let mut n = rng.below(total);
        for (s, e) in pieces {
            let words = (e - s) / 8;
            if n < words {
                return Some(((s + 7) & !7) + n * 8).filter(|a| a + 8 <= *e);
            }
            n -= words;
        }
        None
    }
}

/// Everything needed to write the baseline again, plus where the runtime's
/// structures are.
struct Baseline {
    label: String,
    meta: Metadata,
    memory: Memory,
    exe: Vec<u8>,
    exe_name: String,
    /// Addresses of every `runtime.g` in `allgs`, and the size of one.
    g_addrs: Vec<u64>,
    g_size: u64,
    /// Address of the `allgs` slice header (ptr, len, cap) and of `allglen`.
    allgs_header: Option<u64>,
    allglen: Option<u64>,
    /// The mapping holding the heap (goroutines and their stacks live there).
    heap: (u64, u64),
    /// Writable mappings of the executable (.data, .bss and the anonymous tail).
    data: Vec<(u64, u64)>,
    /// `main.*` package variables in memory: (address, size).
    globals: Vec<(u64, u64)>,
    /// File ranges of interesting sections of the executable: (name, offset, size).
    exe_sections: Vec<(String, u64, u64)>,
    /// The goroutine parked in `main.parkLocals` and that frame's index in `bt`.
    park_goid: u64,
    park_frame: usize,
    /// A thread id of the capture.
    first_tid: u32,
}

/// One hostile snapshot to write: the baseline's parts, damaged.
struct Hostile {
    label: String,
    meta: Metadata,
    memory: Memory,
    /// `None`: no embedded executable at all.
    exe: Option<Vec<u8>>,
}

impl Hostile {
    fn from(base: &Baseline, label: String) -> Hostile {
        Hostile {
            label,
            meta: base.meta.clone(),
            memory: base.memory.clone(),
            exe: Some(base.exe.clone()),
        }
    }

    fn write(&self, path: &Path, exe_name: &str) {
        let file = std::fs::File::create(path).expect("create hostile snapshot");
        let options = WriteOptions {
            level: 1,
            threads: 1,
            ..WriteOptions::default()
        };
        let mut writer = SnapshotWriter::new(file, options).expect("snapshot writer");
        writer.write_metadata(&self.meta).expect("write metadata");
        let regions: Vec<MemoryRegion<'_>> = self
            .memory
            .regions
            .iter()
            .map(|(addr, data)| MemoryRegion { addr: *addr, data })
            .collect();
        writer
            .write_memory(&regions, &mut |_| {})
            .expect("write memory");
        if let Some(exe) = &self.exe {
            writer
                .write_file(FileRole::Executable, exe_name, exe)
                .expect("write executable");
        }
        writer.finish().expect("finish snapshot");
    }
}

/// Every indexed range of the snapshot, adjacent ones merged. Zero ranges
/// read as zeros; the writer elides them again when the variant is written.
fn read_memory(snap: &Snapshot) -> Memory {
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for r in snap.memory_ranges() {
        match spans.last_mut() {
            Some((_, end)) if *end == r.addr => *end += r.len,
            _ => spans.push((r.addr, r.addr + r.len)),
        }
    }
    let total: u64 = spans.iter().map(|(s, e)| e - s).sum();
    assert!(
        total <= MAX_BASELINE_MEMORY,
        "baseline captured {total} bytes: too big for mutation tests"
    );
    let regions = spans
        .into_iter()
        .map(|(start, end)| {
            let mut data = vec![0u8; (end - start) as usize];
            snap.read_memory(start, &mut data)
                .unwrap_or_else(|e| panic!("read baseline memory at {start:#x}: {e}"));
            (start, data)
        })
        .collect();
    Memory { regions }
}

/// `HOME` and XDG directories of every `rdlv` run: under the target
/// directory, so the user's configuration never leaks in and nothing is left in /tmp.
fn home_dir() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let home = target_dirs().0.join("robust-home");
        std::fs::create_dir_all(&home).expect("create robust-home");
        home
    })
}

/// The baseline of a Go release and build variant, captured once per test process.
fn baseline(go: &str, variant: Variant) -> &'static Baseline {
    type Baselines = Mutex<Vec<((String, Variant), &'static Baseline)>>;
    static BASELINES: Baselines = Mutex::new(Vec::new());
    // Held while capturing: one capture at a time (the machine is small and
    // the corpus build cache is shared), and each baseline is made once.
    let mut all = BASELINES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, b)) = all.iter().find(|(k, _)| k.0 == go && k.1 == variant) {
        return b;
    }
    // Leaked on purpose: baselines live as long as the test process.
    let made: &'static Baseline = Box::leak(Box::new(make_baseline(go, variant)));
    all.push(((go.to_string(), variant), made));
    made
}

/// Captures the `values` program built with Go `go` as `variant` and takes
/// the snapshot apart.
fn make_baseline(go: &str, variant: Variant) -> Baseline {
    let label = format!("go{go}-{}", variant.dir_name());
    // The program is killed at the end of the block: the snapshot is all we need.
    let snap_file = {
        let target = Target::start("values", go, variant, &[]);
        target.capture(&[])
    };
    let path = snap_file.path();
    let snap = Snapshot::open(path).expect("open baseline snapshot");
    let meta = snap.metadata().clone();
    let memory = read_memory(&snap);
    let exe_info = snap
        .embedded_files()
        .into_iter()
        .find(|f| f.role == FileRole::Executable)
        .expect("baseline embeds its executable");
    let exe = snap
        .embedded_file(FileRole::Executable)
        .expect("read embedded executable")
        .expect("embedded executable present");

    // Where the runtime's structures are, as the analyzer itself finds them.
    let target = rdlv_analyze::Target::open(path, None).expect("analyzer opens the baseline");
    let runtime = rdlv_analyze::runtime::Runtime::new(&target).expect("runtime model");
    let g_addrs = runtime.all_g_addrs().expect("allgs of the baseline");
    let g_size = runtime.layout.g.size.clamp(64, 4096);
    let (allgs_ptr, allgs_len) = runtime.allgs().expect("allgs");
    let allglen = runtime.global("runtime.allglen");
    let first_g = *g_addrs.first().expect("at least one goroutine");
    let heap = meta
        .mappings
        .iter()
        .find(|m| m.start <= first_g && first_g < m.end)
        .map(|m| (m.start, m.end))
        .expect("a mapping holds the goroutines");
    let exe_path = meta.process.exe_path.trim_end_matches(" (deleted)");
    let mut data: Vec<(u64, u64)> = Vec::new();
    for (i, m) in meta.mappings.iter().enumerate() {
        let is_exe = m.path == exe_path;
        // The anonymous mapping right after the executable's is the rest of .bss.
        let after_exe = i > 0
            && meta.mappings[i - 1].path == exe_path
            && meta.mappings[i - 1].end == m.start
            && m.path.is_empty();
        if m.perms.starts_with("rw") && (is_exe || after_exe) {
            data.push((m.start, m.end));
        }
    }
    assert!(
        !data.is_empty(),
        "no writable executable mapping in the baseline"
    );
    let mut scratch = memory.clone();
    let allgs_header = runtime
        .global("runtime.allgs")
        .or_else(|| find_slice_header(&mut scratch, &data, allgs_ptr, allgs_len));
    let bias = target.bias();
    let mut globals: Vec<(u64, u64)> = target
        .binary()
        .symbols()
        .iter()
        .filter(|(name, sym)| name.starts_with("main.") && sym.size > 0)
        .map(|(_, sym)| (sym.addr.wrapping_add(bias), sym.size))
        .filter(|(addr, _)| data.iter().any(|(s, e)| s <= addr && addr < e))
        .collect();
    globals.sort_unstable();
    let exe_sections = [
        ".gopclntab",
        ".typelink",
        ".itablink",
        ".rodata",
        ".noptrdata",
        ".data",
        ".go.buildinfo",
        ".symtab",
        ".strtab",
        ".debug_info",
        ".debug_abbrev",
        ".debug_line",
        ".debug_loclists",
        ".debug_frame",
    ]
    .iter()
    .filter_map(|name| {
        let s = target.binary().section_info(name)?;
        (s.sh_type != 8 && s.size > 0).then(|| (name.to_string(), s.file_offset, s.size))
    })
    .collect();
    drop(target);

    // The goroutine parked in main.parkLocals, and its frame.
    let out = run_bounded(&[
        "goroutines".into(),
        path.into(),
        "--format".into(),
        "json".into(),
    ]);
    assert_eq!(
        out.exit,
        Exit::Code(0),
        "baseline goroutines: {}",
        out.stderr
    );
    let goroutines: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("goroutines JSON of the baseline");
    let park_goid = goroutines
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| {
            g["frames"]
                .as_array()
                .is_some_and(|f| f.iter().any(|fr| fr["func"] == "main.parkLocals"))
        })
        .and_then(|g| g["id"].as_u64())
        .expect("a goroutine in main.parkLocals");
    let out = run_bounded(&[
        "bt".into(),
        path.into(),
        park_goid.to_string().into(),
        "--format".into(),
        "json".into(),
    ]);
    assert_eq!(out.exit, Exit::Code(0), "baseline bt: {}", out.stderr);
    let frames: serde_json::Value = serde_json::from_str(&out.stdout).expect("bt JSON");
    let park_frame = frames
        .as_array()
        .and_then(|f| f.iter().position(|fr| fr["func"] == "main.parkLocals"))
        .expect("main.parkLocals frame in bt");
    let first_tid = meta.threads.first().map_or(1, |t| t.tid);
    let baseline = Baseline {
        label,
        meta,
        memory,
        exe,
        exe_name: exe_info.name,
        g_addrs,
        g_size,
        allgs_header,
        allglen,
        heap,
        data,
        globals,
        exe_sections,
        park_goid,
        park_frame,
        first_tid,
    };
    check_rewrite_is_faithful(&baseline, path);
    baseline
}

/// Finds a `(ptr, len, cap)` slice header with this ptr and len in the data mappings.
fn find_slice_header(memory: &mut Memory, data: &[(u64, u64)], ptr: u64, len: u64) -> Option<u64> {
    let pieces: Vec<(u64, u64)> = data
        .iter()
        .flat_map(|&(lo, hi)| memory.pieces_within(lo, hi))
        .collect();
    for (s, e) in pieces {
        let mut at = (s + 7) & !7;
        while at + 24 <= e {
            if memory.read_u64(at) == Some(ptr) && memory.read_u64(at + 8) == Some(len) {
                return Some(at);
            }
            at += 8;
        }
    }
    None
}

/// The rewrite without damage must analyze exactly like the capture: else
/// the hostile variants would test the rewriting, not the analyzer.
fn check_rewrite_is_faithful(base: &Baseline, original: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("copy.snap");
    Hostile::from(base, "identity".into()).write(&copy, &base.exe_name);
    for args in [
        vec!["goroutines", "--format", "json"],
        vec!["threads", "--format", "json"],
        vec!["print", "main.cfg", "--format", "json"],
    ] {
        let run = |snap: &Path| {
            let mut full: Vec<OsString> = vec![args[0].into(), snap.into()];
            full.extend(args[1..].iter().map(OsString::from));
            run_bounded(&full)
        };
        let (a, b) = (run(original), run(&copy));
        // A stripped binary has no DWARF: `print` answers 1 on both.
        let must_succeed = args[0] != "print" || !base.label.ends_with("stripped");
        if must_succeed {
            assert_eq!(
                a.exit,
                Exit::Code(0),
                "{args:?} on the capture: {}",
                a.stderr
            );
        }
        assert_eq!(a.exit, b.exit, "{args:?} on the rewrite: {}", b.stderr);
        assert_eq!(a.stdout, b.stdout, "{args:?}: rewrite analyzes differently");
    }
}

// ---------------------------------------------------------------------------
// Running rdlv under a watchdog

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
    OverMemory,
}

struct Outcome {
    exit: Exit,
    stdout: String,
    stdout_bytes: u64,
    stderr: String,
    elapsed: Duration,
    max_rss_kib: u64,
}

/// Reads a pipe to the end, keeping the first `keep` bytes and counting all.
fn drain(
    mut pipe: impl Read + Send + 'static,
    keep: usize,
) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = [0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    if kept.len() < keep {
                        let take = n.min(keep - kept.len());
                        kept.extend_from_slice(&buf[..take]);
                    }
                }
            }
        }
        (kept, total)
    })
}

/// User plus system CPU time of a live process, from `/proc/PID/stat`.
fn cpu_time(pid: i32) -> Duration {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesized command name; utime and stime are 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / ticks_per_s)
}

fn vm_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `rdlv ARGS` with a timeout and a resident-memory ceiling.
fn run_bounded(args: &[OsString]) -> Outcome {
    let home = home_dir();
    let mut child = Command::new(rdlv_path())
        .args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("HOME", home)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rdlv");
    let pid = child.id() as i32;
    let out = drain(child.stdout.take().expect("stdout pipe"), 1 << 20);
    let err = drain(child.stderr.take().expect("stderr pipe"), 64 << 10);
    let start = Instant::now();
    let mut killed: Option<Exit> = None;
    let mut peak_polled = 0u64;
    let (status, rusage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if killed.is_some() { 0 } else { libc::WNOHANG };
        // SAFETY: pid is our own unreaped child; status and rusage are valid out-pointers.
        let rc = unsafe { libc::wait4(pid, &mut status, flags, &mut rusage) };
        if rc == pid {
            break (status, rusage);
        }
        assert!(
            rc == 0 || killed.is_some(),
            "wait4({pid}): {}",
            std::io::Error::last_os_error()
        );
        if killed.is_none() {
            let rss = vm_rss_kib(pid);
            peak_polled = peak_polled.max(rss);
            let verdict = if rss > MAX_RSS_KIB {
                Some(Exit::OverMemory)
            } else if start.elapsed() > WALL_TIMEOUT || cpu_time(pid) > COMMAND_TIMEOUT {
                Some(Exit::TimedOut)
            } else {
                None
            };
            if let Some(v) = verdict {
                // SAFETY: kill(2) on our own child, not yet reaped (so the pid is still ours).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = Some(v);
                continue;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let elapsed = start.elapsed();
    // The child is reaped: std's handle must not wait or kill it again.
    std::mem::forget(child);
    let (stdout, stdout_bytes) = out.join().expect("stdout reader");
    let (stderr, _) = err.join().expect("stderr reader");
    let max_rss_kib = (rusage.ru_maxrss.max(0) as u64).max(peak_polled);
    let exit = match killed {
        Some(v) => v,
        None if libc::WIFEXITED(status) => Exit::Code(libc::WEXITSTATUS(status)),
        None if libc::WIFSIGNALED(status) => Exit::Signal(libc::WTERMSIG(status)),
        None => Exit::Signal(-1),
    };
    Outcome {
        exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed,
        max_rss_kib,
    }
}

/// What is wrong with an outcome, if anything.
fn verdict(out: &Outcome) -> Option<String> {
    let panic_line = out
        .stderr
        .lines()
        .find(|l| l.contains("panicked at") || l.contains("internal error"))
        .map(str::to_string);
    let problem = match out.exit {
        Exit::Code(0 | 1 | 3) if panic_line.is_none() => None,
        Exit::Code(0 | 1 | 3) => Some("panic message on stderr".to_string()),
        Exit::Code(101) => Some("panic (exit 101)".to_string()),
        Exit::Code(c) => Some(format!("exit code {c}")),
        Exit::Signal(s) => Some(format!("killed by signal {s}")),
        Exit::TimedOut => Some(format!(
            "hang: over {COMMAND_TIMEOUT:?} of CPU or {WALL_TIMEOUT:?} of wall time"
        )),
        Exit::OverMemory => Some(format!("resident memory over {} MiB", MAX_RSS_KIB >> 10)),
    };
    let problem = problem.or_else(|| {
        (out.max_rss_kib > MAX_RSS_KIB).then(|| format!("peak RSS {} MiB", out.max_rss_kib >> 10))
    });
    let problem = problem.or_else(|| {
        (out.stdout_bytes > MAX_STDOUT_BYTES)
            .then(|| format!("unbounded output: {} bytes", out.stdout_bytes))
    });
    problem.map(|p| match panic_line {
        Some(line) => format!("{p}: {line}"),
        None => {
            let tail: String = out
                .stderr
                .lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            format!("{p} (stderr: {tail})")
        }
    })
}

// ---------------------------------------------------------------------------
// The commands every hostile snapshot gets

/// Standalone commands: `rdlv WORDS[0] SNAP WORDS[1..]`.
fn standalone_commands(base: &Baseline) -> Vec<Vec<String>> {
    let g = base.park_goid.to_string();
    let f = base.park_frame.to_string();
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let mut commands: Vec<Vec<String>> = [
        "info",
        "info --format json",
        "goroutines",
        "goroutines --format json",
        "goroutines --format go",
        "goroutines --group",
        "goroutines -u --system -l",
        "bt 1",
        "threads",
        "threads --stacks --format json",
        "sched",
        "sched --format json",
        "print main.cfg",
        "print main.ring --format json",
        "print main.list",
        "print main.bigText --format json",
        "vars main",
        // The heap walks: spans, types and the object graph from hostile memory.
        "heap",
        "heap --by root --format json",
        "heap --path main.cfg",
        "leaks --format json",
        "waits --format json",
    ]
    .iter()
    .map(|s| words(s))
    .collect();
    commands.push(words(&format!("bt {g} --format json")));
    commands.push(words(&format!("locals --goroutine {g} --frame {f}")));
    commands.push(words(&format!(
        "args --goroutine {g} --frame {f} --format json"
    )));
    commands.push(words(&format!("print words --goroutine {g} --frame {f}")));
    commands
}

/// One REPL run covering the vocabulary: `rdlv SNAP -c CMD ...`.
fn repl_script(base: &Baseline) -> Vec<String> {
    let g = base.park_goid;
    let f = base.park_frame;
    let tid = base.first_tid;
    [
        "info".to_string(),
        "goroutines".into(),
        "goroutines --group".into(),
        "goroutines --format go".into(),
        "goroutines -g -s -l --system --format json".into(),
        "bt 1".into(),
        format!("goroutine {g}"),
        "bt".into(),
        format!("frame {f}"),
        "locals".into(),
        "args".into(),
        "print lookup".into(),
        "print --format json opts".into(),
        "up".into(),
        "down 2".into(),
        "regs".into(),
        "list".into(),
        "print main.cfg".into(),
        "print --format json main.selfLoop".into(),
        "print len(main.bigText)".into(),
        "print main.cfg.Tags[1]".into(),
        "print *main.cfgPtr".into(),
        "print main.cfg.Limits[\"rps\"]".into(),
        "vars main".into(),
        "threads".into(),
        format!("thread {tid}"),
        "sched".into(),
        "funcs main.park".into(),
    ]
    .to_vec()
}

/// Name of the invocation that runs the whole REPL script.
const REPL_SCRIPT: &str = "repl -c <script>";

/// A failure found by a class, with its reproduction.
struct Failure {
    label: String,
    command: String,
    problem: String,
    kept: Option<PathBuf>,
}

/// Writes each hostile snapshot, runs the commands on it and returns every failure.
fn exercise(class: &str, base: &Baseline, hostiles: impl Iterator<Item = Hostile>) -> Vec<Failure> {
    let full = std::env::var_os("RDLV_ROBUST_FULL").is_some_and(|v| v != "0");
    let standalone = standalone_commands(base);
    let script = repl_script(base);
    let dir = tempfile::Builder::new()
        .prefix(&format!("rdlv-robust-{class}-"))
        .tempdir()
        .expect("tempdir");
    let keep_dir = target_dirs().0.join("robust-failures");
    let mut failures: Vec<Failure> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut runs = 0usize;
    let mut slowest = (Duration::ZERO, String::new());
    let mut peak_rss = 0u64;
    for (index, hostile) in hostiles.enumerate() {
        let snap = dir.path().join("hostile.snap");
        hostile.write(&snap, &base.exe_name);
        let mut invocations: Vec<(String, Vec<OsString>)> = Vec::new();
        let mut repl: Vec<OsString> = vec![snap.clone().into()];
        for c in &script {
            repl.push("-c".into());
            repl.push(c.into());
        }
        invocations.push((REPL_SCRIPT.to_string(), repl));
        let chosen: Vec<&Vec<String>> = if full {
            standalone.iter().collect()
        } else {
            (0..STANDALONE_PER_VARIANT)
                .map(|k| &standalone[(index * STANDALONE_PER_VARIANT + k) % standalone.len()])
                .collect()
        };
        for words in chosen {
            let mut args: Vec<OsString> = vec![words[0].clone().into(), snap.clone().into()];
            args.extend(words[1..].iter().map(OsString::from));
            invocations.push((words.join(" "), args));
        }
        let mut kept: Option<PathBuf> = None;
        for (name, args) in invocations {
            let out = run_bounded(&args);
            runs += 1;
            peak_rss = peak_rss.max(out.max_rss_kib);
            if out.elapsed > SLOW_RUN {
                eprintln!(
                    "robust {class}: slow run ({:?}): variant {} command `{name}`",
                    out.elapsed, hostile.label
                );
            }
            if out.elapsed > slowest.0 {
                slowest = (out.elapsed, format!("{} / {name}", hostile.label));
            }
            let Some(problem) = verdict(&out) else {
                continue;
            };
            // One bug tends to fail many variants: only its first occurrence
            // is bisected and kept.
            let first_of_its_kind = seen.insert(problem_key(&problem).to_string());
            let mut name = name;
            if name == REPL_SCRIPT && first_of_its_kind {
                // Which command of the script is it? The shortest failing
                // prefix of the script ends with it (earlier commands set the
                // goroutine and frame later ones use).
                for end in 1..=script.len() {
                    let mut args: Vec<OsString> = vec![snap.clone().into()];
                    for c in &script[..end] {
                        args.push("-c".into());
                        args.push(c.into());
                    }
                    let prefix = run_bounded(&args);
                    runs += 1;
                    if verdict(&prefix).is_some() {
                        name = format!("repl script up to -c '{}'", script[end - 1]);
                        break;
                    }
                }
            }
            if kept.is_none() && first_of_its_kind && seen.len() <= KEPT_FAILURES_PER_CLASS {
                let name = format!("{class}-{}.snap", file_label(&hostile.label));
                let path = keep_dir.join(name);
                if std::fs::create_dir_all(&keep_dir).is_ok() && std::fs::copy(&snap, &path).is_ok()
                {
                    kept = Some(path);
                }
            }
            failures.push(Failure {
                label: hostile.label.clone(),
                command: name,
                problem,
                kept: kept.clone(),
            });
        }
    }
    eprintln!(
        "robust {class} ({}): {runs} rdlv runs, {} failures, slowest {:?} ({}), peak RSS {} MiB",
        base.label,
        failures.len(),
        slowest.0,
        slowest.1,
        peak_rss >> 10
    );
    failures
}

/// The part of a problem that names the bug (not the variant's stderr).
fn problem_key(problem: &str) -> &str {
    problem.split(" (stderr:").next().unwrap_or(problem)
}

fn assert_no_failures(class: &str, failures: Vec<Failure>) {
    if failures.is_empty() {
        return;
    }
    // Group identical problems so one bug does not drown the others.
    let mut by_problem: BTreeMap<String, Vec<&Failure>> = BTreeMap::new();
    for f in &failures {
        by_problem
            .entry(problem_key(&f.problem).to_string())
            .or_default()
            .push(f);
    }
    let mut report = format!(
        "{class}: {} failing rdlv runs, {} distinct problems\n",
        failures.len(),
        by_problem.len()
    );
    for (problem, list) in &by_problem {
        let first = list[0];
        report.push_str(&format!(
            "- {problem}\n    {} runs, e.g. variant {} command `{}`{}\n",
            list.len(),
            first.label,
            first.command,
            first
                .kept
                .as_ref()
                .map(|p| format!(" (snapshot kept at {})", p.display()))
                .unwrap_or_default()
        ));
    }
    panic!("{report}");
}

fn rounds() -> u64 {
    std::env::var("RDLV_ROBUST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

// ---------------------------------------------------------------------------
// Mutation classes

/// (a) 1-5 % of the bytes of g structs and of random heap pages randomized.
fn flipped_bytes(base: &Baseline, seed: u64) -> Hostile {
    let mut rng = Rng::new("flip", seed);
    let permille = 10 + rng.below(41);
    let pages = 1 + rng.below(16);
    let hit_gs = seed % 3 != 2;
    let mut h = Hostile::from(
        base,
        format!("seed{seed}-{permille}permille-{pages}pages-gs{hit_gs}"),
    );
    if hit_gs {
        for &g in &base.g_addrs {
            if rng.chance(1, 2) {
                h.memory.scramble(&mut rng, g, base.g_size, permille);
            }
        }
    }
    let heap = h.memory.pieces_within(base.heap.0, base.heap.1);
    for _ in 0..pages {
        if let Some(at) = Memory::random_word(&mut rng, &heap) {
            h.memory.scramble(&mut rng, at & !0xfff, 0x1000, permille);
        }
    }
    h
}

/// (b) Heap words replaced by pointers into the heap: cycles everywhere.
fn heap_cycles(base: &Baseline, seed: u64) -> Hostile {
    let mut rng = Rng::new("cycles", seed);
    let mode = seed % 3;
    let label = [
        "pointers-retargeted",
        "every-word-a-pointer",
        "self-pointers",
    ][mode as usize];
    let mut h = Hostile::from(base, format!("seed{seed}-{label}"));
    let (lo, hi) = base.heap;
    let pieces = h.memory.pieces_within(lo, hi);
    for &(s, e) in &pieces {
        let mut at = (s + 7) & !7;
        while at + 8 <= e {
            let old = h.memory.read_u64(at).unwrap_or(0);
            let points_into_heap = (lo..hi).contains(&old);
            let new = match mode {
                0 if points_into_heap => Memory::random_word(&mut rng, &pieces),
                1 => Memory::random_word(&mut rng, &pieces),
                2 if points_into_heap => Some(at),
                _ => None,
            };
            if let Some(new) = new {
                h.memory.write_u64(at, new);
            }
            at += 8;
        }
    }
    h
}

/// (c) Huge values planted where lengths live: after pointers (slice and
/// string headers), in package variables, and at random words.
fn huge_lengths(base: &Baseline, seed: u64) -> Hostile {
    let mut rng = Rng::new("huge", seed);
    let headers = matches!(seed % 2, 0);
    let mut h = Hostile::from(
        base,
        format!(
            "seed{seed}-{}",
            if headers { "headers" } else { "random-words" }
        ),
    );
    let mapped = |v: u64| base.meta.mappings.iter().any(|m| m.start <= v && v < m.end);
    let mut pieces = h.memory.pieces_within(base.heap.0, base.heap.1);
    for &(s, e) in &base.data {
        pieces.extend(h.memory.pieces_within(s, e));
    }
    if headers {
        // (pointer, small length) pairs look like string and slice headers.
        let odds = 1 + rng.below(4);
        for &(s, e) in &pieces {
            let mut at = (s + 7) & !7;
            while at + 16 <= e {
                let ptr = h.memory.read_u64(at).unwrap_or(0);
                let len = h.memory.read_u64(at + 8).unwrap_or(0);
                if mapped(ptr) && (1..1 << 24).contains(&len) && rng.chance(odds, 8) {
                    let huge = *rng.pick(HUGE_VALUES);
                    h.memory.write_u64(at + 8, huge);
                    // The cap of a slice header, when there is one.
                    if rng.chance(1, 2) {
                        h.memory.write_u64(at + 16, huge);
                    }
                }
                at += 8;
            }
        }
    } else {
        for _ in 0..1 + rng.below(2000) {
            if let Some(at) = Memory::random_word(&mut rng, &pieces) {
                let v = *rng.pick(HUGE_VALUES);
                h.memory.write_u64(at, v);
            }
        }
    }
    for &(addr, size) in &base.globals {
        if rng.chance(1, 3) {
            let at = addr + 8 * rng.below(size.div_ceil(8));
            let v = *rng.pick(HUGE_VALUES);
            h.memory.write_u64(at & !7, v);
        }
    }
    h
}

/// (d) The goroutine list: `allgs` header, `allglen` and the array's entries.
fn allgs_garbage(base: &Baseline, seed: u64) -> Hostile {
    let mut rng = Rng::new("allgs", seed);
    let mut h = Hostile::from(base, format!("seed{seed}"));
    let mut done: Vec<&str> = Vec::new();
    let Some(header) = base.allgs_header else {
        panic!(
            "{}: the allgs slice header was not found in the baseline",
            base.label
        );
    };
    let ptr = h.memory.read_u64(header).unwrap_or(0);
    let len = h.memory.read_u64(header + 8).unwrap_or(0);
    let first_g = base.g_addrs.first().copied().unwrap_or(0);
    let text = base
        .meta
        .mappings
        .iter()
        .find(|m| m.perms.contains('x'))
        .map_or(0x40_0000, |m| m.start);
    for _ in 0..1 + rng.below(3) {
        match rng.below(8) {
            0 => {
                let v = match rng.below(4) {
                    0 => *rng.pick(HUGE_VALUES),
                    1 => 0,
                    2 => len + 1 + rng.below(1000),
                    _ => 1 << (10 + rng.below(20)),
                };
                h.memory.write_u64(header + 8, v);
                if let Some(l) = base.allglen {
                    h.memory.write_u64(l, v);
                }
                done.push("len");
            }
            1 => {
                // allglen and the slice's own len disagree.
                if let Some(l) = base.allglen {
                    let v = rng.hostile_word(len);
                    h.memory.write_u64(l, v);
                } else {
                    h.memory.write_u64(header + 16, rng.hostile_word(len));
                }
                done.push("allglen");
            }
            2 => {
                let v = match rng.below(6) {
                    0 => 0,
                    1 => rng.next_u64(),
                    2 => header,
                    3 => first_g,
                    4 => text + rng.below(0x1000),
                    _ => ptr + 1 + rng.below(7),
                };
                h.memory.write_u64(header, v);
                done.push("ptr");
            }
            3 => {
                for i in 0..len.min(100_000) {
                    if rng.chance(1, 2) {
                        let v = rng.hostile_word(first_g);
                        h.memory.write_u64(ptr + 8 * i, v);
                    }
                }
                done.push("entries-garbage");
            }
            4 => {
                for i in 0..len.min(100_000) {
                    h.memory.write_u64(ptr + 8 * i, first_g);
                }
                done.push("entries-all-same");
            }
            5 => {
                for i in 0..len.min(100_000) {
                    let v = if rng.chance(1, 2) { 0 } else { ptr };
                    h.memory.write_u64(ptr + 8 * i, v);
                }
                done.push("entries-nil-or-array");
            }
            6 => {
                // Each g's goid, status and stack bounds scrambled as words.
                for &g in &base.g_addrs {
                    for _ in 0..4 {
                        let at = g + 8 * rng.below(base.g_size / 8);
                        let v = rng.hostile_word(g);
                        h.memory.write_u64(at, v);
                    }
                }
                done.push("g-words");
            }
            _ => {
                // g structs pointing at each other (sched.g, m, schedlink...).
                for &g in &base.g_addrs {
                    for k in 0..base.g_size / 8 {
                        if rng.chance(1, 8) {
                            let other = *rng.pick(&base.g_addrs);
                            h.memory.write_u64(g + 8 * k, other);
                        }
                    }
                }
                done.push("g-cross-links");
            }
        }
    }
    h.label = format!("seed{seed}-{}", done.join("+"));
    h
}

/// (e) Thread registers: rip, rsp, rbp, fs_base and the rest set to garbage.
fn register_garbage(base: &Baseline, seed: u64) -> Hostile {
    let mut rng = Rng::new("regs", seed);
    let all = matches!(seed % 5, 0);
    let mut h = Hostile::from(
        base,
        format!("seed{seed}-{}", if all { "all" } else { "some" }),
    );
    let anchors: Vec<u64> = std::iter::once(base.heap.0)
        .chain(base.meta.mappings.iter().map(|m| m.start))
        .collect();
    let count = h.meta.threads.len();
    let chosen = rng.below(count.max(1) as u64) as usize;
    for (i, t) in h.meta.threads.iter_mut().enumerate() {
        if !(all || i == chosen || rng.chance(1, 3)) {
            continue;
        }
        let r = &mut t.regs;
        let fields: [&mut u64; 8] = [
            &mut r.rip,
            &mut r.rsp,
            &mut r.rbp,
            &mut r.fs_base,
            &mut r.gs_base,
            &mut r.r14,
            &mut r.rax,
            &mut r.rdx,
        ];
        for field in fields {
            if all || rng.chance(1, 2) {
                let anchor = *rng.pick(&anchors);
                *field = rng.hostile_word(anchor);
            }
        }
        if rng.chance(1, 4) {
            t.fpregs_hex = "zz".repeat(1 + rng.below(100) as usize);
        }
    }
    h
}

/// (f) Metadata that does not fit the memory or the executable.
fn metadata_oddity(base: &Baseline, seed: u64) -> Hostile {
    const NAMED: u64 = 30;
    let mut rng = Rng::new("meta", seed);
    let mut h = Hostile::from(base, String::new());
    // The named cases first, then random combinations of two to four.
    let cases: Vec<u64> = if seed < NAMED {
        vec![seed]
    } else {
        (0..2 + rng.below(3)).map(|_| rng.below(NAMED)).collect()
    };
    let mut names = Vec::new();
    for case in cases {
        names.push(apply_metadata_case(&mut h.meta, base, case, &mut rng));
    }
    h.label = format!("seed{seed}-{}", names.join("+"));
    h
}

fn apply_metadata_case(
    meta: &mut Metadata,
    base: &Baseline,
    case: u64,
    rng: &mut Rng,
) -> &'static str {
    let is_exe = |m: &rdlv_format::Mapping| matches!(m.capture, MappingCapture::FromExecutable);
    match case {
        0 => {
            meta.threads.clear();
            "zero-threads"
        }
        1 => {
            meta.mappings.clear();
            "no-mappings"
        }
        2 => {
            meta.mappings.reverse();
            "mappings-reversed"
        }
        3 => {
            for m in &mut meta.mappings {
                m.start += 0x1000;
                m.end += 0x1000;
            }
            "mappings-shifted"
        }
        4 => {
            meta.mappings.retain(|m| !is_exe(m));
            "no-exe-mappings"
        }
        5 => {
            for m in meta.mappings.iter_mut().filter(|m| is_exe(m)) {
                m.offset = u64::MAX - 0xfff;
            }
            "exe-offset-huge"
        }
        6 => {
            for m in &mut meta.mappings {
                std::mem::swap(&mut m.start, &mut m.end);
            }
            "mappings-end-before-start"
        }
        7 => {
            if let Some(m) = meta.mappings.iter_mut().find(|m| is_exe(m)) {
                m.start = 0;
                m.end = u64::MAX;
            }
            "exe-mapping-everything"
        }
        8 => {
            let copy = meta.mappings.clone();
            meta.mappings.extend(copy);
            "mappings-duplicated"
        }
        9 => {
            meta.auxv.clear();
            "no-auxv"
        }
        10 => {
            meta.auxv.retain(|(k, _)| *k != AT_ENTRY);
            "no-at-entry"
        }
        11 => {
            set_at_entry(meta, u64::MAX);
            "at-entry-max"
        }
        12 => {
            let v = rng.next_u64();
            set_at_entry(meta, v);
            "at-entry-random"
        }
        13 => {
            meta.process.go_version = None;
            "no-go-version"
        }
        14 => {
            meta.process.go_version = Some("go1.99.0".into());
            "go-version-future"
        }
        15 => {
            meta.process.go_version = Some("go\u{fffd}garbage.1.x".into());
            "go-version-garbage"
        }
        16 => {
            meta.process.go_build_id = None;
            meta.process.gnu_build_id = None;
            "no-build-ids"
        }
        17 => {
            meta.capture.page_size = *rng.pick(&[0, 3, u64::MAX]);
            "page-size-odd"
        }
        18 => {
            meta.capture.clock_monotonic_ns = 0;
            meta.capture.clock_realtime_ns = 0;
            "clocks-zero"
        }
        19 => {
            meta.capture.clock_monotonic_ns = u64::MAX;
            meta.capture.clock_realtime_ns = u64::MAX;
            "clocks-max"
        }
        20 => {
            let one = meta.threads.first().cloned().unwrap_or_default();
            meta.threads = vec![one; 2000];
            "2000-same-threads"
        }
        21 => {
            for t in &mut meta.threads {
                t.tid = 0;
            }
            "tids-zero"
        }
        22 => {
            meta.process.exe_path = String::new();
            "no-exe-path"
        }
        23 => {
            meta.capture.arch = "aarch64".into();
            "arch-aarch64"
        }
        24 => {
            meta.process.cmdline = vec!["x".repeat(1000); 1000];
            "big-cmdline"
        }
        25 => {
            for m in &mut meta.mappings {
                if m.start <= base.heap.0 && base.heap.0 < m.end {
                    m.capture = MappingCapture::Skipped {
                        reason: "hostile".into(),
                    };
                }
            }
            "heap-marked-skipped"
        }
        26 => {
            // The heap claims to be the executable: reads go to the file.
            let exe_path = meta.process.exe_path.clone();
            for m in &mut meta.mappings {
                if m.start <= base.heap.0 && base.heap.0 < m.end {
                    m.path = exe_path.clone();
                    m.capture = MappingCapture::FromExecutable;
                    m.offset = rng.hostile_word(0);
                }
            }
            "heap-from-executable"
        }
        27 => {
            for m in &mut meta.mappings {
                m.inode = 0;
                m.path = String::new();
            }
            "anonymous-everything"
        }
        28 => {
            for t in &mut meta.threads {
                t.state = "\u{0}".repeat(3);
                t.name = "\u{202e}".repeat(64);
            }
            "thread-names-odd"
        }
        _ => {
            for m in &mut meta.mappings {
                m.perms = "?".into();
                m.dev = String::new();
            }
            "perms-garbage"
        }
    }
}

fn set_at_entry(meta: &mut Metadata, value: u64) {
    match meta.auxv.iter_mut().find(|(k, _)| *k == AT_ENTRY) {
        Some(entry) => entry.1 = value,
        None => meta.auxv.push((AT_ENTRY, value)),
    }
}

/// (g) The embedded executable truncated, replaced or damaged (the container stays valid).
fn executable_damage(base: &Baseline, seed: u64) -> Hostile {
    const NAMED: u64 = 14;
    let mut rng = Rng::new("exe", seed);
    let mut h = Hostile::from(base, String::new());
    let exe = &base.exe;
    let len = exe.len();
    let read_u64 = |at: usize| {
        exe.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let name: String = match seed {
        0 => {
            h.exe = None;
            "none".into()
        }
        1..=7 => {
            let cut = [0, 4, 16, 63, 64, 4096, len / 2][seed as usize - 1].min(len);
            h.exe = Some(exe[..cut].to_vec());
            format!("truncated-{cut}")
        }
        8 => {
            h.exe = Some(exe[..len.saturating_sub(1)].to_vec());
            "truncated-last-byte".into()
        }
        9 => {
            h.exe = Some((0..len).map(|_| rng.next_u64() as u8).collect());
            "random-bytes".into()
        }
        10 => {
            let mut e = exe.clone();
            for b in e.iter_mut().take(64).skip(16) {
                *b = rng.next_u64() as u8;
            }
            h.exe = Some(e);
            "elf-header-garbage".into()
        }
        11 | 12 => {
            // e_shoff (0x28) or e_phoff (0x20): the header tables garbage or out of range.
            let field = if seed == 11 { 0x28 } else { 0x20 };
            let table = read_u64(field) as usize;
            let mut e = exe.clone();
            if rng.chance(1, 2) && table < len {
                let end = (table + 64 * 40).min(len);
                for b in &mut e[table..end] {
                    *b = rng.next_u64() as u8;
                }
            } else {
                e[field..field + 8].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
            }
            h.exe = Some(e);
            (if seed == 11 {
                "section-headers"
            } else {
                "program-headers"
            })
            .into()
        }
        13 => {
            // Section count and entry size fields (e_shentsize 0x3a, e_shnum 0x3c).
            let mut e = exe.clone();
            e[0x3a..0x3e].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
            h.exe = Some(e);
            "section-count-max".into()
        }
        _ => {
            // Flips inside one section; the build-id notes stay intact, so the
            // analyzer accepts the file and parses the damage.
            let mut e = exe.clone();
            let permille = 1 + rng.below(50);
            let which = seed - NAMED;
            let (section, off, size) = if base.exe_sections.is_empty() || which % 7 == 6 {
                ("whole-file".to_string(), 0, len as u64)
            } else {
                // The pclntab gets one round in three: it drives every stack.
                let pcln = base.exe_sections.iter().position(|s| s.0 == ".gopclntab");
                let idx = match pcln {
                    Some(p) if matches!(which % 3, 0) => p,
                    _ => rng.below(base.exe_sections.len() as u64) as usize,
                };
                base.exe_sections[idx].clone()
            };
            let start = off.min(len as u64) as usize;
            let end = off.saturating_add(size).min(len as u64) as usize;
            if end > start {
                let count = ((end - start) as u64 * permille / 1000).max(1);
                for _ in 0..count {
                    let at = start + rng.below((end - start) as u64) as usize;
                    e[at] = rng.next_u64() as u8;
                }
            }
            if section == "whole-file" {
                // Otherwise the build-id check would stop the analyzer at once.
                h.meta.process.go_build_id = None;
                h.meta.process.gnu_build_id = None;
            }
            h.exe = Some(e);
            format!("flips-{section}-{permille}permille")
        }
    };
    h.label = format!("seed{seed}-{name}");
    h
}

// ---------------------------------------------------------------------------
// The tests

fn run_class(
    class: &str,
    go: &str,
    variant: Variant,
    rounds: u64,
    make: fn(&Baseline, u64) -> Hostile,
) -> Vec<Failure> {
    let base = baseline(go, variant);
    match only_seed() {
        Some(seed) => {
            // Reproduction mode: one seed, its snapshot kept.
            let hostile = make(base, seed);
            let keep_dir = target_dirs().0.join("robust-failures");
            let path = keep_dir.join(format!("{class}-{}.snap", file_label(&hostile.label)));
            std::fs::create_dir_all(&keep_dir).expect("create robust-failures dir");
            hostile.write(&path, &base.exe_name);
            eprintln!("robust {class}: seed {seed} written to {}", path.display());
            exercise(class, base, std::iter::once(hostile))
        }
        None => exercise(class, base, (0..rounds).map(|seed| make(base, seed))),
    }
}

/// `RDLV_ROBUST_SEED=N`: run only seed N of each class and keep its snapshot.
fn only_seed() -> Option<u64> {
    std::env::var("RDLV_ROBUST_SEED").ok()?.parse().ok()
}

/// A file name part for a variant label, tagged with this test process's id:
/// every run captures a fresh baseline (other addresses), so a seed alone
/// does not reproduce a failure; the kept snapshot does, and a later run
/// must not overwrite it.
fn file_label(label: &str) -> String {
    format!(
        "{}-run{}",
        label.replace(['/', ' '], "_"),
        std::process::id()
    )
}

#[test]
fn hostile_flipped_bytes_in_gs_and_heap() {
    let failures = run_class(
        "flip",
        DEFAULT_GO,
        Variant::Default,
        rounds(),
        flipped_bytes,
    );
    assert_no_failures("flip", failures);
}

#[test]
fn hostile_pointer_cycles_in_heap() {
    let failures = run_class(
        "cycles",
        DEFAULT_GO,
        Variant::Default,
        rounds(),
        heap_cycles,
    );
    assert_no_failures("cycles", failures);
}

#[test]
fn hostile_huge_lengths() {
    let failures = run_class("huge", DEFAULT_GO, Variant::Default, rounds(), huge_lengths);
    assert_no_failures("huge", failures);
}

#[test]
fn hostile_allgs() {
    let mut failures = run_class(
        "allgs",
        DEFAULT_GO,
        Variant::Default,
        rounds(),
        allgs_garbage,
    );
    failures.extend(run_class(
        "allgs-stripped",
        DEFAULT_GO,
        Variant::Stripped,
        rounds() / 2,
        allgs_garbage,
    ));
    assert_no_failures("allgs", failures);
}

#[test]
fn hostile_thread_registers() {
    let failures = run_class(
        "regs",
        DEFAULT_GO,
        Variant::Default,
        rounds(),
        register_garbage,
    );
    assert_no_failures("regs", failures);
}

#[test]
fn hostile_metadata() {
    // Every named case at least once, on a fixed and a position-independent binary.
    let rounds = rounds().max(30);
    let mut failures = run_class(
        "meta",
        DEFAULT_GO,
        Variant::Default,
        rounds,
        metadata_oddity,
    );
    failures.extend(run_class(
        "meta-pie",
        DEFAULT_GO,
        Variant::Pie,
        rounds,
        metadata_oddity,
    ));
    assert_no_failures("meta", failures);
}

#[test]
fn hostile_embedded_executable() {
    let rounds = rounds().max(14) + 14;
    let mut failures = run_class(
        "exe",
        DEFAULT_GO,
        Variant::Default,
        rounds,
        executable_damage,
    );
    failures.extend(run_class(
        "exe-stripped",
        DEFAULT_GO,
        Variant::Stripped,
        rounds / 2,
        executable_damage,
    ));
    assert_no_failures("exe", failures);
}

#[test]
fn rng_is_deterministic_and_classes_differ() {
    let draw = |class: &str, seed: u64| {
        let mut rng = Rng::new(class, seed);
        (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draw("flip", 3), draw("flip", 3));
    assert_ne!(draw("flip", 3), draw("flip", 4));
    assert_ne!(draw("flip", 3), draw("huge", 3));
    let mut rng = Rng::new("below", 0);
    assert!((0..1000).all(|_| rng.below(7) < 7));
}

#[test]
fn memory_slices_never_cross_regions() {
    let mut memory = Memory {
        regions: vec![(0x1000, vec![1; 0x100]), (0x1100, vec![2; 0x100])],
    };
    assert_eq!(memory.read_u64(0x10f8), Some(0x0101_0101_0101_0101));
    // Bytes 0x10fc..0x1104 straddle two regions: refused rather than stitched.
    assert_eq!(memory.read_u64(0x10fc), None);
    assert_eq!(memory.read_u64(0xff8), None);
    assert_eq!(memory.read_u64(0x11f9), None);
    assert!(memory.write_u64(0x1100, u64::MAX));
    assert_eq!(memory.read_u64(0x1100), Some(u64::MAX));
    assert_eq!(
        memory.pieces_within(0x1080, 0x1180),
        vec![(0x1080, 0x1100), (0x1100, 0x1180)]
    );
    let pieces = memory.pieces_within(0, u64::MAX);
    let mut rng = Rng::new("words", 1);
    for _ in 0..100 {
        let at = Memory::random_word(&mut rng, &pieces).expect("a word");
        assert_eq!(at % 8, 0);
        assert!(memory.read_u64(at).is_some(), "{at:#x} not readable");
    }
}

#[test]
fn hostile_old_go_stripped() {
    // Go 1.21 without symbols or DWARF: the runtime layout comes from the
    // built-in version tables and allgs from code references, another path.
    const OLD_GO: &str = "1.21.13";
    let rounds = (rounds() / 3).max(1);
    let mut failures = run_class(
        "flip-go121",
        OLD_GO,
        Variant::Stripped,
        rounds,
        flipped_bytes,
    );
    failures.extend(run_class(
        "allgs-go121",
        OLD_GO,
        Variant::Stripped,
        rounds,
        allgs_garbage,
    ));
    failures.extend(run_class(
        "regs-go121",
        OLD_GO,
        Variant::Stripped,
        rounds,
        register_garbage,
    ));
    failures.extend(run_class(
        "huge-go121",
        OLD_GO,
        Variant::Stripped,
        rounds,
        huge_lengths,
    ));
    assert_no_failures("go1.21 stripped", failures);
}

/// The frames of the embedded executable, from the seek table at the end of
/// its block (SPEC §7.1): (file offset of the frame, compressed length,
/// first byte of the executable it holds, bytes it holds).
fn executable_frames(file: &[u8]) -> Vec<(usize, usize, u64, u64)> {
    let le32 = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().expect("4 bytes"));
    let tag = file
        .windows(4)
        .rposition(|w| w == b"RSEK")
        .expect("a seek table");
    let count = le32(tag - 4) as usize;
    let table = tag + 4 - (8 + 12 * count + 16);
    assert_eq!(le32(table), 0x184D_2A5B, "seek table magic");
    let frames_len: usize = (0..count).map(|i| le32(table + 8 + 12 * i) as usize).sum();
    let (mut at, mut out) = (table - frames_len, 0u64);
    (0..count)
        .map(|i| {
            let (clen, ulen) = (le32(table + 8 + 12 * i) as usize, le32(table + 12 + 12 * i));
            let frame = (at, clen, out, u64::from(ulen));
            (at, out) = (at + clen, out + u64::from(ulen));
            frame
        })
        .collect()
}

/// A damaged frame of the embedded executable (what a flipped disk or
/// network byte does to a 1.2 snapshot) is an error that names the damage
/// wherever it is read, never data and never a misleading absence:
/// `.debug_info` for `goroutines` (not a silent fall back to the built-in
/// layouts), the first frame (ELF headers and `.text`) for `goroutines` and
/// `export core`, and `verify` always.
#[test]
fn a_damaged_executable_frame_is_an_error_where_it_is_read() {
    let base = baseline(DEFAULT_GO, Variant::Default);
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = dir.path().join("clean.snap");
    Hostile::from(base, "clean".into()).write(&clean, &base.exe_name);
    let bytes = std::fs::read(&clean).expect("read snapshot");
    let frames = executable_frames(&bytes);
    assert!(
        frames.len() > 1,
        "a {}-byte executable is several frames",
        base.exe.len()
    );
    let exe = rdlv_analyze::binary::Binary::parse(std::sync::Arc::from(base.exe.as_slice()))
        .expect("parse the executable");
    let section_at = |name: &str| {
        exe.section_info(name)
            .map(|s| s.file_offset)
            .unwrap_or_else(|| panic!("{name} in the executable"))
    };
    let damaged_at = |name: &str, within: u64| -> PathBuf {
        let at = section_at(name) + within;
        let &(file_at, clen, _, _) = frames
            .iter()
            .find(|f| f.2 <= at && at < f.2 + f.3)
            .expect("a frame holds the section");
        let mut b = bytes.clone();
        b[file_at + clen / 2] ^= 0x5a;
        let path = dir
            .path()
            .join(format!("{}.snap", name.trim_start_matches('.')));
        std::fs::write(&path, b).expect("write damaged snapshot");
        path
    };
    let damaged = |name: &str| damaged_at(name, 64);
    let run = |args: &[&str]| run_bounded(&args.iter().map(OsString::from).collect::<Vec<_>>());
    let info = damaged(".debug_info");
    let out = run(&["goroutines", info.to_str().expect("utf-8")]);
    assert!(
        matches!(out.exit, Exit::Code(3)),
        "goroutines on damaged .debug_info: {:?} {}",
        out.exit,
        out.stderr
    );
    // The frame may hold the end of .data too (a small binary), so the
    // first reader to meet it may be the pclntab's: the message names the
    // damage, whichever section it is reported for.
    assert!(out.stderr.contains("CRC-32 mismatch"), "{}", out.stderr);
    // The ELF headers share the first frame with .text: damage there is
    // reported as such, not as "not an ELF file" or a missing pclntab.
    let text = damaged(".text");
    let t = text.to_str().expect("utf-8");
    let out = run(&["goroutines", t]);
    assert!(
        matches!(out.exit, Exit::Code(3)) && out.stderr.contains("CRC-32 mismatch"),
        "goroutines on a damaged first frame: {:?} {}",
        out.exit,
        out.stderr
    );
    // A core holds the executable's file-backed mappings, .text included.
    let core = dir.path().join("core");
    let out = run(&["export", "core", t, "-o", core.to_str().expect("utf-8")]);
    assert!(
        matches!(out.exit, Exit::Code(3)) && out.stderr.contains("CRC-32 mismatch"),
        "export core of damaged .text: {:?} {}",
        out.exit,
        out.stderr
    );
    // The middle of the pclntab: a frame no header read touches, read by
    // name and line lookups of the walk. Damage there is an error, never
    // a stack cut short or a function without a name.
    let size = exe.section_info(".gopclntab").expect(".gopclntab").size;
    let pcln = damaged_at(".gopclntab", size / 2);
    let p = pcln.to_str().expect("utf-8");
    for args in [&["goroutines", p][..], &["bt", p, "1"]] {
        let out = run(args);
        assert!(
            matches!(out.exit, Exit::Code(3)) && out.stderr.contains("CRC-32 mismatch"),
            "{args:?} on a damaged pclntab frame: {:?} {}",
            out.exit,
            out.stderr
        );
    }
    // The build info says which Go this is: its damage is named as such,
    // not answered with "not a Go program".
    let bi = damaged(".go.buildinfo");
    let out = run(&["goroutines", bi.to_str().expect("utf-8")]);
    assert!(
        matches!(out.exit, Exit::Code(3)) && out.stderr.contains("CRC-32 mismatch"),
        "goroutines on a damaged .go.buildinfo frame: {:?} {}",
        out.exit,
        out.stderr
    );
    for path in [&info, &text, &pcln] {
        let out = run(&["verify", path.to_str().expect("utf-8")]);
        assert!(
            matches!(out.exit, Exit::Code(3)),
            "verify: {:?} {}",
            out.exit,
            out.stderr
        );
    }
}
