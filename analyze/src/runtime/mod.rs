//! The Go runtime model: goroutines, Ms, Ps, stacks.
//!
//! Entry point: [`crate::Session::runtime`] (or [`Runtime::new`]). Then
//! [`Runtime::goroutines`] lists goroutines with their stacks (parsed and
//! unwound in parallel) and [`goroutine_frames`] gives the frames of one
//! goroutine for variable evaluation. Nothing here formats a listing:
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

/// One logical frame of a goroutine's stack, innermost first, with what a
/// DWARF location evaluator needs.
///
/// Inlined calls share `pc`, `sp` and `cfa` with the physical frame they
/// were inlined into; `inline_depth` tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// PC of the physical frame: a return address (or, for the innermost
    /// frame of a running thread or a frame interrupted by a signal, the
    /// trapping PC).
    pub pc: u64,
    /// The PC used for symbolization and for DWARF lookups (`pc-1` after a call).
    pub sym_pc: u64,
    /// SP of the physical frame at `pc`.
    pub sp: u64,
    /// Canonical frame address: the caller's SP, i.e. the runtime's `fp`
    /// (`sp + pcsp(pc) + 8` on amd64). DWARF `DW_OP_call_frame_cfa` is this.
    pub cfa: u64,
    /// Function name as in the binary.
    pub function: String,
    /// Entry PC of the physical function.
    pub entry: u64,
    /// Source file.
    pub file: String,
    /// Line.
    pub line: u32,
    /// Whether this logical frame is an inlined call.
    pub inlined: bool,
    /// 0 for the physical function, 1.. for inlined calls (1 = inlined
    /// directly into the physical function).
    pub inline_depth: u32,
    /// Index of the physical frame (0 = innermost).
    pub physical_index: usize,
}

/// Every logical frame of goroutine `goid`, innermost first, runtime
/// frames included.
pub fn goroutine_frames(target: &Target, goid: u64) -> Result<Vec<Frame>> {
    let rt = Runtime::new(target)?;
    let g = rt.goroutine(goid)?;
    Ok(frames_of(&g))
}

/// Goroutine count and GOMAXPROCS for `info` (no unwinding).
pub fn runtime_summary(target: &Target) -> Result<RuntimeSummary> {
    Runtime::new(target)?.summary()
}

/// The [`Frame`]s of a listed goroutine.
pub fn frames_of(g: &Goroutine) -> Vec<Frame> {
    g.logical
        .iter()
        .filter_map(|lf| {
            let pf = g.frames.get(lf.phys)?;
            Some(Frame {
                pc: pf.pc,
                sym_pc: pf.sym_pc,
                sp: pf.sp,
                cfa: pf.fp,
                function: lf.name.to_string(),
                entry: pf.info.entry,
                file: lf.file.to_string(),
                line: lf.line,
                inlined: lf.inlined,
                inline_depth: lf.inline_depth,
                physical_index: lf.phys,
            })
        })
        .collect()
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
