//! The command-line contract of `rdlv-snap` (CONTRACT.md): exit codes, the
//! `--json` object, `-o -`, `--force`, mode 0600, and "no file on failure".

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SNAP: &str = env!("CARGO_BIN_EXE_rdlv-snap");

/// A `sleep` child that is killed when the test ends.
struct Target(Child);

impl Target {
    fn start() -> Target {
        let child = Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let target = Target(child);
        // Wait until it is past exec and sleeping, so /proc/PID/exe is sleep.
        let start = Instant::now();
        while !std::fs::read_to_string(format!("/proc/{}/stat", target.pid()))
            .is_ok_and(|s| s.contains("(sleep) S"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "sleep did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        target
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn is_running_untraced(&self) -> bool {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status.contains("TracerPid:\t0\n") && status.contains("State:\tS")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn snap(args: &[&str]) -> Output {
    Command::new(SNAP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rdlv-snap")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn json_object_and_verified_file() {
    let target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.snap");
    let file_arg = file.to_str().unwrap();
    let output = snap(&[&target.pid(), "-o", file_arg, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    for key in [
        "pid",
        "threads",
        "pause_us",
        "bytes_captured",
        "file_bytes",
        "file",
        "freeze_us",
        "copy_us",
        "write_ms",
        "total_ms",
        "compression_ratio",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["pid"].as_u64(), Some(u64::from(target.0.id())));
    assert_eq!(json["threads"].as_u64(), Some(1));
    assert_eq!(json["file"].as_str(), Some(file_arg));
    let on_disk = std::fs::metadata(&file).unwrap();
    assert_eq!(json["file_bytes"].as_u64(), Some(on_disk.len()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(on_disk.permissions().mode() & 0o777, 0o600);
    let snapshot = rdlv_format::Snapshot::open(&file).unwrap();
    snapshot.verify().unwrap();
    assert_eq!(snapshot.metadata().process.pid, target.0.id());
    assert!(snapshot
        .embedded_file(rdlv_format::FileRole::Executable)
        .unwrap()
        .is_some());
    assert!(target.is_running_untraced());

    // No overwrite without --force (exit 1, old file intact); with it, replaced.
    let before = std::fs::read(&file).unwrap();
    let refused = snap(&[&target.pid(), "-o", file_arg, "-q"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let forced = snap(&[&target.pid(), "-o", file_arg, "-q", "--force", "--no-exe"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let snapshot = rdlv_format::Snapshot::open(&file).unwrap();
    assert!(snapshot
        .embedded_file(rdlv_format::FileRole::Executable)
        .unwrap()
        .is_none());
    assert_eq!(entries(dir.path()), 1);
}

#[test]
fn streams_to_stdout() {
    let target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let output = snap(&[&target.pid(), "-o", "-", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // With -o -, stdout is the snapshot and the JSON goes to stderr.
    let json: serde_json::Value = serde_json::from_slice(&output.stderr).expect("JSON on stderr");
    assert_eq!(json["file"].as_str(), Some("-"));
    assert_eq!(
        json["file_bytes"].as_u64(),
        Some(output.stdout.len() as u64)
    );
    let path = dir.path().join("streamed.snap");
    std::fs::write(&path, &output.stdout).unwrap();
    let snapshot = rdlv_format::Snapshot::open(&path).unwrap();
    snapshot.verify().unwrap();
    assert_eq!(snapshot.metadata().threads.len(), 1);
}

#[test]
fn failures_leave_no_file_and_use_the_right_exit_code() {
    let target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.snap");
    let file_arg = file.to_str().unwrap();

    let missing = snap(&["4194300", "-o", file_arg]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no process 4194300"),
        "{}",
        stderr(&missing)
    );

    let budget = snap(&[&target.pid(), "-o", file_arg, "--max-pause", "1us"]);
    assert_eq!(budget.status.code(), Some(1));
    assert!(
        stderr(&budget).contains("raise --max-pause"),
        "{}",
        stderr(&budget)
    );

    let no_dir = snap(&[&target.pid(), "-o", "/nonexistent-rdlv-dir/x.snap"]);
    assert_eq!(no_dir.status.code(), Some(1));

    for usage in [
        vec![target.pid()],
        vec![
            target.pid(),
            "-o".into(),
            file_arg.into(),
            "--level".into(),
            "0".into(),
        ],
        vec![
            target.pid(),
            "-o".into(),
            file_arg.into(),
            "--max-pause".into(),
            "soon".into(),
        ],
        vec!["notapid".into(), "-o".into(), file_arg.into()],
    ] {
        let args: Vec<&str> = usage.iter().map(String::as_str).collect();
        assert_eq!(snap(&args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(entries(dir.path()), 0);
    assert!(target.is_running_untraced());
}

#[test]
fn sigterm_during_capture_resumes_and_leaves_nothing() {
    let target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.snap");
    for delay_ms in [0u64, 2, 5, 10, 20] {
        let mut child = Command::new(SNAP)
            .args([&target.pid(), "-o", file.to_str().unwrap(), "-q", "--force"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        // Either the signal won (exit 1, no file), or it came before the
        // handlers were installed (killed by it, nothing started), or the
        // capture finished first.
        use std::os::unix::process::ExitStatusExt;
        if status.success() {
            assert!(file.is_file());
            std::fs::remove_file(&file).unwrap();
        } else if status.signal() != Some(libc::SIGTERM) {
            assert_eq!(status.code(), Some(1));
        }
        assert_eq!(entries(dir.path()), 0);
        assert!(target.is_running_untraced());
    }
}
