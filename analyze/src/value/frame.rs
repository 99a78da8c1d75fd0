//! The variables of one stack frame: DWARF locals and arguments at the
//! frame's PC, located with its CFA (and registers, when known).

use crate::dwarf::{evaluate_location, DwarfError, Location, RegisterSet};

use super::expr::{ScopeVar, VarSource};
use super::Program;

/// Arguments and locals visible at runtime PC `sym_pc` (the PC used for
/// lookups: `pc-1` after a call) in a frame whose canonical frame address is
/// `cfa`. `regs` holds the registers known for this frame (only the innermost
/// frame of a running thread has any). Arguments come first, in declaration
/// order, then locals; shadowed names appear once per scope, innermost last.
pub fn frame_scope(
    prog: &Program<'_>,
    sym_pc: u64,
    cfa: u64,
    regs: &RegisterSet,
) -> Result<Vec<ScopeVar>, DwarfError> {
    let link_pc = sym_pc.wrapping_sub(prog.bias);
    let vars = prog.dwarf.frame_variables(link_pc)?;
    let Some(func) = prog.dwarf.function_at(link_pc) else {
        return Ok(Vec::new());
    };
    let Some(encoding) = prog.dwarf.encoding_of(func) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<ScopeVar> = Vec::with_capacity(vars.len());
    for v in vars {
        let size = prog.underlying(v.ty).1.size;
        let src = match &v.location {
            None => VarSource::Unavailable("optimized away or not live at this PC".into()),
            Some(expr) => {
                match evaluate_location(expr, encoding, Some(cfa), regs, size, prog.mem) {
                    Ok(Location::Address(a)) => VarSource::Memory(a),
                    Ok(Location::Bytes(b)) => VarSource::Bytes(b),
                    Err(why) => VarSource::Unavailable(why),
                }
            }
        };
        out.push(ScopeVar {
            name: v.name,
            ty: v.ty,
            src,
            is_arg: v.is_arg,
        });
    }
    // Arguments first (stable: declaration order within each group).
    out.sort_by_key(|v| !v.is_arg);
    Ok(out)
}

/// The function name and variables of logical frame `frame` (an index into
/// `bt`'s frames, innermost first) of goroutine `goid`.
pub fn goroutine_scope(
    target: &crate::Target,
    prog: &Program<'_>,
    goid: u64,
    frame: usize,
) -> crate::Result<(String, Vec<ScopeVar>)> {
    let frames = crate::runtime::goroutine_frames(target, goid)?;
    let f = frames.get(frame).ok_or_else(|| {
        crate::AnalyzeError::NotFound(format!(
            "goroutine {goid} has {} frames; there is no frame {frame}",
            frames.len()
        ))
    })?;
    // Registers are known only for the innermost frame of a running thread;
    // parked goroutines keep every live value in their stack frames.
    let regs = RegisterSet::none();
    let scope = frame_scope(prog, f.sym_pc, f.cfa, &regs)?;
    Ok((f.function.clone(), scope))
}
