//! bench-oneshot: one command, one process: `rdlv bt SNAP N` and `rdlv print
//! SNAP GLOBAL` on a snapshot of a large real Go server, against `dlv core
//! EXE CORE` doing the same single command, and against an earlier rdlv
//! build (`--rdlv-before`) to show what a change bought.
//!
//! A one-shot command pays for opening the snapshot, the executable and the
//! parts of its debug information the command needs; this is what a user
//! pays for each `rdlv bt` typed in a shell, and what Delve pays per `dlv
//! core` session.
//!
//! By default the server is Caddy (`go install
//! github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9`, kept in
//! target/bench-bin), serving files with a few idle keep-alive connections
//! open, so its goroutines include `net/http.(*conn).serve`; `--server nats`
//! runs the NATS server with JetStream and subscribers held open, and `--exe
//! BIN --args "..."` another HTTP server. It is captured once with
//! `rdlv-snap` and once with `gcore` (for Delve). Each command runs once with
//! its output kept (checked: the stack has the goroutine's functions, the
//! printed value is Delve's) and then `--runs` times to /dev/null. Prints
//! medians of wall time, CPU time and peak RSS, the ratios, and the targets
//! of the architecture issue (>= 5x faster than before, >= 10x faster than
//! `dlv core`); nothing here asserts a timing.
//!
//! An earlier build may not read the snapshots of this one (format 1.2 cut
//! the executable into frames): `--rdlv-snap-before OLD/rdlv-snap` captures
//! the same server once more with the earlier capture tool, and the earlier
//! `rdlv` runs on that snapshot.
//!
//! Usage: bench-oneshot [--server caddy|nats] [--runs N (5)] [--exe BIN --args ARGS] [--goroutine N]
//! [--global EXPR] [--rdlv PATH] [--rdlv-before PATH [--rdlv-snap-before PATH]]
//! [--no-delve]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

mod common;
use common::{
    loadavg, median_cpu, median_wall, mib, pass, peak_rss, root, rss_bytes, run_measured, Usage,
};
use rdlv_e2e::realserver::{self as server, start_server, strip_ansi};

/// Architecture issue: one-shot commands at least this much faster than before.
const TARGET_BEFORE: f64 = 5.0;
/// Architecture issue: at least this much faster than `dlv core`.
const TARGET_DELVE: f64 = 10.0;
struct Options {
    server: server::Kind,
    runs: usize,
    exe: Option<PathBuf>,
    args: Vec<String>,
    goroutine: Option<u64>,
    global: String,
    rdlv: PathBuf,
    before: Option<PathBuf>,
    snap: PathBuf,
    snap_before: Option<PathBuf>,
    dlv: PathBuf,
    delve: bool,
}

const USAGE: &str = "bench-oneshot [--server caddy|nats] [--runs N (5)] [--exe BIN --args \"ARGS\"] [--goroutine N] \
[--global EXPR (os.Args)] [--rdlv PATH] [--rdlv-before PATH] [--rdlv-snap PATH] \
[--rdlv-snap-before PATH] [--dlv PATH] [--no-delve]\n\
Without --exe, builds Caddy with go install and serves files on a local port \
(ARGS may hold {port} and {dir}).";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options> {
    let r = root();
    let mut o = Options {
        runs: 5,
        server: server::Kind::Caddy,
        exe: None,
        args: Vec::new(),
        goroutine: None,
        global: "os.Args".into(),
        rdlv: r.join("target/release/rdlv"),
        before: None,
        snap: r.join("target/release/rdlv-snap"),
        snap_before: None,
        dlv: r.join(".toolchains/bin/dlv"),
        delve: true,
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => o.runs = value()?.parse().context("--runs")?,
            "--server" => o.server = server::Kind::parse(&value()?)?,
            "--exe" => o.exe = Some(value()?.into()),
            "--args" => o.args = value()?.split_whitespace().map(String::from).collect(),
            "--goroutine" => o.goroutine = Some(value()?.parse().context("--goroutine")?),
            "--global" => o.global = value()?,
            "--rdlv" => o.rdlv = value()?.into(),
            "--rdlv-before" => o.before = Some(value()?.into()),
            "--rdlv-snap" => o.snap = value()?.into(),
            "--rdlv-snap-before" => o.snap_before = Some(value()?.into()),
            "--dlv" => o.dlv = value()?.into(),
            "--no-delve" => o.delve = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    o.runs = o.runs.max(1);
    Ok(o)
}

/// The first goroutine whose stack (in `--format go`) has `func`.
fn goroutine_with(rdlv: &Path, snap: &Path, func: &str) -> Result<Option<u64>> {
    let out = Command::new(rdlv)
        .args([
            "goroutines".as_ref(),
            snap.as_os_str(),
            "--format".as_ref(),
            "go".as_ref(),
        ])
        .output()?;
    if !out.status.success() {
        bail!("rdlv goroutines: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split("\n\n").find_map(|block| {
        let id = block
            .lines()
            .next()?
            .strip_prefix("goroutine ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        block.contains(func).then_some(id)
    }))
}

/// A command's check run (output kept) and its timed runs.
struct Row {
    label: String,
    output: String,
    runs: Vec<Usage>,
}

impl Row {
    fn wall(&self) -> Duration {
        median_wall(&self.runs)
    }
    fn cpu(&self) -> Duration {
        median_cpu(&self.runs)
    }
    fn rss(&self) -> u64 {
        peak_rss(&self.runs)
    }
}

fn measure(label: &str, work: &Path, runs: usize, make: impl Fn() -> Command) -> Result<Row> {
    let out_path = work.join("check.out");
    run_measured(
        &mut make(),
        File::create(&out_path)?.into(),
        &work.join("check.err"),
    )
    .with_context(|| label.to_string())?;
    let output = std::fs::read_to_string(&out_path)?;
    let mut timed = Vec::new();
    for _ in 0..runs {
        timed.push(run_measured(
            &mut make(),
            Stdio::null(),
            &work.join("run.err"),
        )?);
    }
    let row = Row {
        label: label.to_string(),
        output,
        runs: timed,
    };
    eprintln!(
        "  {:<44} wall {:>7.3} s  cpu {:>7.3} s  peak RSS {:>7.1} MiB",
        row.label,
        row.wall().as_secs_f64(),
        row.cpu().as_secs_f64(),
        mib(row.rss())
    );
    Ok(row)
}

/// Functions named in a Delve-style stack (`  N  0xPC in FUNC`), in order.
fn stack_funcs(text: &str) -> Vec<String> {
    strip_ansi(text)
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(" in ")?;
            let func = rest.split_whitespace().next()?;
            l.split_whitespace().next()?.parse::<u64>().ok()?;
            Some(func.to_string())
        })
        .collect()
}

/// Delve's answer with its banner and prompt echoes removed.
fn delve_value(text: &str) -> String {
    strip_ansi(text)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("Type 'help'"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ratio(slow: Duration, fast: Duration) -> f64 {
    slow.as_secs_f64() / fast.as_secs_f64().max(1e-9)
}

fn main() -> Result<()> {
    let o = parse_args(std::env::args().skip(1))?;
    for (what, path) in [("rdlv", &o.rdlv), ("rdlv-snap", &o.snap)] {
        if !path.exists() {
            bail!(
                "{what} not found at {} (cargo build --release -p rdlv-snap -p rdlv-analyze)",
                path.display()
            );
        }
    }
    if o.delve && !o.dlv.exists() {
        bail!(
            "Delve not found at {} (run .ci/install-toolchains, or pass --no-delve)",
            o.dlv.display()
        );
    }
    let load_before = loadavg();
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    let (server, bin) = start_server(o.server, o.exe.as_deref(), &o.args, work)?;
    let pid = server.child.id();
    let serving = server.kind.serving_func();
    eprintln!("server pid {pid} on port {}", server.port);
    let exe_bytes = std::fs::metadata(&bin)?.len();
    let server_rss = rss_bytes(pid).unwrap_or(0);

    let snap = work.join("server.snap");
    run_measured(
        Command::new(&o.snap)
            .arg(pid.to_string())
            .arg("-o")
            .arg(&snap)
            .arg("-q"),
        Stdio::null(),
        &work.join("snap.err"),
    )
    .context("rdlv-snap")?;
    let snap_old = match &o.snap_before {
        Some(old) => {
            let path = work.join("server-before.snap");
            run_measured(
                Command::new(old)
                    .arg(pid.to_string())
                    .arg("-o")
                    .arg(&path)
                    .arg("-q"),
                Stdio::null(),
                &work.join("snap-before.err"),
            )
            .context("earlier rdlv-snap")?;
            path
        }
        None => snap.clone(),
    };
    let mut core = None;
    if o.delve {
        let prefix = work.join("core");
        run_measured(
            Command::new("gcore")
                .arg("-o")
                .arg(&prefix)
                .arg(pid.to_string()),
            Stdio::null(),
            &work.join("gcore.err"),
        )
        .context("gcore")?;
        core = Some(work.join(format!("core.{pid}")));
    }
    drop(server);
    eprintln!(
        "{} ({:.1} MiB executable, RSS {:.1} MiB): snapshot {:.1} MiB; load average {load_before}",
        bin.display(),
        mib(exe_bytes),
        mib(server_rss),
        mib(std::fs::metadata(&snap)?.len())
    );

    let goid = match o.goroutine {
        Some(g) => g,
        None => goroutine_with(&o.rdlv, &snap, serving)?
            .with_context(|| format!("no goroutine in {}: pass --goroutine N", serving))?,
    };
    eprintln!(
        "goroutine {goid}, global {}; {} timed runs each (medians)",
        o.global, o.runs
    );

    let rdlv_on = |rdlv: &Path, snap: &Path, args: Vec<String>| {
        let (rdlv, snap) = (rdlv.to_path_buf(), snap.to_path_buf());
        move || {
            let mut c = Command::new(&rdlv);
            c.arg(&args[0]).arg(&snap).args(&args[1..]);
            c
        }
    };
    let bt_args = vec!["bt".to_string(), goid.to_string()];
    let print_args = vec!["print".to_string(), o.global.clone()];
    let mut rows = Vec::new();
    let bt = measure(
        &format!("rdlv bt SNAP {goid}"),
        work,
        o.runs,
        rdlv_on(&o.rdlv, &snap, bt_args.clone()),
    )?;
    let print = measure(
        &format!("rdlv print SNAP {}", o.global),
        work,
        o.runs,
        rdlv_on(&o.rdlv, &snap, print_args.clone()),
    )?;
    let mut before = None;
    if let Some(old) = &o.before {
        let b = measure(
            &format!("before: rdlv bt SNAP {goid}"),
            work,
            o.runs,
            rdlv_on(old, &snap_old, bt_args),
        )?;
        let p = measure(
            &format!("before: rdlv print SNAP {}", o.global),
            work,
            o.runs,
            rdlv_on(old, &snap_old, print_args),
        )?;
        if b.output != bt.output || p.output != print.output {
            eprintln!("  note: the earlier build prints something else for bt or print");
        }
        before = Some((b, p));
    }
    let mut delve = None;
    if let Some(core) = &core {
        let dlv = |script: String, name: &str| -> Result<_> {
            let init = work.join(name);
            std::fs::write(&init, format!("{script}\nexit\n"))?;
            let (dlv, bin, core) = (o.dlv.clone(), bin.clone(), core.clone());
            Ok(move || {
                let mut c = Command::new(&dlv);
                c.arg("core")
                    .arg(&bin)
                    .arg(&core)
                    .arg("--init")
                    .arg(&init)
                    .arg("--allow-non-terminal-interactive=true");
                c
            })
        };
        let b = measure(
            &format!("dlv core: goroutine {goid} bt"),
            work,
            o.runs,
            dlv(format!("goroutine {goid} bt"), "bt.init")?,
        )?;
        let p = measure(
            &format!("dlv core: print {}", o.global),
            work,
            o.runs,
            dlv(format!("print {}", o.global), "print.init")?,
        )?;
        // The same instant, two readers: the stacks and the value agree.
        let (ours, theirs) = (stack_funcs(&bt.output), stack_funcs(&b.output));
        if ours != theirs {
            eprintln!("  note: stacks differ:\n    rdlv: {ours:?}\n    dlv:  {theirs:?}");
        }
        if delve_value(&p.output) != delve_value(&print.output) {
            eprintln!(
                "  note: values differ:\n    rdlv: {}\n    dlv:  {}",
                print.output.trim(),
                delve_value(&p.output)
            );
        }
        delve = Some((b, p));
    }
    rows.push(bt);
    rows.push(print);

    println!();
    println!(
        "{:<28} {:>10} {:>12} {:>12}",
        "command", "rdlv (s)", "before (x)", "dlv core (x)"
    );
    for (i, row) in rows.iter().enumerate() {
        let vs_before = before
            .as_ref()
            .map(|(b, p)| ratio([b, p][i].wall(), row.wall()));
        let vs_delve = delve
            .as_ref()
            .map(|(b, p)| ratio([b, p][i].wall(), row.wall()));
        let show = |r: Option<f64>, target: f64| {
            r.map_or("-".to_string(), |r| format!("{r:.1} {}", pass(r >= target)))
        };
        println!(
            "{:<28} {:>10.3} {:>12} {:>12}",
            row.label.split(" SNAP").next().unwrap_or(&row.label),
            row.wall().as_secs_f64(),
            show(vs_before, TARGET_BEFORE),
            show(vs_delve, TARGET_DELVE),
        );
    }
    println!(
        "targets: >= {TARGET_BEFORE}x faster than before, >= {TARGET_DELVE}x faster than dlv core \
         (wall time, medians of {}); load average before {load_before}, after {}",
        o.runs,
        loadavg()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delve_stacks_parse_with_or_without_colour() {
        let plain =
            " 0  0x000000000049034e in runtime.gopark\n    at proc.go:462\n 1  0x1 in main.f\n";
        let coloured =
            " 0  0x000000000049034e in \u{1b}[1mruntime.gopark\u{1b}[0m\n 1  0x1 in main.f\n";
        assert_eq!(stack_funcs(plain), ["runtime.gopark", "main.f"]);
        assert_eq!(stack_funcs(coloured), stack_funcs(plain));
    }
}
