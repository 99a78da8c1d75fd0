//! bench-goroutines: listing N goroutines with `rdlv goroutines` against
//! `dlv core` on the same process state.
//!
//! Starts `corpus/cmd/many -n N`, captures it once with `rdlv-snap` and once
//! with `gcore` (for Delve), then times `rdlv goroutines SNAP` (text, `--group`,
//! `--format go`) and `dlv core BIN CORE` running `goroutines` then `exit`.
//! Prints medians and the ratio. Nothing here asserts a timing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

struct Options {
    n: u64,
    runs: usize,
    go: String,
    dlv: PathBuf,
    rdlv: PathBuf,
    snap: PathBuf,
    skip_delve: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn parse_args() -> Result<Options> {
    let r = root();
    let mut o = Options {
        n: 100_000,
        runs: 3,
        go: "go".into(),
        dlv: r.join(".toolchains/bin/dlv"),
        rdlv: r.join("target/release/rdlv"),
        snap: r.join("target/release/rdlv-snap"),
        skip_delve: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--n" => o.n = value()?.parse()?,
            "--runs" => o.runs = value()?.parse()?,
            "--go" => o.go = value()?,
            "--dlv" => o.dlv = value()?.into(),
            "--rdlv" => o.rdlv = value()?.into(),
            "--rdlv-snap" => o.snap = value()?.into(),
            "--no-delve" => o.skip_delve = true,
            "-h" | "--help" => {
                println!(
                    "bench-goroutines [--n 100000] [--runs 3] [--go GO] [--dlv PATH] \
                     [--rdlv PATH] [--rdlv-snap PATH] [--no-delve]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    o.runs = o.runs.max(1);
    Ok(o)
}

/// Runs a command to completion, returning its wall time and stdout size.
fn timed(cmd: &mut Command) -> Result<(Duration, usize)> {
    let start = Instant::now();
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((elapsed, out.stdout.len()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(label: &str, runs: usize, mut make: impl FnMut() -> Command) -> Result<Duration> {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let (t, b) = timed(&mut make())?;
        times.push(t);
        bytes = b;
    }
    let m = median(times);
    println!(
        "{label:<40} median {:>9.3} s  ({bytes} bytes of output)",
        m.as_secs_f64()
    );
    Ok(m)
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("many");
    let status = Command::new(&o.go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./cmd/many")
        .current_dir(root().join("corpus"))
        .env("GOTOOLCHAIN", "local")
        .status()
        .context("go build corpus/cmd/many")?;
    if !status.success() {
        bail!("go build failed");
    }
    let mut child = Command::new(&bin)
        .args(["-n", &o.n.to_string()])
        .env("ORACLE_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .context("start many")?;
    let pid = child.id();
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("READY") {
        let _ = child.kill();
        bail!("many did not print READY: {line:?}");
    }
    let result = (|| -> Result<()> {
        let snap = dir.path().join("many.snap");
        timed(
            Command::new(&o.snap)
                .arg(pid.to_string())
                .arg("-o")
                .arg(&snap)
                // This benchmark is about listing; allow a slow (debug) capture.
                .args(["--max-pause", "60s"]),
        )?;
        println!(
            "{} goroutines parked (pid {pid}); snapshot {}",
            o.n,
            snap.display()
        );
        let rdlv = |extra: &[&str]| {
            let mut c = Command::new(&o.rdlv);
            c.arg("goroutines").arg(&snap).args(extra);
            c
        };
        let ours = bench("rdlv goroutines", o.runs, || rdlv(&["--system"]))?;
        bench("rdlv goroutines --group", o.runs, || rdlv(&["--group"]))?;
        bench("rdlv goroutines --format go", o.runs, || {
            rdlv(&["--format", "go"])
        })?;
        bench("rdlv goroutines --format json", o.runs, || {
            rdlv(&["--format", "json"])
        })?;
        if o.skip_delve {
            return Ok(());
        }
        let core = dir.path().join("core");
        timed(
            Command::new("gcore")
                .arg("-o")
                .arg(&core)
                .arg(pid.to_string()),
        )?;
        let core = dir.path().join(format!("core.{pid}"));
        let init = dir.path().join("dlv-init");
        std::fs::write(&init, "goroutines\nexit\n")?;
        let theirs = bench("dlv core + goroutines", o.runs, || {
            let mut c = Command::new(&o.dlv);
            c.arg("core")
                .arg(&bin)
                .arg(&core)
                .arg("--init")
                .arg(&init)
                .stdin(Stdio::null());
            c
        })?;
        println!(
            "rdlv is {:.1}x faster than dlv core at listing {} goroutines",
            theirs.as_secs_f64() / ours.as_secs_f64().max(1e-9),
            o.n
        );
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
