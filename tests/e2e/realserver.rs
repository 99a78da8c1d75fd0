//! A real server against Delve: the NATS server (v2.15.3 from the module
//! proxy, with JetStream) under publishing load, frozen once for
//! `rdlv-snap` and `gcore`, its package variables and the frames of its
//! goroutines printed by `dlv core` and by the rdlv REPL. Every answer
//! Delve gives from memory must be rdlv's, or differ for one of the reasons
//! `rdlv_e2e::delvecmp` names (each counted and printed): Delve filling a
//! missing piece with zeros, an impossible slice header, its choice among
//! constants of equal value, a quoted package path matched as a suffix,
//! its session-numbered fake addresses and its wording of unreadable
//! variables. Anything else fails. `bench-values` runs the same comparison
//! on Caddy too, and on more of each.

use std::collections::BTreeMap;

use rdlv_e2e::delvecmp::{self, delve_answered, delve_quirk, QUIRK_SUFFIX_PACKAGE};
use rdlv_e2e::realserver::{freeze_under_load, Kind};
use rdlv_e2e::{rdlv_path, rdlv_snap_path, workspace_root};

#[test]
fn nats_server_under_load_prints_as_delve() {
    let dlv = workspace_root().join(".toolchains/bin/dlv");
    assert!(
        dlv.is_file(),
        "Delve is missing at {}: run .ci/install-toolchains",
        dlv.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let frozen = freeze_under_load(Kind::Nats, None, &[], dir.path(), &rdlv_snap_path())
        .expect("NATS server frozen under load");
    assert!(frozen.served > 0, "no publishing connection was served");
    let a = delvecmp::ask_both(&frozen, &rdlv_path(), &dlv, dir.path(), Some(300), 30)
        .expect("dlv core and rdlv answered");
    assert!(
        a.package_variables > 1000,
        "rdlv lists only {} package variables",
        a.package_variables
    );
    let (mut compared, mut equal) = (0, 0);
    let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for k in a.globals.iter().chain(&a.frames) {
        let t = a.theirs.get(k).map_or("", String::as_str);
        let r = a.ours.get(k).map_or("", String::as_str);
        if !delve_answered(t) {
            continue;
        }
        compared += 1;
        if t == r {
            equal += 1;
            continue;
        }
        let global = a.globals.contains(k);
        let why = if global && delvecmp::suffix_shadowed(k, &a.names) {
            Some(QUIRK_SUFFIX_PACKAGE)
        } else {
            delve_quirk(t, r)
        };
        match why {
            Some(why) => reasons.entry(why).or_default().push(k.clone()),
            None => failures.push(format!("{k}:\n  dlv :\n{t}\n  rdlv:\n{r}")),
        }
    }
    eprintln!(
        "NATS: {} load units; {compared} answers Delve gave from memory ({} globals asked, {} \
         frame listings): {equal} identical",
        frozen.served,
        a.globals.len(),
        a.frames.len()
    );
    for (why, keys) in &reasons {
        eprintln!(
            "  {} on purpose ({}): {why}",
            keys.len(),
            keys[..keys.len().min(3)].join(", ")
        );
    }
    assert!(compared > 500, "only {compared} answers compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ from Delve for no known reason:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
