//! `rdlv redact SNAP -o OUT`: the glue from the command line to
//! [`crate::redact`]. The analyses whose reads are kept are run here, on a
//! session that logs its reads, through the same console the one-shot
//! commands use, so the kept memory is what those commands read. `--keep`
//! values are found afterwards through the session's unlogged memory
//! ([`crate::redact::keep`]), so searching for them keeps nothing.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::color::{ColorChoice, Style};
use super::config::Config;
use super::console::Console;
use super::progress::Progress;
use super::{open_target, EXIT_OK};
use crate::export::AtomicFile;
use crate::redact::keep::{keep_value, Kept};

/// The command lines whose memory reads the redacted snapshot keeps: its
/// `goroutines` (both forms), `threads --stacks` and `sched` answer as the
/// original's do. None of them reads pprof label values.
pub const ANALYSES: [&str; 4] = [
    "goroutines",
    "goroutines --format go",
    "threads --stacks",
    "sched",
];

/// The analysis added by `--keep-labels`: `goroutines -l` reads each
/// goroutine's pprof label map and its strings, and nothing else the
/// analyses above do not.
pub const LABELS_ANALYSIS: &str = "goroutines -l";

/// Options of `rdlv redact`.
#[derive(Debug, Clone, Args)]
pub struct RedactArgs {
    /// Snapshot file.
    #[arg(value_name = "SNAP", value_hint = clap::ValueHint::FilePath)]
    pub snap: PathBuf,
    /// Output snapshot, or `-` for stdout; a file is written beside its name
    /// under a temporary one and renamed only once complete.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Also keep the value of this expression (Delve syntax over package
    /// variables: `main.cfg`, `main.cfg.Name`, `main.cache["k"]`): its own
    /// bytes (a string or slice keeps its header, not what it points to)
    /// and the pointer and header words on the way to it. Repeatable.
    #[arg(long = "keep", value_name = "EXPR")]
    pub keep: Vec<String>,
    /// With --keep: also keep everything the kept values reach through
    /// typed pointers, slices, strings, maps, interfaces and channels (what
    /// `print --format json` shows), within a bound on values and bytes.
    #[arg(long, requires = "keep")]
    pub keep_deep: bool,
    /// Also keep the pprof label values of every goroutine (`goroutines
    /// -l` then shows them); without it they are removed and shown as
    /// `labels{<redacted>}`.
    #[arg(long)]
    pub keep_labels: bool,
    /// Keep a --keep value even if its type, a type it reaches, or (with
    /// --keep-deep) a value it holds is key material (crypto/tls state, any
    /// PrivateKey, crypto.Signer).
    #[arg(long)]
    pub force: bool,
}

/// The analyses whose reads are kept: [`ANALYSES`], plus
/// [`LABELS_ANALYSIS`] with `--keep-labels`.
fn analyses(keep_labels: bool) -> Vec<&'static str> {
    let mut v = ANALYSES.to_vec();
    if keep_labels {
        v.push(LABELS_ANALYSIS);
    }
    v
}

/// `rdlv redact SNAP -o OUT`. Like the exports, it reports what it wrote on
/// stderr and nothing else on stdout (with `-o -`, stdout is the snapshot).
pub fn run_redact(
    args: &RedactArgs,
    exe: Option<&Path>,
    _out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(super::UsageError(
            "refusing to write a binary snapshot to a terminal; redirect stdout or use -o FILE"
                .into(),
        )
        .into());
    }
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
    let analyses = analyses(args.keep_labels);
    {
        let style = Style::new(ColorChoice::Never, false);
        let mut console = Console::new(&target, &args.snap, exe, &Config::default(), style);
        let mut sink = std::io::sink();
        for line in &analyses {
            console
                .execute_line(line, &mut sink)
                .with_context(|| format!("`{line}` failed on {}", args.snap.display()))?;
        }
    }
    let runs = target.read_log().map(|l| l.runs()).unwrap_or_default();
    let kept: Vec<Kept> = super::values::with_big_stack(|| {
        args.keep
            .iter()
            .map(|expr| keep_value(&target, expr, args.keep_deep, args.force))
            .collect::<Result<Vec<_>, _>>()
    })?
    .map_err(crate::AnalyzeError::from)?;
    for k in &kept {
        if let Some(why) = &k.truncated {
            say!(
                "rdlv: warning: --keep-deep {}: not all it reaches was kept ({why}); the rest reads as redacted",
                k.expr
            );
        }
    }
    let analyses: Vec<String> = analyses.iter().map(|s| s.to_string()).collect();
    let (stats, shown) = if to_stdout {
        let stdout = std::io::stdout();
        let w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let (mut w, stats) = crate::redact::write_redacted(&target, &runs, &analyses, &kept, w)
            .with_context(|| format!("cannot redact {}", args.snap.display()))?;
        w.flush()
            .context("cannot write the redacted snapshot to stdout")?;
        (stats, "stdout".to_string())
    } else {
        let mut file = AtomicFile::create(&args.output)?;
        let (_, stats) =
            crate::redact::write_redacted(&target, &runs, &analyses, &kept, file.file())
                .with_context(|| format!("cannot redact {}", args.snap.display()))?;
        file.commit()?;
        (stats, args.output.display().to_string())
    };
    progress.finish();
    say!(
        "rdlv: wrote {shown}: kept {} bytes of memory in {} runs, redacted {} bytes; {} bytes (from {})",
        stats.kept_bytes,
        stats.kept_ranges,
        stats.redacted_bytes,
        stats.file_bytes,
        target.snapshot().file_len()
    );
    for k in &kept {
        say!(
            "rdlv: kept {} ({} at {:#x}{}): {} bytes",
            k.expr,
            k.type_name,
            k.addr,
            if k.deep { ", deep" } else { "" },
            k.bytes
        );
    }
    Ok(EXIT_OK)
}
