//! The command registry: every command is defined once, here, as clap
//! derive types, and everything else is derived from that definition.
//!
//! - [`Command`]: the commands on an opened snapshot. The one-shot CLI
//!   (`rdlv NAME SNAP ARGS`, see `super::cli_command`, which adds the `SNAP`
//!   positional to each of them) and the REPL (`NAME ARGS`) parse the same
//!   variants, with the same aliases, options and help, and both run them
//!   through `Console::run_command`. A command reads its goroutine and frame
//!   from its own options, and in the REPL falls back to the selection.
//! - [`Navigation`]: commands that exist only in the REPL because they move
//!   or read its selection (`goroutine`, `frame`, `up`, `regs`, ...).
//! - The REPL's `help`, its name completion and the shells' completion
//!   scripts and man pages read the same clap definitions.
//!
//! To add a command: add a variant (with its doc comment as the summary and
//! its `Args` struct in the module that implements it) to [`Command`] and one
//! match arm to `Console::run_command`. Nothing else lists commands. A
//! command that does not run on one opened snapshot (`verify`, `completion`),
//! or whose `SNAP` is not its first positional (`export FORMAT SNAP`), is a
//! `super::TopCommand` variant instead, with its own `SNAP` argument.
//!
//! REPL lines are split into words by [`repl_words`], driven by the clap
//! definition of the command:
//! - Delve spells long options with one dash (`bt -full`, `goroutines
//!   -group user`, `-with`, `-wo`, `-exec`): a word `-NAME` whose NAME is a
//!   long option or alias of the command reads as `--NAME`;
//! - an argument with [`ValueHint::CommandString`] (`goroutine N CMD`,
//!   `goroutines -exec CMD`) takes the rest of the line verbatim;
//! - a positional whose value name is `EXPR` (`print`) takes the rest of the
//!   line verbatim too (quotes, brackets and spaces are Go syntax), minus
//!   known long options at its end (`p main.cfg --format json`, the command
//!   line's order).

use clap::builder::ValueHint;
use clap::{Args, CommandFactory, Parser, Subcommand};

use super::heap::{HeapArgs, LeaksArgs, WaitsArgs};
use super::info::InfoArgs;
use super::stacks::{BtArgs, GoroutinesArgs, SchedArgs, ThreadsArgs};
use super::values::{FrameVarsArgs, FuncsArgs, PrintArgs, VarsArgs, WhatisArgs};
use super::words::{split_first, split_words};
use super::UsageError;

/// Delve's `goroutines` forms, shown by `help goroutines` and `--help`.
const GOROUTINES_HELP: &str = "\
Delve's forms work as in Delve (one dash or two):
  -group userloc|curloc|goloc|startloc|running|user   groups by that key (at most 50
         groups, 5 goroutines shown per group, and its total); -group label KEY
         groups by the value of a pprof label; --group alone groups identical stacks
  -with|-w KIND [ARG], -without|-wo KIND [ARG]         keep (drop) goroutines where
         userloc|curloc|goloc|startloc ARG: the location `file:line in func` contains ARG;
         label KEY or label KEY=VALUE: the pprof label is set (to VALUE);
         running: on an OS thread at capture; user: not a runtime goroutine
  -t [DEPTH]                                           each goroutine's stack (10 frames)
  -exec COMMAND                                        runs COMMAND in every listed goroutine
`go`, `start` and `cur` are accepted for goloc, startloc and curloc. A `user` filter or
grouping includes the runtime's goroutines, as Delve lists them all.";

/// The commands on an opened snapshot: `rdlv NAME SNAP ...` and, in the
/// REPL, `NAME ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Describe the snapshot: process, capture, sizes, mappings.
    Info(InfoArgs),
    /// List goroutines (Delve style; --format go prints what runtime.Stack prints).
    #[command(visible_alias = "grs", after_long_help = GOROUTINES_HELP)]
    Goroutines(GoroutinesArgs),
    /// Stack of a goroutine (in the REPL, by default the selected one), innermost frame first.
    #[command(visible_alias = "stack")]
    Bt(BtArgs),
    /// OS threads and the goroutine each was running.
    Threads(ThreadsArgs),
    /// The scheduler at capture (as GODEBUG=schedtrace=1,scheddetail=1 prints it).
    Sched(SchedArgs),
    /// Evaluate EXPR: globals, and a frame's locals and arguments.
    #[command(visible_alias = "p")]
    Print(PrintArgs),
    /// Type of EXPR as Delve's whatis prints it (`Real type:`, `Concrete type:` lines).
    Whatis(WhatisArgs),
    /// Package variables whose name matches REGEX.
    Vars(VarsArgs),
    /// Functions of the executable whose name matches REGEX (from the pclntab).
    Funcs(FuncsArgs),
    /// Local variables of a goroutine's frame (in the REPL, the selected frame).
    Locals(FrameVarsArgs),
    /// Arguments of a goroutine's frame (in the REPL, the selected frame).
    Args(FrameVarsArgs),
    /// Live heap objects by type, beside the runtime's own accounting.
    Heap(HeapArgs),
    /// Goroutines blocked forever: the Go 1.26 leak detector, run offline.
    Leaks(LeaksArgs),
    /// Wait-for graph: blocked goroutine -> primitive -> goroutines reaching it; cycles.
    Waits(WaitsArgs),
}

/// Commands of the REPL only: they select, move or read the selection.
#[derive(Debug, Clone, Subcommand)]
pub enum Navigation {
    /// Show the selected goroutine, select goroutine ID, or run COMMAND in goroutine ID.
    #[command(visible_alias = "gr")]
    Goroutine(GoroutineArgs),
    /// Show the selected frame, select frame N (0 = innermost), or run COMMAND in frame N.
    Frame(FrameArgs),
    /// Move the selected frame N (default 1) towards the caller.
    Up(StepArgs),
    /// Move the selected frame N (default 1) towards the callee.
    Down(StepArgs),
    /// Source around the selected frame's line, if the file exists on this machine.
    #[command(visible_aliases = ["ls", "l"])]
    List,
    /// Registers of the thread running the selected frame (or the frame's pc, sp and cfa).
    Regs,
    /// Select the goroutine that thread TID was running.
    #[command(visible_alias = "tr")]
    Thread(ThreadArgs),
    /// List the commands, or show the usage of one.
    #[command(visible_alias = "h")]
    Help(HelpArgs),
    /// Leave the debugger.
    #[command(visible_aliases = ["quit", "q"])]
    Exit,
}

/// `goroutine [ID [COMMAND]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct GoroutineArgs {
    /// Goroutine to select (or to run COMMAND in).
    #[arg(value_name = "ID")]
    pub id: Option<u64>,
    /// A command to run in goroutine ID, leaving the selection as it was.
    #[arg(value_name = "COMMAND", value_hint = ValueHint::CommandString)]
    pub command: Option<String>,
}

/// `frame [N [COMMAND]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct FrameArgs {
    /// Frame to select (0 = innermost).
    #[arg(value_name = "N")]
    pub n: Option<usize>,
    /// A command to run in frame N, leaving the selection as it was.
    #[arg(value_name = "COMMAND", value_hint = ValueHint::CommandString)]
    pub command: Option<String>,
}

/// `up [N]` / `down [N]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct StepArgs {
    /// Frames to move.
    #[arg(value_name = "N", default_value_t = 1)]
    pub n: usize,
}

/// `thread TID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ThreadArgs {
    /// Thread id (as `threads` lists them).
    #[arg(value_name = "TID")]
    pub tid: u32,
}

/// `help [COMMAND]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct HelpArgs {
    /// Command (or alias) to describe.
    #[arg(value_name = "COMMAND")]
    pub topic: Option<String>,
}

/// One REPL command, parsed.
#[derive(Debug, Clone, Subcommand)]
pub enum ReplCommand {
    /// A snapshot command.
    #[command(flatten)]
    Snapshot(Command),
    /// A REPL-only command.
    #[command(flatten)]
    Navigation(Navigation),
}

/// The REPL's grammar: a line is one command.
#[derive(Debug, Parser)]
#[command(
    name = "rdlv",
    no_binary_name = true,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
pub struct ReplLine {
    /// The command.
    #[command(subcommand)]
    pub command: ReplCommand,
}

/// The clap command of the REPL grammar (its subcommands are every REPL
/// command, in registry order).
pub fn repl_grammar() -> clap::Command {
    ReplLine::command()
}

/// The clap commands of the snapshot commands, in registry order.
pub fn snapshot_commands() -> Vec<clap::Command> {
    Command::augment_subcommands(clap::Command::new("rdlv"))
        .get_subcommands()
        .cloned()
        .collect()
}

/// Delve commands that need a live process. A snapshot cannot run code.
pub const LIVE_ONLY: &[&str] = &[
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
pub const NOT_YET: &[&str] = &[
    "disassemble",
    "disass",
    "examinemem",
    "x",
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
    crate::error::Unsupported::LiveOnly {
        command: command.to_string(),
    }
    .to_string()
}

/// Whether `arg` takes the rest of a REPL line verbatim as a command.
fn is_rest_command(arg: &clap::Arg) -> bool {
    arg.get_value_hint() == ValueHint::CommandString
}

/// Whether `arg` is a Go expression (the rest of the line, options peeled).
pub fn is_expression(arg: &clap::Arg) -> bool {
    arg.get_value_names()
        .is_some_and(|names| names.iter().any(|n| n.as_str() == "EXPR"))
}

/// Whether `command` takes a Go expression (for completion of symbols).
pub fn takes_expression(command: &clap::Command) -> bool {
    command.get_positionals().any(is_expression)
}

/// Whether `word` is an option rather than a value (`-1`, `-.5` are numbers).
fn is_option(word: &str) -> bool {
    word.len() > 1
        && word.starts_with('-')
        && !word[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

/// The long option `name` (or one of its aliases) of `command`.
fn long_option<'c>(command: &'c clap::Command, name: &str) -> Option<&'c clap::Arg> {
    command.get_arguments().find(|a| {
        a.get_long() == Some(name)
            || a.get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&name))
    })
}

/// The option a word names, with the word in clap's spelling: `-full`
/// (Delve) becomes `--full` when `full` is a long option of `command`.
fn option_of<'c>(command: &'c clap::Command, word: &str) -> (String, Option<&'c clap::Arg>) {
    if let Some(long) = word.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or(long);
        return (word.to_string(), long_option(command, name));
    }
    let single = &word[1..];
    let name = single.split('=').next().unwrap_or(single);
    if name.chars().count() > 1 {
        if let Some(arg) = long_option(command, name) {
            return (format!("-{word}"), Some(arg));
        }
    }
    // `-g5`, `-ul`: short options, the last one may take the value.
    let mut chars = single.chars();
    let first = chars.next();
    let arg = match (first, chars.next()) {
        (Some(c), None) => command.get_arguments().find(|a| a.get_short() == Some(c)),
        _ => None,
    };
    (word.to_string(), arg)
}

/// Most values an option takes (1 for a plain option, 0 for a flag).
fn max_values(arg: &clap::Arg) -> usize {
    if !arg.get_action().takes_values() {
        return 0;
    }
    arg.get_num_args().map(|r| r.max_values()).unwrap_or(1)
}

/// Splits the arguments of a REPL command (the line after its name) into
/// the words clap parses, following `command`'s definition (see the module
/// docs for the rules).
pub fn repl_words(command: &clap::Command, rest: &str) -> Result<Vec<String>, UsageError> {
    let positionals: Vec<&clap::Arg> = command.get_positionals().collect();
    let mut words = Vec::new();
    let mut rest = rest.trim();
    let mut positional = 0usize;
    loop {
        let (raw, after) = split_first(rest);
        if raw.is_empty() {
            return Ok(words);
        }
        if raw == "--" {
            words.push("--".to_string());
            let after = after.trim();
            if after.is_empty() {
                return Ok(words);
            }
            match positionals.get(positional) {
                Some(arg) if is_rest_command(arg) || is_expression(arg) => {
                    words.push(after.to_string())
                }
                _ => words.extend(split_words(after)?),
            }
            return Ok(words);
        }
        if is_option(raw) {
            let (word, arg) = option_of(command, raw);
            let attached = word.contains('=') || (!word.starts_with("--") && word.len() > 2);
            if let Some(arg) = arg.filter(|a| is_rest_command(a) && !attached) {
                let _ = arg;
                words.push(word);
                if !after.trim().is_empty() {
                    words.push(after.trim().to_string());
                }
                return Ok(words);
            }
            words.extend(split_words(&word)?);
            rest = after;
            if attached {
                continue;
            }
            for _ in 0..arg.map(max_values).unwrap_or(0) {
                let (value, after) = split_first(rest);
                if value.is_empty() || value == "--" || is_option(value) {
                    break;
                }
                words.extend(split_words(value)?);
                rest = after;
            }
            continue;
        }
        match positionals.get(positional) {
            Some(arg) if is_rest_command(arg) => {
                words.push("--".to_string());
                words.push(rest.trim().to_string());
                return Ok(words);
            }
            Some(arg) if is_expression(arg) => {
                let (expr, trailing) = peel_trailing_options(command, rest.trim())?;
                words.extend(trailing);
                if !expr.is_empty() {
                    words.push("--".to_string());
                    words.push(expr.to_string());
                }
                return Ok(words);
            }
            Some(arg) => {
                words.extend(split_words(raw)?);
                if max_values_positional(arg) <= 1 {
                    positional += 1;
                }
            }
            None => words.extend(split_words(raw)?),
        }
        rest = after;
    }
}

fn max_values_positional(arg: &clap::Arg) -> usize {
    arg.get_num_args().map(|r| r.max_values()).unwrap_or(1)
}

/// Known long options at the end of an expression (`m["k"] --format json`)
/// split off its end: no Go expression ends with `--name`.
fn peel_trailing_options<'a>(
    command: &clap::Command,
    mut rest: &'a str,
) -> Result<(&'a str, Vec<String>), UsageError> {
    let known = |word: &str| -> Option<usize> {
        let long = word.strip_prefix("--")?;
        let name = long.split('=').next().unwrap_or(long);
        let arg = long_option(command, name)?;
        Some(if long.contains('=') {
            0
        } else {
            max_values(arg)
        })
    };
    let mut trailing: Vec<String> = Vec::new();
    while let Some(i) = rest.rfind(char::is_whitespace) {
        let last = &rest[i + 1..];
        let before = rest[..i].trim_end();
        if known(last) == Some(0) {
            trailing.splice(0..0, [last.to_string()]);
            rest = before;
            continue;
        }
        match before.rfind(char::is_whitespace) {
            Some(j) if known(&before[j + 1..]).is_some_and(|n| n >= 1) => {
                trailing.splice(0..0, [before[j + 1..].to_string(), last.to_string()]);
                rest = before[..j].trim_end();
            }
            _ => break,
        }
    }
    Ok((rest, trailing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str) -> clap::Command {
        repl_grammar()
            .find_subcommand(name)
            .cloned()
            .unwrap_or_else(|| panic!("no command {name}"))
    }

    fn words(name: &str, line: &str) -> Vec<String> {
        repl_words(&sub(name), line).unwrap()
    }

    fn parse(line: &str) -> ReplCommand {
        let (name, rest) = split_first(line);
        let mut all = vec![sub(name).get_name().to_string()];
        all.extend(words(name, rest));
        ReplLine::try_parse_from(all)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    #[test]
    fn registry_names_are_unique_and_not_delve_only() {
        let grammar = repl_grammar();
        let mut seen = std::collections::BTreeSet::new();
        for c in grammar.get_subcommands() {
            for name in std::iter::once(c.get_name()).chain(c.get_all_aliases()) {
                assert!(seen.insert(name.to_string()), "{name} twice");
                assert!(!LIVE_ONLY.contains(&name), "{name} is live-only too");
                assert!(!NOT_YET.contains(&name), "{name} is not-yet too");
            }
        }
        for name in NOT_YET {
            assert!(!LIVE_ONLY.contains(name), "{name} is in both lists");
        }
        assert!(live_only_message("continue")
            .starts_with("a snapshot is read-only: continue needs a live process"));
    }

    #[test]
    fn expression_keeps_quotes_and_splits_options() {
        assert_eq!(
            words("print", r#"-g 5 --format json m["a b"]"#),
            vec!["-g", "5", "--format", "json", "--", r#"m["a b"]"#]
        );
        assert_eq!(words("print", "-- -x"), vec!["--", "-x"]);
        assert_eq!(words("print", "-1 + x"), vec!["--", "-1 + x"]);
        assert_eq!(
            words("print", "--frame=2 *p"),
            vec!["--frame=2", "--", "*p"]
        );
        assert_eq!(
            words("print", r#"m["x y"] --format json --frame=1"#),
            vec!["--format", "json", "--frame=1", "--", r#"m["x y"]"#]
        );
        assert_eq!(
            words("print", "-- a --format json"),
            vec!["--", "a --format json"]
        );
        assert_eq!(words("print", "a --bogus 1"), vec!["--", "a --bogus 1"]);
    }

    #[test]
    fn delve_single_dash_long_options() {
        assert_eq!(words("bt", "-full"), vec!["--full"]);
        assert_eq!(words("bt", "7 -full"), vec!["7", "--full"]);
        assert_eq!(
            words("goroutines", "-group label k -l"),
            vec!["--group", "label", "k", "-l"]
        );
        assert_eq!(
            words("goroutines", "-wo user -w label k=v"),
            vec!["--wo", "user", "-w", "label", "k=v"]
        );
        // Short clusters stay short options.
        assert_eq!(words("goroutines", "-ul"), vec!["-ul"]);
    }

    #[test]
    fn commands_take_the_rest_of_the_line() {
        assert_eq!(
            words("goroutines", r#"-with user -exec print m["a b"] -full"#),
            vec!["--with", "user", "--exec", r#"print m["a b"] -full"#]
        );
        assert_eq!(
            words("goroutine", r#"7 print m["a b"]"#),
            vec!["7", "--", r#"print m["a b"]"#]
        );
        assert_eq!(words("frame", "2"), vec!["2"]);
    }

    #[test]
    fn lines_parse_into_the_shared_types() {
        match parse("goroutines -group user") {
            ReplCommand::Snapshot(Command::Goroutines(a)) => {
                assert_eq!(a.group, Some(vec!["user".to_string()]))
            }
            other => panic!("{other:?}"),
        }
        match parse("grs -with userloc main.go -without running -exec bt") {
            ReplCommand::Snapshot(Command::Goroutines(a)) => {
                assert_eq!(a.exec.as_deref(), Some("bt"));
                assert_eq!(a.filters.with, vec![vec!["userloc", "main.go"]]);
                assert_eq!(a.filters.without, vec![vec!["running"]]);
            }
            other => panic!("{other:?}"),
        }
        match parse("bt -full") {
            ReplCommand::Snapshot(Command::Bt(a)) => assert!(a.full && a.goid.is_none()),
            other => panic!("{other:?}"),
        }
        match parse("p -g 5 m[\"k\"]") {
            ReplCommand::Snapshot(Command::Print(a)) => {
                assert_eq!((a.goroutine, a.frame), (Some(5), None));
                assert_eq!(a.expr, vec!["m[\"k\"]".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        match parse("goroutine 3 locals -v") {
            ReplCommand::Navigation(Navigation::Goroutine(a)) => {
                assert_eq!(a.id, Some(3));
                assert_eq!(a.command.as_deref(), Some("locals -v"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("up"),
            ReplCommand::Navigation(Navigation::Up(StepArgs { n: 1 }))
        ));
        assert!(matches!(
            parse("q"),
            ReplCommand::Navigation(Navigation::Exit)
        ));
    }
}
