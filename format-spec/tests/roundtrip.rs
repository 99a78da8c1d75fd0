//! Write a snapshot, read it back, compare with the model.

mod common;

use common::*;
use rdlv_format::*;

#[test]
fn round_trip_metadata_memory_and_file() {
    let model = Model::new(1);
    let (bytes, stats) = sample_snapshot(&model, 8192);
    assert_eq!(stats.file_bytes, bytes.len() as u64);
    let total: u64 = model.regions.values().map(|d| d.len() as u64).sum();
    assert_eq!(stats.memory_bytes, total);
    // Zero pages: 1 in region a, 4 in b, all 9000 bytes of the zero region.
    assert_eq!(stats.zero_bytes, 4096 + 4 * 4096 + 9000);

    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    assert_eq!(
        snap.version(),
        (FORMAT_MAJOR, FORMAT_MINOR),
        "files are written in the newest minor (framed embedded files since 1.2)"
    );
    assert_eq!(snap.file_len(), bytes.len() as u64);
    assert_eq!(snap.metadata(), &sample_metadata());

    let (compressed, data, zero) = snap.memory_sizes();
    assert_eq!(zero, stats.zero_bytes);
    assert_eq!(data + zero, total);
    assert_eq!(compressed, stats.compressed_memory_bytes);

    // Ranges sorted, disjoint, and exactly covering the regions.
    let ranges = snap.memory_ranges();
    for w in ranges.windows(2) {
        assert!(w[0].addr + w[0].len <= w[1].addr, "{:?}", w);
    }
    let covered: u64 = ranges.iter().map(|r| r.len).sum();
    assert_eq!(covered, total);
    for r in ranges {
        let expected = model
            .read(r.addr, r.len as usize)
            .expect("range inside a region");
        let mut got = vec![0xAAu8; r.len as usize];
        snap.read_memory(r.addr, &mut got).expect("read range");
        assert_eq!(got, expected, "range {r:?}");
        if r.kind == RangeKind::Zero {
            assert!(expected.iter().all(|&b| b == 0));
            assert!(r.addr % 4096 == 0 || r.addr == 0x7fff_0000_0123, "{r:?}");
        }
    }
    // The zero page in region a is a Zero range, data around it Data ranges.
    let zero_a = ranges
        .iter()
        .find(|r| r.addr == 0x40_1000)
        .expect("zero page range");
    assert_eq!((zero_a.kind, zero_a.len), (RangeKind::Zero, 4096));

    // Whole regions, including the two adjacent ones read in one call.
    for (&addr, data) in &model.regions {
        let mut got = vec![0u8; data.len()];
        snap.read_memory(addr, &mut got).expect("whole region");
        assert_eq!(&got, data);
    }
    let span = 11 * 4096 + 5000;
    let mut got = vec![0u8; span];
    snap.read_memory(0xc0_0000_0000, &mut got)
        .expect("two adjacent regions");
    assert_eq!(Some(got), model.read(0xc0_0000_0000, span));

    let exe = snap
        .embedded_file(FileRole::Executable)
        .expect("exe")
        .expect("present");
    assert_eq!(exe, model.exe);
    let image = snap
        .embedded_image(FileRole::Executable)
        .expect("exe")
        .expect("present");
    assert_eq!(
        image.all().expect("all"),
        &model.exe[..],
        "decompression on demand gives the same bytes"
    );
    assert_eq!(snap.embedded_file(FileRole::Other).expect("other"), None);
    assert!(snap
        .embedded_image(FileRole::Other)
        .expect("other")
        .is_none());
    let files = snap.embedded_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "/srv/orders");
    assert_eq!(files[0].size, 12_000);

    let report = snap.verify().expect("verify");
    assert_eq!(report.bytes, bytes.len() as u64);
    assert_eq!(
        report.chunks as usize,
        ranges.iter().filter(|r| r.kind == RangeKind::Data).count()
    );
    // header? no: blocks = metadata + chunks + file + index + footer
    assert_eq!(report.blocks, 1 + report.chunks + 1 + 2);
}

#[test]
fn random_reads_match_the_model() {
    let model = Model::new(7);
    let (bytes, _) = sample_snapshot(&model, 8192);
    let f = temp_file(&bytes);
    let snap = Snapshot::open_with_cache(f.path(), 16 * 1024).expect("open");
    let mut rng = Rng(99);
    let starts: Vec<(u64, u64)> = model
        .regions
        .iter()
        .map(|(&a, d)| (a, d.len() as u64))
        .collect();
    let (mut ok, mut unmapped) = (0, 0);
    for _ in 0..20_000 {
        let (base, len) = starts[rng.below(starts.len() as u64) as usize];
        // Start a little before, inside or a little after the region.
        let addr = base.wrapping_sub(64).wrapping_add(rng.below(len + 128));
        let max = if rng.below(4) == 0 { 20_000 } else { 100 };
        let n = 1 + rng.below(max) as usize;
        let mut got = vec![0u8; n];
        match (snap.read_memory(addr, &mut got), model.read(addr, n)) {
            (Ok(()), Some(expected)) => {
                assert_eq!(got, expected, "read {addr:#x}+{n}");
                assert!(snap.is_captured(addr, n as u64));
                ok += 1;
            }
            (Err(FormatError::Unmapped { addr: a, len: l }), None) => {
                assert_eq!((a, l), (addr, n as u64));
                assert!(!snap.is_captured(addr, n as u64));
                unmapped += 1;
            }
            (r, m) => panic!(
                "read {addr:#x}+{n}: reader {:?} vs model {}",
                r,
                m.is_some()
            ),
        }
    }
    assert!(ok > 5000 && unmapped > 1000, "ok {ok} unmapped {unmapped}");
    // Reads from many threads share the cache.
    use std::sync::atomic::{AtomicUsize, Ordering};
    let good = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (snap, model, good, starts) = (&snap, &model, &good, &starts);
            s.spawn(move || {
                let mut rng = Rng(1000 + t);
                for _ in 0..2000 {
                    let (base, len) = starts[rng.below(starts.len() as u64) as usize];
                    let addr = base + rng.below(len);
                    let n = (1 + rng.below(300)).min(base + len - addr) as usize;
                    let mut got = vec![0u8; n];
                    snap.read_memory(addr, &mut got).expect("in-region read");
                    assert_eq!(Some(got), model.read(addr, n));
                    good.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(good.load(Ordering::Relaxed), 8000);
}

#[test]
fn empty_and_edge_reads() {
    let model = Model::new(3);
    let (bytes, _) = sample_snapshot(&model, 4096);
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    snap.read_memory(0, &mut [])
        .expect("empty read always succeeds");
    let mut b = [0u8; 8];
    assert!(matches!(
        snap.read_memory(0, &mut b),
        Err(FormatError::Unmapped { addr: 0, len: 8 })
    ));
    assert!(matches!(
        snap.read_memory(u64::MAX - 3, &mut b),
        Err(FormatError::Unmapped { .. })
    ));
    // Last byte of a region, then one past it.
    let (&a, d) = model.regions.iter().next().expect("region");
    let end = a + d.len() as u64;
    snap.read_memory(end - 1, &mut b[..1]).expect("last byte");
    assert_eq!(b[0], d[d.len() - 1]);
    assert!(snap.read_memory(end - 1, &mut b[..2]).is_err());
}

/// A file larger than a frame is written as frames of EMBEDDED_FRAME_LEN
/// (format 1.2): a read decompresses the frames it covers and no other,
/// the whole stream still decompresses (and verifies) as one file, and an
/// empty file is one empty frame.
#[test]
fn embedded_files_are_frames_read_on_demand() {
    let exe: Vec<u8> = (0..3 * EMBEDDED_FRAME_LEN + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
    w.write_metadata(&Metadata::default()).expect("metadata");
    w.write_file(FileRole::Executable, "/srv/big", &exe)
        .expect("file");
    w.write_file(FileRole::Other, "/srv/empty", &[])
        .expect("empty");
    let (bytes, _) = w.finish().expect("finish");
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    assert_eq!(snap.version(), (FORMAT_MAJOR, 2));
    let image = snap
        .embedded_image(FileRole::Executable)
        .expect("exe")
        .expect("present");
    assert_eq!(image.len(), exe.len());
    assert_eq!(image.frame_count(), 4);
    let mid = 2 * EMBEDDED_FRAME_LEN + 100;
    assert_eq!(image.get(mid..mid + 64), Some(&exe[mid..mid + 64]));
    assert_eq!(image.frames_done(), 1, "one read, one frame");
    let edge = EMBEDDED_FRAME_LEN - 8;
    assert_eq!(image.get(edge..edge + 16), Some(&exe[edge..edge + 16]));
    assert_eq!(image.frames_done(), 3);
    assert_eq!(image.all().expect("all"), &exe[..]);
    assert_eq!(
        snap.embedded_file(FileRole::Executable)
            .expect("stream")
            .as_deref(),
        Some(&exe[..])
    );
    let empty = snap
        .embedded_image(FileRole::Other)
        .expect("empty")
        .expect("present");
    assert!(empty.is_empty());
    assert_eq!(empty.all().expect("all"), &[] as &[u8]);
    snap.verify().expect("verify");
    drop(snap);

    // Damage inside the third frame: reads elsewhere still work, reads of
    // that frame fail on its seek-table CRC, verification fails on the block.
    let name_at = bytes
        .windows(8)
        .position(|w| w == b"/srv/big")
        .expect("name");
    let mut at = name_at + 8;
    for _ in 0..2 {
        at += zstd::zstd_safe::find_frame_compressed_size(&bytes[at..]).expect("frame");
    }
    let mut damaged = bytes.clone();
    damaged[at + 100] ^= 0x40;
    let f = temp_file(&damaged);
    let snap = Snapshot::open(f.path()).expect("open");
    let image = snap
        .embedded_image(FileRole::Executable)
        .expect("exe")
        .expect("present");
    assert_eq!(image.get(10..20), Some(&exe[10..20]));
    let err = image
        .try_get(2 * EMBEDDED_FRAME_LEN..2 * EMBEDDED_FRAME_LEN + 1)
        .expect_err("damaged frame")
        .to_string();
    assert!(err.contains("frame CRC-32 mismatch"), "{err}");
    assert!(snap.verify().is_err());
}

#[test]
fn snapshot_without_memory_or_files() {
    let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
    w.write_metadata(&Metadata::default()).expect("metadata");
    let mut progress = Vec::new();
    w.write_memory(&[], &mut |p| progress.push((p.done, p.total)))
        .expect("no memory");
    assert_eq!(progress, vec![(0, 0)]);
    let (bytes, stats) = w.finish().expect("finish");
    assert_eq!(stats.memory_bytes, 0);
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    assert!(snap.memory_ranges().is_empty());
    assert_eq!(
        snap.embedded_file(FileRole::Executable).expect("none"),
        None
    );
    snap.verify().expect("verify");
}

#[test]
fn writer_refuses_misuse() {
    let no_meta = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
    assert!(matches!(no_meta.finish(), Err(FormatError::Usage(_))));
    let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
    let data = [1u8; 100];
    let r = [MemoryRegion {
        addr: 0x1000,
        data: &data,
    }];
    w.write_memory(&r, &mut |_| {})
        .expect("memory before metadata");
    w.write_metadata(&Metadata::default()).expect("metadata");
    assert!(matches!(
        w.write_metadata(&Metadata::default()),
        Err(FormatError::Usage(_))
    ));
    let overlap = [MemoryRegion {
        addr: 0x1000 + 50,
        data: &data,
    }];
    assert!(matches!(
        w.write_memory(&overlap, &mut |_| {}),
        Err(FormatError::Usage(_))
    ));
    let within = [
        MemoryRegion {
            addr: 0x5000,
            data: &data,
        },
        MemoryRegion {
            addr: 0x5010,
            data: &data,
        },
    ];
    assert!(matches!(
        w.write_memory(&within, &mut |_| {}),
        Err(FormatError::Usage(_))
    ));
    let wrap = [MemoryRegion {
        addr: u64::MAX - 10,
        data: &data,
    }];
    assert!(matches!(
        w.write_memory(&wrap, &mut |_| {}),
        Err(FormatError::Usage(_))
    ));
    // Adjacent is fine.
    let adjacent = [MemoryRegion {
        addr: 0x1000 + 100,
        data: &data,
    }];
    w.write_memory(&adjacent, &mut |_| {}).expect("adjacent");
    let (bytes, _) = w.finish().expect("finish");
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    let mut got = [0u8; 200];
    snap.read_memory(0x1000, &mut got).expect("both");
    assert!(got.iter().all(|&b| b == 1));

    for bad in [0usize, 1000, 4097, 32 << 20] {
        let opts = WriteOptions {
            chunk_size: bad,
            ..WriteOptions::default()
        };
        assert!(
            matches!(
                SnapshotWriter::new(Vec::new(), opts),
                Err(FormatError::Usage(_))
            ),
            "{bad}"
        );
    }
    let opts = WriteOptions {
        level: 99,
        ..WriteOptions::default()
    };
    assert!(matches!(
        SnapshotWriter::new(Vec::new(), opts),
        Err(FormatError::Usage(_))
    ));
}

#[test]
fn io_error_poisons_the_writer() {
    struct FailAfter(usize);
    impl std::io::Write for FailAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let model = Model::new(5);
    let mut w = SnapshotWriter::new(FailAfter(2000), WriteOptions::default()).expect("writer");
    w.write_metadata(&sample_metadata())
        .expect("metadata fits in the buffer");
    let r: Vec<MemoryRegion<'_>> = model
        .regions
        .iter()
        .map(|(a, d)| MemoryRegion { addr: *a, data: d })
        .collect();
    // The 1 MiB buffer absorbs the memory; the failure surfaces at the latest in finish.
    let res = w
        .write_memory(&r, &mut |_| {})
        .and_then(|()| w.write_file(FileRole::Executable, "x", &model.exe));
    match res {
        Err(e) => {
            assert!(matches!(e, FormatError::Io(_)), "{e}");
            assert!(matches!(
                w.write_file(FileRole::Other, "y", b"y"),
                Err(FormatError::Usage(_))
            ));
        }
        Ok(()) => assert!(matches!(w.finish(), Err(FormatError::Io(_)))),
    }
}

#[test]
fn streaming_output_is_byte_identical_to_file_output() {
    // The same calls produce the same bytes whether the sink is a Vec or a file:
    // nothing depends on seeking.
    let model = Model::new(11);
    let (a, _) = sample_snapshot(&model, 8192);
    let (b, _) = sample_snapshot(&model, 8192);
    assert_eq!(a, b, "output is deterministic");
    let file = tempfile::tempfile().expect("tempfile");
    let opts = WriteOptions {
        level: 3,
        chunk_size: 8192,
        threads: 2,
    };
    let mut w = SnapshotWriter::new(file, opts).expect("writer");
    w.write_metadata(&sample_metadata()).expect("metadata");
    let (_, stats) = w.finish().expect("finish");
    assert!(stats.file_bytes > 0);
}

#[test]
fn read_available_stops_at_the_first_gap() {
    let model = Model::new(13);
    let (bytes, _) = sample_snapshot(&model, 8192);
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    let (&a, d) = model.regions.iter().next().expect("region");
    let mut buf = vec![0xEEu8; 300];
    let n = snap
        .read_available(a + d.len() as u64 - 100, &mut buf)
        .expect("read");
    assert_eq!(n, 100);
    assert_eq!(&buf[..100], &d[d.len() - 100..]);
    assert!(
        buf[100..].iter().all(|&b| b == 0xEE),
        "bytes past the gap untouched"
    );
    assert_eq!(snap.read_available(a - 1, &mut buf).expect("read"), 0);
    // Across the two adjacent regions (separate write calls) without a gap.
    let n = snap
        .read_available(0xc0_0000_0000 + 11 * 4096 - 10, &mut buf)
        .expect("read");
    assert_eq!(n, 300);
    let mut top = [0u8; 16];
    assert_eq!(
        snap.read_available(u64::MAX - 3, &mut top).expect("read"),
        0
    );
}

#[test]
fn metadata_after_memory_with_per_call_stats() {
    let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
    let mut data = vec![3u8; 5 * 4096];
    data[4096..3 * 4096].fill(0);
    let before = w.stats();
    w.write_memory(
        &[MemoryRegion {
            addr: 0x10000,
            data: &data,
        }],
        &mut |_| {},
    )
    .expect("memory");
    let after = w.stats();
    assert_eq!(after.zero_bytes - before.zero_bytes, 2 * 4096);
    assert_eq!(after.memory_bytes - before.memory_bytes, 5 * 4096);
    assert!(after.file_bytes > before.file_bytes);
    let mut meta = sample_metadata();
    meta.capture
        .warnings
        .push(format!("zero bytes: {}", after.zero_bytes));
    w.write_metadata(&meta).expect("metadata last");
    let (bytes, _) = w.finish().expect("finish");
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    assert_eq!(snap.metadata(), &meta);
    let mut got = vec![0u8; data.len()];
    snap.read_memory(0x10000, &mut got).expect("read");
    assert_eq!(got, data);
    snap.verify().expect("verify");
}
