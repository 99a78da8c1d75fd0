//! One analysis session per snapshot builds each part once and only what a
//! command needs (issue 9): DWARF is loaded at most once per session, listing
//! and listing and unwinding goroutines read only the `runtime` compile
//! units.

use rdlv_e2e::{Target, Variant};

/// The `parked` program's packages: `main` and the runtime's.
#[test]
fn dwarf_is_loaded_once_and_each_command_reads_only_its_units() {
    let program = Target::start("parked", "1.26", Variant::Default, &[]);
    let snap = program.capture(&[]);
    let session = rdlv_analyze::Session::open(snap.path(), None).expect("open snapshot");
    assert_eq!(
        session.dwarf_loads(),
        0,
        "opening a snapshot parses no DWARF"
    );

    let rt = session.runtime().expect("runtime model");
    let goroutines = rt.goroutines().expect("goroutines");
    let some = goroutines.first().expect("a goroutine").g.goid;
    rt.goroutine(some).expect("one goroutine unwound");
    assert_eq!(
        session.dwarf_loads(),
        1,
        "the runtime model loads DWARF once"
    );
    let dwarf = session.dwarf().expect("DWARF");
    assert!(dwarf.unit_count() > 10, "parked links many packages");
    let scanned = dwarf.scanned_units();
    assert!(
        !scanned.is_empty() && scanned.iter().all(|u| *u == "runtime"),
        "goroutines and bt read only the runtime's compile units: {scanned:?}"
    );

    // Every entry point shares the session's parts: no second load.
    for _ in 0..3 {
        rdlv_analyze::runtime::Runtime::new(&session).expect("runtime again");
        rdlv_analyze::present::goroutine_rows(&session, some).expect("frames");
        rdlv_analyze::runtime::runtime_summary(&session).expect("summary");
    }
    assert_eq!(session.dwarf_loads(), 1, "DWARF is loaded at most once");

    // Values need every unit's types (generic code keeps shape types in its
    // function's DIE): the first value lookup indexes all units, from the
    // same one load.
    let global = dwarf.global("main.spinCount").expect("main.spinCount");
    assert_ne!(global.addr, 0);
    assert!(dwarf.globals().any(|g| g.name == "main.spinCount"));
    assert_eq!(dwarf.units_scanned(), dwarf.unit_count());
    assert_eq!(session.dwarf_loads(), 1);

    // No process-wide cache: a second session builds its own parts.
    let other = rdlv_analyze::Session::open(snap.path(), None).expect("open again");
    other.runtime().expect("runtime of the second session");
    assert_eq!(other.dwarf_loads(), 1);
    assert!(!std::ptr::eq(&**other.dwarf().expect("DWARF"), &**dwarf));
}
