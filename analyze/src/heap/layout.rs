//! Offsets of the runtime structures the heap walk reads (`mspan`, `mheap`,
//! `gcControllerState`, `sudog`, `hchan`, `semaRoot`, `moduledata`,
//! `mcache`, `p`, `heapStatsDelta`), by field name from DWARF when the
//! binary has it, else from the per-version tables in [`super::tables`]
//! (measured from DWARF of real binaries by `gen_heap_tables` below).
//!
//! Invariant: every offset is relative to its struct; widths that changed
//! between versions (`mspan.freeindex`/`nelems`: uintptr in 1.21, uint16
//! from 1.22) are decided by the Go minor version, not guessed from data.

use crate::dwarf::DwarfInfo;

use super::tables;

/// Errors while building the heap layout.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HeapLayoutError {
    /// A field the heap walk cannot work without is missing.
    #[error(
        "heap layout: {ty} has no field {field} (neither in DWARF nor in the Go 1.{minor} table)"
    )]
    Missing {
        /// Go type name.
        ty: &'static str,
        /// Dotted field path.
        field: &'static str,
        /// Go minor version.
        minor: u32,
    },
    /// The size of a struct the heap walk steps over is unknown.
    #[error(
        "heap layout: the size of {ty} is unknown (neither in DWARF nor in the Go 1.{minor} table)"
    )]
    NoSize {
        /// Go type name.
        ty: &'static str,
        /// Go minor version.
        minor: u32,
    },
}

/// One struct: where its fields are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructOffsets {
    /// Size of the struct (0 when unknown).
    pub size: u64,
    fields: Vec<(&'static str, u64)>,
    ty: &'static str,
    minor: u32,
}

impl StructOffsets {
    /// Offset of a required field.
    pub fn req(&self, field: &'static str) -> Result<u64, HeapLayoutError> {
        self.opt(field).ok_or(HeapLayoutError::Missing {
            ty: self.ty,
            field,
            minor: self.minor,
        })
    }
    /// Offset of a field that exists only in some versions.
    pub fn opt(&self, field: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, o)| *o)
    }
    /// Every (field, offset) pair, for the table generator.
    pub fn entries(&self) -> &[(&'static str, u64)] {
        &self.fields
    }
}

/// The fields read per struct: (Go type, dotted paths).
pub const WANTED: &[(&str, &[&str])] = &[
    (
        "runtime.mspan",
        &[
            "startAddr",
            "npages",
            "freeindex",
            "nelems",
            "allocCache",
            "allocBits",
            "gcmarkBits",
            "sweepgen",
            "allocCount",
            "spanclass",
            "state",
            "elemsize",
            "largeType",
            "allocCountBeforeCache",
            "specials",
        ],
    ),
    ("runtime.mheap", &["sweepgen", "allspans", "arenas"]),
    // Go 1.20-1.21's one-bit-per-word pointer bitmap (gone with malloc headers).
    ("runtime.heapArena", &["bitmap", "noMorePtrs"]),
    (
        "runtime.gcControllerState",
        &["heapInUse", "heapLive", "heapMarked"],
    ),
    (
        "runtime.sudog",
        &[
            "g", "next", "prev", "elem", "elem.vu", "c", "c.vu", "isSelect", "parent", "waitlink",
            "waittail", "ticket",
        ],
    ),
    (
        "runtime.hchan",
        &[
            "qcount", "dataqsiz", "buf", "elemsize", "closed", "elemtype", "recvq", "sendq",
        ],
    ),
    ("runtime.semaRoot", &["treap"]),
    ("runtime.moduledata", &["gcdatamask", "gcbssmask"]),
    ("runtime.mcache", &["alloc"]),
    ("runtime.p", &["mcache"]),
    (
        "runtime.heapStatsDelta",
        &[
            "largeAlloc",
            "largeFree",
            "smallAllocCount",
            "smallFreeCount",
        ],
    ),
    ("runtime.mstats", &["heapStats"]),
    ("runtime.g", &["_panic", "_defer", "sched.ctxt"]),
    ("runtime._defer", &["heap", "fn", "link"]),
];

/// All offsets the heap module reads, for one binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapLayout {
    /// Go minor version.
    pub minor: u32,
    /// Whether the offsets came from DWARF.
    pub from_dwarf: bool,
    /// `runtime.mspan`.
    pub mspan: StructOffsets,
    /// `runtime.mheap`.
    pub mheap: StructOffsets,
    /// `runtime.heapArena` (its pointer bitmap: Go 1.21 only).
    pub heap_arena: StructOffsets,
    /// `runtime.gcControllerState`.
    pub gc_controller: StructOffsets,
    /// `runtime.sudog`.
    pub sudog: StructOffsets,
    /// `runtime.hchan`.
    pub hchan: StructOffsets,
    /// `runtime.semaRoot`.
    pub sema_root: StructOffsets,
    /// `runtime.moduledata`.
    pub moduledata: StructOffsets,
    /// `runtime.mcache`.
    pub mcache: StructOffsets,
    /// `runtime.p`.
    pub p: StructOffsets,
    /// `runtime.heapStatsDelta`.
    pub heap_stats_delta: StructOffsets,
    /// `runtime.mstats`.
    pub mstats: StructOffsets,
    /// `runtime.g` (what stack scanning follows from it).
    pub g: StructOffsets,
    /// `runtime._defer`.
    pub defer: StructOffsets,
    /// Size of `runtime.spanInlineMarkBits` (Green Tea GC: 128 bytes; 0 or
    /// absent without it).
    pub inline_mark_bits: u64,
}

impl HeapLayout {
    /// From DWARF when present and complete for `mspan`, else the table for
    /// Go 1.`minor` (`None` when there is neither).
    pub fn new(dwarf: Option<&DwarfInfo>, minor: u32) -> Option<HeapLayout> {
        if let Some(d) = dwarf {
            if d.struct_size("runtime.mspan").is_some() {
                return Some(Self::build(minor, true, &|ty, path| {
                    if path == "size" {
                        d.struct_size(ty)
                    } else {
                        d.field_offset(ty, path)
                    }
                }));
            }
        }
        let t = tables::for_minor(minor)?;
        Some(Self::build(minor, false, &|ty, path| {
            t.iter()
                .find(|(name, _)| *name == ty)
                .and_then(|(_, fields)| fields.iter().find(|(p, _)| *p == path))
                .map(|(_, o)| *o)
        }))
    }

    fn build(
        minor: u32,
        from_dwarf: bool,
        lookup: &dyn Fn(&str, &str) -> Option<u64>,
    ) -> HeapLayout {
        let one = |ty: &'static str| -> StructOffsets {
            let paths = WANTED
                .iter()
                .find(|(t, _)| *t == ty)
                .map(|(_, p)| *p)
                .unwrap_or(&[]);
            StructOffsets {
                size: lookup(ty, "size").unwrap_or(0),
                fields: paths
                    .iter()
                    .filter_map(|p| lookup(ty, p).map(|o| (*p, o)))
                    .collect(),
                ty,
                minor,
            }
        };
        let inline_mark_bits = lookup("runtime.spanInlineMarkBits", "size").unwrap_or(0);
        HeapLayout {
            minor,
            from_dwarf,
            mspan: one("runtime.mspan"),
            mheap: one("runtime.mheap"),
            heap_arena: one("runtime.heapArena"),
            gc_controller: one("runtime.gcControllerState"),
            sudog: one("runtime.sudog"),
            hchan: one("runtime.hchan"),
            sema_root: one("runtime.semaRoot"),
            moduledata: one("runtime.moduledata"),
            mcache: one("runtime.mcache"),
            p: one("runtime.p"),
            heap_stats_delta: one("runtime.heapStatsDelta"),
            mstats: one("runtime.mstats"),
            g: one("runtime.g"),
            defer: one("runtime._defer"),
            inline_mark_bits,
        }
    }

    /// Every struct with its name, for the table generator.
    pub fn all(&self) -> Vec<(&'static str, &StructOffsets)> {
        vec![
            ("runtime.mspan", &self.mspan),
            ("runtime.mheap", &self.mheap),
            ("runtime.heapArena", &self.heap_arena),
            ("runtime.gcControllerState", &self.gc_controller),
            ("runtime.sudog", &self.sudog),
            ("runtime.hchan", &self.hchan),
            ("runtime.semaRoot", &self.sema_root),
            ("runtime.moduledata", &self.moduledata),
            ("runtime.mcache", &self.mcache),
            ("runtime.p", &self.p),
            ("runtime.heapStatsDelta", &self.heap_stats_delta),
            ("runtime.mstats", &self.mstats),
            ("runtime.g", &self.g),
            ("runtime._defer", &self.defer),
        ]
    }

    /// Whether `mspan.freeindex`/`nelems`/`allocCount` are uint16 (1.22+)
    /// rather than uintptr (1.21; allocCount is uint16 in both).
    pub fn span_counts_are_u16(&self) -> bool {
        self.minor >= 22
    }

    /// Offset of the live pointer word of `sudog.c` (1.26+: `c.vu`, the
    /// copy the leak detector never clears).
    pub fn sudog_c(&self) -> Result<u64, HeapLayoutError> {
        match self.sudog.opt("c.vu") {
            Some(o) => Ok(o),
            None => self.sudog.req("c"),
        }
    }

    /// Offset of the live pointer word of `sudog.elem` (1.26+: `elem.vu`).
    pub fn sudog_elem(&self) -> Result<u64, HeapLayoutError> {
        match self.sudog.opt("elem.vu") {
            Some(o) => Ok(o),
            None => self.sudog.req("elem"),
        }
    }

    /// Offsets of the pointer words the leak detector hides in a blocked
    /// goroutine's sudog (`c` and `elem`, both words of each in 1.26+).
    pub fn sudog_hidden_words(&self) -> Vec<u64> {
        let mut v = Vec::new();
        for f in ["c", "elem"] {
            if let Some(o) = self.sudog.opt(f) {
                v.push(o);
            }
            if let Some(o) = self.sudog.opt(&format!("{f}.vu")) {
                v.push(o);
            }
        }
        v
    }

    /// Offsets of a sudog's links to other sudogs and to its goroutine
    /// (`g`, `next`, `prev`, `parent`, `waitlink`, `waittail`): the wait
    /// queues and semaphore treaps the runtime threads through its sudogs.
    /// Reach that follows them goes from one waiter to every other waiter
    /// of the same queue, which is the runtime's bookkeeping, not the
    /// program's.
    pub fn sudog_link_words(&self) -> Vec<u64> {
        ["g", "next", "prev", "parent", "waitlink", "waittail"]
            .into_iter()
            .filter_map(|f| self.sudog.opt(f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::testbin;

    fn minor_of(v: &str) -> u32 {
        v.split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    fn dwarf_layout(v: &str) -> HeapLayout {
        let bin = testbin::build(v, "hello", testbin::HELLO, &[]);
        let elf = std::fs::read(&bin).expect("read binary");
        let dwarf = crate::runtime::testbin::dwarf_of(&elf);
        HeapLayout::new(Some(&dwarf), minor_of(v)).expect("layout")
    }

    /// Prints `tables.rs` content measured from DWARF (run with --ignored --nocapture).
    #[test]
    #[ignore = "generator: prints heap/tables.rs"]
    fn gen_heap_tables() {
        for v in testbin::VERSIONS {
            let l = dwarf_layout(v);
            let m = minor_of(v);
            println!("const HEAP_1_{m}: VersionTable = &[");
            for (name, s) in l.all() {
                print!("    (\"{name}\", &[(\"size\", {})", s.size);
                for (f, o) in s.entries() {
                    print!(", (\"{f}\", {o})");
                }
                println!("]),");
            }
            println!(
                "    (\"runtime.spanInlineMarkBits\", &[(\"size\", {})]),",
                l.inline_mark_bits
            );
            println!("];");
        }
    }

    /// The built-in tables equal what DWARF says, for every supported toolchain.
    #[test]
    fn heap_tables_match_dwarf_for_every_version() {
        for v in testbin::VERSIONS {
            let mut d = dwarf_layout(v);
            let t = HeapLayout::new(None, minor_of(v)).expect("table");
            d.from_dwarf = false;
            assert_eq!(d, t, "Go {v}: heap table differs from DWARF");
        }
    }

    #[test]
    fn mspan_offsets_match_research_measurements_for_1_26() {
        let l = dwarf_layout("1.26");
        assert_eq!(l.mspan.req("startAddr").ok(), Some(24));
        assert_eq!(l.mspan.req("freeindex").ok(), Some(48));
        assert_eq!(l.mspan.req("allocBits").ok(), Some(64));
        assert_eq!(l.mspan.req("spanclass").ok(), Some(98));
        assert_eq!(l.mspan.req("state").ok(), Some(99));
        assert_eq!(l.mspan.req("elemsize").ok(), Some(104));
        assert_eq!(l.mspan.req("largeType").ok(), Some(152));
        assert_eq!(l.inline_mark_bits, 128);
    }
}
