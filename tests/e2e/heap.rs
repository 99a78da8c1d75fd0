//! Heap census, goroutine leaks and the wait-for graph (issue 14) against
//! `corpus/cmd/heapzoo`, whose heap and goroutines are known by
//! construction (`heapzoo.json` in the oracle directory), per Go release
//! and for default and `-N -l` builds:
//!
//! - census: every type heapzoo allocates is counted exactly, the collected
//!   garbage types are absent, and the census total equals `heap_alloc`
//!   recomputed from the runtime's own counters in the snapshot (and span
//!   bytes equal `heapInUse`);
//! - leaks: the leaked set equals the set heapzoo knows, and on runtimes
//!   with a goroutine leak profile, the runtime's own profile;
//! - waits: the lock-order deadlock and the channel cycle are cycles;
//! - retention (`heap --by root`, `--path`): bytes each global alone
//!   retains equal the runtime's own count of what building it added to
//!   the live heap; `export pprof --heap --retained`, read back by `go tool
//!   pprof`, gives every root the same cumulative bytes, and its total is
//!   the reachable heap.

use std::collections::BTreeSet;

use rdlv_e2e::{describe_output, go_toolchain, SnapshotFile, Target, Variant, DEFAULT_GO};
use serde_json::Value;

/// Releases every test runs on (the minimum set plus the others).
const VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26", "1.27.3",
];

fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("version has a minor")
}

struct Zoo {
    target: Target,
    snap: SnapshotFile,
    truth: Value,
}

fn start(version: &str, variant: Variant) -> Zoo {
    let target = Target::start("heapzoo", version, variant, &[]);
    let truth_path = target.oracle_dir().join("heapzoo.json");
    let text = std::fs::read_to_string(&truth_path)
        .unwrap_or_else(|e| panic!("{}: {e}", truth_path.display()));
    let truth: Value = serde_json::from_str(&text).expect("heapzoo.json parses");
    let snap = target.capture(&[]);
    Zoo {
        target,
        snap,
        truth,
    }
}

fn rdlv_json(snap: &SnapshotFile, args: &[&str]) -> Value {
    let out = snap.rdlv(args);
    assert!(out.status.success(), "{}", describe_output("rdlv", &out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rdlv {args:?}: JSON does not parse: {e}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn check_census(version: &str, variant: Variant) {
    let zoo = start(version, variant);
    let what = format!("Go {version} {variant:?}");
    let census = rdlv_json(&zoo.snap, &["heap", "--format", "json"]);
    let rt = &census["runtime"];
    assert_eq!(
        u(&census["spans"]["bytes"]),
        u(&rt["heap_inuse"]),
        "{what}: in-use span bytes vs the runtime's heapInUse"
    );
    if u(&census["unswept"]["objects"]) == 0 {
        assert_eq!(
            u(&census["total"]["bytes"]),
            u(&rt["heap_alloc"]),
            "{what}: census bytes vs heap_alloc from the runtime's counters"
        );
        assert_eq!(
            u(&census["total"]["objects"]),
            u(&rt["heap_objects"]),
            "{what}: census objects vs the runtime's counters"
        );
    }
    let types = census["types"].as_array().expect("types array");
    let count = |name: &str| -> u64 {
        types
            .iter()
            .filter(|t| t["type"] == name)
            .map(|t| u(&t["objects"]))
            .sum()
    };
    let unknown = |elem: u64| -> u64 {
        types
            .iter()
            .filter(|t| t["type"] == "unknown" && t["elem_size"] == elem)
            .map(|t| u(&t["objects"]))
            .sum()
    };
    let known = zoo.truth["types"].as_object().expect("types");
    if minor(version) >= 22 {
        for (name, n) in known {
            assert_eq!(count(name), u(n), "{what}: objects of {name}");
        }
    } else {
        // Go 1.21 has no malloc headers: the 968-byte types are untyped
        // objects of the 1024-byte class, the large ones of their pages.
        for name in known.keys() {
            assert_eq!(count(name), 0, "{what}: {name} cannot be typed on 1.21");
        }
        let mids: u64 = known
            .iter()
            .filter(|(k, _)| k.ends_with("Mid"))
            .map(|(_, n)| u(n))
            .sum();
        assert!(unknown(1024) >= mids, "{what}: 1024-byte objects");
    }
    for name in zoo.truth["garbage_types"].as_array().expect("garbage") {
        let name = name.as_str().expect("name");
        assert_eq!(count(name), 0, "{what}: collected garbage {name} counted");
    }
    let small = u(&zoo.truth["small"]);
    assert!(unknown(16) >= small, "{what}: 16-byte objects");
    assert!(unknown(24) >= 1000, "{what}: 24-byte objects");
    check_retention(&zoo, &what, version, variant);
    drop(zoo.target);
}

/// `heap --by root`: what each global alone retains equals the runtime's
/// own count of what its construction added to the live heap (heapzoo
/// measures it), the stack holder's local `local` (or, where DWARF says it
/// is not in memory at the PC, its frame) retains its 20 objects, shared
/// objects are retained by no root, and `heap --path` leads from the root.
fn check_retention(zoo: &Zoo, what: &str, version: &str, variant: Variant) {
    let by_root = rdlv_json(&zoo.snap, &["heap", "--by", "root", "--format", "json"]);
    let roots = by_root["roots"].as_array().expect("roots array");
    let root = |name: &str| -> Option<&Value> { roots.iter().find(|r| r["root"] == name) };
    let truth = zoo.truth["retained"].as_object().expect("retained");
    assert!(
        truth.len() >= 8,
        "{what}: heapzoo measured {} roots",
        truth.len()
    );
    for (name, bytes) in truth {
        let r = root(name).unwrap_or_else(|| panic!("{what}: no root {name} in {by_root:#}"));
        assert_eq!(
            u(&r["retained_bytes"]),
            u(bytes),
            "{what}: bytes retained by {name} (the runtime counted {bytes})"
        );
    }
    // Each list of 968-byte objects: one object per element plus the
    // slice's array (the closure also holds its captured slice header).
    for (name, objects) in [
        ("main.globalMids", 101),
        ("main.ifaces", 41),
        ("main.larges", 5),
        ("main.smallList", 1000),
        ("main.keepFunc", 32),
    ] {
        let r = root(name).expect("root checked above");
        assert_eq!(
            u(&r["objects"]),
            objects,
            "{what}: objects retained by {name}"
        );
    }
    // The stack holder's locals: its 20 StackMids (1024-byte slots), and
    // the array of pointers to them when it was not stack-allocated. They
    // are the local's (`goroutine G frame F main.stackHolder.local`) where
    // DWARF places `local` in memory at the frame's PC, as it always does
    // without optimization; else the frame's.
    let holder = u(&zoo.truth["scenarios"]["stack holder on global chan"]);
    let prefix = format!("goroutine {holder} frame ");
    let named = |suffix: &str| {
        roots.iter().find(|r| {
            r["root"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(suffix))
        })
    };
    let local = named(" main.stackHolder.local");
    if variant == Variant::NoOpt {
        assert!(
            local.is_some(),
            "{what}: no root {prefix}N main.stackHolder.local in {by_root:#}"
        );
    }
    let frame = local
        .or_else(|| named(" main.stackHolder"))
        .unwrap_or_else(|| panic!("{what}: no root {prefix}N main.stackHolder in {by_root:#}"));
    let (objects, bytes) = (u(&frame["objects"]), u(&frame["retained_bytes"]));
    assert!(
        (objects, bytes) == (20, 20 * 1024) || (objects, bytes) == (21, 20 * 1024 + 160),
        "{what}: the stack holder's frame retains {objects} objects, {bytes} bytes"
    );
    check_retained_profile(zoo, what, &by_root);
    // The shared *int every 968-byte object points at is retained by none.
    assert!(u(&by_root["shared_bytes"]) >= 16, "{what}: shared bytes");
    if minor(version) >= 22 {
        let types = by_root["types"].as_array().expect("types");
        let mids = types
            .iter()
            .find(|t| t["type"] == "main.GlobalMid")
            .unwrap_or_else(|| panic!("{what}: no main.GlobalMid in types"));
        assert_eq!(u(&mids["objects"]), 100, "{what}: GlobalMid objects");
        assert_eq!(
            u(&mids["retained_bytes"]),
            100 * 1024,
            "{what}: GlobalMid retained"
        );
    }
    // One path from the root to the slice's array.
    let path = rdlv_json(
        &zoo.snap,
        &["heap", "--path", "main.globalMids", "--format", "json"],
    );
    let steps = path.as_array().expect("path array");
    assert_eq!(steps.len(), 2, "{what}: path {path:#}");
    assert_eq!(steps[0]["root"], "main.globalMids", "{what}: path {path:#}");
    assert!(steps[1]["addr"].is_string(), "{what}: path {path:#}");
    // Not a heap address: a request that cannot be answered (exit 1).
    let out = zoo.snap.rdlv(&["heap", "--path", "0x10"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe_output("heap --path 0x10", &out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not inside an allocated heap object"),
        "{}",
        describe_output("heap --path 0x10", &out)
    );
}

/// `export pprof --heap --retained` read by `go tool pprof -top`: every
/// root's cumulative bytes are what `heap --by root` says it retains, and
/// the profile's total is the reachable heap.
fn check_retained_profile(zoo: &Zoo, what: &str, by_root: &Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("retained.pb.gz");
    let out = rdlv_e2e::run_rdlv(&[
        "export".as_ref(),
        "pprof".as_ref(),
        zoo.snap.path().as_os_str(),
        "--heap".as_ref(),
        "--retained".as_ref(),
        "-o".as_ref(),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("export --retained", &out)
    );
    let pprof = std::process::Command::new(go_toolchain(DEFAULT_GO))
        .args(["tool", "pprof", "-top", "-unit=B", "-nodecount=1000000"])
        .args(["-nodefraction=0", "-edgefraction=0"])
        .arg(&file)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", dir.path())
        .output()
        .expect("go tool pprof");
    assert!(
        pprof.status.success(),
        "{}",
        describe_output("go tool pprof", &pprof)
    );
    let text = String::from_utf8_lossy(&pprof.stdout);
    let bytes = |s: &str| -> u64 {
        s.trim_end_matches('B')
            .parse()
            .unwrap_or_else(|_| panic!("{what}: not a byte count {s:?} in\n{text}"))
    };
    // `      flat  flat%   sum%        cum   cum%  NAME` (NAME may hold spaces).
    let mut cum = std::collections::HashMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 6 && cols[1].ends_with('%') && cols[4].ends_with('%') {
            cum.insert(cols[5..].join(" "), bytes(cols[3]));
        }
    }
    let total = text
        .lines()
        .find_map(|l| l.split(" of ").nth(1)?.strip_suffix(" total").map(bytes))
        .unwrap_or_else(|| panic!("{what}: no total in\n{text}"));
    assert_eq!(
        total,
        u(&by_root["reachable"]["bytes"]),
        "{what}: retained profile total"
    );
    let roots = by_root["roots"].as_array().expect("roots");
    assert!(roots.len() >= 8, "{what}: {} roots", roots.len());
    for r in roots {
        let name = r["root"].as_str().expect("root name");
        assert_eq!(
            cum.get(name).copied(),
            Some(u(&r["retained_bytes"])),
            "{what}: cumulative bytes of {name} in the retained profile\n{text}"
        );
    }
}

#[test]
fn census_and_retention_match_construction_and_runtime_counters() {
    for v in VERSIONS {
        for variant in [Variant::Default, Variant::NoOpt] {
            check_census(v, variant);
        }
    }
}

fn ids(v: &Value) -> BTreeSet<u64> {
    v.as_array()
        .expect("array of goroutine ids")
        .iter()
        .map(u)
        .collect()
}

/// Goroutine ids in a `runtime.Stack`-format dump whose header says `(leaked)`.
fn runtime_leaked(dump: &str) -> BTreeSet<u64> {
    dump.lines()
        .filter(|l| l.starts_with("goroutine ") && l.contains(" (leaked)"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Our leaks equal heapzoo's known set; when the runtime has a leak
/// profile (`must_have_profile`), they equal the runtime's too.
fn check_leaks(what: &str, zoo: Zoo, must_have_profile: bool) {
    let leaks = rdlv_json(&zoo.snap, &["leaks", "--format", "json"]);
    let ours: BTreeSet<u64> = leaks
        .as_array()
        .expect("leaks array")
        .iter()
        .map(|l| u(&l["id"]))
        .collect();
    for l in leaks.as_array().into_iter().flatten() {
        assert!(
            l["frames"].as_array().is_some_and(|f| !f.is_empty()),
            "{what}: leak without frames: {l}"
        );
        assert!(l["wait_reason"].is_string(), "{what}: {l}");
    }
    let known = ids(&zoo.truth["leaked"]);
    assert_eq!(ours, known, "{what}: leaked goroutines (ours vs heapzoo's)");
    let not_leaked = ids(&zoo.truth["not_leaked"]);
    assert!(ours.is_disjoint(&not_leaked), "{what}");
    zoo.target.oracle();
    let profile = zoo.target.oracle_dir().join("goroutineleak.txt");
    match std::fs::read_to_string(&profile) {
        Ok(dump) => {
            let theirs = runtime_leaked(&dump);
            assert_eq!(
                ours, theirs,
                "{what}: leaked goroutines (ours vs the runtime's goroutineleak profile)"
            );
        }
        Err(e) => assert!(
            !must_have_profile,
            "{what}: the runtime should have written its goroutineleak profile: {e}"
        ),
    }
}

#[test]
fn leaks_equal_the_known_set_and_the_runtime_profile() {
    for v in VERSIONS {
        for variant in [Variant::Default, Variant::NoOpt] {
            let zoo = start(v, variant);
            check_leaks(&format!("Go {v} {variant:?}"), zoo, minor(v) >= 27);
        }
    }
}

/// Builds heapzoo with Go 1.26 and `GOEXPERIMENT=goroutineleakprofile`
/// (not a corpus variant: only this test needs it).
fn build_with_leak_profile() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("rdlv-heapzoo-")
        .tempdir()
        .expect("tempdir");
    let out = dir.path().join("heapzoo");
    let status = std::process::Command::new(rdlv_e2e::go_toolchain("1.26"))
        .current_dir(rdlv_e2e::workspace_root().join("corpus"))
        .args(["build", "-o"])
        .arg(&out)
        .arg("./cmd/heapzoo")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOEXPERIMENT", "goroutineleakprofile")
        .output()
        .expect("run go build");
    assert!(
        status.status.success(),
        "go build with GOEXPERIMENT=goroutineleakprofile: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    (dir, out)
}

#[test]
fn leaks_equal_the_runtime_profile_on_1_26_with_the_experiment() {
    let (_dir, bin) = build_with_leak_profile();
    let target = Target::spawn(&bin, &[]);
    let text =
        std::fs::read_to_string(target.oracle_dir().join("heapzoo.json")).expect("heapzoo.json");
    let truth: Value = serde_json::from_str(&text).expect("parses");
    let snap = target.capture(&[]);
    check_leaks(
        "Go 1.26 goroutineleakprofile",
        Zoo {
            target,
            snap,
            truth,
        },
        true,
    );
}

/// The wait-for graph's cycles are exactly heapzoo's lock-order deadlock
/// and channel cycle (each a set of goroutine ids), and the waiter's own
/// variable that names each of their objects is the one the source names
/// (`second` in `lockBoth`, the closures' `c1` and `c2`): always without
/// optimization, and never another one with it.
fn check_waits(what: &str, zoo: &Zoo, variant: Variant) {
    let graph = rdlv_json(&zoo.snap, &["waits", "--format", "json"]);
    let waits = graph["waits"].as_array().expect("waits");
    for (scenario, suffix) in [
        ("deadlock A then B", ".lockBoth.second"),
        ("deadlock B then A", ".lockBoth.second"),
        ("chan cycle 1", ".c1"),
        ("chan cycle 2", ".c2"),
    ] {
        let goid = u(&zoo.truth["scenarios"][scenario]);
        let edge = waits
            .iter()
            .find(|w| u(&w["goroutine"]) == goid)
            .unwrap_or_else(|| panic!("{what}: no wait of goroutine {goid} ({scenario})"));
        match edge["variable"]["name"].as_str() {
            Some(name) => assert!(
                name.ends_with(suffix),
                "{what}: {scenario} waits on {name}, not on ...{suffix}"
            ),
            None => assert!(
                variant != Variant::NoOpt,
                "{what}: {scenario}: no variable names its object: {edge:#}"
            ),
        }
    }
    let cycles = |v: &Value| -> BTreeSet<BTreeSet<u64>> {
        v.as_array()
            .expect("array of cycles")
            .iter()
            .map(ids)
            .collect()
    };
    assert_eq!(
        cycles(&graph["cycles"]),
        cycles(&zoo.truth["cycles"]),
        "{what}: wait-for cycles (ours vs heapzoo's)"
    );
}

#[test]
fn waits_find_the_deadlock_and_the_channel_cycle() {
    for v in VERSIONS {
        for variant in [Variant::Default, Variant::NoOpt] {
            let zoo = start(v, variant);
            check_waits(&format!("Go {v} {variant:?}"), &zoo, variant);
        }
    }
}

/// Thousands of goroutines waiting on one channel and one mutex: every
/// one is in the graph, none of the walks is cut (a waiter's reach does
/// not run along the runtime's wait queue to every other waiter), each
/// channel waiter is reached by all the others (its frame holds the
/// channel), and the mutex is named as the global it is.
#[test]
fn waits_of_thousands_on_one_object_are_whole() {
    const N: usize = 6000;
    let target = Target::start(
        "many",
        DEFAULT_GO,
        Variant::Default,
        &["-n", &N.to_string()],
    );
    let snap = target.capture(&[]);
    let graph = rdlv_json(&snap, &["waits", "--format", "json"]);
    assert_eq!(graph["truncated"], false, "no walk is cut");
    let waits = graph["waits"].as_array().expect("waits");
    let parked: BTreeSet<u64> = waits
        .iter()
        .filter(|w| w["wait_reason"] != "select (no cases)")
        .map(|w| u(&w["goroutine"]))
        .collect();
    assert!(parked.len() >= N, "{} waiters of {N}", parked.len());
    // The object most wait on is `never`: received from by a third of
    // them, selected on by another third, and each of those frames holds it.
    let mut by_object: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
    for w in waits {
        let object = w["object"].as_str().expect("object address");
        by_object.entry(object).or_default().push(w);
    }
    let never = by_object.values().max_by_key(|v| v.len()).expect("objects");
    assert_eq!(never.len(), 2 * N / 3, "receivers and selects on `never`");
    for w in never {
        assert!(
            u(&w["reached_by_count"]) >= (never.len() - 1) as u64,
            "goroutine {} on `never`: reached by {}, not by every other waiter",
            w["goroutine"],
            w["reached_by_count"]
        );
    }
    let mutex: Vec<&Value> = waits
        .iter()
        .filter(|w| w["wait_reason"] == "sync.Mutex.Lock")
        .collect();
    assert_eq!(mutex.len(), N / 3);
    for w in &mutex {
        let global = w["global"].as_str().unwrap_or_default();
        assert!(global.starts_with("main.blocked"), "{w:#}");
    }
    assert_eq!(graph["cycles"], serde_json::json!([]), "nothing is stuck");
}

/// Runs the REPL on `snap` with `script` on stdin (no prompts: stdin is not
/// a terminal), with an empty configuration.
fn repl_script(snap: &SnapshotFile, script: &str) -> std::process::Output {
    use std::io::Write as _;
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(rdlv_e2e::rdlv_path())
        .arg(snap.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rdlv");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    child.wait_with_output().expect("wait for rdlv")
}

/// `heap`, `leaks` and `waits` in the REPL (issue 14 item 6) print what the
/// one-shot commands print, byte for byte, in every format, and `help`
/// describes them.
#[test]
fn repl_heap_leaks_and_waits_equal_the_commands() {
    let zoo = start(rdlv_e2e::DEFAULT_GO, Variant::Default);
    let commands: &[&[&str]] = &[
        &["heap", "--top", "20"],
        &["heap", "--format", "json"],
        &["leaks"],
        &["leaks", "--format", "json"],
        &["waits"],
        &["waits", "--format", "dot"],
        &["waits", "--format", "json"],
    ];
    let mut script = String::new();
    let mut want = String::new();
    for c in commands {
        let out = zoo.snap.rdlv(c);
        assert!(
            out.status.success(),
            "{}",
            describe_output(&c.join(" "), &out)
        );
        want.push_str(&String::from_utf8_lossy(&out.stdout));
        script.push_str(&c.join(" "));
        script.push('\n');
    }
    let out = repl_script(&zoo.snap, &script);
    assert!(
        out.status.success(),
        "{}",
        describe_output("REPL script", &out)
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got == want,
        "the REPL's heap/leaks/waits differ from the one-shot commands'\n--- REPL ---\n{got}\n--- one-shot ---\n{want}"
    );
    // Not vacuous: the known leaks and cycles are in that text.
    for id in ids(&zoo.truth["leaked"]) {
        assert!(got.contains(&format!("\"id\": {id},")), "leak {id}");
    }
    assert!(got.contains("cycles (likely deadlocks):"), "{got}");

    let out = repl_script(&zoo.snap, "help heap\nhelp leaks\nhelp waits\n");
    assert!(out.status.success(), "{}", describe_output("help", &out));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Live heap objects by type, beside the runtime's own accounting",
        "Goroutines blocked forever: the Go 1.26 leak detector, run offline",
        "Wait-for graph: blocked goroutine -> primitive -> goroutines reaching it; cycles",
        "--top <N>",
        "--format <FORMAT>",
    ] {
        assert!(help.contains(line), "help lacks {line:?}:\n{help}");
    }
}
