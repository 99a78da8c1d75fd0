//! Goroutines and stacks against the Go runtime's own `runtime.Stack(buf, true)`
//! (issue 3): `rdlv goroutines SNAP --format go` must print the same blocks as
//! the `parked` program's oracle, for several Go releases and build variants.
//!
//! Comparison rules (CONTRACT.md): the oracle machinery (the goroutine that
//! writes the oracle, the os/signal goroutine) is excluded; a goroutine that
//! was running at capture is compared by function only; minutes may differ
//! by one. Everything else must be identical: status text and suffixes,
//! every frame (function, arguments, file, line, `+0x` offset, inlined or
//! not), the elision line, and `created by ... in goroutine N`.

use rdlv_e2e::oracle::{parse_stacks, GoroutineBlock};
use rdlv_e2e::toolchain::build_corpus;
use rdlv_e2e::tools::{describe_output, run_rdlv};
use rdlv_e2e::{Target, Variant, DEFAULT_GO};

/// A function name as tracebacks print it: generic shapes become `[...]`.
fn printed_name(raw: &str) -> String {
    match (raw.find('['), raw.rfind(']')) {
        (Some(i), Some(j)) if j > i => format!("{}[...]{}", &raw[..i], &raw[j + 1..]),
        _ => raw.to_string(),
    }
}

/// Outcome of comparing one oracle goroutine with rdlv's block.
fn compare_block(want: &GoroutineBlock, got: Option<&GoroutineBlock>) -> Result<(), String> {
    let Some(got) = got else {
        return Err(format!("goroutine {} missing from rdlv output", want.id));
    };
    if want.is_running() || got.is_running() {
        // Running at capture: its stack moved on before the oracle was written.
        let want_created = want.created_by.as_ref().map(|c| &c.func);
        let got_created = got.created_by.as_ref().map(|c| &c.func);
        if want_created != got_created {
            return Err(format!(
                "goroutine {} (running): created by {want_created:?} != {got_created:?}",
                want.id
            ));
        }
        // It kept running between the capture and the oracle, so only the
        // goroutine's own function (its outermost frame) is sure to be in both.
        if let Some(own) = want.frames.last() {
            if !got.frames.iter().any(|f| f.func == own.func) {
                return Err(format!(
                    "goroutine {} (running): function {} not in rdlv's frames {:?}",
                    want.id,
                    own.func,
                    got.funcs()
                ));
            }
        }
        return Ok(());
    }
    let minutes_ok = match (want.minutes, got.minutes) {
        (None, None) => true,
        (Some(a), Some(b)) => a.abs_diff(b) <= 1,
        (Some(a), None) | (None, Some(a)) => a <= 1,
    };
    if want.wait_reason != got.wait_reason
        || want.locked_to_thread != got.locked_to_thread
        || want.other_suffixes != got.other_suffixes
        || !minutes_ok
    {
        return Err(format!(
            "goroutine {}: header [{}] != [{}]",
            want.id, want.status, got.status
        ));
    }
    if want.frames != got.frames || want.elided != got.elided || want.created_by != got.created_by {
        return Err(format!(
            "goroutine {}: stack differs\n--- runtime.Stack ---\n{}\n--- rdlv ---\n{}",
            want.id, want.text, got.text
        ));
    }
    Ok(())
}

/// Runs `parked` built with `version`/`variant`, captures it, and compares.
/// Returns (matching, compared, failure descriptions).
/// `rdlv goroutines SNAP --format go`, parsed into goroutine blocks.
fn go_stacks(snap: &std::path::Path) -> Vec<GoroutineBlock> {
    let out = run_rdlv(&[
        "goroutines".as_ref(),
        snap.as_os_str(),
        "--format".as_ref(),
        "go".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv goroutines --format go", &out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    parse_stacks(&text).unwrap_or_else(|e| panic!("rdlv output: {e}\n{text}"))
}

fn oracle_run(version: &str, variant: Variant) -> (usize, usize, Vec<String>) {
    let target = Target::start("parked", version, variant, &[]);
    let snap = target.capture(&[]);
    let oracle = target.oracle();
    let ours = go_stacks(snap.path());
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut matching = 0;
    for want in oracle.compared_goroutines() {
        compared += 1;
        match compare_block(want, ours.iter().find(|g| g.id == want.id)) {
            Ok(()) => matching += 1,
            Err(e) => failures.push(e),
        }
    }
    // No extra user goroutines either (same goroutine set).
    for g in &ours {
        if oracle.goroutine(g.id).is_none() && !g.is_oracle_machinery() {
            failures.push(format!(
                "rdlv printed goroutine {} that the runtime did not",
                g.id
            ));
        }
    }
    assert!(
        compared >= 20,
        "oracle has only {compared} goroutines:\n{}",
        oracle.stacks_text
    );
    // pprof labels (a map before Go 1.24, a sorted slice since): the
    // labelled goroutine of `parked` is found by its label.
    let out = run_rdlv(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "--label".as_ref(),
        "tenant=acme".as_ref(),
    ]);
    let labelled: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", describe_output("--label", &out)));
    let ok = labelled.as_array().is_some_and(|l| {
        l.len() == 1 && l[0]["labels"] == serde_json::json!({"request": "r-42", "tenant": "acme"})
    });
    if !ok {
        failures.push(format!("--label tenant=acme gave {labelled}"));
    }
    // sched works with symbols and, through the code of runtime.schedtrace,
    // without: one P line per GOMAXPROCS.
    let out = run_rdlv(&["sched".as_ref(), snap.path().as_os_str()]);
    let sched = String::from_utf8_lossy(&out.stdout);
    let procs: Option<usize> = sched
        .split_whitespace()
        .find_map(|w| w.strip_prefix("gomaxprocs="))
        .and_then(|n| n.parse().ok());
    let p_lines = sched.lines().filter(|l| l.starts_with("  P")).count();
    if !out.status.success() || procs != Some(p_lines) || p_lines == 0 {
        failures.push(describe_output("rdlv sched", &out));
    }
    (matching, compared, failures)
}

/// Runs every variant for one Go release and asserts 100 % identical.
fn oracle_matrix(version: &str) {
    let mut report = Vec::new();
    let mut all_failures = Vec::new();
    for variant in Variant::ALL {
        let (ok, n, failures) = oracle_run(version, variant);
        report.push(format!(
            "go{version} {:<8} {ok}/{n} identical ({:.1}%)",
            variant.dir_name(),
            100.0 * ok as f64 / n as f64
        ));
        for f in failures {
            all_failures.push(format!("[go{version} {}] {f}", variant.dir_name()));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        all_failures.is_empty(),
        "{}\n\n{}",
        report.join("\n"),
        all_failures.join("\n\n")
    );
}

#[test]
fn goroutines_match_runtime_stack_go_1_26() {
    oracle_matrix(DEFAULT_GO);
}

#[test]
fn goroutines_match_runtime_stack_go_1_21() {
    oracle_matrix("1.21.13");
}

#[test]
fn goroutines_match_runtime_stack_go_1_24() {
    oracle_matrix("1.24.11");
}

#[test]
fn goroutines_match_runtime_stack_go_1_27() {
    oracle_matrix("1.27.3");
}

/// JSON per CONTRACT, `bt --format json`, text listing, grouping, filters,
/// `threads` and `sched`, on one snapshot.
#[test]
fn goroutines_json_bt_threads_sched() {
    let target = Target::start("parked", DEFAULT_GO, Variant::Default, &[]);
    let snap = target.capture(&[]);
    let oracle = target.oracle();
    let rdlv = |args: &[&str]| {
        let mut full: Vec<&std::ffi::OsStr> = vec![args[0].as_ref(), snap.path().as_os_str()];
        full.extend(args[1..].iter().map(|a| std::ffi::OsStr::new(*a)));
        let out = run_rdlv(&full);
        assert!(
            out.status.success(),
            "{}",
            describe_output(&args.join(" "), &out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let json: serde_json::Value =
        serde_json::from_str(&rdlv(&["goroutines", "--format", "json"])).expect("json");
    let list = json.as_array().expect("array");
    for want in oracle.compared_goroutines() {
        let got = list
            .iter()
            .find(|g| g["id"] == want.id)
            .unwrap_or_else(|| panic!("goroutine {} not in JSON", want.id));
        for key in [
            "status",
            "wait_reason",
            "wait_minutes",
            "locked_to_thread",
            "thread",
            "system",
            "frames",
            "created_by",
            "labels",
        ] {
            assert!(
                got.get(key).is_some(),
                "goroutine {}: no {key:?} in {got}",
                want.id
            );
        }
        assert_eq!(
            got["locked_to_thread"], want.locked_to_thread,
            "goroutine {}",
            want.id
        );
        if !want.is_running() {
            // `wait_reason` for waiting goroutines, else the status word is what Go prints.
            let key = if got["status"] == "waiting" {
                "wait_reason"
            } else {
                "status"
            };
            assert_eq!(got[key], want.wait_reason.as_str(), "goroutine {}", want.id);
            // Every printed (user) frame appears, in order, among all frames.
            let all: Vec<String> = got["frames"]
                .as_array()
                .expect("frames")
                .iter()
                .filter_map(|f| f["func"].as_str())
                .map(printed_name)
                .collect();
            let mut pos = 0;
            for f in &want.frames {
                let found = all[pos..]
                    .iter()
                    .position(|name| *name == f.func)
                    .unwrap_or_else(|| panic!("goroutine {}: {} not in {all:?}", want.id, f.func));
                pos += found + 1;
            }
        }
        match &want.created_by {
            Some(c) => {
                assert_eq!(got["created_by"]["func"], c.func.as_str());
                assert_eq!(got["created_by"]["line"], c.line);
                if let Some(goid) = c.goid {
                    assert_eq!(got["created_by"]["goid"], goid);
                }
            }
            None => assert!(got["created_by"].is_null()),
        }
    }
    // The labelled goroutine carries its pprof labels.
    assert!(
        list.iter()
            .any(|g| g["labels"].as_object().is_some_and(|l| !l.is_empty())),
        "no goroutine has labels: {json}"
    );

    // bt: innermost first, runtime frames included.
    let chan = oracle
        .compared_goroutines()
        .find(|g| g.funcs().contains(&"main.chanRecv"))
        .expect("oracle has main.chanRecv");
    let bt: serde_json::Value =
        serde_json::from_str(&rdlv(&["bt", &chan.id.to_string(), "--format", "json"]))
            .expect("bt json");
    let names: Vec<&str> = bt
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["func"].as_str())
        .collect();
    assert_eq!(names.first(), Some(&"runtime.gopark"), "{names:?}");
    assert!(names.contains(&"main.chanRecv"), "{names:?}");
    assert_eq!(names.last(), Some(&"runtime.goexit"), "{names:?}");

    // Text listing, Delve style, one line per user goroutine plus a count.
    let text = rdlv(&["goroutines"]);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("Goroutine {} - User:", chan.id)))
        .unwrap_or_else(|| panic!("no line for goroutine {}:\n{text}", chan.id));
    assert!(
        line.contains("main.chanRecv") && line.ends_with("[chan receive]"),
        "{line}"
    );
    let count = oracle.goroutines.len();
    assert!(
        text.contains(&format!("[{count} goroutines]")),
        "expected {count}:\n{text}"
    );

    // Start location unwraps the go-statement wrapper (Delve's -s); -g is the go statement.
    let start = rdlv(&["goroutines", "-s"]);
    let line = start
        .lines()
        .find(|l| l.contains(&format!("Goroutine {} - Start:", chan.id)))
        .unwrap_or_else(|| panic!("no start line for goroutine {}:\n{start}", chan.id));
    assert!(line.contains(" main.chanRecv ("), "{line}");
    let go = rdlv(&["goroutines", "-g"]);
    let line = go
        .lines()
        .find(|l| l.contains(&format!("Goroutine {} - Go:", chan.id)))
        .unwrap_or_else(|| panic!("no go line for goroutine {}:\n{go}", chan.id));
    let created = chan.created_by.as_ref().expect("created by");
    assert!(
        line.contains(&format!("{}:{} main.main (", created.file, created.line)),
        "{line} vs {created:?}"
    );

    // Filters.
    let only_mutex = rdlv(&["goroutines", "--wait-reason", "sync.Mutex.Lock"]);
    assert!(only_mutex.contains("[1 goroutines]"), "{only_mutex}");
    let by_func = rdlv(&["goroutines", "--func", "main.recurse"]);
    assert!(by_func.contains("[1 goroutines]"), "{by_func}");

    // threads: every captured thread, one of them runs main.spin.
    let threads = rdlv(&["threads"]);
    assert!(threads.lines().count() >= 2, "{threads}");
    assert!(threads.contains("main.spin"), "{threads}");

    // sched: the schedtrace shape.
    let sched = rdlv(&["sched"]);
    assert!(sched.starts_with("SCHED "), "{sched}");
    assert!(
        sched.contains("gomaxprocs=") && sched.contains("  P0: status="),
        "{sched}"
    );
    assert!(sched.contains("  G1: status="), "{sched}");
}

/// 10,000 parked goroutines in a few identical stacks collapse into a few groups.
#[test]
fn group_collapses_identical_stacks() {
    let target = Target::start("many", DEFAULT_GO, Variant::Default, &[]);
    let snap = target.capture(&[]);
    let out = run_rdlv(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--group".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("goroutines --group", &out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" goroutines ["))
        .collect();
    assert!(!headers.is_empty() && headers.len() <= 20, "{text}");
    let biggest: u64 = headers[0]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(biggest >= 1000, "biggest group {biggest}: {text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.contains("groups]"), "{last}");
}

/// The releases between the ones above, in the two variants that exercise
/// the two layout sources (DWARF and the built-in tables).
#[test]
fn goroutines_match_runtime_stack_go_1_22_1_23_1_25() {
    let mut report = Vec::new();
    let mut all_failures = Vec::new();
    for version in ["1.22.10", "1.23.9", "1.25.5"] {
        for variant in [Variant::Default, Variant::Stripped] {
            let (ok, n, failures) = oracle_run(version, variant);
            report.push(format!(
                "go{version} {:<8} {ok}/{n} identical",
                variant.dir_name()
            ));
            for f in failures {
                all_failures.push(format!("[go{version} {}] {f}", variant.dir_name()));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        all_failures.is_empty(),
        "{}\n\n{}",
        report.join("\n"),
        all_failures.join("\n\n")
    );
}

/// Splits `runtime.Stack` text into (goroutine id, block text) pairs.
fn raw_blocks(text: &str) -> Vec<(u64, String)> {
    text.split("\n\n")
        .filter_map(|b| {
            let b = b.trim_matches('\n');
            let id = b
                .strip_prefix("goroutine ")?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some((id, b.to_string()))
        })
        .collect()
}

/// Runs `parked` (Go `version`, default build) with `godebug`, captures it,
/// and compares every block of `rdlv goroutines --format go` with the
/// oracle's text byte for byte (machinery and running goroutines excluded).
/// Returns (blocks compared, blocks containing `marker`).
fn compare_raw_with_godebug(version: &str, godebug: &str, marker: &str) -> (usize, usize) {
    let binary = build_corpus("parked", version, Variant::Default);
    let target = Target::spawn_with_env(&binary, &[], &[("GODEBUG", godebug)]);
    let snap = target.capture(&[]);
    // The harness's stacks parser does not know these sections: read the
    // oracle's text directly.
    let done = target.oracle_dir().join("done");
    target.signal(libc::SIGUSR1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "oracle did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stacks =
        std::fs::read_to_string(target.oracle_dir().join("stacks.txt")).expect("stacks.txt");
    let out = run_rdlv(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--format".as_ref(),
        "go".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("goroutines --format go", &out)
    );
    let ours = raw_blocks(&String::from_utf8_lossy(&out.stdout));
    let mut marked = 0;
    let mut compared = 0;
    for (id, want_text) in raw_blocks(&stacks) {
        // Own part of the block, before any ancestor section.
        let own = want_text
            .split("[originating from")
            .next()
            .unwrap_or_default();
        let header = own.lines().next().unwrap_or_default();
        let machinery = own.contains("corpus/internal/oracle.serve")
            || own.contains("corpus/internal/oracle.AllStacks")
            || own.contains("os/signal.");
        if machinery || header.contains("[running") || header.contains("[runnable") {
            continue;
        }
        compared += 1;
        if want_text.contains(marker) {
            marked += 1;
        }
        let got = ours.iter().find(|(g, _)| *g == id).map(|(_, t)| t.as_str());
        assert_eq!(got, Some(want_text.as_str()), "goroutine {id} ({godebug})");
    }
    assert!(
        compared >= 20,
        "only {compared} goroutines compared:\n{stacks}"
    );
    (compared, marked)
}

/// With `GODEBUG=tracebackancestors=3` the runtime appends the creators'
/// stacks (`[originating from goroutine N]:`); rdlv prints the same from
/// `g.ancestors`.
#[test]
fn ancestors_match_runtime_stack() {
    let (_, with_ancestors) = compare_raw_with_godebug(
        DEFAULT_GO,
        "tracebackancestors=3",
        "[originating from goroutine",
    );
    assert!(
        with_ancestors >= 10,
        "only {with_ancestors} goroutines with ancestors"
    );
}

/// Go 1.26+ with `GODEBUG=tracebacklabels=1` prints pprof labels in the
/// header (1.26: `[chan receive labels:{"request": "r-42", "tenant": "acme"}]`,
/// 1.27: `[chan receive] {request: "r-42", tenant: acme}`);
/// rdlv reads the setting from `runtime.debug` and prints the same.
#[test]
fn traceback_labels_match_runtime_stack() {
    // 1.26 prints them inside the brackets, 1.27 after them.
    for (version, marker) in [(DEFAULT_GO, " labels:{"), ("1.27.3", "] {")] {
        let (_, labelled) = compare_raw_with_godebug(version, "tracebacklabels=1", marker);
        assert_eq!(labelled, 1, "go{version}: one labelled goroutine expected");
    }
}

/// A thread inside cgo C code: `threads --stacks` unwinds the C frames of the
/// executable with its `.eh_frame` (named from `.symtab`) down to
/// `runtime.asmcgocall`, then the goroutine's Go frames from where
/// `entersyscall` left it (`syscallsp/pc`); the goroutine shows its Go frames from
/// `syscallsp/pc` exactly like the runtime (`main._Cfunc_spin_outer`).
/// A thread asleep in libc unwinds through libc's own CFI, its frames named
/// from libc's `.dynsym` in the snapshot.
#[test]
fn cgo_native_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("go.mod"), "module cgospin\n\ngo 1.21\n").expect("go.mod");
    std::fs::write(
        dir.path().join("main.go"),
        r#"package main

/*
#include <unistd.h>
static volatile long counter;
static int __attribute__((noinline)) spin_inner(int n) { for (;;) { counter++; } return n; }
static int __attribute__((noinline)) spin_outer(int n) { return spin_inner(n) * 2; }
static int __attribute__((noinline)) sleep_inner(int n) { sleep(n); return n + 1; }
static int __attribute__((noinline)) sleep_outer(int n) { return sleep_inner(n) * 2; }
*/
import "C"

import (
	"fmt"
	"os"
	"time"
)

func spin()  { C.spin_outer(1) }
func doze()  { C.sleep_outer(3600) }

func main() {
	go spin()
	go doze()
	time.Sleep(300 * time.Millisecond)
	fmt.Println("READY", os.Getpid())
	select {}
}
"#,
    )
    .expect("main.go");
    let bin = dir.path().join("cgospin");
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(dir.path())
        .env("CGO_ENABLED", "1")
        .env("GOTOOLCHAIN", "local")
        .status()
        .expect("go build");
    assert!(status.success(), "go build of the cgo program failed");
    let target = Target::spawn(&bin, &[]);
    let snap = target.capture(&[]);
    let out = run_rdlv(&[
        "threads".as_ref(),
        snap.path().as_os_str(),
        "--stacks".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("threads --stacks", &out)
    );
    let threads: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let stack_of = |first: &str| -> Vec<String> {
        threads
            .as_array()
            .expect("array")
            .iter()
            .map(|t| {
                t["frames"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|f| f["func"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .find(|names: &Vec<String>| names.iter().any(|n| n.starts_with(first)))
            .unwrap_or_else(|| panic!("no thread with {first}: {threads}"))
    };
    // Busy in the executable's own C code: .eh_frame all the way.
    let spin = stack_of("spin_inner");
    assert!(spin[0].starts_with("spin_inner"), "{spin:?}");
    assert!(spin[1].starts_with("spin_outer"), "{spin:?}");
    assert!(spin[2].contains("_Cfunc_spin_outer"), "{spin:?}");
    assert_eq!(spin[3], "runtime.asmcgocall", "{spin:?}");
    // Then on the goroutine's stack, from where cgocall's entersyscall left it.
    assert_eq!(
        &spin[4..],
        [
            "runtime.cgocall",
            "main._Cfunc_spin_outer",
            "main.spin",
            "runtime.goexit"
        ],
        "{spin:?}"
    );
    // Asleep in libc: the library's own CFI (found through its in-memory
    // ELF headers), then the executable's C frames.
    let doze = stack_of("sleep_inner");
    let at = doze
        .iter()
        .position(|n| n.starts_with("sleep_inner"))
        .expect("sleep_inner");
    assert!(
        at >= 1 && doze[..at].iter().all(|n| n.starts_with("libc")),
        "{doze:?}"
    );
    // Named from libc's exported symbols in the snapshot (`lib!func+0xoff`):
    // sleep() waits in nanosleep / clock_nanosleep.
    assert!(
        doze[..at]
            .iter()
            .any(|n| n.contains("!sleep+") || n.contains("nanosleep+")),
        "{doze:?}"
    );
    assert!(doze[at + 1].starts_with("sleep_outer"), "{doze:?}");
    assert!(doze[at + 2].contains("_Cfunc_sleep_outer"), "{doze:?}");
    assert_eq!(doze[at + 3], "runtime.asmcgocall", "{doze:?}");
    assert_eq!(
        &doze[at + 4..],
        [
            "runtime.cgocall",
            "main._Cfunc_sleep_outer",
            "main.doze",
            "runtime.goexit"
        ],
        "{doze:?}"
    );

    let out = run_rdlv(&[
        "goroutines".as_ref(),
        snap.path().as_os_str(),
        "--format".as_ref(),
        "go".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[syscall]:\nmain._Cfunc_spin_outer(0x1)\n\t_cgo_gotypes.go:"),
        "{text}"
    );
    assert!(
        text.contains("[syscall]:\nmain._Cfunc_sleep_outer(0xe10)\n\t_cgo_gotypes.go:"),
        "{text}"
    );
}

/// `[start, end)` of a function in `binary`, from `go tool nm -size`.
fn function_range(version: &str, binary: &std::path::Path, name: &str) -> (u64, u64) {
    let go = rdlv_testkit::go_toolchain(version);
    let out = std::process::Command::new(&go)
        .args(["tool", "nm", "-size"])
        .arg(binary)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go tool nm");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Assembly functions carry their ABI in the symbol name.
            (f.len() == 4 && (f[3] == name || f[3].strip_suffix(".abi0") == Some(name))).then(
                || {
                    let start = u64::from_str_radix(f[0], 16).expect("address");
                    let size: u64 = f[1].parse().expect("size");
                    (start, start + size)
                },
            )
        })
        .unwrap_or_else(|| panic!("{name} not in go tool nm of {}", binary.display()))
}

/// Where the thread running `main.spin` is parked for the capture.
#[derive(Clone, Copy, Debug)]
enum InHandler {
    /// At the first instruction of `runtime.sigtramp`: the TLS g is still
    /// the goroutine, the registers are on the gsignal stack.
    Entry,
    /// Inside `runtime.sighandler`: `sigtrampgo` has switched the TLS g to
    /// `m.gsignal`.
    Sighandler,
}

/// On a failure while this test thread traces one thread of the target:
/// kills the target and reaps the traced thread, whose zombie would
/// otherwise keep the target from being reaped (a hang, not a failure).
struct TraceeGuard {
    pid: libc::pid_t,
    tid: libc::pid_t,
}

impl Drop for TraceeGuard {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            while libc::waitpid(self.tid, &mut status, libc::__WALL) == self.tid
                && !(libc::WIFEXITED(status) || libc::WIFSIGNALED(status))
            {}
        }
    }
}

/// Stops the thread of `target` running `main.spin` in its SIGURG handler at `at`, then puts the whole process in job-control
/// stop and detaches, so the capture sees that instant. Returns the tid.
fn park_spinner_in_signal_handler(target: &Target, version: &str, at: InHandler) -> u32 {
    let pid = target.pid() as libc::pid_t;
    let cpu = |tid: u32| -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        // Fields after the name: state is 3rd overall, utime the 14th.
        after
            .split_whitespace()
            .nth(11)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let sighandler = function_range(version, target.binary(), "runtime.sighandler");
    let spin = function_range(version, target.binary(), "main.spin");
    // A cgo binary installs `runtime.cgoSigtramp`, which jumps to sigtramp.
    let entries = [
        function_range(version, target.binary(), "runtime.sigtramp"),
        function_range(version, target.binary(), "runtime.cgoSigtramp"),
    ];
    let wait = |t: libc::pid_t| -> libc::c_int {
        let mut status = 0;
        let r = unsafe { libc::waitpid(t, &mut status, libc::__WALL) };
        assert_eq!(r, t, "waitpid: {}", std::io::Error::last_os_error());
        assert!(
            libc::WIFSTOPPED(status),
            "thread {t} not stopped: {status:#x}"
        );
        libc::WSTOPSIG(status)
    };
    let pc_of = |t: libc::pid_t| -> u64 {
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGS,
                t,
                0,
                &mut regs as *mut _ as *mut libc::c_void,
            )
        };
        assert_eq!(r, 0, "GETREGS: {}", std::io::Error::last_os_error());
        regs.rip
    };
    // The spinner moves between threads: take the thread busiest over the
    // last 50 ms, stop it, and keep it only if it stands in main.spin.
    let mut attempt = 0;
    let (tid, guard) = loop {
        attempt += 1;
        assert!(attempt <= 100, "no thread found running main.spin");
        let before: Vec<(u32, u64)> = target.tids().into_iter().map(|t| (t, cpu(t))).collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let Some(&(tid, _)) = before
            .iter()
            .max_by_key(|(t, c)| cpu(*t).saturating_sub(*c))
        else {
            continue;
        };
        let t = tid as libc::pid_t;
        if unsafe { libc::ptrace(libc::PTRACE_SEIZE, t, 0, 0) } != 0 {
            continue;
        }
        let guard = TraceeGuard { pid, tid: t };
        unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, t, 0, 0) };
        // The interrupt's stop, after any signal stop that came first.
        loop {
            let sig = wait(t);
            if sig == libc::SIGTRAP {
                break;
            }
            unsafe { libc::ptrace(libc::PTRACE_CONT, t, 0, sig) };
        }
        if (spin.0..spin.1).contains(&pc_of(t)) {
            break (tid, guard);
        }
        unsafe { libc::ptrace(libc::PTRACE_DETACH, t, 0, 0) };
        std::mem::forget(guard);
    };
    let t = tid as libc::pid_t;
    let wait = || wait(t);
    let pc = || pc_of(t);
    // A pending SIGURG is delivered as the thread resumes, before it runs
    // another instruction of main.spin: its signal-delivery-stop.
    unsafe {
        libc::syscall(libc::SYS_tgkill, pid, t, libc::SIGURG);
        libc::ptrace(libc::PTRACE_CONT, t, 0, 0);
    }
    loop {
        let sig = wait();
        if sig == libc::SIGURG {
            break;
        }
        unsafe { libc::ptrace(libc::PTRACE_CONT, t, 0, sig) };
    }
    // Deliver it one step at a time: the kernel builds the signal frame and
    // stops at the handler's first instruction.
    unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, t, 0, libc::SIGURG) };
    assert_eq!(wait(), libc::SIGTRAP);
    let entry = pc();
    assert!(
        entries.iter().any(|r| (r.0..r.1).contains(&entry)),
        "handler entry {entry:#x} is not in runtime.sigtramp or cgoSigtramp {entries:x?}"
    );
    if let InHandler::Sighandler = at {
        let mut steps = 0;
        while !(sighandler.0..sighandler.1).contains(&pc()) {
            steps += 1;
            assert!(steps < 100_000, "runtime.sighandler not reached");
            unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, t, 0, 0) };
            assert_eq!(wait(), libc::SIGTRAP);
        }
    }
    // Job-control stop for every thread, then let go: the parked thread
    // joins the group stop before it runs another instruction.
    target.signal(libc::SIGSTOP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !target
        .thread_statuses()
        .iter()
        .all(|s| s.tid == tid || s.state == 'T')
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the process did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    unsafe { libc::ptrace(libc::PTRACE_DETACH, t, 0, 0) };
    std::mem::forget(guard);
    while !target
        .thread_statuses()
        .iter()
        .all(|s| s.state == 'T' && s.tracer_pid == 0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "thread {tid} did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tid
}

/// A goroutine whose thread is inside a signal handler (sysmon preempts a
/// spinning goroutine with SIGURG every 10 ms) is `_Grunning` with a stale
/// `g.sched`: its stack is where the kernel's signal frame on the gsignal
/// stack says. Both instants of the handler: before and after `sigtrampgo`
/// switches the TLS g to `m.gsignal`. The thread's own stack crosses the
/// signal frame onto the goroutine.
#[test]
fn running_goroutine_in_a_signal_handler_shows_where_it_was_interrupted() {
    let mut failures = Vec::new();
    for version in [DEFAULT_GO, "1.22.10"] {
        for at in [InHandler::Entry, InHandler::Sighandler] {
            let target = Target::start("parked", version, Variant::Default, &[]);
            let tid = park_spinner_in_signal_handler(&target, version, at);
            let snap = target.capture(&[]);
            target.signal(libc::SIGCONT);
            let blocks = go_stacks(snap.path());
            let spin = blocks
                .iter()
                .find(|g| g.is_running() && g.frames.iter().any(|f| f.func == "main.spin"));
            if spin.is_none() {
                let running: Vec<_> = blocks
                    .iter()
                    .filter(|g| g.is_running())
                    .map(|g| (g.id, g.funcs()))
                    .collect();
                failures.push(format!(
                    "go{version} {at:?}: no running goroutine with main.spin; running: {running:?}"
                ));
            }
            let out = run_rdlv(&[
                "threads".as_ref(),
                snap.path().as_os_str(),
                "--stacks".as_ref(),
            ]);
            let threads = String::from_utf8_lossy(&out.stdout);
            // One block per thread: its header line, then indented frames.
            let header = format!("Thread {tid} ");
            let mine: String = threads
                .lines()
                .skip_while(|l| !l.contains(&header))
                .enumerate()
                .take_while(|(i, l)| *i == 0 || !l.contains(" Thread "))
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            let crosses = mine.contains("runtime.sigtramp") || mine.contains("runtime.cgoSigtramp");
            if !(crosses && mine.contains("main.spin")) {
                failures.push(format!(
                    "go{version} {at:?}: thread {tid} stack does not cross the signal frame:\n{threads}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
