//! The capture sequence: pre-flight, stop and copy by the chosen method,
//! resume, then write.
//!
//! Everything that can fail without touching the target happens before the
//! first thread is stopped ([`crate::preflight`]). While stopped we only read
//! registers, maps, auxv and memory ([`crate::stop`], [`crate::precopy`],
//! [`crate::cow`]); compression and writing start after every thread runs
//! again ([`crate::snapshot`]). A method that cannot be used hands over to
//! the plain copy with its reason ([`Fallback`]), never failing the capture.

use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use crate::cow::{self, CowStats};
use crate::error::{CaptureError, Result};
use crate::precopy::{self, PrecopyStats};
use crate::preflight::{self, check_pause_budget};
use crate::proc;
use crate::snapshot;
use crate::stop;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Target process id.
    pub pid: u32,
    /// Output path or `-`.
    pub output: String,
    /// Replace an existing file.
    pub force: bool,
    /// Longest acceptable stop.
    pub max_pause: Duration,
    /// Embed the executable.
    pub embed_exe: bool,
    /// zstd level.
    pub level: i32,
    /// Compression threads (0: one per CPU).
    pub threads: usize,
    /// Show a progress bar while writing.
    pub progress: bool,
    /// The capture method asked for.
    pub method: Requested,
    /// `--cow`: extra memory the fork may add to the target (page tables
    /// and pages copied on write while the child lives).
    pub cow_max_extra: u64,
    /// `--encrypt-to`: the output is one age file to these recipients.
    pub encryption: Option<crate::encrypt::Encryption>,
    /// `--redact`: the full snapshot goes to memory and the output is what
    /// `rdlv redact` makes of it.
    pub redact: Option<crate::redact::Redactor>,
}

/// The capture method asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// `--no-precopy`: copy every page while the target is stopped.
    Plain,
    /// The pre-copy: copy while the target runs, tracking its writes, then
    /// copy only the written pages while it is stopped.
    Precopy,
    /// `--cow`: fork the frozen target and read the child.
    Cow,
}

/// Why the plain copy was used instead of the method asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The method asked for.
    pub from: Requested,
    /// Why it was not used (printed and recorded in the snapshot).
    pub reason: String,
    /// Microseconds the target was stopped trying (`--precopy`'s set-up
    /// stop); counted in `pause_us`.
    pub pause_us: u64,
}

impl Fallback {
    /// The snapshot's warning for this fallback.
    pub fn warning(&self) -> String {
        match self.from {
            Requested::Cow => format!("--cow fell back to the plain copy: {}", self.reason),
            Requested::Precopy | Requested::Plain => {
                format!("pre-copy not possible, plain copy used: {}", self.reason)
            }
        }
    }
}

/// The method a capture used, with the figures only it has.
#[derive(Debug, Clone)]
pub enum Method {
    /// Every page copied in one stop; `Some` when another method was asked
    /// for and gave way.
    Plain(Option<Fallback>),
    /// Pre-copy while running, then the written pages in the stop.
    Precopy(PrecopyStats),
    /// Fork of the frozen target, image read from the child.
    Cow(CowStats),
}

impl Method {
    /// `plain`, `precopy` or `cow` (the `--json` `method` and the snapshot's).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Plain(_) => "plain",
            Method::Precopy(_) => "precopy",
            Method::Cow(_) => "cow",
        }
    }

    /// Microseconds of stops before the capture's own stop (pre-copy set-up,
    /// also when it then fell back), counted in the pause.
    pub fn setup_pause_us(&self) -> u64 {
        match self {
            Method::Precopy(stats) => stats.setup_pause_us,
            Method::Plain(Some(fallback)) => fallback.pause_us,
            Method::Plain(None) | Method::Cow(_) => 0,
        }
    }

    /// Why `from` was asked for and the plain copy used instead.
    pub fn fallback_from(&self, from: Requested) -> Option<&str> {
        match self {
            Method::Plain(Some(fallback)) if fallback.from == from => Some(&fallback.reason),
            _ => None,
        }
    }
}

/// What happened, for `--json` and the summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Target pid.
    pub pid: u32,
    /// Target name.
    pub name: String,
    /// Threads captured.
    pub threads: usize,
    /// First interrupt to last detach (all stops of the capture).
    pub pause_us: u64,
    /// Stopping every thread.
    pub freeze_us: u64,
    /// Copying memory while stopped.
    pub copy_us: u64,
    /// Bytes copied from the target.
    pub bytes_captured: u64,
    /// Of those, bytes in all-zero pages.
    pub zero_bytes: u64,
    /// Snapshot size (the redacted one's with `--redact`).
    pub file_bytes: u64,
    /// With `--redact`: size of the full snapshot, held in memory only.
    pub unredacted_bytes: Option<u64>,
    /// Output path or `-`.
    pub file: String,
    /// Reading registers of every thread while stopped.
    pub regs_us: u64,
    /// Re-reading maps and finding present pages while stopped.
    pub plan_us: u64,
    /// Detaching every thread.
    pub resume_us: u64,
    /// Compressing and writing after resume.
    pub write_ms: u64,
    /// Of `write_ms`: in the age layer (encrypting), in µs; 0 unencrypted.
    pub encrypt_us: u64,
    /// Of `write_ms`: reading the written file back and checking it (after
    /// decrypting it, when encrypted), in µs.
    pub verify_us: u64,
    /// Whole run.
    pub total_ms: u64,
    /// Size of the embedded executable (0 with `--no-exe`).
    pub exe_bytes: u64,
    /// Bytes of never-touched executable data pages stored from the file.
    pub exe_fill_bytes: u64,
    /// Go version of the target, if it is a Go program.
    pub go_version: Option<String>,
    /// Mappings recorded.
    pub mappings: usize,
    /// Warnings recorded in the snapshot.
    pub warnings: Vec<String>,
    /// Presence method (`PAGEMAP_SCAN` or `pagemap`).
    pub page_scan: &'static str,
    /// The method used, with its own figures.
    pub method: Method,
}

/// Runs one capture. `abort` holds a signal number once SIGINT/SIGTERM/SIGHUP arrived.
pub fn run(options: &Options, abort: &AtomicI32) -> Result<Summary> {
    forbid_dumping_self();
    run_capture(options, abort).map_err(|err| exited_if_gone(options.pid, err))
}

/// Marks rdlv-snap non-dumpable: from here on it holds the target's memory,
/// which no core dump of rdlv-snap, and no unprivileged ptrace or
/// `/proc/PID/mem` reader of it, may see.
fn forbid_dumping_self() {
    let zero: libc::c_ulong = 0;
    // SAFETY: plain prctl on ourselves.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, zero, zero, zero, zero) };
}

/// A ptrace request that fails with ESRCH because the whole process died
/// (killed while frozen, say) is reported as the process exiting, not as a
/// ptrace failure on some thread.
fn exited_if_gone(pid: u32, err: CaptureError) -> CaptureError {
    // A thread we held stopped vanished: the SIGKILL that did it takes the
    // whole process down within moments, so give it that long to show.
    let gone = || {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            if proc::gone_or_exiting(pid) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    match &err {
        // A thread we hold in a ptrace-stop only leaves it when SIGKILL takes
        // its whole process down (it may then sit in its exit stop until we
        // let go, so /proc does not show it gone yet).
        CaptureError::Ptrace {
            op: "GETREGS" | "GETREGSET",
            errno: nix::errno::Errno::ESRCH,
            ..
        } => CaptureError::Exited { pid },
        CaptureError::Ptrace { errno, .. } if *errno == nix::errno::Errno::ESRCH && gone() => {
            CaptureError::Exited { pid }
        }
        CaptureError::Parse { what, .. }
            if (what.starts_with("--cow") || what.starts_with("--precopy")) && gone() =>
        {
            CaptureError::Exited { pid }
        }
        // A process dying under a previous stop can still be held by our
        // own ptrace thread when the next stop is tried.
        CaptureError::Permission { .. } if gone() => CaptureError::Exited { pid },
        // /proc reads of a process that died (e.g. during --precopy's copy
        // while it runs) fail with ESRCH.
        CaptureError::Proc { source, .. }
            if source.raw_os_error() == Some(libc::ESRCH) && gone() =>
        {
            CaptureError::Exited { pid }
        }
        _ => err,
    }
}

fn run_capture(options: &Options, abort: &AtomicI32) -> Result<Summary> {
    let started = Instant::now();
    let mut pre = preflight::preflight(options, abort)?;
    let stopped = match options.method {
        Requested::Plain => stop::stop_and_copy(options, abort, &mut pre)?,
        Requested::Cow => cow::capture(options, abort, &mut pre, options.cow_max_extra)?,
        Requested::Precopy => match precopy::stop_and_precopy(options, abort, &mut pre)? {
            Ok(stopped) => stopped,
            Err(fallback) => {
                // The whole copy now happens in the stop: check the budget again.
                check_pause_budget(pre.estimate, options.max_pause)?;
                let mut stopped = stop::stop_and_copy(options, abort, &mut pre)?;
                stopped.method = Method::Plain(Some(fallback));
                stopped
            }
        },
    };

    // Running again from here on.
    let write_started = Instant::now();
    let mut written = snapshot::write(options, abort, &mut pre, &stopped)?;
    let mut unredacted_bytes = None;
    if let (Some(redactor), Some(out)) = (&options.redact, pre.redacted_output.as_mut()) {
        let full = pre.output.memory_file().ok_or_else(|| {
            CaptureError::Usage("internal error: --redact without its memory output".into())
        })?;
        unredacted_bytes = Some(written.file_bytes);
        written.file_bytes = crate::redact::run(redactor, full, out)?;
    }
    let write_ms = u64::try_from(write_started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // The file written is the redacted one with --redact, else the output.
    let cost = pre
        .redacted_output
        .as_ref()
        .map_or_else(|| pre.output.cost(), |o| o.cost());
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    Ok(Summary {
        pid: options.pid,
        name: pre.status.name.clone(),
        threads: stopped.stop.threads.len(),
        pause_us: stopped.pause_us(),
        freeze_us: stopped.stop.report.freeze_us(),
        copy_us: stopped.stop.copy_us,
        regs_us: stopped.stop.state.regs_us,
        plan_us: stopped.stop.plan_us,
        resume_us: stopped.stop.resume_us,
        bytes_captured: written.bytes_captured,
        zero_bytes: written.zero_bytes,
        file_bytes: written.file_bytes,
        unredacted_bytes,
        file: pre.file_name.clone(),
        write_ms,
        encrypt_us: micros(cost.encrypt),
        verify_us: micros(cost.verify),
        total_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        exe_bytes: written.exe_bytes,
        exe_fill_bytes: written.exe_fill_bytes,
        go_version: pre.exe_info.go_version.clone(),
        mappings: stopped.plans.len(),
        warnings: written.warnings,
        page_scan: if pre.scanner.uses_scan_ioctl() {
            "PAGEMAP_SCAN"
        } else {
            "pagemap"
        },
        method: stopped.method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{
        capture_options, expected_payload, read_u64, start_pattern_built, start_pattern_target,
    };
    use rdlv_format::{FileRole, Mapping, MappingCapture};

    fn options(pid: u32, output: &std::path::Path) -> Options {
        capture_options(pid, output, Requested::Plain)
    }

    #[test]
    fn captures_a_live_go_process() {
        let target = start_pattern_target();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pattern.snap");
        let ticks_before = read_u64(target.pid, target.ticks);
        let summary = run(&options(target.pid, &path), &AtomicI32::new(0)).unwrap();
        assert_eq!(summary.pid, target.pid);
        assert!(summary.threads >= 2);
        assert!(summary.bytes_captured >= 32 << 20);
        assert!(summary.pause_us > 0 && summary.pause_us >= summary.freeze_us);
        assert_eq!(summary.file_bytes, std::fs::metadata(&path).unwrap().len());

        let snapshot = rdlv_format::Snapshot::open(&path).unwrap();
        let mut payload = vec![0u8; 32 << 20];
        snapshot.read_memory(target.payload, &mut payload).unwrap();
        assert!(payload == expected_payload(), "payload bytes differ");
        let meta = snapshot.metadata();
        assert_eq!(meta.process.pid, target.pid);
        assert_eq!(meta.threads.len(), summary.threads);
        assert!(meta
            .threads
            .iter()
            .all(|t| t.regs.rip != 0 && t.regs.fs_base != 0));
        assert!(meta.threads.iter().any(|t| t.tid == target.pid));
        assert!(meta
            .process
            .go_version
            .as_deref()
            .is_some_and(|v| v.starts_with("go1.")));
        assert!(meta.process.go_build_id.is_some());
        assert!(meta.auxv.iter().any(|(k, _)| *k == libc::AT_ENTRY));
        assert!(meta
            .mappings
            .iter()
            .any(|m| m.capture == MappingCapture::FromExecutable && m.perms.starts_with("r-x")));
        assert!(meta.mappings.iter().any(
            |m| matches!(&m.capture, MappingCapture::Skipped { reason } if reason == "[vvar]")
        ));
        assert!(meta.capture.clock_realtime_ns > 1_600_000_000_000_000_000);
        // The executable's data segment is complete, touched or not.
        let exe_data = meta
            .mappings
            .iter()
            .find(|m| m.path == meta.process.exe_path && m.perms == "rw-p")
            .expect("exe data mapping");
        let mut data = vec![0u8; (exe_data.end - exe_data.start) as usize];
        snapshot.read_memory(exe_data.start, &mut data).unwrap();
        let exe = snapshot
            .embedded_file(FileRole::Executable)
            .unwrap()
            .unwrap();
        assert!(exe == std::fs::read(format!("/proc/{}/exe", target.pid)).unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        // Still running: the ticker goroutine advances and no thread is traced.
        std::thread::sleep(Duration::from_millis(50));
        assert!(read_u64(target.pid, target.ticks) > ticks_before);
        assert_eq!(proc::read_status(target.pid).unwrap().tracer_pid, 0);

        // A second capture to the same name is refused before anything stops.
        let err = run(&options(target.pid, &path), &AtomicI32::new(0)).unwrap_err();
        assert!(matches!(err, CaptureError::Exists { .. }));
    }

    #[test]
    fn pie_relro_is_copied() {
        let exe = crate::testutil::go_program_with(
            "pattern-pie",
            crate::testutil::PATTERN_PROGRAM,
            &["-buildmode=pie"],
        );
        let target = start_pattern_built(exe);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pie.snap");
        run(&options(target.pid, &path), &AtomicI32::new(0)).unwrap();
        let snapshot = rdlv_format::Snapshot::open(&path).unwrap();
        let exe_maps: Vec<&Mapping> = snapshot
            .metadata()
            .mappings
            .iter()
            .filter(|m| m.path == snapshot.metadata().process.exe_path)
            .collect();
        assert!(exe_maps
            .iter()
            .any(|m| m.perms == "r-xp" && m.capture == MappingCapture::FromExecutable));
        let relro: Vec<&&Mapping> = exe_maps
            .iter()
            .filter(|m| m.perms == "r--p" && matches!(m.capture, MappingCapture::Captured { .. }))
            .collect();
        assert_eq!(relro.len(), 1, "{exe_maps:#?}");
        let mut probe = [0u8; 8];
        snapshot.read_memory(relro[0].start, &mut probe).unwrap();
    }

    /// An impossible pause budget aborts: error, no file, target resumed.
    #[test]
    fn pause_budget_aborts_cleanly() {
        let target = start_pattern_target();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.snap");
        let mut opts = options(target.pid, &path);
        // Hopeless budgets are refused before anything stops.
        opts.max_pause = Duration::from_nanos(1);
        let err = run(&opts, &AtomicI32::new(0)).unwrap_err();
        assert!(
            matches!(err, CaptureError::PauseBudgetTooSmall { .. }),
            "{err}"
        );
        // 2.5 ms passes that check (32 MiB at 20 GB/s is 1.7 ms) but no real
        // copy of 32 MiB is that fast, so the capture stops and gives up.
        opts.max_pause = Duration::from_micros(2500);
        let err = run(&opts, &AtomicI32::new(0)).unwrap_err();
        assert!(matches!(err, CaptureError::PauseBudget { .. }), "{err}");
        assert!(err.to_string().contains("raise --max-pause"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let before = read_u64(target.pid, target.ticks);
        std::thread::sleep(Duration::from_millis(50));
        assert!(read_u64(target.pid, target.ticks) > before);
        assert_eq!(proc::read_status(target.pid).unwrap().tracer_pid, 0);
    }

    #[test]
    fn zombie_is_reported_as_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not yet reaped: /proc/PID exists but the process is a zombie.
        let start = Instant::now();
        while proc::read_status(pid).map(|s| s.state).ok() != Some('Z')
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &options(pid, &dir.path().join("z.snap")),
            &AtomicI32::new(0),
        )
        .unwrap_err();
        assert!(matches!(err, CaptureError::Exited { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        child.wait().unwrap();
    }

    /// A target that made itself non-dumpable is refused before anything
    /// stops, unless `--force`; rdlv-snap itself is non-dumpable once it runs.
    #[test]
    fn non_dumpable_target_is_refused_unless_forced() {
        let mut child = crate::testutil::KillOnDrop(
            std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .args(["/usr/bin/python3", "-c"])
                .arg(
                    "import ctypes, time\n\
                     assert ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0\n\
                     print('READY', flush=True)\n\
                     time.sleep(60)",
                )
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("setpriv (util-linux) and python3 must be installed"),
        );
        crate::testutil::wait_ready(&mut child.0);
        let pid = child.0.id();
        let status = proc::read_status(pid).unwrap();
        assert!(
            proc::non_dumpable(pid, &status),
            "the target is non-dumpable"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nd.snap");
        let err = run(&options(pid, &path), &AtomicI32::new(0)).unwrap_err();
        assert!(matches!(err, CaptureError::NotDumpable { .. }), "{err}");
        assert!(err.to_string().contains("--force"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut forced = options(pid, &path);
        forced.force = true;
        run(&forced, &AtomicI32::new(0)).unwrap();
        // SAFETY: plain prctl on ourselves.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, 0);
        // A dumpable target of another user is not taken for a non-dumpable one.
        let mut plain = crate::testutil::KillOnDrop(
            std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .args(["sleep", "60"])
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(200));
        let other = plain.0.id();
        assert!(!proc::non_dumpable(
            other,
            &proc::read_status(other).unwrap()
        ));
        let _ = plain.0.kill();
    }

    /// A process in job-control stop gets the plain copy with an accurate
    /// reason, and stays stopped.
    #[test]
    fn stopped_target_gets_the_plain_copy_and_stays_stopped() {
        let target = start_pattern_target();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(target.pid as libc::pid_t, libc::SIGSTOP) };
        let start = Instant::now();
        while !proc::job_stopped(target.pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let dir = tempfile::tempdir().unwrap();
        for (method, name) in [(Requested::Precopy, "p.snap"), (Requested::Cow, "c.snap")] {
            let opts = capture_options(target.pid, &dir.path().join(name), method);
            let summary = run(&opts, &AtomicI32::new(0)).unwrap();
            assert_eq!(
                summary.method.fallback_from(method),
                Some("the process is stopped (SIGSTOP); it stays stopped"),
                "{:?}",
                summary.method
            );
            assert!(proc::job_stopped(target.pid), "it stays stopped");
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(target.pid as libc::pid_t, libc::SIGCONT) };
    }

    #[test]
    fn missing_process_is_reported_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &options(u32::MAX - 1, &dir.path().join("x.snap")),
            &AtomicI32::new(0),
        )
        .unwrap_err();
        assert!(matches!(err, CaptureError::NoSuchProcess { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
