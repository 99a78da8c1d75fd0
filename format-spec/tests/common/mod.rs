//! A small but complete snapshot used by the integration tests, and the
//! reference model of its memory.

#![allow(dead_code)]

use std::collections::BTreeMap;

use rdlv_format::*;

/// Deterministic xorshift64* generator (no extra dependencies).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Bytes that look a little like a heap: small integers, pointers, text.
    pub fn heapish(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            let word: u64 = match self.below(4) {
                0 => self.below(256),
                1 => 0x00c0_0000_0000 + self.below(1 << 20) * 8,
                2 => u64::from_le_bytes(*b"goroutin") ^ self.below(8),
                _ => self.next(),
            };
            v.extend_from_slice(&word.to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

pub fn sample_metadata() -> Metadata {
    Metadata {
        process: ProcessInfo {
            pid: 4242,
            exe_path: "/srv/orders".into(),
            cmdline: vec!["/srv/orders".into(), "-port=8080".into()],
            go_version: Some("go1.26.8".into()),
            gnu_build_id: Some("0123abcd".into()),
            ..Default::default()
        },
        capture: CaptureInfo {
            tool_version: "rdlv-snap test".into(),
            hostname: "box".into(),
            kernel_release: "6.8.0".into(),
            arch: "x86_64".into(),
            page_size: 4096,
            clock_monotonic_ns: 123_456_789,
            clock_realtime_ns: 1_700_000_000_000_000_000,
            pause_us: 1500,
            method: "plain".into(),
            ..Default::default()
        },
        threads: vec![ThreadInfo {
            tid: 4242,
            name: "orders".into(),
            state: "S".into(),
            regs: X86Regs {
                rip: 0x401000,
                rsp: 0xc000123000,
                fs_base: 0x7f00_0000_0000,
                ..Default::default()
            },
            fpregs_hex: "00ff".into(),
        }],
        mappings: vec![Mapping {
            start: 0x400000,
            end: 0x404000,
            perms: "r-xp".into(),
            offset: 0,
            dev: "08:01".into(),
            inode: 77,
            path: "/srv/orders".into(),
            vm_flags: vec!["rd".into(), "ex".into()],
            capture: MappingCapture::Captured {
                present_bytes: 0x4000,
                zero_bytes: 0x1000,
            },
        }],
        auxv: vec![(6, 4096), (25, 0x7ffd_0000_1000)],
        redaction: None,
    }
}

/// The memory of the sample: address -> bytes, regions disjoint.
pub struct Model {
    pub regions: BTreeMap<u64, Vec<u8>>,
    pub exe: Vec<u8>,
}

impl Model {
    pub fn new(seed: u64) -> Model {
        let mut rng = Rng(seed);
        let mut regions = BTreeMap::new();
        // Text-like region with an all-zero page in the middle and an unaligned size.
        let mut a = rng.heapish(3 * 4096 + 100);
        a[4096..8192].fill(0);
        regions.insert(0x40_0000, a);
        // Heap-like region over several 8 KiB chunks: zero first page, zero pages 3-4,
        // a zero page at the very end.
        let mut b = rng.heapish(11 * 4096);
        b[0..4096].fill(0);
        b[3 * 4096..5 * 4096].fill(0);
        b[10 * 4096..].fill(0);
        regions.insert(0xc0_0000_0000, b);
        // Immediately adjacent to the previous one (a separate write call), unaligned end.
        let c = rng.heapish(5000);
        regions.insert(0xc0_0000_0000 + 11 * 4096, c);
        // Unaligned start, all zero: partial zero pages at both ends.
        regions.insert(0x7fff_0000_0123, vec![0u8; 9000]);
        // Unaligned start, non-zero, crossing page boundaries.
        regions.insert(0x7ffd_0000_0ff0, rng.heapish(70));
        let exe = rng.heapish(12_000);
        Model { regions, exe }
    }

    /// Expected bytes at `addr`, or `None` if any byte is outside every region.
    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let mut cur = addr;
        let end = addr.checked_add(len as u64)?;
        while cur < end {
            let (&start, data) = self.regions.range(..=cur).next_back()?;
            let off = (cur - start) as usize;
            if off >= data.len() {
                return None;
            }
            let n = (data.len() - off).min((end - cur) as usize);
            out.extend_from_slice(&data[off..off + n]);
            cur += n as u64;
        }
        Some(out)
    }
}

/// Writes the sample snapshot into memory, the way `-o -` streams it.
pub fn sample_snapshot(model: &Model, chunk_size: usize) -> (Vec<u8>, WriteStats) {
    let opts = WriteOptions {
        level: 3,
        chunk_size,
        threads: 2,
    };
    let mut w = SnapshotWriter::new(Vec::new(), opts).expect("writer");
    w.write_metadata(&sample_metadata()).expect("metadata");
    let all: Vec<(u64, &Vec<u8>)> = model.regions.iter().map(|(a, d)| (*a, d)).collect();
    // Two calls, given out of order, to exercise sorting across calls.
    let (first, second) = all.split_at(2);
    let mut calls = 0;
    let regions: Vec<MemoryRegion<'_>> = second
        .iter()
        .map(|(a, d)| MemoryRegion { addr: *a, data: d })
        .collect();
    w.write_memory(&regions, &mut |_| calls += 1)
        .expect("memory 1");
    w.write_file(FileRole::Executable, "/srv/orders", &model.exe)
        .expect("file");
    let regions: Vec<MemoryRegion<'_>> = first
        .iter()
        .map(|(a, d)| MemoryRegion { addr: *a, data: d })
        .collect();
    w.write_memory(&regions, &mut |_| calls += 1)
        .expect("memory 2");
    assert!(calls > 0);
    let (bytes, stats) = w.finish().expect("finish");
    (bytes, stats)
}

/// Writes `bytes` to a fresh temporary file and returns it (kept alive by the caller).
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    std::io::Write::write_all(&mut f, bytes).expect("write temp");
    f
}
