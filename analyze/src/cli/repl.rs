//! The interactive debugger: Delve's vocabulary over a read-only snapshot.
//!
//! This module only reads lines: each goes to the [`Console`], which parses
//! it with the command's clap definition (`super::commands`) and runs it
//! with the same functions as the one-shot command line.
//!
//! Input comes from, in order: each `-c CMD` (then exit), or the `--init
//! FILE` lines followed by the terminal (rustyline: history, completion) or,
//! when stdin is not a terminal, stdin's lines without prompts. An empty
//! line repeats the previous command, as in Delve.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::color::Style;
use super::commands::{repl_grammar, takes_expression};
use super::config::{history_path, Config};
use super::console::{Console, Flow};
use super::progress::{Progress, ProgressWriter};
use super::{error_text, exit_code, is_broken_pipe, open_target, values, UsageError, EXIT_OK};
use crate::Target;

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
    style: Style,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let config = Config::load()?;
    let target = open_target(snap, exe)?;
    let mut session = Console::new(&target, snap, exe, &config, style);
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
    session: &mut Console<'_>,
    line: &str,
    out: &mut dyn Write,
    status: &mut i32,
) -> anyhow::Result<Flow> {
    let progress = Progress::start(line.trim());
    session.set_progress(progress.clone());
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = ProgressWriter::new(&mut *out, progress.clone(), stdout_is_terminal);
        session.execute_line(line, &mut out)
    }));
    progress.finish();
    session.set_progress(Progress::hidden());
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
            say!("Command failed: {}", error_text(&err));
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
fn terminal_loop(session: &mut Console<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    let helper = ReplHelper::new(session.names().clone(), session.target());
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
            say!("rdlv: cannot keep history in {}: {e}", dir.display());
            return;
        }
    }
    if let Err(e) = editor.append_history(path) {
        say!("rdlv: cannot save history to {}: {e}", path.display());
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

/// Completion of command names (first word) and symbol names (after a
/// command that takes an expression, `print`).
struct ReplHelper<'t> {
    /// Command names and aliases (configured ones included) → command.
    names: BTreeMap<String, String>,
    /// Commands whose argument is a Go expression.
    expression_commands: Vec<String>,
    target: &'t Target,
    /// Loaded on the first symbol completion: reading DWARF for the globals
    /// of a large binary should not delay the first prompt.
    symbols: OnceLock<Vec<String>>,
}

impl<'t> ReplHelper<'t> {
    fn new(names: BTreeMap<String, String>, target: &'t Target) -> ReplHelper<'t> {
        let expression_commands = repl_grammar()
            .get_subcommands()
            .filter(|c| takes_expression(c))
            .map(|c| c.get_name().to_string())
            .collect();
        ReplHelper {
            names,
            expression_commands,
            target,
            symbols: OnceLock::new(),
        }
    }

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

/// What a word before the cursor makes the next word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A command name (first word, after `help`, after `goroutine N`).
    Command,
    /// A Go expression.
    Expression,
    /// Nothing this completer knows.
    Other,
}

/// Completion candidates for `line` up to `pos`: (start of the word,
/// candidates). `names` maps names and aliases to commands;
/// `expression_commands` take a Go expression.
fn complete_line<'a>(
    names: &BTreeMap<String, String>,
    expression_commands: &[String],
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
    let command_of = |name: &str| names.get(name).map(String::as_str);
    // `goroutine N CMD …` and `frame N CMD …` run CMD: complete for CMD.
    while before.len() >= 2 && matches!(command_of(before[0]), Some("goroutine" | "frame")) {
        before.drain(..2);
    }
    let slot = match before.as_slice() {
        [] => Slot::Command,
        [first] if command_of(first) == Some("help") => Slot::Command,
        [first, ..]
            if command_of(first).is_some_and(|c| expression_commands.iter().any(|e| e == c)) =>
        {
            Slot::Expression
        }
        _ => Slot::Other,
    };
    match slot {
        Slot::Command => (
            word_start,
            names
                .keys()
                .filter(|c| c.starts_with(word))
                .cloned()
                .collect(),
        ),
        Slot::Expression if !word.is_empty() => {
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
            &self.names,
            &self.expression_commands,
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
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for (name, command) in [
            ("goroutine", "goroutine"),
            ("goroutines", "goroutines"),
            ("help", "help"),
            ("print", "print"),
            ("p", "print"),
            // `pp` stands for a configured alias.
            ("pp", "print"),
        ] {
            names.insert(name.to_string(), command.to_string());
        }
        let expression_commands = vec!["print".to_string()];
        let symbols: Vec<String> = [
            "main.cfg",
            "main.config",
            "main.main",
            "net/http.DefaultClient",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let complete = |line: &str| {
            complete_line(
                &names,
                &expression_commands,
                || &symbols[..],
                line,
                line.len(),
            )
        };
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
            complete_line(&names, &expression_commands, || &symbols[..], "gor 1", 3)
                .1
                .len(),
            2
        );
    }

    #[test]
    fn print_and_whatis_are_the_expression_commands() {
        let grammar = repl_grammar();
        let takes: Vec<&str> = grammar
            .get_subcommands()
            .filter(|c| takes_expression(c))
            .map(|c| c.get_name())
            .collect();
        assert_eq!(takes, vec!["print", "whatis"]);
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
}
