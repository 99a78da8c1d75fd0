//! The Go pclntab: functions, names, files and lines, pcsp, inline tree,
//! funcdata and pcdata, read exactly as the runtime reads them (Go 1.20+
//! layout, magic 0xfffffff1), for normal, PIE, external-link and stripped builds.
//!
//! All addresses taken and returned are *runtime* addresses: the table is
//! built with the load bias applied.

use crate::binary::Binary;
use crate::error::Result;

/// `_func.flag` bits.
pub mod func_flag {
    /// Function is at the top of a call stack (goexit, mstart, rt0_go, sigtramp).
    pub const TOP_FRAME: u8 = 1;
    /// Function writes SP in a way the unwinder cannot follow.
    pub const SPWRITE: u8 = 2;
    /// Function is assembly.
    pub const ASM: u8 = 4;
}

/// Well-known PCDATA table indexes.
pub mod pcdata {
    /// Unsafe point.
    pub const UNSAFE_POINT: u32 = 0;
    /// Stack map index.
    pub const STACK_MAP_INDEX: u32 = 1;
    /// Inline tree index.
    pub const INL_TREE_INDEX: u32 = 2;
    /// Argument liveness index.
    pub const ARG_LIVE_INDEX: u32 = 3;
}

/// Well-known FUNCDATA indexes.
pub mod funcdata {
    /// Inline tree.
    pub const INL_TREE: u32 = 3;
    /// Argument layout for traceback printing.
    pub const ARG_INFO: u32 = 5;
    /// Argument liveness bitmaps.
    pub const ARG_LIVE_INFO: u32 = 6;
}

/// One logical frame at a PC: an inlined call or the physical function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFrame {
    /// Function name as the runtime prints it before `[...]` substitution.
    pub name: String,
    /// Source file.
    pub file: String,
    /// Line.
    pub line: u32,
    /// True for inlined calls, false for the last (physical) entry.
    pub inlined: bool,
}

/// The parsed table.
pub struct Pclntab {
    _private: (),
}

/// A function in the table.
#[derive(Clone, Copy)]
pub struct Func<'a> {
    _tab: &'a Pclntab,
}

impl Pclntab {
    /// Locates and parses the pclntab of `binary`, whose image is loaded at `bias`.
    pub fn new(_binary: &Binary, _bias: u64) -> Result<Pclntab> {
        todo!()
    }
    /// Start of text (runtime address).
    pub fn text_start(&self) -> u64 {
        todo!()
    }
    /// The function containing `pc`.
    pub fn find_func(&self, _pc: u64) -> Option<Func<'_>> {
        todo!()
    }
    /// A function by exact name.
    pub fn func_by_name(&self, _name: &str) -> Option<Func<'_>> {
        todo!()
    }
    /// Number of functions.
    pub fn len(&self) -> usize {
        todo!()
    }
    /// Whether the table has no functions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> Func<'a> {
    /// Entry PC.
    pub fn entry(&self) -> u64 {
        todo!()
    }
    /// Name from funcnametab.
    pub fn name(&self) -> &'a str {
        todo!()
    }
    /// `_func.flag`.
    pub fn flag(&self) -> u8 {
        todo!()
    }
    /// `_func.funcID` raw (version dependent: prefer names).
    pub fn func_id(&self) -> u8 {
        todo!()
    }
    /// `_func.args`.
    pub fn args_size(&self) -> i32 {
        todo!()
    }
    /// `_func.deferreturn`.
    pub fn deferreturn(&self) -> u32 {
        todo!()
    }
    /// `_func.startLine`.
    pub fn start_line(&self) -> i32 {
        todo!()
    }
    /// SP delta at `pc` (frame size below the return address).
    pub fn sp_delta(&self, _pc: u64) -> Option<i32> {
        todo!()
    }
    /// File and line of the *physical* function at `pc`.
    pub fn file_line(&self, _pc: u64) -> Option<(&'a str, u32)> {
        todo!()
    }
    /// PCDATA table `table` at `pc`.
    pub fn pcdata(&self, _table: u32, _pc: u64) -> Option<i32> {
        todo!()
    }
    /// Runtime address of FUNCDATA `index`, if present.
    pub fn funcdata_addr(&self, _index: u32) -> Option<u64> {
        todo!()
    }
    /// Bytes of FUNCDATA `index` (read from the binary), if present; at most `max` bytes.
    pub fn funcdata_bytes(&self, _index: u32, _max: usize) -> Option<&'a [u8]> {
        todo!()
    }
    /// Logical frames at symbolic PC `pc`, innermost inlined call first, physical last.
    pub fn frames_at(&self, _pc: u64) -> Vec<InlineFrame> {
        todo!()
    }
}
