//! Helpers the benchmarks share: running a child under `wait4` for its own
//! rusage, medians, and what the machine was doing.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The workspace root (bench/ is one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// One finished run of a command, from `wait4`.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub wall: Duration,
    pub cpu: Duration,
    pub max_rss_bytes: u64,
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// Runs `cmd` with stdout to `stdout`, stdin from /dev/null and stderr to
/// `stderr_path`; reaps it with `wait4` for its own rusage.
pub fn run_measured(cmd: &mut Command, stdout: Stdio, stderr_path: &Path) -> Result<Usage> {
    let stderr = File::create(stderr_path)?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let start = Instant::now();
    // The Child is reaped by wait4 below, never by std (it does not wait on drop).
    let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are valid for writes; pid is our own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if r < 0 && err.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        bail!("wait4 {pid}: {err}");
    }
    let wall = start.elapsed();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut text = String::new();
        File::open(stderr_path)?
            .take(64 * 1024)
            .read_to_string(&mut text)?;
        bail!("{cmd:?} failed (wait status {status:#x}):\n{text}");
    }
    Ok(Usage {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64).saturating_mul(1024),
    })
}

/// Median wall time of timed runs.
pub fn median_wall(runs: &[Usage]) -> Duration {
    median(runs.iter().map(|u| u.wall).collect())
}

/// Median CPU time (user + system) of timed runs.
pub fn median_cpu(runs: &[Usage]) -> Duration {
    median(runs.iter().map(|u| u.cpu).collect())
}

/// The highest peak RSS of timed runs.
pub fn peak_rss(runs: &[Usage]) -> u64 {
    runs.iter().map(|u| u.max_rss_bytes).max().unwrap_or(0)
}

/// The median (the upper one of an even count); zero for no values.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Resident set size of a live process.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// PASS or FAIL for a target.
pub fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Go's age tool `name` (`age`, `age-keygen`) as .ci/install-toolchains installs it.
#[allow(dead_code)] // bench-capture and bench-goroutines only.
pub fn age_tool(name: &str) -> PathBuf {
    root().join(".toolchains/bin").join(name)
}

/// A fresh age X25519 key pair made by Go's `age-keygen` in `dir`: the
/// identity file and its `age1...` recipient.
#[allow(dead_code)] // bench-capture and bench-goroutines only.
pub fn age_key(dir: &Path) -> Result<(PathBuf, String)> {
    let key = dir.join("age.key");
    run_measured(
        Command::new(age_tool("age-keygen")).arg("-o").arg(&key),
        Stdio::null(),
        &dir.join("age-keygen.err"),
    )
    .context("age-keygen (run .ci/install-toolchains)")?;
    let recipient = std::fs::read_to_string(&key)?
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .context("no public key line in the age-keygen output")?;
    Ok((key, recipient))
}
