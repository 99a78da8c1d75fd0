//! Stack listings: the rows printed for a goroutine's or a thread's stack.

use crate::error::Result;
use crate::runtime::{Goroutine, Runtime};
use crate::session::Session as Target;

/// One row of a stack listing (`bt`, `goroutines -t`, `threads --stacks`,
/// the REPL's `frame`, leak candidates): a
/// [`LogicalFrame`](crate::runtime::LogicalFrame) with the coordinates of
/// its [`PhysFrame`](crate::runtime::PhysFrame) flattened in, or a native frame of a
/// thread (no file, `cfa` and `entry` 0). A printing record, not a third
/// frame type of the model: it is made from the two at the edge.
///
/// Inlined calls share `pc`, `sp` and `cfa` with the physical frame they
/// were inlined into; `inline_depth` tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRow {
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

/// Every row of goroutine `goid`, innermost first, runtime frames included.
pub fn goroutine_rows(target: &Target, goid: u64) -> Result<Vec<StackRow>> {
    let rt = Runtime::new(target)?;
    let g = rt.goroutine(goid)?;
    Ok(rows_of(&g))
}

/// The rows of a listed goroutine, innermost first, runtime frames included.
pub fn rows_of(g: &Goroutine) -> Vec<StackRow> {
    g.logical
        .iter()
        .filter_map(|lf| {
            let pf = g.frames.get(lf.phys)?;
            Some(StackRow {
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
