//! Fuzzes the snapshot reader: any input must give errors, never a panic, a
//! hang or an unbounded allocation. From `format-spec/`:
//!
//! ```text
//! cargo run -p rdlv-format --example sample_snapshot -- fuzz/corpus/reader/seed.snap
//! cargo +nightly fuzz run reader -- -max_len=8192 -max_total_time=600
//! ```
//!
//! Fuzzing builds (`--cfg fuzzing`) accept any CRC so mutations reach the
//! structural checks behind the checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if std::io::Write::write_all(&mut file, data).is_err() {
        return;
    }
    rdlv_format::fuzzing::exercise_reader(file.path());
});
