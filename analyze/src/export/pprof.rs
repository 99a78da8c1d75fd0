//! The goroutine profile the process itself would serve at
//! `/debug/pprof/goroutine` (debug=0): gzipped `perftools.profiles.Profile`.
//!
//! Why rebuild it rather than convert our own grouping: `go tool pprof`
//! users compare profiles across time (`-diff_base`), so ours must be
//! indistinguishable from the runtime's. This module therefore replays, on
//! the snapshot, the three steps the Go runtime takes:
//!
//! 1. `saveg` + `tracebackPCs` (runtime/mprof.go, traceback.go): for every
//!    user goroutine (system goroutines are left out, as
//!    `isSystemGoroutine(gp, false)` leaves them out), one PC per *logical*
//!    frame: `symPC + 1` for the innermost call of a physical frame, `entry +
//!    parentPc + 1` for each inlined caller; wrappers elided unless they call
//!    a panic; at most [`stack_depth`] PCs (32 before Go 1.23, then the
//!    `profstackdepth` default 128).
//! 2. `printCountProfile` (runtime/pprof/pprof.go): stacks plus label sets
//!    counted under the key `"@ 0x.. 0x..\n# labels: {..}"`, keys sorted by
//!    count descending then by key.
//! 3. `profileBuilder` (runtime/pprof/proto.go): location and function ids
//!    in order of first use, inlined frames folded into one `Location` by
//!    the same `pcDeck` rules, `runtime.goexit` dropped, one `Mapping` per
//!    executable mapping of the process with `has_functions` when every
//!    address in it symbolized, the string table in the runtime's order.
//!
//! Invariants: location, function and mapping ids are non-zero and dense
//! (what pprof's `CheckValid` demands); every sample has exactly one value;
//! memory is bounded by the number of *distinct* stacks (goroutines are
//! streamed in batches and reduced to a key and a count at once).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use prost::Message;

use crate::error::{Corrupt, Result};
use crate::pclntab::{funcdata, pcdata};
use crate::runtime::traceback::GOROUTINE_BATCH;
use crate::runtime::{Goroutine, Runtime};

/// `perftools.profiles` messages, hand-written with prost derives (field
/// numbers from google/pprof `proto/profile.proto`; no protoc needed).
pub mod proto {
    /// The whole profile.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        /// What each sample value counts.
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        /// One per distinct stack and label set.
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        /// Executable mappings of the process.
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        /// Addresses with their (possibly inlined) source lines.
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        /// Functions referenced by lines.
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        /// Every string; index 0 is "".
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        /// Regex of frames to drop (string index).
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        /// Regex of frames to keep (string index).
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        /// When the profile was taken (Unix ns): the capture instant.
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        /// Duration (unused for goroutine profiles).
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        /// What the period counts.
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        /// Period (1 for count profiles).
        #[prost(int64, tag = "12")]
        pub period: i64,
        /// Free-form comments (string indices).
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        /// Sample type to show by default (string index).
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    /// A (type, unit) pair of string indices.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        /// e.g. "goroutine".
        #[prost(int64, tag = "1")]
        pub ty: i64,
        /// e.g. "count".
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// One stack with its values and labels.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Location ids, leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        /// One value per sample type.
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        /// pprof labels.
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A label: key and string (or number) value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Key (string index).
        #[prost(int64, tag = "1")]
        pub key: i64,
        /// String value (string index).
        #[prost(int64, tag = "2")]
        pub str: i64,
        /// Numeric value.
        #[prost(int64, tag = "3")]
        pub num: i64,
        /// Unit of `num` (string index).
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    /// A mapped object.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        /// Non-zero id.
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// First address.
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        /// One past the last address.
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        /// File offset of `memory_start`.
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        /// Path (string index).
        #[prost(int64, tag = "5")]
        pub filename: i64,
        /// GNU build id in hex (string index).
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        /// Every location in it has function names.
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        /// ... file names.
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        /// ... line numbers.
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        /// ... inlined frames.
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    /// An address and its lines, inlined callee first.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        /// Non-zero id.
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// Mapping id (0: none).
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        /// The call's address (return PC - 1).
        #[prost(uint64, tag = "3")]
        pub address: u64,
        /// Lines, inlined callee first, physical caller last.
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        /// Whether frames were folded.
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    /// One source line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        /// Function id.
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        /// Line number.
        #[prost(int64, tag = "2")]
        pub line: i64,
        /// Column (unused by Go).
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    /// A function.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        /// Non-zero id.
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// Name (string index).
        #[prost(int64, tag = "2")]
        pub name: i64,
        /// Linker name (string index).
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        /// Source file (string index).
        #[prost(int64, tag = "4")]
        pub filename: i64,
        /// First line of the function.
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// Size of `runtime.inlinedCall` (Go 1.21+: funcID u8, pad, nameOff i32,
/// parentPc i32, startLine i32).
const INLINED_CALL_LEN: u64 = 16;
/// Offset of `parentPc` in `runtime.inlinedCall`.
const INLINED_PARENT_PC: usize = 8;
/// Offset of `startLine` in `runtime.inlinedCall`.
const INLINED_START_LINE: usize = 12;
/// Deepest inline chain followed (a corrupt table could loop).
const MAX_INLINE_DEPTH: usize = 256;
/// Bound on an inline tree index read from pcdata.
const MAX_INLINE_INDEX: i32 = 1 << 20;
/// Bound on distinct (stack, labels) keys kept while counting: past it the
/// snapshot is taken as hostile (real processes have far fewer).
pub const MAX_DISTINCT_STACKS: usize = 4_000_000;

/// PCs recorded per goroutine (`len(pcbuf)` in `saveg`).
pub fn stack_depth(minor: u32) -> usize {
    if minor < 23 {
        32
    } else {
        128
    }
}

/// One goroutine reduced to what the profile keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RawKey {
    /// Symbolic PC of every physical frame, innermost first.
    sym_pcs: Box<[u64]>,
    /// The label set when `g.labels` is non-nil, in the runtime's order.
    labels: Option<Vec<(String, String)>>,
}

/// One entry of the runtime's count table: the PCs, labels and count.
#[derive(Debug, Clone)]
pub struct CountedStack {
    /// The PCs `tracebackPCs` records (return PCs or 1 + inline marks), leaf first.
    pub pcs: Vec<u64>,
    /// Labels (None when the goroutine has no label set).
    pub labels: Option<Vec<(String, String)>>,
    /// Goroutines with this stack and label set.
    pub count: u64,
    /// The runtime's key text (`@ 0x.. 0x..` and `# labels: {...}`).
    pub key: String,
}

/// Counts the user goroutines of `rt` by stack and labels exactly as
/// `printCountProfile` does, sorted by count descending, then by key.
pub fn counted_stacks(rt: &Runtime<'_>) -> Result<(Vec<CountedStack>, u64)> {
    let mut counts: HashMap<RawKey, u64> = HashMap::new();
    let mut order: Vec<RawKey> = Vec::new();
    let mut total = 0u64;
    let mut overflow = false;
    rt.for_each_goroutine_batch(
        GOROUTINE_BATCH,
        |g: Goroutine| {
            if g.system {
                return None;
            }
            let labels = (g.g.labels != 0).then(|| rt.labels(&g.g));
            Some(RawKey {
                sym_pcs: g.frames.iter().map(|f| f.sym_pc).collect(),
                labels,
            })
        },
        |batch: Vec<RawKey>| -> Result<()> {
            for key in batch {
                total += 1;
                if let Some(c) = counts.get_mut(&key) {
                    *c += 1;
                } else if counts.len() < MAX_DISTINCT_STACKS {
                    counts.insert(key.clone(), 1);
                    order.push(key);
                } else {
                    overflow = true;
                }
            }
            Ok(())
        },
    )?;
    if overflow {
        return Err(Corrupt::TooMany {
            what: "distinct goroutine stacks",
            bound: MAX_DISTINCT_STACKS as u64,
        }
        .into());
    }
    let depth = stack_depth(rt.minor);
    let mut inl = InlineWalker::new(rt);
    // Raw keys that differ only in ways the runtime does not record merge here.
    let mut merged: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<CountedStack> = Vec::new();
    for raw in order {
        let count = counts.get(&raw).copied().unwrap_or(0);
        let pcs = inl.traceback_pcs(&raw.sym_pcs, depth);
        let key = count_key(&pcs, raw.labels.as_deref());
        if let Some(&i) = merged.get(&key) {
            if let Some(s) = out.get_mut(i) {
                s.count += count;
            }
            continue;
        }
        merged.insert(key.clone(), out.len());
        out.push(CountedStack {
            pcs,
            labels: raw.labels,
            count,
            key,
        });
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    Ok((out, total))
}

/// The key `printCountProfile` counts by.
fn count_key(pcs: &[u64], labels: Option<&[(String, String)]>) -> String {
    use std::fmt::Write as _;
    let mut s = String::from("@");
    for pc in pcs {
        let _ = write!(s, " {pc:#x}");
    }
    if let Some(labels) = labels {
        s.push_str("\n# labels: ");
        s.push_str(&label_map_string(labels));
    }
    s
}

/// `labelMap.String()`: `{"k":"v", ...}` with `%q` quoting, sorted.
pub fn label_map_string(labels: &[(String, String)]) -> String {
    let mut items: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    items.sort();
    format!("{{{}}}", items.join(", "))
}

/// Go's `strconv.Quote` of a label key or value (what `%q` prints).
pub fn go_quote(s: &str) -> String {
    crate::value::text::go_quote(s.as_bytes())
}

/// The innermost logical frame at one recorded PC, as `runtime.CallersFrames`
/// of that single PC reports it (what `allFrames` sees).
#[derive(Debug, Clone)]
struct FrameInfo {
    /// `Frame.PC`: the PC backed up into the call.
    pc: u64,
    /// `Frame.Func != nil`: a physical (not inlined) Go frame.
    is_func: bool,
    /// Entry of the physical function (0: not Go code).
    entry: u64,
    /// Linker name (`runtime_FrameSymbolName`).
    name: Arc<str>,
    file: Arc<str>,
    line: u32,
    start_line: i64,
}

impl FrameInfo {
    fn symbolized(&self) -> bool {
        self.pc != 0 && !self.name.is_empty() && !self.file.is_empty() && self.line != 0
    }
}

/// Walks inline trees through target memory, with caches per PC.
struct InlineWalker<'r, 't> {
    rt: &'r Runtime<'t>,
    /// sym_pc → logical (pc, name, func id) chain, innermost first.
    chains: HashMap<u64, Arc<Vec<LogicalPc>>>,
    frames: HashMap<u64, Option<FrameInfo>>,
}

#[derive(Debug, Clone)]
struct LogicalPc {
    /// `uf.pc`: sym PC for the innermost, the inline mark for callers.
    pc: u64,
    name: Arc<str>,
    wrapper: bool,
}

impl<'r, 't> InlineWalker<'r, 't> {
    fn new(rt: &'r Runtime<'t>) -> Self {
        InlineWalker {
            rt,
            chains: HashMap::new(),
            frames: HashMap::new(),
        }
    }

    /// `inlinedCall` entry `idx` of a tree: (funcID, parentPc, startLine).
    fn inlined_call(&self, tree: u64, idx: i32) -> Option<(u8, i32, i32)> {
        if !(0..MAX_INLINE_INDEX).contains(&idx) {
            return None;
        }
        let addr = tree.checked_add(INLINED_CALL_LEN * idx as u64)?;
        let raw = self
            .rt
            .mem()
            .read_vec(addr, INLINED_CALL_LEN as usize)
            .ok()?;
        let word = |o: usize| {
            raw.get(o..o + 4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_le_bytes)
        };
        Some((
            *raw.first()?,
            word(INLINED_PARENT_PC)?,
            word(INLINED_START_LINE)?,
        ))
    }

    /// The logical frames of the physical frame at `sym_pc`, innermost first.
    fn chain(&mut self, sym_pc: u64) -> Arc<Vec<LogicalPc>> {
        if let Some(c) = self.chains.get(&sym_pc) {
            return c.clone();
        }
        let rt = self.rt;
        let mut out = Vec::new();
        if let Some(f) = rt.tab().find_func(sym_pc) {
            let names = f.frames_at(sym_pc);
            let tree = f.funcdata_addr(funcdata::INL_TREE);
            let mut pc = sym_pc;
            let mut idx = f.pcdata(pcdata::INL_TREE_INDEX, pc).unwrap_or(-1);
            for fr in &names {
                if !fr.inlined {
                    out.push(LogicalPc {
                        pc,
                        name: Arc::from(fr.name.as_str()),
                        wrapper: rt.is_wrapper_func_id(f.func_id()),
                    });
                    break;
                }
                let Some((func_id, parent_pc, _)) = tree.and_then(|t| self.inlined_call(t, idx))
                else {
                    break;
                };
                out.push(LogicalPc {
                    pc,
                    name: Arc::from(fr.name.as_str()),
                    wrapper: rt.is_wrapper_func_id(func_id),
                });
                let Ok(parent) = u64::try_from(parent_pc) else {
                    break;
                };
                pc = f.entry().wrapping_add(parent);
                idx = f.pcdata(pcdata::INL_TREE_INDEX, pc).unwrap_or(-1);
                if out.len() >= MAX_INLINE_DEPTH {
                    break;
                }
            }
        }
        let chain = Arc::new(out);
        self.chains.insert(sym_pc, chain.clone());
        chain
    }

    /// `tracebackPCs` over physical frames given by their symbolic PCs.
    fn traceback_pcs(&mut self, sym_pcs: &[u64], depth: usize) -> Vec<u64> {
        let mut pcs = Vec::new();
        let mut callee: Arc<str> = Arc::from("");
        'frames: for &sym in sym_pcs {
            let chain = self.chain(sym);
            if chain.is_empty() {
                // Not Go code: the runtime's unwinder would not get here.
                break;
            }
            for lf in chain.iter() {
                if pcs.len() >= depth {
                    break 'frames;
                }
                let elide = lf.wrapper
                    && !matches!(
                        &*callee,
                        "runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap"
                    );
                if !elide {
                    pcs.push(lf.pc.wrapping_add(1));
                }
                callee = lf.name.clone();
            }
        }
        if pcs.len() >= depth {
            self.expand_final_inline_frame(&mut pcs);
        }
        pcs
    }

    /// `runtime_expandFinalInlineFrame`: a stack cut at the depth limit
    /// gets the inline callers of its last PC back.
    fn expand_final_inline_frame(&mut self, pcs: &mut Vec<u64>) {
        let Some(&last) = pcs.last() else { return };
        let Some(f) = self.rt.tab().find_func(last) else {
            return;
        };
        let sym = if last > f.entry() { last - 1 } else { last };
        let chain = self.chain(sym);
        // The last PC is the innermost of its chain only if it was cut there.
        if chain.first().is_some_and(|c| c.pc == sym) {
            for lf in chain.iter().skip(1) {
                pcs.push(lf.pc.wrapping_add(1));
            }
        }
    }

    /// `allFrames(addr)`'s first frame; None for `runtime.goexit`.
    fn frame(&mut self, addr: u64) -> Option<FrameInfo> {
        if let Some(f) = self.frames.get(&addr) {
            return f.clone();
        }
        let rt = self.rt;
        let info = match rt.tab().find_func(addr) {
            None => Some(FrameInfo {
                pc: addr.wrapping_sub(1),
                is_func: false,
                entry: 0,
                name: Arc::from(""),
                file: Arc::from(""),
                line: 0,
                start_line: 0,
            }),
            Some(f) => {
                let pc = if addr > f.entry() { addr - 1 } else { addr };
                let frames = f.frames_at(pc);
                match frames.first() {
                    Some(fr) if fr.name == "runtime.goexit" => None,
                    Some(fr) => {
                        let start_line = if fr.inlined {
                            let idx = f.pcdata(pcdata::INL_TREE_INDEX, pc).unwrap_or(-1);
                            f.funcdata_addr(funcdata::INL_TREE)
                                .and_then(|t| self.inlined_call(t, idx))
                                .map_or(0, |(_, _, s)| i64::from(s))
                        } else {
                            i64::from(f.start_line())
                        };
                        Some(FrameInfo {
                            pc,
                            is_func: !fr.inlined,
                            entry: f.entry(),
                            name: Arc::from(fr.name.as_str()),
                            file: if fr.file == "?" {
                                Arc::from("")
                            } else {
                                Arc::from(fr.file.as_str())
                            },
                            line: fr.line,
                            start_line,
                        })
                    }
                    None => None,
                }
            }
        };
        self.frames.insert(addr, info.clone());
        info
    }
}

/// `symbolizeFlag`: lookup tried.
const LOOKUP_TRIED: u8 = 1;
/// `symbolizeFlag`: lookup failed.
const LOOKUP_FAILED: u8 = 2;

/// An executable mapping of the process (`memMap`).
#[derive(Debug, Clone)]
struct MemMap {
    start: u64,
    end: u64,
    offset: u64,
    file: String,
    build_id: String,
    funcs: u8,
    fake: bool,
}

/// A cached location (`locInfo`).
#[derive(Debug, Clone)]
struct LocInfo {
    id: u64,
    pcs: Vec<u64>,
    first_frames: Vec<FrameInfo>,
    first_result: u8,
}

/// Pending PCs of one physical frame (`pcDeck`).
#[derive(Debug, Default)]
struct Deck {
    pcs: Vec<u64>,
    frames: Vec<FrameInfo>,
    result: u8,
    first_frames: usize,
    first_result: u8,
}

impl Deck {
    fn reset(&mut self) {
        self.pcs.clear();
        self.frames.clear();
        self.result = 0;
        self.first_frames = 0;
        self.first_result = 0;
    }

    fn try_add(&mut self, pc: u64, frames: &[FrameInfo], result: u8) -> bool {
        if let (Some(last), Some(new)) = (self.frames.last(), frames.first()) {
            if last.is_func
                || last.entry == 0
                || new.entry == 0
                || last.entry != new.entry
                || last.name == new.name
            {
                return false;
            }
        }
        self.pcs.push(pc);
        self.frames.extend_from_slice(frames);
        self.result |= result;
        if self.pcs.len() == 1 {
            self.first_frames = self.frames.len();
            self.first_result = result;
        }
        true
    }
}

/// Builds the profile message the way `profileBuilder` does; shared by
/// the goroutine profile here and the heap profile in
/// [`super::heapprof`]. Use: [`Builder::new`], set the header fields of
/// `profile` through [`Builder::value_type`] / [`Builder::string_index`]
/// in the runtime's order, one [`Builder::locs_for_stack`] per sample
/// (which interns location and function strings as the runtime does), then
/// [`Builder::finish`] (time, mappings, string table).
pub(crate) struct Builder<'r, 't> {
    walker: InlineWalker<'r, 't>,
    strings: Vec<String>,
    string_map: HashMap<String, i64>,
    locs: HashMap<u64, LocInfo>,
    funcs: HashMap<Arc<str>, u64>,
    mem: Vec<MemMap>,
    deck: Deck,
    /// The message under construction.
    pub(crate) profile: proto::Profile,
}

impl<'r, 't> Builder<'r, 't> {
    /// A builder with the process's executable mappings read (`newProfileBuilder`).
    pub(crate) fn new(rt: &'r Runtime<'t>) -> Self {
        let mut b = Builder {
            walker: InlineWalker::new(rt),
            strings: vec![String::new()],
            string_map: HashMap::from([(String::new(), 0)]),
            locs: HashMap::new(),
            funcs: HashMap::new(),
            mem: Vec::new(),
            deck: Deck::default(),
            profile: proto::Profile::default(),
        };
        b.read_mappings(rt);
        b
    }

    /// `readMapping`/`parseProcSelfMaps` over the captured `/proc/PID/maps`.
    fn read_mappings(&mut self, rt: &Runtime<'_>) {
        let meta = rt.target().snapshot().metadata();
        let exe = meta.process.exe_path.trim_end_matches(" (deleted)");
        for m in &meta.mappings {
            if m.perms.as_bytes().get(2) != Some(&b'x') {
                continue;
            }
            let file = m.path.trim_end_matches(" (deleted)").to_string();
            if m.inode == 0 && file.is_empty() {
                continue;
            }
            // Only the executable's build id is known offline (the runtime
            // reads each file's .note.gnu.build-id from disk).
            let build_id = if file == exe {
                meta.process.gnu_build_id.clone().unwrap_or_default()
            } else {
                String::new()
            };
            self.mem.push(MemMap {
                start: m.start,
                end: m.end,
                offset: m.offset,
                file,
                build_id,
                funcs: 0,
                fake: false,
            });
        }
        if self.mem.is_empty() {
            self.mem.push(MemMap {
                start: 0,
                end: 0,
                offset: 0,
                file: String::new(),
                build_id: String::new(),
                funcs: 0,
                fake: true,
            });
        }
    }

    /// `stringIndex`: the index of `s`, appended on first use.
    pub(crate) fn string_index(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_map.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_map.insert(s.to_string(), i);
        i
    }

    /// A `ValueType` with both strings interned (type first).
    pub(crate) fn value_type(&mut self, ty: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            ty: self.string_index(ty),
            unit: self.string_index(unit),
        }
    }

    /// `appendLocsForStack`: location ids for a stack of return PCs (or
    /// inline marks + 1), leaf first, emitting new locations on the way.
    pub(crate) fn locs_for_stack(&mut self, stk: &[u64]) -> Vec<u64> {
        let mut locs = Vec::new();
        self.deck.reset();
        let mut i = 0usize;
        while let Some(&addr) = stk.get(i) {
            if let Some(l) = self.locs.get(&addr).cloned() {
                if !self.deck.pcs.is_empty()
                    && self.deck.try_add(addr, &l.first_frames, l.first_result)
                {
                    i += 1;
                    continue;
                }
                if let Some(id) = self.emit_location() {
                    locs.push(id);
                }
                locs.push(l.id);
                i += l.pcs.len().max(1);
                continue;
            }
            let Some(frame) = self.walker.frame(addr) else {
                // runtime.goexit.
                if let Some(id) = self.emit_location() {
                    locs.push(id);
                }
                i += 1;
                continue;
            };
            let result = if frame.symbolized() {
                LOOKUP_TRIED
            } else {
                LOOKUP_TRIED | LOOKUP_FAILED
            };
            let frames = [frame];
            if self.deck.try_add(addr, &frames, result) {
                i += 1;
                continue;
            }
            if let Some(id) = self.emit_location() {
                locs.push(id);
            }
            if let Some(l) = self.locs.get(&addr) {
                locs.push(l.id);
                i += l.pcs.len().max(1);
            } else {
                self.deck.try_add(addr, &frames, result);
                i += 1;
            }
        }
        if let Some(id) = self.emit_location() {
            locs.push(id);
        }
        locs
    }

    /// `emitLocation`: the deck becomes one Location (and new Functions).
    fn emit_location(&mut self) -> Option<u64> {
        let addr = *self.deck.pcs.first()?;
        let first_pc = self.deck.frames.first().map_or(0, |f| f.pc);
        let id = self.locs.len() as u64 + 1;
        let deck = std::mem::take(&mut self.deck);
        self.locs.insert(
            addr,
            LocInfo {
                id,
                pcs: deck.pcs.clone(),
                first_frames: deck.frames[..deck.first_frames.min(deck.frames.len())].to_vec(),
                first_result: deck.first_result,
            },
        );
        let mut lines = Vec::with_capacity(deck.frames.len());
        let mut new_funcs = Vec::new();
        for frame in &deck.frames {
            let func_id = match self.funcs.get(&frame.name) {
                Some(&id) => id,
                None => {
                    let id = self.funcs.len() as u64 + 1;
                    self.funcs.insert(frame.name.clone(), id);
                    new_funcs.push((id, frame.clone()));
                    id
                }
            };
            lines.push(proto::Line {
                function_id: func_id,
                line: i64::from(frame.line),
                column: 0,
            });
        }
        let mut mapping_id = 0;
        for (i, m) in self.mem.iter_mut().enumerate() {
            if (m.start <= addr && addr < m.end) || m.fake {
                mapping_id = i as u64 + 1;
                m.funcs |= deck.result;
                break;
            }
        }
        self.profile.location.push(proto::Location {
            id,
            mapping_id,
            address: first_pc,
            line: lines,
            is_folded: false,
        });
        for (fid, frame) in new_funcs {
            let name = self.string_index(&frame.name);
            let file = self.string_index(&frame.file);
            self.profile.function.push(proto::Function {
                id: fid,
                name,
                system_name: name,
                filename: file,
                start_line: frame.start_line,
            });
        }
        Some(id)
    }
}

impl Builder<'_, '_> {
    /// `build`: the capture instant as `time_nanos`, the mappings (their
    /// strings last, as the runtime interns them), the string table.
    pub(crate) fn finish(mut self) -> proto::Profile {
        let capture = &self.walker.rt.target().snapshot().metadata().capture;
        self.profile.time_nanos = i64::try_from(capture.clock_realtime_ns).unwrap_or(i64::MAX);
        let mems = std::mem::take(&mut self.mem);
        for (i, m) in mems.iter().enumerate() {
            let filename = self.string_index(&m.file);
            let build_id = self.string_index(&m.build_id);
            self.profile.mapping.push(proto::Mapping {
                id: i as u64 + 1,
                memory_start: m.start,
                memory_limit: m.end,
                file_offset: m.offset,
                filename,
                build_id,
                has_functions: m.funcs == LOOKUP_TRIED,
                has_filenames: false,
                has_line_numbers: false,
                has_inline_frames: false,
            });
        }
        self.profile.string_table = std::mem::take(&mut self.strings);
        self.profile
    }
}

/// Gzips (BestSpeed, as the runtime's profileBuilder) the encoded `profile` into `out`.
pub(crate) fn write_gzipped(profile: &proto::Profile, out: &mut dyn Write) -> Result<()> {
    let bytes = profile.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileStats {
    /// Goroutines counted.
    pub goroutines: u64,
    /// Samples (distinct stack and label sets).
    pub samples: usize,
}

/// The goroutine profile as a message (not yet encoded).
pub fn goroutine_profile(rt: &Runtime<'_>) -> Result<(proto::Profile, ProfileStats)> {
    let (stacks, total) = counted_stacks(rt)?;
    let mut b = Builder::new(rt);
    b.profile.period_type = Some(b.value_type("goroutine", "count"));
    b.profile.period = 1;
    let st = b.value_type("goroutine", "count");
    b.profile.sample_type = vec![st];
    for s in &stacks {
        let locs = b.locs_for_stack(&s.pcs);
        let mut labels = Vec::new();
        if let Some(list) = &s.labels {
            for (k, v) in list {
                labels.push(proto::Label {
                    key: b.string_index(k),
                    str: b.string_index(v),
                    num: 0,
                    num_unit: 0,
                });
            }
        }
        b.profile.sample.push(proto::Sample {
            location_id: locs,
            value: vec![i64::try_from(s.count).unwrap_or(i64::MAX)],
            label: labels,
        });
    }
    let stats = ProfileStats {
        goroutines: total,
        samples: stacks.len(),
    };
    Ok((b.finish(), stats))
}

/// Writes the gzipped goroutine profile of `rt` to `out`.
pub fn write_goroutine_profile(rt: &Runtime<'_>, out: &mut dyn Write) -> Result<ProfileStats> {
    let (profile, stats) = goroutine_profile(rt)?;
    write_gzipped(&profile, out)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, entry: u64, is_func: bool) -> FrameInfo {
        FrameInfo {
            pc: entry + 4,
            is_func,
            entry,
            name: Arc::from(name),
            file: Arc::from("/src/x.go"),
            line: 3,
            start_line: 1,
        }
    }

    #[test]
    fn deck_folds_inlined_frames_until_the_physical_one() {
        let mut d = Deck::default();
        assert!(d.try_add(0x11, &[frame("main.inner", 0x10, false)], LOOKUP_TRIED));
        assert!(d.try_add(0x12, &[frame("main.outer", 0x10, true)], LOOKUP_TRIED));
        // After the physical frame nothing more joins.
        assert!(!d.try_add(0x21, &[frame("main.caller", 0x20, true)], LOOKUP_TRIED));
        assert_eq!(d.pcs, vec![0x11, 0x12]);
        d.reset();
        // Recursion of an inlined frame into the same name does not fold.
        assert!(d.try_add(0x11, &[frame("main.f", 0x10, false)], LOOKUP_TRIED));
        assert!(!d.try_add(0x12, &[frame("main.f", 0x10, true)], LOOKUP_TRIED));
        // A frame of another function does not fold.
        assert!(!d.try_add(0x31, &[frame("main.g", 0x30, true)], LOOKUP_TRIED));
    }

    #[test]
    fn count_keys_match_the_runtime_text() {
        let labels = vec![
            ("tenant".to_string(), "acme".to_string()),
            ("a".to_string(), "x\"y".to_string()),
        ];
        assert_eq!(
            count_key(&[0x401000, 0x402abc], Some(&labels)),
            "@ 0x401000 0x402abc\n# labels: {\"a\":\"x\\\"y\", \"tenant\":\"acme\"}"
        );
        assert_eq!(count_key(&[], None), "@");
    }

    #[test]
    fn go_quote_escapes_like_strconv() {
        assert_eq!(go_quote("acme"), "\"acme\"");
        assert_eq!(go_quote("a\nb\t\\"), "\"a\\nb\\t\\\\\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
        assert_eq!(go_quote("é"), "\"é\"");
    }

    #[test]
    fn profile_round_trips_through_prost() {
        let p = proto::Profile {
            sample_type: vec![proto::ValueType { ty: 1, unit: 2 }],
            sample: vec![proto::Sample {
                location_id: vec![1, 2],
                value: vec![7],
                label: vec![proto::Label {
                    key: 3,
                    str: 4,
                    num: 0,
                    num_unit: 0,
                }],
            }],
            string_table: vec![
                String::new(),
                "goroutine".into(),
                "count".into(),
                "k".into(),
                "v".into(),
            ],
            period: 1,
            ..Default::default()
        };
        let bytes = p.encode_to_vec();
        assert_eq!(proto::Profile::decode(bytes.as_slice()).ok(), Some(p));
    }

    #[test]
    fn depth_follows_the_go_version() {
        assert_eq!(stack_depth(21), 32);
        assert_eq!(stack_depth(22), 32);
        assert_eq!(stack_depth(23), 128);
        assert_eq!(stack_depth(27), 128);
    }
}
