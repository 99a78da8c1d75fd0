//! `rdlv-snap --encrypt-to` and `rdlv -i` (issue 10): a capture encrypted to
//! age and SSH keys holds no plaintext, Go's own `age` tool decrypts it to a
//! snapshot `rdlv verify` accepts, rdlv opens files that `age -e` encrypted,
//! every command reads the encrypted file as it reads the plain one, and
//! damage, a wrong key or no key are clear exit-3 errors.
//!
//! Needs `.toolchains/bin/age` and `age-keygen` (Go's filippo.io/age v1.3.2,
//! installed by .ci/install-toolchains) and `ssh-keygen` (openssh-client):
//! these tests fail, never skip, without them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdlv_e2e::{describe_output, rdlv_path, rdlv_snap_path, Target, Variant, DEFAULT_GO};
use rdlv_format::{Identities, Snapshot, DEFAULT_CACHE_BYTES};

/// Bytes of the `heap` program's random secret.
const CANARY_LEN: usize = 32 << 10;
/// Length of each window of plaintext searched for in the files.
const WINDOW: usize = 24;
/// Distance between the windows taken from the decrypted snapshot file.
const FILE_WINDOW_STEP: usize = 256;

/// Go's age tools, from .toolchains/bin.
fn age_tool(name: &str) -> PathBuf {
    let path = rdlv_e2e::workspace_root()
        .join(".toolchains/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run .ci/install-toolchains (it installs filippo.io/age/cmd/...@v1.3.2)",
        path.display()
    );
    path
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(out.status.success(), "{}", describe_output(what, &out));
    out
}

/// An age X25519 key pair made by Go's `age-keygen`: (identity file, recipient).
fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    run(
        Command::new(age_tool("age-keygen")).arg("-o").arg(&key),
        "age-keygen",
    );
    let out = run(
        Command::new(age_tool("age-keygen")).arg("-y").arg(&key),
        "age-keygen -y",
    );
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    (key, recipient)
}

/// An SSH key pair without passphrase: (private key file, public key line).
fn ssh_keygen(dir: &Path, kind: &str) -> (PathBuf, String) {
    let key = dir.join(format!("id_{kind}"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "rdlv-test", "-f"])
        .arg(&key);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run ssh-keygen ({e}): install openssh-client (.ci/run does)")
    });
    assert!(
        out.status.success(),
        "{}",
        describe_output("ssh-keygen", &out)
    );
    let public = std::fs::read_to_string(key.with_extension("pub"))
        .expect("ssh-keygen wrote the .pub file")
        .trim()
        .to_string();
    (key, public)
}

/// `rdlv -i KEY ARGS...` (no key when `key` is None).
fn rdlv(key: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(rdlv_path());
    cmd.env_remove("RDLV_IDENTITY");
    if let Some(key) = key {
        cmd.arg("-i").arg(key);
    }
    cmd.args(args).output().expect("spawn rdlv")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `CANARY 0x<addr> <len> <hex>` line of `heap -canary N`.
fn canary(target: &Target) -> (u64, Vec<u8>) {
    let value = target.line_value("CANARY").expect("CANARY line");
    let mut words = value.split_whitespace();
    let addr = words
        .next()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .expect("canary address");
    let len: usize = words
        .next()
        .and_then(|l| l.parse().ok())
        .expect("canary length");
    let hex = words.next().expect("canary bytes");
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(bytes.len(), len);
    (addr, bytes)
}

/// The offsets into `source` of the `WINDOW`-byte windows, taken every
/// `step` bytes, that occur anywhere in `haystack` (one pass over it).
fn windows_found(haystack: &[u8], source: &[u8], step: usize) -> Vec<usize> {
    let mut wanted: std::collections::HashMap<&[u8], Vec<usize>> = Default::default();
    for at in (0..source.len().saturating_sub(WINDOW)).step_by(step) {
        wanted.entry(&source[at..at + WINDOW]).or_default().push(at);
    }
    let mut found: Vec<usize> = haystack
        .windows(WINDOW)
        .filter_map(|w| wanted.remove(w))
        .flatten()
        .collect();
    found.sort_unstable();
    found
}

/// Windows of the canary (every `WINDOW` bytes, so the whole secret) found
/// in `haystack`.
fn canary_windows_in(haystack: &[u8], canary: &[u8]) -> Vec<usize> {
    windows_found(haystack, canary, WINDOW)
}

/// Runs `rdlv-snap PID -o DIR/x.snap EXTRA...` and asserts success.
fn capture(target: &Target, path: &Path, extra: &[&str]) -> Output {
    run(
        Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .arg("-o")
            .arg(path)
            .args(extra),
        "rdlv-snap",
    )
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn encrypted_capture_holds_no_plaintext_and_go_age_decrypts_it() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, recipient) = age_keygen(keys.path(), "key.txt");
    let target = Target::start(
        "heap",
        DEFAULT_GO,
        Variant::Default,
        &["-mb", "8", "-canary", &CANARY_LEN.to_string()],
    );
    let (canary_addr, secret) = canary(&target);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let snap = out_dir.path().join("x.snap");
    let out = capture(&target, &snap, &["--encrypt-to", &recipient, "--json"]);

    // Nothing the capture wrote holds the secret: not the file, not its output.
    assert_eq!(
        entries(out_dir.path()),
        std::slice::from_ref(&snap),
        "only the snapshot is left"
    );
    let sealed = std::fs::read(&snap).expect("read snapshot");
    assert!(
        sealed.starts_with(b"age-encryption.org/v1\n"),
        "not an age file"
    );
    assert_eq!(
        std::fs::metadata(&snap).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(canary_windows_in(&sealed, &secret), Vec::<usize>::new());
    let hex: String = secret[..16].iter().map(|b| format!("{b:02x}")).collect();
    for stream in [&out.stdout, &out.stderr] {
        assert!(canary_windows_in(stream, &secret).is_empty());
        assert!(!String::from_utf8_lossy(stream).contains(&hex));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output");
    assert_eq!(
        json["file_bytes"].as_u64(),
        Some(sealed.len() as u64),
        "{json}"
    );
    assert_eq!(
        json["encrypted_to"],
        serde_json::json!(["X25519"]),
        "{json}"
    );

    // Go's age decrypts it to a snapshot rdlv verifies, holding the secret in
    // the clear: the search above would have found it unencrypted.
    let work = tempfile::tempdir().expect("tempdir");
    let plain = work.path().join("plain.snap");
    run(
        Command::new(age_tool("age"))
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(&plain)
            .arg(&snap),
        "age -d",
    );
    let plain_bytes = std::fs::read(&plain).expect("read decrypted snapshot");
    assert!(plain_bytes.starts_with(b"RDLVSNAP"));
    let verify = rdlv(None, &["verify", plain.to_str().expect("utf-8 path")]);
    assert!(
        verify.status.success(),
        "{}",
        describe_output("rdlv verify", &verify)
    );
    // The plaintext is a snapshot holding the secret (so the searches above
    // looked for something that was there to leak): read back decompressed.
    let decrypted = Snapshot::open(&plain).expect("open the decrypted snapshot");
    let mut got = vec![0u8; secret.len()];
    decrypted
        .read_memory(canary_addr, &mut got)
        .expect("read the canary from the decrypted snapshot");
    assert_eq!(got, secret, "the decrypted snapshot holds the secret");
    // The secret is compressed in the snapshot, so its raw bytes need not
    // appear in the plaintext file; the plaintext file's own bytes must not
    // appear in the encrypted one either (windows of it everywhere, the
    // compressed secret included).
    // (The search finds every window of the plaintext in the plaintext.)
    assert_eq!(
        windows_found(&plain_bytes, &plain_bytes, FILE_WINDOW_STEP).len(),
        (plain_bytes.len() - WINDOW).div_ceil(FILE_WINDOW_STEP)
    );
    let leaked = windows_found(&sealed, &plain_bytes, FILE_WINDOW_STEP);
    assert!(
        leaked.is_empty(),
        "{} of {} windows of the plaintext snapshot occur in the encrypted file (first at plaintext offset {:?})",
        leaked.len(),
        plain_bytes.len() / FILE_WINDOW_STEP,
        leaked.first()
    );
    // The same capture without --encrypt-to: a snapshot of the same process
    // with the same meaning (process, the secret, values, goroutines).
    plain_capture_means_the_same(&target, &plain, canary_addr, &secret);

    // The format crate reads the secret back through the decrypting source.
    let identities = Identities::from_file(&key).expect("identity file");
    let opened = Snapshot::open_with_identities(&snap, Some(&identities), DEFAULT_CACHE_BYTES)
        .expect("open encrypted snapshot");
    let mut got = vec![0u8; secret.len()];
    opened
        .read_memory(canary_addr, &mut got)
        .expect("read the canary");
    assert_eq!(got, secret);
    assert_eq!(opened.file_len(), plain_bytes.len() as u64);

    same_answers_encrypted_and_plain(&key, &snap, &plain);
}

/// A plain capture of `target` taken now says what the decrypted one says:
/// the same process, the secret at the same address, the same values, the
/// same goroutines (the heap program is parked: nothing runs but the runtime).
fn plain_capture_means_the_same(
    target: &Target,
    decrypted: &Path,
    canary_addr: u64,
    secret: &[u8],
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let direct = dir.path().join("direct.snap");
    capture(target, &direct, &[]);
    let direct_bytes = std::fs::read(&direct).expect("read plain capture");
    assert!(
        direct_bytes.starts_with(b"RDLVSNAP"),
        "plain capture is not a snapshot"
    );
    let a = Snapshot::open(decrypted).expect("open decrypted");
    let b = Snapshot::open(&direct).expect("open plain capture");
    assert_eq!(a.version(), b.version(), "format version");
    let (ma, mb) = (a.metadata(), b.metadata());
    assert_eq!(ma.process.pid, mb.process.pid);
    assert_eq!(ma.process.exe_path, mb.process.exe_path);
    assert_eq!(ma.process.cmdline, mb.process.cmdline);
    assert_eq!(ma.process.go_build_id, mb.process.go_build_id);
    assert_eq!(ma.process.go_version, mb.process.go_version);
    assert_eq!(
        a.embedded_file(rdlv_format::FileRole::Executable)
            .expect("exe"),
        b.embedded_file(rdlv_format::FileRole::Executable)
            .expect("exe"),
        "embedded executable"
    );
    let mut got = vec![0u8; secret.len()];
    b.read_memory(canary_addr, &mut got)
        .expect("read the canary");
    assert_eq!(got, secret);
    let (da, db) = (
        decrypted.to_str().expect("utf-8 path"),
        direct.to_str().expect("utf-8 path"),
    );
    for args in [
        &["print", "SNAP", "len(main.pattern)"][..],
        &["print", "SNAP", "main.pattern[100:104]", "--format", "json"],
        &["print", "SNAP", "len(main.secrets[\"token\"])"],
        &["goroutines", "SNAP", "--format", "json"],
    ] {
        let run_on = |snap: &str| {
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "SNAP" { snap } else { a })
                .collect();
            let out = rdlv(None, &args);
            assert!(
                out.status.success(),
                "{}",
                describe_output(&format!("rdlv {args:?}"), &out)
            );
            text(&out)
        };
        let (ta, tb) = (run_on(da), run_on(db));
        if args[0] == "goroutines" {
            // Ids and wait reasons: the same goroutines, parked the same way.
            let ids = |t: &str| -> Vec<(u64, String)> {
                let v: serde_json::Value = serde_json::from_str(t).expect("goroutines json");
                let list = v
                    .as_array()
                    .or_else(|| v["goroutines"].as_array())
                    .cloned()
                    .unwrap_or_default();
                let mut ids: Vec<(u64, String)> = list
                    .iter()
                    .map(|g| {
                        (
                            g["id"].as_u64().unwrap_or(0),
                            format!("{} {}", g["status"], g["wait_reason"]),
                        )
                    })
                    .collect();
                ids.sort();
                ids
            };
            let (ia, ib) = (ids(&ta), ids(&tb));
            assert!(!ia.is_empty(), "no goroutines in {ta}");
            assert_eq!(ia, ib, "goroutines of the decrypted and the plain capture");
        } else {
            if args[2].starts_with("len(main.secrets") {
                assert_eq!(ta.trim(), secret.len().to_string(), "the secret's length");
            }
            assert_eq!(
                ta, tb,
                "rdlv {args:?} on the decrypted and the plain capture"
            );
        }
    }
}

/// Every command gives the same output on the encrypted file (with its key,
/// by flag or by RDLV_IDENTITY) as on its decrypted copy.
fn same_answers_encrypted_and_plain(key: &Path, sealed: &Path, plain: &Path) {
    let sealed_s = sealed.to_str().expect("utf-8 path");
    let plain_s = plain.to_str().expect("utf-8 path");
    let commands: &[&[&str]] = &[
        &["goroutines", "SNAP", "--format", "go"],
        &["goroutines", "SNAP", "--format", "json"],
        &["goroutines", "SNAP", "--group"],
        &["bt", "SNAP", "1", "--format", "json"],
        &["threads", "SNAP", "--format", "json"],
        &["sched", "SNAP"],
        &["print", "SNAP", "len(main.pattern)"],
        &["print", "SNAP", "main.pattern[100:104]", "--format", "json"],
        &["vars", "SNAP", "main\\.bulk"],
        &["heap", "SNAP", "--format", "json"],
        &["export", "folded", "SNAP", "-o", "-"],
        &["SNAP", "-c", "goroutines", "-c", "print len(main.pattern)"],
        &[
            "repl",
            "SNAP",
            "-c",
            "goroutines",
            "-c",
            "bt 1",
            "-c",
            "print len(main.secrets)",
        ],
    ];
    for args in commands {
        let with = |snap: &str| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "SNAP" {
                        snap.to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let plain_args = with(plain_s);
        let plain_out = rdlv(
            None,
            &plain_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(
            plain_out.status.success(),
            "{}",
            describe_output(&format!("rdlv {args:?} (plain)"), &plain_out)
        );
        let sealed_args = with(sealed_s);
        let sealed_out = rdlv(
            Some(key),
            &sealed_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(
            sealed_out.status.success(),
            "{}",
            describe_output(&format!("rdlv -i KEY {args:?}"), &sealed_out)
        );
        assert_eq!(
            text(&sealed_out).replace(sealed_s, "SNAP"),
            text(&plain_out).replace(plain_s, "SNAP"),
            "rdlv {args:?}: encrypted and plain differ"
        );
        assert!(
            !text(&plain_out).is_empty(),
            "rdlv {args:?} printed nothing"
        );
    }
    // RDLV_IDENTITY instead of -i.
    let out = Command::new(rdlv_path())
        .env("RDLV_IDENTITY", key)
        .args(["goroutines", sealed_s, "--format", "go"])
        .output()
        .expect("spawn rdlv");
    let plain_go = rdlv(None, &["goroutines", plain_s, "--format", "go"]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("RDLV_IDENTITY", &out)
    );
    assert_eq!(text(&out), text(&plain_go));
    // info with the key reads the snapshot inside; without, the age header.
    let info = rdlv(Some(key), &["info", sealed_s, "--format", "json"]);
    assert!(
        info.status.success(),
        "{}",
        describe_output("rdlv -i info", &info)
    );
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info json");
    assert!(json["process"]["pid"].as_u64().is_some(), "{json}");
    let info = rdlv(None, &["info", sealed_s]);
    assert!(
        info.status.success(),
        "{}",
        describe_output("rdlv info (no key)", &info)
    );
    let shown = text(&info);
    assert!(
        shown.contains("encrypted rdlv snapshot")
            && shown.contains("X25519")
            && shown.contains("-i"),
        "{shown}"
    );
    let info = rdlv(None, &["info", sealed_s, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info json");
    assert_eq!(json["encrypted"], true, "{json}");
    assert_eq!(json["recipients"][0]["type"], "X25519", "{json}");
}

/// `-o -` (the Kubernetes recipe: `kubectl exec ... -o - --encrypt-to`):
/// stdout carries one age file and nothing in the clear.
#[test]
fn encrypted_capture_to_stdout_is_one_age_file() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, recipient) = age_keygen(keys.path(), "key.txt");
    let target = Target::start(
        "heap",
        DEFAULT_GO,
        Variant::Default,
        &["-mb", "4", "-canary", &CANARY_LEN.to_string()],
    );
    let (canary_addr, secret) = canary(&target);
    let out = run(
        Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .args(["-o", "-", "--encrypt-to", &recipient, "--json"]),
        "rdlv-snap -o -",
    );
    let sealed = &out.stdout;
    assert!(
        sealed.starts_with(b"age-encryption.org/v1\n"),
        "stdout is not an age file"
    );
    assert!(canary_windows_in(sealed, &secret).is_empty());
    assert!(canary_windows_in(&out.stderr, &secret).is_empty());
    let json: serde_json::Value = serde_json::from_slice(&out.stderr).expect("--json on stderr");
    assert_eq!(
        json["file_bytes"].as_u64(),
        Some(sealed.len() as u64),
        "{json}"
    );
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("streamed.snap");
    std::fs::write(&file, sealed).expect("write");
    let plain = work.path().join("plain.snap");
    run(
        Command::new(age_tool("age"))
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(&plain)
            .arg(&file),
        "age -d",
    );
    let plain_bytes = std::fs::read(&plain).expect("read");
    assert!(windows_found(sealed, &plain_bytes, FILE_WINDOW_STEP).is_empty());
    let verify = rdlv(Some(&key), &["verify", file.to_str().expect("utf-8 path")]);
    assert!(
        verify.status.success(),
        "{}",
        describe_output("rdlv -i verify", &verify)
    );
    let snap = Snapshot::open(&plain).expect("open decrypted");
    let mut got = vec![0u8; secret.len()];
    snap.read_memory(canary_addr, &mut got)
        .expect("read the canary");
    assert_eq!(got, secret);
}

#[test]
fn rdlv_opens_snapshots_that_go_age_encrypted_to_age_and_ssh_keys() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (age_key, age_recipient) = age_keygen(keys.path(), "key.txt");
    let (ed_key, ed_public) = ssh_keygen(keys.path(), "ed25519");
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "4"]);
    let work = tempfile::tempdir().expect("tempdir");
    let plain = work.path().join("plain.snap");
    capture(&target, &plain, &[]);
    let plain_s = plain.to_str().expect("utf-8 path");
    let want = rdlv(None, &["goroutines", plain_s, "--format", "go"]);
    assert!(
        want.status.success(),
        "{}",
        describe_output("rdlv goroutines", &want)
    );

    let cases: [(&str, &str, &Path); 2] = [
        ("-r", &age_recipient, &age_key),
        ("-r", &ed_public, &ed_key),
    ];
    for (flag, recipient, key) in cases {
        let sealed = work.path().join("sealed.snap");
        let _ = std::fs::remove_file(&sealed);
        run(
            Command::new(age_tool("age"))
                .arg("-e")
                .arg(flag)
                .arg(recipient)
                .arg("-o")
                .arg(&sealed)
                .arg(&plain),
            "age -e",
        );
        let sealed_s = sealed.to_str().expect("utf-8 path");
        let got = rdlv(Some(key), &["goroutines", sealed_s, "--format", "go"]);
        assert!(
            got.status.success(),
            "{}",
            describe_output("rdlv -i goroutines", &got)
        );
        assert_eq!(text(&got), text(&want), "recipient {recipient}");
        let verify = rdlv(Some(key), &["verify", sealed_s]);
        assert!(
            verify.status.success(),
            "{}",
            describe_output("rdlv -i verify", &verify)
        );
    }
}

#[test]
fn capture_encrypted_to_ssh_keys_decrypts_with_go_age_and_rdlv() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (ed_key, ed_public) = ssh_keygen(keys.path(), "ed25519");
    let (rsa_key, rsa_public) = ssh_keygen(keys.path(), "rsa");
    let (age_key, age_recipient) = age_keygen(keys.path(), "key.txt");
    let list = keys.path().join("recipients.txt");
    std::fs::write(
        &list,
        format!("# the on-call team\n{rsa_public}\n\n{age_recipient}\n"),
    )
    .expect("write recipients file");
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "4"]);
    let work = tempfile::tempdir().expect("tempdir");
    let sealed = work.path().join("x.snap");
    capture(
        &target,
        &sealed,
        &[
            "--encrypt-to",
            &ed_public,
            "--encrypt-to-file",
            list.to_str().expect("utf-8"),
        ],
    );
    let sealed_s = sealed.to_str().expect("utf-8 path");
    let info = rdlv(None, &["info", sealed_s]);
    let shown = text(&info);
    assert!(
        shown.contains("ssh-ed25519") && shown.contains("ssh-rsa") && shown.contains("X25519"),
        "{}",
        describe_output("rdlv info", &info)
    );
    let mut outputs = Vec::new();
    for key in [&ed_key, &rsa_key, &age_key] {
        let plain = work.path().join("plain.snap");
        let _ = std::fs::remove_file(&plain);
        run(
            Command::new(age_tool("age"))
                .arg("-d")
                .arg("-i")
                .arg(key)
                .arg("-o")
                .arg(&plain)
                .arg(&sealed),
            "age -d",
        );
        let verify = rdlv(None, &["verify", plain.to_str().expect("utf-8")]);
        assert!(
            verify.status.success(),
            "{}",
            describe_output("rdlv verify", &verify)
        );
        let got = rdlv(Some(key), &["goroutines", sealed_s, "--format", "go"]);
        assert!(
            got.status.success(),
            "{}",
            describe_output("rdlv -i goroutines", &got)
        );
        outputs.push(text(&got));
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn damaged_encrypted_snapshots_wrong_and_missing_keys_are_exit_3() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, recipient) = age_keygen(keys.path(), "key.txt");
    let (wrong_key, _) = age_keygen(keys.path(), "wrong.txt");
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "4"]);
    let work = tempfile::tempdir().expect("tempdir");
    let good = work.path().join("good.snap");
    capture(&target, &good, &["--encrypt-to", &recipient]);
    let pristine = std::fs::read(&good).expect("read");
    let header_end = pristine
        .windows(5)
        .position(|w| w == b"\n--- ")
        .and_then(|at| {
            pristine[at + 1..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|n| at + 2 + n)
        })
        .expect("age header end");
    let payload = header_end + 16;
    let len = pristine.len();
    let bad = work.path().join("bad.snap");
    let bad_s = bad.to_str().expect("utf-8 path");
    let expect_exit_3 = |what: &str, key: Option<&Path>, command: &str, needle: &str| {
        let out = rdlv(key, &[command, bad_s]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            describe_output(&format!("{what}: rdlv {command}"), &out)
        );
        assert!(
            stderr.contains(needle)
                && !stderr.contains("panicked")
                && !stderr.contains("internal error"),
            "{what}: stderr should say {needle:?}: {stderr}"
        );
    };
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    // What stderr must say: damage to the payload or the MAC is a failed
    // decryption; a header cut short is a truncated age header (it is parsed
    // in the clear, before any key is tried).
    let damages: Vec<(&str, &str, Damage)> = vec![
        (
            "truncated by one byte",
            "decrypt",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 1)),
        ),
        (
            "truncated in the middle",
            "decrypt",
            Box::new(move |b: &mut Vec<u8>| b.truncate(len / 2)),
        ),
        (
            "truncated at a chunk boundary",
            "decrypt",
            Box::new(move |b: &mut Vec<u8>| b.truncate(payload + 65_552 * 3)),
        ),
        (
            "truncated in the header",
            "truncated snapshot: age header",
            Box::new(move |b: &mut Vec<u8>| b.truncate(header_end - 10)),
        ),
        (
            "bit flip in the header",
            "decrypt",
            Box::new(move |b: &mut Vec<u8>| b[header_end - 5] ^= 0x01),
        ),
        (
            "bit flip in the nonce",
            "decrypt",
            Box::new(move |b: &mut Vec<u8>| b[header_end + 3] ^= 0x80),
        ),
        (
            "bit flip in the last chunk",
            "decrypt",
            Box::new(move |b: &mut Vec<u8>| b[len - 20] ^= 0x04),
        ),
    ];
    for (what, needle, damage) in &damages {
        let mut bytes = pristine.clone();
        damage(&mut bytes);
        std::fs::write(&bad, &bytes).expect("write damaged file");
        for command in ["goroutines", "verify", "info"] {
            expect_exit_3(what, Some(&key), command, needle);
        }
    }
    // A flip in a middle chunk: found by whatever reads that chunk (verify
    // reads all of them).
    let mut bytes = pristine.clone();
    bytes[payload + 65_552 * 2 + 1000] ^= 0x10;
    std::fs::write(&bad, &bytes).expect("write damaged file");
    expect_exit_3(
        "bit flip in a middle chunk",
        Some(&key),
        "verify",
        "does not authenticate",
    );

    std::fs::write(&bad, &pristine).expect("write file");
    expect_exit_3("wrong key", Some(&wrong_key), "goroutines", "no identity");
    expect_exit_3("wrong key", Some(&wrong_key), "info", "no identity");
    expect_exit_3("missing key", None, "goroutines", "encrypted");
    expect_exit_3("missing key", None, "verify", "--identity");
    let public = keys.path().join("public.txt");
    std::fs::write(&public, &recipient).expect("write");
    expect_exit_3(
        "public key as identity",
        Some(&public),
        "goroutines",
        "public key",
    );
    // The pristine file still opens: the checks above were about the damage.
    let ok = rdlv(Some(&key), &["verify", bad_s]);
    assert!(
        ok.status.success(),
        "{}",
        describe_output("rdlv verify", &ok)
    );
}

#[test]
fn bad_recipients_are_usage_errors_before_the_target_is_touched() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("x.snap");
    for recipient in ["age1bogus", "AGE-SECRET-KEY-1XYZ", "nonsense"] {
        let out = Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .arg("-o")
            .arg(&snap)
            .args(["--encrypt-to", recipient])
            .output()
            .expect("spawn rdlv-snap");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            describe_output(recipient, &out)
        );
        assert!(entries(dir.path()).is_empty());
    }
    target.assert_running_untraced();
}

#[test]
fn sigkill_during_an_encrypted_capture_leaves_no_file_and_a_running_target() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (key, recipient) = age_keygen(keys.path(), "key.txt");
    let identities = Identities::from_file(&key).expect("identity");
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "64"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.snap");
    let spawn = || {
        Command::new(rdlv_snap_path())
            .arg(target.pid().to_string())
            .arg("-o")
            .arg(&path)
            .args(["--encrypt-to", &recipient])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rdlv-snap")
    };
    // Calibrate on one full capture.
    let started = Instant::now();
    let status = spawn().wait().expect("wait");
    assert!(status.success(), "calibration capture failed");
    let full_us = (started.elapsed().as_micros() as u64).max(5000);
    std::fs::remove_file(&path).expect("remove calibration snapshot");

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("kill instants seeded with {seed}");
    let (mut killed, mut landed) = (0, 0);
    for trial in 0..16 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full_us * 3 / 4 + 1));
        let mut child = spawn();
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("try_wait").is_some();
        if !finished {
            landed += 1;
        }
        let _ = child.kill();
        let status = child.wait().expect("wait rdlv-snap");
        let ctx = format!("trial {trial}, kill after {delay:?} (full capture {full_us} us)");
        target.assert_running_untraced();
        let left = entries(dir.path());
        if left.is_empty() {
            killed += 1;
        } else {
            // Linked, so complete: it must decrypt and verify.
            assert_eq!(left, std::slice::from_ref(&path), "{ctx}: leftovers");
            let snap =
                Snapshot::open_with_identities(&path, Some(&identities), DEFAULT_CACHE_BYTES)
                    .unwrap_or_else(|e| panic!("{ctx}: file left is not complete: {e} ({status})"));
            snap.verify()
                .unwrap_or_else(|e| panic!("{ctx}: file left does not verify: {e}"));
            std::fs::remove_file(&path).expect("remove");
        }
    }
    eprintln!(
        "{landed} of 16 kills hit a running rdlv-snap, {killed} before the file was complete"
    );
    assert!(
        landed >= 6,
        "only {landed} of 16 kills hit a running rdlv-snap"
    );
    assert!(
        killed >= 3,
        "only {killed} of 16 kills landed before the file was complete"
    );
}
