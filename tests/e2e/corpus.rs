//! The corpus programs themselves: they build with every supported Go
//! release and variant, reach their state, and their oracle reports what the
//! issue-3/4 comparisons rely on.

use std::collections::BTreeSet;

use rdlv_e2e::{pattern_byte, Oracle, Target, Variant, DEFAULT_GO, GO_VERSIONS, PATTERN_SEED};

/// Go minor release number of a version string ("1.24.11" → 24).
fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The (function, wait reason) pairs `parked` must show, for a Go release.
fn expected_parked_states(version: &str) -> Vec<(&'static str, &'static str)> {
    let wait_group = if minor(version) >= 24 {
        "sync.WaitGroup.Wait"
    } else {
        "semacquire"
    };
    vec![
        ("main.chanSend", "chan send"),
        ("main.chanRecv", "chan receive"),
        ("main.selectTwo", "select"),
        ("main.selectNoCases", "select (no cases)"),
        ("main.nilChanSend", "chan send (nil chan)"),
        ("main.nilChanRecv", "chan receive (nil chan)"),
        ("main.mutexWait", "sync.Mutex.Lock"),
        ("main.rwRLockWait", "sync.RWMutex.RLock"),
        ("main.rwLockWait", "sync.RWMutex.Lock"),
        ("main.condWait", "sync.Cond.Wait"),
        ("main.waitGroupWait", wait_group),
        ("main.sleepLong", "sleep"),
        ("main.acceptWait", "IO wait"),
        ("main.pipeReadWait", "IO wait"),
        ("main.blockingSyscall", "syscall"),
        ("main.lockedThreadWait", "chan receive"),
        ("main.labelledWait.func1", "chan receive"),
        ("main.recurse", "chan receive"),
        ("main.genericWait[...]", "chan receive"),
        ("main.(*worker).run", "chan receive"),
        ("main.inlineRoot", "chan receive"),
        ("main.parent", "chan receive"),
        ("main.child", "chan receive"),
        ("main.grandchild", "chan receive"),
    ]
}

fn check_parked_oracle(version: &str, variant: Variant, oracle: &Oracle) {
    let ctx = format!("Go {version} {variant:?}");
    for (func, reason) in expected_parked_states(version) {
        let g = oracle
            .goroutine_in(func)
            .unwrap_or_else(|| panic!("{ctx}: no goroutine in {func}:\n{}", oracle.stacks_text));
        assert_eq!(g.wait_reason, reason, "{ctx}: {func}:\n{}", g.text);
    }
    let locked = oracle
        .goroutine_in("main.lockedThreadWait")
        .expect("locked goroutine");
    assert!(locked.locked_to_thread, "{ctx}: {}", locked.text);

    let deep = oracle.goroutine_in("main.recurse").expect("recursion");
    let (at, n) = deep
        .elided
        .unwrap_or_else(|| panic!("{ctx}: no elision:\n{}", deep.text));
    assert_eq!(at, 50, "{ctx}: elision after the first 50 frames");
    assert!(
        n > 0 && deep.frames.len() == 100,
        "{ctx}: 50 + 50 frames kept, {n} elided"
    );

    // The creation chain main → parent → child → grandchild.
    let goid_of = |func: &str| oracle.goroutine_in(func).expect(func).id;
    let created_in = |func: &str| {
        let c = oracle.goroutine_in(func).and_then(|g| g.created_by.clone());
        c.unwrap_or_else(|| panic!("{ctx}: {func} has no created-by"))
    };
    assert_eq!(created_in("main.child").func, "main.parent");
    assert_eq!(created_in("main.child").goid, Some(goid_of("main.parent")));
    assert_eq!(created_in("main.grandchild").func, "main.child");
    assert_eq!(
        created_in("main.grandchild").goid,
        Some(goid_of("main.child"))
    );
    assert_eq!(created_in("main.parent").goid, Some(1));

    let spin = oracle.goroutine_in("main.spin").or_else(|| {
        // A goroutine running on another thread prints no frames: find it by creator line.
        oracle.goroutines.iter().find(|g| g.stack_unavailable)
    });
    let spin = spin.unwrap_or_else(|| panic!("{ctx}: no busy goroutine:\n{}", oracle.stacks_text));
    assert!(
        spin.is_running(),
        "{ctx}: busy goroutine not running: {}",
        spin.text
    );

    let inl = oracle
        .goroutine_in("main.inlineRoot")
        .expect("inline chain");
    let funcs = inl.funcs();
    let root = funcs
        .iter()
        .position(|f| *f == "main.inlineRoot")
        .expect("root frame");
    if variant == Variant::NoOpt {
        assert!(
            inl.frames.iter().all(|f| !f.inlined),
            "{ctx}: -l must not inline:\n{}",
            inl.text
        );
    } else {
        assert_eq!(
            &funcs[root - 3..=root],
            &[
                "main.inlineC",
                "main.inlineB",
                "main.inlineA",
                "main.inlineRoot"
            ],
            "{ctx}:\n{}",
            inl.text
        );
        assert!(
            inl.frames[root - 3..root].iter().all(|f| f.inlined),
            "{ctx}:\n{}",
            inl.text
        );
    }

    let machinery = oracle
        .goroutines
        .iter()
        .filter(|g| g.is_oracle_machinery())
        .count();
    assert!(
        machinery >= 2,
        "{ctx}: oracle and os/signal goroutines not recognised:\n{}",
        oracle.stacks_text
    );
    let main = oracle.goroutine(1).expect("main goroutine");
    assert_eq!(
        main.wait_reason, "select (no cases)",
        "{ctx}: {}",
        main.text
    );
    assert!(!main.is_oracle_machinery());
}

#[test]
fn parked_shows_every_blocking_state() {
    let target = Target::start("parked", DEFAULT_GO, Variant::Default, &[]);
    let oracle = target.oracle();
    check_parked_oracle(DEFAULT_GO, Variant::Default, &oracle);
    assert_eq!(
        target.stdout_lines(),
        vec![format!("READY {}", target.pid())],
        "parked prints only READY"
    );
    // A second request answers again with the same parked goroutines.
    let again = target.oracle();
    let parked = |o: &Oracle| -> BTreeSet<String> {
        o.compared_goroutines()
            .filter(|g| !g.is_running())
            .map(|g| g.text.clone())
            .collect()
    };
    assert_eq!(
        parked(&oracle),
        parked(&again),
        "parked goroutines changed between two oracle requests"
    );
}

#[test]
fn parked_and_values_work_with_every_go_release() {
    for version in GO_VERSIONS {
        let target = Target::start("parked", version, Variant::Default, &[]);
        check_parked_oracle(version, Variant::Default, &target.oracle());
        drop(target);
        let values = Target::start("values", version, Variant::Default, &[]);
        let oracle = values.oracle();
        assert!(
            oracle.values.len() >= 70,
            "Go {version}: {} values",
            oracle.values.len()
        );
        let locals = oracle.locals.as_ref().expect("values writes locals.json");
        assert_eq!(locals.func, "main.parkLocals");
        let parked = oracle
            .goroutine(locals.goroutine)
            .expect("locals goroutine in stacks");
        assert_eq!(
            parked.funcs().first().copied(),
            Some("main.parkLocals"),
            "Go {version}: {}",
            parked.text
        );
    }
}

#[test]
fn parked_works_in_every_build_variant() {
    for variant in Variant::ALL {
        let target = Target::start("parked", DEFAULT_GO, variant, &[]);
        check_parked_oracle(DEFAULT_GO, variant, &target.oracle());
    }
}

#[test]
fn values_oracle_follows_the_canonical_table() {
    let target = Target::start("values", DEFAULT_GO, Variant::Default, &[]);
    let oracle = target.oracle();
    let json = |expr: &str| {
        oracle
            .value(expr)
            .unwrap_or_else(|| panic!("no value for {expr}"))
            .to_string()
    };
    assert_eq!(json("main.maxUint64"), r#""18446744073709551615""#);
    assert_eq!(json("main.exact53"), "9007199254740992");
    assert_eq!(json("main.nan"), r#""NaN""#);
    assert_eq!(json("main.f32"), "0.1");
    assert_eq!(json("main.c64"), "[1.5,-2.25]");
    assert_eq!(json("main.invalidUTF8"), "\"ok\u{fffd}bad\u{fffd}!\"");
    assert_eq!(json("main.nilSlice"), "null");
    assert_eq!(json("main.empty"), "[]");
    assert_eq!(json("main.byteArray"), "[222,173,190,239]");
    assert_eq!(json("main.oneEntry"), r#"[["only",1]]"#);
    assert!(json("main.selfLoop").contains(r#"{"$cycle":"0x"#));
    assert_eq!(
        json("main.bufferedChan"),
        r#"{"$chan":"int","cap":8,"len":3}"#
    );
    assert_eq!(
        json("main.ifaceGeneric"),
        r#"{"$type":"main.Pair[string,[]int]","$value":{"Key":"xs","Val":[1,2]}}"#
    );
    assert_eq!(json("main.squareFn"), r#"{"$func":"main.square"}"#);
    assert_eq!(json("main.bigText").len(), (1 << 20) + 2);
    let big_map = oracle
        .value("main.bigMap")
        .and_then(|v| v.as_array())
        .expect("bigMap");
    assert_eq!(big_map.len(), 10_000);
    let keys: Vec<String> = big_map.iter().map(|p| p[0].to_string()).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "map pairs sorted by key text"
    );
    // serde_json maps sort their keys, so field order is checked on the text.
    let cfg_line = oracle
        .values_text
        .lines()
        .find(|l| l.starts_with(r#"{"expr":"main.cfg","#))
        .expect("main.cfg line in values.json");
    let positions: Vec<usize> = [
        "Base", "Name", "Port", "Enabled", "Tags", "Inner", "InnerPtr", "Limits", "Ratio",
        "Matrix", "Parent",
    ]
    .iter()
    .map(|f| {
        cfg_line
            .find(&format!(r#""{f}":"#))
            .unwrap_or_else(|| panic!("field {f} missing"))
    })
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "fields in declaration order: {cfg_line:.300}"
    );
    assert!(!cfg_line.contains(r#""_":"#), "blank field left out");
    let locals = oracle.locals.as_ref().expect("locals.json");
    assert_eq!(locals.args["id"], 17);
    assert_eq!(locals.args["name"], "locals-test");
    assert_eq!(locals.locals["pt"].to_string(), r#"{"X":17,"Y":-17}"#);
}

#[test]
fn heap_prints_its_pattern() {
    let target = Target::start("heap", DEFAULT_GO, Variant::Default, &["-mb", "4"]);
    let pattern = target.pattern().expect("PATTERN line");
    assert_eq!(pattern.len, 64 << 10);
    let expected: Vec<u8> = (0..16).map(|i| pattern_byte(i, PATTERN_SEED)).collect();
    assert_eq!(
        pattern.head, expected,
        "pattern formula agrees with the program"
    );
    assert!(pattern.addr != 0);
}

#[test]
fn many_parks_the_requested_goroutines() {
    let target = Target::start("many", DEFAULT_GO, Variant::Default, &["-n", "3000"]);
    let oracle = target.oracle();
    let count = |func: &str| {
        oracle
            .goroutines
            .iter()
            .filter(|g| g.funcs().contains(&func))
            .count()
    };
    assert_eq!(count("main.waitReceive"), 1000);
    assert_eq!(count("main.waitSelect"), 1000);
    assert_eq!(count("main.waitMutex"), 1000);
}

#[test]
fn threads_reports_short_lived_threads() {
    let target = Target::start("threads", DEFAULT_GO, Variant::Default, &[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let threads: Vec<(u32, u64, u64)> = target
        .stdout_lines()
        .iter()
        .filter_map(|l| {
            let mut w = l.strip_prefix("THREAD ")?.split_whitespace();
            Some((
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
            ))
        })
        .collect();
    assert!(
        threads.len() >= 20,
        "only {} threads in 300 ms",
        threads.len()
    );
    assert!(threads
        .iter()
        .all(|(tid, start, end)| *tid != target.pid() && start <= end));
    let distinct: BTreeSet<u32> = threads.iter().map(|t| t.0).collect();
    assert_eq!(distinct.len(), threads.len(), "each line is a new thread");
}

#[test]
fn httpserver_answers() {
    let target = Target::start("httpserver", DEFAULT_GO, Variant::Default, &[]);
    let addr = target.addr().expect("ADDR line");
    for n in [0usize, 1, 1000, 100_000] {
        crate::http::check_work(&addr, n).unwrap_or_else(|e| panic!("n={n}: {e}"));
    }
}

#[test]
fn parked_labels_show_with_tracebacklabels_on_go_1_26() {
    let binary = rdlv_e2e::build_corpus("parked", DEFAULT_GO, Variant::Default);
    let target = Target::spawn_with_env(&binary, &[], &[("GODEBUG", "tracebacklabels=1")]);
    let oracle = target.oracle();
    let labelled = oracle
        .goroutine_in("main.labelledWait.func1")
        .expect("labelled goroutine");
    let want =
        [("request", "r-42"), ("tenant", "acme")].map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(labelled.labels, want, "{}", labelled.text);
    assert_eq!(labelled.wait_reason, "chan receive");
    let unlabelled = oracle.goroutine_in("main.chanRecv").expect("chanRecv");
    assert!(unlabelled.labels.is_empty(), "{}", unlabelled.text);
}

#[test]
fn corpus_go_unit_tests_and_vet_pass() {
    let go = rdlv_e2e::go_toolchain(DEFAULT_GO);
    let corpus = rdlv_e2e::workspace_root().join("corpus");
    for args in [&["vet", "./..."][..], &["test", "-count=1", "./..."][..]] {
        let out = std::process::Command::new(&go)
            .args(args)
            .current_dir(&corpus)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .output()
            .expect("run go");
        assert!(
            out.status.success(),
            "{}",
            rdlv_e2e::describe_output(&format!("go {}", args.join(" ")), &out)
        );
    }
}
