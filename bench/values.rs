//! bench-values: the globals and frame variables of a real Go server,
//! printed by rdlv and by `dlv core` from the same frozen instant, compared
//! text for text.
//!
//! The corpus programs are built to exercise every value form; a real
//! server has the types nobody thought of. This starts Caddy or the NATS
//! server with JetStream (`--server caddy|nats`, see `rdlv_e2e::realserver`; `--exe BIN
//! --args ".."` for another HTTP server) with a client thread loading it the
//! whole time, puts it in job-control stop, captures it once with
//! `rdlv-snap` and once with `gcore` (both read the same stopped memory),
//! and lets it run on. Two samples are printed by one `dlv core` session and
//! one rdlv REPL session from the same script, every command preceded by a
//! marker `print "@@@@ KEY"` so the two outputs split into answers per key:
//! - package variables rdlv lists (`rdlv vars SNAP .`), sampled evenly
//!   (`--sample N`, or `--all`), each by `print NAME`;
//! - the frames of goroutines sampled evenly from `rdlv goroutines`
//!   (`--goroutines N`, at most `delvecmp::MAX_FRAMES` frames each; not those on a
//!   thread or in a system call, whose frames Delve counts from the thread's
//!   registers), each by
//!   `goroutine G frame F locals` and `... args`.
//!
//! Each answer is one of: equal text; both refused (Delve names the failed
//! command of its script, rdlv writes its error to stderr and answers
//! nothing); different. Prints the counts, each difference on
//! what Delve answered from memory by the reason rdlv differs on purpose
//! (`delvecmp::delve_quirk`; "unexplained" is what the real-server test
//! fails on), the first differences, and writes every difference to
//! `--report FILE`; `--keep DIR` works in DIR and leaves the snapshot, the
//! core and the script there. Nothing here asserts.
//!
//! Usage: bench-values [--server caddy|nats] [--sample N (400) | --all]
//! [--goroutines N (40)] [--report FILE] [--keep DIR] [--exe BIN --args ARGS]
//! [--rdlv PATH] [--rdlv-snap PATH] [--dlv PATH]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

// Shared with the other benchmarks; this one needs only `root`.
#[allow(dead_code)]
mod common;
use common::root;
use rdlv_e2e::delvecmp::{self, compare, delve_answered, delve_quirk, normalize, refused};
use rdlv_e2e::realserver::{freeze_under_load, Kind};

struct Options {
    server: Kind,
    sample: Option<usize>,
    goroutines: usize,
    report: Option<PathBuf>,
    keep: Option<PathBuf>,
    exe: Option<PathBuf>,
    args: Vec<String>,
    rdlv: PathBuf,
    snap: PathBuf,
    dlv: PathBuf,
}

const USAGE: &str = "bench-values [--server caddy|nats] [--sample N (400) | --all] \
[--goroutines N (40)] [--report FILE] [--keep DIR] [--exe BIN --args \"ARGS\"] [--rdlv PATH] [--rdlv-snap PATH] [--dlv PATH]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options> {
    let r = root();
    let mut o = Options {
        server: Kind::Caddy,
        sample: Some(400),
        goroutines: 40,
        report: None,
        keep: None,
        exe: None,
        args: Vec::new(),
        rdlv: r.join("target/release/rdlv"),
        snap: r.join("target/release/rdlv-snap"),
        dlv: r.join(".toolchains/bin/dlv"),
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sample" => o.sample = Some(value()?.parse().context("--sample")?),
            "--all" => o.sample = None,
            "--server" => o.server = Kind::parse(&value()?)?,
            "--goroutines" => o.goroutines = value()?.parse().context("--goroutines")?,
            "--report" => o.report = Some(value()?.into()),
            "--keep" => o.keep = Some(value()?.into()),
            "--exe" => o.exe = Some(value()?.into()),
            "--args" => o.args = value()?.split_whitespace().map(String::from).collect(),
            "--rdlv" => o.rdlv = value()?.into(),
            "--rdlv-snap" => o.snap = value()?.into(),
            "--dlv" => o.dlv = value()?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = parse_args(std::env::args().skip(1))?;
    for (what, path) in [("rdlv", &o.rdlv), ("rdlv-snap", &o.snap), ("dlv", &o.dlv)] {
        if !path.exists() {
            bail!("{what} not found at {}", path.display());
        }
    }
    let dir = tempfile::tempdir()?;
    let work = match &o.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)?;
            keep.as_path()
        }
        None => dir.path(),
    };
    let frozen = freeze_under_load(o.server, o.exe.as_deref(), &o.args, work, &o.snap)
        .context("freeze the server under load")?;
    eprintln!(
        "{}: {} load units ({:?} clients) served; captured stopped",
        frozen.exe.display(),
        frozen.served,
        frozen.kind
    );
    let a = delvecmp::ask_both(&frozen, &o.rdlv, &o.dlv, work, o.sample, o.goroutines)
        .context("ask dlv core and rdlv")?;
    eprintln!(
        "{} package variables, comparing {}; {} frame listings",
        a.package_variables,
        a.globals.len(),
        a.frames.len()
    );
    let (theirs, ours) = (&a.theirs, &a.ours);
    let globals = compare(&a.globals, theirs, ours);
    let locals = compare(&a.frames, theirs, ours);
    println!(
        "one session each: dlv core {:.2} s, rdlv {:.2} s",
        a.dlv_time.as_secs_f64(),
        a.rdlv_time.as_secs_f64()
    );
    globals.print("package variables");
    locals.print("frames' locals and args");
    // Frame answers compared variable by variable too: one line a variable.
    let (mut vars, mut vars_equal) = (0, 0);
    for k in &a.frames {
        let (Some(t), Some(r)) = (theirs.get(k), ours.get(k)) else {
            continue;
        };
        if refused(t) || t.starts_with('(') {
            continue;
        }
        let mine: std::collections::BTreeSet<&str> = r.lines().collect();
        for line in t.lines() {
            vars += 1;
            vars_equal += usize::from(mine.contains(line));
        }
    }
    println!(
        "frame variables Delve prints: {vars}, rdlv prints {vars_equal} identically ({:.1}%)",
        100.0 * vars_equal as f64 / vars.max(1) as f64
    );
    // The same frames with what two readers may rightly word apart set
    // aside: why a variable is unreadable, and the fake address of a value
    // held in registers (Delve numbers them in the order a session meets
    // them).
    let same_aside = a
        .frames
        .iter()
        .filter(|k| {
            let (t, r) = (theirs.get(*k), ours.get(*k));
            t.is_some_and(|t| !refused(t)) && t.map(|t| normalize(t)) == r.map(|r| normalize(r))
        })
        .count();
    println!(
        "frames equal with unreadable reasons and register-value addresses set aside: {same_aside} of {} ({:.1}%)",
        locals.delve_printed,
        100.0 * same_aside as f64 / locals.delve_printed.max(1) as f64
    );
    // Every difference on what Delve answered from memory, by the reason
    // rdlv differs (the e2e real-server test fails on "unexplained").
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for k in a.globals.iter().chain(&a.frames) {
        let (t, r) = (
            theirs.get(k).map_or("", String::as_str),
            ours.get(k).map_or("", String::as_str),
        );
        if t == r || !delve_answered(t) {
            continue;
        }
        let why = if delvecmp::suffix_shadowed(k, &a.names) && a.globals.contains(k) {
            Some(delvecmp::QUIRK_SUFFIX_PACKAGE)
        } else {
            delve_quirk(t, r)
        };
        if why.is_none() {
            unexplained.push(k.as_str());
        }
        *reasons.entry(why.unwrap_or("unexplained")).or_default() += 1;
    }
    for (why, n) in &reasons {
        println!("{n:5}  {}", first_line(why));
    }
    if !unexplained.is_empty() {
        println!("unexplained: {}", unexplained.join(", "));
    }
    for (n, t, r) in globals.differ.iter().chain(&locals.differ).take(15) {
        println!(
            "--- {n}\n  dlv:  {}\n  rdlv: {}",
            first_line(t),
            first_line(r)
        );
    }
    if let Some(path) = &o.report {
        let mut text = String::new();
        for (n, t, r) in globals.differ.iter().chain(&locals.differ) {
            text.push_str(&format!("=== {n}\n--- dlv\n{t}\n--- rdlv\n{r}\n"));
        }
        std::fs::write(path, text)?;
        println!("every difference: {}", path.display());
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut cut: String = line.chars().take(160).collect();
    if s.lines().count() > 1 || cut.len() < line.len() {
        cut.push_str(" ...");
    }
    cut
}
