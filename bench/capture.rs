//! bench-capture: rdlv-snap against a bare process_vm_readv copy and gcore on
//! the same Go process, in one run. Prints medians and ratios; asserts nothing.
//!
//! Usage: bench-capture [--mb N] [--runs N] [--cow] [--precopy] [--dirty-mibps N] [--encrypt]
//! The plain capture (--no-precopy) always runs; --cow and --precopy add runs
//! of those methods on the same process. --encrypt adds default captures
//! with and without `--encrypt-to` (an age key made by .toolchains/bin/age-keygen),
//! alternating, for the tickets issue's target: encryption adds <= 10% to the
//! capture's total time, and the pause is unchanged.
//! Needs: target/release/rdlv-snap (cargo build --release -p rdlv-snap),
//! Go (system), gdb's gcore.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[allow(dead_code)] // Shared with the other benchmarks; this one uses the age helpers.
mod common;

struct Args {
    mb: u64,
    runs: usize,
    cow: bool,
    precopy: bool,
    dirty_mibps: u64,
    export_core: bool,
    encrypt: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        mb: 1024,
        runs: 3,
        cow: false,
        precopy: false,
        dirty_mibps: 0,
        export_core: false,
        encrypt: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mb" => args.mb = it.next().context("--mb N")?.parse()?,
            "--runs" => args.runs = it.next().context("--runs N")?.parse()?,
            "--cow" => args.cow = true,
            "--precopy" => args.precopy = true,
            "--export-core" => args.export_core = true,
            "--encrypt" => args.encrypt = true,
            "--dirty-mibps" => args.dirty_mibps = it.next().context("--dirty-mibps N")?.parse()?,
            "-h" | "--help" => {
                println!("bench-capture [--mb N (1024)] [--runs N (3)] [--cow] [--precopy] [--dirty-mibps N (0)] [--export-core] [--encrypt]");
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
    /// User + system CPU time of rdlv-snap (steadier than wall on a shared machine).
    cpu: Duration,
    /// rdlv-snap's own figures: in the age layer, and verifying the file.
    encrypt_us: u64,
    verify_us: u64,
    total_ms: u64,
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
    run_snap_with(pid, out, mode.as_slice())
}

fn run_snap_with(pid: u32, out: &Path, extra: &[&str]) -> Result<SnapRun> {
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
    cmd.args(extra);
    let cpu_before = children_cpu();
    let output = cmd.output()?;
    let wall = start.elapsed();
    let cpu = children_cpu().saturating_sub(cpu_before);
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
        cpu,
        encrypt_us: v["encrypt_us"].as_u64().unwrap_or(0),
        verify_us: v["verify_us"].as_u64().unwrap_or(0),
        total_ms: v["total_ms"].as_u64().unwrap_or(0),
        file_bytes: v["file_bytes"].as_u64().context("file_bytes")?,
        cow_extra_bytes: v["cow_extra_bytes"].as_u64().unwrap_or(0),
        attach_pause_us: v["precopy_attach_pause_us"].as_u64().unwrap_or(0),
        precopy_bytes: v["precopy_bytes"].as_u64().unwrap_or(0),
        recopied_bytes: v["bytes_captured"].as_u64().unwrap_or(0)
            - v["precopy_reused_bytes"].as_u64().unwrap_or(0),
    })
}

/// CPU time (user + system) of every reaped child so far.
fn children_cpu() -> Duration {
    // SAFETY: rusage is plain old data; getrusage only writes it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
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
    // Default captures with and without encryption, alternating so that a
    // change of machine load hits both alike.
    let mut enc_rows: Vec<(SnapRun, SnapRun)> = Vec::new();
    if args.encrypt {
        let (key, recipient) = common::age_key(work.path())?;
        for i in 0..args.runs {
            let plain_out = work.path().join(format!("d{i}.snap"));
            let enc_out = work.path().join(format!("e{i}.snap"));
            let plain = run_snap_with(target.pid, &plain_out, &[])?;
            let enc = run_snap_with(target.pid, &enc_out, &["--encrypt-to", &recipient])?;
            // The age file must decrypt to a snapshot rdlv verifies.
            let dec = work.path().join("dec.snap");
            let status = Command::new(common::age_tool("age"))
                .args(["-d", "-i"])
                .arg(&key)
                .arg("-o")
                .arg(&dec)
                .arg(&enc_out)
                .status()?;
            let verified = status.success()
                && Command::new(repo_root().join("target/release/rdlv"))
                    .arg("verify")
                    .arg(&dec)
                    .stdout(Stdio::null())
                    .status()?
                    .success();
            if !verified {
                bail!("the encrypted capture did not decrypt to a valid snapshot");
            }
            println!(
                "rdlv-snap default run {i}: stopped {:.1} ms, total {:.2} s, cpu {:.2} s, {:.1} MiB | --encrypt-to: stopped {:.1} ms, total {:.2} s, cpu {:.2} s, {:.1} MiB (decrypts and verifies)",
                plain.stopped_ms(),
                plain.wall.as_secs_f64(),
                plain.cpu.as_secs_f64(),
                plain.file_bytes as f64 / 1048576.0,
                enc.stopped_ms(),
                enc.wall.as_secs_f64(),
                enc.cpu.as_secs_f64(),
                enc.file_bytes as f64 / 1048576.0,
            );
            for f in [&plain_out, &enc_out, &dec] {
                let _ = std::fs::remove_file(f);
            }
            enc_rows.push((plain, enc));
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
    if !enc_rows.is_empty() {
        let total = |f: fn(&(SnapRun, SnapRun)) -> f64| median(enc_rows.iter().map(f).collect());
        let (p_wall, e_wall) = (
            total(|r| r.0.wall.as_secs_f64()),
            total(|r| r.1.wall.as_secs_f64()),
        );
        let (p_stop, e_stop) = (total(|r| r.0.stopped_ms()), total(|r| r.1.stopped_ms()));
        let (p_cpu, e_cpu) = (
            total(|r| r.0.cpu.as_secs_f64()),
            total(|r| r.1.cpu.as_secs_f64()),
        );
        println!(
            "rdlv-snap default vs --encrypt-to: total {p_wall:.2} s vs {e_wall:.2} s = {:+.1}% (target <= +10%); cpu {p_cpu:.2} s vs {e_cpu:.2} s = {:+.1}%; stopped {p_stop:.1} ms vs {e_stop:.1} ms (target: unchanged)",
            (e_wall / p_wall - 1.0) * 100.0,
            (e_cpu / p_cpu - 1.0) * 100.0
        );
        // The same judged from rdlv-snap's own clock, which machine noise
        // does not blur: the time in the age layer plus the extra time of
        // verifying through decryption, against the encrypted capture's total.
        let added = |r: &(SnapRun, SnapRun)| {
            let extra_verify = r.1.verify_us as f64 - r.0.verify_us as f64;
            (r.1.encrypt_us as f64 + extra_verify.max(0.0)) / 1000.0
        };
        let added_ms = median(enc_rows.iter().map(added).collect());
        let without = median(
            enc_rows
                .iter()
                .map(|r| r.1.total_ms as f64 - added(r))
                .collect(),
        );
        let share = median(
            enc_rows
                .iter()
                .map(|r| added(r) / (r.1.total_ms as f64 - added(r)).max(1.0))
                .collect(),
        );
        println!(
            "encryption's own cost (rdlv-snap's clock; medians, so the parts need not add up): {added_ms:.1} ms (age layer {:.1} ms, verifying through decryption {:+.1} ms) on top of {without:.0} ms = +{:.1}% (target <= +10%) {}",
            median(enc_rows.iter().map(|r| r.1.encrypt_us as f64 / 1000.0).collect()),
            median(enc_rows.iter().map(|r| (r.1.verify_us as f64 - r.0.verify_us as f64) / 1000.0).collect()),
            share * 100.0,
            if share <= 0.10 { "PASS" } else { "FAIL" }
        );
    }
    println!("snapshot size          {:>9.1} MiB  snapshot / gcore core  = {:.3}x (target <= 0.2x; core on disk {:.1} MiB)", size / 1048576.0, size / core_size, core_disk / 1048576.0);
    Ok(())
}
