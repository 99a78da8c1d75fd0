//! `--keep EXPR` and `--keep-deep`: values a redacted snapshot keeps on
//! request, besides what the stack analyses read.
//!
//! What `--keep EXPR` keeps (EXPR is Delve's expression language, evaluated
//! by [`crate::value::expr`] against package variables):
//! - the value's own bytes: its type's size at the address EXPR designates.
//!   Shallow, like a Go assignment: a string, slice or map keeps its header,
//!   not the bytes or entries behind it;
//! - the headers EXPR goes through to reach it: the pointer, slice, string,
//!   interface, map and channel words of the prefixes of EXPR (`main.srv` in
//!   `main.srv.Name`), so that `rdlv print OUT EXPR` works on the redacted
//!   file. A map index keeps only the map's own header word, never the
//!   buckets searched for the key (they hold other entries): such a value is
//!   printed by the address `rdlv info` lists for it;
//! - with `--keep-deep`, also everything `rdlv print --format json` loads
//!   for the value: what its typed pointers, slices, strings, maps,
//!   interfaces and channels reach, up to [`MAX_KEEP_DEEP_VALUES`] values and
//!   [`MAX_KEEP_DEEP_BYTES`] bytes (over the byte bound is an error; a value
//!   cut by the loader's own limits is kept as loaded, with a warning).
//!
//! Invariants: finding and loading a value reads through
//! [`Session::unlogged_memory`], so the search itself keeps nothing; only
//! the runs listed in [`Kept::runs`] are kept. A value whose type reaches key
//! material ([`super::keymaterial`]), or with `--keep-deep` whose loaded
//! values hold any, is refused unless `force`.

use crate::dwarf::TypeKind;
use crate::memory::{Memory, ReadLog, Recording};
use crate::session::Session;
use crate::value::expr::{parse, EvalError, Evaluator, Expr};
use crate::value::{LoadConfig, Loader, Pointee, Program, Value, ValueKind};

use super::keymaterial::{type_key_material, value_key_material, Finding};

/// Largest value whose own bytes one `--keep` keeps.
pub const MAX_KEPT_VALUE: u64 = 16 << 20;

/// Most captured bytes one `--keep-deep` keeps: a bound on how much of the
/// heap a mistaken expression can carry into a file meant to be shared.
pub const MAX_KEEP_DEEP_BYTES: u64 = 64 << 20;

/// Most values (nodes: each struct, element, pointee) one `--keep-deep`
/// loads; beyond it the rest stays redacted.
pub const MAX_KEEP_DEEP_VALUES: u64 = 1 << 20;

/// Why a `--keep` value cannot be kept.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeepError {
    /// The executable has no DWARF, so expressions have no types.
    #[error("--keep {expr}: no DWARF in the executable ({why}); --keep needs an unstripped binary (pass one with --exe)")]
    NoDwarf {
        /// The expression.
        expr: String,
        /// The DWARF error.
        why: String,
    },
    /// The expression does not parse or evaluate.
    #[error("--keep {expr}: {source}")]
    Eval {
        /// The expression.
        expr: String,
        /// What the evaluator said.
        source: EvalError,
    },
    /// The expression's value is not in target memory (a constant, `&x`).
    #[error("--keep {expr}: its value is computed, not stored in target memory; keep the variable it comes from")]
    NotInMemory {
        /// The expression.
        expr: String,
    },
    /// The value's bytes were not captured.
    #[error("--keep {expr}: its {len} bytes at {addr:#x} are not in the snapshot ({why})")]
    Unreadable {
        /// The expression.
        expr: String,
        /// Its address.
        addr: u64,
        /// Its size.
        len: u64,
        /// The read error.
        why: String,
    },
    /// The value's type (or a type it reaches, or with `--keep-deep` a value
    /// it holds) is key material.
    #[error("--keep {expr}: refusing key material: {finding}; add --force to keep it anyway")]
    KeyMaterial {
        /// The expression.
        expr: String,
        /// Where the key material is.
        finding: Finding,
    },
    /// Over [`MAX_KEPT_VALUE`] or [`MAX_KEEP_DEEP_BYTES`].
    #[error("--keep {expr}: {bytes} bytes, over the {limit} byte bound{hint}")]
    TooLarge {
        /// The expression.
        expr: String,
        /// Bytes it would keep.
        bytes: u64,
        /// The bound.
        limit: u64,
        /// What to do instead.
        hint: &'static str,
    },
}

/// One kept value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The expression as given.
    pub expr: String,
    /// Its type, as DWARF spells it.
    pub type_name: String,
    /// Its runtime address.
    pub addr: u64,
    /// Whether everything it reaches was kept too (`--keep-deep`).
    pub deep: bool,
    /// Sorted, disjoint `(start, end)` runs to keep (possibly partly
    /// outside captured memory; the plan intersects).
    pub runs: Vec<(u64, u64)>,
    /// Captured bytes those runs cover.
    pub bytes: u64,
    /// With `--keep-deep`, why part of what the value reaches was not
    /// loaded (a loader limit), if it was cut.
    pub truncated: Option<String>,
}

/// Finds `expr`'s value in `session` and decides what to keep of it (see
/// the module docs). Reads only through the session's unlogged memory.
/// Loading a deep value recurses as deep as it nests: call it on a thread
/// with a large stack.
pub fn keep_value(
    session: &Session,
    expr: &str,
    deep: bool,
    force: bool,
) -> Result<Kept, KeepError> {
    let eval_err = |source| KeepError::Eval {
        expr: expr.to_string(),
        source,
    };
    let dwarf = session.dwarf().map_err(|e| KeepError::NoDwarf {
        expr: expr.to_string(),
        why: e.to_string(),
    })?;
    let unlogged = session.unlogged_memory();
    let prog = Program::new(dwarf, &unlogged, session.bias());
    let ev = Evaluator::new(&prog, Vec::new());
    let parsed = parse(expr).map_err(eval_err)?;
    let (ty, addr) =
        ev.place(&parsed)
            .map_err(eval_err)?
            .ok_or_else(|| KeepError::NotInMemory {
                expr: expr.to_string(),
            })?;
    let t = prog.ty(ty);
    let type_name = t.name.clone();
    let size = t.size;
    if !force {
        if let Some(finding) = type_key_material(dwarf, ty, expr) {
            return Err(KeepError::KeyMaterial {
                expr: expr.to_string(),
                finding,
            });
        }
    }
    if size > MAX_KEPT_VALUE {
        return Err(KeepError::TooLarge {
            expr: expr.to_string(),
            bytes: size,
            limit: MAX_KEPT_VALUE,
            hint: "; keep a field or an element of it",
        });
    }
    let mut buf = vec![0u8; size as usize];
    unlogged
        .read(addr, &mut buf)
        .map_err(|e| KeepError::Unreadable {
            expr: expr.to_string(),
            addr,
            len: size,
            why: e.to_string(),
        })?;
    drop(buf);

    let mut runs = path_headers(&ev, &prog, &parsed);
    runs.push((addr, addr.saturating_add(size)));
    let mut truncated = None;
    if deep {
        let log = ReadLog::new();
        let recording = Recording::new(&unlogged, &log);
        let deep_prog = Program::new(dwarf, &recording, session.bias());
        let mut cfg = LoadConfig::canonical();
        cfg.max_values = MAX_KEEP_DEEP_VALUES;
        let v = Loader::new(&deep_prog, cfg).load(ty, addr);
        if !force {
            if let Some(finding) = value_key_material(&v, expr) {
                return Err(KeepError::KeyMaterial {
                    expr: expr.to_string(),
                    finding,
                });
            }
        }
        truncated = cut_short(&v);
        runs.extend(log.runs());
    }
    let runs = crate::memory::merge_intervals(runs);
    let bytes: u64 = super::plan(session.snapshot().memory_ranges(), &runs)
        .keep
        .iter()
        .map(|r| r.1)
        .sum();
    if deep && bytes > MAX_KEEP_DEEP_BYTES {
        return Err(KeepError::TooLarge {
            expr: expr.to_string(),
            bytes,
            limit: MAX_KEEP_DEEP_BYTES,
            hint: "; keep a narrower expression, or without --keep-deep",
        });
    }
    Ok(Kept {
        expr: expr.to_string(),
        type_name,
        addr,
        deep,
        runs,
        bytes,
        truncated,
    })
}

/// The header words of `e`'s prefixes that evaluating `e` reads to reach
/// its value: each prefix that designates memory and whose type is read
/// rather than offset into (pointers, slices, strings, interfaces, maps,
/// channels) contributes its own bytes. Struct and array prefixes
/// contribute nothing (a field or element is at an offset).
fn path_headers(ev: &Evaluator<'_, '_>, prog: &Program<'_>, e: &Expr) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cur = e;
    while let Expr::Select(base, _)
    | Expr::Index(base, _)
    | Expr::Deref(base)
    | Expr::TypeAssert(base, _)
    | Expr::Slice(base, _, _) = cur
    {
        if let Ok(Some((ty, addr))) = ev.place(base) {
            let (_, under) = prog.underlying(ty);
            let header = matches!(
                under.kind,
                TypeKind::Pointer { .. }
                    | TypeKind::Slice { .. }
                    | TypeKind::String
                    | TypeKind::Interface { .. }
                    | TypeKind::Map { .. }
                    | TypeKind::Chan { .. }
                    | TypeKind::UnsafePointer
            );
            if header && under.size <= MAX_KEPT_VALUE {
                out.push((addr, addr.saturating_add(under.size)));
            }
        }
        cur = base;
    }
    out
}

/// Why a loaded value is incomplete because of a load limit, if it is: a
/// string, collection or channel buffer loaded in part, a pointer not
/// followed, or the value count reached. Unreadable memory is not a limit
/// (there was nothing to keep).
fn cut_short(root: &Value) -> Option<String> {
    let mut stack = vec![root];
    while let Some(v) = stack.pop() {
        let cut = |what: &str, loaded: usize, len: u64| {
            Some(format!(
                "{what} of {len} at {} was loaded up to {loaded}",
                v.addr.map_or("?".to_string(), |a| format!("{a:#x}"))
            ))
        };
        match &v.kind {
            ValueKind::String { bytes, len } if (bytes.len() as u64) < *len => {
                return cut("a string", bytes.len(), *len)
            }
            ValueKind::Array { elems, len } | ValueKind::Slice { elems, len, .. }
                if (elems.len() as u64) < *len =>
            {
                return cut("an array or slice", elems.len(), *len)
            }
            ValueKind::Map { entries, len, .. } if (entries.len() as u64) < *len => {
                return cut("a map", entries.len(), *len)
            }
            ValueKind::Pointer {
                pointee: Pointee::NotLoaded,
                addr,
            } => return Some(format!("the pointer to {addr:#x} was not followed")),
            ValueKind::Unreadable(why)
                if why.starts_with("value too large") || why == "nesting too deep" =>
            {
                return Some(why.clone())
            }
            _ => {}
        }
        match &v.kind {
            ValueKind::Pointer {
                pointee: Pointee::Loaded(p),
                ..
            } => stack.push(p),
            ValueKind::Array { elems, .. } | ValueKind::Slice { elems, .. } => {
                stack.extend(elems.iter())
            }
            ValueKind::Chan { buffer, .. } => stack.extend(buffer.iter()),
            ValueKind::Struct { fields, .. } => stack.extend(fields.iter().map(|(_, f)| f)),
            ValueKind::Map { entries, .. } => {
                for (k, e) in entries {
                    stack.push(k);
                    stack.push(e);
                }
            }
            ValueKind::Interface { value: Some(d), .. } => stack.push(d),
            ValueKind::Func { captured, .. } => stack.extend(captured.iter().map(|(_, c)| c)),
            _ => {}
        }
    }
    None
}
