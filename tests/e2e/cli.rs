//! The `rdlv` command line: exit codes, `info`, `verify`, the REPL.
//!
//! Synthetic snapshots (written with `rdlv_format::SnapshotWriter` from fixed
//! metadata) give byte-stable `info` output for golden files; real captures
//! of the `parked` corpus program exercise the REPL on a live Go runtime.
//!
//! Golden files live in `tests/golden/`; `RDLV_BLESS=1 cargo test -p
//! rdlv-e2e cli::` rewrites them from the current output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rdlv_e2e::{describe_output, rdlv_path, workspace_root, Target, Variant, DEFAULT_GO};
use rdlv_format::{
    CaptureInfo, FileRole, Mapping, MappingCapture, MemoryRegion, Metadata, ProcessInfo,
    SnapshotWriter, ThreadInfo, WriteOptions, X86Regs,
};

/// Runs `rdlv` with `args`, optional stdin text and extra environment.
/// `XDG_CONFIG_HOME`/`XDG_STATE_HOME` point at `home` so the user's own
/// configuration never leaks into a test.
fn rdlv_in(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(rdlv_path());
    cmd.args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("HOME", home)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn rdlv");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(text.as_bytes()).expect("write rdlv stdin");
    }
    child.wait_with_output().expect("wait for rdlv")
}

fn rdlv(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    rdlv_in(home.path(), args, None)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_exit(out: &Output, want: i32, what: &str) {
    assert_eq!(code(out), want, "{}", describe_output(what, out));
    assert!(
        !stderr(out).contains("internal error"),
        "{}",
        describe_output(what, out)
    );
}

/// Compares `actual` with `tests/golden/<name>`; `RDLV_BLESS=1` rewrites it.
fn check_golden(name: &str, actual: &str) {
    let path = workspace_root().join("tests").join("golden").join(name);
    if std::env::var_os("RDLV_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} unreadable ({e}); create it with RDLV_BLESS=1. Output was:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let first_diff = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "output differs from {} at line {}:\n  golden: {:?}\n  actual: {:?}\n(rerun with RDLV_BLESS=1 if the change is intended)\n--- actual ---\n{actual}",
            path.display(),
            first_diff + 1,
            expected.lines().nth(first_diff),
            actual.lines().nth(first_diff)
        );
    }
}

/// Deterministic, poorly compressible bytes (xorshift), so memory chunks
/// dominate the synthetic file and a flipped byte in its middle lands in one.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Writes a snapshot from fixed metadata (no embedded executable) with
/// 256 KiB of noise, one zero page and a small tail region.
fn synthetic_snapshot(dir: &Path) -> PathBuf {
    let regs = X86Regs {
        rip: 0x46_1a20,
        rsp: 0x00c0_000a_3f58,
        fs_base: 0x7f00_0000_1000,
        ..X86Regs::default()
    };
    let data_start = 0x7f12_3400_0000u64;
    let mut data = noise(256 * 1024, 0x9e37_79b9_7f4a_7c15);
    data.extend(std::iter::repeat_n(0u8, 4096));
    let tail = b"rdlv synthetic tail".repeat(200);
    let meta = Metadata {
        process: ProcessInfo {
            pid: 4242,
            exe_path: "/srv/orders/orders".into(),
            exe_deleted: false,
            cmdline: vec![
                "/srv/orders/orders".into(),
                "-listen".into(),
                ":8080".into(),
                "it's".into(),
            ],
            gnu_build_id: Some("0123456789abcdef0123456789abcdef01234567".into()),
            go_build_id: Some("AAAA/BBBB/CCCC/DDDD".into()),
            go_version: Some("go1.26.8".into()),
            go_modinfo: Some(
                "path\texample.com/orders/cmd/orders\nmod\texample.com/orders\tv1.4.2\th1:x=\n\
                 build\t-compiler=gc\nbuild\tvcs.revision=5f1e0c2\n"
                    .into(),
            ),
            ppid: 1,
            uid: 1000,
            gid: 1000,
        },
        capture: CaptureInfo {
            tool_version: "rdlv-snap 0.1.0".into(),
            hostname: "orders-7f9c".into(),
            kernel_release: "6.1.0-test".into(),
            arch: "x86_64".into(),
            page_size: 4096,
            clock_monotonic_ns: 123_456_789_012_345,
            clock_realtime_ns: 1_795_853_309_123_456_789,
            pause_us: 7_400,
            freeze_us: 1_000,
            copy_us: 5_980,
            method: "plain".into(),
            precopy: None,
            bytes_captured: (data.len() + tail.len()) as u64,
            warnings: vec!["region 0x7f0000000000 shrank while copying".into()],
        },
        threads: vec![
            ThreadInfo {
                tid: 4242,
                name: "orders".into(),
                state: "S".into(),
                regs,
                fpregs_hex: String::new(),
            },
            ThreadInfo {
                tid: 4243,
                name: "orders".into(),
                state: "R".into(),
                regs,
                fpregs_hex: String::new(),
            },
        ],
        mappings: vec![
            Mapping {
                start: 0x40_0000,
                end: 0x4a_0000,
                perms: "r-xp".into(),
                offset: 0,
                dev: "08:01".into(),
                inode: 77,
                path: "/srv/orders/orders".into(),
                vm_flags: vec![],
                capture: MappingCapture::FromExecutable,
            },
            Mapping {
                start: data_start,
                end: data_start + 0x80_0000,
                perms: "rw-p".into(),
                offset: 0,
                dev: "00:00".into(),
                inode: 0,
                path: String::new(),
                vm_flags: vec![],
                capture: MappingCapture::Captured {
                    present_bytes: data.len() as u64,
                    zero_bytes: 4096,
                },
            },
            Mapping {
                start: 0x7ffd_0000_0000,
                end: 0x7ffd_0002_1000,
                perms: "rw-p".into(),
                offset: 0,
                dev: "00:00".into(),
                inode: 0,
                path: "[stack]".into(),
                vm_flags: vec![],
                capture: MappingCapture::Captured {
                    present_bytes: 8192,
                    zero_bytes: 0,
                },
            },
            Mapping {
                start: 0x7fff_f7fc_1000,
                end: 0x7fff_f7fc_5000,
                perms: "r--p".into(),
                offset: 0,
                dev: "00:00".into(),
                inode: 0,
                path: "[vvar]".into(),
                vm_flags: vec![],
                capture: MappingCapture::Skipped {
                    reason: "[vvar]".into(),
                },
            },
        ],
        auxv: vec![(6, 4096), (9, 0x46_1a20)],
        redaction: None,
    };
    let path = dir.join("synthetic.snap");
    let file = std::fs::File::create(&path).expect("create synthetic snapshot");
    let mut writer = SnapshotWriter::new(
        file,
        WriteOptions {
            level: 3,
            chunk_size: 64 * 1024,
            threads: 1,
        },
    )
    .expect("snapshot writer");
    writer.write_metadata(&meta).expect("write metadata");
    let regions = [
        MemoryRegion {
            addr: data_start,
            data: &data,
        },
        MemoryRegion {
            addr: 0x7ffd_0000_0000,
            data: &tail,
        },
    ];
    writer
        .write_memory(&regions, &mut |_| {})
        .expect("write memory");
    writer.finish().expect("finish snapshot");
    let _ = FileRole::Executable; // no executable embedded on purpose: info must cope
    path
}

fn corrupt_copy(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(src).expect("read snapshot");
    edit(&mut bytes);
    std::fs::write(dst, &bytes).expect("write corrupt copy");
    dst.to_path_buf()
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["info"][..],
        &["info", "x.snap", "--format", "yaml"][..],
        &["--no-such-flag"][..],
        &["info", "x.snap", "-c", "bt"][..],
    ] {
        let out = rdlv(args);
        assert_exit(&out, 2, &format!("rdlv {args:?}"));
        assert!(
            !stderr(&out).is_empty(),
            "{}",
            describe_output("usage", &out)
        );
    }
    let out = rdlv(&["--help"]);
    assert_exit(&out, 0, "rdlv --help");
    assert!(
        stdout(&out).contains("info"),
        "{}",
        describe_output("help", &out)
    );
}

#[test]
fn missing_file_exits_3_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.snap");
    let missing = missing.to_str().expect("utf-8 path");
    for command in ["info", "verify", "repl"] {
        let out = rdlv(&[command, missing]);
        assert_exit(&out, 3, &format!("rdlv {command} missing"));
        let err = stderr(&out);
        assert!(
            err.contains(missing) && err.contains("No such file"),
            "{err}"
        );
    }
    // `rdlv SNAP` (REPL) on a missing file as well.
    let out = rdlv(&[missing]);
    assert_exit(&out, 3, "rdlv missing");

    // With stderr closed (`2>&1 | head` after the reader left) the message
    // is lost but the exit code is still the error's, never 0 or 101.
    for args in [
        vec!["info", missing],
        vec![],
        vec!["info", "x.snap", "--format", "yaml"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let status = Command::new(rdlv_path())
            .args(&args)
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(writer)
            .status()
            .expect("run rdlv");
        let want = if args == ["info", missing] { 3 } else { 2 };
        assert_eq!(status.code(), Some(want), "rdlv {args:?} 2>closed");
    }
}

#[test]
fn corrupt_files_exit_3_naming_section_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = synthetic_snapshot(dir.path());
    let len = std::fs::metadata(&good).expect("stat").len() as usize;

    let bad_magic = corrupt_copy(&good, &dir.path().join("magic.snap"), |b| b[0] ^= 0xff);
    let out = rdlv(&["info", bad_magic.to_str().expect("utf-8")]);
    assert_exit(&out, 3, "info on bad magic");
    assert!(
        stderr(&out).contains("offset 0"),
        "{}",
        describe_output("bad magic", &out)
    );

    let truncated = corrupt_copy(&good, &dir.path().join("trunc.snap"), |b| {
        b.truncate(len - 7)
    });
    let out = rdlv(&["info", truncated.to_str().expect("utf-8")]);
    assert_exit(&out, 3, "info on truncated file");
    assert!(
        stderr(&out).contains("offset"),
        "{}",
        describe_output("truncated", &out)
    );

    // A byte in the middle of the noise chunks: opening still works (chunks
    // are checked when read), verify must find it.
    let flipped = corrupt_copy(&good, &dir.path().join("flip.snap"), |b| b[len / 2] ^= 0x01);
    let out = rdlv(&["verify", flipped.to_str().expect("utf-8")]);
    assert_exit(&out, 3, "verify on flipped byte");
    let err = stderr(&out);
    assert!(err.contains("verification failed"), "{err}");
    assert!(err.contains("offset"), "names the offset: {err}");
    assert!(stdout(&out).is_empty(), "no ok line on failure");

    let empty = corrupt_copy(&good, &dir.path().join("empty.snap"), Vec::clear);
    let out = rdlv(&["verify", empty.to_str().expect("utf-8")]);
    assert_exit(&out, 3, "verify on empty file");
}

#[test]
fn verify_ok_counts_what_it_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = synthetic_snapshot(dir.path());
    let out = rdlv(&["verify", snap.to_str().expect("utf-8")]);
    assert_exit(&out, 0, "verify");
    let text = stdout(&out);
    assert!(text.contains(": ok: "), "{text}");
    // 256 KiB of noise in 64 KiB chunks plus the tail: at least 5 chunks.
    let chunks: u64 = text
        .split(" memory chunks")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no chunk count in {text}"));
    assert!(chunks >= 5, "{text}");
}

/// `info` text of the synthetic snapshot, with the sizes that depend on the
/// compressor and container encoding replaced by placeholders.
#[test]
fn info_text_golden_on_synthetic_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = synthetic_snapshot(dir.path());
    let snap_str = snap.to_str().expect("utf-8");
    let out = rdlv(&["info", snap_str, "--format", "json"]);
    assert_exit(&out, 0, "info --format json");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info json");
    let out = rdlv(&["info", snap_str]);
    assert_exit(&out, 0, "info");
    let mut text = stdout(&out).replace(snap_str, "SNAP");
    let sizes = &json["sizes"];
    for (key, placeholder) in [
        ("file_bytes", "<FILE>"),
        ("compressed_bytes", "<COMPRESSED>"),
    ] {
        let n = sizes[key].as_u64().expect("size");
        text = text.replace(&human_bytes(n), placeholder);
    }
    let ratio = format!(
        "ratio {:.2}",
        sizes["compression_ratio"].as_f64().expect("ratio")
    );
    text = text.replace(&ratio, "ratio <R>");
    check_golden("info-synthetic.txt", &text);
}

/// Same formatting as `rdlv info` (checked by the golden file).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[test]
fn info_json_shape_on_synthetic_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = synthetic_snapshot(dir.path());
    let out = rdlv(&["info", snap.to_str().expect("utf-8"), "--format", "json"]);
    assert_exit(&out, 0, "info --format json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["process"]["pid"], 4242);
    assert_eq!(v["process"]["module"], "example.com/orders");
    assert_eq!(v["process"]["module_version"], "v1.4.2");
    assert_eq!(v["process"]["vcs_revision"], "5f1e0c2");
    assert_eq!(v["process"]["cmdline"][3], "it's");
    assert_eq!(v["capture"]["threads"], 2);
    assert_eq!(v["capture"]["realtime_utc"], "2026-11-28T08:08:29.123456Z");
    assert_eq!(v["capture"]["pause_us"], 7400);
    assert_eq!(
        v["snapshot"]["format_version"]
            .as_str()
            .map(|s| s.starts_with("1.")),
        Some(true)
    );
    let sizes = &v["sizes"];
    assert_eq!(sizes["zero_bytes"], 4096);
    assert_eq!(sizes["data_bytes"].as_u64(), Some(256 * 1024 + 19 * 200));
    assert!(
        sizes["compressed_bytes"].as_u64().expect("compressed") > 200 * 1024,
        "noise barely compresses"
    );
    let mappings = v["mappings"].as_array().expect("mappings");
    assert_eq!(mappings.len(), 4);
    assert_eq!(mappings[0]["capture"], "from_executable");
    assert_eq!(mappings[1]["capture"], "captured");
    assert_eq!(mappings[1]["start"], "0x7f1234000000");
    assert_eq!(mappings[3]["capture"], "skipped");
    assert_eq!(mappings[3]["reason"], "[vvar]");
    // No executable: info still answers, runtime facts are explained away.
    assert!(v["runtime"].is_null());
    assert!(
        v["analysis_error"]
            .as_str()
            .is_some_and(|e| e.contains("--exe")),
        "{v}"
    );
    assert_eq!(v["executable"]["source"], "missing");
}

/// Starts `parked` and captures it; the target is returned so it outlives the file's use.
fn parked_snapshot() -> (Target, rdlv_e2e::SnapshotFile) {
    let target = Target::start("parked", DEFAULT_GO, Variant::Default, &[]);
    let snap = target.capture(&[]);
    (target, snap)
}

#[test]
fn info_and_verify_on_a_real_capture() {
    let (target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let out = rdlv(&["info", path, "--format", "json"]);
    assert_exit(&out, 0, "info --format json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["process"]["pid"], target.pid());
    assert!(
        v["process"]["go_version"]
            .as_str()
            .is_some_and(|g| g.starts_with("go1.26")),
        "{v}"
    );
    assert!(
        v["capture"]["threads"].as_u64().is_some_and(|n| n >= 1),
        "{v}"
    );
    assert_eq!(v["executable"]["source"], "embedded");
    assert_eq!(v["executable"]["dwarf"], true);
    assert!(v["executable"]["embedded"]["bytes"]
        .as_u64()
        .is_some_and(|n| n > 100_000));
    assert!(v["analysis_error"].is_null(), "{v}");
    // parked blocks a dozen goroutines in distinct states, plus the runtime's own.
    assert!(
        v["runtime"]["goroutines"].as_u64().is_some_and(|n| n >= 10),
        "{v}"
    );
    assert!(
        v["runtime"]["gomaxprocs"].as_u64().is_some_and(|n| n >= 1),
        "{v}"
    );
    let mappings = v["mappings"].as_array().expect("mappings");
    assert!(
        mappings.iter().any(|m| m["capture"] == "from_executable"),
        "{v}"
    );
    assert!(mappings.iter().any(|m| m["path"] == "[stack]"), "{v}");

    let out = rdlv(&["info", path]);
    assert_exit(&out, 0, "info");
    let text = stdout(&out);
    for heading in [
        "Snapshot ",
        "Process ",
        "Runtime ",
        "Capture ",
        "Sizes",
        "Mappings (",
    ] {
        assert!(text.contains(heading), "missing {heading:?} in:\n{text}");
    }
    assert!(text.contains(&format!("pid {}", target.pid())), "{text}");
    assert!(
        text.contains(" goroutines (including the runtime's own), GOMAXPROCS "),
        "{text}"
    );

    // Another program's binary given with --exe: refused as mismatched input.
    let other = rdlv_e2e::build_corpus("values", DEFAULT_GO, Variant::Default);
    let other = other.to_str().expect("utf-8");
    for command in ["info", "goroutines"] {
        let out = rdlv(&["--exe", other, command, path]);
        assert_exit(&out, 3, &format!("{command} with a mismatched --exe"));
        assert!(
            stderr(&out).contains("is not the binary this snapshot was taken from"),
            "{}",
            describe_output("mismatched --exe", &out)
        );
    }
    // The right binary given with --exe is accepted.
    let own = target.binary().to_str().expect("utf-8");
    let out = rdlv(&["info", path, "--exe", own, "--format", "json"]);
    assert_exit(&out, 0, "info with its own --exe");

    let out = rdlv(&["verify", path]);
    assert_exit(&out, 0, "verify");
    assert!(
        stdout(&out).contains(": ok: "),
        "{}",
        describe_output("verify", &out)
    );
}

#[test]
fn repl_scripted_with_c_and_live_only_commands() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let out = rdlv(&[path, "-c", "help", "-c", "goroutine 1", "-c", "frame"]);
    assert_exit(&out, 0, "rdlv SNAP -c help -c 'goroutine 1' -c frame");
    let text = stdout(&out);
    assert!(text.contains("goroutine (gr)"), "{text}");
    assert!(
        text.contains("Switched to goroutine 1\nGoroutine 1, frame 0: runtime."),
        "{text}"
    );
    check_golden(
        "repl-help.txt",
        &text[..text.find("Switched").unwrap_or(text.len())],
    );

    for live in ["continue", "break main.main", "call f()", "step", "restart"] {
        let out = rdlv(&["repl", path, "-c", live]);
        assert_exit(&out, 1, live);
        let name = live.split(' ').next().unwrap_or(live);
        let want = format!("a snapshot is read-only: {name} needs a live process; use dlv attach on the running service, or capture again");
        assert!(
            stderr(&out).contains(&want),
            "{}",
            describe_output(live, &out)
        );
    }

    let out = rdlv(&[path, "-c", r"funcs ^main\.main$"]);
    assert_exit(&out, 0, "funcs");
    assert_eq!(stdout(&out), "main.main\n");
    let out = rdlv(&[path, "-c", "disassemble"]);
    assert_exit(&out, 1, "not implemented yet");
    assert!(
        stderr(&out).contains("disassemble is a Delve command rdlv does not implement yet"),
        "{}",
        describe_output("disassemble", &out)
    );

    let out = rdlv(&[path, "-c", "hlep"]);
    assert_exit(&out, 2, "unknown command");
    assert!(
        stderr(&out).contains("did you mean help"),
        "{}",
        describe_output("hlep", &out)
    );
}

#[test]
fn repl_reads_stdin_and_repeats_on_empty_line() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let home = tempfile::tempdir().expect("tempdir");
    let out = rdlv_in(
        home.path(),
        &[path],
        Some("goroutine 1\nframe 1\nup\n\n# comment\nexit\nhelp\n"),
    );
    assert_exit(&out, 0, "stdin script");
    // Goroutine 1 (main.main, parked) has at least gopark, main.main,
    // runtime.main and goexit: frames 0..3 exist.
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "no prompts, `up` repeated once, nothing after exit:\n{text}"
    );
    assert_eq!(lines[0], "Switched to goroutine 1");
    for (line, frame) in lines[1..].iter().zip(1..) {
        assert!(
            line.starts_with(&format!("Goroutine 1, frame {frame}: ")),
            "{text}"
        );
    }
    // A failing command makes the scripted session's status non-zero but the
    // rest still runs.
    let out = rdlv_in(home.path(), &[path], Some("down\ngoroutine 1\n"));
    assert_exit(&out, 1, "down without goroutine");
    assert!(
        stdout(&out).contains("Switched to goroutine 1"),
        "{}",
        describe_output("stdin", &out)
    );
}

#[test]
fn repl_init_file_and_config_aliases() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let home = tempfile::tempdir().expect("tempdir");
    let config_dir = home.path().join("config").join("rdlv");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    std::fs::write(
        config_dir.join("config.yml"),
        "# rdlv config in Delve's shape\naliases:\n  goroutine: [\"sel\"]\n  frame:\n    - fr\nmax-string-len: 300\n",
    )
    .expect("write config");
    let init = home.path().join("init.rdlv");
    std::fs::write(&init, "# select a goroutine first\nsel 1\n\nfr 2\n").expect("write init");
    let out = rdlv_in(
        home.path(),
        &[path, "--init", init.to_str().expect("utf-8"), "-c", "frame"],
        None,
    );
    assert_exit(&out, 0, "init + aliases");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "Switched to goroutine 1");
    assert!(
        lines[1].starts_with("Goroutine 1, frame 2: ") && lines[1] == lines[2],
        "{text}"
    );
    // Unknown goroutine: exit 1, names it and the nearest that exist.
    let out = rdlv_in(home.path(), &[path, "-c", "goroutine 987654"], None);
    assert_exit(&out, 1, "unknown goroutine");
    let err = stderr(&out);
    assert!(
        err.contains("no goroutine 987654") && err.contains("nearest goroutines: "),
        "{err}"
    );
    // A frame beyond the stack: exit 1 with the frame count.
    let out = rdlv_in(home.path(), &[path, "-c", "goroutine 1 frame 999"], None);
    assert_exit(&out, 1, "frame out of range");
    assert!(
        stderr(&out).contains("frame 999 does not exist: goroutine 1 has "),
        "{}",
        describe_output("frame 999", &out)
    );
    let out = rdlv_in(home.path(), &[path, "-c", "help goroutine"], None);
    assert!(
        stdout(&out).contains("Aliases: gr, sel"),
        "{}",
        describe_output("help goroutine", &out)
    );

    std::fs::write(config_dir.join("config.yml"), "max-string-len: lots\n").expect("write config");
    let out = rdlv_in(home.path(), &[path, "-c", "help"], None);
    assert_exit(&out, 2, "bad config");
    assert!(
        stderr(&out).contains("config.yml:1"),
        "{}",
        describe_output("bad config", &out)
    );
}

/// Runs `rdlv SNAP` on a pseudo-terminal (util-linux `script`), typing
/// `keys` one chunk at a time, and returns what the terminal showed.
fn rdlv_on_pty(home: &Path, snap: &str, keys: &[&str]) -> String {
    let mut feed = String::from("sleep 1;");
    for k in keys {
        feed.push_str(&format!(
            " printf '%s' '{}'; sleep 0.4;",
            k.replace('\'', r"'\''")
        ));
    }
    let command = format!(
        "({feed} sleep 0.5) | script -qec '{} {}' /dev/null",
        rdlv_path().display(),
        snap
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("HOME", home)
        .output()
        .expect("run script(1) from util-linux; install util-linux if missing");
    assert!(out.status.success(), "{}", describe_output(&command, &out));
    stdout(&out)
}

#[test]
fn repl_terminal_history_and_completion() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let home = tempfile::tempdir().expect("tempdir");
    // "gorout<TAB>" completes the command name, "main.neve<TAB>" the global.
    let screen = rdlv_on_pty(
        home.path(),
        path,
        &["gorout\t 1\r", "frame 2\r", "print main.neve\t\r", "exit\r"],
    );
    assert!(screen.contains("(rdlv) "), "prompt shown: {screen}");
    assert!(screen.contains("Switched to goroutine 1"), "{screen}");
    assert!(screen.contains("chan int"), "main.never printed: {screen}");
    let history_file = home.path().join("state").join("rdlv").join("history");
    let history = std::fs::read_to_string(&history_file).expect("history written");
    for line in ["goroutine 1\n", "frame 2\n", "print main.never\n", "exit\n"] {
        assert!(history.contains(line), "{line:?} in {history}");
    }
    // A new session recalls the previous one's lines: four times Up is the
    // first line of the previous session.
    let screen = rdlv_on_pty(home.path(), path, &["\x1b[A\x1b[A\x1b[A\x1b[A\r", "q\r"]);
    assert!(screen.contains("Switched to goroutine 1"), "{screen}");
    let history = std::fs::read_to_string(&history_file).expect("history kept");
    assert!(
        history.contains("print main.never\n") && history.ends_with("q\n"),
        "{history}"
    );
}

/// Goroutine id and frame index of the first frame running `func`, from
/// `rdlv goroutines --format json` and `rdlv bt --format json`.
fn frame_of(snap: &str, func: &str) -> (u64, usize) {
    let out = rdlv(&["goroutines", snap, "--format", "json"]);
    assert_exit(&out, 0, "goroutines --format json");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("goroutines JSON");
    for g in list.as_array().expect("array") {
        let goid = g["id"].as_u64().expect("id");
        let out = rdlv(&["bt", snap, &goid.to_string(), "--format", "json"]);
        assert_exit(&out, 0, "bt --format json");
        let frames: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bt JSON");
        if let Some(i) = frames
            .as_array()
            .expect("frames")
            .iter()
            .position(|f| f["func"] == func)
        {
            return (goid, i);
        }
    }
    panic!("no goroutine runs {func}");
}

#[test]
fn subcommands_and_repl_share_stacks_and_values() {
    let target = Target::start("values", DEFAULT_GO, Variant::Default, &[]);
    let snap = target.capture(&[]);
    let path = snap.path().to_str().expect("utf-8");

    // Unknown goroutine through a subcommand: exit 1, nearest ids suggested.
    let out = rdlv(&["bt", path, "987654"]);
    assert_exit(&out, 1, "bt unknown goroutine");
    assert!(
        stderr(&out).contains("nearest goroutines: "),
        "{}",
        describe_output("bt 987654", &out)
    );
    // CONTRACT order: options after the expression.
    let out = rdlv(&["print", path, "main.points", "--format", "json"]);
    assert_exit(&out, 0, "print EXPR --format json");
    assert_eq!(stdout(&out), "[{\"X\":1,\"Y\":2},{\"X\":-3,\"Y\":4}]\n");
    let out = rdlv(&["print", path, "main.noSuchGlobal"]);
    assert_exit(&out, 1, "print unknown symbol");

    // A reader that goes away (`| head`): rdlv stops quietly with status 0.
    let mut child = Command::new(rdlv_path())
        .args(["print", path, "main.bigText", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rdlv");
    let mut head = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().expect("stdout"), &mut head)
        .expect("first bytes");
    assert_eq!(&head, b"\"0123456789abcde");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_exit(&out, 0, "print into a closed pipe");
    assert!(
        stderr(&out).is_empty(),
        "{}",
        describe_output("closed pipe", &out)
    );

    // `thread TID` selects what `threads` says the thread was running.
    let out = rdlv(&["threads", path, "--format", "json"]);
    assert_exit(&out, 0, "threads --format json");
    let threads: serde_json::Value = serde_json::from_slice(&out.stdout).expect("threads JSON");
    for t in threads.as_array().expect("threads array") {
        let tid = t["tid"].as_u64().expect("tid").to_string();
        let out = rdlv(&[path, "-c", &format!("thread {tid}")]);
        match t["goroutine"].as_u64() {
            Some(goid) => {
                assert_exit(&out, 0, "thread TID");
                assert_eq!(
                    stdout(&out),
                    format!("Switched to thread {tid}, goroutine {goid}\n")
                );
            }
            None => {
                assert_exit(&out, 1, "thread without goroutine");
                assert!(
                    stderr(&out).contains("was not running a goroutine"),
                    "{}",
                    describe_output("thread", &out)
                );
            }
        }
    }

    let (goid, frame) = frame_of(path, "main.parkLocals");
    let home = tempfile::tempdir().expect("tempdir");
    let config_dir = home.path().join("config").join("rdlv");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    std::fs::write(
        config_dir.join("config.yml"),
        "aliases:\n  print: [pp]\nmax-string-len: 100\n",
    )
    .expect("write config");
    let script = format!(
        "pp main.nestedMap[\"odd\"]\npp main.bigText\np --format json main.points\np main.points --format json\n\
         goroutine {goid} frame {frame} args\ngoroutine {goid}\nframe {frame}\np name\nbt\ngrs\nlist\nregs\n"
    );
    let out = rdlv_in(home.path(), &[path], Some(&script));
    assert_exit(&out, 0, "values script");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // The expression keeps its quotes and brackets.
    assert!(lines[0].contains("[1,3]"), "{text}");
    // max-string-len from the configuration reaches print.
    let shown = lines[1]
        .strip_prefix('"')
        .and_then(|l| l.split("...+").next())
        .unwrap_or_else(|| panic!("truncated string expected: {}", lines[1]));
    assert_eq!(shown.len(), 100, "{}", lines[1]);
    assert_eq!(lines[2], r#"[{"X":1,"Y":2},{"X":-3,"Y":4}]"#);
    assert_eq!(
        lines[3], lines[2],
        "options after the expression, as on the command line"
    );
    assert!(
        text.contains("name = \"locals-test\""),
        "args of parkLocals: {text}"
    );
    // `p name` in the selected frame sees the argument; `bt` alone is the
    // selected goroutine's stack.
    assert!(text.contains("\n\"locals-test\"\n"), "{text}");
    assert!(text.contains(" in main.parkLocals\n"), "{text}");
    // `goroutines` marks the selected goroutine as Delve does.
    assert!(text.contains(&format!("\n* Goroutine {goid} - ")), "{text}");
    // `list` shows the source (the corpus tree is on this machine) with the
    // current line marked; `regs` of an outer frame gives pc, sp and cfa.
    assert!(text.contains("/corpus/cmd/values/main.go:"), "{text}");
    assert!(text.contains("\n=>"), "{text}");
    assert!(
        text.contains(&format!("Goroutine {goid}, frame {frame} (an outer frame")) || frame == 0,
        "{text}"
    );
    assert!(text.contains("       Rip = 0x"), "{text}");
}

/// The `[N goroutines]` total a listing ends with.
fn listed(text: &str) -> usize {
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix('[')?
                .strip_suffix(" goroutines]")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no [N goroutines] line in:\n{text}"))
}

/// Goroutine ids of a listing's `Goroutine N - ...` lines, in order.
fn listed_ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let rest = l
                .trim_start_matches(['\t', ' ', '*'])
                .strip_prefix("Goroutine ")?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

/// One REPL command through `rdlv SNAP -c CMD`, which must succeed.
fn repl_ok(path: &str, command: &str) -> String {
    let out = rdlv(&[path, "-c", command]);
    assert_exit(&out, 0, command);
    stdout(&out)
}

#[test]
fn delve_goroutines_forms_in_the_repl_and_on_the_command_line() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let user = repl_ok(path, "goroutines");
    let all = repl_ok(path, "goroutines --system");
    let user_ids = listed_ids(&user);
    let all_ids = listed_ids(&all);
    assert_eq!(user_ids.len(), listed(&user));
    assert!(all_ids.len() > user_ids.len(), "runtime goroutines exist");

    // -with/-without user: Delve's user goroutines (all of them listed, as Delve does).
    let with_user = repl_ok(path, "goroutines -with user");
    assert_eq!(listed_ids(&with_user), user_ids, "{with_user}");
    let without_user = repl_ok(path, "goroutines -wo user");
    let system: Vec<u64> = all_ids
        .iter()
        .copied()
        .filter(|id| !user_ids.contains(id))
        .collect();
    assert_eq!(listed_ids(&without_user), system, "{without_user}");

    // -with userloc TEXT keeps lines whose user location contains TEXT;
    // -without drops exactly those.
    let with_loc = repl_ok(path, "goroutines -with userloc main.chanRecv");
    let with_ids = listed_ids(&with_loc);
    assert_eq!(with_ids.len(), 1, "{with_loc}");
    assert!(with_loc.contains("main.chanRecv"), "{with_loc}");
    let without_loc = repl_ok(path, "goroutines -without userloc main.chanRecv");
    assert_eq!(
        listed(&without_loc) + with_ids.len(),
        user_ids.len(),
        "{without_loc}"
    );
    let labelled = repl_ok(path, "goroutines -w label tenant=acme -l");
    assert_eq!(listed(&labelled), 1, "{labelled}");
    assert!(labelled.contains("tenant=\"acme\""), "{labelled}");
    assert_eq!(
        listed(&repl_ok(path, "goroutines -with label tenant=other")),
        0
    );
    let running = repl_ok(path, "goroutines -with running");
    for line in running.lines().filter(|l| l.contains("Goroutine ")) {
        assert!(line.contains("(thread "), "{running}");
    }
    let go_loc = repl_ok(path, "goroutines -g -with goloc main.main");
    assert!(
        listed(&go_loc) >= 10,
        "most are started by main.main: {go_loc}"
    );

    // -group user: Delve's groups, sorted by key, 5 shown each, totals.
    let grouped = repl_ok(path, "goroutines -group user");
    let lines: Vec<&str> = grouped.lines().collect();
    assert_eq!(lines[0], "user=false", "{grouped}");
    let totals: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("\tTotal: ")?.parse().ok())
        .collect();
    assert_eq!(totals, vec![system.len(), user_ids.len()], "{grouped}");
    assert!(lines.contains(&"user=true"), "{grouped}");
    assert!(
        listed_ids(&grouped).len() <= 10,
        "at most 5 per group:\n{grouped}"
    );
    assert!(grouped.contains("\n\t  Goroutine "), "{grouped}");
    let by_label = repl_ok(path, "goroutines -group label tenant");
    assert!(
        by_label.starts_with("tenant=\n") && by_label.contains("\ntenant=acme\n\t"),
        "{by_label}"
    );
    let by_loc = repl_ok(path, "goroutines -group startloc");
    let group_total: usize = by_loc
        .lines()
        .filter_map(|l| l.strip_prefix("\tTotal: ")?.parse::<usize>().ok())
        .sum();
    assert_eq!(group_total, user_ids.len(), "{by_loc}");
    assert!(by_loc.contains(" in main.chanRecv\n"), "{by_loc}");
    // The command line takes the same definition.
    let out = rdlv(&["goroutines", path, "--group", "user"]);
    assert_exit(&out, 0, "goroutines SNAP --group user");
    assert_eq!(stdout(&out), grouped);
    // `--group` alone stays rdlv's grouping by identical stack.
    assert!(repl_ok(path, "goroutines --group").contains(" groups]\n"));

    // -t: each goroutine's stack under its line, Delve's layout.
    let stacks = repl_ok(path, "goroutines -with userloc main.chanRecv -t 1");
    let stack_lines: Vec<&str> = stacks.lines().filter(|l| l.starts_with('\t')).collect();
    assert_eq!(
        stack_lines.len(),
        4,
        "two frames, two lines each:\n{stacks}"
    );
    assert!(stack_lines[0].starts_with("\t0  0x"), "{stacks}");
    assert!(stack_lines[1].starts_with("\t    at /"), "{stacks}");

    // -exec runs the command in every listed goroutine.
    let exec = repl_ok(path, "goroutines -with userloc main.c -exec bt -full");
    let ids = listed_ids(&exec);
    assert!(ids.len() >= 2, "{exec}");
    let tops = exec.lines().filter(|l| l.starts_with(" 0  0x")).count();
    assert_eq!(tops, ids.len(), "one bt per goroutine:\n{exec}");
    let exec = repl_ok(path, "goroutines -w label tenant -exec goroutine");
    assert!(
        exec.contains(&format!(
            "Goroutine {}, frame 0: ",
            listed_ids(&exec).first().expect("one goroutine")
        )),
        "{exec}"
    );

    // Today's forms still work after the Delve ones.
    let script = "grs -u\ngoroutine 1\nbt -full\nframe 1\nup\ndown 2\nlocals\nargs\np main.never\nvars ^main\\.\nthreads\nhelp goroutines\n";
    let home = tempfile::tempdir().expect("tempdir");
    let out = rdlv_in(home.path(), &[path], Some(script));
    assert_exit(&out, 0, "today's REPL forms");
    let text = stdout(&out);
    assert!(text.contains("Switched to goroutine 1"), "{text}");
    assert!(text.contains("Goroutine 1, frame 2: "), "{text}");
    assert!(text.contains("Goroutine 1, frame 0: "), "{text}");
    assert!(text.contains("chan int"), "p main.never: {text}");
    assert!(
        text.contains("-group userloc|curloc|goloc|startloc|running|user"),
        "{text}"
    );

    // Mistakes are usage errors that say what to type.
    for (command, want) in [
        ("goroutines -with user readLoop", "-with userloc readLoop"),
        ("goroutines -group bogus", "expected userloc, curloc"),
        ("goroutines -group label", "-group label needs a KEY"),
        (
            "goroutines -with userloc",
            "needs to be followed by an expression",
        ),
        (
            "goroutines --format json -exec bt",
            "-exec works with --format text",
        ),
    ] {
        let out = rdlv(&[path, "-c", command]);
        assert_exit(&out, 2, command);
        assert!(
            stderr(&out).contains(want),
            "{}",
            describe_output(command, &out)
        );
    }
}

/// Runs `command` (a shell line) on a pseudo-terminal and returns what it showed.
fn on_pty(command: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("NO_COLOR")
        // The pty carries stderr too: keep the progress bar (shown after 1 s
        // on a terminal, which a loaded machine reaches) out of the colour
        // checks unless the caller asks for it.
        .env("RDLV_PROGRESS_AFTER_MS", "3600000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("run script(1) from util-linux; install util-linux if missing");
    assert!(out.status.success(), "{}", describe_output(command, &out));
    stdout(&out)
}

#[test]
fn color_follows_the_flag_the_terminal_and_no_color() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let bold_func = "\x1b[1mmain.main\x1b[0m";
    let out = rdlv(&["--color", "always", "bt", path, "1"]);
    assert_exit(&out, 0, "bt --color always");
    let text = stdout(&out);
    assert!(text.contains(bold_func), "{text:?}");
    assert!(text.contains("\x1b[1mproc.go:"), "basename bold: {text:?}");
    // NO_COLOR does not override an explicit --color always.
    let mut cmd = Command::new(rdlv_path());
    let out = cmd
        .args(["bt", path, "1", "--color=always"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run rdlv");
    assert!(stdout(&out).contains(bold_func));
    // never, and auto into a pipe: no escape codes at all.
    for args in [
        &["--color", "never", "bt", path, "1"][..],
        &["bt", path, "1"][..],
    ] {
        let out = rdlv(args);
        assert_exit(&out, 0, "bt without colour");
        assert!(!out.stdout.contains(&0x1b), "{}", stdout(&out));
    }
    // The REPL colours the same way (and `list` as Delve: yellow arrow, blue numbers).
    let out = rdlv(&[
        "--color",
        "always",
        path,
        "-c",
        "goroutine 1",
        "-c",
        "frame 1",
        "-c",
        "list",
    ]);
    assert_exit(&out, 0, "repl --color always");
    let text = stdout(&out);
    assert!(text.contains("\x1b[33m=>\x1b[0m\x1b[34m"), "{text:?}");
    // Goroutine listings stay plain, as in Delve.
    let out = rdlv(&["--color", "always", "goroutines", path]);
    assert!(!out.stdout.contains(&0x1b), "{}", stdout(&out));
    // auto on a terminal colours; NO_COLOR turns it off.
    let rdlv_bin = rdlv_path();
    let line = format!("{} bt {path} 1", rdlv_bin.display());
    assert!(on_pty(&line, &[]).contains(bold_func));
    assert!(!on_pty(&line, &[("NO_COLOR", "1")]).contains('\x1b'));
}

#[test]
fn progress_shows_on_a_terminal_only_when_asked_by_time() {
    let (_target, snap) = parked_snapshot();
    let path = snap.path().to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = dir.path().join("out.json");
    let line = format!(
        "{} goroutines {path} --format json > {}",
        rdlv_path().display(),
        sink.display()
    );
    // Shown at once when the delay is 0: a bar with the goroutine count.
    let shown = on_pty(&line, &[("RDLV_PROGRESS_AFTER_MS", "0")]);
    assert!(shown.contains("listing goroutines"), "{shown:?}");
    // The default delay of one second: a quick command shows nothing.
    let quiet = on_pty(&line, &[]);
    assert!(!quiet.contains("listing goroutines"), "{quiet:?}");
    // Not a terminal: never, whatever the delay.
    let out = Command::new(rdlv_path())
        .args(["goroutines", path])
        .env("RDLV_PROGRESS_AFTER_MS", "0")
        .output()
        .expect("run rdlv");
    assert!(
        stderr(&out).is_empty(),
        "{}",
        describe_output("piped", &out)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sink).expect("output")).expect("json intact");
    assert!(json.as_array().is_some_and(|a| a.len() >= 10));
}

#[test]
fn completion_scripts_and_man_pages_come_from_the_definitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, check) in [
        ("bash", &["bash", "-n"][..]),
        ("zsh", &["zsh", "-n"][..]),
        ("fish", &["fish", "--no-execute"][..]),
    ] {
        let out = rdlv(&["completion", shell]);
        assert_exit(&out, 0, &format!("completion {shell}"));
        let script = stdout(&out);
        for word in ["goroutines", "color", "exe", "without"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
        let file = dir.path().join(format!("rdlv.{shell}"));
        std::fs::write(&file, &script).expect("write script");
        let out = Command::new(check[0])
            .args(&check[1..])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("run {} ({e}); .ci/run must install it", check[0]));
        assert!(out.status.success(), "{}", describe_output(shell, &out));
    }
    // bash: loading the script registers the completion, and it completes
    // the commands and the REPL's aliases (one definition).
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; complete -p rdlv; COMP_WORDS=(rdlv g); COMP_CWORD=1; \
             _rdlv rdlv g rdlv; echo \"${{COMPREPLY[@]}}\"",
            dir.path().join("rdlv.bash").display()
        ))
        .output()
        .expect("bash");
    let text = stdout(&out);
    assert!(
        text.contains("-F _rdlv rdlv"),
        "{}",
        describe_output("bash", &out)
    );
    let words: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(
        words.contains(&"goroutines") && words.contains(&"grs"),
        "{}",
        describe_output("bash", &out)
    );

    let out = rdlv(&["man"]);
    assert_exit(&out, 0, "man");
    assert!(stdout(&out).starts_with(".ie") || stdout(&out).contains(".TH rdlv 1"));
    let pages = dir.path().join("man");
    let out = rdlv(&["man", "-o", pages.to_str().expect("utf-8")]);
    assert_exit(&out, 0, "man -o");
    for page in [
        "rdlv.1",
        "rdlv-goroutines.1",
        "rdlv-bt.1",
        "rdlv-completion.1",
    ] {
        let text = std::fs::read_to_string(pages.join(page)).expect("page written");
        assert!(text.contains(".TH"), "{page}");
    }
    let goroutines = std::fs::read_to_string(pages.join("rdlv-goroutines.1")).expect("page");
    assert!(
        goroutines.contains("\\-\\-with") && goroutines.contains("SNAP"),
        "{goroutines}"
    );
}

/// `--exe` whose build id differs from the one recorded at capture is
/// compared with the executable in the snapshot. A copy whose Go build id
/// alone is changed (another build of the same code, every loaded section
/// byte for byte) is accepted, and stderr says what was compared. A build
/// of the same source without `-ldflags=-s -w`, given for a capture of the
/// `-s -w` build, is refused with the address of the first difference: the
/// build settings it records move what follows them.
#[test]
fn exe_with_another_build_id_is_compared_with_the_captured_executable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start("parked", DEFAULT_GO, Variant::Default, &[]);
    let snap = target.capture(&[]);
    let path = snap.path().to_str().expect("utf-8");
    let info = rdlv(&["info", path, "--format", "json"]);
    assert_exit(&info, 0, "info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info json");
    let id = info["process"]["go_build_id"]
        .as_str()
        .expect("a Go build id recorded at capture")
        .to_string();
    let mut bytes = std::fs::read(target.binary()).expect("read the binary");
    let at = bytes
        .windows(id.len())
        .position(|w| w == id.as_bytes())
        .expect("the build id in the binary");
    let last = at + id.len() - 1;
    bytes[last] = if bytes[last] == b'x' { b'y' } else { b'x' };
    let twin = dir.path().join("twin");
    std::fs::write(&twin, &bytes).expect("write the twin");
    let twin = twin.to_str().expect("utf-8");
    let plain = rdlv(&["goroutines", path]);
    assert_exit(&plain, 0, "goroutines");
    let out = rdlv(&["--exe", twin, "goroutines", path]);
    assert_exit(&out, 0, "goroutines with a twin of another build id");
    assert_eq!(
        stdout(&out),
        stdout(&plain),
        "the twin answers as the binary"
    );
    assert!(
        stderr(&out).contains("byte for byte") && stderr(&out).contains("loaded sections"),
        "{}",
        describe_output("twin accepted", &out)
    );

    let stripped = Target::start("parked", DEFAULT_GO, Variant::Stripped, &[]);
    let snap = stripped.capture(&[]);
    let path = snap.path().to_str().expect("utf-8");
    let unstripped = rdlv_e2e::build_corpus("parked", DEFAULT_GO, Variant::Default);
    let unstripped = unstripped.to_str().expect("utf-8");
    let out = rdlv(&["--exe", unstripped, "goroutines", path]);
    assert_exit(&out, 3, "goroutines with the build without -s -w");
    let err = stderr(&out);
    assert!(
        err.contains("is not the binary this snapshot was taken from")
            && err.contains("the first difference is at 0x"),
        "{}",
        describe_output("-s -w twin refused", &out)
    );
}
