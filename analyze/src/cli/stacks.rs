//! `goroutines`, `bt`, `threads` and `sched`: the runtime's view of the
//! captured process (see CONTRACT.md for the `--format go` and JSON shapes).

use std::io::Write;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::error::AnalyzeError;
use crate::runtime::cframes::ThreadFrame;
use crate::runtime::format::{Filter, GroupKey, Grouper, LocationKind};
use crate::runtime::traceback::GOROUTINE_BATCH;
use crate::runtime::{frames_of, Frame, Goroutine, Runtime};
use crate::Target;

/// Output formats of `goroutines`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum GoroutinesFormat {
    /// One Delve-style line per goroutine (or per group with `--group`).
    #[default]
    Text,
    /// Exactly the text of Go's `runtime.Stack(buf, true)`.
    Go,
    /// A JSON array, one object per goroutine (CONTRACT.md).
    Json,
}

/// Output formats of `bt`, `threads`, `sched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TextOrJson {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// `rdlv goroutines SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct GoroutinesArgs {
    /// Show the user location: topmost frame outside private runtime code (default).
    #[arg(short = 'u', long = "user")]
    pub user: bool,
    /// Show the runtime location: the topmost frame.
    #[arg(short = 'r', long = "runtime")]
    pub runtime: bool,
    /// Show where the goroutine was created (the go statement).
    #[arg(short = 'g', long = "go")]
    pub go: bool,
    /// Show the start function.
    #[arg(short = 's', long = "start")]
    pub start: bool,
    /// Show pprof labels.
    #[arg(short = 'l', long = "labels")]
    pub labels: bool,
    /// Group goroutines with identical stacks and status, biggest group first.
    #[arg(long)]
    pub group: bool,
    /// Include the runtime's own (system) goroutines.
    #[arg(long)]
    pub system: bool,
    /// Only goroutines whose status/wait reason contains this text (e.g. "chan receive").
    #[arg(long = "wait-reason", value_name = "TEXT")]
    pub wait_reason: Option<String>,
    /// Only goroutines blocked at least this long: minutes, or a duration like 90s, 5m, 2h.
    #[arg(long = "min-wait", value_name = "DURATION")]
    pub min_wait: Option<String>,
    /// Only goroutines with this pprof label: KEY or KEY=VALUE.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub label: Option<String>,
    /// Only goroutines with a frame whose function name contains this text.
    #[arg(long = "func", value_name = "TEXT")]
    pub func: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GoroutinesFormat::Text)]
    pub format: GoroutinesFormat,
}

/// `rdlv bt SNAP GOID`.
#[derive(Debug, Clone, Default, Args)]
pub struct BtArgs {
    /// Goroutine id.
    #[arg(value_name = "GOID")]
    pub goid: u64,
    /// Also print each frame's local variables and arguments (Delve's `bt -full`).
    #[arg(long)]
    pub full: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// `rdlv threads SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct ThreadsArgs {
    /// Also print each thread's stack, from its registers (g0 stacks
    /// continue onto the goroutine through systemstack/morestack).
    #[arg(long)]
    pub stacks: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// `rdlv sched SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct SchedArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// Parses `--min-wait`: plain minutes, or a number with s/m/h.
pub fn parse_min_wait(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "m"),
    };
    let n: i64 = num.parse().map_err(|_| {
        format!("--min-wait {text:?}: expected minutes or a duration like 90s, 5m, 2h")
    })?;
    match unit {
        "s" => Ok(n / 60),
        "m" | "min" => Ok(n),
        "h" => Ok(n.saturating_mul(60)),
        _ => Err(format!(
            "--min-wait {text:?}: unknown unit {unit:?} (use s, m or h)"
        )),
    }
}

impl GoroutinesArgs {
    fn location_kind(&self) -> LocationKind {
        if self.runtime {
            LocationKind::Runtime
        } else if self.go {
            LocationKind::Go
        } else if self.start {
            LocationKind::Start
        } else {
            LocationKind::User
        }
    }

    fn filter(&self) -> anyhow::Result<Filter> {
        Ok(Filter {
            system: self.system,
            wait_reason: self.wait_reason.clone(),
            min_wait_minutes: match &self.min_wait {
                Some(t) => Some(parse_min_wait(t).map_err(crate::cli::UsageError)?),
                None => None,
            },
            label: self.label.clone(),
            func: self.func.clone(),
        })
    }
}

/// `goroutines`: list goroutines as text, Go traceback text or JSON.
///
/// Streams: goroutines are unwound and formatted one batch at a time
/// ([`GOROUTINE_BATCH`] `allgs` entries, in parallel) and written in
/// `allgs` order, so memory does not grow with the goroutine count; with
/// `--group` only a key and an id per goroutine are kept.
pub fn run_goroutines(
    target: &Target,
    args: &GoroutinesArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let filter = args.filter()?;
    let rt = Runtime::new(target)?;
    let mut out = std::io::BufWriter::new(out);
    let selected = |g: &Goroutine| rt.matches(g, &filter);
    match (args.format, args.group) {
        (GoroutinesFormat::Go, false) => {
            let mut first = true;
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| selected(&g).then(|| rt.go_traceback(&g)),
                |blocks: Vec<String>| -> anyhow::Result<()> {
                    for b in blocks {
                        if !first {
                            out.write_all(b"\n")?;
                        }
                        first = false;
                        out.write_all(b.as_bytes())?;
                    }
                    Ok(())
                },
            )?;
        }
        (GoroutinesFormat::Json, false) => {
            // One object at a time: 1M goroutines make ~1.5 GB of JSON.
            let mut first = true;
            out.write_all(b"[")?;
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| selected(&g).then(|| rt.goroutine_json_bytes(&g)),
                |items: Vec<serde_json::Result<Vec<u8>>>| -> anyhow::Result<()> {
                    for item in items {
                        if !first {
                            out.write_all(b",")?;
                        }
                        first = false;
                        out.write_all(&item?)?;
                    }
                    Ok(())
                },
            )?;
            out.write_all(b"]\n")?;
        }
        (format, true) => {
            let mut grouper = Grouper::default();
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| {
                    selected(&g).then(|| {
                        let key = rt.group_key(&g);
                        let minutes = rt.wait_minutes(&g.g);
                        (key, minutes, g)
                    })
                },
                |batch: Vec<(GroupKey, i64, Goroutine)>| -> anyhow::Result<()> {
                    for (key, minutes, g) in batch {
                        grouper.add(key, minutes, g);
                    }
                    Ok(())
                },
            )?;
            let members = grouper.members();
            let groups = grouper.finish();
            if format == GoroutinesFormat::Json {
                out.write_all(b"[")?;
                for (i, group) in groups.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut out, &rt.group_json(group))?;
                }
                out.write_all(b"]\n")?;
            } else {
                for (i, group) in groups.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b"\n")?;
                    }
                    out.write_all(rt.group_text(group).as_bytes())?;
                }
                writeln!(out, "[{members} goroutines in {} groups]", groups.len())?;
            }
        }
        (GoroutinesFormat::Text, false) => {
            let kind = args.location_kind();
            let mut count = 0usize;
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| selected(&g).then(|| rt.summary_line(&g, kind, args.labels)),
                |lines: Vec<String>| -> anyhow::Result<()> {
                    count += lines.len();
                    for l in lines {
                        out.write_all(l.as_bytes())?;
                        out.write_all(b"\n")?;
                    }
                    Ok(())
                },
            )?;
            writeln!(out, "[{count} goroutines]")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// JSON of one frame: the CONTRACT keys plus sp, cfa and entry.
fn frame_json(f: &Frame) -> Value {
    json!({
        "func": f.function,
        "file": f.file,
        "line": f.line,
        "pc": format!("{:#x}", f.pc),
        "inlined": f.inlined,
        "sp": format!("{:#x}", f.sp),
        "cfa": format!("{:#x}", f.cfa),
        "entry": format!("{:#x}", f.entry),
    })
}

/// Logical frames of physical frames not tied to a listed goroutine.
fn frames_of_phys(rt: &Runtime<'_>, phys: &[crate::runtime::PhysFrame]) -> Vec<Frame> {
    let logical = rt.expand(phys).into();
    let g = Goroutine {
        g: crate::runtime::G::default(),
        thread: None,
        system: false,
        frames: phys.to_vec(),
        logical,
    };
    frames_of(&g)
}

/// A thread's frames: native ones (function = ELF symbol or `?`, no file)
/// then Go ones with inlined calls expanded.
fn thread_stack_frames(rt: &Runtime<'_>, t: &crate::runtime::ThreadState) -> Vec<Frame> {
    let stack = rt.thread_stack(t);
    let mut out = Vec::new();
    let mut go = Vec::new();
    for f in stack {
        match f {
            ThreadFrame::Go(pf) => go.push(pf),
            ThreadFrame::Native { pc, sp, symbol } => out.push(Frame {
                pc,
                sym_pc: pc,
                sp,
                cfa: 0,
                function: symbol.unwrap_or_else(|| "?".to_string()),
                entry: 0,
                file: String::new(),
                line: 0,
                inlined: false,
                inline_depth: 0,
                physical_index: out.len(),
            }),
        }
    }
    let base = out.len();
    out.extend(frames_of_phys(rt, &go).into_iter().map(|mut f| {
        f.physical_index += base;
        f
    }));
    out
}

/// `bt`: every frame of one goroutine, runtime frames included.
pub fn run_bt(target: &Target, args: &BtArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let g = rt.goroutine(args.goid)?;
    let frames = frames_of(&g);
    match args.format {
        TextOrJson::Json => {
            let v: Vec<Value> = frames.iter().map(frame_json).collect();
            out.write_all(serde_json::to_string(&v)?.as_bytes())?;
            writeln!(out)?;
        }
        TextOrJson::Text => {
            if frames.is_empty() {
                return Err(AnalyzeError::NotFound(format!(
                    "goroutine {} has no readable stack",
                    args.goid
                ))
                .into());
            }
            for (i, f) in frames.iter().enumerate() {
                let inl = if f.inlined { " (inlined)" } else { "" };
                writeln!(
                    out,
                    "{i:>2}  {:#018x} in {}{inl}\n    at {}:{}",
                    f.pc,
                    rt.print_name(&f.function),
                    f.file,
                    f.line
                )?;
                if args.full {
                    // A frame without DWARF (assembly, stripped) still gets
                    // its line; the reason replaces the variables.
                    match super::values::frame_locals_lines(target, args.goid, i) {
                        Ok(lines) => {
                            for line in lines {
                                writeln!(out, "        {line}")?;
                            }
                        }
                        Err(e) => writeln!(out, "        (no variables: {e})")?,
                    }
                }
            }
        }
    }
    Ok(())
}

/// `threads`: every OS thread, where it is and which goroutine it runs.
pub fn run_threads(target: &Target, args: &ThreadsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let threads = rt.threads();
    let goid_of = |g: u64| -> Option<u64> {
        if g == 0 {
            None
        } else {
            rt.mem().read_u64(g.wrapping_add(rt.layout.g.goid)).ok()
        }
    };
    let mut rows = Vec::new();
    for t in &threads {
        let loc = rt.pc_info(t.regs.pc).and_then(|info| {
            let s = rt.sym_info(t.regs.pc)?;
            let (_, file, line, _) = s.frames.first()?;
            Some((rt.print_name(&info.name), file.to_string(), *line))
        });
        let (on, goid) = match (&t.m, t.tls_g) {
            (Some(m), Some(g)) if g == m.g0 => ("g0", goid_of(m.curg)),
            (Some(m), Some(g)) if g == m.gsignal => ("gsignal", goid_of(m.curg)),
            (Some(m), Some(_)) if m.curg != 0 => ("goroutine", goid_of(m.curg)),
            (Some(_), _) => ("idle", None),
            (None, _) => ("non-Go", None),
        };
        let frames = if args.stacks {
            thread_stack_frames(&rt, t)
        } else {
            Vec::new()
        };
        rows.push((t, loc, on, goid, frames));
    }
    match args.format {
        TextOrJson::Json => {
            let v: Vec<Value> = rows
                .iter()
                .map(|(t, loc, on, goid, frames)| {
                    let mut v = json!({
                        "tid": t.tid,
                        "name": t.name,
                        "state": t.state,
                        "pc": format!("{:#x}", t.regs.pc),
                        "sp": format!("{:#x}", t.regs.sp),
                        "func": loc.as_ref().map(|l| l.0.clone()),
                        "file": loc.as_ref().map(|l| l.1.clone()),
                        "line": loc.as_ref().map(|l| l.2),
                        "m": t.m.as_ref().map(|m| m.id),
                        "on": on,
                        "goroutine": goid,
                    });
                    if args.stacks {
                        v["frames"] = Value::Array(frames.iter().map(frame_json).collect());
                    }
                    v
                })
                .collect();
            out.write_all(serde_json::to_string(&v)?.as_bytes())?;
            writeln!(out)?;
        }
        TextOrJson::Text => {
            for (t, loc, on, goid, frames) in &rows {
                let marker = if *on == "goroutine" { '*' } else { ' ' };
                let place = match loc {
                    Some((f, file, line)) => format!("{file}:{line} {f}"),
                    None => "(not Go code)".to_string(),
                };
                let m =
                    t.m.as_ref()
                        .map(|m| format!("M{}", m.id))
                        .unwrap_or_else(|| "-".into());
                let g = match (on, goid) {
                    (&"goroutine", Some(id)) => format!("goroutine {id}"),
                    (&"g0" | &"gsignal", Some(id)) => format!("{on} (curg {id})"),
                    (other, _) => other.to_string(),
                };
                writeln!(
                    out,
                    "{marker} Thread {} at {:#x} {place} [{m} {g}] ({}, {})",
                    t.tid, t.regs.pc, t.name, t.state
                )?;
                for f in frames {
                    if f.file.is_empty() {
                        writeln!(out, "    {:#018x} in {} (native)", f.pc, f.function)?;
                        continue;
                    }
                    let inl = if f.inlined { " (inlined)" } else { "" };
                    writeln!(
                        out,
                        "    {:#018x} in {}{inl}\n        at {}:{}",
                        f.pc,
                        rt.print_name(&f.function),
                        f.file,
                        f.line
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `sched`: the scheduler as `GODEBUG=schedtrace=1,scheddetail=1` prints it.
pub fn run_sched(target: &Target, args: &SchedArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let state = rt.sched_state()?;
    match args.format {
        TextOrJson::Json => {
            out.write_all(serde_json::to_string(&rt.sched_json(&state))?.as_bytes())?;
            writeln!(out)?;
        }
        TextOrJson::Text => out.write_all(rt.sched_text(&state)?.as_bytes())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_min_wait;

    #[test]
    fn min_wait_accepts_minutes_and_durations() {
        assert_eq!(parse_min_wait("5"), Ok(5));
        assert_eq!(parse_min_wait("5m"), Ok(5));
        assert_eq!(parse_min_wait("2h"), Ok(120));
        assert_eq!(parse_min_wait("90s"), Ok(1));
        assert!(parse_min_wait("5x").is_err());
        assert!(parse_min_wait("m").is_err());
    }
}
