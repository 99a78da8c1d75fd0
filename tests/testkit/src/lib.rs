//! Test support shared by the unit tests of every crate and the end-to-end
//! tests: which Go releases the tests run against, where their toolchains
//! are, and building small Go programs with them.
//!
//! Extra Go releases live in `.toolchains/go<VERSION>/go/bin/go` of the
//! workspace (installed by `.ci/install-toolchains`); the system `go` serves
//! its own minor release. A test that needs a missing toolchain panics with
//! the install command: it must never pass without what it exercises.
//! Builds are cached under `target/testkit-go/<version>/<name>/`, keyed by
//! the source text and the flags, and written under a temporary name then
//! renamed, so concurrent test processes never see a partial binary.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Every Go release the tests run against, oldest first. "1.26" is the system Go.
pub const GO_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26", "1.27.3",
];

/// The Go release tests use when they are not about version coverage.
pub const DEFAULT_GO: &str = "1.26";

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

fn system_go_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new("go")
            .args(["env", "GOVERSION"])
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap_or_else(|e| panic!("cannot run the system `go` ({e}); install Go 1.26"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("go")
            .to_string()
    })
}

/// The `go` command for a release ("1.21.13", or "1.26"/"1.26.x" for the
/// system Go). Panics with the install command when it is missing.
pub fn go_toolchain(version: &str) -> PathBuf {
    let system = system_go_version();
    if system == version || system.starts_with(&format!("{version}.")) {
        return PathBuf::from("go");
    }
    let go = workspace_root().join(format!(".toolchains/go{version}/go/bin/go"));
    if !go.is_file() {
        panic!(
            "Go {version} is not installed at {}: run `.ci/install-toolchains` in the workspace root \
             (system go is {system})",
            go.display()
        );
    }
    go
}

/// Builds `source` as the main package `name` with Go `version` and extra
/// `go build` flags; returns the binary. Cached by (version, name, flags,
/// source text).
pub fn build_program(version: &str, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let tag: String = flags
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = workspace_root()
        .join("target/testkit-go")
        .join(version)
        .join(format!("{name}{tag}"));
    let out = dir.join(name);
    let src = dir.join("main.go");
    if out.is_file() && std::fs::read_to_string(&src).ok().as_deref() == Some(source) {
        return out;
    }
    std::fs::create_dir_all(&dir).expect("create the test build directory");
    std::fs::write(
        dir.join("go.mod"),
        format!("module example.com/{name}\n\ngo 1.21\n"),
    )
    .expect("write go.mod");
    std::fs::write(&src, source).expect("write main.go");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let go = go_toolchain(version);
    let output = Command::new(&go)
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} build: {e}", go.display()));
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "go build of {name} with Go {version} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&tmp, &out).expect("move the built binary into place");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_toolchain_panics_with_install_command() {
        let err = std::panic::catch_unwind(|| go_toolchain("0.0.1")).expect_err("must panic");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains(".ci/install-toolchains"), "message: {msg}");
    }

    #[test]
    fn builds_and_caches_a_program() {
        let source = "package main\n\nfunc main() { println(\"testkit\") }\n";
        let first = build_program(DEFAULT_GO, "testkit_hello", source, &[]);
        let out = Command::new(&first).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains("testkit"));
        let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
        let again = build_program(DEFAULT_GO, "testkit_hello", source, &[]);
        assert_eq!(first, again);
        assert_eq!(
            std::fs::metadata(&again).unwrap().modified().unwrap(),
            modified
        );
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
