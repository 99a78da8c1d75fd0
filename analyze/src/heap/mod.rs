//! The heap as the Go runtime sees it, read offline from a snapshot:
//! [`spans`] walks `mheap_.allspans` and the allocation bits, [`types`]
//! decodes the runtime type descriptors found in malloc headers and
//! `largeType`, [`census`] counts objects by type beside the runtime's own
//! accounting, [`graph`] marks what is reachable from a root set with the
//! heap's pointer bits, [`leaks`] runs the Go 1.26 goroutine-leak fixed
//! point on that graph for every supported version, [`retain`] records
//! that graph to compute dominators and what each root retains, and
//! [`waits`] builds the wait-for graph of blocked goroutines.
//!
//! Everything here reads untrusted memory: counts are bounded by named
//! constants in each module, and a damaged span is skipped and reported,
//! not trusted.

pub mod census;
pub mod graph;
pub mod layout;
pub mod leaks;
pub mod retain;
pub mod spans;
pub mod stacks;
pub mod tables;
pub mod types;
pub mod waits;

use crate::error::{Result, Unsupported};

/// What [`Unsupported::Stripped`] says was tried for a runtime global of
/// the heap walk that a stripped binary does not name.
pub(crate) const HEAP_STRIPPED: &str = "the heap walk has no other way to find it";
use crate::memory::Memory;
use crate::runtime::Runtime;

use layout::HeapLayout;
use spans::Heap;
use types::Types;

/// One snapshot's heap: the runtime model, the heap layout and the spans.
pub struct HeapModel<'r, 't> {
    /// The runtime model.
    pub rt: &'r Runtime<'t>,
    /// Offsets of the heap structures.
    pub layout: HeapLayout,
    /// The in-use spans.
    pub heap: Heap,
    /// `[types, etypes)` of the module (runtime addresses).
    pub types_range: (u64, u64),
}

impl<'r, 't> HeapModel<'r, 't> {
    /// Reads the spans of `rt`'s snapshot.
    pub fn new(rt: &'r Runtime<'t>) -> Result<HeapModel<'r, 't>> {
        let layout = HeapLayout::new(rt.dwarf(), rt.minor).ok_or(Unsupported::GoVersion {
            what: "heap layout",
            minor: rt.minor,
        })?;
        let md = rt.tab().moduledata().ok_or(Unsupported::Stripped {
            symbol: "runtime.firstmoduledata",
            tried: "the pclntab's module data was not found either, so type descriptors cannot be located",
        })?;
        let heap = Heap::read(rt, &layout)?;
        Ok(HeapModel {
            rt,
            layout,
            heap,
            types_range: (md.types, md.etypes),
        })
    }

    /// Target memory.
    pub fn mem(&self) -> &'t dyn Memory {
        self.rt.mem()
    }

    /// A type reader for this module.
    pub fn types(&self) -> Types<'t> {
        Types::new(self.mem(), self.types_range.0, self.types_range.1)
    }

    /// The value code's view of the target, for naming frame variables;
    /// `None` without DWARF (a stripped binary).
    pub fn program(&self) -> Option<crate::value::Program<'t>> {
        let bias = self.rt.target().bias();
        self.rt
            .dwarf()
            .map(|d| crate::value::Program::new(d, self.mem(), bias))
    }
}
