//! Writing from inside a worker of a one-thread global rayon pool (a 1-CPU
//! container) must not deadlock. Its own test binary: the global pool can be
//! configured only once per process.

use std::sync::mpsc;
use std::time::Duration;

use rdlv_format::*;

#[test]
fn write_memory_inside_a_single_worker_global_pool() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("first and only global pool configuration in this binary");
    let (tx, rx) = mpsc::channel();
    rayon::spawn(move || {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 249) as u8 | 1).collect();
        let opts = WriteOptions {
            chunk_size: 4096,
            ..WriteOptions::default()
        };
        let result = SnapshotWriter::new(Vec::new(), opts).and_then(|mut w| {
            w.write_metadata(&Metadata::default())?;
            w.write_memory(
                &[MemoryRegion {
                    addr: 0x1000,
                    data: &data,
                }],
                &mut |_| {},
            )?;
            Ok(w.finish()?.0)
        });
        let _ = tx.send((result, data));
    });
    let (result, data) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("write_memory finished instead of deadlocking");
    let bytes = result.expect("write");
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    std::io::Write::write_all(&mut f, &bytes).expect("write");
    let snap = Snapshot::open(f.path()).expect("open");
    let mut got = vec![0u8; data.len()];
    snap.read_memory(0x1000, &mut got).expect("read");
    assert_eq!(got, data);
}
