//! Damaged snapshots: every failure must be an error, never a panic, a hang or
//! a huge allocation.

mod common;

use common::*;
use rdlv_format::*;

/// Block boundaries of a valid snapshot, found by walking the block headers
/// the way SPEC.md lays them out (24-byte headers, u64 payload length at +8).
fn block_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = vec![0, 32];
    let mut at = 32usize;
    while at + 24 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes")) as usize;
        at += 24 + len;
        out.push(at);
    }
    assert_eq!(at, bytes.len(), "blocks tile the file");
    out
}

fn write_byte(f: &tempfile::NamedTempFile, at: usize, value: u8) {
    std::os::unix::fs::FileExt::write_all_at(f.as_file(), &[value], at as u64).expect("write byte");
}

fn small_snapshot() -> (Model, Vec<u8>) {
    let model = Model::new(21);
    let (bytes, _) = sample_snapshot(&model, 8192);
    (model, bytes)
}

/// Opens, and if that works, reads everything; returns the first error.
fn open_and_read_all(bytes: &[u8]) -> Result<()> {
    let f = temp_file(bytes);
    let snap = Snapshot::open(f.path())?;
    for r in snap.memory_ranges() {
        let mut buf = vec![0u8; r.len as usize];
        snap.read_memory(r.addr, &mut buf)?;
    }
    let plain = snap.embedded_file(FileRole::Executable);
    let image = snap
        .embedded_image(FileRole::Executable)
        .and_then(|i| i.map(|i| i.all().map(<[u8]>::to_vec)).transpose());
    // Both decompression paths judge damage alike and agree on the bytes.
    assert_eq!(
        plain.as_ref().ok(),
        image.as_ref().ok(),
        "{:?} vs {:?}",
        plain.as_ref().map(|_| ()),
        image.as_ref().map(|_| ())
    );
    plain?;
    Ok(())
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let (_, bytes) = small_snapshot();
    let boundaries = block_offsets(&bytes);
    assert!(boundaries.len() > 8, "several blocks: {boundaries:?}");
    let f = temp_file(&bytes);
    assert!(Snapshot::open(f.path()).is_ok());
    // Every prefix, longest first, by shrinking one file in place: covers every
    // block boundary and every offset in between.
    for cut in (0..bytes.len()).rev() {
        f.as_file().set_len(cut as u64).expect("truncate");
        let err = match Snapshot::open(f.path()) {
            Ok(_) => panic!("truncated at {cut} of {} opened", bytes.len()),
            Err(e) => e,
        };
        if boundaries.contains(&cut) {
            let msg = err.to_string();
            assert!(
                msg.contains("truncated")
                    || msg.contains("not an rdlv snapshot")
                    || msg.contains("not finished"),
                "cut {cut}: {msg}"
            );
        }
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let (_, bytes) = small_snapshot();
    let boundaries = block_offsets(&bytes);
    let f = temp_file(&bytes);
    let path = f.path();
    let mut caught_at_open = 0;
    let mut caught_later = 0;
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        // Vary the flipped bit so every bit position is exercised.
        damaged[i] ^= 1 << (i % 8);
        write_byte(&f, i, damaged[i]);
        match Snapshot::open(path) {
            Err(_) => caught_at_open += 1,
            Ok(snap) => {
                // Only payload bytes of chunks and files may get past open;
                // both verify and a plain read must then fail.
                assert!(snap.verify().is_err(), "flip at {i} passed verify");
                assert!(
                    open_and_read_all(&damaged).is_err(),
                    "flip at {i} passed reads"
                );
                caught_later += 1;
            }
        }
        write_byte(&f, i, bytes[i]);
    }
    assert!(
        caught_later > 0 && caught_at_open > 0,
        "{caught_at_open} {caught_later}"
    );
    // Flips in the header, first block, index and footer are all caught at open.
    let index_start = boundaries[boundaries.len() - 3];
    for i in (0..40).chain(index_start..bytes.len()) {
        write_byte(&f, i, bytes[i] ^ 0x80);
        assert!(
            Snapshot::open(path).is_err(),
            "flip at {i} (index/footer/header) opened"
        );
        write_byte(&f, i, bytes[i]);
    }
}

#[test]
fn errors_name_section_offset_and_check() {
    let (_, bytes) = small_snapshot();
    let boundaries = block_offsets(&bytes);
    // Damage the last byte of the second memory-carrying block's payload (a chunk).
    let chunk_end = boundaries[3] - 1;
    let mut damaged = bytes.clone();
    damaged[chunk_end] ^= 0xff;
    let f = temp_file(&damaged);
    let snap = Snapshot::open(f.path()).expect("chunk damage passes open");
    let msg = snap.verify().expect_err("verify").to_string();
    assert!(
        msg.contains("corrupt snapshot") && msg.contains("CRC-32"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("offset {}", boundaries[2] + 24)),
        "{msg}"
    );

    let mut damaged = bytes.clone();
    damaged[0] = b'X';
    let f = temp_file(&damaged);
    let msg = Snapshot::open(f.path())
        .err()
        .expect("bad magic")
        .to_string();
    assert!(msg.contains("bad magic"), "{msg}");
}

#[test]
fn unknown_major_version_is_rejected_clearly() {
    let (_, mut bytes) = small_snapshot();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    bytes[10..12].copy_from_slice(&5u16.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    let f = temp_file(&bytes);
    let err = Snapshot::open(f.path()).err().expect("v2 refused");
    assert!(
        matches!(
            err,
            FormatError::UnsupportedVersion {
                major: 2,
                minor: 5,
                supported: 1
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("unsupported snapshot format version 2.5") && msg.contains("upgrade rdlv"),
        "{msg}"
    );
    // Even with a stale header CRC the version message wins.
    bytes[28] ^= 1;
    let f = temp_file(&bytes);
    assert!(matches!(
        Snapshot::open(f.path()),
        Err(FormatError::UnsupportedVersion { .. })
    ));
}

#[test]
fn random_mutations_never_panic() {
    let (_, bytes) = small_snapshot();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("fuzz.snap");
    let mut rng = Rng(0x5eed);
    let mut opened = 0;
    let iterations = 3000;
    for _ in 0..iterations {
        let mut m = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(6) {
                0 => {
                    let i = rng.below(m.len() as u64) as usize;
                    m[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(m.len() as u64) as usize;
                    m[i] = rng.next() as u8;
                }
                2 => {
                    // Overwrite a u64 with an interesting value (lengths, offsets, counts).
                    let i = rng.below(m.len().saturating_sub(8) as u64) as usize;
                    let v = [
                        0,
                        1,
                        u64::MAX,
                        u64::MAX / 24,
                        m.len() as u64,
                        1 << 40,
                        rng.next(),
                    ][rng.below(7) as usize];
                    m[i..i + 8].copy_from_slice(&v.to_le_bytes());
                }
                3 => {
                    let cut = rng.below(m.len() as u64) as usize;
                    m.truncate(cut.max(1));
                }
                4 => {
                    let i = rng.below(m.len() as u64) as usize;
                    let n = rng.below(64) as usize;
                    let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    m.splice(i..i, ins);
                }
                _ => {
                    // Damage the tail, where the footer and index live, then fix
                    // nothing: CRCs must catch it.
                    let i = m.len().saturating_sub(1 + rng.below(200) as usize);
                    m[i] = m[i].wrapping_add(1 + rng.below(255) as u8);
                }
            }
        }
        std::fs::write(&path, &m).expect("write");
        if rdlv_format::fuzzing::exercise_reader(&path) {
            opened += 1;
        }
    }
    // Most mutations must be caught at open; the ones that open hit chunk or file payloads.
    assert!(
        opened < iterations / 2,
        "{opened} of {iterations} damaged files opened"
    );
    // The unmodified file goes through the same body.
    std::fs::write(&path, &bytes).expect("write");
    assert!(rdlv_format::fuzzing::exercise_reader(&path));
}

/// A small 1.1 file: two kept runs with a redacted hole between them and a
/// redacted tail.
fn redacted_snapshot() -> Vec<u8> {
    let mut w = SnapshotWriter::new_redacted(Vec::new(), WriteOptions::default()).expect("writer");
    w.write_metadata(&sample_metadata()).expect("metadata");
    let a: Vec<u8> = (0..100u8).collect();
    w.write_memory(
        &[
            MemoryRegion {
                addr: 0x10000,
                data: &a,
            },
            MemoryRegion {
                addr: 0x10100,
                data: &a,
            },
        ],
        &mut |_| {},
    )
    .expect("memory");
    w.write_redacted(&[(0x10064, 0x9c), (0x10164, 0x1000)])
        .expect("redacted");
    w.finish().expect("finish").0
}

#[test]
fn every_byte_flip_of_a_redacted_file_is_an_error() {
    let bytes = redacted_snapshot();
    let f = temp_file(&bytes);
    let snap = Snapshot::open(f.path()).expect("open");
    assert_eq!(snap.version(), (FORMAT_MAJOR, FORMAT_MINOR));
    assert!(snap.has_redactions());
    snap.verify().expect("verify");
    drop(snap);
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5a;
        let g = temp_file(&damaged);
        // No panic on any entry point, and a full check notices.
        let _ = fuzzing::exercise_reader(g.path());
        let checked = Snapshot::open(g.path()).and_then(|s| s.verify().map(drop));
        assert!(
            checked.is_err(),
            "flip at {at} of {} went unnoticed",
            bytes.len()
        );
    }
}
