//! Fuzzes the snapshot reader: any input must give errors, never a panic, a
//! hang or an unbounded allocation. Run with
//! `cargo +nightly fuzz run reader` from `format-spec/` (seed corpus: any
//! small snapshot, e.g. one written by the crate's tests).
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
