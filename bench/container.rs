//! bench-container: the capture pause of a Go process inside a Docker
//! container (Docker's default seccomp profile) against the same process on
//! the host, in one run. Prints medians and the method/fallback rdlv-snap
//! reported; asserts nothing.
//!
//! Usage: bench-container [--mb N] [--runs N] [--snap PATH] [--snap-image TAG]
//! Captures `corpus/cmd/heap -mb N` (static, in an image FROM scratch, run
//! with `--network none`) from the host by host PID, with the default method
//! and with `--no-precopy`, then the same program started on the host. With
//! `--snap-image TAG` (e.g. the image of capture/build-image.sh) also from a
//! sidecar (`--pid=container:APP --cap-add SYS_PTRACE`).
//! Needs: a Docker daemon (.ci/start-docker), Go (system), rdlv-snap
//! (default target/release/rdlv-snap).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

struct Args {
    mb: u64,
    runs: usize,
    snap: PathBuf,
    snap_image: Option<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        mb: 1024,
        runs: 3,
        snap: repo_root().join("target/release/rdlv-snap"),
        snap_image: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mb" => args.mb = it.next().context("--mb N")?.parse()?,
            "--runs" => args.runs = it.next().context("--runs N")?.parse()?,
            "--snap" => args.snap = it.next().context("--snap PATH")?.into(),
            "--snap-image" => args.snap_image = Some(it.next().context("--snap-image TAG")?),
            "-h" | "--help" => {
                println!("bench-container [--mb N (1024)] [--runs N (3)] [--snap PATH] [--snap-image TAG]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running docker (start it with .ci/start-docker)")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A container removed on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A host process killed on drop.
struct HostHeap(Child);

impl Drop for HostHeap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn build_heap(work: &Path) -> Result<PathBuf> {
    let bin = work.join("heap");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./cmd/heap")
        .current_dir(repo_root().join("corpus"))
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .status()
        .context("running go build")?;
    if !status.success() {
        bail!("go build ./cmd/heap failed");
    }
    Ok(bin)
}

fn build_image(bin: &Path, work: &Path) -> Result<&'static str> {
    let tag = "rdlv-bench-heap:latest";
    let ctx = work.join("image");
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(bin, ctx.join("heap"))?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY heap /heap\nENTRYPOINT [\"/heap\"]\n",
    )?;
    let status = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "-t", tag])
        .arg(&ctx)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("docker build of the heap image failed");
    }
    Ok(tag)
}

fn start_container(image: &str, mb: u64, work: &Path) -> Result<(Container, u32)> {
    let name = format!("rdlv-bench-heap-{}", std::process::id());
    let _ = docker(&["rm", "-f", &name]);
    let volume = format!("{}:/oracle", work.display());
    let mb = mb.to_string();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &volume,
        "-e",
        "ORACLE_DIR=/oracle",
        image,
        "-mb",
        &mb,
    ])?;
    let container = Container(name);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let logs = docker(&["logs", &container.0])?;
        if logs.lines().any(|l| l.starts_with("READY")) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the heap container printed no READY: {logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid: u32 = docker(&["inspect", "-f", "{{.State.Pid}}", &container.0])?.parse()?;
    Ok((container, pid))
}

fn start_host(bin: &Path, mb: u64, work: &Path) -> Result<(HostHeap, u32)> {
    let mut child = Command::new(bin)
        .args(["-mb", &mb.to_string()])
        .env("ORACLE_DIR", work)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the heap program")?;
    let stdout = child.stdout.take().context("stdout")?;
    let pid = child.id();
    let heap = HostHeap(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line?.starts_with("READY") {
            std::thread::spawn(move || for _ in lines {});
            return Ok((heap, pid));
        }
    }
    bail!("heap program exited before READY")
}

/// One capture's figures from `--json`.
struct Run {
    pause_us: u64,
    method: String,
    fallback: Option<String>,
    bytes: u64,
}

fn parse_run(json: &[u8]) -> Result<Run> {
    let text = String::from_utf8_lossy(json);
    let v: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("no JSON from rdlv-snap: {text}"))?;
    Ok(Run {
        pause_us: v["pause_us"].as_u64().context("pause_us")?,
        method: v["method"].as_str().unwrap_or("?").to_string(),
        fallback: v["precopy_fallback"].as_str().map(str::to_string),
        bytes: v["bytes_captured"].as_u64().unwrap_or(0),
    })
}

fn host_capture(snap: &Path, pid: u32, out: &Path, extra: &[&str]) -> Result<Run> {
    let _ = std::fs::remove_file(out);
    let output = Command::new(snap)
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .args(["--json", "-q"])
        .args(extra)
        .output()
        .with_context(|| format!("running {}", snap.display()))?;
    if !output.status.success() {
        bail!(
            "rdlv-snap failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_file(out);
    parse_run(&output.stdout)
}

fn sidecar_capture(image: &str, app: &str, work: &Path, extra: &[&str]) -> Result<Run> {
    let out = work.join("sidecar.snap");
    let _ = std::fs::remove_file(&out);
    let pid_ns = format!("container:{app}");
    let volume = format!("{}:/out", work.display());
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        &pid_ns,
        "--cap-add",
        "SYS_PTRACE",
        "-v",
        &volume,
        image,
        "rdlv-snap",
        "1",
        "-o",
        "/out/sidecar.snap",
        "--json",
        "-q",
    ];
    args.extend_from_slice(extra);
    let json = docker(&args)?;
    let _ = std::fs::remove_file(&out);
    parse_run(json.as_bytes())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `capture` `runs` times and prints one line: median pause, method,
/// fallback reason.
fn series(label: &str, runs: usize, mut capture: impl FnMut() -> Result<Run>) -> Result<f64> {
    let mut pauses = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let run = capture()?;
        pauses.push(run.pause_us as f64 / 1000.0);
        last = Some(run);
        std::thread::sleep(Duration::from_millis(500));
    }
    let last = last.context("no run")?;
    let pause = median(pauses.clone());
    println!(
        "{label:<44} pause median {pause:8.1} ms (runs {:?} ms), method {}, {:.0} MiB captured{}",
        pauses
            .iter()
            .map(|p| (p * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        last.method,
        last.bytes as f64 / (1 << 20) as f64,
        last.fallback
            .map(|r| format!(", fallback: {r}"))
            .unwrap_or_default()
    );
    Ok(pause)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if !args.snap.exists() {
        bail!(
            "{} missing: cargo build --release -p rdlv-snap, or --snap PATH",
            args.snap.display()
        );
    }
    let work = tempfile::Builder::new()
        .prefix("rdlv-bench-container-")
        .tempdir()?;
    let bin = build_heap(work.path())?;
    let image = build_image(&bin, work.path())?;
    let (n, mb) = (args.runs, args.mb);
    println!(
        "heap -mb {mb}, {n} runs each, rdlv-snap {}",
        args.snap.display()
    );

    let (container, pid) = start_container(image, mb, work.path())?;
    let out = work.path().join("x.snap");
    let in_default = series("container (default seccomp), host PID, default", n, || {
        host_capture(&args.snap, pid, &out, &[])
    })?;
    series(
        "container (default seccomp), host PID, --no-precopy",
        n,
        || host_capture(&args.snap, pid, &out, &["--no-precopy"]),
    )?;
    if let Some(snap_image) = &args.snap_image {
        series("container (default seccomp), sidecar SYS_PTRACE", n, || {
            sidecar_capture(snap_image, &container.0, work.path(), &[])
        })?;
    }
    drop(container);

    let (host, pid) = start_host(&bin, mb, work.path())?;
    let on_host = series("host process, default", n, || {
        host_capture(&args.snap, pid, &out, &[])
    })?;
    series("host process, --no-precopy", n, || {
        host_capture(&args.snap, pid, &out, &["--no-precopy"])
    })?;
    drop(host);
    println!(
        "container / host pause (default method): {:.1}x",
        in_default / on_host
    );
    Ok(())
}
