//! Test fixtures: one small Go program built with every supported toolchain
//! in several link modes, plus the oracles (`go tool addr2line`, `go tool
//! buildid`, and the program's own `runtime.CallersFrames` output).
//!
//! Builds are cached in the system temp dir under a key derived from the
//! program text, the toolchain version and the build flags, so a rerun of
//! the tests only re-links what changed. Missing toolchains fail loudly.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Every Go release the analyzer supports, as installed for the tests.
pub(crate) const VERSIONS: [&str; 7] = [
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.8", "1.27.3",
];

/// Version of the system `go`.
const SYSTEM_GO: &str = "1.26.8";

/// Line of the call to `callers` inside `inlinedHelper`, which is inlined into `outer`.
pub(crate) const INLINED_CALL_LINE: u32 = 35;
/// Line of the call to `inlinedHelper` in `outer`.
pub(crate) const OUTER_CALL_LINE: u32 = 31;

/// The program. Line numbers above refer to it; keep them in sync.
pub(crate) const PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

type point struct{ x, y int }

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func (p point) norm1() int { return abs(p.x) + abs(p.y) }

func mapSlice[T any, U any](in []T, f func(T) U) []U {
	out := make([]U, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}

//go:noinline
func outer(skip int) []uintptr {
	return inlinedHelper(skip)
}

func inlinedHelper(skip int) []uintptr {
	return callers(skip + 1)
}

//go:noinline
func callers(skip int) []uintptr {
	pcs := make([]uintptr, 16)
	n := runtime.Callers(skip, pcs)
	return pcs[:n]
}

//go:noinline
func marker() int { return 42 }

func main() {
	p := point{x: -3, y: 4}
	strs := mapSlice([]int{p.norm1(), marker()}, strconv.Itoa)
	fmt.Fprintln(os.Stderr, strs)
	fmt.Printf("marker %x\n", funcAddr(marker))
	for _, pc := range outer(1) {
		frames := runtime.CallersFrames([]uintptr{pc})
		for {
			f, more := frames.Next()
			fmt.Printf("pc %x %s %s %d\n", pc, f.Function, f.File, f.Line)
			if !more {
				break
			}
		}
	}
}
"#;

/// The file holding the address-of-function helper (kept apart so the
/// line numbers of main.go stay fixed).
const HELPER: &str = r#"package main

import "reflect"

func funcAddr(f func() int) uintptr { return reflect.ValueOf(f).Pointer() }
"#;

/// How a fixture binary was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    /// `CGO_ENABLED=0 go build`.
    Default,
    /// Default with `-ldflags=-s -w`.
    Stripped,
    /// `CGO_ENABLED=0 -buildmode=pie` (internal link).
    Pie,
    /// `CGO_ENABLED=1 -ldflags=-linkmode=external`.
    External,
    /// `CGO_ENABLED=1 -buildmode=pie -ldflags=-linkmode=external`: the
    /// pclntab is merged into `.data.rel.ro` before Go 1.26.
    PieExternal,
    /// PieExternal with `-s -w`.
    PieExternalStripped,
}

impl Variant {
    /// All variants.
    pub(crate) const ALL: [Variant; 6] = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::External,
        Variant::PieExternal,
        Variant::PieExternalStripped,
    ];

    fn cgo(self) -> &'static str {
        match self {
            Variant::Default | Variant::Stripped | Variant::Pie => "0",
            _ => "1",
        }
    }

    fn args(self) -> Vec<&'static str> {
        match self {
            Variant::Default => vec![],
            Variant::Stripped => vec!["-ldflags=-s -w"],
            Variant::Pie => vec!["-buildmode=pie"],
            Variant::External => vec!["-ldflags=-linkmode=external"],
            Variant::PieExternal => vec!["-buildmode=pie", "-ldflags=-linkmode=external"],
            Variant::PieExternalStripped => {
                vec!["-buildmode=pie", "-ldflags=-linkmode=external -s -w"]
            }
        }
    }

    /// Whether the binary is stripped of `.symtab` and DWARF.
    pub(crate) fn stripped(self) -> bool {
        matches!(self, Variant::Stripped | Variant::PieExternalStripped)
    }

    /// Whether the binary is position independent.
    pub(crate) fn pie(self) -> bool {
        matches!(
            self,
            Variant::Pie | Variant::PieExternal | Variant::PieExternalStripped
        )
    }

    /// The unstripped build with the same code layout.
    pub(crate) fn unstripped_twin(self) -> Variant {
        match self {
            Variant::Stripped => Variant::Default,
            Variant::PieExternalStripped => Variant::PieExternal,
            other => other,
        }
    }
}

/// One toolchain's builds of [`PROGRAM`].
pub(crate) struct Fixture {
    /// Version, e.g. `1.22.10`.
    pub version: &'static str,
    /// The `go` command of that toolchain.
    pub go: PathBuf,
    binaries: Vec<(Variant, PathBuf)>,
}

impl Fixture {
    /// Path of the binary built as `variant`.
    pub(crate) fn binary(&self, variant: Variant) -> &Path {
        self.binaries
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, p)| p.as_path())
            .unwrap_or_else(|| panic!("fixture variant {variant:?} not built"))
    }

    /// Runs `go tool NAME ARGS…` of this toolchain, feeding `stdin`.
    pub(crate) fn go_tool(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new(&self.go)
            .arg("tool")
            .args(args)
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} tool {args:?}: {e}", self.go.display()));
        let mut input = child.stdin.take().expect("stdin is piped");
        let data = stdin.to_string();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(data.as_bytes());
        });
        let out = child.wait_with_output().expect("wait for go tool");
        writer.join().expect("stdin writer");
        assert!(
            out.status.success(),
            "go tool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("go tool prints UTF-8")
    }
}

/// The workspace root (holding `.toolchains/`); `RDLV_REPO_ROOT` overrides it.
fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("RDLV_REPO_ROOT") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("analyze/ has a parent")
        .to_path_buf()
}

/// The `go` command for `version`; panics with the install command if absent.
pub(crate) fn go_command(version: &str) -> PathBuf {
    let path = if version == SYSTEM_GO {
        PathBuf::from("go")
    } else {
        repo_root().join(format!(".toolchains/go{version}/go/bin/go"))
    };
    let out = Command::new(&path)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(&format!("go{version} ")) => path,
        Ok(out) => panic!(
            "{} is not Go {version} (it says {:?}); install the toolchains with `.ci/install-toolchains`",
            path.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        Err(e) => panic!(
            "Go {version} toolchain missing at {} ({e}); install it with `.ci/install-toolchains`",
            path.display()
        ),
    }
}

fn cache_dir(version: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    PROGRAM.hash(&mut h);
    HELPER.hash(&mut h);
    for v in Variant::ALL {
        (v, v.cgo(), v.args()).hash(&mut h);
    }
    std::env::temp_dir().join(format!(
        "rdlv-gobin-fixtures-{:016x}/go{version}",
        h.finish()
    ))
}

fn build(version: &'static str) -> Fixture {
    let go = go_command(version);
    let dir = cache_dir(version);
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    // Another test process may be building from the same directory: only
    // write what is missing or different.
    for (name, text) in [
        ("go.mod", "module fixture\n\ngo 1.21\n"),
        ("main.go", PROGRAM),
        ("helper.go", HELPER),
    ] {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
    let mut binaries = Vec::new();
    for variant in Variant::ALL {
        let out = dir.join(format!("prog-{variant:?}"));
        if !out.exists() {
            let tmp = dir.join(format!("prog-{variant:?}.tmp{}", std::process::id()));
            let result = Command::new(&go)
                .current_dir(&dir)
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", "")
                .env("GOWORK", "off")
                .env("CGO_ENABLED", variant.cgo())
                .arg("build")
                .arg("-o")
                .arg(&tmp)
                .args(variant.args())
                .arg(".")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", go.display()));
            assert!(
                result.status.success(),
                "go{version} build {variant:?} failed: {}",
                String::from_utf8_lossy(&result.stderr)
            );
            std::fs::rename(&tmp, &out).expect("move fixture binary into place");
        }
        binaries.push((variant, out));
    }
    Fixture {
        version,
        go,
        binaries,
    }
}

/// The fixture of `version`, built on first use.
pub(crate) fn fixture(version: &'static str) -> &'static Fixture {
    static CELLS: [OnceLock<Fixture>; 7] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let idx = VERSIONS
        .iter()
        .position(|v| *v == version)
        .unwrap_or_else(|| panic!("no fixture for Go {version}"));
    CELLS[idx].get_or_init(|| build(VERSIONS[idx]))
}
