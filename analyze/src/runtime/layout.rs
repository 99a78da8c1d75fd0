//! Offsets of the runtime structures rdlv reads (g, m, p, schedt), per Go
//! version. With DWARF the offsets are looked up by field name; without it
//! (`-ldflags=-s -w`) the per-minor-version tables below are used. The
//! tables were measured from the DWARF of real binaries, and a unit test
//! re-checks them against DWARF for every supported toolchain.

use super::tables::{self, FieldTable};
use crate::dwarf::DwarfInfo;

/// Errors while building a layout.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A field rdlv cannot work without is absent from DWARF.
    #[error("runtime layout: DWARF type {ty} has no field {field}")]
    MissingField {
        /// Go type name.
        ty: &'static str,
        /// Dotted field path.
        field: &'static str,
    },
    /// The type is absent from DWARF.
    #[error("runtime layout: DWARF has no type {0}")]
    MissingType(&'static str),
    /// No table for this Go version and no DWARF.
    #[error("no runtime layout table for Go 1.{0} and the binary has no DWARF")]
    UnsupportedVersion(u32),
}

/// Where a layout came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutSource {
    /// Read from the binary's DWARF by field name.
    Dwarf,
    /// The built-in table for this Go minor version.
    Table(u32),
}

macro_rules! struct_layout {
    (
        $(#[$doc:meta])*
        pub struct $name:ident = $ty:literal {
            required { $( $(#[$rdoc:meta])* $rf:ident = $rp:literal, )* }
            optional { $( $(#[$odoc:meta])* $of:ident = $op:literal, )* }
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Size of the struct in bytes.
            pub size: u64,
            $( $(#[$rdoc])* pub $rf: u64, )*
            $( $(#[$odoc])* pub $of: Option<u64>, )*
        }

        impl $name {
            /// The Go type name in DWARF.
            pub const TYPE_NAME: &'static str = $ty;
            /// Dotted field paths that must exist.
            pub const REQUIRED: &'static [&'static str] = &[$($rp),*];
            /// Dotted field paths that exist only in some versions.
            pub const OPTIONAL: &'static [&'static str] = &[$($op),*];

            /// Builds the layout from a lookup of dotted field paths.
            pub fn resolve(
                size: u64,
                lookup: &dyn Fn(&str) -> Option<u64>,
            ) -> Result<Self, LayoutError> {
                Ok(Self {
                    size,
                    $( $rf: lookup($rp).ok_or(LayoutError::MissingField { ty: $ty, field: $rp })?, )*
                    $( $of: lookup($op), )*
                })
            }

            /// Every field as (path, offset), `None` for absent optional ones.
            pub fn entries(&self) -> Vec<(&'static str, Option<u64>)> {
                let mut v = vec![("size", Some(self.size))];
                $( v.push(($rp, Some(self.$rf))); )*
                $( v.push(($op, self.$of)); )*
                v
            }
        }
    };
}

struct_layout! {
    /// `runtime.g`.
    pub struct GLayout = "runtime.g" {
        required {
            /// stack.lo
            stack_lo = "stack.lo",
            /// stack.hi
            stack_hi = "stack.hi",
            /// m (*m running this g)
            m = "m",
            /// sched.sp
            sched_sp = "sched.sp",
            /// sched.pc
            sched_pc = "sched.pc",
            /// sched.g
            sched_g = "sched.g",
            /// sched.bp
            sched_bp = "sched.bp",
            /// syscallsp
            syscallsp = "syscallsp",
            /// syscallpc
            syscallpc = "syscallpc",
            /// stktopsp
            stktopsp = "stktopsp",
            /// atomicstatus (uint32)
            atomicstatus = "atomicstatus",
            /// goid (uint64)
            goid = "goid",
            /// waitsince (int64 nanotime)
            waitsince = "waitsince",
            /// waitreason (uint8)
            waitreason = "waitreason",
            /// lockedm (muintptr)
            lockedm = "lockedm",
            /// parentGoid (uint64)
            parent_goid = "parentGoid",
            /// gopc (pc of the go statement)
            gopc = "gopc",
            /// ancestors (*[]ancestorInfo)
            ancestors = "ancestors",
            /// startpc
            startpc = "startpc",
            /// waiting (*sudog)
            waiting = "waiting",
            /// labels (unsafe.Pointer)
            labels = "labels",
        }
        optional {
            /// syscallbp (1.23+)
            syscallbp = "syscallbp",
            /// runningCleanups (1.25+, atomic.Bool)
            running_cleanups = "runningCleanups",
            /// bubble (*synctestBubble, 1.25+)
            bubble = "bubble",
            /// syncGroup (*synctestGroup, 1.24)
            sync_group = "syncGroup",
        }
    }
}

struct_layout! {
    /// `runtime.m`.
    pub struct MLayout = "runtime.m" {
        required {
            /// g0
            g0 = "g0",
            /// procid (Linux TID)
            procid = "procid",
            /// gsignal
            gsignal = "gsignal",
            /// tls array (TLS g slot lives at `tls[0]`; `fs_base = &tls[1]`)
            tls = "tls",
            /// curg
            curg = "curg",
            /// p (puintptr)
            p = "p",
            /// id (int64)
            id = "id",
            /// mallocing (int32)
            mallocing = "mallocing",
            /// throwing (int32)
            throwing = "throwing",
            /// preemptoff (string)
            preemptoff = "preemptoff",
            /// locks (int32)
            locks = "locks",
            /// dying (int32)
            dying = "dying",
            /// spinning (bool)
            spinning = "spinning",
            /// blocked (bool)
            blocked = "blocked",
            /// incgo (bool)
            incgo = "incgo",
            /// ncgo (int32)
            ncgo = "ncgo",
            /// alllink (*m)
            alllink = "alllink",
            /// lockedg (guintptr)
            lockedg = "lockedg",
            /// vdsoSP
            vdso_sp = "vdsoSP",
            /// vdsoPC
            vdso_pc = "vdsoPC",
        }
        optional {
            /// caughtsig
            caughtsig = "caughtsig",
            /// libcallsp
            libcallsp = "libcallsp",
        }
    }
}

struct_layout! {
    /// `runtime.p`.
    pub struct PLayout = "runtime.p" {
        required {
            /// id (int32)
            id = "id",
            /// status (uint32)
            status = "status",
            /// schedtick (uint32)
            schedtick = "schedtick",
            /// syscalltick (uint32)
            syscalltick = "syscalltick",
            /// m (muintptr)
            m = "m",
            /// runqhead (uint32)
            runqhead = "runqhead",
            /// runqtail (uint32)
            runqtail = "runqtail",
            /// runq (`[256]guintptr`)
            runq = "runq",
            /// runnext (guintptr)
            runnext = "runnext",
        }
        optional {
            /// gFree.n (int32, <= 1.24)
            gfree_n = "gFree.n",
            /// gFree.size (int32, 1.25+)
            gfree_size = "gFree.size",
            /// timers ([]*timer, <= 1.22)
            timers_slice = "timers",
            /// timers.heap ([]timerWhen, 1.23+)
            timers_heap = "timers.heap",
        }
    }
}

struct_layout! {
    /// `runtime.schedt`.
    pub struct SchedLayout = "runtime.schedt" {
        required {
            /// goidgen (atomic.Uint64)
            goidgen = "goidgen",
            /// midle (muintptr)
            midle = "midle",
            /// nmidle (int32)
            nmidle = "nmidle",
            /// nmidlelocked (int32)
            nmidlelocked = "nmidlelocked",
            /// mnext (int64)
            mnext = "mnext",
            /// nmfreed (int64)
            nmfreed = "nmfreed",
            /// pidle (puintptr)
            pidle = "pidle",
            /// npidle (atomic.Int32)
            npidle = "npidle",
            /// nmspinning (atomic.Int32)
            nmspinning = "nmspinning",
            /// needspinning (atomic.Uint32)
            needspinning = "needspinning",
            /// gcwaiting (atomic.Bool)
            gcwaiting = "gcwaiting",
            /// stopwait (int32)
            stopwait = "stopwait",
            /// sysmonwait (atomic.Bool)
            sysmonwait = "sysmonwait",
        }
        optional {
            /// runqsize (int32, <= 1.25)
            runqsize = "runqsize",
            /// runq.size (int32, 1.26+)
            runq_size = "runq.size",
        }
    }
}

/// All runtime layouts of one binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLayout {
    /// Where the offsets came from.
    pub source: LayoutSource,
    /// `runtime.g`.
    pub g: GLayout,
    /// `runtime.m`.
    pub m: MLayout,
    /// `runtime.p`.
    pub p: PLayout,
    /// `runtime.schedt`.
    pub sched: SchedLayout,
}

/// Builds a layout struct from its size and a lookup of dotted field paths.
type Resolver<T> = fn(u64, &dyn Fn(&str) -> Option<u64>) -> Result<T, LayoutError>;

fn from_table<T>(table: FieldTable, resolve: Resolver<T>) -> Result<T, LayoutError> {
    let lookup = |path: &str| table.iter().find(|(p, _)| *p == path).map(|(_, o)| *o);
    resolve(lookup("size").unwrap_or(0), &lookup)
}

fn from_dwarf<T>(
    dwarf: &DwarfInfo,
    ty: &'static str,
    resolve: Resolver<T>,
) -> Result<T, LayoutError> {
    let size = dwarf.struct_size(ty).ok_or(LayoutError::MissingType(ty))?;
    resolve(size, &|path| dwarf.field_offset(ty, path))
}

impl RuntimeLayout {
    /// Layout read from DWARF by field name.
    pub fn from_dwarf(dwarf: &DwarfInfo) -> Result<RuntimeLayout, LayoutError> {
        Ok(RuntimeLayout {
            source: LayoutSource::Dwarf,
            g: from_dwarf(dwarf, GLayout::TYPE_NAME, GLayout::resolve)?,
            m: from_dwarf(dwarf, MLayout::TYPE_NAME, MLayout::resolve)?,
            p: from_dwarf(dwarf, PLayout::TYPE_NAME, PLayout::resolve)?,
            sched: from_dwarf(dwarf, SchedLayout::TYPE_NAME, SchedLayout::resolve)?,
        })
    }

    /// Built-in layout for Go 1.`minor` (1.21..=1.27).
    pub fn for_version(minor: u32) -> Result<RuntimeLayout, LayoutError> {
        let t = tables::for_minor(minor).ok_or(LayoutError::UnsupportedVersion(minor))?;
        Ok(RuntimeLayout {
            source: LayoutSource::Table(minor),
            g: from_table(t.g, GLayout::resolve)?,
            m: from_table(t.m, MLayout::resolve)?,
            p: from_table(t.p, PLayout::resolve)?,
            sched: from_table(t.sched, SchedLayout::resolve)?,
        })
    }
}

/// Renders a layout as Rust table source (used to produce `tables.rs`).
pub fn render_table(name: &str, entries: &[(&'static str, Option<u64>)]) -> String {
    let mut s = format!("const {name}: FieldTable = &[\n");
    for (path, off) in entries {
        if let Some(off) = off {
            s.push_str(&format!("    (\"{path}\", {off}),\n"));
        }
    }
    s.push_str("];\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::testbin;

    fn minor_of(version: &str) -> u32 {
        version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("version has a minor")
    }

    /// Prints `tables.rs` content measured from DWARF (run with --ignored --nocapture).
    #[test]
    #[ignore = "generator: prints tables for tables.rs"]
    fn gen_tables() {
        for v in testbin::VERSIONS {
            let bin = testbin::build(v, "hello", testbin::HELLO, &[]);
            let elf = std::fs::read(&bin).expect("read binary");
            let dwarf = testbin::dwarf_of(&elf);
            let l = RuntimeLayout::from_dwarf(&dwarf).expect("layout");
            let m = minor_of(v);
            print!("{}", render_table(&format!("G_1_{m}"), &l.g.entries()));
            print!("{}", render_table(&format!("M_1_{m}"), &l.m.entries()));
            print!("{}", render_table(&format!("P_1_{m}"), &l.p.entries()));
            print!(
                "{}",
                render_table(&format!("SCHED_1_{m}"), &l.sched.entries())
            );
            let reasons =
                testbin::string_array(&elf, "runtime.waitReasonStrings").expect("reasons");
            println!("const WAIT_REASONS_1_{m}: &[&str] = &{reasons:?};");
        }
    }

    /// The built-in tables equal what DWARF says, for every supported toolchain.
    #[test]
    fn tables_match_dwarf_for_every_version() {
        for v in testbin::VERSIONS {
            let bin = testbin::build(v, "hello", testbin::HELLO, &[]);
            let elf = std::fs::read(&bin).expect("read binary");
            let dwarf = testbin::dwarf_of(&elf);
            let mut from_dwarf = RuntimeLayout::from_dwarf(&dwarf).expect("layout from dwarf");
            let table = RuntimeLayout::for_version(minor_of(v)).expect("table");
            from_dwarf.source = table.source;
            assert_eq!(from_dwarf, table, "Go {v}: table differs from DWARF");
            let reasons =
                testbin::string_array(&elf, "runtime.waitReasonStrings").expect("reasons");
            let t = tables::for_minor(minor_of(v)).expect("tables");
            assert_eq!(reasons, t.wait_reasons, "Go {v}: waitReasonStrings differ");
        }
    }

    #[test]
    fn dwarf_offsets_match_research_measurements_for_1_26() {
        let bin = testbin::build("1.26", "hello", testbin::HELLO, &[]);
        let elf = std::fs::read(&bin).expect("read binary");
        let dwarf = testbin::dwarf_of(&elf);
        let l = RuntimeLayout::from_dwarf(&dwarf).expect("layout");
        // Appendix A of the research notes (measured independently with pyelftools).
        assert_eq!(l.g.size, 456);
        assert_eq!(l.g.goid, 152);
        assert_eq!(l.g.atomicstatus, 144);
        assert_eq!(l.g.labels, 352);
        assert_eq!(l.m.tls, 128);
        assert_eq!(l.m.curg, 184);
        assert_eq!(l.m.vdso_sp, 896);
        assert_eq!(dwarf.constant("runtime._Gwaiting"), Some(4));
    }

    #[test]
    fn unknown_version_without_dwarf_is_an_error() {
        assert!(matches!(
            RuntimeLayout::for_version(19),
            Err(LayoutError::UnsupportedVersion(19))
        ));
    }
}
