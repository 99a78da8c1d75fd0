//! Locating and running the two binaries under test, `rdlv-snap` and `rdlv`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::toolchain::{target_dirs, workspace_root};

/// Builds `package`'s binaries once per test process, with the profile the
/// tests were built with, so a stale binary is never tested. Each package is
/// built on its own: a broken analyzer does not stop the capture tests.
fn ensure_built(package: &'static str, once: &'static OnceLock<()>) {
    once.get_or_init(|| {
        let (_, profile_dir) = target_dirs();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet", "-p", package, "--bins"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
        assert!(status.success(), "cargo build -p {package} failed");
    });
}

fn binary(
    env_var: &str,
    name: &str,
    package: &'static str,
    once: &'static OnceLock<()>,
) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    ensure_built(package, once);
    let (_, profile_dir) = target_dirs();
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing after cargo build",
        path.display()
    );
    path
}

/// Path of `rdlv-snap`: `$RDLV_SNAP`, else `target/<profile>/rdlv-snap` (built if needed).
pub fn rdlv_snap_path() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    binary("RDLV_SNAP", "rdlv-snap", "rdlv-snap", &BUILT)
}

/// Path of the `rdlv-snap` binary itself, `$RDLV_SNAP_REAL`, else
/// `target/<profile>/rdlv-snap` (built if needed): never a `$RDLV_SNAP`
/// wrapper that adds a capture mode, for tests that choose the mode.
pub fn rdlv_snap_unwrapped_path() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    binary("RDLV_SNAP_REAL", "rdlv-snap", "rdlv-snap", &BUILT)
}

/// Path of `rdlv`: `$RDLV`, else `target/<profile>/rdlv` (built if needed).
pub fn rdlv_path() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    binary("RDLV", "rdlv", "rdlv-analyze", &BUILT)
}

/// Runs `rdlv-snap ARGS` to completion.
pub fn run_snap<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(rdlv_snap_path())
        .args(args)
        .output()
        .expect("spawn rdlv-snap")
}

/// Runs `rdlv ARGS` to completion.
pub fn run_rdlv<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(rdlv_path())
        .args(args)
        .output()
        .expect("spawn rdlv")
}

/// A one-paragraph description of a finished command for assertion messages.
pub fn describe_output(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        truncate(&String::from_utf8_lossy(&out.stdout), 4000),
        truncate(&String::from_utf8_lossy(&out.stderr), 4000)
    )
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
