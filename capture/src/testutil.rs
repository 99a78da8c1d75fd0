//! Test helpers: building small Go programs with the system `go` and waiting
//! for their `READY` line.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};

static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
static WORKDIR: OnceLock<tempfile::TempDir> = OnceLock::new();

/// Builds `source` as a Go main package once per test process; returns the binary.
pub fn go_program(name: &str, source: &str) -> PathBuf {
    go_program_with(name, source, &[])
}

/// Like [`go_program`] with extra `go build` flags (`name` must be unique per flag set).
pub fn go_program_with(name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let root = WORKDIR.get_or_init(|| tempfile::tempdir().unwrap());
    let dir = root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.go"), source).unwrap();
    std::fs::write(
        dir.join("go.mod"),
        format!("module example.com/{name}\n\ngo 1.21\n"),
    )
    .unwrap();
    let exe = dir.join(name);
    let status = Command::new("go")
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(".")
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-buildvcs=false")
        .status()
        .expect("system go must be installed to run this test");
    assert!(status.success(), "go build {name} failed");
    built.insert(name.to_string(), exe.clone());
    exe
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
