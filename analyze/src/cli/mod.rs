//! The `rdlv` command line: argument parsing, dispatch, exit codes.
//!
//! This module tree belongs to the `rdlv` *binary*, not to the library. The
//! binary's crate root re-exports the whole library (`pub use
//! rdlv_analyze::*`), so `crate::Target`, `crate::runtime::…` and
//! `rdlv_analyze::…` both work here; only the library's `pub` API is visible.
//!
//! Each subcommand is a clap `Args` struct plus a
//! `run_x(target, &args, out: &mut dyn Write) -> anyhow::Result<()>`; the REPL
//! parses its lines into the same structs and calls the same functions.
//!
//! Exit codes (CONTRACT.md): 0 success; 1 a request that cannot be answered;
//! 2 usage; 3 unreadable, corrupt or mismatched input; 101 internal error.

pub mod config;
pub mod encrypted;
pub mod info;
pub mod repl;
pub mod stacks;
pub mod values;
pub mod words;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{AnalyzeError, Target};

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
    /// (e.g. an unstripped twin of a stripped binary); must have the same build id.
    #[arg(long, global = true, value_name = "PATH")]
    pub exe: Option<PathBuf>,
    /// Private key that opens a snapshot `rdlv-snap --encrypt-to` encrypted:
    /// an age identity file (age-keygen) or an unencrypted SSH private key.
    /// Default: $RDLV_IDENTITY. Decryption happens in memory, as needed.
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Snapshot to open in the interactive debugger (when no command is given).
    #[arg(value_name = "SNAP")]
    pub snap: Option<PathBuf>,
    /// REPL options when no command is given.
    #[command(flatten)]
    pub repl: repl::ReplOptions,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a snapshot: process, capture, sizes, mappings.
    Info {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: info::InfoArgs,
    },
    /// Check every checksum of a snapshot and decompress every chunk.
    Verify {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
    },
    /// List goroutines (Delve style, `--format go` as runtime.Stack, or JSON).
    #[command(visible_alias = "grs")]
    Goroutines {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: stacks::GoroutinesArgs,
    },
    /// Stack of one goroutine, innermost frame first, runtime frames included.
    #[command(visible_alias = "stack")]
    Bt {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: stacks::BtArgs,
    },
    /// OS threads: registers' location and the goroutine each runs.
    Threads {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: stacks::ThreadsArgs,
    },
    /// The scheduler at capture (as GODEBUG=schedtrace=1,scheddetail=1 prints it).
    Sched {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: stacks::SchedArgs,
    },
    /// Evaluate an expression (globals; locals and arguments with --goroutine).
    #[command(visible_alias = "p")]
    Print {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: values::PrintArgs,
    },
    /// Package variables whose name matches REGEX.
    Vars {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: values::VarsArgs,
    },
    /// Local variables of a goroutine's frame.
    Locals {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: values::LocalsArgs,
    },
    /// Arguments of a goroutine's frame.
    Args {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        args: values::ArgsArgs,
    },
    /// Interactive debugger (Delve's vocabulary) on a snapshot.
    Repl {
        /// Snapshot file.
        #[arg(value_name = "SNAP")]
        snap: PathBuf,
        /// Options.
        #[command(flatten)]
        opts: repl::ReplOptions,
    },
}

/// A usage error found after clap parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses the process arguments and runs; returns the exit code.
pub fn main() -> i32 {
    install_panic_hook();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cli = match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => {
                let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
                // A failed print of help (closed stdout) changes nothing.
                let _ = e.print();
                return code;
            }
        };
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let result = run(cli, &mut out).and_then(|code| {
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
        Err(_) if BROKEN_PIPE_PANIC.load(Ordering::Relaxed) => EXIT_OK,
        Err(_) => EXIT_INTERNAL,
    }
}

/// Prints `err` to stderr the way the command line does and returns its exit code.
pub fn report_error(err: &anyhow::Error) -> i32 {
    if is_broken_pipe(err) {
        // `rdlv goroutines x.snap | head`: the reader is gone, stop quietly.
        return EXIT_OK;
    }
    eprintln!("rdlv: {}", error_text(err));
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
            return match e {
                AnalyzeError::NotFound(_) | AnalyzeError::Unsupported(_) => EXIT_UNANSWERABLE,
                AnalyzeError::Snapshot(_)
                | AnalyzeError::Binary(_)
                | AnalyzeError::Mismatch(_)
                | AnalyzeError::Corrupt(_)
                | AnalyzeError::Unreadable { .. }
                | AnalyzeError::Io(_) => EXIT_INPUT,
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

/// Set by the panic hook when a panic was a write into a closed stdout.
static BROKEN_PIPE_PANIC: AtomicBool = AtomicBool::new(false);

/// Prints panics as an internal error; `main` turns them into exit code 101.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        if message.contains("Broken pipe") {
            // println! into a closed pipe from some command: not a bug worth a report.
            BROKEN_PIPE_PANIC.store(true, Ordering::Relaxed);
            return;
        }
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "rdlv: internal error: {message}{location}; please report this (with `rdlv --version` and the command line)"
        );
    }));
}

/// Opens a snapshot and its executable, mapping failures to a message that
/// names the file.
pub fn open_target(snap: &Path, exe: Option<&Path>) -> anyhow::Result<Target> {
    let spinner = Spinner::start(&format!("opening {}", snap.display()));
    let target = Target::open(snap, exe);
    spinner.finish();
    target.with_context(|| format!("cannot open snapshot {}", snap.display()))
}

/// Opens only the snapshot container (no executable): enough for `info` and `verify`.
pub fn open_snapshot(snap: &Path) -> anyhow::Result<rdlv_format::Snapshot> {
    crate::keys::open_snapshot(snap)
        .map_err(AnalyzeError::from)
        .with_context(|| format!("cannot open snapshot {}", snap.display()))
}

/// Runs a parsed command line; returns the exit code for successful paths
/// that still want a non-zero status (a scripted REPL whose command failed).
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<i32> {
    let exe = cli.exe.as_deref();
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
        Some(Command::Info { snap, args }) => {
            if crate::keys::identities().is_none() && encrypted::run_info(&snap, &args, out)? {
                return Ok(EXIT_OK);
            }
            info::run_info_path(&snap, exe, &args, out)?;
            Ok(EXIT_OK)
        }
        Some(Command::Verify { snap }) => info::run_verify_path(&snap, out),
        Some(Command::Goroutines { snap, args }) => {
            on_target(&snap, exe, "listing goroutines", out, |t, o| {
                stacks::run_goroutines(t, &args, o)
            })
        }
        Some(Command::Bt { snap, args }) => on_target(&snap, exe, "unwinding", out, |t, o| {
            stacks::run_bt(t, &args, o).map_err(|e| goroutine_hint(t, args.goid, e))
        }),
        Some(Command::Threads { snap, args }) => {
            on_target(&snap, exe, "reading threads", out, |t, o| {
                stacks::run_threads(t, &args, o)
            })
        }
        Some(Command::Sched { snap, args }) => {
            on_target(&snap, exe, "reading the scheduler", out, |t, o| {
                stacks::run_sched(t, &args, o)
            })
        }
        Some(Command::Print { snap, args }) => on_target(&snap, exe, "evaluating", out, |t, o| {
            values::run_print(t, &args, o).map_err(|e| match args.goroutine {
                Some(goid) => goroutine_hint(t, goid, e),
                None => e,
            })
        }),
        Some(Command::Vars { snap, args }) => {
            on_target(&snap, exe, "loading variables", out, |t, o| {
                values::run_vars(t, &args, o)
            })
        }
        Some(Command::Locals { snap, args }) => {
            on_target(&snap, exe, "loading locals", out, |t, o| {
                values::run_locals(t, &args, o).map_err(|e| goroutine_hint(t, args.goroutine, e))
            })
        }
        Some(Command::Args { snap, args }) => {
            on_target(&snap, exe, "loading arguments", out, |t, o| {
                values::run_args(t, &args, o).map_err(|e| goroutine_hint(t, args.goroutine, e))
            })
        }
        Some(Command::Repl { snap, opts }) => repl::run_repl_path(&snap, exe, &opts, out),
        None => match cli.snap {
            Some(snap) => repl::run_repl_path(&snap, exe, &cli.repl, out),
            None => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                let help = cmd.render_help();
                eprintln!("{help}");
                Ok(EXIT_USAGE)
            }
        },
    }
}

/// Opens the target and runs one command on it. When stderr is a terminal
/// a spinner shows while the command works; its output is then buffered and
/// written once the spinner is gone, so the two never interleave.
fn on_target(
    snap: &Path,
    exe: Option<&Path>,
    what: &str,
    out: &mut dyn Write,
    run: impl FnOnce(&Target, &mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    let target = open_target(snap, exe)?;
    if !std::io::stderr().is_terminal() {
        run(&target, out)?;
        return Ok(EXIT_OK);
    }
    let spinner = Spinner::start(what);
    let mut buffer = Vec::new();
    let result = run(&target, &mut buffer);
    spinner.finish();
    out.write_all(&buffer)?;
    result?;
    Ok(EXIT_OK)
}

/// Adds the nearest existing goroutine ids to a "no goroutine N" error.
pub fn goroutine_hint(target: &Target, goid: u64, err: anyhow::Error) -> anyhow::Error {
    let needle = format!("goroutine {goid}");
    let message = err
        .chain()
        .find_map(|c| match c.downcast_ref::<AnalyzeError>() {
            Some(AnalyzeError::NotFound(m)) if m.contains(&needle) => Some(m.clone()),
            _ => None,
        });
    let Some(message) = message else {
        return err;
    };
    let near = repl::nearest_goroutine_ids(target, goid);
    if near.is_empty() {
        return err;
    }
    let ids: Vec<String> = near.iter().map(u64::to_string).collect();
    AnalyzeError::NotFound(format!(
        "{message}; nearest goroutines: {} (list them with `goroutines`)",
        ids.join(", ")
    ))
    .into()
}

/// A spinner on stderr for operations that may take seconds; shown only when
/// stderr is a terminal, so scripts and pipes see no progress noise.
pub struct Spinner {
    bar: Option<indicatif::ProgressBar>,
}

impl Spinner {
    /// Starts a spinner with `message` (a no-op when stderr is not a terminal).
    pub fn start(message: &str) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner { bar: Some(bar) }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let not_found = anyhow::Error::new(AnalyzeError::NotFound("goroutine 7".into()));
        assert_eq!(exit_code(&not_found), EXIT_UNANSWERABLE);
        let corrupt = anyhow::Error::new(AnalyzeError::Corrupt("bad g".into()))
            .context("cannot open snapshot x");
        assert_eq!(exit_code(&corrupt), EXIT_INPUT);
        let format = anyhow::Error::new(rdlv_format::FormatError::BadMagic);
        assert_eq!(exit_code(&format), EXIT_INPUT);
        let usage = anyhow::Error::new(UsageError("print needs an expression".into()));
        assert_eq!(exit_code(&usage), EXIT_USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), EXIT_UNANSWERABLE);
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
        let cli = Cli::try_parse_from(["rdlv", "x.snap", "-c", "goroutines"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.snap.as_deref(), Some(Path::new("x.snap")));
        assert_eq!(cli.repl.commands, vec!["goroutines".to_string()]);
        let cli = Cli::try_parse_from(["rdlv", "--exe", "bin", "info", "x.snap"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Info { .. })));
        assert_eq!(cli.exe.as_deref(), Some(Path::new("bin")));
    }
}
