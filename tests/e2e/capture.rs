//! Capture (issue 2) end-to-end tests: `rdlv-snap` against live corpus
//! programs, checked through `rdlv_format::Snapshot`, `/proc` and the
//! programs' own behaviour.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdlv_e2e::{
    describe_output, pattern_byte, rdlv_snap_path, run_rdlv, Target, Variant, DEFAULT_GO,
    PATTERN_SEED,
};
use rdlv_format::{FileRole, Snapshot};

use crate::http::check_work;

fn open_snapshot(path: &Path) -> Snapshot {
    Snapshot::open(path).unwrap_or_else(|e| panic!("open snapshot {}: {e}", path.display()))
}

/// Files in `dir`, sorted (hidden ones included).
fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A small deterministic generator (xorshift64*) for random delays; the seed
/// is printed so a failing run can be repeated with RDLV_E2E_SEED.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("RDLV_E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("random seed: RDLV_E2E_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[test]
fn pattern_bytes_are_in_the_snapshot() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "16"]);
    let pattern = target.pattern().expect("PATTERN line");
    let snap_file = target.capture(&[]);
    let snap = open_snapshot(snap_file.path());
    let mut bytes = vec![0u8; pattern.len];
    snap.read_memory(pattern.addr, &mut bytes)
        .unwrap_or_else(|e| panic!("read {} bytes at {:#x}: {e}", pattern.len, pattern.addr));
    assert_eq!(&bytes[..16], &pattern.head[..], "first 16 bytes as printed");
    let first_bad = (0..pattern.len).find(|&i| bytes[i] != pattern_byte(i, PATTERN_SEED));
    assert_eq!(first_bad, None, "pattern differs at offset {first_bad:?}");

    let meta = snap.metadata();
    assert_eq!(meta.process.pid, target.pid());
    assert_eq!(
        meta.process
            .go_version
            .as_deref()
            .map(|v| v.starts_with("go1.26")),
        Some(true)
    );
    assert!(
        meta.threads.iter().any(|t| t.tid == target.pid()),
        "main thread captured"
    );
    assert!(
        meta.threads
            .iter()
            .all(|t| t.regs.rip != 0 && t.regs.rsp != 0),
        "registers recorded"
    );
    assert!(!meta.mappings.is_empty());
    let exe = snap
        .embedded_file(FileRole::Executable)
        .expect("read embedded exe");
    let on_disk = std::fs::read(target.binary()).expect("read target binary");
    assert!(
        exe.as_deref() == Some(&on_disk[..]),
        "the executable is embedded byte for byte"
    );
    target.assert_running_untraced();
}

#[test]
fn target_keeps_serving_across_repeated_captures() {
    let target = Target::start("httpserver", DEFAULT_GO, Variant::Default, &[]);
    let addr = target.addr().expect("ADDR line");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, ok, addr) = (Arc::clone(&stop), Arc::clone(&ok), addr.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n = (n * 7 + 12_345) % 200_000;
                match check_work(&addr, n) {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(format!("n={n}: {e}")),
                }
            }
            failures
        })
    };
    for _ in 0..5 {
        let before = ok.load(Ordering::Relaxed);
        let snap = target.capture(&["--json"]);
        assert!(snap.json()["threads"].as_u64().unwrap_or(0) > 0);
        target.assert_running_untraced();
        // Let requests flow between captures.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ok.load(Ordering::Relaxed) < before + 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let failures = client.join().expect("client thread");
    let served = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} failed requests (of {}): {failures:?}",
        failures.len(),
        served + failures.len()
    );
    assert!(
        served >= 25,
        "only {served} requests served during 5 captures"
    );
}

#[test]
fn sigkill_at_random_instants_never_leaves_the_target_stopped() {
    let target = Target::start("httpserver", DEFAULT_GO, Variant::Default, &[]);
    let addr = target.addr().expect("ADDR line");
    // Calibrate: the kill instants spread over one full capture (the faster
    // of two, so a cold first run does not stretch the range).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut full_ms = u64::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let out = Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .arg("-o")
            .arg(dir.path().join("calibrate.snap"))
            .output()
            .expect("spawn rdlv-snap");
        assert!(
            out.status.success(),
            "{}",
            describe_output("calibration capture", &out)
        );
        full_ms = full_ms.min((started.elapsed().as_millis() as u64).max(5));
        std::fs::remove_file(dir.path().join("calibrate.snap"))
            .expect("remove calibration snapshot");
    }

    let mut rng = Rng::from_env_or_clock();
    let mut killed = 0;
    let mut landed = 0;
    for trial in 0..24 {
        let path = dir.path().join("t.snap");
        // Up to 3/4 of a full capture: later kills mostly find it finished.
        let delay = Duration::from_micros(rng.below(full_ms * 750 + 1));
        let mut child = Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .arg("-o")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rdlv-snap");
        std::thread::sleep(delay);
        let finished_before_kill = child.try_wait().expect("try_wait").is_some();
        if !finished_before_kill {
            landed += 1;
        }
        let _ = child.kill();
        let status = child.wait().expect("wait rdlv-snap");
        let ctx = format!("trial {trial}, kill after {delay:?} (full capture {full_ms} ms)");
        target.assert_running_untraced();
        check_work(&addr, 1000 + trial).unwrap_or_else(|e| panic!("{ctx}: server broken: {e}"));
        let entries = dir_entries(dir.path());
        if finished_before_kill && status.success() {
            assert_eq!(entries, ["t.snap"], "{ctx}");
        } else if entries.is_empty() {
            killed += 1;
        } else {
            // Killed after the file was linked into place (while verifying it):
            // then it must be the complete snapshot, never a partial one.
            assert_eq!(entries, ["t.snap"], "{ctx}: leftovers");
            let snap = open_snapshot(&path);
            snap.verify()
                .unwrap_or_else(|e| panic!("{ctx}: file left after kill is not complete: {e}"));
        }
        let _ = std::fs::remove_file(&path);
    }
    eprintln!(
        "{landed} of 24 kills hit a running rdlv-snap, {killed} before the snapshot was complete (full capture {full_ms} ms)"
    );
    assert!(
        landed >= 8,
        "only {landed} of 24 kills hit a running rdlv-snap"
    );
    assert!(
        killed >= 3,
        "only {killed} of 24 kills landed before the file was complete"
    );
}

/// How one capture ended when the target was killed during it.
enum ExitOutcome {
    /// rdlv-snap finished before the kill could matter: a complete file.
    Completed,
    /// Exit 1, a message saying the process exited, no file.
    CleanError,
}

/// Starts `heap -mb MB`, spawns rdlv-snap on it, calls `kill_when` until it
/// says the moment has come, SIGKILLs the target, and checks what rdlv-snap
/// did. Returns the outcome or a description of what went wrong.
fn capture_while_target_dies(
    dir: &Path,
    heap_mb: &str,
    what: &str,
    mut kill_when: impl FnMut(&Target, &mut std::process::Child) -> bool,
) -> Result<ExitOutcome, String> {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", heap_mb]);
    let path = dir.join("exit.snap");
    let mut child = Command::new(rdlv_snap_path())
        .arg(target.pid().to_string())
        .arg("-o")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rdlv-snap");
    while !kill_when(&target, &mut child) {}
    // SIGKILL without reaping: until rdlv-snap is done the target stays a
    // zombie, as a dying process does whose parent has not waited yet, so
    // what rdlv-snap sees does not depend on how fast it started.
    target.signal(libc::SIGKILL);
    let out = child.wait_with_output().expect("wait rdlv-snap");
    let ctx = describe_output(&format!("target killed {what}"), &out);
    let outcome = if out.status.success() {
        match open_snapshot(&path).verify() {
            Ok(_) => Ok(ExitOutcome::Completed),
            Err(e) => Err(format!("{ctx}\nthe file does not verify: {e}")),
        }
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        if out.status.code() != Some(1) {
            Err(format!("{ctx}\nexit code should be 1"))
        } else if !stderr.contains("exit") || stderr.contains("panicked") {
            Err(format!("{ctx}\nthe message should say the process exited"))
        } else if !dir_entries(dir).is_empty() {
            Err(format!("{ctx}\nfiles left: {:?}", dir_entries(dir)))
        } else {
            Ok(ExitOutcome::CleanError)
        }
    };
    let _ = std::fs::remove_file(&path);
    outcome
}

/// The tracer pid of the target's main thread (0 when not traced), read
/// directly: this is polled while the freeze lasts a few milliseconds.
fn tracer_of(target: &Target) -> u32 {
    std::fs::read_to_string(format!("/proc/{}/status", target.pid()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn target_exiting_while_frozen_is_a_clean_error() {
    // The kill lands once rdlv-snap has seized the target (its TracerPid is
    // set), at a random instant of the freeze and copy that follow.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::from_env_or_clock();
    let mut seized = 0;
    let mut problems = Vec::new();
    for trial in 0..6 {
        let extra = Duration::from_micros(rng.below(3_000));
        let mut seized_at: Option<Instant> = None;
        let outcome = capture_while_target_dies(
            dir.path(),
            "32",
            &format!("while frozen (trial {trial})"),
            |target, child| {
                if child.try_wait().ok().flatten().is_some() {
                    return true;
                }
                match seized_at {
                    // The tracer is rdlv-snap's ptrace thread, so any tracer counts.
                    None if tracer_of(target) != 0 => {
                        seized_at = Some(Instant::now());
                        extra.is_zero()
                    }
                    None => false,
                    Some(at) => at.elapsed() >= extra,
                }
            },
        );
        if seized_at.is_some() {
            seized += 1;
        }
        // A complete file is fine too: a copy-on-write image outlives the target.
        if let Err(e) = outcome {
            problems.push(e);
        }
    }
    eprintln!("{seized} of 6 kills landed while the target was seized");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(
        seized >= 3,
        "only {seized} of 6 kills landed while the target was seized"
    );
}

#[test]
fn target_exiting_before_the_freeze_is_a_clean_error() {
    // The kill lands a few milliseconds after rdlv-snap starts: during its
    // pre-flight reads of /proc (exe, smaps, status) or the seize.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut problems = Vec::new();
    for delay_us in [0u64, 500, 1000, 2000, 3000, 5000, 8000, 12_000] {
        let started = Instant::now();
        let outcome = capture_while_target_dies(
            dir.path(),
            "64",
            &format!("{delay_us} µs after rdlv-snap started"),
            |_, _| started.elapsed() >= Duration::from_micros(delay_us),
        );
        if let Err(e) = outcome {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

fn thread_lines(target: &Target) -> Vec<(u32, u64, u64)> {
    target
        .stdout_lines()
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("THREAD ")?.split_whitespace();
            Some((
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn threads_created_during_the_freeze_are_captured() {
    let target = Target::start("threads", DEFAULT_GO, Variant::Default, &[]);
    let mut overlapping = 0;
    for round in 0..3 {
        let before: BTreeSet<u32> = target.tids().into_iter().collect();
        let snap_file = target.capture(&["--json", "--no-exe"]);
        let after: BTreeSet<u32> = target.tids().into_iter().collect();
        let snap = open_snapshot(snap_file.path());
        let meta = snap.metadata();
        // THREAD lines are flushed every 20 ms: wait (up to 10 s on a loaded
        // machine) until every captured thread is accounted for.
        let known = |logged: &[(u32, u64, u64)], tid: u32| {
            before.contains(&tid) || after.contains(&tid) || logged.iter().any(|t| t.0 == tid)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut logged = thread_lines(&target);
        while Instant::now() < deadline && !meta.threads.iter().all(|t| known(&logged, t.tid)) {
            std::thread::sleep(Duration::from_millis(50));
            logged = thread_lines(&target);
        }
        let freeze_ns = meta.capture.clock_monotonic_ns;
        let tids: Vec<u32> = meta.threads.iter().map(|t| t.tid).collect();
        let unique: BTreeSet<u32> = tids.iter().copied().collect();
        let ctx = format!("round {round}: snapshot tids {tids:?}");
        assert_eq!(unique.len(), tids.len(), "{ctx}: duplicate threads");
        assert_eq!(
            snap_file.json()["threads"].as_u64(),
            Some(tids.len() as u64),
            "{ctx}: --json count"
        );
        assert!(unique.contains(&target.pid()), "{ctx}: main thread missing");

        let churn: BTreeSet<u32> = logged.iter().map(|t| t.0).collect();
        for tid in &unique {
            assert!(
                before.contains(tid) || after.contains(tid) || churn.contains(tid),
                "{ctx}: thread {tid} never existed in the target"
            );
        }
        for tid in before.intersection(&after) {
            if !churn.contains(tid) {
                assert!(
                    unique.contains(tid),
                    "{ctx}: long-lived thread {tid} missing"
                );
            }
        }
        for &(tid, start, end) in &logged {
            if start < freeze_ns && freeze_ns < end {
                overlapping += 1;
                assert!(unique.contains(&tid), "{ctx}: thread {tid} alive at the freeze ({start}..{end} ns, freeze {freeze_ns}) missing");
            }
        }
        target.assert_running_untraced();
    }
    eprintln!("{overlapping} short-lived threads were alive at a freeze");
    assert!(
        overlapping >= 1,
        "no short-lived thread was alive at any freeze: the test proved nothing"
    );
}

/// A user other than root to run rdlv-snap as: `nobody`, or `rdlv-e2e`
/// created with useradd when `nobody` does not exist.
fn unprivileged_ids() -> (u32, u32) {
    let lookup = |name: &str| -> Option<(u32, u32)> {
        let out = Command::new("id").args(["-u", name]).output().ok()?;
        let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let out = Command::new("id").args(["-g", name]).output().ok()?;
        let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some((uid, gid))
    };
    if let Some(ids) = lookup("nobody") {
        return ids;
    }
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "rdlv-e2e",
        ])
        .status()
        .expect("run useradd");
    assert!(
        status.success(),
        "useradd rdlv-e2e failed (the e2e tests need root)"
    );
    lookup("rdlv-e2e").expect("rdlv-e2e user after useradd")
}

#[test]
fn unprivileged_capture_of_another_users_process_explains_how_to_fix_it() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "1"]);
    let (uid, gid) = unprivileged_ids();
    // A copy of rdlv-snap and an output directory the other user can reach.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod dir");
    let snap_bin = dir.path().join("rdlv-snap");
    std::fs::copy(rdlv_snap_path(), &snap_bin).expect("copy rdlv-snap");
    std::fs::set_permissions(&snap_bin, std::fs::Permissions::from_mode(0o755))
        .expect("chmod rdlv-snap");
    let out_path = dir.path().join("denied.snap");
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(&snap_bin)
        .arg(target.pid().to_string())
        .arg("-o")
        .arg(&out_path)
        .output()
        .expect("run setpriv");
    let ctx = describe_output(&format!("rdlv-snap as uid {uid}"), &out);
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ptrace_scope") || stderr.contains("CAP_SYS_PTRACE"),
        "{ctx}"
    );
    assert!(!out_path.exists(), "{ctx}: file written");
    assert_eq!(dir_entries(dir.path()), ["rdlv-snap"], "{ctx}: leftovers");
    target.assert_running_untraced();
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount(size: &str) -> SmallTmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "rdlv-e2e-full",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "{}",
            describe_output("mount tmpfs (the e2e tests need root)", &out)
        );
        SmallTmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_is_a_clean_error_and_the_target_runs_on() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "8"]);
    let fs = SmallTmpfs::mount("1m");
    let path = fs.path().join("full.snap");
    let out = Command::new(rdlv_snap_path())
        .arg(target.pid().to_string())
        .arg("-o")
        .arg(&path)
        .output()
        .expect("spawn rdlv-snap");
    let ctx = describe_output("rdlv-snap onto a 1 MiB tmpfs", &out);
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("space"),
        "{ctx}: the message should say the disk is full"
    );
    assert!(
        dir_entries(fs.path()).is_empty(),
        "{ctx}: files left: {:?}",
        dir_entries(fs.path())
    );
    target.assert_running_untraced();
}

#[test]
fn existing_file_is_kept_unless_forced() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("existing.snap");
    std::fs::write(&path, b"precious").expect("write existing file");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            target.pid().to_string(),
            "-o".into(),
            path.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let refused = rdlv_e2e::run_snap(&args(&[]));
    let ctx = describe_output("rdlv-snap onto an existing file", &refused);
    assert!(!refused.status.success(), "{ctx}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{ctx}: should suggest --force"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"precious",
        "{ctx}: file overwritten"
    );
    assert_eq!(dir_entries(dir.path()), ["existing.snap"], "{ctx}");
    target.assert_running_untraced();

    let forced = rdlv_e2e::run_snap(&args(&["--force"]));
    assert!(
        forced.status.success(),
        "{}",
        describe_output("rdlv-snap --force", &forced)
    );
    open_snapshot(&path)
        .verify()
        .expect("forced capture is a valid snapshot");
    assert_eq!(dir_entries(dir.path()), ["existing.snap"]);
}

#[test]
fn snapshot_is_mode_0600_and_json_has_the_contract_fields() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "2"]);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", target.pid())).expect("read status");
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} missing from /proc/PID/status"))
    };
    let (rss, virt) = (kib("VmRSS:") << 10, kib("VmSize:") << 10);
    let snap_file = target.capture(&["--json"]);
    let mode = std::fs::metadata(snap_file.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    let json = snap_file.json();
    let ctx = format!("--json: {json}");
    assert_eq!(json["pid"].as_u64(), Some(u64::from(target.pid())), "{ctx}");
    let snap = open_snapshot(snap_file.path());
    assert_eq!(
        json["threads"].as_u64(),
        Some(snap.metadata().threads.len() as u64),
        "{ctx}"
    );
    assert!(json["pause_us"].as_u64().is_some_and(|p| p > 0), "{ctx}");
    assert!(
        json["bytes_captured"]
            .as_u64()
            .is_some_and(|b| b >= 2 << 20),
        "{ctx}"
    );
    // Only present pages are copied: about the resident set, far below the
    // address space a Go process reserves.
    let captured = json["bytes_captured"].as_u64().unwrap_or(u64::MAX);
    assert!(
        captured <= rss + (16 << 20) && captured < virt / 4,
        "{ctx}: captured {captured} bytes, RSS {rss}, virtual {virt}"
    );
    assert_eq!(json["file_bytes"].as_u64(), Some(snap.file_len()), "{ctx}");
    assert_eq!(
        json["file"].as_str().map(PathBuf::from),
        Some(snap_file.path().to_path_buf()),
        "{ctx}"
    );
    assert_eq!(
        String::from_utf8_lossy(&snap_file.output.stdout)
            .trim()
            .lines()
            .count(),
        1,
        "{ctx}: one JSON object, nothing else on stdout"
    );
}

#[test]
fn dash_o_dash_streams_a_readable_snapshot() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "4"]);
    let pattern = target.pattern().expect("PATTERN line");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("streamed.snap");
    let file = std::fs::File::create(&path).expect("create output");
    let out = Command::new(rdlv_snap_path())
        .arg(target.pid().to_string())
        .args(["-o", "-"])
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .output()
        .expect("spawn rdlv-snap");
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap -o -", &out)
    );
    let snap = open_snapshot(&path);
    snap.verify().expect("streamed snapshot verifies");
    let mut bytes = vec![0u8; pattern.len];
    snap.read_memory(pattern.addr, &mut bytes)
        .expect("read pattern");
    assert!(
        (0..pattern.len).all(|i| bytes[i] == pattern_byte(i, PATTERN_SEED)),
        "pattern in streamed snapshot"
    );
    target.assert_running_untraced();
}

#[test]
fn rdlv_info_and_verify_read_the_snapshot() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "2"]);
    let snap_file = target.capture(&[]);
    let snap = snap_file.path().as_os_str();

    let info = snap_file.rdlv(&["info"]);
    let ctx = describe_output("rdlv info", &info);
    assert!(info.status.success(), "{ctx}");
    assert!(
        String::from_utf8_lossy(&info.stdout).contains(&target.pid().to_string()),
        "{ctx}: pid not shown"
    );

    let info_json = snap_file.rdlv(&["info", "--format", "json"]);
    let ctx = describe_output("rdlv info --format json", &info_json);
    assert!(info_json.status.success(), "{ctx}");
    let parsed: serde_json::Value =
        serde_json::from_slice(&info_json.stdout).unwrap_or_else(|e| panic!("{e}: {ctx}"));
    assert!(
        parsed.to_string().contains(&target.pid().to_string()),
        "{ctx}: pid not in JSON"
    );

    let verify = run_rdlv(&["verify".as_ref(), snap]);
    assert!(
        verify.status.success(),
        "{}",
        describe_output("rdlv verify", &verify)
    );

    // A corrupted copy is refused with exit code 3, naming what failed.
    let bytes = std::fs::read(snap_file.path()).expect("read snapshot");
    let mut corrupt = bytes.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    let corrupt_path = snap_file.path().with_file_name("corrupt.snap");
    std::fs::write(&corrupt_path, &corrupt).expect("write corrupt copy");
    let bad = run_rdlv(&["verify".as_ref(), corrupt_path.as_os_str()]);
    let ctx = describe_output("rdlv verify on a corrupted file", &bad);
    assert_eq!(bad.status.code(), Some(3), "{ctx}");
    assert!(
        !String::from_utf8_lossy(&bad.stderr).contains("panicked"),
        "{ctx}"
    );
}

#[test]
fn every_go_release_and_build_variant_is_captured_with_its_identity() {
    let mut builds: Vec<(&str, Variant)> = rdlv_e2e::GO_VERSIONS
        .iter()
        .map(|v| (*v, Variant::Default))
        .collect();
    builds.extend(
        Variant::ALL
            .iter()
            .filter(|v| **v != Variant::Default)
            .map(|v| (DEFAULT_GO, *v)),
    );
    for (version, variant) in builds {
        let ctx = format!("Go {version} {variant:?}");
        let target = Target::start("heap", version, variant, &["-mb", "1"]);
        let pattern = target.pattern().expect("PATTERN line");
        let snap_file = target.capture(&[]);
        let snap = open_snapshot(snap_file.path());
        let process = &snap.metadata().process;
        let go_version = process.go_version.clone().unwrap_or_default();
        assert!(
            go_version.starts_with(&format!("go{version}")),
            "{ctx}: go_version {go_version:?}"
        );
        assert!(process.go_build_id.is_some(), "{ctx}: Go build id missing");
        assert!(
            process
                .cmdline
                .first()
                .is_some_and(|c| c.ends_with("/heap")),
            "{ctx}: cmdline {:?}",
            process.cmdline
        );
        let mut head = [0u8; 16];
        snap.read_memory(pattern.addr, &mut head)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(&head[..], &pattern.head[..], "{ctx}: pattern bytes");
        target.assert_running_untraced();
    }
}

#[test]
fn exceeding_the_pause_budget_resumes_the_target_and_writes_nothing() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "64"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("budget.snap");
    // 64 MiB cannot be frozen and copied in 10 µs.
    let out = Command::new(rdlv_snap_path())
        .arg(target.pid().to_string())
        .arg("-o")
        .arg(&path)
        .args(["--max-pause", "10us"])
        .output()
        .expect("spawn rdlv-snap");
    let ctx = describe_output("rdlv-snap --max-pause 10us", &out);
    assert_eq!(out.status.code(), Some(1), "{ctx}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-pause"),
        "{ctx}: should say how to raise the budget"
    );
    assert!(dir_entries(dir.path()).is_empty(), "{ctx}: files left");
    target.assert_running_untraced();
}

#[test]
fn sigstop_sent_during_the_capture_leaves_the_target_stopped() {
    // Job control must survive a capture: a SIGSTOP that arrives while
    // rdlv-snap holds the target stops it for good once rdlv-snap lets go,
    // and SIGCONT resumes it.
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "32"]);
    let dir = tempfile::tempdir().expect("tempdir");
    // A plain copy of 32 MiB holds the target for a few milliseconds, and a
    // loaded machine can deschedule this thread past that window: trials
    // go on (every one checked) until 3 SIGSTOPs landed while traced, at
    // most 24.
    let mut while_traced = 0;
    let mut trials = 0;
    for trial in 0..24 {
        if while_traced >= 3 && trial >= 6 {
            break;
        }
        trials += 1;
        let path = dir.path().join("stop.snap");
        let mut child = Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .arg("-o")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rdlv-snap");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tracer_of(&target) == 0 && Instant::now() < deadline {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
        }
        target.signal(libc::SIGSTOP);
        if tracer_of(&target) != 0 {
            while_traced += 1;
        }
        let out = child.wait_with_output().expect("wait rdlv-snap");
        assert!(
            out.status.success(),
            "{}",
            describe_output(
                &format!("trial {trial}: capture with a SIGSTOP sent meanwhile"),
                &out
            )
        );
        open_snapshot(&path)
            .verify()
            .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        // Every thread ends in job-control stop, untraced.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let statuses = target.thread_statuses();
            let stopped = statuses.iter().all(|t| t.state == 'T' && t.tracer_pid == 0);
            if stopped && !statuses.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "trial {trial}: after the capture the target should be in job-control stop: {statuses:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        target.signal(libc::SIGCONT);
        target.assert_running_untraced();
        std::fs::remove_file(&path).expect("remove snapshot");
    }
    eprintln!("{while_traced} of {trials} SIGSTOPs were sent while rdlv-snap held the target");
    assert!(
        while_traced >= 3,
        "only {while_traced} of {trials} SIGSTOPs landed while the target was traced"
    );
}

/// rdlv-snap's compression threads (`rdlv-zstd-N`), with their nice values,
/// seen in `/proc` while it writes.
fn zstd_threads(snap_pid: u32) -> Vec<(String, i64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{snap_pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let comm = comm.trim().to_string();
            if !comm.starts_with("rdlv-zstd") {
                return None;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // Field 19 (nice) counted after the `(comm)` field.
            let after = &stat[stat.rfind(')')? + 2..];
            let nice = after.split_whitespace().nth(16)?.parse().ok()?;
            Some((comm, nice))
        })
        .collect()
}

/// `--threads N` compresses on exactly N threads, and by default the
/// compression runs 5 nice levels below the target (it serves again while
/// rdlv-snap compresses); both snapshots verify.
#[test]
fn compression_threads_follow_threads_and_run_below_the_target() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "384"]);
    let dir = tempfile::tempdir().expect("tempdir");
    for (threads, want) in [(Some("1"), 1usize), (None, 0)] {
        let path = dir
            .path()
            .join(format!("t{}.snap", threads.unwrap_or("default")));
        let mut cmd = Command::new(rdlv_snap_path());
        cmd.arg(target.pid().to_string())
            .arg("-o")
            .arg(&path)
            .args(["--json", "-q", "--level", "3"]);
        if let Some(n) = threads {
            cmd.args(["--threads", n]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rdlv-snap");
        let mut seen: Vec<(String, i64)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
            let now = zstd_threads(child.id());
            if now.len() > seen.len() {
                seen = now;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = child.wait_with_output().expect("wait rdlv-snap");
        assert!(
            out.status.success(),
            "{}",
            describe_output("rdlv-snap", &out)
        );
        assert!(!seen.is_empty(), "no rdlv-zstd thread seen ({threads:?})");
        if want > 0 {
            assert_eq!(seen.len(), want, "--threads {threads:?}: {seen:?}");
        }
        let target_nice: i64 = {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", target.pid()))
                .expect("target stat");
            let after = &stat[stat.rfind(')').expect("comm") + 2..];
            after
                .split_whitespace()
                .nth(16)
                .and_then(|n| n.parse().ok())
                .expect("nice")
        };
        for (name, nice) in &seen {
            assert_eq!(*nice, (target_nice + 5).min(19), "{name} of {seen:?}");
        }
        let verify = run_rdlv(&["verify".as_ref(), path.as_os_str()]);
        assert!(
            verify.status.success(),
            "{}",
            describe_output("verify", &verify)
        );
    }
}
