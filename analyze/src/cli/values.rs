//! `print`, `vars`, `locals` and `args`: typed values from DWARF.
//!
//! Each command is a clap `Args` struct (registered in `super::commands`,
//! constructible from its public fields) and a `run_*` function writing to
//! any `Write`. The goroutine and frame arrive resolved: the caller (the
//! console) takes them from the options or the REPL's selection.

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::dwarf::DwarfInfo;
use crate::error::{AnalyzeError, NotFound};
use crate::value::expr::{EvalError, Evaluator, ScopeVar, VarSource};
use crate::value::{frame, json, text, LoadConfig, Loader, Program, Value, ValueKind};
use crate::Target;

/// Output format of the value commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ValueFormat {
    /// Delve's text.
    #[default]
    Text,
    /// Canonical value JSON (CONTRACT.md), complete.
    Json,
}

/// Limits of the text format (Delve's config keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct LimitArgs {
    /// Most string bytes shown in text (Delve's max-string-len, default 64).
    #[arg(long, value_name = "N")]
    pub max_string_len: Option<u64>,
    /// Most elements of an array, slice or map shown in text
    /// (max-array-values, default 64). A channel's runtime fields are
    /// shown with the defaults whatever this says, as Delve shows them.
    #[arg(long, value_name = "N")]
    pub max_array_values: Option<u64>,
    /// Nesting levels of structs and maps loaded in text (max-variable-recurse, default 1).
    #[arg(long, value_name = "N")]
    pub max_variable_recurse: Option<u32>,
}

impl LimitArgs {
    /// These limits, with `defaults` (the configuration file's) where the
    /// command gives none.
    pub fn or(&self, defaults: &LimitArgs) -> LimitArgs {
        LimitArgs {
            max_string_len: self.max_string_len.or(defaults.max_string_len),
            max_array_values: self.max_array_values.or(defaults.max_array_values),
            max_variable_recurse: self.max_variable_recurse.or(defaults.max_variable_recurse),
        }
    }

    fn config(&self, format: ValueFormat) -> LoadConfig {
        match format {
            ValueFormat::Json => LoadConfig::canonical(),
            ValueFormat::Text => {
                let mut c = LoadConfig::delve_print();
                if let Some(n) = self.max_string_len {
                    c.max_string_len = n;
                }
                if let Some(n) = self.max_array_values {
                    c.max_array_values = n;
                }
                if let Some(n) = self.max_variable_recurse {
                    c.max_recurse = n;
                }
                c
            }
        }
    }
}

/// `print EXPR`: evaluate an expression (globals, locals, fields, indexes,
/// `*p`, `&x`, `len`, `cap`, conversions).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PrintArgs {
    /// The expression; several words are joined with spaces.
    #[arg(required = true, num_args = 1.., value_name = "EXPR", allow_negative_numbers = true)]
    pub expr: Vec<String>,
    /// Goroutine whose frame supplies locals and arguments (in the REPL,
    /// default: the selected goroutine).
    #[arg(long, short = 'g', value_name = "GOID")]
    pub goroutine: Option<u64>,
    /// Frame index in `bt` (0 = innermost; in the REPL, default: the selected frame).
    #[arg(long, value_name = "N")]
    pub frame: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValueFormat::Text)]
    pub format: ValueFormat,
    /// Text limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print the expression's type as Delve's `whatis` does instead of its value.
    #[arg(long)]
    pub whatis: bool,
}

/// `whatis EXPR`: Delve's command of that name, the type of an expression.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct WhatisArgs {
    /// The expression; several words are joined with spaces.
    #[arg(required = true, num_args = 1.., value_name = "EXPR", allow_negative_numbers = true)]
    pub expr: Vec<String>,
    /// Goroutine whose frame supplies locals and arguments (in the REPL,
    /// default: the selected goroutine).
    #[arg(long, short = 'g', value_name = "GOID")]
    pub goroutine: Option<u64>,
    /// Frame index in `bt` (0 = innermost; in the REPL, default: the selected frame).
    #[arg(long, value_name = "N")]
    pub frame: Option<usize>,
}

/// `vars [REGEX]`: package variables.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VarsArgs {
    /// Filter (a regular expression: `.`, `*`, `+`, `?`, `^`, `$`, `[...]`).
    #[arg(value_name = "REGEX")]
    pub regex: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValueFormat::Text)]
    pub format: ValueFormat,
    /// Text limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `locals` / `args`: variables of one frame of one goroutine.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FrameVarsArgs {
    /// Filter on names (regular expression).
    #[arg(value_name = "REGEX")]
    pub regex: Option<String>,
    /// Goroutine (in the REPL, default: the selected goroutine).
    #[arg(long, short = 'g', value_name = "GOID")]
    pub goroutine: Option<u64>,
    /// Frame index in `bt` (0 = innermost; in the REPL, default: the selected frame).
    #[arg(long, value_name = "N")]
    pub frame: Option<usize>,
    /// Full values on several lines (Delve's `-v`) instead of one-line summaries.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValueFormat::Text)]
    pub format: ValueFormat,
    /// Text limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `funcs [REGEX]`: function names of the pclntab.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct FuncsArgs {
    /// Filter (a regular expression, as for `vars`).
    #[arg(value_name = "REGEX")]
    pub regex: Option<String>,
}

/// `funcs`: every function name of the executable matching the filter,
/// sorted (from the pclntab, so it works on stripped binaries).
pub fn run_funcs(target: &Target, args: &FuncsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let regex = args.regex.as_deref().map(Regex::new).transpose()?;
    let pclntab = target.pclntab()?;
    let mut names: Vec<&str> = pclntab
        .funcs()
        .map(|f| f.name())
        .filter(|name| regex.as_ref().is_none_or(|r| r.is_match(name)))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        writeln!(out, "{name}")?;
    }
    Ok(())
}

/// Loading values recurses as deep as the value nests (up to
/// [`crate::value::MAX_DEPTH`] levels): run it on a thread with a large stack.
const EVAL_STACK: usize = 512 << 20;

pub(crate) fn with_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("rdlv-eval".into())
            .stack_size(EVAL_STACK)
            .spawn_scoped(s, f)
            .context("cannot start the evaluation thread")?;
        h.join()
            .map_err(|_| anyhow::anyhow!("internal error while loading a value"))
    })
}

fn dwarf(target: &Target) -> anyhow::Result<std::sync::Arc<DwarfInfo>> {
    Ok(target.dwarf().map_err(AnalyzeError::from)?.clone())
}

fn program<'a>(
    target: &'a Target,
    info: &'a DwarfInfo,
    names: &'a (dyn Fn(u64) -> Option<String> + Sync),
) -> Program<'a> {
    let mut p = Program::new(info, target.memory(), target.bias());
    p.func_name = Some(names);
    p
}

fn func_namer(target: &Target) -> impl Fn(u64) -> Option<String> + Sync + '_ {
    move |pc| {
        let tab = target.pclntab().ok()?;
        let f = tab.find_func(pc)?;
        (f.entry() == pc).then(|| f.name().to_string())
    }
}

fn eval_error(e: EvalError) -> anyhow::Error {
    AnalyzeError::Eval(e).into()
}

fn unreadable_value(src: &str, why: &str) -> anyhow::Error {
    AnalyzeError::from(NotFound::UnreadableValue {
        expr: src.to_string(),
        why: why.to_string(),
    })
    .into()
}

/// The variables of frame `frame` of goroutine `goid`.
pub fn frame_variables(
    target: &Target,
    prog: &Program<'_>,
    goid: u64,
    frame: usize,
) -> anyhow::Result<(String, Vec<ScopeVar>)> {
    Ok(frame::goroutine_scope(target, prog, goid, frame)?)
}

/// `print`.
pub fn run_print(target: &Target, args: &PrintArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.whatis {
        return run_whatis(
            target,
            &WhatisArgs {
                expr: args.expr.clone(),
                goroutine: args.goroutine,
                frame: args.frame,
            },
            out,
        );
    }
    let cfg = args.limits.config(args.format);
    let format = args.format;
    let mut waiting = None;
    let rendered = in_scope(target, &args.expr, args.goroutine, args.frame, |ev, src| {
        let v = ev.eval_str(src, cfg).map_err(eval_error)?;
        if let ValueKind::Unreadable(why) = &v.kind {
            return Err(unreadable_value(src, why));
        }
        if let ValueKind::Chan {
            receivers, senders, ..
        } = &v.kind
        {
            waiting = Some((receivers.clone(), senders.clone()));
        }
        Ok(match format {
            ValueFormat::Json => json::to_json(&v),
            ValueFormat::Text => text::render(&v),
        })
    })?;
    writeln!(out, "{rendered}")?;
    if let (ValueFormat::Text, Some((receivers, senders))) = (format, waiting) {
        write_channel_waiters(target, &receivers, &senders, out)?;
    }
    Ok(())
}

/// Most goroutines Delve's `print` lists after a channel (receivers, then
/// senders): it asks for 100 and its queue walk stops only once it holds
/// more than that, so 101.
const MAX_CHANNEL_WAITERS: usize = 101;

/// What Delve's `print` writes after a channel: a blank line, `Goroutines
/// waiting on this channel:` and a line per goroutine in its receive queue,
/// then its send queue.
fn write_channel_waiters(
    target: &Target,
    receivers: &[u64],
    senders: &[u64],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "\nGoroutines waiting on this channel:")?;
    if receivers.is_empty() && senders.is_empty() {
        return Ok(());
    }
    let rt = crate::runtime::Runtime::new(target)?;
    let ids: Vec<u64> = receivers
        .iter()
        .chain(senders)
        .take(MAX_CHANNEL_WAITERS)
        .copied()
        .collect();
    for g in rt.goroutines_by_id(&ids)? {
        writeln!(
            out,
            "  {}",
            crate::present::goroutine::delve_goroutine_line(&rt, &g)
        )?;
    }
    Ok(())
}

/// The address a Go expression designates in the heap, for `heap --path`:
/// what a pointer, map, channel or slice points at, else where the value
/// itself lives.
pub fn expr_address(target: &Target, src: &str) -> anyhow::Result<u64> {
    let info = dwarf(target)?;
    let names = func_namer(target);
    let prog = program(target, &info, &names);
    let v = with_big_stack(|| {
        Evaluator::new(&prog, Vec::new())
            .in_function("main.main")
            .eval_str(src, LoadConfig::canonical_shallow())
    })?
    .map_err(eval_error)?;
    let addr = match &v.kind {
        ValueKind::Pointer { addr, .. }
        | ValueKind::Map { addr, .. }
        | ValueKind::Chan { addr, .. }
        | ValueKind::UnsafePointer(addr) => Some(*addr),
        ValueKind::Slice { base, .. } => Some(*base),
        ValueKind::Unreadable(why) => return Err(unreadable_value(src, why)),
        _ => v.addr,
    };
    match addr {
        Some(a) if a != 0 => Ok(a),
        _ => Err(AnalyzeError::from(NotFound::NotPointer {
            expr: src.to_string(),
            type_name: v.type_name.clone(),
        })
        .into()),
    }
}

/// `whatis`: the type name as Delve prints it, `Real type:` for a named type
/// whose underlying type differs, `Concrete type:` of an interface; nothing
/// for an untyped constant (Delve prints nothing either).
pub fn run_whatis(target: &Target, args: &WhatisArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let text = in_scope(target, &args.expr, args.goroutine, args.frame, |ev, src| {
        ev.whatis(src).map_err(eval_error)
    })?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Runs `f` with an evaluator for the scope of `goroutine`'s frame `frame`
/// (globals only without a goroutine) and the expression words joined, on
/// the big-stack evaluation thread.
fn in_scope(
    target: &Target,
    expr: &[String],
    goroutine: Option<u64>,
    frame: Option<usize>,
    f: impl FnOnce(&Evaluator<'_, '_>, &str) -> anyhow::Result<String> + Send,
) -> anyhow::Result<String> {
    let info = dwarf(target)?;
    let names = func_namer(target);
    let prog = program(target, &info, &names);
    let (function, scope) = match goroutine {
        Some(goid) => frame_variables(target, &prog, goid, frame.unwrap_or(0))?,
        None => ("main.main".to_string(), Vec::new()),
    };
    let src = expr.join(" ");
    with_big_stack(|| {
        let ev = Evaluator::new(&prog, scope).in_function(&function);
        f(&ev, &src)
    })?
}

/// `vars [REGEX]`.
pub fn run_vars(target: &Target, args: &VarsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let info = dwarf(target)?;
    let names = func_namer(target);
    let prog = program(target, &info, &names);
    let re = args.regex.as_deref().map(Regex::new).transpose()?;
    let globals: Vec<_> = info
        .globals()
        .filter(|g| re.as_ref().is_none_or(|r| r.is_match(&g.name)))
        .collect();
    let cfg = args.limits.config(args.format);
    let format = args.format;
    let text = with_big_stack(|| {
        let mut s = String::new();
        if format == ValueFormat::Json {
            s.push('{');
        }
        for (i, g) in globals.iter().enumerate() {
            let v = Loader::new(&prog, cfg.clone()).load(g.ty, g.addr.wrapping_add(prog.bias));
            match format {
                ValueFormat::Json => {
                    if i > 0 {
                        s.push(',');
                    }
                    json::write_string(&mut s, g.name.as_bytes());
                    s.push(':');
                    json::write_value(&mut s, &v);
                }
                ValueFormat::Text => {
                    s.push_str(&g.name);
                    s.push_str(" = ");
                    s.push_str(&text::render(&v));
                    s.push('\n');
                }
            }
        }
        if format == ValueFormat::Json {
            s.push_str("}\n");
        }
        s
    })?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Where `locals`/`args` look: a goroutine and a frame index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef {
    /// Goroutine id.
    pub goroutine: u64,
    /// Frame index in `bt` (0 = innermost).
    pub frame: usize,
}

fn run_frame_vars(
    target: &Target,
    at: FrameRef,
    args: &FrameVarsArgs,
    want_args: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let info = dwarf(target)?;
    let names = func_namer(target);
    let prog = program(target, &info, &names);
    let (_, scope) = frame_variables(target, &prog, at.goroutine, at.frame)?;
    let re = args.regex.as_deref().map(Regex::new).transpose()?;
    let vars: Vec<ScopeVar> = scope
        .into_iter()
        .filter(|v| v.is_arg == want_args)
        .filter(|v| re.as_ref().is_none_or(|r| r.is_match(&v.name)))
        .collect();
    let format = args.format;
    let text = with_big_stack(|| match (format, args.verbose) {
        (ValueFormat::Json, _) => render_vars(&prog, &vars, LoadConfig::canonical(), format),
        (ValueFormat::Text, true) => render_vars(&prog, &vars, args.limits.config(format), format),
        (ValueFormat::Text, false) => summary_lines(&prog, &vars, &args.limits, want_args),
    })?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Delve's `locals`/`args` lines: `name = value` on one line each, loaded
/// with `ShortLoadConfig` (string limit still configurable).
fn summary_lines(prog: &Program<'_>, vars: &[ScopeVar], limits: &LimitArgs, args: bool) -> String {
    let mut cfg = LoadConfig::delve_locals();
    if let Some(n) = limits.max_string_len {
        cfg.max_string_len = n;
    }
    if vars.is_empty() {
        return if args { "(no args)\n" } else { "(no locals)\n" }.to_string();
    }
    let mut s = String::new();
    for v in vars {
        s.push_str(&v.display_name());
        s.push_str(" = ");
        s.push_str(&text::render_single_line(&load_var(prog, v, cfg.clone())));
        s.push('\n');
    }
    s
}

/// Loads and renders frame variables: `name = value` lines, or one JSON object.
pub fn render_vars(
    prog: &Program<'_>,
    vars: &[ScopeVar],
    cfg: LoadConfig,
    format: ValueFormat,
) -> String {
    let mut s = String::new();
    if format == ValueFormat::Json {
        s.push('{');
    }
    if vars.is_empty() && format == ValueFormat::Text {
        s.push_str("(no locals)\n");
    }
    for (i, v) in vars.iter().enumerate() {
        let val = load_var(prog, v, cfg.clone());
        match format {
            ValueFormat::Json => {
                if i > 0 {
                    s.push(',');
                }
                json::write_string(&mut s, v.display_name().as_bytes());
                s.push(':');
                json::write_value(&mut s, &val);
            }
            ValueFormat::Text => {
                s.push_str(&v.display_name());
                s.push_str(" = ");
                s.push_str(&text::render(&val));
                s.push('\n');
            }
        }
    }
    if format == ValueFormat::Json {
        s.push_str("}\n");
    }
    s
}

/// The value of a frame variable.
pub fn load_var(prog: &Program<'_>, v: &ScopeVar, cfg: LoadConfig) -> Value {
    let mut loader = Loader::new(prog, cfg);
    match &v.src {
        VarSource::Memory(a) => loader.load(v.ty, *a),
        VarSource::Bytes(b) => loader.load_bytes(v.ty, b.clone()),
        VarSource::Unavailable(why) => {
            Value::unreadable(prog.ty(v.ty).name.clone(), None, why.clone())
        }
    }
}

/// `locals`.
pub fn run_locals(
    target: &Target,
    at: FrameRef,
    args: &FrameVarsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    run_frame_vars(target, at, args, false, out)
}

/// `args`.
pub fn run_args(
    target: &Target,
    at: FrameRef,
    args: &FrameVarsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    run_frame_vars(target, at, args, true, out)
}

/// Names of package variables, for REPL completion.
pub fn global_names(target: &Target) -> Vec<String> {
    target
        .dwarf()
        .map(|d| d.globals().map(|g| g.name.clone()).collect())
        .unwrap_or_default()
}

/// `bt -full` support: `name = value` lines (single-line Delve form) for the
/// arguments and locals of frame `frame` of goroutine `goid`.
pub fn frame_locals_lines(target: &Target, goid: u64, frame: usize) -> anyhow::Result<Vec<String>> {
    let info = dwarf(target)?;
    let names = func_namer(target);
    let prog = program(target, &info, &names);
    // One line each: a channel's hchan fields would not be shown.
    let one_line = LoadConfig {
        hchan_fields: false,
        ..LoadConfig::delve_print()
    };
    let (_, scope) = frame_variables(target, &prog, goid, frame)?;
    with_big_stack(|| {
        scope
            .iter()
            .map(|v| {
                format!(
                    "{} = {}",
                    v.display_name(),
                    text::render_single_line(&load_var(&prog, v, one_line.clone()))
                )
            })
            .collect()
    })
}

/// A small regular-expression matcher (no regex crate in the workspace):
/// literals, `.`, `*`, `+`, `?`, `^`, `$`, classes `[abc]`/`[a-z]`/`[^x]`,
/// `\` escapes. Unanchored unless `^`/`$` say otherwise, like Go's regexp.
#[derive(Debug, Clone)]
pub struct Regex {
    atoms: Vec<(Atom, Rep)>,
    anchored_start: bool,
    anchored_end: bool,
}

#[derive(Debug, Clone)]
enum Atom {
    Any,
    Char(char),
    Class(Vec<(char, char)>, bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rep {
    One,
    Star,
    Plus,
    Opt,
}

/// A malformed filter.
#[derive(Debug, thiserror::Error)]
#[error("bad regular expression {0:?}: {1}")]
pub struct RegexError(String, &'static str);

impl Regex {
    /// Compiles `pat`.
    pub fn new(pat: &str) -> Result<Regex, RegexError> {
        let mut chars: Vec<char> = pat.chars().collect();
        let anchored_start = chars.first() == Some(&'^');
        if anchored_start {
            chars.remove(0);
        }
        let anchored_end =
            chars.last() == Some(&'$') && !(chars.len() >= 2 && chars[chars.len() - 2] == '\\');
        if anchored_end {
            chars.pop();
        }
        let mut atoms = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let atom = match chars[i] {
                '.' => Atom::Any,
                '\\' => {
                    i += 1;
                    Atom::Char(
                        *chars
                            .get(i)
                            .ok_or(RegexError(pat.into(), "trailing backslash"))?,
                    )
                }
                '[' => {
                    let mut j = i + 1;
                    let neg = chars.get(j) == Some(&'^');
                    if neg {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    while j < chars.len() && chars[j] != ']' {
                        let lo = chars[j];
                        if chars.get(j + 1) == Some(&'-')
                            && chars.get(j + 2).is_some_and(|c| *c != ']')
                        {
                            ranges.push((lo, chars[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((lo, lo));
                            j += 1;
                        }
                    }
                    if j >= chars.len() {
                        return Err(RegexError(pat.into(), "unterminated ["));
                    }
                    i = j;
                    Atom::Class(ranges, neg)
                }
                '*' | '+' | '?' => {
                    return Err(RegexError(pat.into(), "repetition without an operand"))
                }
                c => Atom::Char(c),
            };
            i += 1;
            let rep = match chars.get(i) {
                Some('*') => Rep::Star,
                Some('+') => Rep::Plus,
                Some('?') => Rep::Opt,
                _ => Rep::One,
            };
            if rep != Rep::One {
                i += 1;
            }
            atoms.push((atom, rep));
        }
        Ok(Regex {
            atoms,
            anchored_start,
            anchored_end,
        })
    }

    /// Whether `s` contains a match.
    pub fn is_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        if self.anchored_start {
            return self.match_here(0, &chars, 0);
        }
        (0..=chars.len()).any(|start| self.match_here(0, &chars, start))
    }

    fn match_here(&self, ai: usize, s: &[char], si: usize) -> bool {
        let Some((atom, rep)) = self.atoms.get(ai) else {
            return !self.anchored_end || si == s.len();
        };
        let matches = |c: char| match atom {
            Atom::Any => true,
            Atom::Char(x) => *x == c,
            Atom::Class(r, neg) => r.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *neg,
        };
        match rep {
            Rep::One => si < s.len() && matches(s[si]) && self.match_here(ai + 1, s, si + 1),
            Rep::Opt => {
                (si < s.len() && matches(s[si]) && self.match_here(ai + 1, s, si + 1))
                    || self.match_here(ai + 1, s, si)
            }
            Rep::Star | Rep::Plus => {
                let mut n = 0;
                while si + n < s.len() && matches(s[si + n]) {
                    n += 1;
                }
                let min = usize::from(*rep == Rep::Plus);
                (min..=n).rev().any(|k| self.match_here(ai + 1, s, si + k))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_subset() {
        let r = |p: &str, s: &str| Regex::new(p).expect("regex").is_match(s);
        assert!(r("cfg", "main.cfg"));
        assert!(r("^main\\.c", "main.cfg"));
        assert!(!r("^cfg", "main.cfg"));
        assert!(r("f+g$", "main.cffg"));
        assert!(!r("cf$", "main.cfg"));
        assert!(r("m[a-c]in", "main"));
        assert!(!r("m[^a]in", "main"));
        assert!(r("a.*z", "abcz"));
        assert!(r("colou?r", "color"));
        assert!(Regex::new("*x").is_err());
    }

    #[test]
    fn limits_fall_back_to_defaults() {
        let given = LimitArgs {
            max_string_len: Some(5),
            ..LimitArgs::default()
        };
        let defaults = LimitArgs {
            max_string_len: Some(300),
            max_array_values: Some(7),
            max_variable_recurse: None,
        };
        let both = given.or(&defaults);
        assert_eq!(both.max_string_len, Some(5));
        assert_eq!(both.max_array_values, Some(7));
        assert_eq!(both.max_variable_recurse, None);
    }
}

#[cfg(test)]
mod dev_tests {
    use super::*;

    /// Compares every oracle value of `$RDLV_DEV_SNAP` with `$RDLV_DEV_ORACLE/values.json`
    /// and prints the frame variables of `$RDLV_DEV_GOID` (development aid).
    #[test]
    #[ignore = "development aid: needs RDLV_DEV_SNAP and RDLV_DEV_ORACLE"]
    fn compare_dev_snapshot() {
        let snap = std::env::var("RDLV_DEV_SNAP").expect("RDLV_DEV_SNAP");
        let dir = std::env::var("RDLV_DEV_ORACLE").expect("RDLV_DEV_ORACLE");
        let target = Target::open(std::path::Path::new(&snap), None).expect("open");
        let values: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/values.json")).expect("values.json"),
        )
        .expect("json");
        let mut ok = 0;
        let mut total = 0;
        for item in values.as_array().expect("array") {
            let expr = item["expr"].as_str().expect("expr");
            let args = PrintArgs {
                expr: vec![expr.to_string()],
                goroutine: None,
                frame: None,
                format: ValueFormat::Json,
                limits: LimitArgs::default(),
                whatis: false,
            };
            let mut out = Vec::new();
            total += 1;
            let t0 = std::time::Instant::now();
            match run_print(&target, &args, &mut out) {
                Ok(()) => {
                    let got: serde_json::Value = serde_json::from_slice(&out).expect("our json");
                    if got == item["value"] {
                        ok += 1;
                    } else {
                        let g = got.to_string();
                        let w = item["value"].to_string();
                        eprintln!(
                            "MISMATCH {expr}\n  got  {}\n  want {}",
                            &g[..g.len().min(400)],
                            &w[..w.len().min(400)]
                        );
                    }
                }
                Err(e) => eprintln!("ERROR {expr}: {e:#}"),
            }
            if t0.elapsed().as_millis() > 30 {
                eprintln!("slow {expr}: {:?}", t0.elapsed());
            }
        }
        eprintln!("values: {ok}/{total} match");
        if let Ok(goid) = std::env::var("RDLV_DEV_GOID") {
            let goid: u64 = goid.parse().expect("goid");
            for f in 0..8 {
                let a = FrameVarsArgs {
                    regex: None,
                    goroutine: None,
                    frame: None,
                    verbose: false,
                    format: ValueFormat::Json,
                    limits: LimitArgs::default(),
                };
                let at = FrameRef {
                    goroutine: goid,
                    frame: f,
                };
                let mut out = Vec::new();
                let r1 = run_args(&target, at, &a, &mut out);
                let r2 = run_locals(&target, at, &a, &mut out);
                eprintln!(
                    "frame {f}: {r1:?} {r2:?}\n{}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
}
