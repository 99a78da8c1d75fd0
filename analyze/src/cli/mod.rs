//! The `rdlv` command line: argument parsing, dispatch, exit codes.
//!
//! This module tree belongs to the `rdlv` *binary*, not to the library. The
//! binary's crate root re-exports the whole library (`pub use
//! rdlv_analyze::*`), so `crate::Target`, `crate::runtime::…` and
//! `rdlv_analyze::…` both work here; only the library's `pub` API is visible.
//!
//! Every command on a snapshot is defined once in [`commands`] (clap
//! derive); [`cli_command`] turns each into `rdlv NAME SNAP ARGS` by adding
//! the `SNAP` positional in front, and the REPL parses the same definitions.
//! Both run through [`console::Console`]. Completion scripts (`rdlv
//! completion SHELL`) and man pages (`rdlv man`) are generated from
//! [`cli_command`], so they list exactly what parses.
//!
//! Exit codes (CONTRACT.md): 0 success; 1 a request that cannot be answered;
//! 2 usage; 3 unreadable, corrupt or mismatched input; 101 internal error.

/// `eprintln!` that never panics. A closed stderr (`2>&-`, or a reader of
/// `2>&1 | head` that went away) has nowhere to report to, so the line is
/// dropped; the exit code still tells what happened. Every message of the
/// command line goes through this, so no panic ever comes from a write.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod color;
pub mod commands;
pub mod config;
pub mod console;
pub mod encrypted;
pub mod export;
pub mod heap;
pub mod info;
pub mod progress;
pub mod redact;
pub mod repl;
pub mod stacks;
pub mod values;
pub mod words;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::{AnalyzeError, ErrorClass, Target};
use color::{ColorChoice, Style};
use progress::{Progress, ProgressWriter};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: a request that cannot be answered (unknown goroutine, symbol not found).
pub const EXIT_UNANSWERABLE: i32 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: unreadable, corrupt or mismatched input.
pub const EXIT_INPUT: i32 = 3;
/// Exit code: internal error (a bug in rdlv).
pub const EXIT_INTERNAL: i32 = 101;

/// `rdlv`: offline post-mortem debugger for Go processes captured by `rdlv-snap`.
#[derive(Debug, Parser)]
#[command(
    name = "rdlv",
    version,
    about = "Post-mortem debugger for Go processes: goroutines, stacks and values from an rdlv-snap snapshot",
    after_help = "With a snapshot and no command, `rdlv SNAP` starts the interactive debugger (same as `rdlv repl SNAP`).\n\
                  Exit codes: 0 ok, 1 request cannot be answered, 2 usage, 3 unreadable/corrupt/mismatched input.",
    subcommand_negates_reqs = true,
    override_usage = "rdlv [--exe PATH] [-i KEY] <COMMAND> SNAP [ARGS]...\n       rdlv [--exe PATH] [-i KEY] SNAP [-c CMD]... [--init FILE]"
)]
pub struct Cli {
    /// Executable to analyze with instead of the one embedded in the snapshot
    /// (e.g. an unstripped twin of a stripped binary): the same build id, or
    /// every loaded section the captured executable's byte for byte.
    #[arg(long, global = true, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub exe: Option<PathBuf>,
    /// Private key that opens a snapshot `rdlv-snap --encrypt-to` encrypted:
    /// an age identity file (age-keygen) or an unencrypted SSH private key.
    /// Default: $RDLV_IDENTITY. Decryption happens in memory, as needed.
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Colour stack traces and source listings as Delve does: auto (when stdout
    /// is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Option<TopCommand>,
    /// Snapshot to open in the interactive debugger (when no command is given).
    #[arg(value_name = "SNAP", value_hint = clap::ValueHint::FilePath)]
    pub snap: Option<PathBuf>,
    /// REPL options when no command is given.
    #[command(flatten)]
    pub repl: repl::ReplOptions,
}

/// Subcommands: the snapshot commands of the registry, and the ones that
/// are not about one opened snapshot.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// A command on a snapshot (`SNAP` comes first, see [`cli_command`]).
    #[command(flatten)]
    Snapshot(commands::Command),
    /// Check every checksum of a snapshot and decompress every chunk.
    Verify {
        /// Snapshot file.
        #[arg(value_name = "SNAP", value_hint = clap::ValueHint::FilePath)]
        snap: PathBuf,
    },
    /// Export to pprof (goroutine profile, or with --heap the heap profile), an ELF core, or folded stacks.
    Export(export::ExportArgs),
    /// Write a self-contained HTML report of the goroutines.
    Report(export::ReportArgs),
    /// Write a snapshot for sharing: only the memory goroutine, stack and
    /// scheduler analysis read; every other byte is removed (reads of it fail).
    Redact(redact::RedactArgs),
    /// Interactive debugger (Delve's vocabulary) on a snapshot.
    Repl {
        /// Snapshot file.
        #[arg(value_name = "SNAP", value_hint = clap::ValueHint::FilePath)]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        opts: repl::ReplOptions,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `source <(rdlv completion bash)`; zsh: `rdlv completion zsh >
    /// "${fpath[1]}/_rdlv"`; fish: `rdlv completion fish | source`.
    Completion {
        /// Shell.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page rdlv(1) to stdout, or write rdlv.1 and one page per
    /// command (rdlv-bt.1, ...) into DIR.
    Man {
        /// Directory for every page (created if missing).
        #[arg(short = 'o', long = "output", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
}

/// The complete one-shot command line: [`Cli`] with a `SNAP` positional in
/// front of every snapshot command's own positionals. Parsing, help,
/// completion and man pages all use this one definition.
pub fn cli_command() -> clap::Command {
    let mut cmd = Cli::command();
    for sub in commands::snapshot_commands() {
        cmd = cmd.mut_subcommand(sub.get_name(), |sub| {
            let own: Vec<clap::Id> = sub.get_positionals().map(|a| a.get_id().clone()).collect();
            let mut sub = sub;
            for (i, id) in own.into_iter().enumerate() {
                sub = sub.mut_arg(id, |a| a.index(i + 2));
            }
            sub.arg(
                clap::Arg::new(SNAP_ID)
                    .value_name("SNAP")
                    .help("Snapshot file")
                    .required(true)
                    .index(1)
                    .value_hint(clap::ValueHint::FilePath)
                    .value_parser(clap::value_parser!(PathBuf)),
            )
        });
    }
    cmd
}

/// The id of the `SNAP` argument [`cli_command`] adds.
const SNAP_ID: &str = "snapshot";

/// A parsed command line.
#[derive(Debug)]
pub struct Invocation {
    /// The typed options.
    pub cli: Cli,
    /// The snapshot of a snapshot command.
    pub snap: Option<PathBuf>,
    /// The subcommand's name as typed (an alias stays an alias), for progress.
    pub name: Option<String>,
}

/// Parses `args` (the program name first) with [`cli_command`].
pub fn parse_args<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = cli_command().try_get_matches_from(args)?;
    let snap = matches
        .subcommand()
        .and_then(|(_, m)| m.try_get_one::<PathBuf>(SNAP_ID).ok().flatten().cloned());
    let name = matches.subcommand_name().map(str::to_string);
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Invocation { cli, snap, name })
}

/// A usage error found after clap parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses the process arguments and runs; returns the exit code.
pub fn main() -> i32 {
    install_panic_hook();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let invocation = match parse_args(std::env::args_os()) {
            Ok(invocation) => invocation,
            Err(e) => {
                let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
                // A failed print of help (closed stdout) changes nothing.
                let _ = e.print();
                return code;
            }
        };
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let result = run(invocation, &mut out).and_then(|code| {
            out.flush()?;
            Ok(code)
        });
        match result {
            Ok(code) => code,
            Err(err) => report_error(&err),
        }
    }));
    match result {
        Ok(code) => code,
        Err(_) => EXIT_INTERNAL,
    }
}

/// Prints `err` to stderr the way the command line does and returns its exit code.
pub fn report_error(err: &anyhow::Error) -> i32 {
    if is_broken_pipe(err) {
        // `rdlv goroutines x.snap | head`: the reader is gone, stop quietly.
        return EXIT_OK;
    }
    say!("rdlv: {}", error_text(err));
    exit_code(err)
}

/// The error and its causes on one line, without repeating a cause that the
/// outer message already contains (thiserror's `transparent` wrappers).
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether the error is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Maps an error to the CONTRACT exit code: the first typed cause decides.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<AnalyzeError>() {
            return match e.class() {
                ErrorClass::Unanswerable => EXIT_UNANSWERABLE,
                ErrorClass::Input => EXIT_INPUT,
            };
        }
        if let Some(e) = cause.downcast_ref::<rdlv_format::FormatError>() {
            return match e {
                rdlv_format::FormatError::Usage(_) => EXIT_INTERNAL,
                _ => EXIT_INPUT,
            };
        }
        if cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<config::ConfigError>().is_some()
            || cause.downcast_ref::<values::RegexError>().is_some()
        {
            return EXIT_USAGE;
        }
        if cause.downcast_ref::<clap::Error>().is_some() {
            return EXIT_USAGE;
        }
    }
    EXIT_UNANSWERABLE
}

/// Prints panics as an internal error; `main` turns them into exit code 101.
/// Output never panics (stdout is a `Write` whose errors are returned,
/// stderr goes through `say!`), so every panic is a bug worth a report.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        say!(
            "rdlv: internal error: {message}{location}; please report this (with `rdlv --version` and the command line)"
        );
    }));
}

/// Opens a snapshot and its executable, mapping failures to a message that
/// names the file.
pub fn open_target(snap: &Path, exe: Option<&Path>) -> anyhow::Result<Target> {
    let target = Target::open(snap, exe)
        .with_context(|| format!("cannot open snapshot {}", snap.display()))?;
    if let Some(note) = target.exe_note() {
        eprintln!("rdlv: {note}");
    }
    Ok(target)
}

/// Opens only the snapshot container (no executable): enough for `info` and `verify`.
pub fn open_snapshot(snap: &Path) -> anyhow::Result<rdlv_format::Snapshot> {
    crate::keys::open_snapshot(snap)
        .map_err(AnalyzeError::from)
        .with_context(|| format!("cannot open snapshot {}", snap.display()))
}

/// Runs a parsed command line; returns the exit code for successful paths
/// that still want a non-zero status (a scripted REPL whose command failed).
pub fn run(invocation: Invocation, out: &mut dyn Write) -> anyhow::Result<i32> {
    let Invocation { cli, snap, name } = invocation;
    let exe = cli.exe.as_deref();
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let style = Style::new(cli.color, stdout_is_terminal);
    if cli.command.is_some()
        && (cli.snap.is_some() || !cli.repl.commands.is_empty() || cli.repl.init.is_some())
    {
        return Err(UsageError(
            "give the snapshot after the command (`rdlv info SNAP`), or no command (`rdlv SNAP`)"
                .to_string(),
        )
        .into());
    }
    let identity = cli.identity.clone().or_else(|| {
        std::env::var_os("RDLV_IDENTITY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = identity {
        let identities = rdlv_format::Identities::from_file(&path).map_err(AnalyzeError::from)?;
        // A second install (a caller running twice in one process) keeps the first.
        let _ = crate::keys::set_identities(identities);
    }
    match cli.command {
        Some(TopCommand::Snapshot(command)) => {
            let snap = snap.ok_or_else(|| UsageError("the command needs a SNAP".to_string()))?;
            one_shot_preflight(&command)?;
            if let commands::Command::Info(args) = &command {
                // Without a key, an encrypted snapshot's info is what its age
                // header tells in the clear.
                if crate::keys::identities().is_none() && encrypted::run_info(&snap, args, out)? {
                    return Ok(EXIT_OK);
                }
                // `info` also describes a snapshot whose executable is unusable.
                info::run_info_path(&snap, exe, args, out)?;
                return Ok(EXIT_OK);
            }
            let progress = Progress::start(&format!("opening {}", snap.display()));
            let mut out = ProgressWriter::new(out, progress.clone(), stdout_is_terminal);
            let target = open_target(&snap, exe)?;
            progress.set_message(name.as_deref().unwrap_or("working"));
            let mut console =
                console::Console::new(&target, &snap, exe, &config::Config::default(), style);
            console.set_progress(progress.clone());
            let result = console.run_command(command, &mut out);
            progress.finish();
            drop(console);
            // The process exits next: freeing the session (the executable,
            // every parsed table, the DWARF arenas) would only cost time.
            std::mem::forget(target);
            result?;
            Ok(EXIT_OK)
        }
        Some(TopCommand::Verify { snap }) => info::run_verify_path(&snap, out),
        Some(TopCommand::Export(args)) => export::run_export(&args, exe, out),
        Some(TopCommand::Report(args)) => export::run_report(&args, exe, out),
        Some(TopCommand::Redact(args)) => redact::run_redact(&args, exe, out),
        Some(TopCommand::Repl { snap, opts }) => repl::run_repl_path(&snap, exe, &opts, style, out),
        Some(TopCommand::Completion { shell }) => {
            let mut cmd = cli_command();
            clap_complete::generate(shell, &mut cmd, "rdlv", out);
            Ok(EXIT_OK)
        }
        Some(TopCommand::Man { dir }) => {
            write_man_pages(dir.as_deref(), out)?;
            Ok(EXIT_OK)
        }
        None => match cli.snap {
            Some(snap) => repl::run_repl_path(&snap, exe, &cli.repl, style, out),
            None => {
                let help = cli_command().render_help();
                say!("{help}");
                Ok(EXIT_USAGE)
            }
        },
    }
}

/// What a one-shot command needs that the REPL would take from its
/// selection: a usage error (exit 2) before anything is opened.
fn one_shot_preflight(command: &commands::Command) -> Result<(), UsageError> {
    use commands::Command as C;
    let missing = match command {
        C::Bt(a) if a.goid.is_none() => Some("bt needs a goroutine id: rdlv bt SNAP GOID"),
        C::Locals(a) if a.goroutine.is_none() => {
            Some("locals needs a goroutine: rdlv locals SNAP --goroutine GOID [--frame N]")
        }
        C::Args(a) if a.goroutine.is_none() => {
            Some("args needs a goroutine: rdlv args SNAP --goroutine GOID [--frame N]")
        }
        _ => None,
    };
    match missing {
        Some(m) => Err(UsageError(m.to_string())),
        None => Ok(()),
    }
}

/// `rdlv man`: rdlv(1) to `out`, or every page into `dir`.
fn write_man_pages(dir: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<()> {
    let cmd = cli_command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(out)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create man page directory {}", dir.display()))?;
    let mut pages = vec![(String::from("rdlv"), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("rdlv-{}", sub.get_name());
        pages.push((
            name.clone(),
            sub.clone()
                .display_name(name.clone())
                .bin_name(format!("rdlv {}", sub.get_name())),
        ));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        clap_mangen::Man::new(page)
            .render(&mut file)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let not_found = anyhow::Error::new(AnalyzeError::from(crate::error::NotFound::Thread {
            tid: 7,
            known: vec![1, 2],
        }));
        assert_eq!(exit_code(&not_found), EXIT_UNANSWERABLE);
        assert_eq!(
            not_found.to_string(),
            "no thread 7 in this snapshot; threads: 1, 2"
        );
        let no_g = AnalyzeError::NoGoroutine {
            goid: 7,
            nearest: vec![6, 8],
        };
        assert_eq!(
            no_g.to_string(),
            "no goroutine 7 in this snapshot; nearest goroutines: 6, 8 (list them with `goroutines`)"
        );
        assert_eq!(
            exit_code(&anyhow::Error::new(no_g).context("bt")),
            EXIT_UNANSWERABLE
        );
        let no_frame = AnalyzeError::NoFrame {
            goid: 7,
            frame: 9,
            count: 3,
        };
        assert_eq!(
            no_frame.to_string(),
            "frame 9 does not exist: goroutine 7 has 3 frames (0..2)"
        );
        assert_eq!(exit_code(&anyhow::Error::new(no_frame)), EXIT_UNANSWERABLE);
        let corrupt = anyhow::Error::new(AnalyzeError::from(crate::error::Corrupt::Record {
            what: "runtime.g",
            addr: 0xc000,
            detail: "bad".into(),
        }))
        .context("cannot open snapshot x");
        assert_eq!(exit_code(&corrupt), EXIT_INPUT);
        let format = anyhow::Error::new(rdlv_format::FormatError::BadMagic);
        assert_eq!(exit_code(&format), EXIT_INPUT);
        let usage = anyhow::Error::new(UsageError("print needs an expression".into()));
        assert_eq!(exit_code(&usage), EXIT_USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), EXIT_UNANSWERABLE);
    }

    /// The code follows the variant: errors whose messages are the same
    /// text get the codes of their variants, and every variant of the
    /// library's error tree has the class CONTRACT.md gives it.
    #[test]
    fn exit_codes_come_from_variants_not_messages() {
        use crate::error::{BinaryError, BuildIdKind, Corrupt, NotFound, Unsupported};
        let same_text_input = AnalyzeError::from(Corrupt::Thread {
            tid: 7,
            detail: "x".into(),
        });
        let same_text_unanswerable = AnalyzeError::from(NotFound::UnreadableValue {
            expr: "thread 7".into(),
            why: "x".into(),
        });
        assert_eq!(
            same_text_input.to_string(),
            same_text_unanswerable.to_string()
        );
        let code = |e: AnalyzeError| exit_code(&anyhow::Error::new(e).context("outer"));
        assert_eq!(code(same_text_input), EXIT_INPUT);
        assert_eq!(code(same_text_unanswerable), EXIT_UNANSWERABLE);
        let input = [
            AnalyzeError::from(BinaryError::NotElf),
            AnalyzeError::from(BinaryError::Truncated { offset: 1, len: 2 }),
            AnalyzeError::from(crate::dwarf::DwarfError::DanglingType(1)),
            AnalyzeError::Mismatch {
                exe: "x".into(),
                id: BuildIdKind::Go,
                got: "a".into(),
                want: "b".into(),
                compared: String::new(),
            },
            AnalyzeError::from(Corrupt::Count {
                what: "runtime.allglen",
                count: 1 << 40,
                bound: 10,
            }),
            AnalyzeError::Unreadable { addr: 1, len: 8 },
            AnalyzeError::from(std::io::Error::other("disk")),
        ];
        for e in input {
            let text = e.to_string();
            assert_eq!(code(e), EXIT_INPUT, "{text}");
        }
        let unanswerable = [
            AnalyzeError::from(crate::dwarf::DwarfError::Missing),
            AnalyzeError::from(crate::runtime::layout::LayoutError::UnsupportedVersion(30)),
            AnalyzeError::Redacted { addr: 1, len: 8 },
            AnalyzeError::from(crate::value::expr::EvalError::Syntax("(".into())),
            AnalyzeError::from(NotFound::NoHeapProfile { rate: 0 }),
            AnalyzeError::from(Unsupported::Stripped {
                symbol: "runtime.allgs",
                tried: "nothing",
            }),
            AnalyzeError::from(Unsupported::NotYet {
                command: "trace".into(),
            }),
        ];
        for e in unanswerable {
            let text = e.to_string();
            assert_eq!(code(e), EXIT_UNANSWERABLE, "{text}");
        }
    }

    #[test]
    fn broken_pipe_is_recognized_through_context() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing goroutines");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn error_text_does_not_repeat_transparent_causes() {
        let err = anyhow::Error::new(AnalyzeError::from(rdlv_format::FormatError::BadMagic))
            .context("cannot open snapshot x.snap");
        let text = error_text(&err);
        assert_eq!(text.matches("bad magic").count(), 1, "{text}");
        assert!(text.starts_with("cannot open snapshot x.snap: "), "{text}");
    }

    #[test]
    fn no_command_with_snapshot_means_repl() {
        let inv = parse_args(["rdlv", "x.snap", "-c", "goroutines"]).unwrap();
        assert!(inv.cli.command.is_none());
        assert_eq!(inv.cli.snap.as_deref(), Some(Path::new("x.snap")));
        assert_eq!(inv.cli.repl.commands, vec!["goroutines".to_string()]);
        let inv = parse_args(["rdlv", "--exe", "bin", "info", "x.snap"]).unwrap();
        assert!(matches!(
            inv.cli.command,
            Some(TopCommand::Snapshot(commands::Command::Info(_)))
        ));
        assert_eq!(inv.snap.as_deref(), Some(Path::new("x.snap")));
        assert_eq!(inv.cli.exe.as_deref(), Some(Path::new("bin")));
    }

    #[test]
    fn snapshot_commands_take_snap_first_with_the_repl_aliases() {
        let inv = parse_args(["rdlv", "stack", "x.snap", "7", "--full"]).unwrap();
        assert_eq!(inv.snap.as_deref(), Some(Path::new("x.snap")));
        match inv.cli.command {
            Some(TopCommand::Snapshot(commands::Command::Bt(a))) => {
                assert_eq!(a.goid, Some(7));
                assert!(a.full);
            }
            other => panic!("{other:?}"),
        }
        let inv = parse_args([
            "rdlv", "grs", "x.snap", "--group", "label", "k", "--color", "never",
        ])
        .unwrap();
        assert_eq!(inv.cli.color, ColorChoice::Never);
        match inv.cli.command {
            Some(TopCommand::Snapshot(commands::Command::Goroutines(a))) => {
                assert_eq!(a.group, Some(vec!["label".to_string(), "k".to_string()]))
            }
            other => panic!("{other:?}"),
        }
        let inv = parse_args(["rdlv", "print", "x.snap", "main.cfg", "--format", "json"]).unwrap();
        assert!(matches!(
            inv.cli.command,
            Some(TopCommand::Snapshot(commands::Command::Print(_)))
        ));
        // Every snapshot command of the REPL exists on the command line with SNAP first.
        let cli = cli_command();
        for sub in commands::snapshot_commands() {
            let one_shot = cli
                .find_subcommand(sub.get_name())
                .unwrap_or_else(|| panic!("{} missing", sub.get_name()));
            let first = one_shot
                .get_positionals()
                .min_by_key(|a| a.get_index())
                .map(|a| a.get_id().as_str());
            assert_eq!(first, Some(SNAP_ID), "{}", sub.get_name());
            let aliases: Vec<&str> = sub.get_all_aliases().collect();
            let one_shot_aliases: Vec<&str> = one_shot.get_all_aliases().collect();
            assert_eq!(aliases, one_shot_aliases);
        }
        cli.debug_assert();
        commands::repl_grammar().debug_assert();
        assert!(parse_args(["rdlv", "bt"]).is_err());
    }

    #[test]
    fn completion_and_man_page_are_generated() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut cli_command(),
            "rdlv",
            &mut script,
        );
        let script = String::from_utf8(script).unwrap();
        assert!(
            script.contains("goroutines") && script.contains("--with"),
            "{script}"
        );
        let mut page = Vec::new();
        write_man_pages(None, &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.contains(".TH rdlv") && page.contains("goroutines"),
            "{page}"
        );
    }
}
