//! The exact text of `runtime.Stack(buf, true)` (traceback level 1):
//! header with status, minutes and `locked to thread`; logical frames with
//! runtime frames and wrappers hidden as Go hides them (which frames is the
//! runtime model's [`Runtime::visible_frames`]); arguments from FUNCDATA
//! ArgInfo with `?` for possibly-dead spill slots; `...N frames elided...`;
//! `created by ... in goroutine N`; ancestors. The oracle tests compare this
//! text byte for byte with the process's own, for every supported release.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::pclntab::{funcdata, pcdata};
use crate::runtime::goroutine::{G, G_LEAKED, G_RUNNING};
use crate::runtime::{Goroutine, LogicalFrame, PhysFrame, Runtime};

/// Frames printed before and after an elision (`tracebackInnerFrames`/`OuterFrames`).
const TRACEBACK_INNER: usize = 50;
const TRACEBACK_OUTER: usize = 50;
/// Bytes of ArgInfo read: `(TraceArgsMaxDepth*3+2)*TraceArgsLimit + 1`.
const ARG_INFO_MAX: usize = 171;
const TRACE_ARGS_END_SEQ: u8 = 0xff;
const TRACE_ARGS_START_AGG: u8 = 0xfe;
const TRACE_ARGS_END_AGG: u8 = 0xfd;
const TRACE_ARGS_DOTDOTDOT: u8 = 0xfc;
const TRACE_ARGS_OFFSET_TOO_LARGE: u8 = 0xfb;
/// Bound on ancestors followed (GODEBUG caps tracebackancestors at 1000).
const MAX_ANCESTORS: u64 = 1000;
/// Size of `runtime.ancestorInfo` ({pcs []uintptr; goid uint64; gopc uintptr}).
const ANCESTOR_INFO_SIZE: u64 = 40;

/// `goroutine N [status...]:` at level 1.
pub fn header(rt: &Runtime<'_>, g: &G) -> String {
    let mut s = format!("goroutine {} [{}", g.goid, rt.status_string(g));
    if rt.minor >= 26 && g.status() == G_LEAKED {
        s.push_str(" (leaked)");
    }
    if g.status_raw & crate::runtime::goroutine::G_SCAN != 0 {
        s.push_str(" (scan)");
    }
    let minutes = rt.wait_minutes(g);
    if minutes >= 1 {
        let _ = write!(s, ", {minutes} minutes");
    }
    if g.lockedm != 0 {
        s.push_str(", locked to thread");
    }
    let labels = if g.labels != 0 && rt.traceback_labels() {
        rt.labels(g)
    } else {
        Vec::new()
    };
    if labels.is_empty() {
        s.push_str("]:");
    } else if rt.minor >= 27 {
        // 1.27: after the bracket, quoted only when needed.
        let q = |t: &str| {
            if needs_quoting(t) {
                runtime_quoted(t)
            } else {
                t.to_string()
            }
        };
        let items: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), q(v)))
            .collect();
        let _ = write!(s, "] {{{}}}:", items.join(", "));
    } else {
        let items: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}: {}", runtime_quoted(k), runtime_quoted(v)))
            .collect();
        let _ = write!(s, " labels:{{{}}}]:", items.join(", "));
    }
    s
}

/// `printArgs`: the argument list of a physical frame.
pub fn print_args(rt: &Runtime<'_>, frame: &PhysFrame) -> String {
    let tab = rt.tab();
    let Some(f) = tab.find_func(frame.pc) else {
        return String::new();
    };
    let Some(info) = f.funcdata_bytes(funcdata::ARG_INFO, ARG_INFO_MAX) else {
        return String::new();
    };
    let live_idx = f.pcdata(pcdata::ARG_LIVE_INDEX, frame.sym_pc).unwrap_or(-1);
    let live_info = if live_idx > 0 {
        f.funcdata_bytes(funcdata::ARG_LIVE_INFO, live_idx as usize + 64)
    } else {
        f.funcdata_bytes(funcdata::ARG_LIVE_INFO, 1)
    };
    let start_offset = live_info.and_then(|b| b.first().copied()).unwrap_or(0xff);
    let is_live = |off: u8, slot: u8| -> bool {
        let Some(bits) = live_info else { return true };
        if live_idx <= 0 || off < start_offset {
            return true;
        }
        bits.get(live_idx as usize + usize::from(slot / 8))
            .is_none_or(|b| b & (1 << (slot % 8)) != 0)
    };
    let argp = frame.argp();
    let mut out = String::new();
    let mut start = true;
    let mut pi = 0usize;
    let mut slot = 0u8;
    while let Some(&op) = info.get(pi) {
        pi += 1;
        match op {
            TRACE_ARGS_END_SEQ => break,
            TRACE_ARGS_START_AGG => {
                if !start {
                    out.push_str(", ");
                }
                out.push('{');
                start = true;
                continue;
            }
            TRACE_ARGS_END_AGG => out.push('}'),
            TRACE_ARGS_DOTDOTDOT => {
                if !start {
                    out.push_str(", ");
                }
                out.push_str("...");
            }
            TRACE_ARGS_OFFSET_TOO_LARGE => {
                if !start {
                    out.push_str(", ");
                }
                out.push('_');
            }
            off => {
                if !start {
                    out.push_str(", ");
                }
                let Some(&size) = info.get(pi) else { break };
                pi += 1;
                let mut x = rt
                    .mem()
                    .read_u64(argp.wrapping_add(u64::from(off)))
                    .unwrap_or(0);
                if size < 8 {
                    let shift = 64 - u32::from(size) * 8;
                    x = (x << shift) >> shift;
                }
                let _ = write!(out, "{x:#x}");
                if !is_live(off, slot) {
                    out.push('?');
                }
                if off >= start_offset {
                    slot = slot.wrapping_add(1);
                }
            }
        }
        start = false;
    }
    out
}

/// One logical frame as two lines of traceback text.
fn write_frame(rt: &Runtime<'_>, out: &mut String, g: &Goroutine, lf: &LogicalFrame) {
    let name = rt.print_name(&lf.name);
    if lf.inlined {
        let _ = writeln!(out, "{name}(...)");
        let _ = writeln!(out, "\t{}:{}", lf.file, lf.line);
        return;
    }
    let Some(pf) = g.frames.get(lf.phys) else {
        return;
    };
    let _ = writeln!(out, "{name}({})", print_args(rt, pf));
    let _ = write!(out, "\t{}:{}", lf.file, lf.line);
    if pf.pc > pf.info.entry {
        let _ = write!(out, " +{:#x}", pf.pc - pf.info.entry);
    }
    out.push('\n');
}

/// `created by F in goroutine N` lines, or `None` when Go prints none.
pub fn created_by(rt: &Runtime<'_>, g: &G) -> Option<(String, String, u32, u64)> {
    if g.goid == 1 {
        return None;
    }
    let info = rt.pc_info(g.gopc)?;
    if !rt.show_frame(&info.name, info.func_id, false, "") {
        return None;
    }
    let trace_pc = if g.gopc > info.entry {
        g.gopc - 1
    } else {
        g.gopc
    };
    let (file, line) = rt
        .sym_info(trace_pc)
        .and_then(|s| s.frames.first().map(|f| (f.1.to_string(), f.2)))
        .unwrap_or_else(|| ("?".to_string(), 0));
    Some((rt.print_name(&info.name), file, line, info.entry))
}

/// The whole `runtime.Stack` block of one goroutine (ends with a newline).
pub fn go_traceback(rt: &Runtime<'_>, g: &Goroutine) -> String {
    let mut out = header(rt, &g.g);
    out.push('\n');
    if g.frames.is_empty() && g.g.status() == G_RUNNING {
        out.push_str("\tgoroutine running on other thread; stack unavailable\n");
    } else {
        let shown = rt.visible_frames(g);
        let total = shown.len();
        let elide = total.saturating_sub(TRACEBACK_INNER + TRACEBACK_OUTER);
        for (k, &i) in shown.iter().enumerate() {
            if elide > 0 && k == TRACEBACK_INNER {
                let _ = writeln!(out, "...{elide} frames elided...");
            }
            if elide > 0 && k >= TRACEBACK_INNER && k < TRACEBACK_INNER + elide {
                continue;
            }
            if let Some(lf) = g.logical.get(i) {
                write_frame(rt, &mut out, g, lf);
            }
        }
    }
    if let Some((name, file, line, entry)) = created_by(rt, &g.g) {
        out.push_str("created by ");
        out.push_str(&name);
        if g.g.parent_goid != 0 {
            let _ = write!(out, " in goroutine {}", g.g.parent_goid);
        }
        let _ = write!(out, "\n\t{file}:{line}");
        if g.g.gopc > entry {
            let _ = write!(out, " +{:#x}", g.g.gopc - entry);
        }
        out.push('\n');
    }
    write_ancestors(rt, &mut out, &g.g);
    out
}

/// `printAncestorTraceback` for each recorded ancestor (only present
/// with `GODEBUG=tracebackancestors=N`).
fn write_ancestors(rt: &Runtime<'_>, out: &mut String, g: &G) {
    if g.ancestors == 0 {
        return;
    }
    let mem = rt.mem();
    let (Ok(ptr), Ok(len)) = (
        mem.read_u64(g.ancestors),
        mem.read_u64(g.ancestors.wrapping_add(8)),
    ) else {
        return;
    };
    for i in 0..len.min(MAX_ANCESTORS) {
        let Ok(raw) = mem.read_vec(
            ptr.wrapping_add(i * ANCESTOR_INFO_SIZE),
            ANCESTOR_INFO_SIZE as usize,
        ) else {
            return;
        };
        let word = |o: usize| {
            raw.get(o..o + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let (pcs_ptr, pcs_len, goid, gopc) = (word(0), word(8), word(24), word(32));
        let _ = writeln!(out, "[originating from goroutine {goid}]:");
        let n = pcs_len.min(TRACEBACK_INNER as u64);
        let pcs = mem.read_vec(pcs_ptr, (n * 8) as usize).unwrap_or_default();
        for (fidx, pc) in pcs
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .enumerate()
        {
            let Some(info) = rt.pc_info(pc) else {
                continue;
            };
            // The innermost logical frame at the recorded PC itrt.
            let Some(sym) = rt.sym_info(pc) else {
                continue;
            };
            let Some((name, file, line, _)) = sym.frames.first() else {
                continue;
            };
            // Shown or not by the physical function, printed as the innermost one.
            if !rt.show_frame(&info.name, info.func_id, fidx == 0, "") {
                continue;
            }
            let _ = write!(out, "{}(...)\n\t{file}:{line}", rt.print_name(name));
            if pc > info.entry {
                let _ = write!(out, " +{:#x}", pc - info.entry);
            }
            out.push('\n');
        }
        if pcs_len == TRACEBACK_INNER as u64 {
            out.push_str("...additional frames elided...\n");
        }
        if goid != 1 {
            if let Some(info) = rt.pc_info(gopc) {
                if rt.show_frame(&info.name, info.func_id, false, "") {
                    let trace_pc = if gopc > info.entry { gopc - 1 } else { gopc };
                    let (file, line) = rt
                        .sym_info(trace_pc)
                        .and_then(|s| s.frames.first().map(|f| (f.1.clone(), f.2)))
                        .unwrap_or_else(|| (Arc::from("?"), 0));
                    let _ = write!(
                        out,
                        "created by {}\n\t{file}:{line}",
                        rt.print_name(&info.name)
                    );
                    if gopc > info.entry {
                        let _ = write!(out, " +{:#x}", gopc - info.entry);
                    }
                    out.push('\n');
                }
            }
        }
    }
}

/// The runtime's `printquoted` (Go 1.26): `\n \r \t \\ \"` escaped,
/// printable ASCII as is, other runes as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn runtime_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for r in s.chars() {
        match r {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' | '"' => {
                out.push('\\');
                out.push(r);
            }
            ' '..='~' => out.push(r),
            _ => {
                let v = u32::from(r);
                let _ = if v < 127 {
                    write!(out, "\\x{v:02x}")
                } else if v < 0x1_0000 {
                    write!(out, "\\u{v:04x}")
                } else {
                    write!(out, "\\U{v:08x}")
                };
            }
        }
    }
    out.push('"');
    out
}

/// `tracebackStringNeedsQuoting` (Go 1.27): anything but `[A-Za-z0-9./_]`.
fn needs_quoting(s: &str) -> bool {
    !s.chars()
        .all(|r| r.is_ascii_alphanumeric() || r == '.' || r == '/' || r == '_')
}

#[cfg(test)]
mod tests {

    #[test]
    fn labels_are_quoted_like_printquoted() {
        use super::runtime_quoted;
        assert_eq!(runtime_quoted("acme"), "\"acme\"");
        assert_eq!(runtime_quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(runtime_quoted("\u{1}"), "\"\\x01\"");
        assert_eq!(runtime_quoted("é"), "\"\\u00e9\"");
        assert_eq!(runtime_quoted("😀"), "\"\\U0001f600\"");
    }
}
