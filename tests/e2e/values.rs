//! Typed values (issue 4): every global the `values` corpus program
//! registers, and the arguments and locals of its parked `main.parkLocals`,
//! read from a snapshot and compared with the program's own reflection
//! (canonical JSON, CONTRACT.md) — per Go release and build variant.
//!
//! Values are evaluated through the library (`rdlv_analyze::value`), the same
//! code `rdlv print --format json` runs; `print_through_the_cli` checks the
//! command itself.

use std::time::Instant;

use rdlv_analyze::dwarf::DwarfInfo;
use rdlv_analyze::value::expr::{EvalError, Evaluator, ScopeVar, VarSource};
use rdlv_analyze::value::{frame, json, LoadConfig, Loader, Program, Value};
use rdlv_e2e::{describe_output, json_diff, run_rdlv, Oracle, Target, Variant};
use serde_json::Value as Json;

/// Contract: a `$chan` object may carry more keys than `$chan`, `len` and
/// `cap` (rdlv adds the buffer and the waiting goroutines). Drop from `actual`
/// exactly the keys the contract allows to differ, nothing else.
fn drop_extra_chan_keys(expected: &Json, actual: &mut Json) {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => {
            if e.contains_key("$chan") {
                a.retain(|k, _| e.contains_key(k));
            }
            for (k, ev) in e {
                if let Some(av) = a.get_mut(k) {
                    drop_extra_chan_keys(ev, av);
                }
            }
        }
        (Json::Array(e), Json::Array(a)) => {
            for (ev, av) in e.iter().zip(a.iter_mut()) {
                drop_extra_chan_keys(ev, av);
            }
        }
        _ => {}
    }
}

/// Compares our canonical text with the oracle's value.
fn compare(what: &str, expected: &Json, ours: &str) -> Result<(), String> {
    let mut actual: Json = serde_json::from_str(ours).map_err(|e| format!("{what}: our JSON does not parse: {e}: {}", &ours[..ours.len().min(300)]))?;
    drop_extra_chan_keys(expected, &mut actual);
    json_diff(expected, &actual).map_err(|d| format!("{what}: {d}"))
}

struct Session<'a> {
    target: &'a rdlv_analyze::Target,
    info: std::sync::Arc<DwarfInfo>,
}

impl<'a> Session<'a> {
    fn open(target: &'a rdlv_analyze::Target) -> Self {
        let info = DwarfInfo::for_binary(target.binary()).expect("DWARF of the values program");
        Session { target, info }
    }

    fn with_program<T>(&self, f: impl FnOnce(&Program<'_>) -> T) -> T {
        let namer = |pc: u64| {
            let tab = self.target.pclntab().ok()?;
            let func = tab.find_func(pc)?;
            (func.entry() == pc).then(|| func.name().to_string())
        };
        let mut prog = Program::new(&self.info, self.target.memory(), self.target.bias());
        prog.func_name = Some(&namer);
        f(&prog)
    }
}

/// Loading recurses with the value's nesting: use a big stack like the CLI.
fn big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(512 << 20)
            .spawn_scoped(s, f)
            .expect("spawn")
            .join()
            .expect("evaluation thread panicked")
    })
}

fn load_var(prog: &Program<'_>, v: &ScopeVar) -> Value {
    let mut l = Loader::new(prog, LoadConfig::canonical());
    match &v.src {
        VarSource::Memory(a) => l.load(v.ty, *a),
        VarSource::Bytes(b) => l.load_bytes(v.ty, b.clone()),
        VarSource::Unavailable(why) => Value::unreadable(String::new(), None, why.clone()),
    }
}

/// Match counts of one configuration.
struct Report {
    config: String,
    values: (usize, usize),
    locals: (usize, usize),
    failures: Vec<String>,
}

fn check_config(go: &str, variant: Variant) -> Report {
    let config = format!("go{go}/{}", variant.dir_name());
    let program = Target::start("values", go, variant, &[]);
    let snap = program.capture(&[]);
    let oracle: Oracle = program.oracle();
    let target = rdlv_analyze::Target::open(snap.path(), None).expect("open snapshot");
    let session = Session::open(&target);
    let mut failures = Vec::new();
    let (mut vok, mut lok, mut ltotal) = (0, 0, 0);
    big_stack(|| {
        session.with_program(|prog| {
            let ev = Evaluator::new(prog, Vec::new());
            for item in &oracle.values {
                match ev.eval_str(&item.expr, LoadConfig::canonical()) {
                    Ok(v) => match compare(&item.expr, &item.value, &json::to_json(&v)) {
                        Ok(()) => vok += 1,
                        Err(e) => failures.push(e),
                    },
                    Err(e) => failures.push(format!("{}: {e}", item.expr)),
                }
            }
            let Some(locals) = &oracle.locals else {
                failures.push("the oracle wrote no locals.json".into());
                return;
            };
            let frames = rdlv_analyze::runtime::goroutine_frames(&target, locals.goroutine).expect("frames of the parked goroutine");
            let Some(idx) = frames.iter().position(|f| f.function == locals.func) else {
                failures.push(format!("goroutine {} has no frame {}", locals.goroutine, locals.func));
                return;
            };
            let (_, scope) = frame::goroutine_scope(&target, prog, locals.goroutine, idx).expect("frame scope");
            for (kind, vars, want_arg) in [("arg", &locals.args, true), ("local", &locals.locals, false)] {
                for (name, expected) in vars {
                    ltotal += 1;
                    let Some(var) = scope.iter().rev().find(|v| &v.name == name && v.is_arg == want_arg) else {
                        failures.push(format!("{kind} {name}: not in DWARF at the frame's PC"));
                        continue;
                    };
                    match compare(&format!("{kind} {name}"), expected, &json::to_json(&load_var(prog, var))) {
                        Ok(()) => lok += 1,
                        Err(e) => failures.push(e),
                    }
                }
            }
        })
    });
    let report = Report {
        config,
        values: (vok, oracle.values.len()),
        locals: (lok, ltotal),
        failures,
    };
    eprintln!(
        "{}: values {}/{}, locals+args {}/{}",
        report.config, report.values.0, report.values.1, report.locals.0, report.locals.1
    );
    report
}

fn assert_all_match(r: Report) {
    assert!(
        r.failures.is_empty(),
        "{}: values {}/{}, locals+args {}/{}:\n{}",
        r.config,
        r.values.0,
        r.values.1,
        r.locals.0,
        r.locals.1,
        r.failures.join("\n")
    );
    assert!(r.values.1 >= 70, "{}: the oracle registered only {} values", r.config, r.values.1);
}

#[test]
fn values_go126_default() {
    assert_all_match(check_config("1.26", Variant::Default));
}

#[test]
fn values_go126_pie() {
    assert_all_match(check_config("1.26", Variant::Pie));
}

#[test]
fn values_go126_noopt() {
    assert_all_match(check_config("1.26", Variant::NoOpt));
}

#[test]
fn values_go121_default() {
    assert_all_match(check_config("1.21.13", Variant::Default));
}

#[test]
fn values_go121_pie() {
    assert_all_match(check_config("1.21.13", Variant::Pie));
}

#[test]
fn values_go121_noopt() {
    assert_all_match(check_config("1.21.13", Variant::NoOpt));
}

#[test]
fn values_go124_default() {
    assert_all_match(check_config("1.24.11", Variant::Default));
}

#[test]
fn values_go124_pie() {
    assert_all_match(check_config("1.24.11", Variant::Pie));
}

#[test]
fn values_go124_noopt() {
    assert_all_match(check_config("1.24.11", Variant::NoOpt));
}

#[test]
fn values_go127_default() {
    assert_all_match(check_config("1.27.3", Variant::Default));
}

#[test]
fn values_go127_pie() {
    assert_all_match(check_config("1.27.3", Variant::Pie));
}

#[test]
fn values_go127_noopt() {
    assert_all_match(check_config("1.27.3", Variant::NoOpt));
}

/// Expressions beyond plain globals, checked against parts of the oracle's values.
#[test]
fn expressions_go126() {
    let program = Target::start("values", "1.26", Variant::Default, &[]);
    let snap = program.capture(&[]);
    let oracle = program.oracle();
    let target = rdlv_analyze::Target::open(snap.path(), None).expect("open snapshot");
    let session = Session::open(&target);
    let val = |e: &str| oracle.value(e).unwrap_or_else(|| panic!("oracle has no {e}")).clone();
    let cfg = val("main.cfg");
    let raw = val("main.rawPtr");
    let raw = raw.as_str().expect("rawPtr is a string");
    let cases: Vec<(String, Json)> = vec![
        ("main.cfg.Name".into(), cfg["Name"].clone()),
        ("main.cfg.Tags[1]".into(), cfg["Tags"][1].clone()),
        ("main.cfg.ID".into(), cfg["Base"]["ID"].clone()),
        ("main.cfg.Base.Created".into(), cfg["Base"]["Created"].clone()),
        ("main.cfg.Matrix[1][0]".into(), cfg["Matrix"][1][0].clone()),
        ("main.cfg.InnerPtr.Label".into(), cfg["InnerPtr"]["Label"].clone()),
        ("(*main.cfg.Parent).Weight".into(), cfg["Parent"]["Weight"].clone()),
        ("**main.cfg.Parent".into(), cfg["Parent"].clone()),
        ("*main.cfgPtr".into(), cfg.clone()),
        ("main.cfgPtr.Port".into(), cfg["Port"].clone()),
        (r#"main.cfg.Limits["rps"]"#.into(), Json::from(500)),
        ("len(main.cfg.Tags)".into(), Json::from(3)),
        ("cap(main.bufferedChan)".into(), Json::from(8)),
        ("len(main.bufferedChan)".into(), Json::from(3)),
        ("len(main.bigMap)".into(), Json::from(10000)),
        ("len(main.bigText)".into(), Json::from(1 << 20)),
        ("main.bigMap[9999]".into(), Json::from(9999u64 * 9999)),
        ("main.byteArray[3]".into(), Json::from(0xef)),
        ("main.unicodeText[1]".into(), Json::from(0xc3)),
        ("main.structKeyMap[main.Point{X: -1, Y: 5}]".into(), Json::from("b")),
        ("main.structKeyMap[main.Point{0, 0}]".into(), Json::from("origin")),
        (r#"main.nestedMap["odd"][1]"#.into(), Json::from(3)),
        ("main.points[1].X".into(), Json::from(-3)),
        (format!("*(*main.Config)({raw})"), cfg.clone()),
        (format!("(*main.Config)({raw}).Port"), cfg["Port"].clone()),
        ("main.Config(main.zeroCfg)".into(), val("main.zeroCfg")),
        ("int64(main.cfg.Port)".into(), cfg["Port"].clone()),
        ("main.genericPair.Key".into(), val("main.genericPair")["Key"].clone()),
        ("main.list.Next.Next.ID".into(), Json::from(3)),
    ];
    let mut failures = Vec::new();
    big_stack(|| {
        session.with_program(|prog| {
            let ev = Evaluator::new(prog, Vec::new());
            for (expr, want) in &cases {
                match ev.eval_str(expr, LoadConfig::canonical()) {
                    Ok(v) => {
                        if let Err(e) = compare(expr, want, &json::to_json(&v)) {
                            failures.push(e);
                        }
                    }
                    Err(e) => failures.push(format!("{expr}: {e}")),
                }
            }
            // `&x` is a pointer to x; unknown names suggest near ones.
            match ev.eval_str("&main.counter", LoadConfig::canonical()) {
                Ok(v) => {
                    if let Err(e) = compare("&main.counter", &val("main.counter"), &json::to_json(&v)) {
                        failures.push(e);
                    }
                }
                Err(e) => failures.push(format!("&main.counter: {e}")),
            }
            match ev.eval_str("main.cfgg", LoadConfig::canonical()) {
                Err(EvalError::NotFound { suggestions, .. }) if suggestions.contains(&"main.cfg".to_string()) => {}
                other => failures.push(format!("main.cfgg: expected not found with suggestion main.cfg, got {other:?}")),
            }
            match ev.eval_str("main.cfg.Nope", LoadConfig::canonical()) {
                Err(EvalError::Type(_)) => {}
                other => failures.push(format!("main.cfg.Nope: expected a type error, got {other:?}")),
            }
        })
    });
    assert!(failures.is_empty(), "{} of {} expressions failed:\n{}", failures.len(), cases.len() + 3, failures.join("\n"));
}

/// The 10,000-entry map, completely, as canonical JSON: timed.
#[test]
fn big_map_json_is_fast() {
    let program = Target::start("values", "1.26", Variant::Default, &[]);
    let snap = program.capture(&[]);
    let oracle = program.oracle();
    let target = rdlv_analyze::Target::open(snap.path(), None).expect("open snapshot");
    let session = Session::open(&target);
    let want = oracle.value("main.bigMap").expect("oracle bigMap").clone();
    let (text, elapsed) = session.with_program(|prog| {
        let ev = Evaluator::new(prog, Vec::new());
        // Warm the page cache of the snapshot once, as a REPL session would.
        let _ = ev.eval_str("len(main.bigMap)", LoadConfig::canonical());
        let t0 = Instant::now();
        let v = ev.eval_str("main.bigMap", LoadConfig::canonical()).expect("eval bigMap");
        let text = json::to_json(&v);
        (text, t0.elapsed())
    });
    compare("main.bigMap", &want, &text).expect("bigMap matches the oracle");
    eprintln!("main.bigMap (10,000 entries) to JSON in {elapsed:?}");
    // The 50 ms target is for optimized builds; debug builds are ~10x slower.
    let limit_ms = if cfg!(debug_assertions) { 500 } else { 50 };
    assert!(elapsed.as_millis() < limit_ms, "bigMap took {elapsed:?} (limit {limit_ms} ms)");
}

/// `rdlv print` itself: JSON equals the oracle, text is Delve's format, and an
/// unknown name exits 1 with a suggestion.
#[test]
fn print_through_the_cli() {
    let program = Target::start("values", "1.26", Variant::Default, &[]);
    let snap = program.capture(&[]);
    let oracle = program.oracle();
    let snap_path = snap.path().as_os_str();
    let out = run_rdlv(&["print".as_ref(), snap_path, "--format".as_ref(), "json".as_ref(), "main.cfg".as_ref()]);
    assert!(out.status.success(), "{}", describe_output("rdlv print --format json main.cfg", &out));
    compare("main.cfg", oracle.value("main.cfg").expect("oracle cfg"), &String::from_utf8_lossy(&out.stdout))
        .expect("rdlv print --format json main.cfg");
    let out = run_rdlv(&["print".as_ref(), snap_path, "main.cfg.Port".as_ref()]);
    assert!(out.status.success(), "{}", describe_output("rdlv print main.cfg.Port", &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "8080\n");
    let out = run_rdlv(&["print".as_ref(), snap_path, "main.cfg.Tags".as_ref()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[]string len: 3, cap: 3, [\"prod\",\"eu-west\",\"\"]\n",
        "{}",
        describe_output("rdlv print main.cfg.Tags", &out)
    );
    let out = run_rdlv(&["print".as_ref(), snap_path, "main.cfgg".as_ref()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe_output("rdlv print main.cfgg", &out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("main.cfg"), "{}", describe_output("rdlv print main.cfgg", &out));
}
