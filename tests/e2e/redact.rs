//! `rdlv redact` (issue 10): the redacted snapshot of a `heap -canary`
//! target answers `goroutines` (both forms), `threads --stacks` and `sched`
//! byte for byte as the original does, holds none of the secret anywhere in
//! its memory or its file, reads removed memory as a "redacted" error (exit
//! 1), says so in `info`, is much smaller, and damaged input is a clear
//! error that leaves no output behind.

use std::path::Path;
use std::process::{Command, Output};

use rdlv_e2e::{describe_output, rdlv_path, rdlv_snap_path, Target, Variant, DEFAULT_GO};
use rdlv_format::{RangeKind, Snapshot};

/// Bytes of the `heap` program's random secret.
const CANARY_LEN: usize = 32 << 10;
/// Length of each window of the secret searched for.
const WINDOW: usize = 24;

fn rdlv(args: &[&str]) -> Output {
    Command::new(rdlv_path())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rdlv")
}

fn ok(args: &[&str]) -> String {
    let out = rdlv(args);
    assert!(
        out.status.success(),
        "{}",
        describe_output(&args.join(" "), &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The secret bytes from the `CANARY 0x<addr> <len> <hex>` line.
fn canary(target: &Target) -> Vec<u8> {
    let value = target.line_value("CANARY").expect("CANARY line");
    let hex = value.split_whitespace().nth(2).expect("canary bytes");
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// How many `WINDOW`-byte windows of `secret` (one every `WINDOW` bytes)
/// occur in `haystack`.
fn windows_in(haystack: &[u8], secret: &[u8]) -> usize {
    let wanted: std::collections::HashSet<&[u8]> = secret.chunks_exact(WINDOW).collect();
    let mut found = std::collections::HashSet::new();
    for w in haystack.windows(WINDOW) {
        if wanted.contains(w) {
            found.insert(w);
        }
    }
    found.len()
}

/// Every readable byte of the snapshot's memory, decompressed, in address order.
fn all_memory(path: &Path) -> Vec<u8> {
    let snap = Snapshot::open(path).expect("open");
    let mut all = Vec::new();
    for r in snap.memory_ranges() {
        if r.kind == RangeKind::Data {
            let mut buf = vec![0u8; r.len as usize];
            snap.read_memory(r.addr, &mut buf)
                .expect("read a data range");
            all.extend_from_slice(&buf);
        }
    }
    all
}

fn capture(target: &Target, path: &Path) {
    let out = Command::new(rdlv_snap_path())
        .arg(target.pid().to_string())
        .arg("-o")
        .arg(path)
        .output()
        .expect("run rdlv-snap");
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap", &out)
    );
}

#[test]
fn redacted_snapshot_answers_the_stack_analyses_and_holds_no_secret() {
    let target = Target::start(
        "heap",
        DEFAULT_GO,
        Variant::Default,
        &["-mb", "8", "-canary", &CANARY_LEN.to_string()],
    );
    let secret = canary(&target);
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = dir.path().join("x.snap");
    let red = dir.path().join("r.snap");
    capture(&target, &orig);
    let (o, r) = (
        orig.to_str().expect("utf-8 path"),
        red.to_str().expect("utf-8 path"),
    );
    let out = rdlv(&["redact", o, "-o", r]);
    assert!(out.status.success(), "{}", describe_output("redact", &out));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("rdlv: wrote") && summary.contains("kept"),
        "{summary}"
    );
    assert!(out.stdout.is_empty());

    // (1) The analyses answer byte for byte as on the original.
    for args in [
        &["goroutines"][..],
        &["goroutines", "--format", "go"],
        &["goroutines", "--group"],
        &["threads", "--stacks"],
        &["sched"],
    ] {
        let mut a = args.to_vec();
        a.insert(1, o);
        let want = ok(&a);
        a[1] = r;
        let got = ok(&a);
        assert!(!want.is_empty());
        assert_eq!(
            got,
            want,
            "`rdlv {}` differs on the redacted snapshot",
            args.join(" ")
        );
    }

    // `bt` of every goroutine too: it walks with the same unwinder but is
    // not among the analyses whose reads are kept.
    let ids: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&ok(&["goroutines", o, "--format", "json"]))
            .expect("goroutines json")
            .as_array()
            .expect("an array")
            .iter()
            .map(|g| g["id"].to_string())
            .collect();
    assert!(!ids.is_empty());
    for id in &ids {
        assert_eq!(
            ok(&["bt", r, id]),
            ok(&["bt", o, id]),
            "`rdlv bt {id}` differs on the redacted snapshot"
        );
    }

    // (2) The secret is in the original's memory, nowhere in the redacted
    // file's memory or in its bytes.
    let n = secret.len() / WINDOW;
    assert_eq!(windows_in(&all_memory(&orig), &secret), n);
    assert_eq!(windows_in(&all_memory(&red), &secret), 0);
    assert_eq!(windows_in(&std::fs::read(&red).expect("read"), &secret), 0);
    ok(&["verify", r]);

    // (3) A heap value reads as redacted, not as zeros.
    let out = rdlv(&["print", r, "main.secrets"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe_output("print", &out)
    );
    assert!(stderr.contains("was redacted"), "{stderr}");
    assert!(ok(&["print", o, "main.secrets"]).contains("map["));

    // --keep keeps a variable's own bytes: its slice header now prints,
    // and the heap array it points to still reads as redacted, inline.
    let kept = dir.path().join("k.snap");
    let k = kept.to_str().expect("utf-8 path");
    ok(&["redact", o, "-o", k, "--keep", "main.pattern"]);
    let without = rdlv(&["print", r, "main.pattern"]);
    assert_eq!(
        without.status.code(),
        Some(1),
        "{}",
        describe_output("print", &without)
    );
    let with = ok(&["print", k, "main.pattern"]);
    assert!(
        with.starts_with("[]uint8 len: 65536, cap: 65536, [(unreadable memory at"),
        "{with}"
    );
    assert!(with.contains("was redacted"), "{with}");
    assert!(ok(&["info", k, "--format", "json"]).contains("main.pattern"));
    let out = rdlv(&["redact", o, "-o", k, "--keep", "main.nosuch"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe_output("redact --keep", &out)
    );

    // (4) info says so.
    let info = ok(&["info", r]);
    assert!(info.contains("Redacted   by rdlv"), "{info}");
    assert!(info.contains("format 1.2"), "{info}");
    assert!(!ok(&["info", o]).contains("Redacted"));

    // (5) Much smaller.
    let (a, b) = (
        std::fs::metadata(&orig).expect("stat").len(),
        std::fs::metadata(&red).expect("stat").len(),
    );
    eprintln!(
        "redact: {a} -> {b} bytes (ratio {:.1})",
        a as f64 / b as f64
    );
    let mem_a = all_memory(&orig).len();
    let mem_b = all_memory(&red).len();
    eprintln!("redact: memory kept {mem_b} of {mem_a} bytes");
    let exe_of = |p: &Path| -> u64 {
        let snap = Snapshot::open(p).expect("open");
        snap.embedded_files()
            .iter()
            .map(|f| f.compressed_size)
            .sum()
    };
    let (xa, xb) = (exe_of(&orig), exe_of(&red));
    eprintln!(
        "redact: without the embedded executable {} -> {} bytes (ratio {:.1})",
        a - xa,
        b - xb,
        (a - xa) as f64 / (b - xb) as f64
    );
    assert!(
        mem_b * 20 < mem_a,
        "kept {mem_b} of {mem_a} bytes of memory"
    );
    assert!(b < a, "{b} >= {a}");
}

#[test]
fn damaged_input_is_a_clear_error_and_leaves_no_output() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "4"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = dir.path().join("x.snap");
    capture(&target, &orig);
    let mut bytes = std::fs::read(&orig).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let bad = dir.path().join("bad.snap");
    std::fs::write(&bad, &bytes).expect("write");
    let outdir = tempfile::tempdir().expect("tempdir");
    let red = outdir.path().join("r.snap");
    let out = rdlv(&[
        "redact",
        bad.to_str().expect("utf-8"),
        "-o",
        red.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        describe_output("redact", &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(outdir.path()).expect("ls").collect();
    assert!(left.is_empty(), "redact left {left:?}");
}

#[test]
fn pprof_label_values_are_removed_unless_keep_labels() {
    // `parked` runs one goroutine under pprof.Do(tenant=acme).
    let target = Target::start("parked", DEFAULT_GO, Variant::Default, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = dir.path().join("x.snap");
    let red = dir.path().join("r.snap");
    let kept = dir.path().join("l.snap");
    capture(&target, &orig);
    let (o, r, l) = (
        orig.to_str().expect("utf-8 path"),
        red.to_str().expect("utf-8 path"),
        kept.to_str().expect("utf-8 path"),
    );
    ok(&["redact", o, "-o", r]);
    ok(&["redact", o, "-o", l, "--keep-labels"]);
    let labelled = ok(&["goroutines", o, "-l"]);
    assert!(labelled.contains("tenant=\"acme\""), "{labelled}");
    // Without --keep-labels the label map is gone and the goroutine says
    // so; no other goroutine claims labels.
    let redacted = ok(&["goroutines", r, "-l"]);
    assert!(!redacted.contains("acme"), "{redacted}");
    let line_of = |text: &str, needle: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains(needle))
            .map(|line| line.split(" labels").next().unwrap_or(line).to_string())
            .collect()
    };
    let want = line_of(&labelled, "tenant=");
    assert_eq!(want.len(), 1, "{labelled}");
    assert_eq!(line_of(&redacted, "labels{<redacted>}"), want, "{redacted}");
    // "acme" is a string constant, so its bytes are in the executable (which
    // travels); what redaction removes is the heap label map pointing at it.

    // With --keep-labels they read as on the original, the other analyses
    // are unchanged, and info names the extra analysis.
    assert_eq!(ok(&["goroutines", l, "-l"]), labelled);
    assert_eq!(
        ok(&["goroutines", l, "--format", "go"]),
        ok(&["goroutines", o, "--format", "go"])
    );
    assert!(ok(&["info", l]).contains("goroutines -l"));
    assert!(!ok(&["info", r]).contains("goroutines -l"));
}

/// `rdlv print SNAP EXPR` on the `secrets` program.
fn print(snap: &str, expr: &str) -> Output {
    rdlv(&["print", snap, expr])
}

fn quoted(target: &Target, line: &str) -> String {
    format!("\"{}\"\n", target.line_value(line).expect("a value line"))
}

/// The `kept_values` of `rdlv info SNAP --format json`.
fn kept_values(snap: &str) -> Vec<serde_json::Value> {
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["info", snap, "--format", "json"])).expect("info json");
    info["redaction"]["kept_values"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn assert_redacted(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", describe_output(what, out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was redacted"), "{what}: {stderr}");
}

#[test]
fn keep_expressions_keep_what_they_designate_and_refuse_key_material() {
    let target = Target::start("secrets", DEFAULT_GO, Variant::Default, &[]);
    let secret = canary(&target);
    let dir = tempfile::tempdir().expect("tempdir");
    let orig = dir.path().join("x.snap");
    capture(&target, &orig);
    let o = orig.to_str().expect("utf-8 path");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();

    // Shallow: a string keeps its header, not its bytes.
    let shallow = path("shallow.snap");
    ok(&["redact", o, "-o", &shallow, "--keep", "main.cfg.Name"]);
    assert_redacted(&print(&shallow, "main.cfg.Name"), "print main.cfg.Name");
    let kept = kept_values(&shallow);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["expr"], "main.cfg.Name");
    assert_eq!(kept[0]["type"], "string");
    assert_eq!(kept[0]["deep"], false);
    assert_eq!(kept[0]["bytes"], 16);

    // Deep: what the values reach, through fields, pointers and a map index.
    let deep = path("deep.snap");
    let out = rdlv(&[
        "redact",
        o,
        "-o",
        &deep,
        "--keep",
        "main.cfg",
        "--keep",
        "main.srv.Name",
        "--keep",
        "main.cache[\"k\"]",
        "--keep-deep",
    ]);
    assert!(out.status.success(), "{}", describe_output("redact", &out));
    let printed = |expr: &str| {
        let out = print(&deep, expr);
        assert!(out.status.success(), "{}", describe_output(expr, &out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(printed("main.cfg.Name"), quoted(&target, "NAME"));
    assert_eq!(printed("main.cfg.Owner.Login"), quoted(&target, "LOGIN"));
    assert_eq!(
        printed("main.cfg.Tags[1]"),
        format!("\"green-{}\"\n", target.pid())
    );
    // Through a pointer: the pointer word on the way was kept.
    assert_eq!(
        printed("main.srv.Name"),
        format!("\"api-{}\"\n", target.pid())
    );
    // ... but not the rest of what it points to.
    assert_redacted(&print(&deep, "main.srv.Addr"), "print main.srv.Addr");
    // A map index keeps the value, not the buckets searched for it: the
    // value prints by the address info lists.
    assert_redacted(&print(&deep, "main.cache[\"k\"]"), "print main.cache");
    let kept = kept_values(&deep);
    let cached = kept
        .iter()
        .find(|k| k["expr"] == "main.cache[\"k\"]")
        .expect("the map value is listed");
    assert_eq!(cached["deep"], true);
    let addr = cached["addr"].as_u64().expect("addr");
    assert_eq!(
        printed(&format!("*(*string)({addr:#x})")),
        quoted(&target, "CACHED")
    );
    let info = ok(&["info", &deep]);
    assert!(
        info.contains("kept       main.cfg (main.Config at 0x"),
        "{info}"
    );
    // The stack analyses are unchanged, and the secret in the same map is
    // nowhere.
    assert_eq!(
        ok(&["goroutines", &deep, "--format", "go"]),
        ok(&["goroutines", o, "--format", "go"])
    );
    assert_eq!(
        windows_in(&all_memory(&orig), &secret),
        secret.len() / WINDOW
    );
    assert_eq!(windows_in(&all_memory(Path::new(&deep)), &secret), 0);
    assert_eq!(windows_in(&std::fs::read(&deep).expect("read"), &secret), 0);

    // A collection longer than the loader takes is kept in part, and says so.
    let cut = path("cut.snap");
    let out = rdlv(&[
        "redact",
        o,
        "-o",
        &cut,
        "--keep",
        "main.many",
        "--keep-deep",
    ]);
    assert!(out.status.success(), "{}", describe_output("redact", &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: --keep-deep main.many"),
        "{stderr}"
    );
    assert!(ok(&["info", &cut]).contains("cut short"));

    // Key material, by structure: refused with the path, exit 1, no output.
    let refused = path("refused.snap");
    for (args, path_to_key) in [
        (
            &["--keep", "main.srv"][..],
            "main.srv.TLSConfig -> crypto/tls.Config",
        ),
        (
            &["--keep", "main.srv.TLSConfig"],
            "main.srv.TLSConfig -> crypto/tls.Config",
        ),
        (
            &["--keep", "main.vault"],
            "main.vault.Holders[i].Priv -> crypto/ecdsa.PrivateKey",
        ),
        (&["--keep", "main.signer"], "main.signer -> crypto.Signer"),
        // Behind an `any`: only the deep keep sees the dynamic value.
        (
            &["--keep", "main.anyKey", "--keep-deep"],
            "main.anyKey -> crypto/ecdsa.PrivateKey",
        ),
    ] {
        let mut a = vec!["redact", o, "-o", &refused];
        a.extend_from_slice(args);
        let out = rdlv(&a);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            describe_output("redact", &out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(path_to_key) && stderr.contains("--force"),
            "{args:?}: {stderr}"
        );
        assert!(!Path::new(&refused).exists());
    }
    ok(&["redact", o, "-o", &refused, "--keep", "main.anyKey"]);
    ok(&["redact", o, "-o", &refused, "--keep", "main.srv", "--force"]);
}

/// Runs `rdlv-snap ARGS` with `RDLV` pointing at the analyzer under test and
/// `TMPDIR` at `tmp`.
fn snap_redact(args: &[&std::ffi::OsStr], tmp: &Path) -> Output {
    Command::new(rdlv_snap_path())
        .args(args)
        .env("RDLV", rdlv_path())
        .env("TMPDIR", tmp)
        .output()
        .expect("run rdlv-snap")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rdlv_snap_redact_writes_only_the_redacted_snapshot() {
    use std::ffi::OsStr;
    let target = Target::start("secrets", DEFAULT_GO, Variant::Default, &[]);
    let secret = canary(&target);
    let pid = target.pid().to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let orig = work.path().join("x.snap");
    let red = work.path().join("r.snap");
    capture(&target, &orig);
    let keep = ["--keep", "main.cfg", "--keep-deep", "--keep-labels"];
    let (o, r) = (orig.to_str().expect("utf-8"), red.to_str().expect("utf-8"));
    let mut a = vec!["redact", o, "-o", r];
    a.extend_from_slice(&keep);
    ok(&a);

    let snap = out_dir.path().join("c.snap");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new(&pid),
        OsStr::new("--redact"),
        OsStr::new("-o"),
        snap.as_os_str(),
    ];
    args.extend(keep.iter().map(OsStr::new));
    let out = snap_redact(&args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap --redact", &out)
    );
    let c = snap.to_str().expect("utf-8");
    let go = |s: &str| ok(&["goroutines", s, "--format", "go"]);
    assert_eq!(go(c), go(r), "rdlv-snap --redact differs from rdlv redact");
    assert_eq!(go(c), go(o));
    let info = ok(&["info", c]);
    assert!(info.contains("Redacted   by rdlv"), "{info}");
    assert!(
        info.contains("goroutines -l") && info.contains("kept       main.cfg"),
        "{info}"
    );
    assert_eq!(
        ok(&["print", c, "main.cfg.Owner.Login"]),
        quoted(&target, "LOGIN")
    );

    // Encrypted as it streams: only ciphertext on the disk; decrypted, the
    // same redacted snapshot.
    let (key, recipient) = {
        let key = work.path().join("key.txt");
        let keygen = rdlv_e2e::workspace_root().join(".toolchains/bin/age-keygen");
        let gen = Command::new(&keygen)
            .arg("-o")
            .arg(&key)
            .output()
            .expect("age-keygen");
        assert!(
            gen.status.success(),
            "{}",
            describe_output("age-keygen", &gen)
        );
        let pubkey = Command::new(&keygen)
            .arg("-y")
            .arg(&key)
            .output()
            .expect("age-keygen -y");
        (
            key,
            String::from_utf8_lossy(&pubkey.stdout).trim().to_string(),
        )
    };
    let enc = out_dir.path().join("e.snap");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new(&pid),
        OsStr::new("--redact"),
        OsStr::new("-o"),
        enc.as_os_str(),
        OsStr::new("--encrypt-to"),
        OsStr::new(&recipient),
    ];
    args.extend(keep.iter().map(OsStr::new));
    let out = snap_redact(&args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap --redact --encrypt-to", &out)
    );
    let k = key.to_str().expect("utf-8");
    let e = enc.to_str().expect("utf-8");
    assert_eq!(ok(&["-i", k, "goroutines", e, "--format", "go"]), go(r));
    assert!(ok(&["-i", k, "info", e]).contains("Redacted   by rdlv"));
    let plain = work.path().join("e-plain.snap");
    let dec = Command::new(rdlv_e2e::workspace_root().join(".toolchains/bin/age"))
        .args(["-d", "-i", k, "-o"])
        .arg(&plain)
        .arg(&enc)
        .output()
        .expect("age -d");
    assert!(dec.status.success(), "{}", describe_output("age -d", &dec));

    // --keep of key material: refused as `rdlv redact` refuses it, before
    // anything is written; with --force (rdlv-snap's one "I accept the
    // risk" switch) passed through and kept.
    let tls = out_dir.path().join("tls.snap");
    let tls_args = |force: bool| {
        let mut a: Vec<&OsStr> = vec![
            OsStr::new(&pid),
            OsStr::new("--redact"),
            OsStr::new("-o"),
            tls.as_os_str(),
            OsStr::new("--keep"),
            OsStr::new("main.srv"),
        ];
        if force {
            a.push(OsStr::new("--force"));
        }
        a
    };
    let out = snap_redact(&tls_args(false), tmp.path());
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("crypto/tls.Config")
            && !tls.exists(),
        "{}",
        describe_output("rdlv-snap --redact --keep main.srv", &out)
    );
    let out = snap_redact(&tls_args(true), tmp.path());
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap --redact --keep main.srv --force", &out)
    );
    assert!(ok(&["info", tls.to_str().expect("utf-8")]).contains("kept       main.srv"));
    std::fs::remove_file(&tls).expect("rm tls.snap");

    // -o -: the redacted snapshot on stdout.
    let out = snap_redact(
        &[
            OsStr::new(&pid),
            OsStr::new("--redact"),
            OsStr::new("-o"),
            OsStr::new("-"),
        ],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap --redact -o -", &out)
    );
    let piped = work.path().join("piped.snap");
    std::fs::write(&piped, &out.stdout).expect("write");
    let p = piped.to_str().expect("utf-8");
    assert!(ok(&["info", p]).contains("Redacted   by rdlv"));
    assert_eq!(ok(&["goroutines", p]), ok(&["goroutines", o]));

    // What rdlv-snap wrote: the two outputs, nothing in TMPDIR, and the
    // secret in none of them (the encrypted one checked in its plaintext).
    assert_eq!(files_in(out_dir.path()), ["c.snap", "e.snap"]);
    assert!(
        files_in(tmp.path()).is_empty(),
        "{:?}",
        files_in(tmp.path())
    );
    assert_eq!(
        windows_in(&all_memory(&orig), &secret),
        secret.len() / WINDOW
    );
    for f in [&snap, &enc, &plain, &piped] {
        assert_eq!(
            windows_in(&std::fs::read(f).expect("read"), &secret),
            0,
            "{}",
            f.display()
        );
    }
    for f in [&snap, &plain, &piped] {
        assert_eq!(windows_in(&all_memory(f), &secret), 0, "{}", f.display());
    }

    // Without an analyzer to run: a usage error that says how to provide
    // one, before the target is touched (it keeps running, no file).
    let lone = work.path().join("lone");
    std::fs::create_dir(&lone).expect("mkdir");
    let lone_snap = lone.join("rdlv-snap");
    std::fs::copy(rdlv_e2e::rdlv_snap_unwrapped_path(), &lone_snap).expect("copy rdlv-snap");
    let missing = out_dir.path().join("m.snap");
    let out = Command::new(&lone_snap)
        .arg(&pid)
        .arg("--redact")
        .arg("-o")
        .arg(&missing)
        .env_remove("RDLV")
        .env("PATH", "/nonexistent")
        .output()
        .expect("run rdlv-snap");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        describe_output("rdlv-snap --redact", &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--redact-with")
            && stderr.contains("RDLV=")
            && stderr.contains("nothing was stopped"),
        "{stderr}"
    );
    assert!(!missing.exists());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("target alive");
    assert!(status.contains("TracerPid:\t0\n"), "{status}");
    assert!(!status.contains("tracing stop"), "{status}");
}
