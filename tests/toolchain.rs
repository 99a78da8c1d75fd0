//! Go toolchains and corpus builds.
//!
//! Extra Go releases live in `.toolchains/go<VERSION>/go/bin/go` (installed by
//! `.ci/install-toolchains`); the system `go` serves its own minor release.
//! Corpus binaries are cached in `target/corpus-bin/<version>/<variant>/<name>`
//! and rebuilt when go.mod, `corpus/internal/`, the program's own directory or
//! the toolchain is newer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

pub use rdlv_testkit::{go_toolchain, workspace_root, DEFAULT_GO, GO_VERSIONS};

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
    "heapprof",
    "secrets",
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
}
