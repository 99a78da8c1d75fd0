//! The two frame types of a stack: [`PhysFrame`], one activation record
//! as the unwinder found it (pc, sp, the caller's sp, the function), and
//! [`LogicalFrame`], one source-level call (a physical function or a call
//! inlined into it) as the pclntab's inline tree expands it. Every other
//! module of `runtime/` builds on these; this one depends on none of them.

use std::sync::Arc;

/// What the unwinder needs to know about one PC, computed once.
#[derive(Debug, Clone)]
pub struct PcInfo {
    /// Entry of the function containing the PC.
    pub entry: u64,
    /// Function name (physical).
    pub name: Arc<str>,
    /// `_func.flag`.
    pub flag: u8,
    /// `_func.funcID`.
    pub func_id: u8,
    /// SP delta at the PC (`None` if the pcsp table has no entry).
    pub sp_delta: Option<i32>,
}

/// One physical frame.
#[derive(Debug, Clone)]
pub struct PhysFrame {
    /// PC in the function: a return address, or the trapping PC.
    pub pc: u64,
    /// SP at `pc`.
    pub sp: u64,
    /// Frame pointer in the runtime's sense: the caller's SP (the CFA).
    pub fp: u64,
    /// The PC used for symbolization (`pc-1` after a normal call).
    pub sym_pc: u64,
    /// Function facts.
    pub info: Arc<PcInfo>,
}

impl PhysFrame {
    /// `argp`: where the argument spill area starts (x86: `fp`).
    pub fn argp(&self) -> u64 {
        self.fp
    }
}

/// One logical frame (an inlined call or a physical function).
#[derive(Debug, Clone)]
pub struct LogicalFrame {
    /// Function name as in the binary (generic shapes not yet replaced).
    pub name: Arc<str>,
    /// Source file.
    pub file: Arc<str>,
    /// Line.
    pub line: u32,
    /// Inlined into the physical frame `phys`.
    pub inlined: bool,
    /// Index of the physical frame in its goroutine's `frames`.
    pub phys: usize,
    /// `_func.funcID` of the physical function; 0 for inlined frames.
    pub func_id: u8,
    /// Depth within its physical frame: 0 for the physical function,
    /// 1.. for inlined calls counted from the physical one.
    pub inline_depth: u32,
}
