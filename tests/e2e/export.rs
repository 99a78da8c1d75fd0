//! Exports (issue 11) against the tools that read them.
//!
//! * pprof: the `parked` program writes its own `/debug/pprof/goroutine`
//!   profile (debug=0) at the oracle signal (`$ORACLE_PPROF`); `go tool
//!   pprof -traces -lines` of ours must equal the process's own, blocks of
//!   the goroutines the oracle protocol excludes aside (the oracle writer,
//!   the os/signal loop, and goroutines running at capture), labels
//!   included. `-top` must read it too. The folded export must equal the
//!   process's own profile folded.
//! * heap pprof: the `heapprof` program (MemProfileRate 1, GC off after
//!   two GCs) writes its own `/debug/pprof/heap` (debug=0) at the signal;
//!   `go tool pprof -raw` headers (period type, period, sample types) and
//!   `-traces -lines` per sample type must equal ours, except that the
//!   process's may also hold all-zero samples of buckets created after the
//!   capture (the oracle's own allocations, never published with the GC
//!   off). Go 1.22, the default and 1.27 (three record layouts), and the
//!   default at MemProfileRate 4096 (scaled values). A process
//!   that records no heap profile gets a clear exit-1 message.
//! * core: `dlv core` on our core lists the same goroutine ids at the same
//!   top-frame PCs as `rdlv goroutines --system -r`, `bt` of parked
//!   goroutines equals rdlv's, `print` and `whatis` (one-shot and REPL) of
//!   the `values` program's globals equal rdlv's; `gdb` shows every thread with a sane top frame. Also for
//!   stripped and PIE builds.
//! * report: headless Chromium (driven over the DevTools protocol on a pipe)
//!   loads the page with no console error, no exception and no request
//!   other than the file itself; the DOM holds the biggest group's count and
//!   stack; a screenshot is written under `target/export-artifacts/`. A
//!   100k-goroutine report stays within 5 MB and loads in under 2 s (its
//!   waits section says why the wait-for graph is left out at that size).
//!   The report of `heapzoo` holds its known types with their counts, its
//!   leaked goroutines and its deadlock cycles, and Chromium shows them; a
//!   redacted heapzoo snapshot's report says "redacted" in those sections.
//! * bad input: exports of a truncated or damaged snapshot exit 3 and leave
//!   no file.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdlv_e2e::toolchain::{build_corpus, go_toolchain, target_dirs, workspace_root};
use rdlv_e2e::tools::{describe_output, rdlv_path, run_rdlv};
use rdlv_e2e::{Target, Variant, DEFAULT_GO};

// ---------------------------------------------------------------- helpers

fn rdlv_ok(args: &[&std::ffi::OsStr]) -> Output {
    let out = run_rdlv(args);
    assert!(out.status.success(), "{}", describe_output("rdlv", &out));
    out
}

fn export(kind: &str, snap: &Path, out: &Path) {
    rdlv_ok(&[
        "export".as_ref(),
        kind.as_ref(),
        snap.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(out.is_file(), "export {kind} wrote no {}", out.display());
}

/// `go tool pprof ARGS FILE` with the system Go.
fn go_pprof(args: &[&str], file: &Path) -> String {
    let go = go_toolchain(DEFAULT_GO);
    let out = Command::new(go)
        .arg("tool")
        .arg("pprof")
        .args(args)
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("spawn go tool pprof");
    assert!(
        out.status.success(),
        "{}",
        describe_output(&format!("go tool pprof {args:?} {}", file.display()), &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sample blocks of `go tool pprof -traces` output (header dropped).
fn trace_blocks(text: &str) -> Vec<String> {
    let sep = "-----------+-------------------------------------------------------";
    let mut parts = text.split(sep);
    parts.next(); // File:, Type:, Time: ... differ by nature.
    parts
        .map(|b| b.trim_matches('\n').to_string())
        .filter(|b| !b.is_empty())
        .collect()
}

/// Functions named on a `-traces` block's stack lines.
fn block_funcs(block: &str) -> Vec<String> {
    block
        .lines()
        .filter(|l| !l.contains(":  ")) // label lines `    tenant:  acme`
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // "  1   func file:line" or "      func file:line"
            let w = if words.first().is_some_and(|w| w.parse::<u64>().is_ok()) {
                words.get(1)
            } else {
                words.first()
            };
            w.map(|s| s.to_string())
        })
        .collect()
}

/// Functions whose goroutines were running at capture (their own, outermost
/// non-runtime function), from `rdlv goroutines --format json`.
fn running_funcs(snap: &Path) -> HashSet<String> {
    let out = rdlv_ok(&[
        "goroutines".as_ref(),
        snap.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let gs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("goroutines json");
    let mut set = HashSet::new();
    for g in gs.as_array().into_iter().flatten() {
        if g["status"] != "running" {
            continue;
        }
        let own = g["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["func"].as_str())
            .rfind(|f| !f.starts_with("runtime."))
            .map(str::to_string);
        set.extend(own);
    }
    set
}

fn excluded(funcs: &[String], running: &HashSet<String>) -> bool {
    funcs.iter().any(|f| {
        f.starts_with("corpus/internal/oracle.")
            || f.starts_with("os/signal.")
            || running.contains(f)
    })
}

fn artifacts_dir() -> PathBuf {
    let (target, _) = target_dirs();
    let dir = target.join("export-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/export-artifacts");
    dir
}

// ---------------------------------------------------------------- pprof

fn pprof_matches_the_process(go: &str) {
    let bin = build_corpus("parked", go, Variant::Default);
    let target = Target::spawn_with_env(&bin, &[], &[("ORACLE_PPROF", "1")]);
    let snap = target.capture(&[]);
    let oracle_dir = target.oracle_dir().to_path_buf();
    let _ = target.oracle();
    let theirs = oracle_dir.join("goroutine.pb.gz");
    assert!(theirs.is_file(), "the oracle wrote no goroutine.pb.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("goroutines.pb.gz");
    export("pprof", snap.path(), &ours);
    let running = running_funcs(snap.path());

    let keep = |text: &str| -> Vec<String> {
        trace_blocks(text)
            .into_iter()
            .filter(|b| !excluded(&block_funcs(b), &running))
            .collect()
    };
    let ours_traces = keep(&go_pprof(&["-traces", "-lines"], &ours));
    let theirs_traces = keep(&go_pprof(&["-traces", "-lines"], &theirs));
    assert!(
        ours_traces.len() >= 20,
        "Go {go}: only {} samples in our profile",
        ours_traces.len()
    );
    if ours_traces != theirs_traces {
        let a: HashSet<&String> = ours_traces.iter().collect();
        let b: HashSet<&String> = theirs_traces.iter().collect();
        panic!(
            "Go {go}: go tool pprof -traces differs\n--- only in ours:\n{}\n--- only in the process's:\n{}\n(order or count differences if both are empty)",
            a.difference(&b).map(|s| s.as_str()).collect::<Vec<_>>().join("\n----\n"),
            b.difference(&a).map(|s| s.as_str()).collect::<Vec<_>>().join("\n----\n"),
        );
    }
    // The labelled goroutine's labels came through as labels.
    assert!(
        ours_traces
            .iter()
            .any(|b| b.contains("tenant:  acme") && b.contains("request:  r-42")),
        "Go {go}: no sample with the pprof labels tenant=acme request=r-42"
    );
    let top = go_pprof(&["-top"], &ours);
    assert!(
        top.contains("runtime.gopark") && top.contains("Type: goroutine"),
        "Go {go}: -top output:\n{top}"
    );

    // Folded: the process's own profile, folded, is our folded file.
    let folded = dir.path().join("stacks.folded");
    export("folded", snap.path(), &folded);
    let text = std::fs::read_to_string(&folded).expect("read folded");
    let mut ours_folded: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("folded line ends in a count");
        let frames: Vec<String> = stack.split(';').map(str::to_string).collect();
        if excluded(&frames, &running) {
            continue;
        }
        *ours_folded.entry(stack.to_string()).or_default() += count.parse::<u64>().expect("count");
    }
    let mut theirs_folded: BTreeMap<String, u64> = BTreeMap::new();
    for b in keep(&go_pprof(&["-traces"], &theirs)) {
        let count: u64 = b
            .lines()
            .find_map(|l| l.split_whitespace().next()?.parse().ok())
            .expect("a count line");
        let mut funcs = block_funcs(&b);
        funcs.reverse();
        *theirs_folded.entry(funcs.join(";")).or_default() += count;
    }
    assert_eq!(ours_folded, theirs_folded, "Go {go}: folded stacks differ");
}

#[test]
fn pprof_equals_the_process_own_profile() {
    pprof_matches_the_process(DEFAULT_GO);
}

#[test]
fn pprof_equals_the_process_own_profile_go121() {
    // Labels in a map, 32-PC stacks: the oldest layout.
    pprof_matches_the_process("1.21.13");
}

// ---------------------------------------------------------------- heap pprof

/// The sample types of a heap profile, in the runtime's order.
const HEAP_SAMPLE_TYPES: [&str; 4] = [
    "alloc_objects",
    "alloc_space",
    "inuse_objects",
    "inuse_space",
];

/// The `-raw` header lines that must agree (the time and the file name
/// legitimately differ).
fn raw_header(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| !l.starts_with("Samples:"))
        .filter(|l| l.starts_with("PeriodType:") || l.starts_with("Period:"))
        .map(str::to_string)
        .collect()
}

/// The value at the head of a `-traces` block (`bytes:` label lines aside).
fn block_value(block: &str) -> String {
    block
        .lines()
        .find_map(|l| {
            let first = l.split_whitespace().next()?;
            first
                .chars()
                .next()?
                .is_ascii_digit()
                .then(|| first.to_string())
        })
        .unwrap_or_default()
}

/// `rate`: the program's MemProfileRate (1: every allocation, exact
/// values; above 1 the values are scaled estimates, compared but not
/// checked against the known objects).
fn heap_pprof_matches_the_process(go: &str, rate: u32) {
    let bin = build_corpus("heapprof", go, Variant::Default);
    let rate_text = rate.to_string();
    let target = Target::spawn_with_env(&bin, &[], &[("HEAPPROF_RATE", &rate_text)]);
    let snap = target.capture(&[]);
    let oracle_dir = target.oracle_dir().to_path_buf();
    let _ = target.oracle();
    let theirs = oracle_dir.join("heap.pb.gz");
    assert!(theirs.is_file(), "the oracle wrote no heap.pb.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("heap.pb.gz");
    let out = rdlv_ok(&[
        "export".as_ref(),
        "pprof".as_ref(),
        "--heap".as_ref(),
        snap.path().as_os_str(),
        "-o".as_ref(),
        ours.as_os_str(),
    ]);
    assert!(ours.is_file(), "export pprof --heap wrote no file");
    let art = artifacts_dir();
    let _ = std::fs::copy(&ours, art.join(format!("heap-ours-{go}-rate{rate}.pb.gz")));
    let _ = std::fs::copy(
        &theirs,
        art.join(format!("heap-theirs-{go}-rate{rate}.pb.gz")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("heap profile"), "Go {go}: {stderr}");

    // Header: period type space/bytes, period MemProfileRate (1).
    let raw_ours = go_pprof(&["-raw"], &ours);
    let raw_theirs = go_pprof(&["-raw"], &theirs);
    assert_eq!(
        raw_header(&raw_ours),
        vec![
            "PeriodType: space bytes".to_string(),
            format!("Period: {rate}")
        ],
        "Go {go}: -raw header of ours:\n{raw_ours}"
    );
    assert_eq!(raw_header(&raw_ours), raw_header(&raw_theirs), "Go {go}");
    let types = |raw: &str| -> String {
        raw.lines()
            .skip_while(|l| !l.starts_with("Samples:"))
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        types(&raw_ours),
        // No default_sample_type, as the runtime writes it (pprof shows the last).
        "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes",
        "Go {go}: sample types of ours:\n{raw_ours}"
    );
    assert_eq!(types(&raw_ours), types(&raw_theirs), "Go {go}");

    // Samples, per sample type: the process's profile may hold, in
    // addition, buckets created between the capture and the signal (the
    // oracle's own allocations: their counts go to a future cycle, which
    // the GC being off never publishes), so with all-zero values. Blocks
    // with a non-zero value must be equal as multisets; our zero blocks
    // must be among theirs.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    for st in HEAP_SAMPLE_TYPES {
        // -unit=B: exact byte values (the default rounds to 3 digits).
        let args = [
            "-traces",
            "-lines",
            "-unit=B",
            &format!("-sample_index={st}"),
        ];
        let ours_b = trace_blocks(&go_pprof(&args, &ours));
        let theirs_b = trace_blocks(&go_pprof(&args, &theirs));
        let (ours_nz, ours_z): (Vec<String>, Vec<String>) =
            ours_b.into_iter().partition(|b| block_value(b) != "0");
        let (theirs_nz, mut theirs_z): (Vec<String>, Vec<String>) =
            theirs_b.into_iter().partition(|b| block_value(b) != "0");
        let (ours_nz, theirs_nz) = (sorted(ours_nz), sorted(theirs_nz));
        if ours_nz != theirs_nz {
            let a: HashSet<&String> = ours_nz.iter().collect();
            let b: HashSet<&String> = theirs_nz.iter().collect();
            panic!(
                "Go {go}: go tool pprof -traces -sample_index={st} differs\n--- only in ours:\n{}\n--- only in the process's:\n{}\n(count differences if both are empty)",
                a.difference(&b).map(|s| s.as_str()).collect::<Vec<_>>().join("\n----\n"),
                b.difference(&a).map(|s| s.as_str()).collect::<Vec<_>>().join("\n----\n"),
            );
        }
        for z in &ours_z {
            let i = theirs_z.iter().position(|t| t == z).unwrap_or_else(|| {
                panic!("Go {go}: {st}: our zero sample is not in the process's profile:\n{z}")
            });
            theirs_z.swap_remove(i);
        }
        // What is left was allocated after the capture: by the oracle, or
        // by the runtime alone (a new M for a thread the oracle's writes
        // blocked, say).
        for z in &theirs_z {
            let funcs = block_funcs(z);
            let runtime_only = funcs
                .iter()
                .all(|f| f.starts_with("runtime.") || f.starts_with("internal/runtime/"));
            assert!(
                runtime_only || z.contains("corpus/internal/oracle."),
                "Go {go}: {st}: a zero sample only in the process's profile, allocated by neither the oracle nor the runtime:\n{z}"
            );
        }
        assert!(
            rate > 1 || ours_nz.len() >= 5,
            "Go {go}: {st}: only {} non-zero samples",
            ours_nz.len()
        );
        if st == "inuse_space" && rate == 1 {
            // The known live objects are there, attributed to their allocators.
            for (func, label, value) in [
                ("main.allocSmall", "bytes:  48B", "4800B"),
                ("main.allocBig", "bytes:  64kB", "655360B"),
                ("main.newBlock", "bytes:  24B", "1200B"),
            ] {
                assert!(
                    ours_nz
                        .iter()
                        .any(|b| b.contains(func) && b.contains(label) && block_value(b) == value),
                    "Go {go}: no in-use sample of {value} from {func} with {label}"
                );
            }
            // The inlined allocator is a frame of its caller's location.
            assert!(
                ours_nz
                    .iter()
                    .any(|b| b.contains("main.newBlock") && b.contains("(inline)")),
                "Go {go}: main.newBlock is not shown inlined"
            );
        }
    }
    let top = go_pprof(&["-top", "-sample_index=alloc_objects"], &ours);
    assert!(
        top.contains("Type: alloc_objects")
            // 64 KiB blocks are sampled at any rate up to a few KiB.
            && top.contains(if rate == 1 { "main.allocGarbage" } else { "main.allocBig" }),
        "Go {go}: -top output:\n{top}"
    );
}

#[test]
fn heap_pprof_equals_the_process_own_profile() {
    heap_pprof_matches_the_process(DEFAULT_GO, 1);
}

#[test]
fn heap_pprof_equals_the_process_own_profile_sampled() {
    // One sample per 4 KiB on average: values scaled by scaleHeapSample.
    heap_pprof_matches_the_process(DEFAULT_GO, 4096);
}

#[test]
fn heap_pprof_equals_the_process_own_profile_go122() {
    // Bytes counted per cycle, 32-PC records.
    heap_pprof_matches_the_process("1.22.10", 1);
}

#[test]
fn heap_pprof_equals_the_process_own_profile_go127() {
    // Counts only per cycle, the bucket's size for bytes.
    heap_pprof_matches_the_process("1.27.3", 1);
}

#[test]
fn heap_pprof_without_a_memory_profile_says_so() {
    // GODEBUG=memprofilerate=0 turns sampling off before the first
    // allocation (Go 1.26 parses GODEBUG before mallocinit on Linux): no
    // bucket. A stripped binary names none of the profile's globals.
    for (variant, env, says) in [
        (Variant::Default, "memprofilerate=0", "MemProfileRate = 0"),
        (Variant::Stripped, "", "stripped binary"),
    ] {
        let bin = build_corpus("many", DEFAULT_GO, variant);
        let target = Target::spawn_with_env(&bin, &["-n", "3"], &[("GODEBUG", env)]);
        let snap = target.capture(&[]);
        let dir = tempfile::tempdir().expect("tempdir");
        let out_file = dir.path().join("heap.pb.gz");
        let out = run_rdlv(&[
            "export".as_ref(),
            "pprof".as_ref(),
            "--heap".as_ref(),
            snap.path().as_os_str(),
            "-o".as_ref(),
            out_file.as_os_str(),
        ]);
        let ctx = describe_output(&format!("rdlv export pprof --heap ({variant:?})"), &out);
        assert_eq!(out.status.code(), Some(1), "{ctx}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("rdlv: ") && stderr.contains(says),
            "{ctx}"
        );
        assert!(!stderr.contains("panicked"), "{ctx}");
        assert!(!out_file.exists(), "{ctx}: left a file");
    }
}

// ---------------------------------------------------------------- core

fn dlv_path() -> PathBuf {
    let p = workspace_root().join(".toolchains/bin/dlv");
    assert!(
        p.is_file(),
        "Delve is missing at {} (install it with .ci/install-toolchains)",
        p.display()
    );
    p
}

/// Runs Delve on a core with `commands` (then `exit`); returns stdout.
fn dlv_core(exe: &Path, core: &Path, commands: &[String]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let init = dir.path().join("init");
    let mut script = commands.join("\n");
    script.push_str("\nexit\n");
    std::fs::write(&init, script).expect("write dlv init");
    let out = Command::new(dlv_path())
        .arg("core")
        .arg(exe)
        .arg(core)
        .arg("--init")
        .arg(&init)
        .arg("--allow-non-terminal-interactive=true")
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("spawn dlv");
    let text = rdlv_e2e::realserver::strip_ansi(&String::from_utf8_lossy(&out.stdout));
    assert!(
        text.contains("Goroutine") || !commands.iter().any(|c| c.starts_with("goroutines")),
        "{}",
        describe_output("dlv core", &out)
    );
    text
}

/// `Goroutine N - Runtime: FILE:LINE FUNC (0xPC)` lines: id → (func, pc, on a thread).
fn parse_goroutine_lines(text: &str) -> BTreeMap<u64, (String, String, bool)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line
            .trim_start_matches(['*', ' '])
            .strip_prefix("Goroutine ")
        else {
            continue;
        };
        let Some((id, rest)) = rest.split_once(" - ") else {
            continue;
        };
        let Ok(id) = id.parse::<u64>() else { continue };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let func = words.get(2).map(|s| s.to_string()).unwrap_or_default();
        let pc = words
            .iter()
            .find(|w| w.starts_with("(0x"))
            .map(|w| w.trim_matches(['(', ')']).to_string())
            .unwrap_or_default();
        out.insert(id, (func, pc, line.contains("(thread ")));
    }
    out
}

/// `N  0xPC in FUNC\n   at FILE:LINE` frames of a `bt` listing: (pc, func, file:line).
fn parse_bt(text: &str) -> Vec<(u64, String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let words: Vec<&str> = l.split_whitespace().collect();
        if words.len() >= 4
            && words[0].parse::<u32>().is_ok()
            && words[1].starts_with("0x")
            && words[2] == "in"
        {
            let pc = u64::from_str_radix(words[1].trim_start_matches("0x"), 16).unwrap_or(0);
            let at = lines
                .get(i + 1)
                .and_then(|n| n.trim().strip_prefix("at "))
                .unwrap_or("")
                .to_string();
            out.push((pc, words[3].to_string(), at));
        }
    }
    out
}

fn threads_json(snap: &Path) -> Vec<serde_json::Value> {
    let out = rdlv_ok(&[
        "threads".as_ref(),
        snap.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("threads json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn check_core(variant: Variant) {
    let bin = build_corpus("parked", DEFAULT_GO, variant);
    let target = Target::spawn(&bin, &[]);
    let snap = target.capture(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let core = dir.path().join("core");
    export("core", snap.path(), &core);
    let what = format!("{variant:?}");
    if variant == Variant::Stripped {
        // Delve cannot list goroutines of a stripped binary at all ("could
        // not find goroutine array", also on a gcore core of the same
        // process): it needs runtime.allgs from the symbol table. What it
        // can do, it must do on our core: every thread at its PC.
        check_delve_threads(&bin, &core, snap.path(), &what);
        check_gdb(&bin, &core, snap.path(), variant);
        return;
    }

    // Goroutines: same ids, same top-frame PCs.
    let ours = rdlv_ok(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--system".as_ref(),
        "-r".as_ref(),
    ]);
    let ours = parse_goroutine_lines(&String::from_utf8_lossy(&ours.stdout));
    let theirs = parse_goroutine_lines(&dlv_core(&bin, &core, &["goroutines -r".to_string()]));
    assert!(
        ours.len() >= 25,
        "{what}: rdlv lists only {} goroutines",
        ours.len()
    );
    for (id, (func, pc, on_thread)) in &ours {
        let Some((dfunc, dpc, _)) = theirs.get(id) else {
            panic!("{what}: goroutine {id} ({func}) missing from dlv core's list: {theirs:?}");
        };
        // A goroutine on a thread (running, in a syscall) is where its
        // thread is for Delve, where it entered the syscall for rdlv.
        if !on_thread {
            assert_eq!(
                (pc, func),
                (dpc, dfunc),
                "{what}: goroutine {id} top frame: rdlv vs dlv core"
            );
        }
    }
    for (id, (dfunc, _, _)) in &theirs {
        if !ours.contains_key(id) {
            // Delve also lists the dead g of an extra M (parked at goexit).
            assert_eq!(
                dfunc, "runtime.goexit",
                "{what}: dlv core lists goroutine {id} that rdlv does not"
            );
        }
    }

    // bt of every parked goroutine: same PCs and functions; lines equal
    // below the top frame (Delve looks the top one up at the PC itself).
    let sample: Vec<u64> = ours
        .iter()
        .filter(|(_, (_, _, t))| !t)
        .map(|(id, _)| *id)
        .take(12)
        .collect();
    let commands: Vec<String> = sample
        .iter()
        .flat_map(|id| [format!("print \"BT {id}\""), format!("goroutine {id} bt")])
        .collect();
    let text = dlv_core(&bin, &core, &commands);
    for (k, id) in sample.iter().enumerate() {
        let start = text
            .find(&format!("\"BT {id}\""))
            .unwrap_or_else(|| panic!("{what}: no bt of {id} in dlv output"));
        let end = sample
            .get(k + 1)
            .and_then(|n| text.find(&format!("\"BT {n}\"")))
            .unwrap_or(text.len());
        let theirs = parse_bt(&text[start..end]);
        let ours_out = rdlv_ok(&[
            "bt".as_ref(),
            snap.path().as_os_str(),
            id.to_string().as_ref(),
        ]);
        let ours = parse_bt(&String::from_utf8_lossy(&ours_out.stdout));
        assert!(!ours.is_empty(), "{what}: rdlv bt {id} is empty");
        let key = |v: &[(u64, String, String)]| -> Vec<(u64, String)> {
            v.iter().map(|(pc, f, _)| (*pc, f.clone())).collect()
        };
        assert_eq!(key(&ours), key(&theirs), "{what}: bt of goroutine {id}");
        if variant != Variant::Stripped {
            let lines = |v: &[(u64, String, String)]| -> Vec<String> {
                v.iter().skip(1).map(|f| f.2.clone()).collect()
            };
            assert_eq!(
                lines(&ours),
                lines(&theirs),
                "{what}: bt lines of goroutine {id}"
            );
        }
    }

    check_delve_threads(&bin, &core, snap.path(), &what);
    check_gdb(&bin, &core, snap.path(), variant);
}

/// Delve's `threads` on our core: the snapshot's threads, each at its PC.
fn check_delve_threads(bin: &Path, core: &Path, snap: &Path, what: &str) {
    let text = dlv_core(bin, core, &["threads".to_string()]);
    let theirs: BTreeMap<u64, u64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start_matches(['*', ' ']).strip_prefix("Thread ")?;
            let mut w = rest.split_whitespace();
            let tid = w.next()?.parse().ok()?;
            let pc = u64::from_str_radix(w.nth(1)?.trim_start_matches("0x"), 16).ok()?;
            Some((tid, pc))
        })
        .collect();
    let ours: BTreeMap<u64, u64> = threads_json(snap)
        .iter()
        .filter_map(|t| {
            let pc = u64::from_str_radix(t["pc"].as_str()?.trim_start_matches("0x"), 16).ok()?;
            Some((t["tid"].as_u64()?, pc))
        })
        .collect();
    assert!(ours.len() >= 2, "{what}: {} threads", ours.len());
    assert_eq!(
        ours, theirs,
        "{what}: threads (tid -> pc), rdlv vs dlv core:\n{text}"
    );
}

/// gdb on our core: every thread, each with a sane top frame.
fn check_gdb(bin: &Path, core: &Path, snap: &Path, variant: Variant) {
    let what = format!("{variant:?}");
    let gdb = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            "info threads",
            "-ex",
            "thread apply all bt 1",
        ])
        .arg(bin)
        .arg(core)
        .output()
        .expect("spawn gdb (install the gdb package)");
    let gtext = String::from_utf8_lossy(&gdb.stdout).into_owned();
    let threads = threads_json(snap);
    assert!(threads.len() >= 2, "{what}: {} threads", threads.len());
    for t in &threads {
        let tid = t["tid"].as_u64().expect("tid");
        let pc = u64::from_str_radix(t["pc"].as_str().expect("pc").trim_start_matches("0x"), 16)
            .expect("hex pc");
        let marker = format!("(LWP {tid})");
        let at = gtext
            .rfind(&marker)
            .unwrap_or_else(|| panic!("{what}: gdb shows no thread {marker}:\n{gtext}"));
        let frame0 = gtext[at..]
            .lines()
            .find(|l| l.starts_with("#0"))
            .unwrap_or_else(|| panic!("{what}: no #0 frame for {marker}:\n{gtext}"));
        let named = !frame0.contains(" ?? ");
        let at_pc = frame0.contains(&format!("{pc:#018x}")) || frame0.contains(&format!("{pc:#x}"));
        assert!(
            (named || at_pc) && !frame0.contains("Cannot access memory"),
            "{what}: thread {tid} top frame {frame0:?} (pc {pc:#x})"
        );
        if variant != Variant::Stripped {
            assert!(
                named,
                "{what}: thread {tid}: gdb names no function: {frame0:?}"
            );
        }
    }
}

#[test]
fn core_opens_in_delve_and_gdb() {
    check_core(Variant::Default);
}

#[test]
fn core_opens_in_delve_and_gdb_pie() {
    check_core(Variant::Pie);
}

#[test]
fn core_opens_in_delve_and_gdb_stripped() {
    check_core(Variant::Stripped);
}

#[test]
fn core_globals_print_as_rdlv_prints_them() {
    let bin = build_corpus("values", DEFAULT_GO, Variant::Default);
    let target = Target::spawn(&bin, &[]);
    let snap = target.capture(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let core = dir.path().join("core");
    export("core", snap.path(), &core);
    let globals = [
        "main.maxInt64",
        "main.minInt64",
        "main.maxUint64",
        "main.beyond53",
        "main.smallInts",
        "main.unicodeText",
        "main.escapes",
        "main.byteArray",
        "main.int16Arr",
    ];
    let commands: Vec<String> = globals
        .iter()
        .flat_map(|g| [format!("print \"P {g}\""), format!("print {g}")])
        .collect();
    let text = dlv_core(&bin, &core, &commands);
    let mut compared = 0;
    for g in globals {
        let marker = format!("\"P {g}\"\n");
        let start = text
            .find(&marker)
            .unwrap_or_else(|| panic!("no print of {g} in dlv output:\n{text}"))
            + marker.len();
        let theirs = text[start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let ours = rdlv_ok(&["print".as_ref(), snap.path().as_os_str(), g.as_ref()]);
        let ours = String::from_utf8_lossy(&ours.stdout).trim().to_string();
        assert_eq!(ours, theirs, "print {g}: rdlv vs dlv core on our core");
        compared += 1;
    }
    assert_eq!(compared, globals.len());
}

/// `rdlv whatis` (one-shot and REPL) of globals of each kind prints what
/// `whatis` of `dlv core` on our core prints: struct, pointer, map, slice,
/// array, chan, func, closure, named types (`Real type:`), interfaces
/// (`Concrete type:`, `void` when nil), generics, an index expression, and
/// an untyped constant (`len`, for which both print nothing).
#[test]
fn whatis_of_globals_equals_dlv_core() {
    let bin = build_corpus("values", DEFAULT_GO, Variant::Default);
    let target = Target::spawn(&bin, &[]);
    let snap = target.capture(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let core = dir.path().join("core");
    export("core", snap.path(), &core);
    let exprs = [
        "main.cfg",
        "main.cfgPtr",
        "main.nilCfg",
        "main.cfg.Limits",
        "main.nestedMap",
        "main.points",
        "main.byteArray",
        "main.bufferedChan",
        "main.nilChan",
        "main.squareFn",
        "main.adder",
        "main.nilFunc",
        "main.timeout",
        "main.ifaceStruct",
        "main.ifaceNil",
        "main.customErr",
        "main.stringer",
        "main.genericPair",
        "main.rawPtr",
        "main.cfg.Tags[0]",
        "len(main.points)",
    ];
    let mut commands: Vec<String> = exprs
        .iter()
        .flat_map(|e| [format!("print \"W {e}\""), format!("whatis {e}")])
        .collect();
    commands.push("print \"W END\"".into());
    let text = dlv_core(&bin, &core, &commands);
    // Delve's answer to each: the lines between its marker and the next.
    let answer = |e: &str| -> String {
        let marker = format!("\"W {e}\"\n");
        let start = text
            .find(&marker)
            .unwrap_or_else(|| panic!("no whatis of {e} in dlv output:\n{text}"))
            + marker.len();
        let end = text[start..]
            .find("\"W ")
            .map(|i| start + i)
            .unwrap_or(text.len());
        text[start..end].trim_end().to_string()
    };
    let path = snap.path().to_str().expect("utf-8");
    for e in exprs {
        let theirs = answer(e);
        // `len(...)` is an untyped constant: Delve prints no type for it.
        assert!(
            (!theirs.is_empty() || e.starts_with("len(")) && !theirs.contains("Command failed"),
            "dlv core cannot answer whatis {e}: {theirs:?}"
        );
        let ours = rdlv_ok(&["whatis".as_ref(), snap.path().as_os_str(), e.as_ref()]);
        let ours = String::from_utf8_lossy(&ours.stdout).trim_end().to_string();
        assert_eq!(ours, theirs, "whatis {e}: rdlv vs dlv core on our core");
        let repl = rdlv_ok(&[path.as_ref(), "-c".as_ref(), format!("whatis {e}").as_ref()]);
        let repl = String::from_utf8_lossy(&repl.stdout).trim_end().to_string();
        assert_eq!(repl, theirs, "REPL whatis {e}: rdlv vs dlv core");
    }
}

// ---------------------------------------------------------------- report

/// A DevTools-protocol session with headless Chromium over
/// `--remote-debugging-pipe` (commands on fd 3, replies and events on fd 4,
/// NUL-separated JSON).
struct Chromium {
    child: std::process::Child,
    to_browser: std::fs::File,
    from_browser: mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    events: Vec<serde_json::Value>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn start() -> Chromium {
        use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let exe = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find(|c| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {c}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or_else(|| {
                panic!("headless Chromium is missing: apt-get install -y chromium (.ci/run installs it)")
            });
        let mk_pipe = || -> (OwnedFd, OwnedFd) {
            let mut fds = [0i32; 2];
            // SAFETY: pipe2 fills two new descriptors we then own.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
            assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
            // SAFETY: both are fresh descriptors owned by nobody else.
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
        };
        let (cmd_r, cmd_w) = mk_pipe();
        let (ev_r, ev_w) = mk_pipe();
        let profile = tempfile::tempdir().expect("profile dir");
        let (cmd_r_fd, ev_w_fd) = (cmd_r.into_raw_fd(), ev_w.into_raw_fd());
        let mut cmd = Command::new(exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--remote-debugging-pipe",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe dup2 calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move both out of the way first: either may already be 3 or 4.
                let a = libc::fcntl(cmd_r_fd, libc::F_DUPFD, 10);
                let b = libc::fcntl(ev_w_fd, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn chromium");
        // SAFETY: the raw descriptors were ours; the child has its copies.
        unsafe {
            drop(OwnedFd::from_raw_fd(cmd_r_fd));
            drop(OwnedFd::from_raw_fd(ev_w_fd));
        }
        let (tx, rx) = mpsc::channel();
        let mut reader = std::fs::File::from(ev_r);
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(i) = pending.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = pending.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Chromium {
            child,
            to_browser: std::fs::File::from(cmd_w),
            from_browser: rx,
            next_id: 1,
            events: Vec::new(),
            _profile: profile,
        }
    }

    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"));
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn wait_event(&mut self, method: &str) {
        if self.events.iter().any(|e| e["method"] == method) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium sent no {method}"));
            let hit = v["method"] == method;
            self.events.push(v);
            if hit {
                return;
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What loading a page showed.
struct PageLoad {
    html: String,
    text: String,
    errors: Vec<String>,
    requests: Vec<String>,
    load_ms: f64,
    screenshot: Vec<u8>,
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn load_page(file: &Path) -> PageLoad {
    let mut c = Chromium::start();
    let t = c.call(
        None,
        "Target.createTarget",
        serde_json::json!({"url": "about:blank"}),
    );
    let target_id = t["targetId"].as_str().expect("targetId").to_string();
    let a = c.call(
        None,
        "Target.attachToTarget",
        serde_json::json!({"targetId": target_id, "flatten": true}),
    );
    let s = a["sessionId"].as_str().expect("sessionId").to_string();
    for m in [
        "Network.enable",
        "Runtime.enable",
        "Log.enable",
        "Page.enable",
    ] {
        c.call(Some(&s), m, serde_json::json!({}));
    }
    c.events.clear();
    let url = format!("file://{}", file.display());
    c.call(Some(&s), "Page.navigate", serde_json::json!({"url": url}));
    c.wait_event("Page.loadEventFired");
    // Let late console messages and requests arrive.
    let eval = |c: &mut Chromium, expr: &str| -> serde_json::Value {
        let r = c.call(
            Some(&s),
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    };
    let html = eval(&mut c, "document.documentElement.outerHTML")
        .as_str()
        .unwrap_or("")
        .to_string();
    let text = eval(&mut c, "document.body.innerText")
        .as_str()
        .unwrap_or("")
        .to_string();
    let load_ms = eval(
        &mut c,
        "performance.getEntriesByType('navigation')[0].loadEventEnd",
    )
    .as_f64()
    .unwrap_or(f64::MAX);
    let shot = c.call(
        Some(&s),
        "Page.captureScreenshot",
        serde_json::json!({"format": "png"}),
    );
    let screenshot = base64_decode(shot["data"].as_str().unwrap_or(""));
    let mut errors = Vec::new();
    let mut requests = Vec::new();
    for e in &c.events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.exceptionThrown" => errors.push(format!("exception: {p}")),
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                errors.push(format!("console.{}: {p}", p["type"]))
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                errors.push(format!("log: {}", p["entry"]))
            }
            "Network.requestWillBeSent" => {
                requests.push(p["request"]["url"].as_str().unwrap_or("").to_string())
            }
            _ => {}
        }
    }
    PageLoad {
        html,
        text,
        errors,
        requests,
        load_ms,
        screenshot,
    }
}

fn foreign_requests(page: &PageLoad, file: &Path) -> Vec<String> {
    let own = format!("file://{}", file.display());
    page.requests
        .iter()
        .filter(|u| **u != own && !u.starts_with("data:"))
        .cloned()
        .collect()
}

#[test]
fn report_loads_in_chromium_without_errors_or_requests() {
    // The detector itself: a page with an error and a remote image is caught.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body>\
         <img src=\"http://192.0.2.1/x.png\"><script>console.error('boom');nope();</script></body></html>",
    )
    .expect("write bad page");
    let control = load_page(&bad);
    assert!(
        control.errors.len() >= 2 && !foreign_requests(&control, &bad).is_empty(),
        "the Chromium check misses errors or requests: errors {:?}, requests {:?}",
        control.errors,
        control.requests
    );

    let bin = build_corpus("many", DEFAULT_GO, Variant::Default);
    let target = Target::spawn(&bin, &["-n", "3000"]);
    let snap = target.capture(&[]);
    let report = dir.path().join("report.html");
    rdlv_ok(&[
        "report".as_ref(),
        snap.path().as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
    ]);
    let page = load_page(&report);
    let shot = artifacts_dir().join("report.png");
    std::fs::write(&shot, &page.screenshot).expect("write screenshot");
    assert!(
        page.screenshot.starts_with(b"\x89PNG"),
        "the screenshot is not a PNG ({} bytes)",
        page.screenshot.len()
    );
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    assert_eq!(
        foreign_requests(&page, &report),
        Vec::<String>::new(),
        "the report made requests"
    );
    // The biggest group: 1000 goroutines in main.waitReceive (n % 3 == 0),
    // 1000 in waitSelect, 1000 in waitMutex: each count and stack shown.
    let groups = rdlv_ok(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--group".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let groups: serde_json::Value = serde_json::from_slice(&groups.stdout).expect("groups json");
    let biggest = &groups[0];
    let count = biggest["count"].as_u64().expect("count");
    assert!(count >= 1000, "biggest group has {count}");
    assert!(
        page.html
            .contains(&format!("<span class=\"count\">{count}</span>")),
        "the DOM lacks the biggest group's count {count}"
    );
    // Its stack as the traceback shows it (`--group` text: the first block).
    let text = rdlv_ok(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--group".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let block: Vec<&str> = text.split("\n\n").next().unwrap_or("").lines().collect();
    let mut checked = 0;
    for pair in block.windows(2).skip(1) {
        let (Some(loc), false) = (pair[1].strip_prefix('\t'), pair[0].starts_with('\t')) else {
            continue;
        };
        let func = pair[0].split('(').next().unwrap_or("");
        let loc = loc.split(" +0x").next().unwrap_or(loc);
        let func = func
            .trim_start_matches("created by ")
            .split(" in goroutine")
            .next()
            .unwrap_or(func);
        assert!(
            page.html.contains(func) && page.html.contains(loc),
            "the DOM lacks the biggest group's frame {func} at {loc}"
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} frames in the biggest group's block:\n{text}"
    );
    // The script ran (it reveals the search box) and the text is readable.
    assert!(
        page.html.contains("id=\"searchbox\" class=\"\""),
        "the script did not run"
    );
    assert!(page.text.contains("Icicle graph") && page.text.contains("Capture"));
    // Readable with JavaScript off: the groups are in the file itself.
    let raw = std::fs::read_to_string(&report).expect("read report");
    assert!(raw.contains(&format!("<span class=\"count\">{count}</span>")));
    assert!(page.load_ms < 2000.0, "load took {} ms", page.load_ms);
}

#[test]
fn report_of_100k_goroutines_is_small_and_fast() {
    let bin = build_corpus("many", DEFAULT_GO, Variant::Default);
    let target = Target::spawn(&bin, &["-n", "100000"]);
    let snap = target.capture(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.html");
    rdlv_ok(&[
        "report".as_ref(),
        snap.path().as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
    ]);
    let size = std::fs::metadata(&report).expect("report").len();
    assert!(
        size <= 5 << 20,
        "100k-goroutine report is {size} bytes (> 5 MB)"
    );
    let page = load_page(&report);
    std::fs::write(artifacts_dir().join("report-100k.png"), &page.screenshot)
        .expect("write screenshot");
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    assert!(
        foreign_requests(&page, &report).is_empty(),
        "{:?}",
        page.requests
    );
    assert!(
        page.text.contains("100000") || page.text.contains("1000"),
        "no goroutine count on the page"
    );
    // The heap sections: the census, the leaks and the wait-for graph (its
    // edge table, bounded, with the count of those left out).
    let raw = std::fs::read_to_string(&report).expect("read report");
    let heap = html_section(&raw, "heap");
    assert!(
        heap.contains("<table class=\"data\" id=\"heap-types\">"),
        "{heap}"
    );
    assert!(html_section(&raw, "leaks").contains("leaked goroutines ("));
    let waits = html_section(&raw, "waits");
    assert!(
        waits.contains("<table class=\"data\" id=\"wait-edges\">")
            && waits.contains("<code>rdlv waits SNAP</code>"),
        "{waits}"
    );
    assert!(
        page.load_ms < 2000.0,
        "100k report loaded in {} ms",
        page.load_ms
    );
}

/// The text of the page between `<h2 id="ID">` and the next `<h2`.
fn html_section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<h2 id=\"{id}\">"))
        .unwrap_or_else(|| panic!("the report has no {id} section"));
    let rest = &page[start + 4..];
    &rest[..rest.find("<h2").unwrap_or(rest.len())]
}

/// Goroutine ids of the `goroutines: 1 2 3` lines of a section.
fn listed_goroutines(section: &str) -> std::collections::BTreeSet<u64> {
    section
        .split("<div class=\"ids\">goroutines: ")
        .skip(1)
        .flat_map(|rest| {
            rest.split("</div>")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|w| w.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ids_of(v: &serde_json::Value) -> std::collections::BTreeSet<u64> {
    v.as_array()
        .expect("array of goroutine ids")
        .iter()
        .map(|i| i.as_u64().expect("goroutine id"))
        .collect()
}

/// The report of heapzoo (known heap, leaks and deadlocks by construction,
/// `heapzoo.json`): the census rows hold every known type with its count
/// and the totals `rdlv heap` gives, the leak groups list exactly the
/// leaked goroutines, the waits section flags exactly the known cycles;
/// Chromium renders all three (their text is in `innerText`) without an
/// error or a request. A redacted snapshot of the same process still gives
/// a report whose heap sections say "redacted".
#[test]
fn report_of_heapzoo_shows_heap_leaks_and_waits() {
    let target = Target::start("heapzoo", DEFAULT_GO, Variant::Default, &[]);
    let truth_path = target.oracle_dir().join("heapzoo.json");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).expect("read heapzoo.json"))
            .expect("heapzoo.json parses");
    let snap = target.capture(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // The census as `rdlv heap --format json` has it (first: the first
    // rdlv call may build rdlv, which the timing below must not count).
    let census = rdlv_ok(&[
        "heap".as_ref(),
        snap.path().as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let census: serde_json::Value = serde_json::from_slice(&census.stdout).expect("heap json");
    let report = dir.path().join("heapzoo.html");
    let started = Instant::now();
    let out = rdlv_ok(&[
        "report".as_ref(),
        snap.path().as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
    ]);
    eprintln!(
        "report of heapzoo: {} ms, {} bytes; {}",
        started.elapsed().as_millis(),
        std::fs::metadata(&report).expect("report").len(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let raw = std::fs::read_to_string(&report).expect("read report");

    // Heap: the census totals, the runtime's figures, every known type.
    let heap = html_section(&raw, "heap");
    assert!(
        heap.contains(&format!(
            "{} objects, {} bytes in {} in-use spans ({} bytes)",
            census["total"]["objects"],
            census["total"]["bytes"],
            census["spans"]["in_use"],
            census["spans"]["bytes"]
        )),
        "census totals missing:\n{heap}"
    );
    assert!(
        heap.contains(&format!("heap_alloc {} (", census["runtime"]["heap_alloc"])),
        "runtime accounting missing:\n{heap}"
    );
    let types = truth["types"].as_object().expect("types");
    assert!(!types.is_empty());
    for (name, n) in types {
        let row = census["types"]
            .as_array()
            .expect("types")
            .iter()
            .find(|t| t["type"] == name.as_str())
            .unwrap_or_else(|| panic!("rdlv heap lacks {name}"));
        assert_eq!(row["objects"], *n, "{name}: census vs heapzoo");
        let want = format!(
            "<tr><td>{n}</td><td>{}</td><td class=\"ty\">{name}</td></tr>",
            row["bytes"]
        );
        assert!(heap.contains(&want), "report lacks the row {want}:\n{heap}");
    }
    assert!(
        heap.contains("unknown (size class 2, 16 B)"),
        "no untyped 16-byte line:\n{heap}"
    );

    // Leaks: exactly the known leaked goroutines, grouped.
    let leaks = html_section(&raw, "leaks");
    let known = ids_of(&truth["leaked"]);
    assert_eq!(
        listed_goroutines(leaks),
        known,
        "leaked goroutines: report vs heapzoo"
    );
    assert!(
        leaks.contains(&format!("<p>{} leaked goroutines (", known.len())),
        "{leaks}"
    );

    // Waits: exactly the known cycles, flagged as deadlocks.
    let waits = html_section(&raw, "waits");
    let cycles: std::collections::BTreeSet<std::collections::BTreeSet<u64>> = waits
        .split("<li>goroutines ")
        .skip(1)
        .map(|li| {
            li.split("</li>")
                .next()
                .unwrap_or("")
                .split(" &lt;-&gt; ")
                .map(|g| g.trim().parse::<u64>().expect("cycle member id"))
                .collect()
        })
        .collect();
    let want: std::collections::BTreeSet<_> = truth["cycles"]
        .as_array()
        .expect("cycles")
        .iter()
        .map(ids_of)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(cycles, want, "wait cycles: report vs heapzoo");
    assert!(waits.contains("(likely deadlocks)"), "{waits}");
    for g in want.iter().flatten() {
        assert!(
            waits.contains(&format!("<tr class=\"cyc\"><td>{g}</td>")),
            "goroutine {g} of a cycle is not marked in the edge table"
        );
    }

    // Chromium renders the sections (innerText has only what is shown).
    let page = load_page(&report);
    std::fs::write(artifacts_dir().join("report-heapzoo.png"), &page.screenshot)
        .expect("write screenshot");
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    assert_eq!(
        foreign_requests(&page, &report),
        Vec::<String>::new(),
        "the report made requests"
    );
    let (first_type, _) = types.iter().next().expect("a known type");
    let first_leak = known.iter().next().expect("a leaked goroutine");
    for want in [
        "Heap\n",
        "Runtime accounting",
        first_type.as_str(),
        "Leaks\n",
        &format!("{} leaked goroutines", known.len()),
        &first_leak.to_string(),
        "Waits\n",
        "cycles of blocked goroutines (likely deadlocks)",
    ] {
        assert!(
            page.text.contains(want),
            "Chromium's rendered text lacks {want:?}:\n{}",
            page.text
        );
    }

    // A redacted snapshot: the goroutines stand, the heap sections say why.
    let redacted = dir.path().join("redacted.snap");
    rdlv_ok(&[
        "redact".as_ref(),
        snap.path().as_os_str(),
        "-o".as_ref(),
        redacted.as_os_str(),
    ]);
    let report = dir.path().join("redacted.html");
    let out = rdlv_ok(&[
        "report".as_ref(),
        redacted.as_os_str(),
        "-o".as_ref(),
        report.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no heap sections ("), "{stderr}");
    let raw = std::fs::read_to_string(&report).expect("read redacted report");
    assert!(
        raw.contains("<span class=\"count\">"),
        "no goroutine groups"
    );
    for (id, command) in [
        ("heap", "rdlv heap SNAP"),
        ("leaks", "rdlv leaks SNAP"),
        ("waits", "rdlv waits SNAP"),
    ] {
        let s = html_section(&raw, id);
        assert!(
            s.contains("could not be analysed from this snapshot: ")
                && s.contains("redacted")
                && s.contains(&format!("<code>{command}</code>")),
            "{id} section of the redacted report:\n{s}"
        );
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn damaged_snapshots_fail_with_exit_3_and_leave_no_file() {
    let bin = build_corpus("parked", DEFAULT_GO, Variant::Default);
    let target = Target::spawn(&bin, &[]);
    let snap = target.capture(&[]);
    let bytes = std::fs::read(snap.path()).expect("read snapshot");
    let dir = tempfile::tempdir().expect("tempdir");
    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write truncated");
    // Damage: a byte flipped every 64 KiB past the header, so every memory
    // chunk (or the index) fails its checksum.
    let mut damaged_bytes = bytes.clone();
    let mut i = 4096;
    while i < damaged_bytes.len().saturating_sub(4096) {
        damaged_bytes[i] ^= 0x5a;
        i += 64 << 10;
    }
    let damaged = dir.path().join("damaged.snap");
    std::fs::write(&damaged, &damaged_bytes).expect("write damaged");
    for bad in [&truncated, &damaged] {
        for (cmd, kind, flag) in [
            ("export", Some("pprof"), None),
            ("export", Some("pprof"), Some("--heap")),
            ("export", Some("core"), None),
            ("export", Some("folded"), None),
            ("report", None, None),
        ] {
            let outdir = tempfile::tempdir().expect("tempdir");
            let out_file = outdir.path().join("out");
            let mut args: Vec<&std::ffi::OsStr> = vec![cmd.as_ref()];
            if let Some(k) = kind {
                args.push(k.as_ref());
            }
            if let Some(f) = flag {
                args.push(f.as_ref());
            }
            args.extend([bad.as_os_str(), "-o".as_ref(), out_file.as_os_str()]);
            let out = Command::new(rdlv_path())
                .args(&args)
                .output()
                .expect("spawn rdlv");
            let ctx = describe_output(
                &format!("rdlv {cmd} {kind:?} {flag:?} {}", bad.display()),
                &out,
            );
            assert_eq!(out.status.code(), Some(3), "{ctx}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.starts_with("rdlv: "), "{ctx}");
            let left: Vec<_> = std::fs::read_dir(outdir.path())
                .expect("ls")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(left.is_empty(), "{ctx}\nleft behind: {left:?}");
        }
    }
    // The same snapshot undamaged exports fine (the failures are the damage's).
    let ok = dir.path().join("ok.pb.gz");
    export("pprof", snap.path(), &ok);
}
