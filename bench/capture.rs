//! bench-capture: rdlv-snap against a bare process_vm_readv copy and gcore on
//! the same Go process, in one run. Prints medians and ratios; asserts nothing.
//!
//! Usage: bench-capture [--mb N] [--runs N] [--cow] [--precopy] [--dirty-mibps N]
//! The plain capture (--no-precopy) always runs; --cow and --precopy add runs
//! of those methods on the same process.
//! Needs: target/release/rdlv-snap (cargo build --release -p rdlv-snap),
//! Go (system), gdb's gcore.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

struct Args {
    mb: u64,
    runs: usize,
    cow: bool,
    precopy: bool,
    dirty_mibps: u64,
    export_core: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        mb: 1024,
        runs: 3,
        cow: false,
        precopy: false,
        dirty_mibps: 0,
        export_core: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mb" => args.mb = it.next().context("--mb N")?.parse()?,
            "--runs" => args.runs = it.next().context("--runs N")?.parse()?,
            "--cow" => args.cow = true,
            "--precopy" => args.precopy = true,
            "--export-core" => args.export_core = true,
            "--dirty-mibps" => args.dirty_mibps = it.next().context("--dirty-mibps N")?.parse()?,
            "-h" | "--help" => {
                println!("bench-capture [--mb N (1024)] [--runs N (3)] [--cow] [--precopy] [--dirty-mibps N (0)] [--export-core]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The heap corpus program, running, killed on drop.
struct HeapTarget {
    child: Child,
    pid: u32,
}

impl Drop for HeapTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_heap(mb: u64, dirty_mibps: u64, work: &Path) -> Result<HeapTarget> {
    let bin = work.join("heap");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./cmd/heap")
        .current_dir(repo_root().join("corpus"))
        .status()
        .context("running go build")?;
    if !status.success() {
        bail!("go build ./cmd/heap failed");
    }
    let mut child = Command::new(&bin)
        .args(["-mb", &mb.to_string()])
        .args(["-dirty-mibps", &dirty_mibps.to_string()])
        .env("ORACLE_DIR", work)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the heap program")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let pid = child.id();
    let target = HeapTarget { child, pid };
    for line in lines.by_ref() {
        let line = line?;
        if line.starts_with("READY") {
            // Drain the rest in the background so the program never blocks on stdout.
            std::thread::spawn(move || for _ in lines {});
            return Ok(target);
        }
    }
    bail!("heap program exited before READY")
}

fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse()?;
            return Ok(kb * 1024);
        }
    }
    bail!("no VmRSS")
}

/// Present pages of readable, ordinary mappings, as (addr, len) runs.
fn present_runs(pid: u32) -> Result<Vec<(u64, u64)>> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap"))?;
    let mut runs = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = line.split_whitespace().nth(5).unwrap_or("");
        if !perms.starts_with('r') || path.starts_with("[v") {
            continue;
        }
        let (s, e) = range.split_once('-').context("maps range")?;
        let (start, end) = (u64::from_str_radix(s, 16)?, u64::from_str_radix(e, 16)?);
        let pages = ((end - start) / 4096) as usize;
        let mut entries = vec![0u8; pages * 8];
        pagemap.read_exact_at(&mut entries, start / 4096 * 8)?;
        let mut run: Option<(u64, u64)> = None;
        for (i, e) in entries.chunks_exact(8).enumerate() {
            let present = u64::from_le_bytes(e.try_into().expect("8 bytes")) >> 63 == 1;
            let addr = start + i as u64 * 4096;
            match (&mut run, present) {
                (Some((a, l)), true) if *a + *l == addr => *l += 4096,
                (_, true) => {
                    if let Some(r) = run.take() {
                        runs.push(r);
                    }
                    run = Some((addr, 4096));
                }
                (_, false) => {}
            }
        }
        runs.extend(run);
    }
    Ok(runs)
}

/// Copies `runs` with process_vm_readv on two threads into pre-faulted buffers.
fn bare_copy(pid: u32, runs: &[(u64, u64)]) -> Result<(Duration, u64)> {
    let total: u64 = runs.iter().map(|r| r.1).sum();
    let half = runs.len() / 2;
    let (a, b) = runs.split_at(half);
    let mut bufs: Vec<Vec<u8>> = [a, b]
        .iter()
        .map(|rs| vec![1u8; rs.iter().map(|r| r.1 as usize).sum()])
        .collect();
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for (rs, buf) in [a, b].into_iter().zip(bufs.iter_mut()) {
            handles.push(scope.spawn(move || -> Result<()> {
                let mut off = 0usize;
                for batch in rs.chunks(1024) {
                    let len: usize = batch.iter().map(|r| r.1 as usize).sum();
                    let local = libc::iovec {
                        iov_base: buf[off..].as_mut_ptr().cast(),
                        iov_len: len,
                    };
                    let remote: Vec<libc::iovec> = batch
                        .iter()
                        .map(|r| libc::iovec {
                            iov_base: r.0 as *mut _,
                            iov_len: r.1 as usize,
                        })
                        .collect();
                    // SAFETY: local points into `buf` with `len` bytes available; remote
                    // iovecs describe the target's memory and are only read by the kernel.
                    let n = unsafe {
                        libc::process_vm_readv(
                            pid as libc::pid_t,
                            &local,
                            1,
                            remote.as_ptr(),
                            remote.len() as libc::c_ulong,
                            0,
                        )
                    };
                    if n < 0 {
                        bail!("process_vm_readv: {}", std::io::Error::last_os_error());
                    }
                    off += len;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("copy thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((start.elapsed(), total))
}

struct SnapRun {
    pause_us: u64,
    wall: Duration,
    file_bytes: u64,
    /// Extra memory the target held during a --cow capture (child's private
    /// dirty pages plus its page tables), as rdlv-snap reports it.
    cow_extra_bytes: u64,
    /// --precopy: the short stop that set up write tracking (the target is
    /// stopped twice; `pause_us` sums both).
    attach_pause_us: u64,
    /// --precopy: bytes copied while the target ran / re-copied in the stop.
    precopy_bytes: u64,
    recopied_bytes: u64,
}

impl SnapRun {
    /// Everything the target spent stopped, in ms: `pause_us`, which for
    /// --precopy sums both stops.
    fn stopped_ms(&self) -> f64 {
        self.pause_us as f64 / 1000.0
    }
}

fn run_snap(pid: u32, out: &Path, mode: Option<&str>) -> Result<SnapRun> {
    let snap = repo_root().join("target/release/rdlv-snap");
    if !snap.exists() {
        bail!(
            "{} missing: run cargo build --release -p rdlv-snap",
            snap.display()
        );
    }
    let _ = std::fs::remove_file(out);
    let start = Instant::now();
    let mut cmd = Command::new(&snap);
    cmd.arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .args(["--json", "-q"]);
    if let Some(flag) = mode {
        cmd.arg(flag);
    }
    let output = cmd.output()?;
    let wall = start.elapsed();
    if !output.status.success() {
        bail!(
            "rdlv-snap failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(SnapRun {
        pause_us: v["pause_us"].as_u64().context("pause_us")?,
        wall,
        file_bytes: v["file_bytes"].as_u64().context("file_bytes")?,
        cow_extra_bytes: v["cow_extra_bytes"].as_u64().unwrap_or(0),
        attach_pause_us: v["precopy_attach_pause_us"].as_u64().unwrap_or(0),
        precopy_bytes: v["precopy_bytes"].as_u64().unwrap_or(0),
        recopied_bytes: v["bytes_captured"].as_u64().unwrap_or(0)
            - v["precopy_reused_bytes"].as_u64().unwrap_or(0),
    })
}

fn run_gcore(pid: u32, work: &Path) -> Result<(Duration, u64, u64)> {
    let prefix = work.join("core");
    let core = PathBuf::from(format!("{}.{pid}", prefix.display()));
    let _ = std::fs::remove_file(&core);
    let start = Instant::now();
    let output = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .output()?;
    let wall = start.elapsed();
    if !output.status.success() {
        bail!("gcore failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let meta = std::fs::metadata(&core)?;
    use std::os::unix::fs::MetadataExt;
    let apparent = meta.len();
    let on_disk = meta.blocks() * 512;
    std::fs::remove_file(&core)?;
    Ok((wall, apparent, on_disk))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let work = tempfile::tempdir()?;
    let target = start_heap(args.mb, args.dirty_mibps, work.path())?;
    let rss = rss_bytes(target.pid)?;
    println!(
        "target: corpus/cmd/heap -mb {} -dirty-mibps {} pid {} RSS {:.1} MiB",
        args.mb,
        args.dirty_mibps,
        target.pid,
        rss as f64 / 1048576.0
    );

    let mut pauses = Vec::new();
    let mut walls = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..args.runs {
        let r = run_snap(
            target.pid,
            &work.path().join(format!("x{i}.snap")),
            Some("--no-precopy"),
        )?;
        println!(
            "rdlv-snap --no-precopy run {i}: pause {:.1} ms, total {:.2} s, file {:.1} MiB",
            r.pause_us as f64 / 1000.0,
            r.wall.as_secs_f64(),
            r.file_bytes as f64 / 1048576.0
        );
        pauses.push(r.pause_us as f64 / 1000.0);
        walls.push(r.wall.as_secs_f64());
        sizes.push(r.file_bytes as f64);
        // The last one stays for --export-core.
        if !(args.export_core && i + 1 == args.runs) {
            let _ = std::fs::remove_file(work.path().join(format!("x{i}.snap")));
        }
    }
    let mut cow_pauses = Vec::new();
    let mut cow_walls = Vec::new();
    let mut cow_extra = Vec::new();
    if args.cow {
        for i in 0..args.runs {
            let r = run_snap(
                target.pid,
                &work.path().join(format!("c{i}.snap")),
                Some("--cow"),
            )?;
            println!(
                "rdlv-snap --cow run {i}: pause {:.1} ms, total {:.2} s, target extra memory {:.1} MiB",
                r.pause_us as f64 / 1000.0,
                r.wall.as_secs_f64(),
                r.cow_extra_bytes as f64 / 1048576.0
            );
            cow_pauses.push(r.pause_us as f64 / 1000.0);
            cow_walls.push(r.wall.as_secs_f64());
            cow_extra.push(r.cow_extra_bytes as f64);
            let _ = std::fs::remove_file(work.path().join(format!("c{i}.snap")));
        }
    }
    let mut pre_stops = Vec::new();
    let mut pre_walls = Vec::new();
    let mut pre_recopied = Vec::new();
    if args.precopy {
        for i in 0..args.runs {
            let r = run_snap(
                target.pid,
                &work.path().join(format!("p{i}.snap")),
                Some("--precopy"),
            )?;
            println!(
                "rdlv-snap --precopy run {i}: stopped {:.1} ms (set-up stop {:.1} ms + main stop {:.1} ms), {:.1} MiB copied while running, {:.1} MiB re-copied in the stop, total {:.2} s",
                r.stopped_ms(),
                r.attach_pause_us as f64 / 1000.0,
                r.pause_us.saturating_sub(r.attach_pause_us) as f64 / 1000.0,
                r.precopy_bytes as f64 / 1048576.0,
                r.recopied_bytes as f64 / 1048576.0,
                r.wall.as_secs_f64(),
            );
            pre_stops.push(r.stopped_ms());
            pre_walls.push(r.wall.as_secs_f64());
            pre_recopied.push(r.recopied_bytes as f64);
            let _ = std::fs::remove_file(work.path().join(format!("p{i}.snap")));
        }
    }
    let mut bare = Vec::new();
    let mut bare_bytes = 0;
    for i in 0..args.runs {
        let runs = present_runs(target.pid)?;
        let (d, bytes) = bare_copy(target.pid, &runs)?;
        bare_bytes = bytes;
        println!(
            "bare process_vm_readv run {i}: {:.1} ms for {:.1} MiB",
            d.as_secs_f64() * 1000.0,
            bytes as f64 / 1048576.0
        );
        bare.push(d.as_secs_f64() * 1000.0);
    }
    let mut gcore_walls = Vec::new();
    let mut core_size = 0.0;
    let mut core_disk = 0.0;
    for i in 0..args.runs {
        let (d, apparent, disk) = run_gcore(target.pid, work.path())?;
        println!(
            "gcore run {i}: {:.2} s, core {:.1} MiB ({:.1} MiB on disk)",
            d.as_secs_f64(),
            apparent as f64 / 1048576.0,
            disk as f64 / 1048576.0
        );
        gcore_walls.push(d.as_secs_f64() * 1000.0);
        core_size = apparent as f64;
        core_disk = disk as f64;
    }
    // `rdlv export core` of the last plain snapshot: the target is
    // within 1.5x of gcore's wall time on the same process.
    let mut export_walls = Vec::new();
    if args.export_core {
        let rdlv = repo_root().join("target/release/rdlv");
        let snap = work
            .path()
            .join(format!("x{}.snap", args.runs.saturating_sub(1)));
        for i in 0..args.runs {
            let out = work.path().join("export.core");
            let start = Instant::now();
            let status = Command::new(&rdlv)
                .args([
                    "export".as_ref(),
                    "core".as_ref(),
                    snap.as_os_str(),
                    "-o".as_ref(),
                    out.as_os_str(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .with_context(|| {
                    format!(
                        "run {} (cargo build --release -p rdlv-analyze)",
                        rdlv.display()
                    )
                })?;
            let d = start.elapsed();
            if !status.success() {
                bail!("rdlv export core failed: {status}");
            }
            let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!(
                "rdlv export core run {i}: {:.2} s, core {:.1} MiB",
                d.as_secs_f64(),
                bytes as f64 / 1048576.0
            );
            export_walls.push(d.as_secs_f64() * 1000.0);
            let _ = std::fs::remove_file(&out);
        }
    }
    let (pause, wall, size) = (median(pauses), median(walls), median(sizes));
    let (bare_ms, gcore_ms) = (median(bare), median(gcore_walls));
    println!();
    println!(
        "== medians of {} runs, RSS {:.1} MiB, {:.1} MiB present",
        args.runs,
        rss as f64 / 1048576.0,
        bare_bytes as f64 / 1048576.0
    );
    println!("rdlv-snap --no-precopy pause (plain copy, everything while stopped)");
    println!("                       {pause:>9.1} ms");
    println!("bare copy              {bare_ms:>9.1} ms   pause / bare copy     = {:.2}x (target <= 1.3x)", pause / bare_ms);
    println!("gcore wall             {gcore_ms:>9.1} ms   gcore / rdlv-snap pause = {:.1}x (target >= 10x)", gcore_ms / pause);
    if !cow_pauses.is_empty() {
        let cow = median(cow_pauses);
        println!("rdlv-snap --cow pause  {cow:>9.1} ms   gcore / cow pause     = {:.1}x (target >= 40x); {:.1} ms per GiB RSS (target <= 40)", gcore_ms / cow, cow / (rss as f64 / 1073741824.0));
        println!(
            "rdlv-snap --cow total  {:>9.2} s    target extra memory during capture {:.1} MiB",
            median(cow_walls),
            median(cow_extra) / 1048576.0
        );
    }
    if !pre_stops.is_empty() {
        let stopped = median(pre_stops);
        println!("rdlv-snap --precopy (the default), both stops summed");
        println!("                       {stopped:>9.1} ms   gcore / stops = {:.1}x (target >= 10x); stops / bare copy = {:.3}x (target <= 1.3x); {:.1} MiB re-copied in the stop",
            gcore_ms / stopped, stopped / bare_ms, median(pre_recopied) / 1048576.0);
        println!("rdlv-snap --precopy total {:>6.2} s", median(pre_walls));
    }
    println!("rdlv-snap --no-precopy total {wall:>5.2} s   (target <= 3 s at 1 GiB)");
    if !export_walls.is_empty() {
        let e = median(export_walls);
        println!(
            "rdlv export core       {e:>9.1} ms   export / gcore wall   = {:.2}x (target <= 1.5x)",
            e / gcore_ms
        );
    }
    println!("snapshot size          {:>9.1} MiB  snapshot / gcore core  = {:.3}x (target <= 0.2x; core on disk {:.1} MiB)", size / 1048576.0, size / core_size, core_disk / 1048576.0);
    Ok(())
}
