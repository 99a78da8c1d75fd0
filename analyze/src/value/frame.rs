//! The variables of one stack frame: DWARF locals and arguments at the
//! frame's PC, located with its CFA (and registers, when known).

use std::collections::HashMap;

use crate::dwarf::{evaluate_location, DwarfError, Location, RegisterSet, TypeId, Variable};

use super::expr::{ScopeVar, VarSource};
use super::Program;

/// Arguments and locals of logical frame `inline_depth` (0 = the physical
/// function, 1.. = calls inlined into it) of a physical frame at runtime
/// PC `pc` (a return address, or the PC of the innermost frame) with lookup
/// PC `sym_pc` (`pc-1` after a call) and canonical frame address `cfa`.
/// Scopes are those containing `sym_pc`; locations are those valid at `pc`,
/// the PC the frame resumes at (Delve reads them there too). `regs` holds
/// the registers known for this frame (only the innermost frame of a
/// running thread has any). Arguments come first, in declaration order,
/// then locals by block depth and declaration line.
pub fn frame_scope_inlined(
    prog: &Program<'_>,
    (pc, sym_pc): (u64, u64),
    inline_depth: u32,
    cfa: u64,
    regs: &RegisterSet,
) -> Result<Vec<ScopeVar>, DwarfError> {
    let link_pc = sym_pc.wrapping_sub(prog.bias);
    let loc_pc = pc.wrapping_sub(prog.bias);
    let vars = prog
        .dwarf
        .frame_variables_inlined(link_pc, loc_pc, inline_depth)?;
    let located = located_variables(prog, vars.iter(), link_pc, cfa, regs);
    let mut out: Vec<ScopeVar> = Vec::with_capacity(located.len());
    for (v, src) in vars.into_iter().zip(located) {
        let (name, ty, src) = match v.name.strip_prefix('&') {
            // An escaped (heap-allocated) variable: DWARF describes a
            // pointer `&x`; Delve shows `x`, the value it points at.
            Some(real) if !real.is_empty() => match escaped_target(prog, v.ty, &src) {
                Some((ty, src)) => (real.to_string(), ty, src),
                None => (v.name.clone(), v.ty, src),
            },
            _ => (v.name.clone(), v.ty, src),
        };
        out.push(ScopeVar {
            name,
            ty,
            src,
            is_arg: v.is_arg,
            decl_line: v.decl_line,
            scope_depth: v.scope_depth,
            captured: v.captured,
            shadowed: false,
        });
    }
    resolve_type_parameters(prog, &mut out);
    // Arguments first, then by block depth and declaration line, as Delve lists them.
    out.sort_by_key(|v| (!v.is_arg, v.scope_depth, v.decl_line));
    mark_shadowed(&mut out);
    Ok(out)
}

/// Delve's shadowing rule over variables in listing order: a variable is
/// shadowed when one listed after it has the same name (a deeper block's,
/// or a later one of the same block: a function's duplicate `~r0` results).
/// Expressions see the last one; `locals` prints the others as `(name)`.
fn mark_shadowed(vars: &mut [ScopeVar]) {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for v in vars.iter_mut().rev() {
        v.shadowed = !seen.insert(v.name.clone());
    }
}

/// Where each of `vars` (a logical frame's DWARF variables at link-time
/// `link_pc`) is, in their order (as DWARF describes them: an escaped `&x`
/// is its pointer); empty if DWARF has no function there.
fn located_variables<'v>(
    prog: &Program<'_>,
    vars: impl Iterator<Item = &'v Variable>,
    link_pc: u64,
    cfa: u64,
    regs: &RegisterSet,
) -> Vec<VarSource> {
    let Some(func) = prog.dwarf.function_at(link_pc) else {
        return Vec::new();
    };
    let Some(encoding) = prog.dwarf.encoding_of(func) else {
        return Vec::new();
    };
    vars.map(|v| {
        let size = prog.underlying(v.ty).1.size;
        match &v.location {
            None => VarSource::Unavailable("optimized away or not live at this PC".into()),
            Some(expr) => {
                match evaluate_location(expr, encoding, Some(cfa), regs, size, prog.mem) {
                    Ok(Location::Address(a)) => VarSource::Memory(a),
                    Ok(Location::Bytes(b)) => VarSource::Bytes(b),
                    Err(why) => VarSource::Unavailable(why),
                }
            }
        }
    })
    .collect()
}

/// A variable of a parked frame that lives in memory at this PC: its name
/// (an escaped `&x` is named `x`, as Delve names it; the slot holds its
/// pointer) and the bytes `[addr, addr + size)` it occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSlot {
    /// The variable's name.
    pub name: String,
    /// Where it is (a stack address for a parked frame's locals).
    pub addr: u64,
    /// Its size in bytes (at least 1).
    pub size: u64,
}

/// Finds the variables of parked frames that live in memory, for naming
/// what a stack word holds (the heap's frame roots). Thousands of
/// goroutines share a few PCs, so each (PC, inline depth)'s DWARF variables
/// are looked up once; only their locations are evaluated per frame.
pub struct FrameSlotFinder<'p> {
    prog: &'p Program<'p>,
    /// Per (runtime PC, lookup PC, inline depth): the variables whose location is
    /// one address (no pieces: a value assembled from parts is in no one
    /// slot), with their names and sizes.
    vars: HashMap<(u64, u64, u32), Vec<SlotVariable>>,
}

/// A variable [`FrameSlotFinder`] may find in memory: the DWARF variable,
/// its name as rdlv prints it, its size.
type SlotVariable = (Variable, String, u64);

impl<'p> FrameSlotFinder<'p> {
    /// A finder over `prog`'s DWARF and memory.
    pub fn new(prog: &'p Program<'p>) -> Self {
        FrameSlotFinder {
            prog,
            vars: HashMap::new(),
        }
    }

    /// The variables of logical frame `inline_depth` of a physical frame at
    /// runtime `pc` (lookup PC `sym_pc`, locations at `pc` as in
    /// [`frame_scope_inlined`]) with canonical frame address `cfa` that live in
    /// memory there, within `stack` (the goroutine's stack: a location
    /// DWARF puts elsewhere names nothing of the frame), registers unknown
    /// (a parked frame). A PC DWARF does not describe has none.
    pub fn slots(
        &mut self,
        (pc, sym_pc): (u64, u64),
        inline_depth: u32,
        cfa: u64,
        stack: std::ops::Range<u64>,
    ) -> Vec<FrameSlot> {
        let prog = self.prog;
        let link_pc = sym_pc.wrapping_sub(prog.bias);
        let loc_pc = pc.wrapping_sub(prog.bias);
        let vars = self
            .vars
            .entry((pc, sym_pc, inline_depth))
            .or_insert_with(|| {
                let encoding = prog
                    .dwarf
                    .function_at(link_pc)
                    .and_then(|f| prog.dwarf.encoding_of(f));
                let Some(encoding) = encoding else {
                    return Vec::new();
                };
                prog.dwarf
                    .frame_variables_inlined(link_pc, loc_pc, inline_depth)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|v| {
                        v.location
                            .as_ref()
                            .is_some_and(|e| !has_pieces(e, encoding))
                    })
                    .filter_map(|v| {
                        let name = v.name.strip_prefix('&').filter(|n| !n.is_empty());
                        let name = name.unwrap_or(&v.name).to_string();
                        let size = prog.underlying(v.ty).1.size.max(1);
                        (name != ".dict").then_some((v, name, size))
                    })
                    .collect()
            });
        let regs = RegisterSet::none();
        located_variables(prog, vars.iter().map(|(v, _, _)| v), link_pc, cfa, &regs)
            .into_iter()
            .zip(vars.iter())
            .filter_map(|(src, (_, name, size))| match src {
                VarSource::Memory(addr)
                    if addr >= stack.start
                        && addr.checked_add(*size).is_some_and(|e| e <= stack.end) =>
                {
                    Some(FrameSlot {
                        name: name.clone(),
                        addr,
                        size: *size,
                    })
                }
                _ => None,
            })
            .collect()
    }
}

/// Whether a location expression assembles its value from pieces.
fn has_pieces(expr: &gimli::Expression<crate::dwarf::Reader>, encoding: gimli::Encoding) -> bool {
    let mut ops = expr.clone().operations(encoding);
    while let Ok(Some(op)) = ops.next() {
        if matches!(op, gimli::Operation::Piece { .. }) {
            return true;
        }
    }
    false
}

/// The pointee of an escaped variable's pointer `&x`: its type and where
/// its value is. `None` when the DWARF type is not a pointer.
fn escaped_target(prog: &Program<'_>, ty: TypeId, src: &VarSource) -> Option<(TypeId, VarSource)> {
    let crate::dwarf::TypeKind::Pointer { elem: Some(elem) } = prog.underlying(ty).1.kind else {
        return None;
    };
    let ptr = match src {
        VarSource::Memory(a) => prog.mem.read_u64(*a).map_err(|e| e.to_string()),
        VarSource::Bytes(b) => b
            .get(..8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| "short location".to_string()),
        VarSource::Unavailable(why) => Err(why.clone()),
    };
    Some((
        elem,
        match ptr {
            Ok(0) => VarSource::Unavailable("escaped variable not allocated yet".into()),
            Ok(p) => VarSource::Memory(p),
            Err(why) => VarSource::Unavailable(why),
        },
    ))
}

/// Whether a variable declared at `decl_line` is visible at `line` (Delve:
/// from the line after its declaration, a closure's captured variable from
/// that line itself; arguments everywhere).
fn visible_at(v: &ScopeVar, line: u32) -> bool {
    let line = u64::from(line);
    v.is_arg || v.decl_line == 0 || line > v.decl_line || (v.captured && line == v.decl_line)
}

/// Gives variables typed by a generic function's type parameters (shape
/// types such as `go.shape.int`) their concrete types, from the `.dict`
/// argument: entry `DW_AT_go_dict_index` of the dictionary is the
/// `*abi.Type` of the instantiation. Without a readable `.dict` (optimized
/// code) the shape type stays. `.dict` itself is then left out.
fn resolve_type_parameters(prog: &Program<'_>, vars: &mut Vec<ScopeVar>) {
    let dict = vars
        .iter()
        .find(|v| v.name == ".dict")
        .and_then(|v| match &v.src {
            VarSource::Memory(a) => prog.mem.read_u64(*a).ok(),
            VarSource::Bytes(b) => b
                .get(..8)
                .and_then(|w| w.try_into().ok())
                .map(u64::from_le_bytes),
            VarSource::Unavailable(_) => None,
        });
    if let Some(dict) = dict.filter(|&d| d != 0) {
        for v in vars.iter_mut() {
            let Some(idx) = prog.ty(v.ty).dict_index else {
                continue;
            };
            let concrete = idx
                .checked_mul(8)
                .and_then(|o| dict.checked_add(o))
                .and_then(|a| prog.mem.read_u64(a).ok())
                .and_then(|rtype| prog.rtype_dwarf(rtype));
            if let Some(t) = concrete {
                v.ty = t;
            }
        }
    }
    vars.retain(|v| v.name != ".dict");
}

/// The function name and variables of logical frame `frame` (an index into
/// `bt`'s frames, innermost first) of goroutine `goid`.
pub fn goroutine_scope(
    target: &crate::Target,
    prog: &Program<'_>,
    goid: u64,
    frame: usize,
) -> crate::Result<(String, Vec<ScopeVar>)> {
    let rt = crate::runtime::Runtime::new(target)?;
    let g = rt.goroutine(goid)?;
    let (lf, pf) = g
        .logical
        .get(frame)
        .and_then(|lf| Some((lf, g.frames.get(lf.phys)?)))
        .ok_or(crate::AnalyzeError::NoFrame {
            goid,
            frame,
            count: g.logical.len(),
        })?;
    let regs = frame_thread(target, &g, lf.phys)
        .map(|t| thread_registers(&t.regs))
        .unwrap_or_else(RegisterSet::none);
    let mut scope = frame_scope_inlined(prog, (pf.pc, pf.sym_pc), lf.inline_depth, pf.fp, &regs)?;
    if lf.line != 0 {
        scope.retain(|v| visible_at(v, lf.line));
        // Shadowing among the variables still in scope.
        mark_shadowed(&mut scope);
    }
    Ok((lf.name.to_string(), scope))
}

/// The captured thread whose registers are those of physical frame
/// `phys` of `g`, if any: only the innermost physical frame of a goroutine
/// running on a thread, when that thread's pc is the frame's. Everywhere else Go keeps
/// live values in stack slots (it has no callee-saved registers), so a frame
/// has only what unwinding recovers (pc, sp, cfa). `print`, `locals` and
/// the REPL's `regs` all decide with this one rule.
pub fn frame_thread<'t>(
    target: &'t crate::Target,
    g: &crate::runtime::Goroutine,
    phys: usize,
) -> Option<&'t rdlv_format::ThreadInfo> {
    if phys != 0 {
        return None;
    }
    let pc = g.frames.first()?.pc;
    let tid = g.thread?;
    target
        .snapshot()
        .metadata()
        .threads
        .iter()
        .find(|t| t.tid == tid && t.regs.rip == pc)
}

/// A thread's registers by DWARF number (amd64: rax rdx rcx rbx rsi rdi rbp
/// rsp r8..r15 rip).
pub fn thread_registers(r: &rdlv_format::X86Regs) -> RegisterSet {
    let mut set = RegisterSet::none();
    let values = [
        r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, r.rip,
    ];
    for (n, v) in values.iter().enumerate() {
        set.set(n as u16, *v);
    }
    set
}
