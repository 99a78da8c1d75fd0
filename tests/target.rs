//! A running corpus program: spawn, wait for READY, capture it, ask its oracle.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::oracle::{parse_stacks, Oracle, OracleLocals, OracleValue};
use crate::toolchain::{build_corpus, Variant};
use crate::tools::{describe_output, rdlv_snap_path};

/// How long a program may take to print READY (10,000 goroutines on a loaded
/// 2-core machine included). Longer than the oracle's own 60 s wait for its
/// goroutines to settle (corpus/internal/oracle `settle`), so a program that
/// settles slowly under load (the robustness suite runs beside it) prints
/// READY, with its "did not settle" note on stderr, before this runs out.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long the oracle may take to answer SIGUSR1.
pub const ORACLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `PATTERN 0x<addr> <len> <hex>` line of the `heap` program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Address of the first byte.
    pub addr: u64,
    /// Length in bytes.
    pub len: usize,
    /// The first 16 bytes as printed.
    pub head: Vec<u8>,
}

/// Byte `i` of the `heap` program's pattern buffer (seed 0x12345678) or of
/// its bulk heap (seed 0): the top byte of `i * 2654435761 + seed` (mod 2^32).
pub fn pattern_byte(i: usize, seed: u32) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8
}

/// Seed of the `heap` program's 64 KiB pattern buffer.
pub const PATTERN_SEED: u32 = 0x1234_5678;

#[derive(Default)]
struct Captured {
    stdout_lines: Vec<String>,
    stdout_closed: bool,
    stderr: String,
}

/// A state of one thread of the target, from `/proc/PID/task/TID/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStatus {
    /// Thread id.
    pub tid: u32,
    /// State letter (`R`, `S`, `D`, `t`, `T`, `Z`, …).
    pub state: char,
    /// Pid of the tracer, 0 when not traced.
    pub tracer_pid: u32,
}

/// A snapshot file written by [`Target::capture`]; the file lives in a
/// temporary directory removed when this value is dropped.
pub struct SnapshotFile {
    /// Path of the snapshot.
    pub path: PathBuf,
    /// rdlv-snap's exit status and output.
    pub output: Output,
    _dir: TempDir,
}

impl SnapshotFile {
    /// The snapshot's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `rdlv COMMAND SNAP REST...` for `args = [COMMAND, REST...]`,
    /// e.g. `snap.rdlv(&["goroutines", "--format", "go"])`.
    pub fn rdlv(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(crate::tools::rdlv_path());
        if let Some((command, rest)) = args.split_first() {
            cmd.arg(command).arg(&self.path).args(rest);
        } else {
            cmd.arg(&self.path);
        }
        cmd.output().expect("spawn rdlv")
    }

    /// rdlv-snap's stdout parsed as JSON (when run with `--json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", describe_output("rdlv-snap --json", &self.output))
        })
    }
}

/// A corpus program running under test. Killed (SIGKILL) and reaped on drop,
/// including when the test panics.
pub struct Target {
    child: Child,
    pid: u32,
    oracle_dir: TempDir,
    captured: Arc<(Mutex<Captured>, Condvar)>,
    binary: PathBuf,
}

impl Target {
    /// Builds `corpus/cmd/<name>` with Go `go_version` as `variant`, starts it
    /// with `args` and waits for READY.
    pub fn start(name: &str, go_version: &str, variant: Variant, args: &[&str]) -> Target {
        let binary = build_corpus(name, go_version, variant);
        Target::spawn(&binary, args)
    }

    /// Starts an already built program with `ORACLE_DIR` set to a fresh
    /// temporary directory, and waits for its `READY <pid>` line.
    /// GOTRACEBACK, GODEBUG and GOMAXPROCS are cleared so tracebacks have the
    /// default shape.
    pub fn spawn(binary: &Path, args: &[&str]) -> Target {
        Target::spawn_with_env(binary, args, &[])
    }

    /// [`Target::spawn`] with extra environment variables (e.g.
    /// `GODEBUG=tracebacklabels=1` to have Go 1.26 print pprof labels).
    pub fn spawn_with_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Target {
        let oracle_dir = tempfile::Builder::new()
            .prefix("rdlv-oracle-")
            .tempdir()
            .expect("create oracle dir");
        let mut child = Command::new(binary)
            .args(args)
            .env("ORACLE_DIR", oracle_dir.path())
            .env_remove("GOTRACEBACK")
            .env_remove("GODEBUG")
            .env_remove("GOMAXPROCS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let pid = child.id();
        let captured = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        {
            let captured = Arc::clone(&captured);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cvar) = &*captured;
                    lock.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .stdout_lines
                        .push(line);
                    cvar.notify_all();
                }
                let (lock, cvar) = &*captured;
                lock.lock().unwrap_or_else(|p| p.into_inner()).stdout_closed = true;
                cvar.notify_all();
            });
        }
        {
            let captured = Arc::clone(&captured);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let (lock, _) = &*captured;
                    lock.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .stderr
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let target = Target {
            child,
            pid,
            oracle_dir,
            captured,
            binary: binary.to_path_buf(),
        };
        let ready = target.wait_for_line(|l| l.starts_with("READY "), READY_TIMEOUT);
        assert_eq!(
            ready,
            format!("READY {pid}"),
            "{} printed a READY line with another pid",
            binary.display()
        );
        target
    }

    /// Waits until a stdout line satisfies `pred` and returns it; panics on
    /// timeout or if the program closes stdout first (with its stderr).
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.captured;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(line) = state.stdout_lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.stdout_closed || now >= deadline {
                panic!(
                    "{} (pid {}) {} before printing the expected line; stdout so far: {:?}; stderr: {}",
                    self.binary.display(),
                    self.pid,
                    if state.stdout_closed { "closed stdout" } else { "timed out" },
                    state.stdout_lines.iter().take(20).collect::<Vec<_>>(),
                    state.stderr
                );
            }
            state = cvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program's binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The directory the oracle writes into.
    pub fn oracle_dir(&self) -> &Path {
        self.oracle_dir.path()
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let (lock, _) = &*self.captured;
        lock.lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdout_lines
            .clone()
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        let (lock, _) = &*self.captured;
        lock.lock()
            .unwrap_or_else(|p| p.into_inner())
            .stderr
            .clone()
    }

    /// The rest of the first stdout line starting with `prefix` and a space.
    pub fn line_value(&self, prefix: &str) -> Option<String> {
        let want = format!("{prefix} ");
        self.stdout_lines()
            .into_iter()
            .find_map(|l| l.strip_prefix(&want).map(str::to_string))
    }

    /// The `heap` program's PATTERN line.
    pub fn pattern(&self) -> Option<Pattern> {
        let value = self.line_value("PATTERN")?;
        let mut words = value.split_whitespace();
        let addr = u64::from_str_radix(words.next()?.strip_prefix("0x")?, 16).ok()?;
        let len = words.next()?.parse().ok()?;
        let hex = words.next()?;
        let head = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Pattern { addr, len, head })
    }

    /// The `httpserver` program's `ADDR host:port`.
    pub fn addr(&self) -> Option<String> {
        self.line_value("ADDR")
    }

    /// Runs `rdlv-snap PID -o <tmp>/target.snap EXTRA...`, asserts it
    /// succeeded and produced a file, and returns the file.
    pub fn capture(&self, extra_args: &[&str]) -> SnapshotFile {
        let dir = tempfile::Builder::new()
            .prefix("rdlv-snap-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("target.snap");
        let output = std::process::Command::new(rdlv_snap_path())
            .arg(self.pid.to_string())
            .arg("-o")
            .arg(&path)
            .args(extra_args)
            .output()
            .expect("spawn rdlv-snap");
        assert!(
            output.status.success(),
            "{}",
            describe_output("rdlv-snap", &output)
        );
        assert!(
            path.is_file(),
            "rdlv-snap exited 0 but wrote no {}",
            path.display()
        );
        SnapshotFile {
            path,
            output,
            _dir: dir,
        }
    }

    /// Sends SIGUSR1 and reads what the oracle wrote. `done` is removed
    /// first, so a file left by an earlier request is never taken for the
    /// answer to this one.
    pub fn oracle(&self) -> Oracle {
        let dir = self.oracle_dir.path();
        let done = dir.join("done");
        match std::fs::remove_file(&done) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", done.display()),
        }
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + ORACLE_TIMEOUT;
        while !done.exists() {
            assert!(
                Instant::now() < deadline && self.is_alive(),
                "oracle of pid {} did not answer SIGUSR1; stderr: {}",
                self.pid,
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("read oracle {name}: {e}"))
        };
        let stacks_text = read("stacks.txt");
        let goroutines =
            parse_stacks(&stacks_text).unwrap_or_else(|e| panic!("stacks.txt: {e}\n{stacks_text}"));
        let values_text = read("values.json");
        let values: Vec<OracleValue> =
            serde_json::from_str(&values_text).unwrap_or_else(|e| panic!("values.json: {e}"));
        let locals_path = dir.join("locals.json");
        let locals: Option<OracleLocals> = locals_path.exists().then(|| {
            serde_json::from_str(&read("locals.json"))
                .unwrap_or_else(|e| panic!("locals.json: {e}"))
        });
        Oracle {
            stacks_text,
            goroutines,
            values,
            values_text,
            locals,
        }
    }

    /// Sends a signal to the target.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid,
            std::io::Error::last_os_error()
        );
    }

    /// Whether the process still exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        }
    }

    /// Thread ids from `/proc/PID/task`.
    pub fn tids(&self) -> Vec<u32> {
        let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        tids.sort_unstable();
        tids
    }

    /// State and tracer of every thread (threads that exit while being read are skipped).
    pub fn thread_statuses(&self) -> Vec<ThreadStatus> {
        self.tids()
            .into_iter()
            .filter_map(|tid| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", self.pid))
                        .ok()?;
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let state = field("State:")?.chars().next()?;
                let tracer_pid = field("TracerPid:")?.parse().ok()?;
                Some(ThreadStatus {
                    tid,
                    state,
                    tracer_pid,
                })
            })
            .collect()
    }

    /// Asserts that no thread is stopped (`t`/`T`) or traced. A thread can
    /// take a moment to be resumed after its tracer dies (the kernel detaches
    /// it on the tracer's exit), so this retries for up to two seconds.
    pub fn assert_running_untraced(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            assert!(
                self.is_alive(),
                "target {} died; stderr: {}",
                self.pid,
                self.stderr_text()
            );
            let bad: Vec<ThreadStatus> = self
                .thread_statuses()
                .into_iter()
                .filter(|t| t.state == 't' || t.state == 'T' || t.tracer_pid != 0)
                .collect();
            if bad.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "threads of {} left stopped or traced: {bad:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the target now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.kill();
    }
}
