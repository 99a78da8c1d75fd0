//! The console: runs parsed commands on one opened snapshot. The one-shot
//! CLI and the REPL both end here, with the same typed commands.
//!
//! A [`Console`] owns what a debugging session adds to a snapshot: the
//! selected goroutine and frame (REPL only; a one-shot command has none),
//! the configuration's limits and aliases, and per-goroutine frames, which
//! stay valid because a snapshot never changes. Commands read their
//! goroutine and frame from their own options first and fall back to the
//! selection; nothing is passed around as option text.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::FromArgMatches;

use super::color::Style;
use super::commands::{
    live_only_message, repl_grammar, repl_words, snapshot_commands, Command, FrameArgs,
    GoroutineArgs, Navigation, ReplCommand, ReplLine, LIVE_ONLY, NOT_YET,
};
use super::config::Config;
use super::heap;
use super::info::run_info;
use super::progress::Progress;
use super::stacks::{self, Presentation};
use super::values::{self, FrameRef, LimitArgs};
use super::words::{nearest, split_first};
use super::UsageError;
use crate::error::{NotFound, Unsupported};
use crate::present::StackRow;
use crate::{AnalyzeError, Target};

/// Flow after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Leave the REPL.
    Exit,
}

/// The REPL's selection: a goroutine and one of its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Goroutine id.
    pub goroutine: u64,
    /// Frame index (0 = innermost).
    pub frame: usize,
}

/// Commands run on one snapshot, with the REPL's state.
pub struct Console<'t> {
    target: &'t Target,
    snap: PathBuf,
    exe: Option<PathBuf>,
    /// The configuration file's text limits, applied where a command gives none.
    limits: LimitArgs,
    style: Style,
    progress: Progress,
    /// The REPL grammar (every command's clap definition).
    grammar: clap::Command,
    /// Every name and alias (built-in and configured) → the command's name.
    names: BTreeMap<String, String>,
    selection: Option<Selection>,
    /// The previous non-empty line, repeated by an empty line.
    last_line: Option<String>,
    frames: HashMap<u64, Arc<Vec<StackRow>>>,
}

impl<'t> Console<'t> {
    /// A console on `target` (opened from `snap`, with `exe` if given).
    /// Configured aliases whose command is unknown are reported on stderr
    /// and ignored.
    pub fn new(
        target: &'t Target,
        snap: &Path,
        exe: Option<&Path>,
        config: &Config,
        style: Style,
    ) -> Console<'t> {
        let grammar = repl_grammar();
        let mut names = BTreeMap::new();
        for c in grammar.get_subcommands() {
            names.insert(c.get_name().to_string(), c.get_name().to_string());
            for alias in c.get_all_aliases() {
                names.insert(alias.to_string(), c.get_name().to_string());
            }
        }
        for (command, aliases) in &config.aliases {
            match names.get(command.as_str()).cloned() {
                Some(canonical) => {
                    for alias in aliases {
                        names.insert(alias.clone(), canonical.clone());
                    }
                }
                None => say!(
                    "rdlv: config: aliases: unknown command {command:?}{}",
                    suggestion(command, names.keys().map(String::as_str))
                ),
            }
        }
        Console {
            target,
            snap: snap.to_path_buf(),
            exe: exe.map(Path::to_path_buf),
            limits: LimitArgs {
                max_string_len: config.max_string_len,
                max_array_values: config.max_array_values,
                max_variable_recurse: None,
            },
            style,
            progress: Progress::hidden(),
            grammar,
            names,
            selection: None,
            last_line: None,
            frames: HashMap::new(),
        }
    }

    /// The snapshot this console reads.
    pub fn target(&self) -> &'t Target {
        self.target
    }

    /// Every command name and alias, configured ones included.
    pub fn names(&self) -> &BTreeMap<String, String> {
        &self.names
    }

    /// The progress the next commands report to.
    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = progress;
    }

    fn presentation(&self) -> Presentation {
        Presentation {
            style: self.style,
            progress: self.progress.clone(),
        }
    }

    /// Runs one input line. An empty line repeats the previous one; a line
    /// starting with `#` is a comment.
    pub fn execute_line(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
        let line = line.trim();
        if line.starts_with('#') {
            return Ok(Flow::Continue);
        }
        let line = if line.is_empty() {
            match self.last_line.clone() {
                Some(last) => last,
                None => return Ok(Flow::Continue),
            }
        } else {
            self.last_line = Some(line.to_string());
            line.to_string()
        };
        self.execute(&line, out)
    }

    /// Parses and runs one command line (no repetition).
    pub fn execute(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
        match self.parse(line)? {
            Parsed::Command(command) => self.run(command, out),
            Parsed::Help(text) => {
                out.write_all(text.as_bytes())?;
                Ok(Flow::Continue)
            }
            Parsed::Empty => Ok(Flow::Continue),
        }
    }

    /// Parses a line with the command's clap definition.
    fn parse(&self, line: &str) -> anyhow::Result<Parsed> {
        let (name, rest) = split_first(line);
        if name.is_empty() {
            return Ok(Parsed::Empty);
        }
        let Some(canonical) = self.names.get(name) else {
            if LIVE_ONLY.contains(&name) {
                return Err(AnalyzeError::from(Unsupported::LiveOnly {
                    command: name.to_string(),
                })
                .into());
            }
            if NOT_YET.contains(&name) {
                return Err(AnalyzeError::from(Unsupported::NotYet {
                    command: name.to_string(),
                })
                .into());
            }
            return Err(UsageError(format!(
                "unknown command {name:?}{}; type help for the list",
                suggestion(name, self.names.keys().map(String::as_str))
            ))
            .into());
        };
        let sub = self
            .grammar
            .find_subcommand(canonical)
            .ok_or_else(|| UsageError(format!("unknown command {name:?}")))?;
        let mut words = vec![canonical.clone()];
        words.extend(repl_words(sub, rest)?);
        let matches = self.grammar.clone().try_get_matches_from(words);
        let parsed = matches.and_then(|m| ReplLine::from_arg_matches(&m));
        match parsed {
            Ok(line) => Ok(Parsed::Command(line.command)),
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                Ok(Parsed::Help(e.render().to_string()))
            }
            Err(e) => {
                let text = e.render().to_string();
                let text = text.trim_end();
                Err(UsageError(text.strip_prefix("error: ").unwrap_or(text).to_string()).into())
            }
        }
    }

    /// Runs a parsed REPL command.
    pub fn run(&mut self, command: ReplCommand, out: &mut dyn Write) -> anyhow::Result<Flow> {
        match command {
            ReplCommand::Snapshot(c) => {
                self.run_command(c, out)?;
                Ok(Flow::Continue)
            }
            ReplCommand::Navigation(n) => self.navigate(n, out),
        }
    }

    /// Runs a snapshot command: the one-shot CLI's entry point as well.
    pub fn run_command(&mut self, command: Command, out: &mut dyn Write) -> anyhow::Result<()> {
        let target = self.target;
        match command {
            Command::Info(args) => run_info(&self.snap, target, self.exe.as_deref(), &args, out),
            Command::Goroutines(args) => {
                let mut query = args.query()?;
                query.selected = self.selection.map(|s| s.goroutine);
                let show = self.presentation();
                match args.exec {
                    Some(line) => {
                        let mut visit = |goid: u64, out: &mut dyn Write| {
                            self.run_in(Some(goid), Some(0), &line, out).map(drop)
                        };
                        stacks::run_goroutines(target, &query, &show, Some(&mut visit), out)
                    }
                    None => stacks::run_goroutines(target, &query, &show, None, out),
                }
            }
            Command::Bt(args) => {
                let goid = match args.goid {
                    Some(goid) => goid,
                    None => self.require_goroutine()?,
                };
                stacks::run_bt(target, goid, &args, self.style, out)
                    .map_err(|e| goroutine_hint(target, goid, e))
            }
            Command::Threads(args) => stacks::run_threads(target, &args, self.style, out),
            Command::Sched(args) => stacks::run_sched(target, &args, out),
            Command::Heap(args) => heap::run_heap(target, &args, out),
            Command::Leaks(args) => heap::run_leaks(target, &args, out),
            Command::Waits(args) => heap::run_waits(target, &args, out),
            Command::Print(mut args) => {
                if args.goroutine.is_none() {
                    if let Some(sel) = self.selection {
                        args.goroutine = Some(sel.goroutine);
                        args.frame = args.frame.or(Some(sel.frame));
                    }
                }
                args.limits = args.limits.or(&self.limits);
                values::run_print(target, &args, out).map_err(|e| match args.goroutine {
                    Some(goid) => goroutine_hint(target, goid, e),
                    None => e,
                })
            }
            Command::Whatis(mut args) => {
                if args.goroutine.is_none() {
                    if let Some(sel) = self.selection {
                        args.goroutine = Some(sel.goroutine);
                        args.frame = args.frame.or(Some(sel.frame));
                    }
                }
                values::run_whatis(target, &args, out).map_err(|e| match args.goroutine {
                    Some(goid) => goroutine_hint(target, goid, e),
                    None => e,
                })
            }
            Command::Vars(mut args) => {
                args.limits = args.limits.or(&self.limits);
                values::run_vars(target, &args, out)
            }
            Command::Funcs(args) => values::run_funcs(target, &args, out),
            Command::Locals(mut args) => {
                let at = self.frame_ref(args.goroutine, args.frame)?;
                args.limits = args.limits.or(&self.limits);
                values::run_locals(target, at, &args, out)
                    .map_err(|e| goroutine_hint(target, at.goroutine, e))
            }
            Command::Args(mut args) => {
                let at = self.frame_ref(args.goroutine, args.frame)?;
                args.limits = args.limits.or(&self.limits);
                values::run_args(target, at, &args, out)
                    .map_err(|e| goroutine_hint(target, at.goroutine, e))
            }
        }
    }

    /// The frame a command looks at: its own `--goroutine`/`--frame`, else
    /// the selection.
    fn frame_ref(&self, goroutine: Option<u64>, frame: Option<usize>) -> anyhow::Result<FrameRef> {
        Ok(match goroutine {
            Some(goroutine) => FrameRef {
                goroutine,
                frame: frame.unwrap_or(0),
            },
            None => {
                let goroutine = self.require_goroutine()?;
                let selected = self.selection.map(|s| s.frame).unwrap_or(0);
                FrameRef {
                    goroutine,
                    frame: frame.unwrap_or(selected),
                }
            }
        })
    }

    fn navigate(&mut self, command: Navigation, out: &mut dyn Write) -> anyhow::Result<Flow> {
        match command {
            Navigation::Exit => return Ok(Flow::Exit),
            Navigation::Help(args) => self.help(args.topic.as_deref(), out)?,
            Navigation::Goroutine(args) => return self.goroutine_command(args, out),
            Navigation::Frame(args) => return self.frame_command(args, out),
            Navigation::Up(step) => {
                let (goid, frame) = self.selected()?;
                let to = frame.saturating_add(step.n);
                self.check_frame(goid, to)?;
                self.select(goid, to);
                self.show_position(out)?;
            }
            Navigation::Down(step) => {
                let (goid, frame) = self.selected()?;
                let to = frame.checked_sub(step.n).ok_or(AnalyzeError::from(
                    NotFound::BelowInnermost {
                        frame,
                        steps: step.n,
                    },
                ))?;
                self.select(goid, to);
                self.show_position(out)?;
            }
            Navigation::List => {
                let (goid, frame) = self.selected()?;
                let frames = self.goroutine_frames(goid)?;
                let f = frames.get(frame).ok_or(AnalyzeError::NoFrame {
                    goid,
                    frame,
                    count: frames.len(),
                })?;
                write_source(&f.file, f.line, self.style, out)?;
            }
            Navigation::Regs => {
                let (goid, frame) = self.selected()?;
                self.regs(goid, frame, out)?;
            }
            Navigation::Thread(args) => {
                let goid = stacks::goroutine_of_thread(self.target, args.tid)?;
                self.goroutine_frames(goid)?;
                self.select(goid, 0);
                writeln!(out, "Switched to thread {}, goroutine {goid}", args.tid)?;
            }
        }
        Ok(Flow::Continue)
    }

    fn select(&mut self, goroutine: u64, frame: usize) {
        self.selection = Some(Selection { goroutine, frame });
    }

    fn selected(&self) -> anyhow::Result<(u64, usize)> {
        let goid = self.require_goroutine()?;
        Ok((goid, self.selection.map(|s| s.frame).unwrap_or(0)))
    }

    /// Runs `line` with the selection moved to `goroutine`/`frame` (each
    /// `None` keeps the current one), then restores the selection.
    fn run_in(
        &mut self,
        goroutine: Option<u64>,
        frame: Option<usize>,
        line: &str,
        out: &mut dyn Write,
    ) -> anyhow::Result<Flow> {
        let saved = self.selection;
        let goid = match goroutine {
            Some(g) => g,
            None => self.require_goroutine()?,
        };
        let frame = frame.unwrap_or(self.selection.map(|s| s.frame).unwrap_or(0));
        self.select(goid, frame);
        let result = self.execute(line, out);
        self.selection = saved;
        result
    }

    fn goroutine_command(
        &mut self,
        args: GoroutineArgs,
        out: &mut dyn Write,
    ) -> anyhow::Result<Flow> {
        let Some(goid) = args.id else {
            match self.selection {
                Some(_) => self.show_position(out)?,
                None => writeln!(out, "No goroutine selected; select one with: goroutine ID")?,
            }
            return Ok(Flow::Continue);
        };
        self.goroutine_frames(goid)?;
        match args.command {
            None => {
                self.select(goid, 0);
                writeln!(out, "Switched to goroutine {goid}")?;
                Ok(Flow::Continue)
            }
            Some(line) => self.run_in(Some(goid), Some(0), &line, out),
        }
    }

    fn frame_command(&mut self, args: FrameArgs, out: &mut dyn Write) -> anyhow::Result<Flow> {
        let Some(frame) = args.n else {
            self.require_goroutine()?;
            self.show_position(out)?;
            return Ok(Flow::Continue);
        };
        let goid = self.require_goroutine()?;
        self.check_frame(goid, frame)?;
        match args.command {
            None => {
                self.select(goid, frame);
                self.show_position(out)?;
                Ok(Flow::Continue)
            }
            Some(line) => self.run_in(None, Some(frame), &line, out),
        }
    }

    /// `regs`: the full register set when the captured thread's registers
    /// are this frame's (the rule the value code uses for register-resident
    /// variables, `value::frame::frame_thread`); otherwise only what
    /// unwinding recovers (pc, sp, cfa): the runtime saved nothing else.
    fn regs(&mut self, goid: u64, frame: usize, out: &mut dyn Write) -> anyhow::Result<()> {
        let rt = crate::runtime::Runtime::new(self.target)?;
        let g = rt.goroutine(goid)?;
        let frames = crate::present::rows_of(&g);
        let f = frames.get(frame).ok_or(AnalyzeError::NoFrame {
            goid,
            frame,
            count: frames.len(),
        })?;
        if let Some(thread) = crate::value::frame::frame_thread(self.target, &g, f.physical_index) {
            let r = thread.regs;
            writeln!(out, "Thread {} (running goroutine {goid}):", thread.tid)?;
            let named = [
                ("Rip", r.rip),
                ("Rsp", r.rsp),
                ("Rax", r.rax),
                ("Rbx", r.rbx),
                ("Rcx", r.rcx),
                ("Rdx", r.rdx),
                ("Rdi", r.rdi),
                ("Rsi", r.rsi),
                ("Rbp", r.rbp),
                ("R8", r.r8),
                ("R9", r.r9),
                ("R10", r.r10),
                ("R11", r.r11),
                ("R12", r.r12),
                ("R13", r.r13),
                ("R14", r.r14),
                ("R15", r.r15),
                ("Orig_rax", r.orig_rax),
                ("Cs", r.cs),
                ("Eflags", r.eflags),
                ("Ss", r.ss),
                ("Fs_base", r.fs_base),
                ("Gs_base", r.gs_base),
            ];
            for (name, value) in named {
                writeln!(out, "{name:>10} = 0x{value:016x}")?;
            }
            return Ok(());
        }
        let why = match g.thread {
            _ if f.physical_index != 0 => "an outer frame".to_string(),
            None => "not running on a thread at capture".to_string(),
            Some(tid) => format!("thread {tid} was not executing it: syscall, C code or scheduler"),
        };
        writeln!(
            out,
            "Goroutine {goid}, frame {frame} ({why}: only what unwinding recovers):"
        )?;
        writeln!(out, "{:>10} = 0x{:016x}", "Rip", f.pc)?;
        writeln!(out, "{:>10} = 0x{:016x}", "Rsp", f.sp)?;
        writeln!(out, "{:>10} = 0x{:016x}", "CFA", f.cfa)?;
        Ok(())
    }

    fn require_goroutine(&self) -> anyhow::Result<u64> {
        self.selection
            .map(|s| s.goroutine)
            .ok_or_else(|| AnalyzeError::from(NotFound::NoSelectedGoroutine).into())
    }

    fn show_position(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let (goid, frame) = self.selected()?;
        let frames = self.goroutine_frames(goid)?;
        match frames.get(frame) {
            Some(f) => writeln!(
                out,
                "Goroutine {goid}, frame {frame}: {} at {}:{} (0x{:x}){}",
                f.function,
                f.file,
                f.line,
                f.pc,
                if f.inlined { " (inlined)" } else { "" }
            )?,
            None => writeln!(out, "Goroutine {goid}, frame {frame}")?,
        }
        Ok(())
    }

    /// The frames of `goid`, computed once. An unknown id is NotFound with
    /// the nearest ids that exist.
    fn goroutine_frames(&mut self, goid: u64) -> anyhow::Result<Arc<Vec<StackRow>>> {
        if let Some(frames) = self.frames.get(&goid) {
            return Ok(frames.clone());
        }
        match crate::present::goroutine_rows(self.target, goid) {
            Ok(frames) => {
                let frames = Arc::new(frames);
                self.frames.insert(goid, frames.clone());
                Ok(frames)
            }
            Err(e @ AnalyzeError::NoGoroutine { .. }) => {
                Err(goroutine_hint(self.target, goid, e.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn check_frame(&mut self, goid: u64, frame: usize) -> anyhow::Result<()> {
        let count = self.goroutine_frames(goid)?.len();
        if frame >= count {
            return Err(AnalyzeError::NoFrame { goid, frame, count }.into());
        }
        Ok(())
    }

    /// `help [COMMAND]`, from the commands' clap definitions.
    fn help(&self, topic: Option<&str>, out: &mut dyn Write) -> anyhow::Result<()> {
        let Some(topic) = topic else {
            let on_snapshot: Vec<String> = snapshot_commands()
                .iter()
                .map(|c| c.get_name().to_string())
                .collect();
            let sections = [
                (
                    "Commands (a snapshot is read-only; Delve's names and aliases; \
                     also `rdlv NAME SNAP ...`):",
                    true,
                ),
                ("Selecting goroutines and frames:", false),
            ];
            for (title, snapshot) in sections {
                writeln!(out, "{title}")?;
                for c in self.grammar.get_subcommands() {
                    if on_snapshot.iter().any(|n| n == c.get_name()) != snapshot {
                        continue;
                    }
                    let mut names = c.get_name().to_string();
                    let aliases = self.aliases_of(c.get_name());
                    if !aliases.is_empty() {
                        names.push_str(&format!(" ({})", aliases.join(", ")));
                    }
                    let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
                    writeln!(out, "    {names:<24} {about}")?;
                }
                writeln!(out)?;
            }
            writeln!(
                out,
                "An empty line repeats the previous command. Type help COMMAND for details."
            )?;
            return Ok(());
        };
        let Some(canonical) = self.names.get(topic) else {
            if LIVE_ONLY.contains(&topic) {
                writeln!(out, "{}", live_only_message(topic))?;
                return Ok(());
            }
            return Err(UsageError(format!(
                "no help for {topic:?}: not a command{}",
                suggestion(topic, self.names.keys().map(String::as_str))
            ))
            .into());
        };
        let mut sub = self
            .grammar
            .find_subcommand(canonical)
            .cloned()
            .ok_or_else(|| UsageError(format!("no help for {topic:?}")))?;
        write!(out, "{}", sub.render_long_help())?;
        let aliases = self.aliases_of(canonical);
        if !aliases.is_empty() {
            writeln!(out, "\nAliases: {}", aliases.join(", "))?;
        }
        Ok(())
    }

    fn aliases_of(&self, command: &str) -> Vec<&str> {
        self.names
            .iter()
            .filter(|(name, c)| c.as_str() == command && name.as_str() != command)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// A REPL line, parsed.
enum Parsed {
    /// A command to run.
    Command(ReplCommand),
    /// `CMD --help`: its help text, printed instead of running.
    Help(String),
    /// Nothing to do.
    Empty,
}

/// Adds the nearest existing goroutine ids to a "no goroutine N" error
/// (an [`AnalyzeError::NoGoroutine`] for `goid` anywhere in its chain);
/// any other error is returned as it is.
pub fn goroutine_hint(target: &Target, goid: u64, err: anyhow::Error) -> anyhow::Error {
    let missing = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<AnalyzeError>(),
            Some(AnalyzeError::NoGoroutine { goid: g, nearest }) if *g == goid && nearest.is_empty()
        )
    });
    if !missing {
        return err;
    }
    let nearest = stacks::nearest_goroutine_ids(target, goid);
    if nearest.is_empty() {
        return err;
    }
    AnalyzeError::NoGoroutine { goid, nearest }.into()
}

/// `"; did you mean x or y?"`, or nothing.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let near = nearest(word, candidates, 3);
    match near.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        more => format!("; did you mean one of {}?", more.join(", ")),
    }
}

/// Largest source file `list` reads.
const MAX_SOURCE_BYTES: u64 = 16 << 20;
/// Lines shown before and after the current one, as Delve's default.
const LIST_CONTEXT: u32 = 5;

/// Prints lines around `line` of `file` with `=>` at `line`, if the file
/// is readable here (the snapshot holds no sources; a build tree may).
pub fn write_source(
    file: &str,
    line: u32,
    style: Style,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let unreadable = |why: String| {
        AnalyzeError::from(NotFound::Source {
            file: file.into(),
            line,
            why,
        })
    };
    let meta = std::fs::metadata(file).map_err(|e| unreadable(e.to_string()))?;
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(unreadable(format!("larger than {MAX_SOURCE_BYTES} bytes")).into());
    }
    let bytes = std::fs::read(file).map_err(|e| unreadable(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let first = line.saturating_sub(LIST_CONTEXT).max(1);
    let last = line.saturating_add(LIST_CONTEXT);
    let mut listing = String::new();
    for (number, content) in (1u32..).zip(text.lines()) {
        if number > last {
            break;
        }
        if number >= first {
            let marker = if number == line { "=>" } else { "  " };
            listing.push_str(&format!(
                "{}{}\t{}\n",
                style.arrow(marker),
                style.line_number(&format!("{number:>6}:")),
                style.go_source(content)
            ));
        }
    }
    if listing.is_empty() {
        return Err(
            unreadable("the file has fewer lines (changed since the build?)".to_string()).into(),
        );
    }
    writeln!(out, "> {file}:{line}")?;
    out.write_all(listing.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_listing_marks_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.go");
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let file = path.to_str().unwrap();
        let mut out = Vec::new();
        write_source(file, 10, Style::PLAIN, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 12, "{out}");
        assert_eq!(lines[0], format!("> {file}:10"));
        assert_eq!(lines[1], "       5:\tline 5");
        assert_eq!(lines[6], "=>    10:\tline 10");
        let mut out = Vec::new();
        write_source(file, 2, Style::PLAIN, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\n       1:\tline 1\n=>     2:"));
        assert!(write_source(file, 99, Style::PLAIN, &mut Vec::new()).is_err());
        assert!(write_source("/nonexistent/x.go", 1, Style::PLAIN, &mut Vec::new()).is_err());
        let mut out = Vec::new();
        write_source(
            file,
            3,
            Style::new(super::super::color::ColorChoice::Always, false),
            &mut out,
        )
        .unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\x1b[33m=>\x1b[0m"));
    }
}
