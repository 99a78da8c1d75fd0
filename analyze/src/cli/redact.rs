//! `rdlv redact SNAP -o OUT`: the glue from the command line to
//! [`crate::redact`]. The analyses whose reads are kept are run here, on a
//! session that logs its reads, through the same console the one-shot
//! commands use, so the kept memory is what those commands read.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::color::{ColorChoice, Style};
use super::config::Config;
use super::console::Console;
use super::progress::Progress;
use super::{open_target, EXIT_OK};
use crate::export::AtomicFile;

/// The command lines whose memory reads the redacted snapshot keeps: its
/// `goroutines` (both forms), `threads --stacks` and `sched` answer as the
/// original's do. None of them reads pprof label values.
pub const ANALYSES: [&str; 4] = [
    "goroutines",
    "goroutines --format go",
    "threads --stacks",
    "sched",
];

/// Options of `rdlv redact`.
#[derive(Debug, Clone, Args)]
pub struct RedactArgs {
    /// Snapshot file.
    #[arg(value_name = "SNAP", value_hint = clap::ValueHint::FilePath)]
    pub snap: PathBuf,
    /// Output snapshot; written beside it under a temporary name and renamed
    /// only once complete.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Also keep the bytes of this package variable (`main.cfg`): its own
    /// bytes only, not what its pointers reach. Repeatable.
    #[arg(long = "keep", value_name = "VAR")]
    pub keep: Vec<String>,
    /// Keep a --keep variable even if its type holds key material
    /// (crypto/tls types, any PrivateKey).
    #[arg(long)]
    pub force: bool,
}

/// `rdlv redact SNAP -o OUT`. Like the exports, it reports what it wrote on
/// stderr and nothing on stdout.
pub fn run_redact(
    args: &RedactArgs,
    exe: Option<&Path>,
    _out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let progress = Progress::start(&format!("redacting {}", args.snap.display()));
    let mut target = open_target(&args.snap, exe)?;
    // Damage anywhere is refused up front, also in chunks no analysis
    // reads: a redacted copy of a damaged file would hide the damage.
    target
        .snapshot()
        .verify()
        .map_err(crate::AnalyzeError::from)
        .with_context(|| format!("{}: verification failed", args.snap.display()))?;
    target.record_reads();
    {
        let style = Style::new(ColorChoice::Never, false);
        let mut console = Console::new(&target, &args.snap, exe, &Config::default(), style);
        let mut sink = std::io::sink();
        for line in ANALYSES {
            console
                .execute_line(line, &mut sink)
                .with_context(|| format!("`{line}` failed on {}", args.snap.display()))?;
        }
    }
    for name in &args.keep {
        crate::redact::read_global_for_keep(&target, name, args.force)?;
    }
    let runs = target.read_log().map(|l| l.runs()).unwrap_or_default();
    let analyses: Vec<String> = ANALYSES.iter().map(|s| s.to_string()).collect();
    let mut file = AtomicFile::create(&args.output)?;
    let (_, stats) =
        crate::redact::write_redacted(&target, &runs, &analyses, &args.keep, file.file())
            .with_context(|| format!("cannot redact {}", args.snap.display()))?;
    file.commit()?;
    progress.finish();
    eprintln!(
        "rdlv: wrote {}: kept {} bytes of memory in {} runs, redacted {} bytes; {} bytes (from {})",
        args.output.display(),
        stats.kept_bytes,
        stats.kept_ranges,
        stats.redacted_bytes,
        stats.file_bytes,
        target.snapshot().file_len()
    );
    Ok(EXIT_OK)
}
