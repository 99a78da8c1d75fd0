//! The Go runtime model: goroutines, Ms, Ps, stacks.
//!
//! Entry point: [`crate::Session::runtime`] (or [`Runtime::new`]). Then
//! [`Runtime::goroutines`] lists goroutines with their stacks (parsed and
//! unwound in parallel) and [`Runtime::goroutine`] gives one, with its
//! physical frames ([`PhysFrame`]) and logical frames ([`LogicalFrame`],
//! inlined calls expanded): the two frame types of the stack. Nothing here formats a listing:
//! [`crate::present::go_traceback`] prints a goroutine exactly as
//! `runtime.Stack` would, [`crate::present::summary_line`] as Delve does.

pub mod cframes;
pub mod format;
pub mod frame;
pub mod goroutine;
pub mod layout;
pub mod model;
pub mod sched;
pub mod tables;
pub mod traceback;
pub mod unwind;

#[cfg(test)]
pub(crate) mod testbin;

pub use frame::{LogicalFrame, PhysFrame};
pub use goroutine::{ThreadRegs, ThreadState, G, M};
pub use model::Runtime;
pub use sched::RuntimeSummary;
pub use traceback::Goroutine;

use crate::error::Result;
use crate::session::Session as Target;

/// Goroutine count and GOMAXPROCS for `info` (no unwinding).
pub fn runtime_summary(target: &Target) -> Result<RuntimeSummary> {
    Runtime::new(target)?.summary()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The modules of `runtime/` import each other without a cycle: a
    /// module's non-test code names siblings only through `super::NAME` or
    /// `crate::runtime::NAME` paths, which are read here from the sources.
    #[test]
    fn runtime_modules_import_each_other_without_a_cycle() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime");
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("src/runtime") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if name != "mod" && path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                // Only what is compiled outside tests.
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                files.insert(name.to_string(), code);
            }
        }
        assert!(files.len() >= 10, "{:?}", files.keys());
        let modules: BTreeSet<String> = files.keys().cloned().collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, code) in &files {
            let deps = edges.entry(name.clone()).or_default();
            for prefix in ["super::", "crate::runtime::"] {
                for (i, _) in code.match_indices(prefix) {
                    let rest = &code[i + prefix.len()..];
                    let word: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if modules.contains(&word) && word != *name {
                        deps.insert(word);
                    }
                }
            }
        }
        // Depth-first search for a back edge, reporting the cycle found.
        fn visit(
            m: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut cycle = path[i..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            if done.contains(m) {
                return None;
            }
            path.push(m.to_string());
            for d in edges.get(m).into_iter().flatten() {
                if let Some(c) = visit(d, edges, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(m.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for m in &modules {
            let cycle = visit(m, &edges, &mut Vec::new(), &mut done);
            assert!(cycle.is_none(), "import cycle in runtime/: {cycle:?}");
        }
        // The leaves the others build on.
        assert!(edges["frame"].is_empty() && edges["tables"].is_empty());
    }
}
