//! The interactive debugger: Delve's vocabulary over a read-only snapshot.
//!
//! Commands run through the same clap `Args` structs and `run_*` functions
//! as the subcommands; the REPL only adds context (the selected goroutine
//! and frame) by passing `--goroutine`/`--frame` or the goroutine id.
//!
//! Input comes from, in order: each `-c CMD` (then exit), or the `--init
//! FILE` lines followed by the terminal (rustyline: history, completion) or,
//! when stdin is not a terminal, stdin's lines without prompts. An empty
//! line repeats the previous command, as in Delve.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::config::{history_path, Config};
use super::info::{run_info, InfoArgs};
use super::words::{nearest, split_first, split_words};
use super::{
    error_text, exit_code, goroutine_hint, is_broken_pipe, open_target, stacks, values, UsageError,
    EXIT_OK,
};
use crate::runtime::Frame;
use crate::{AnalyzeError, Target};

/// Options of `rdlv repl` (and of `rdlv SNAP`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReplOptions {
    /// Run this debugger command, then exit (repeatable; runs in order).
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub commands: Vec<String>,
    /// Run the commands in FILE first (one per line, `#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
}

/// What a REPL command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Goroutines,
    Goroutine,
    Bt,
    Threads,
    Thread,
    Sched,
    Print,
    Vars,
    Funcs,
    List,
    Regs,
    Locals,
    Args,
    Frame,
    Up,
    Down,
    Info,
    Help,
    Exit,
}

/// One command of the REPL vocabulary.
struct Spec {
    cmd: Cmd,
    name: &'static str,
    aliases: &'static [&'static str],
    usage: &'static str,
    summary: &'static str,
}

const COMMANDS: &[Spec] = &[
    Spec {
        cmd: Cmd::Goroutines,
        name: "goroutines",
        aliases: &["grs"],
        usage:
            "goroutines [-u|-r|-g|-s] [-l] [--group] [--system] [filters] [--format text|go|json]",
        summary: "List goroutines (Delve style; --format go prints what runtime.Stack prints).",
    },
    Spec {
        cmd: Cmd::Goroutine,
        name: "goroutine",
        aliases: &["gr"],
        usage: "goroutine [ID [COMMAND]]",
        summary:
            "Show the selected goroutine, select goroutine ID, or run COMMAND in goroutine ID.",
    },
    Spec {
        cmd: Cmd::Frame,
        name: "frame",
        aliases: &[],
        usage: "frame [N [COMMAND]]",
        summary:
            "Show the selected frame, select frame N (0 = innermost), or run COMMAND in frame N.",
    },
    Spec {
        cmd: Cmd::Up,
        name: "up",
        aliases: &[],
        usage: "up [N]",
        summary: "Move the selected frame N (default 1) towards the caller.",
    },
    Spec {
        cmd: Cmd::Down,
        name: "down",
        aliases: &[],
        usage: "down [N]",
        summary: "Move the selected frame N (default 1) towards the callee.",
    },
    Spec {
        cmd: Cmd::Bt,
        name: "bt",
        aliases: &["stack"],
        usage: "bt [GOID] [--format text|json]",
        summary: "Stack of the selected goroutine (or GOID), innermost frame first.",
    },
    Spec {
        cmd: Cmd::Locals,
        name: "locals",
        aliases: &[],
        usage: "locals [REGEX]",
        summary: "Local variables of the selected frame.",
    },
    Spec {
        cmd: Cmd::Args,
        name: "args",
        aliases: &[],
        usage: "args [REGEX]",
        summary: "Arguments of the selected frame.",
    },
    Spec {
        cmd: Cmd::Print,
        name: "print",
        aliases: &["p"],
        usage: "print [--format text|json] EXPR",
        summary: "Evaluate EXPR: globals, and the selected frame's locals and arguments.",
    },
    Spec {
        cmd: Cmd::Vars,
        name: "vars",
        aliases: &[],
        usage: "vars [REGEX]",
        summary: "Package variables whose name matches REGEX.",
    },
    Spec {
        cmd: Cmd::Funcs,
        name: "funcs",
        aliases: &[],
        usage: "funcs [REGEX]",
        summary: "Functions of the executable whose name matches REGEX (from the pclntab).",
    },
    Spec {
        cmd: Cmd::List,
        name: "list",
        aliases: &["ls", "l"],
        usage: "list",
        summary: "Source around the selected frame's line, if the file exists on this machine.",
    },
    Spec {
        cmd: Cmd::Regs,
        name: "regs",
        aliases: &[],
        usage: "regs",
        summary: "Registers of the thread running the selected goroutine (or the selected frame's pc/sp).",
    },
    Spec {
        cmd: Cmd::Threads,
        name: "threads",
        aliases: &[],
        usage: "threads [--format text|json]",
        summary: "OS threads and the goroutine each was running.",
    },
    Spec {
        cmd: Cmd::Thread,
        name: "thread",
        aliases: &["tr"],
        usage: "thread TID",
        summary: "Select the goroutine that thread TID was running.",
    },
    Spec {
        cmd: Cmd::Sched,
        name: "sched",
        aliases: &[],
        usage: "sched [--format text|json]",
        summary: "The scheduler at capture: Ps, Ms, run queues, GC phase.",
    },
    Spec {
        cmd: Cmd::Info,
        name: "info",
        aliases: &[],
        usage: "info [--format text|json]",
        summary: "Describe the snapshot: process, capture, sizes, mappings.",
    },
    Spec {
        cmd: Cmd::Help,
        name: "help",
        aliases: &["h"],
        usage: "help [COMMAND]",
        summary: "List the commands, or show the usage of one.",
    },
    Spec {
        cmd: Cmd::Exit,
        name: "exit",
        aliases: &["quit", "q"],
        usage: "exit",
        summary: "Leave the debugger.",
    },
];

/// Delve commands that need a live process. A snapshot cannot run code.
const LIVE_ONLY: &[&str] = &[
    "break",
    "b",
    "breakpoints",
    "bp",
    "call",
    "clear",
    "clearall",
    "condition",
    "cond",
    "continue",
    "c",
    "next",
    "n",
    "step",
    "s",
    "stepout",
    "so",
    "step-instruction",
    "si",
    "next-instruction",
    "ni",
    "restart",
    "r",
    "rebuild",
    "rev",
    "rewind",
    "checkpoint",
    "checkpoints",
    "clear-checkpoint",
    "set",
    "trace",
    "t",
    "watch",
    "on",
    "toggle",
    "display",
    "dump",
];

/// Delve commands that would make sense on a snapshot but rdlv lacks.
const NOT_YET: &[&str] = &[
    "disassemble",
    "disass",
    "examinemem",
    "x",
    "whatis",
    "types",
    "sources",
    "libraries",
    "deferred",
    "config",
    "source",
    "edit",
    "ed",
    "transcript",
];

/// The message for a live-only command.
pub fn live_only_message(command: &str) -> String {
    format!(
        "a snapshot is read-only: {command} needs a live process; \
         use dlv attach on the running service, or capture again"
    )
}

/// Flow after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// A REPL session over one target.
pub struct Session<'t> {
    target: &'t Target,
    snap: PathBuf,
    exe: Option<PathBuf>,
    config: Config,
    /// Lookup of every name (command names, built-in and configured aliases).
    names: BTreeMap<String, Cmd>,
    /// Selected goroutine, if any.
    goroutine: Option<u64>,
    /// Selected frame of the selected goroutine.
    frame: usize,
    /// The previous non-empty line, repeated by an empty line.
    last_line: Option<String>,
    /// Frames per goroutine: the snapshot never changes, so they stay valid.
    frames: HashMap<u64, Arc<Vec<Frame>>>,
}

impl<'t> Session<'t> {
    /// A session with the given configuration. Configured aliases whose
    /// command is unknown are reported on stderr and ignored.
    pub fn new(target: &'t Target, snap: &Path, exe: Option<&Path>, config: Config) -> Session<'t> {
        let mut names = BTreeMap::new();
        for spec in COMMANDS {
            names.insert(spec.name.to_string(), spec.cmd);
            for alias in spec.aliases {
                names.insert(alias.to_string(), spec.cmd);
            }
        }
        for (command, aliases) in &config.aliases {
            match names.get(command.as_str()).copied() {
                Some(cmd) => {
                    for alias in aliases {
                        names.insert(alias.clone(), cmd);
                    }
                }
                None => eprintln!(
                    "rdlv: config: aliases: unknown command {command:?}{}",
                    suggestion(command, names.keys().map(String::as_str))
                ),
            }
        }
        Session {
            target,
            snap: snap.to_path_buf(),
            exe: exe.map(Path::to_path_buf),
            config,
            names,
            goroutine: None,
            frame: 0,
            last_line: None,
            frames: HashMap::new(),
        }
    }

    /// Every command name and alias, for completion.
    pub fn command_names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    /// Runs one input line. An empty line repeats the previous one; a line
    /// starting with `#` is a comment.
    fn execute_line(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
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

    /// Runs one command (no repetition logic).
    fn execute(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
        let (name, rest) = split_first(line);
        if name.is_empty() {
            return Ok(Flow::Continue);
        }
        let Some(cmd) = self.names.get(name).copied() else {
            if LIVE_ONLY.contains(&name) {
                return Err(AnalyzeError::Unsupported(live_only_message(name)).into());
            }
            if NOT_YET.contains(&name) {
                return Err(AnalyzeError::Unsupported(format!(
                    "{name} is a Delve command rdlv does not implement yet; type help for what it does"
                ))
                .into());
            }
            return Err(UsageError(format!(
                "unknown command {name:?}{}; type help for the list",
                suggestion(name, self.names.keys().map(String::as_str))
            ))
            .into());
        };
        match cmd {
            Cmd::Exit => Ok(Flow::Exit),
            Cmd::Help => {
                self.help(rest, out)?;
                Ok(Flow::Continue)
            }
            Cmd::Info => {
                let args: InfoArgs = parse_args("info", &split_words(rest)?)?;
                run_info(&self.snap, self.target, self.exe.as_deref(), &args, out)?;
                Ok(Flow::Continue)
            }
            Cmd::Goroutine => self.goroutine_command(rest, out),
            Cmd::Goroutines => {
                let words = split_words(rest)?;
                if let Some(args) =
                    parse_or_help::<stacks::GoroutinesArgs>("goroutines", &words, out)?
                {
                    match (self.goroutine, args.format) {
                        (Some(goid), stacks::GoroutinesFormat::Text) if !args.group => {
                            // Mark the selected goroutine with `*`, as Delve does.
                            let mut listing = Vec::new();
                            stacks::run_goroutines(self.target, &args, &mut listing)?;
                            let listing = String::from_utf8_lossy(&listing);
                            out.write_all(mark_selected(&listing, goid).as_bytes())?;
                        }
                        _ => stacks::run_goroutines(self.target, &args, out)?,
                    }
                }
                Ok(Flow::Continue)
            }
            Cmd::Bt => {
                let mut words = split_words(rest)?;
                // Delve spells it `bt -full`.
                for w in words.iter_mut().filter(|w| *w == "-full") {
                    *w = "--full".to_string();
                }
                let args = match parse_args::<stacks::BtArgs>("bt", &words) {
                    Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
                        // `bt` alone: the selected goroutine, as in Delve.
                        words.insert(0, self.require_goroutine()?.to_string());
                        parse_or_help::<stacks::BtArgs>("bt", &words, out)?
                    }
                    _ => parse_or_help::<stacks::BtArgs>("bt", &words, out)?,
                };
                if let Some(args) = args {
                    stacks::run_bt(self.target, &args, out)
                        .map_err(|e| goroutine_hint(self.target, args.goid, e))?;
                }
                Ok(Flow::Continue)
            }
            Cmd::Threads => {
                if let Some(args) =
                    parse_or_help::<stacks::ThreadsArgs>("threads", &split_words(rest)?, out)?
                {
                    stacks::run_threads(self.target, &args, out)?;
                }
                Ok(Flow::Continue)
            }
            Cmd::Sched => {
                if let Some(args) =
                    parse_or_help::<stacks::SchedArgs>("sched", &split_words(rest)?, out)?
                {
                    stacks::run_sched(self.target, &args, out)?;
                }
                Ok(Flow::Continue)
            }
            Cmd::Print => {
                if rest.trim().is_empty() {
                    return Err(UsageError(format!(
                        "{name} needs an expression: {}",
                        spec_of(cmd).usage
                    ))
                    .into());
                }
                let mut words = expression_words::<values::PrintArgs>("print", rest)?;
                if !has_option(&words, "--goroutine", Some('g')) {
                    if let Some(goid) = self.goroutine {
                        let mut context = vec!["--goroutine".to_string(), goid.to_string()];
                        if !has_option(&words, "--frame", None) {
                            context.extend(["--frame".to_string(), self.frame.to_string()]);
                        }
                        words.splice(0..0, context);
                    }
                }
                self.add_limits(&mut words);
                if let Some(args) = parse_or_help::<values::PrintArgs>("print", &words, out)? {
                    values::run_print(self.target, &args, out).map_err(|e| {
                        match args.goroutine {
                            Some(goid) => goroutine_hint(self.target, goid, e),
                            None => e,
                        }
                    })?;
                }
                Ok(Flow::Continue)
            }
            Cmd::Vars => {
                let mut words = split_words(rest)?;
                self.add_limits(&mut words);
                if let Some(args) = parse_or_help::<values::VarsArgs>("vars", &words, out)? {
                    values::run_vars(self.target, &args, out)?;
                }
                Ok(Flow::Continue)
            }
            Cmd::Thread => {
                let words = split_words(rest)?;
                let [tid] = words.as_slice() else {
                    return Err(UsageError(format!("usage: {}", spec_of(cmd).usage)).into());
                };
                let tid = parse_number::<u32>(tid, "thread id")?;
                let goid = goroutine_of_thread(self.target, tid)?;
                self.goroutine_frames(goid)?;
                self.goroutine = Some(goid);
                self.frame = 0;
                writeln!(out, "Switched to thread {tid}, goroutine {goid}")?;
                Ok(Flow::Continue)
            }
            Cmd::List => {
                if !rest.trim().is_empty() {
                    return Err(UsageError(format!("usage: {}", spec_of(cmd).usage)).into());
                }
                let goid = self.require_goroutine()?;
                let frames = self.goroutine_frames(goid)?;
                let frame = frames.get(self.frame).ok_or_else(|| {
                    AnalyzeError::NotFound(format!("goroutine {goid} has no frame {}", self.frame))
                })?;
                write_source(&frame.file, frame.line, out)?;
                Ok(Flow::Continue)
            }
            Cmd::Regs => {
                if !rest.trim().is_empty() {
                    return Err(UsageError(format!("usage: {}", spec_of(cmd).usage)).into());
                }
                let goid = self.require_goroutine()?;
                self.regs(goid, out)?;
                Ok(Flow::Continue)
            }
            Cmd::Funcs => {
                let words = split_words(rest)?;
                let regex = match words.as_slice() {
                    [] => None,
                    [pattern] => {
                        Some(values::Regex::new(pattern).map_err(|e| UsageError(e.to_string()))?)
                    }
                    _ => return Err(UsageError(format!("usage: {}", spec_of(cmd).usage)).into()),
                };
                let pclntab = self.target.pclntab()?;
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
                Ok(Flow::Continue)
            }
            Cmd::Locals | Cmd::Args => {
                let mut words = split_words(rest)?;
                if !has_option(&words, "--goroutine", Some('g')) {
                    let goid = self.require_goroutine()?;
                    let mut context = vec!["--goroutine".to_string(), goid.to_string()];
                    if !has_option(&words, "--frame", None) {
                        context.extend(["--frame".to_string(), self.frame.to_string()]);
                    }
                    words.splice(0..0, context);
                }
                self.add_limits(&mut words);
                let name = if cmd == Cmd::Locals { "locals" } else { "args" };
                if let Some(args) = parse_or_help::<values::FrameVarsArgs>(name, &words, out)? {
                    let result = if cmd == Cmd::Locals {
                        values::run_locals(self.target, &args, out)
                    } else {
                        values::run_args(self.target, &args, out)
                    };
                    result.map_err(|e| goroutine_hint(self.target, args.goroutine, e))?;
                }
                Ok(Flow::Continue)
            }
            Cmd::Frame => self.frame_command(rest, out),
            Cmd::Up | Cmd::Down => {
                let words = split_words(rest)?;
                let step = match words.as_slice() {
                    [] => 1,
                    [n] => parse_number::<usize>(n, "frame count")?,
                    _ => return Err(UsageError(format!("usage: {}", spec_of(cmd).usage)).into()),
                };
                let goid = self.require_goroutine()?;
                let frame = if cmd == Cmd::Up {
                    let target = self.frame.saturating_add(step);
                    self.check_frame(goid, target)?;
                    target
                } else {
                    self.frame.checked_sub(step).ok_or_else(|| {
                        AnalyzeError::NotFound(format!(
                            "frame {} is the innermost; cannot go down {step}",
                            self.frame
                        ))
                    })?
                };
                self.frame = frame;
                self.show_position(out)?;
                Ok(Flow::Continue)
            }
        }
    }

    fn goroutine_command(&mut self, rest: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
        let (id, command) = split_first(rest);
        if id.is_empty() {
            match self.goroutine {
                Some(_) => self.show_position(out)?,
                None => writeln!(out, "No goroutine selected; select one with: goroutine ID")?,
            }
            return Ok(Flow::Continue);
        }
        let goid = parse_number::<u64>(id, "goroutine id")?;
        self.goroutine_frames(goid)?;
        if command.is_empty() {
            self.goroutine = Some(goid);
            self.frame = 0;
            writeln!(out, "Switched to goroutine {goid}")?;
            return Ok(Flow::Continue);
        }
        let saved = (self.goroutine, self.frame);
        self.goroutine = Some(goid);
        self.frame = 0;
        let result = self.execute(command, out);
        (self.goroutine, self.frame) = saved;
        result
    }

    fn frame_command(&mut self, rest: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
        let (n, command) = split_first(rest);
        if n.is_empty() {
            self.require_goroutine()?;
            self.show_position(out)?;
            return Ok(Flow::Continue);
        }
        let frame = parse_number::<usize>(n, "frame number")?;
        let goid = self.require_goroutine()?;
        self.check_frame(goid, frame)?;
        if command.is_empty() {
            self.frame = frame;
            self.show_position(out)?;
            return Ok(Flow::Continue);
        }
        let saved = self.frame;
        self.frame = frame;
        let result = self.execute(command, out);
        self.frame = saved;
        result
    }

    /// `regs`: the full register set of the thread that was running the
    /// goroutine at capture; for a parked goroutine only the selected
    /// frame's pc, sp and cfa exist (the runtime saved nothing else).
    fn regs(&mut self, goid: u64, out: &mut dyn Write) -> anyhow::Result<()> {
        let rt = crate::runtime::Runtime::new(self.target)?;
        let on_thread = rt.goroutine(goid)?.thread.filter(|tid| {
            rt.threads()
                .iter()
                .any(|t| t.tid == *tid && t.m.as_ref().is_some_and(|m| m.curg != 0))
        });
        let regs = on_thread.and_then(|tid| {
            self.target
                .snapshot()
                .metadata()
                .threads
                .iter()
                .find(|t| t.tid == tid)
                .map(|t| (tid, t.regs))
        });
        match regs {
            Some((tid, r)) if self.frame == 0 => {
                writeln!(out, "Thread {tid} (running goroutine {goid}):")?;
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
            }
            _ => {
                let frames = self.goroutine_frames(goid)?;
                let frame = frames.get(self.frame).ok_or_else(|| {
                    AnalyzeError::NotFound(format!("goroutine {goid} has no frame {}", self.frame))
                })?;
                let why = if self.frame == 0 {
                    "not running on a thread at capture"
                } else {
                    "an outer frame"
                };
                writeln!(
                    out,
                    "Goroutine {goid}, frame {} ({why}: only what unwinding recovers):",
                    self.frame
                )?;
                writeln!(out, "{:>10} = 0x{:016x}", "Rip", frame.pc)?;
                writeln!(out, "{:>10} = 0x{:016x}", "Rsp", frame.sp)?;
                writeln!(out, "{:>10} = 0x{:016x}", "CFA", frame.cfa)?;
            }
        }
        Ok(())
    }

    /// Adds the configuration's `max-string-len`/`max-array-values` unless
    /// the command gives them.
    fn add_limits(&self, words: &mut Vec<String>) {
        let limits = [
            ("--max-string-len", self.config.max_string_len),
            ("--max-array-values", self.config.max_array_values),
        ];
        for (flag, value) in limits {
            if let Some(n) = value {
                if !has_option(words, flag, None) {
                    words.splice(0..0, [flag.to_string(), n.to_string()]);
                }
            }
        }
    }

    fn require_goroutine(&self) -> anyhow::Result<u64> {
        self.goroutine.ok_or_else(|| {
            AnalyzeError::NotFound(
                "no goroutine selected: select one with `goroutine ID` (list them with `goroutines`)"
                    .to_string(),
            )
            .into()
        })
    }

    fn show_position(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let goid = self.require_goroutine()?;
        let frames = self.goroutine_frames(goid)?;
        match frames.get(self.frame) {
            Some(f) => writeln!(
                out,
                "Goroutine {goid}, frame {}: {} at {}:{} (0x{:x}){}",
                self.frame,
                f.function,
                f.file,
                f.line,
                f.pc,
                if f.inlined { " (inlined)" } else { "" }
            )?,
            None => writeln!(out, "Goroutine {goid}, frame {}", self.frame)?,
        }
        Ok(())
    }

    /// The frames of `goid`, computed once. An unknown id is NotFound with
    /// the nearest ids that exist.
    fn goroutine_frames(&mut self, goid: u64) -> anyhow::Result<Arc<Vec<Frame>>> {
        if let Some(frames) = self.frames.get(&goid) {
            return Ok(frames.clone());
        }
        match crate::runtime::goroutine_frames(self.target, goid) {
            Ok(frames) => {
                let frames = Arc::new(frames);
                self.frames.insert(goid, frames.clone());
                Ok(frames)
            }
            Err(e @ AnalyzeError::NotFound(_)) => Err(goroutine_hint(self.target, goid, e.into())),
            Err(e) => Err(e.into()),
        }
    }

    fn check_frame(&mut self, goid: u64, frame: usize) -> anyhow::Result<()> {
        let count = self.goroutine_frames(goid)?.len();
        if frame >= count {
            return Err(AnalyzeError::NotFound(format!(
                "frame {frame} does not exist: goroutine {goid} has {count} frames (0..{})",
                count.saturating_sub(1)
            ))
            .into());
        }
        Ok(())
    }

    fn help(&self, rest: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let topic = rest.trim();
        if topic.is_empty() {
            writeln!(
                out,
                "Commands (a snapshot is read-only; Delve's names and aliases):"
            )?;
            for spec in COMMANDS {
                let mut names = spec.name.to_string();
                let aliases = self.aliases_of(spec.cmd);
                if !aliases.is_empty() {
                    names.push_str(&format!(" ({})", aliases.join(", ")));
                }
                writeln!(out, "    {names:<24} {}", spec.summary)?;
            }
            writeln!(out)?;
            writeln!(
                out,
                "An empty line repeats the previous command. Type help COMMAND for details."
            )?;
            return Ok(());
        }
        let Some(cmd) = self.names.get(topic).copied() else {
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
        let spec = spec_of(cmd);
        writeln!(out, "{}\n\n{}", spec.usage, spec.summary)?;
        let aliases = self.aliases_of(cmd);
        if !aliases.is_empty() {
            writeln!(out, "\nAliases: {}", aliases.join(", "))?;
        }
        if let Some(options) = options_help(cmd) {
            writeln!(out, "\n{options}")?;
        }
        Ok(())
    }

    fn aliases_of(&self, cmd: Cmd) -> Vec<&str> {
        let spec = spec_of(cmd);
        self.names
            .iter()
            .filter(|(name, c)| **c == cmd && name.as_str() != spec.name)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Up to five live goroutine ids numerically closest to `goid`, ascending.
pub fn nearest_goroutine_ids(target: &Target, goid: u64) -> Vec<u64> {
    let Ok(rt) = crate::runtime::Runtime::new(target) else {
        return Vec::new();
    };
    let Ok(addrs) = rt.all_g_addrs() else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = addrs
        .into_iter()
        .filter_map(|a| rt.read_g(a).ok())
        .filter(|g| is_live(g.status(), rt.minor))
        .map(|g| g.goid)
        .collect();
    ids.sort_by_key(|id| (id.abs_diff(goid), *id));
    ids.truncate(5);
    ids.sort_unstable();
    ids
}

/// Largest source file `list` reads.
const MAX_SOURCE_BYTES: u64 = 16 << 20;
/// Lines shown before and after the current one, as Delve's default.
const LIST_CONTEXT: u32 = 5;

/// Prints lines around `line` of `file` with `=>` at `line`, if the file
/// is readable here (the snapshot holds no sources; a build tree may).
fn write_source(file: &str, line: u32, out: &mut dyn Write) -> anyhow::Result<()> {
    let unreadable =
        |why: String| AnalyzeError::NotFound(format!("cannot show {file}:{line}: {why}"));
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
            listing.push_str(&format!("{marker}{number:>6}:\t{content}\n"));
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

/// The goroutine an OS thread was running (its M's `curg`).
fn goroutine_of_thread(target: &Target, tid: u32) -> anyhow::Result<u64> {
    let rt = crate::runtime::Runtime::new(target)?;
    let threads = rt.threads();
    let Some(thread) = threads.iter().find(|t| t.tid == tid) else {
        let tids: Vec<String> = threads.iter().map(|t| t.tid.to_string()).collect();
        return Err(AnalyzeError::NotFound(format!(
            "no thread {tid} in this snapshot; threads: {}",
            tids.join(", ")
        ))
        .into());
    };
    let curg = thread.m.as_ref().map(|m| m.curg).unwrap_or(0);
    if curg == 0 {
        return Err(AnalyzeError::NotFound(format!(
            "thread {tid} was not running a goroutine (idle or in the scheduler); see `threads`"
        ))
        .into());
    }
    Ok(rt.read_g(curg)?.goid)
}

/// Whether a g status is a goroutine rather than a free g (`_Gdead`, and
/// from Go 1.26 `_Gdeadextra`, which has the same meaning for cgo callbacks).
fn is_live(status: u32, minor: u32) -> bool {
    use crate::runtime::goroutine::{G_DEAD, G_DEAD_EXTRA};
    status != G_DEAD && !(minor >= 26 && status == G_DEAD_EXTRA)
}

/// `  Goroutine N - …` becomes `* Goroutine N - …` for the selected goroutine.
fn mark_selected(listing: &str, goid: u64) -> String {
    let plain = format!("  Goroutine {goid} ");
    let marked = format!("* Goroutine {goid} ");
    listing
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix(&plain) {
            Some(rest) => format!("{marked}{rest}"),
            None => line.to_string(),
        })
        .collect()
}

/// The clap help of a command's options, for `help COMMAND`.
fn options_help(cmd: Cmd) -> Option<String> {
    fn render<A: clap::Args>(name: &'static str) -> String {
        let mut command = A::augment_args(clap::Command::new(name).disable_help_flag(true));
        command.render_help().to_string()
    }
    Some(match cmd {
        Cmd::Info => render::<InfoArgs>("info"),
        Cmd::Goroutines => render::<stacks::GoroutinesArgs>("goroutines"),
        Cmd::Bt => render::<stacks::BtArgs>("bt"),
        Cmd::Threads => render::<stacks::ThreadsArgs>("threads"),
        Cmd::Sched => render::<stacks::SchedArgs>("sched"),
        Cmd::Print => render::<values::PrintArgs>("print"),
        Cmd::Vars => render::<values::VarsArgs>("vars"),
        Cmd::Locals => render::<values::FrameVarsArgs>("locals"),
        Cmd::Args => render::<values::FrameVarsArgs>("args"),
        Cmd::Goroutine
        | Cmd::Frame
        | Cmd::Up
        | Cmd::Down
        | Cmd::Funcs
        | Cmd::Thread
        | Cmd::List
        | Cmd::Regs
        | Cmd::Help
        | Cmd::Exit => return None,
    })
}

/// Whether `words` give the option `long` (`--frame`, `--frame=2`) or its
/// short form (`-g`, `-g5`).
fn has_option(words: &[String], long: &str, short: Option<char>) -> bool {
    words.iter().take_while(|w| w.as_str() != "--").any(|w| {
        w == long
            || w.strip_prefix(long)
                .is_some_and(|rest| rest.starts_with('='))
            || short.is_some_and(|c| {
                let mut chars = w.chars();
                chars.next() == Some('-') && chars.next() == Some(c)
            })
    })
}

/// Words for a command whose last argument is an expression (`print`): the
/// leading options are split like a shell would, the expression is kept
/// verbatim (quotes, brackets and spaces intact) after a `--`.
fn expression_words<A: clap::Args>(
    name: &'static str,
    rest: &str,
) -> Result<Vec<String>, UsageError> {
    let command = A::augment_args(clap::Command::new(name));
    let takes_value = |word: &str| -> bool {
        let arg = if let Some(long) = word.strip_prefix("--") {
            if long.contains('=') {
                return false;
            }
            command.get_arguments().find(|a| a.get_long() == Some(long))
        } else {
            let mut chars = word.chars().skip(1);
            let (Some(c), None) = (chars.next(), chars.next()) else {
                // `-g5`: the value is attached.
                return false;
            };
            command.get_arguments().find(|a| a.get_short() == Some(c))
        };
        arg.is_some_and(|a| a.get_action().takes_values())
    };
    let mut words = Vec::new();
    let mut rest = rest.trim();
    let mut explicit_end = false;
    loop {
        let (word, after) = split_first(rest);
        if word == "--" {
            rest = after;
            explicit_end = true;
            break;
        }
        let is_option = word.len() > 1
            && word.starts_with('-')
            && !word[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
        if !is_option {
            break;
        }
        let needs_value = takes_value(word);
        words.extend(split_words(word)?);
        rest = after;
        if needs_value {
            let (value, after) = split_first(rest);
            if value.is_empty() {
                break;
            }
            words.extend(split_words(value)?);
            rest = after;
        }
    }
    // Long options after the expression (`p main.cfg --format json`, the
    // command line's order) are peeled off its end; no Go expression ends
    // with `--name`.
    let known_long = |word: &str| {
        word.strip_prefix("--").is_some_and(|long| {
            let name = long.split('=').next().unwrap_or(long);
            command.get_arguments().any(|a| a.get_long() == Some(name))
        })
    };
    let mut trailing: Vec<String> = Vec::new();
    // After an explicit `--` everything is the expression.
    let mut peel = !explicit_end;
    while peel {
        let Some(i) = rest.rfind(char::is_whitespace) else {
            break;
        };
        let last = &rest[i + 1..];
        let before = rest[..i].trim_end();
        if known_long(last) && !takes_value(last) {
            trailing.splice(0..0, [last.to_string()]);
            rest = before;
            continue;
        }
        match before.rfind(char::is_whitespace) {
            Some(j) if known_long(&before[j + 1..]) && takes_value(&before[j + 1..]) => {
                trailing.splice(0..0, [before[j + 1..].to_string(), last.to_string()]);
                rest = before[..j].trim_end();
            }
            _ => peel = false,
        }
    }
    words.extend(trailing);
    if !rest.is_empty() {
        words.push("--".to_string());
        words.push(rest.to_string());
    }
    Ok(words)
}

/// Parses with [`parse_args`]; `--help` prints the command's help to `out`
/// and gives `None`.
fn parse_or_help<A: clap::Args + clap::FromArgMatches>(
    name: &'static str,
    words: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<Option<A>> {
    match parse_args::<A>(name, words) {
        Ok(args) => Ok(Some(args)),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            write!(out, "{}", e.render())?;
            Ok(None)
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.trim_end();
            Err(UsageError(text.strip_prefix("error: ").unwrap_or(text).to_string()).into())
        }
    }
}

fn spec_of(cmd: Cmd) -> &'static Spec {
    COMMANDS
        .iter()
        .find(|s| s.cmd == cmd)
        .unwrap_or(&COMMANDS[0])
}

/// `"; did you mean x or y?"`, or nothing.
fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let near = nearest(word, candidates, 3);
    match near.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        more => format!("; did you mean one of {}?", more.join(", ")),
    }
}

fn parse_number<T: std::str::FromStr>(word: &str, what: &str) -> Result<T, UsageError> {
    word.parse()
        .map_err(|_| UsageError(format!("expected a {what}, found {word:?}")))
}

/// Parses REPL words with the clap definition `A` of a subcommand, so the
/// REPL accepts exactly the options the command line does.
pub fn parse_args<A: clap::Args + clap::FromArgMatches>(
    name: &'static str,
    words: &[String],
) -> Result<A, clap::Error> {
    let command = A::augment_args(
        clap::Command::new(name)
            .no_binary_name(true)
            .disable_help_flag(false),
    );
    let matches = command.try_get_matches_from(words)?;
    A::from_arg_matches(&matches)
}

/// Where input lines come from.
enum Input {
    /// `-c` commands, then stop.
    Commands(Vec<String>),
    /// A terminal with line editing.
    Terminal,
    /// Lines from a non-terminal stdin, no prompts.
    Stdin,
}

/// `rdlv repl SNAP` / `rdlv SNAP`: opens the target and runs the session.
/// Returns the exit code: 0, or for scripted runs (`-c`, `--init`, piped
/// stdin) the code of the first failed command.
pub fn run_repl_path(
    snap: &Path,
    exe: Option<&Path>,
    opts: &ReplOptions,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let config = Config::load()?;
    let target = open_target(snap, exe)?;
    let mut session = Session::new(&target, snap, exe, config);
    let input = if !opts.commands.is_empty() {
        Input::Commands(opts.commands.clone())
    } else if std::io::stdin().is_terminal() {
        Input::Terminal
    } else {
        Input::Stdin
    };
    let mut status = EXIT_OK;
    if let Some(init) = &opts.init {
        let text = std::fs::read_to_string(init)
            .with_context(|| format!("cannot read --init file {}", init.display()))
            .map_err(|e| UsageError(error_text(&e)))?;
        for line in init_lines(&text) {
            match run_one(&mut session, line, out, &mut status)? {
                Flow::Exit => return Ok(status),
                Flow::Continue => {}
            }
        }
    }
    match input {
        Input::Commands(commands) => {
            for command in &commands {
                // `-c ''` is not a request to repeat anything.
                if command.trim().is_empty() {
                    continue;
                }
                if run_one(&mut session, command, out, &mut status)? == Flow::Exit {
                    break;
                }
            }
        }
        Input::Stdin => {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let line = line.context("reading commands from stdin")?;
                if run_one(&mut session, &line, out, &mut status)? == Flow::Exit {
                    break;
                }
            }
        }
        Input::Terminal => {
            terminal_loop(&mut session, out)?;
        }
    }
    Ok(status)
}

/// Non-comment, non-blank lines of an init file.
fn init_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Runs one line, prints its error, and records the first failure's exit
/// code. A closed stdout ends the session (returned as an error).
fn run_one(
    session: &mut Session<'_>,
    line: &str,
    out: &mut dyn Write,
    status: &mut i32,
) -> anyhow::Result<Flow> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        session.execute_line(line, out)
    }));
    let flush = out.flush();
    match result {
        Ok(Ok(flow)) => {
            flush?;
            Ok(flow)
        }
        Ok(Err(err)) => {
            if is_broken_pipe(&err) {
                return Err(err);
            }
            flush?;
            eprintln!("Command failed: {}", error_text(&err));
            if *status == EXIT_OK {
                *status = exit_code(&err);
            }
            Ok(Flow::Continue)
        }
        Err(_) => {
            // The panic hook already printed the internal error.
            flush?;
            if *status == EXIT_OK {
                *status = super::EXIT_INTERNAL;
            }
            Ok(Flow::Continue)
        }
    }
}

/// Interactive loop with line editing, history and completion.
fn terminal_loop(session: &mut Session<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    let helper = ReplHelper {
        commands: session.command_names(),
        names: session.names.clone(),
        target: session.target,
        symbols: OnceLock::new(),
    };
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)?
        .max_history_size(10_000)?
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: Editor<ReplHelper<'_>, DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is the first run, not an error.
        let _ = editor.load_history(path);
    }
    writeln!(
        out,
        "Type 'help' for the list of commands. The snapshot is read-only."
    )?;
    out.flush()?;
    let mut status = EXIT_OK;
    loop {
        match editor.readline("(rdlv) ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.trim());
                }
                if run_one(session, &line, out, &mut status)? == Flow::Exit {
                    break;
                }
            }
            // Ctrl-C clears the line, as in Delve's prompt; Ctrl-D leaves.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(path) = &history {
        save_history(&mut editor, path);
    }
    Ok(())
}

fn save_history(editor: &mut Editor<ReplHelper<'_>, DefaultHistory>, path: &Path) {
    if editor.history().is_empty() {
        return;
    }
    if let Some(dir) = path.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("rdlv: cannot keep history in {}: {e}", dir.display());
            return;
        }
    }
    if let Err(e) = editor.append_history(path) {
        eprintln!("rdlv: cannot save history to {}: {e}", path.display());
    }
}

/// Names `print` can start from, sorted: the Go symbols of `.symtab`
/// (globals and functions), or, in a stripped binary, the function names
/// of the pclntab.
fn symbol_names(target: &Target) -> Vec<String> {
    let mut names: Vec<String> = target
        .binary()
        .symbols()
        .keys()
        .filter(|name| is_go_symbol(name))
        .cloned()
        .collect();
    if names.is_empty() {
        if let Ok(pclntab) = target.pclntab() {
            names = pclntab
                .funcs()
                .map(|f| f.name())
                .filter(|name| is_go_symbol(name))
                .map(str::to_string)
                .collect();
        }
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// A package-qualified Go name a user would type (not linker or type metadata).
fn is_go_symbol(name: &str) -> bool {
    name.contains('.')
        && !name.starts_with("go:")
        && !name.starts_with("go.")
        && !name.starts_with("type:")
        && !name.starts_with('_')
        && !name.contains(".stmp_")
}

/// Completion of command names (first word) and symbol names (after print).
struct ReplHelper<'t> {
    commands: Vec<String>,
    /// Command names and aliases (configured ones included).
    names: BTreeMap<String, Cmd>,
    target: &'t Target,
    /// Loaded on the first symbol completion: reading DWARF for the globals
    /// of a large binary should not delay the first prompt.
    symbols: OnceLock<Vec<String>>,
}

impl ReplHelper<'_> {
    fn symbols(&self) -> &[String] {
        self.symbols.get_or_init(|| {
            let mut names = symbol_names(self.target);
            names.extend(values::global_names(self.target));
            names.sort_unstable();
            names.dedup();
            names
        })
    }
}

/// Completion candidates for `line` up to `pos`: (start of the word,
/// candidates). The first word completes to command names, the word after
/// `help` too, and words after `print` (also `goroutine N print …`) to
/// symbol names. `command_of` resolves names and aliases.
fn complete_line<'a>(
    commands: &[String],
    command_of: impl Fn(&str) -> Option<Cmd>,
    symbols: impl FnOnce() -> &'a [String],
    line: &str,
    pos: usize,
) -> (usize, Vec<String>) {
    let head = line.get(..pos).unwrap_or(line);
    let word_start = head
        .rfind(|c: char| c.is_whitespace() || "()[]*&,+-".contains(c))
        .map(|i| i + 1)
        .unwrap_or(0);
    let word = &head[word_start..];
    let mut before: Vec<&str> = head[..word_start].split_whitespace().collect();
    // `goroutine N CMD …` and `frame N CMD …` run CMD: complete for CMD.
    while before.len() >= 2 && matches!(command_of(before[0]), Some(Cmd::Goroutine | Cmd::Frame)) {
        before.drain(..2);
    }
    let command_names = || {
        commands
            .iter()
            .filter(|c| c.starts_with(word))
            .cloned()
            .collect()
    };
    match before.as_slice() {
        [] => (word_start, command_names()),
        [first] if command_of(first) == Some(Cmd::Help) => (word_start, command_names()),
        [first, ..] if command_of(first) == Some(Cmd::Print) && !word.is_empty() => {
            // Symbols are sorted: the matches are one contiguous run.
            let symbols = symbols();
            let from = symbols.partition_point(|s| s.as_str() < word);
            let found = symbols[from..]
                .iter()
                .take_while(|s| s.starts_with(word))
                .take(500)
                .cloned()
                .collect();
            (word_start, found)
        }
        _ => (pos, Vec::new()),
    }
}

impl Completer for ReplHelper<'_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = complete_line(
            &self.commands,
            |name| self.names.get(name).copied(),
            || self.symbols(),
            line,
            pos,
        );
        Ok((
            start,
            found
                .into_iter()
                .map(|s| Pair {
                    display: s.clone(),
                    replacement: s,
                })
                .collect(),
        ))
    }
}

impl Hinter for ReplHelper<'_> {
    type Hint = String;
}

impl Highlighter for ReplHelper<'_> {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper<'_> {}

impl Helper for ReplHelper<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_and_symbols() {
        let commands: Vec<String> = ["goroutine", "goroutines", "help", "print", "p", "pp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let command_of = |name: &str| match name {
            "goroutine" => Some(Cmd::Goroutine),
            "goroutines" => Some(Cmd::Goroutines),
            "help" => Some(Cmd::Help),
            // `pp` stands for a configured alias.
            "print" | "p" | "pp" => Some(Cmd::Print),
            _ => None,
        };
        let symbols: Vec<String> = [
            "main.cfg",
            "main.config",
            "main.main",
            "net/http.DefaultClient",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let complete =
            |line: &str| complete_line(&commands, command_of, || &symbols[..], line, line.len());
        assert_eq!(
            complete("gor"),
            (0, vec!["goroutine".to_string(), "goroutines".to_string()])
        );
        assert_eq!(complete("print main.cf"), (6, vec!["main.cfg".to_string()]));
        assert_eq!(complete("print main.c").1, vec!["main.cfg", "main.config"]);
        assert_eq!(complete("p *main.m"), (3, vec!["main.main".to_string()]));
        assert_eq!(complete("pp main.m").1, vec!["main.main"]);
        assert_eq!(complete("goroutine 7 p main.ma").1, vec!["main.main"]);
        assert_eq!(complete("help gorout").1, vec!["goroutine", "goroutines"]);
        assert!(complete("help main.").1.is_empty());
        assert!(complete("goroutines main.").1.is_empty());
        // Completion in the middle of a line looks only at what precedes the cursor.
        assert_eq!(
            complete_line(&commands, command_of, || &symbols[..], "gor 1", 3)
                .1
                .len(),
            2
        );
    }

    #[test]
    fn selected_goroutine_is_marked() {
        let listing = "  Goroutine 1 - User: a.go:1 main.main (0x1) [sleep]\n  Goroutine 10 - User: b.go:2 main.f (0x2)\n[2 goroutines]\n";
        assert_eq!(
            mark_selected(listing, 1),
            "* Goroutine 1 - User: a.go:1 main.main (0x1) [sleep]\n  Goroutine 10 - User: b.go:2 main.f (0x2)\n[2 goroutines]\n"
        );
        assert_eq!(mark_selected(listing, 7), listing);
    }

    #[test]
    fn expression_keeps_quotes_and_splits_options() {
        let words =
            expression_words::<values::PrintArgs>("print", r#"-g 5 --format json m["a b"]"#)
                .unwrap();
        assert_eq!(
            words,
            vec!["-g", "5", "--format", "json", "--", r#"m["a b"]"#]
        );
        let words = expression_words::<values::PrintArgs>("print", "-- -x").unwrap();
        assert_eq!(words, vec!["--", "-x"]);
        let words = expression_words::<values::PrintArgs>("print", "-1 + x").unwrap();
        assert_eq!(words, vec!["--", "-1 + x"]);
        let words = expression_words::<values::PrintArgs>("print", "--frame=2 *p").unwrap();
        assert_eq!(words, vec!["--frame=2", "--", "*p"]);
        let words =
            expression_words::<values::PrintArgs>("print", r#"m["x y"] --format json --frame=1"#)
                .unwrap();
        assert_eq!(
            words,
            vec!["--format", "json", "--frame=1", "--", r#"m["x y"]"#]
        );
        // After an explicit `--` everything is the expression.
        let words = expression_words::<values::PrintArgs>("print", "-- a --format json").unwrap();
        assert_eq!(words, vec!["--", "a --format json"]);
        // Only known options are peeled.
        let words = expression_words::<values::PrintArgs>("print", "a --bogus 1").unwrap();
        assert_eq!(words, vec!["--", "a --bogus 1"]);
    }

    #[test]
    fn options_are_detected_in_all_spellings() {
        let words: Vec<String> = ["-g5", "--frame=1", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(has_option(&words, "--goroutine", Some('g')));
        assert!(has_option(&words, "--frame", None));
        assert!(!has_option(&words, "--max-string-len", None));
        let after_dashes: Vec<String> = ["--", "--frame"].iter().map(|s| s.to_string()).collect();
        assert!(!has_option(&after_dashes, "--frame", None));
    }

    #[test]
    fn source_listing_marks_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.go");
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let file = path.to_str().unwrap();
        let mut out = Vec::new();
        write_source(file, 10, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 12, "{out}");
        assert_eq!(lines[0], format!("> {file}:10"));
        assert_eq!(lines[1], "       5:\tline 5");
        assert_eq!(lines[6], "=>    10:\tline 10");
        let mut out = Vec::new();
        write_source(file, 2, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\n       1:\tline 1\n=>     2:"));
        assert!(write_source(file, 99, &mut Vec::new()).is_err());
        assert!(write_source("/nonexistent/x.go", 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn go_symbols_only() {
        assert!(is_go_symbol("main.cfg"));
        assert!(is_go_symbol("net/http.DefaultClient"));
        assert!(!is_go_symbol("go:buildinfo"));
        assert!(!is_go_symbol("type:*main.T"));
        assert!(!is_go_symbol("_cgo_init"));
        assert!(!is_go_symbol("runtime"));
    }

    #[test]
    fn init_files_skip_comments_and_blank_lines() {
        let lines: Vec<&str> = init_lines("# setup\n\n goroutines \n  # x\nbt\n").collect();
        assert_eq!(lines, vec!["goroutines", "bt"]);
    }

    #[test]
    fn live_only_message_names_the_command() {
        let message = live_only_message("continue");
        assert!(message.starts_with("a snapshot is read-only: continue needs a live process"));
        assert!(LIVE_ONLY.contains(&"call") && LIVE_ONLY.contains(&"break"));
        for spec in COMMANDS {
            for name in std::iter::once(&spec.name).chain(spec.aliases) {
                assert!(!LIVE_ONLY.contains(name), "{name} is both");
                assert!(!NOT_YET.contains(name), "{name} is both");
            }
        }
        for name in NOT_YET {
            assert!(!LIVE_ONLY.contains(name), "{name} is in both lists");
        }
    }

    #[test]
    fn parse_args_uses_the_subcommand_definition() {
        let args: InfoArgs =
            parse_args("info", &["--format".to_string(), "json".to_string()]).unwrap();
        assert_eq!(args.format, super::super::info::InfoFormat::Json);
        let err = parse_args::<InfoArgs>("info", &["--bogus".to_string()]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
