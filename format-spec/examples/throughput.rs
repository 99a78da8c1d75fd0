//! Measures writer and reader speed on synthetic heap-like memory.
//!
//! `cargo run --release -p rdlv-format --example throughput [MiB] [level]`
//! Prints figures; asserts nothing about timing (machines differ).

use std::time::Instant;

use rdlv_format::*;

/// xorshift64*: deterministic, fast, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Memory that compresses roughly like a Go heap: small integers, pointers
/// into a 64 MiB arena, some text, `random_pct` % random words, and about 1 %
/// all-zero pages.
fn heap_like(len: usize, seed: u64, random_pct: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut v = Vec::with_capacity(len);
    let text = b"GET /api/v1/orders?tenant=acme HTTP/1.1\r\nHost: orders.internal\r\n";
    while v.len() < len {
        let r = rng.next();
        if r.is_multiple_of(100) && v.len() % 4096 == 0 {
            v.resize(v.len() + 4096, 0);
            continue;
        }
        if (r >> 32) % 100 < random_pct {
            v.extend_from_slice(&rng.next().to_le_bytes());
            continue;
        }
        match r % 6 {
            0..=2 => v.extend_from_slice(&(r >> 56).to_le_bytes()),
            3..=4 => v.extend_from_slice(
                &(0x00c0_0000_0000 + ((r >> 20) % (64 << 20)) / 8 * 8).to_le_bytes(),
            ),
            _ => {
                let at = (r >> 8) as usize % (text.len() - 8);
                v.extend_from_slice(&text[at..at + 8]);
            }
        }
    }
    v.truncate(len);
    v
}

/// Writes one snapshot holding `data` at `base`; returns its stats and the wall time.
fn write_snapshot<W: std::io::Write>(
    out: W,
    data: &[u8],
    base: u64,
    level: i32,
) -> Result<(WriteStats, f64), FormatError> {
    let t = Instant::now();
    let mut w = SnapshotWriter::new(
        out,
        WriteOptions {
            level,
            ..WriteOptions::default()
        },
    )?;
    w.write_metadata(&Metadata::default())?;
    w.write_memory(&[MemoryRegion { addr: base, data }], &mut |_| {})?;
    let (_, stats) = w.finish()?;
    Ok((stats, t.elapsed().as_secs_f64()))
}

/// User plus system CPU time of this process so far (Linux `/proc`), if available.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux.
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let level: i32 = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let random_pct: u64 = std::env::args()
        .nth(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(12);
    let data = heap_like(mib << 20, 42, random_pct);
    let base = 0x00c0_0000_0000_u64;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.snap");

    // First into a sink that discards (compression cost alone), then into a
    // file (what a capture pays, page cache included).
    let sink_secs = write_snapshot(std::io::sink(), &data, base, level)?.1;
    println!(
        "write to /dev/null: {:.3} s = {:.0} MB/s",
        sink_secs,
        data.len() as f64 / sink_secs / 1e6
    );
    let cpu_before = cpu_seconds();
    let (stats, secs) = write_snapshot(std::fs::File::create(&path)?, &data, base, level)?;
    if let (Some(a), Some(b)) = (cpu_before, cpu_seconds()) {
        // On a loaded machine wall time lies; CPU time per byte does not.
        println!(
            "write: {:.2} s of CPU = {:.0} MB/s per core busy",
            b - a,
            data.len() as f64 / (b - a) / 1e6
        );
    }
    println!(
        "write to a file: {} MiB at level {level} in {:.3} s = {:.0} MB/s ({} threads); file {:.1} MiB, ratio {:.2}, zero {:.1} MiB",
        mib,
        secs,
        data.len() as f64 / secs / 1e6,
        rayon::current_num_threads(),
        stats.file_bytes as f64 / (1 << 20) as f64,
        (stats.memory_bytes - stats.zero_bytes) as f64 / stats.compressed_memory_bytes as f64,
        stats.zero_bytes as f64 / (1 << 20) as f64,
    );

    let t = Instant::now();
    let snap = Snapshot::open(&path)?;
    println!(
        "open: {:.3} ms, {} ranges",
        t.elapsed().as_secs_f64() * 1e3,
        snap.memory_ranges().len()
    );

    let t = Instant::now();
    let report = snap.verify()?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "verify: {} chunks in {:.3} s = {:.0} MB/s of memory",
        report.chunks,
        secs,
        data.len() as f64 / secs / 1e6
    );

    // Cold sequential reads: every chunk decompressed once.
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    for off in (0..data.len()).step_by(buf.len()) {
        let n = buf.len().min(data.len() - off);
        snap.read_memory(base + off as u64, &mut buf[..n])?;
        assert_eq!(&buf[..n], &data[off..off + n]);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "cold sequential read: {:.0} MB/s",
        data.len() as f64 / secs / 1e6
    );

    // Random 64-byte reads inside a 32 MiB window that fits the cache.
    let window = (32usize << 20).min(data.len());
    let mut b = [0u8; 64];
    for off in (0..window - 64).step_by(4096) {
        snap.read_memory(base + off as u64, &mut b)?;
    }
    let mut rng = Rng(7);
    let n = 2_000_000;
    let offsets: Vec<u64> = (0..n).map(|_| rng.next() % (window as u64 - 64)).collect();
    let cpu_before = cpu_seconds();
    let t = Instant::now();
    let mut sum = 0u64;
    for &off in &offsets {
        snap.read_memory(base + off, &mut b)?;
        sum = sum.wrapping_add(u64::from(b[0]));
    }
    let ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    if let (Some(a), Some(b)) = (cpu_before, cpu_seconds()) {
        println!(
            "random 64-byte cached reads: {:.0} ns of CPU each",
            (b - a) * 1e9 / n as f64
        );
    }
    println!("random 64-byte cached reads: {ns:.0} ns each (checksum {sum})");

    // The same from two threads at once (shared Mutex'd cache).
    let t = Instant::now();
    std::thread::scope(|s| {
        for half in offsets.chunks(n / 2) {
            let snap = &snap;
            s.spawn(move || {
                let mut b = [0u8; 64];
                for &off in half {
                    let _ = snap.read_memory(base + off, &mut b);
                }
            });
        }
    });
    let ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    println!("random 64-byte cached reads, 2 threads: {ns:.0} ns per read overall");
    Ok(())
}
