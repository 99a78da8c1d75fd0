//! Writes a small valid snapshot (a few KiB) to the given path: a seed for the
//! fuzzer and a fixture for poking at the format with `xxd`.
//!
//! `cargo run -p rdlv-format --example sample_snapshot -- OUT.snap`

use rdlv_format::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: sample_snapshot OUT.snap")?;
    let meta = Metadata {
        process: ProcessInfo {
            pid: 1,
            exe_path: "/bin/x".into(),
            ..Default::default()
        },
        threads: vec![ThreadInfo {
            tid: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut text = vec![0x90u8; 6000];
    text[4096..].fill(0); // A zero tail page (partial) becomes a Zero range.
    let heap: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    let opts = WriteOptions {
        chunk_size: 4096,
        ..WriteOptions::default()
    };
    let mut w = SnapshotWriter::new(std::fs::File::create(&out)?, opts)?;
    w.write_metadata(&meta)?;
    w.write_memory(
        &[
            MemoryRegion {
                addr: 0x400000,
                data: &text,
            },
            MemoryRegion {
                addr: 0xc000000000,
                data: &heap,
            },
        ],
        &mut |_| {},
    )?;
    w.write_file(
        FileRole::Executable,
        "/bin/x",
        b"\x7fELF fake executable bytes",
    )?;
    let (_, stats) = w.finish()?;
    println!("{out}: {} bytes", stats.file_bytes);
    Ok(())
}
