//! Go toolchains and corpus builds.
//!
//! Extra Go releases live in `.toolchains/go<VERSION>/go/bin/go` (installed by
//! `.ci/install-toolchains`); the system `go` serves its own minor release.
//! Corpus binaries are cached in `target/corpus-bin/<version>/<variant>/<name>`
//! and rebuilt when go.mod, `corpus/internal/`, the program's own directory or
//! the toolchain is newer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Every Go release the tests run against, oldest first. "1.26" is the system Go.
pub const GO_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26", "1.27.3",
];

/// The Go release issue-2 tests (and anything not about version coverage) use.
pub const DEFAULT_GO: &str = "1.26";

/// The names of the programs under `corpus/cmd/`.
pub const CORPUS_PROGRAMS: &[&str] = &[
    "parked",
    "heap",
    "threads",
    "httpserver",
    "values",
    "many",
    "churn",
    "heapzoo",
];

/// How a corpus program is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `go build` with the toolchain's defaults (cgo on when a C compiler exists).
    Default,
    /// `CGO_ENABLED=0`: a static binary.
    NoCgo,
    /// `-buildmode=pie`: position-independent, loaded at a random address.
    Pie,
    /// `-ldflags=-s -w`: no symbol table, no DWARF.
    Stripped,
    /// `-gcflags=all=-N -l`: no optimisation, no inlining (what debuggers like).
    NoOpt,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 5] = [
        Variant::Default,
        Variant::NoCgo,
        Variant::Pie,
        Variant::Stripped,
        Variant::NoOpt,
    ];

    /// The directory name used under `target/corpus-bin/<version>/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::NoCgo => "nocgo",
            Variant::Pie => "pie",
            Variant::Stripped => "stripped",
            Variant::NoOpt => "noopt",
        }
    }

    /// Extra `go build` arguments and environment for this variant.
    fn build_flags(self) -> (Vec<&'static str>, Vec<(&'static str, &'static str)>) {
        match self {
            Variant::Default => (vec![], vec![]),
            Variant::NoCgo => (vec![], vec![("CGO_ENABLED", "0")]),
            Variant::Pie => (vec!["-buildmode=pie"], vec![]),
            Variant::Stripped => (vec!["-ldflags=-s -w"], vec![]),
            Variant::NoOpt => (vec!["-gcflags=all=-N -l"], vec![]),
        }
    }
}

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_dir.parent().unwrap_or(tests_dir).to_path_buf()
}

/// The cargo target directory and the profile directory this test binary
/// was built into (e.g. `target` and `target/debug`), derived from the path
/// of the running test executable (`target/<profile>/deps/e2e-<hash>`).
pub fn target_dirs() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let deps = exe
        .parent()
        .expect("test binary lives in target/<profile>/deps");
    let profile = deps.parent().expect("deps lives in target/<profile>");
    let target = profile
        .parent()
        .expect("profile dir lives in the target dir");
    (target.to_path_buf(), profile.to_path_buf())
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
/// system Go). Panics with the install command when it is missing: the tests
/// must not pass silently without the toolchain they are meant to exercise.
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

fn newest_mtime(dir: &Path, newest: &mut SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            newest_mtime(&path, newest);
        } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if (name.ends_with(".go") || name == "go.mod") && modified > *newest {
                *newest = modified;
            }
        }
    }
}

/// Builds `corpus/cmd/<name>` with Go `version` as `variant` and returns the
/// binary's path. Builds are cached by modification time and serialized
/// within the test process; the binary is written under a temporary name and
/// renamed, so concurrent test processes never see a partial file.
pub fn build_corpus(name: &str, version: &str, variant: Variant) -> PathBuf {
    static BUILD_LOCK: Mutex<()> = Mutex::new(());
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    let go = go_toolchain(version);
    let corpus = workspace_root().join("corpus");
    let (target, _) = target_dirs();
    let out_dir = target
        .join("corpus-bin")
        .join(version)
        .join(variant.dir_name());
    let out = out_dir.join(name);

    // A program depends on go.mod, the shared packages and its own directory.
    let mut newest = SystemTime::UNIX_EPOCH;
    if let Ok(m) = std::fs::metadata(corpus.join("go.mod")).and_then(|m| m.modified()) {
        newest = m;
    }
    newest_mtime(&corpus.join("internal"), &mut newest);
    newest_mtime(&corpus.join("cmd").join(name), &mut newest);
    if go.is_absolute() {
        if let Ok(m) = std::fs::metadata(&go).and_then(|m| m.modified()) {
            newest = newest.max(m);
        }
    }
    if let Ok(built) = std::fs::metadata(&out).and_then(|m| m.modified()) {
        if built >= newest {
            return out;
        }
    }

    std::fs::create_dir_all(&out_dir).expect("create corpus-bin dir");
    let tmp = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let (flags, env) = variant.build_flags();
    let mut cmd = Command::new(&go);
    cmd.current_dir(&corpus)
        .arg("build")
        .args(&flags)
        .arg("-o")
        .arg(&tmp)
        .arg(format!("./cmd/{name}"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "on")
        .env_remove("GOROOT")
        .env_remove("GOOS")
        .env_remove("GOARCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} build: {e}", go.display()));
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "building corpus program {name} with Go {version} ({}) failed:\n{}",
            variant.dir_name(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&tmp, &out).expect("move built corpus binary into place");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_dir_names_are_distinct() {
        let mut names: Vec<_> = Variant::ALL.iter().map(|v| v.dir_name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Variant::ALL.len());
    }

    #[test]
    fn missing_toolchain_panics_with_install_command() {
        let err = std::panic::catch_unwind(|| go_toolchain("0.0.1")).expect_err("must panic");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains(".ci/install-toolchains"), "message: {msg}");
    }
}
