//! `rdlv export pprof|core|folded SNAP -o OUT` and `rdlv report SNAP -o OUT`:
//! argument structs and the glue from a parsed command to the library's
//! writers in `crate::export`. Every file output goes through
//! `AtomicFile` (temporary file beside the destination, renamed when
//! complete); `-o -` writes to stdout for every export but `core`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::progress::Progress;
use super::{open_target, UsageError, EXIT_OK};
use crate::export::{self, AtomicFile};
use crate::runtime::Runtime;
use crate::Target;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// The goroutine profile `/debug/pprof/goroutine` would serve (gzipped
    /// protobuf); with --heap, the heap profile `/debug/pprof/heap` would serve.
    Pprof,
    /// An ELF core file for `dlv core EXE F` and `gdb EXE F`.
    Core,
    /// Folded stacks (`root;...;leaf COUNT`), one line per distinct stack.
    Folded,
}

/// Options of `rdlv export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// What to write.
    #[arg(value_enum)]
    pub kind: ExportKind,
    /// Snapshot file.
    #[arg(value_name = "SNAP")]
    pub snap: PathBuf,
    /// Output file (`-` for stdout, except for `core`); replaced only once complete.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// With `pprof`: the sampled heap profile `/debug/pprof/heap` would serve
    /// (runtime.MemProfileRate sampling, as the process recorded it) instead of goroutines.
    #[arg(long)]
    pub heap: bool,
    /// With `pprof --heap`: who retains the heap instead (the dominator
    /// tree from precise roots, as `heap --by root` computes it): each
    /// sample a root, then the types of the dominators down to the objects;
    /// `go tool pprof -http` draws it as a flame graph of retained bytes.
    #[arg(long, requires = "heap")]
    pub retained: bool,
}

/// Options of `rdlv report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Snapshot file.
    #[arg(value_name = "SNAP")]
    pub snap: PathBuf,
    /// Output HTML file (`-` for stdout); replaced only once complete.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
}

fn is_stdout(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Runs `write` into the output (atomically for a file) and reports on stderr.
fn with_output(
    output: &Path,
    stdout: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if is_stdout(output) {
        write(stdout)?;
        return Ok(());
    }
    let mut file = AtomicFile::create(output)?;
    let summary = {
        let mut w = std::io::BufWriter::new(file.file());
        let summary = write(&mut w)?;
        w.flush()?;
        summary
    };
    file.commit()?;
    say!("rdlv: wrote {}: {summary}", output.display());
    Ok(())
}

fn run_on(
    target: &Target,
    what: &str,
    f: impl FnOnce(&Runtime<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let progress = Progress::start(what);
    let rt = Runtime::new(target)?;
    let result = f(&rt);
    progress.finish();
    result
}

/// `rdlv export KIND SNAP -o OUT`.
pub fn run_export(
    args: &ExportArgs,
    exe: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    if args.heap && args.kind != ExportKind::Pprof {
        return Err(UsageError("--heap goes with `export pprof` only".into()).into());
    }
    if args.kind == ExportKind::Core && is_stdout(&args.output) {
        return Err(UsageError(
            "`export core` needs a file (-o core): a core is written with holes and positional writes"
                .into(),
        )
        .into());
    }
    let target = open_target(&args.snap, exe)?;
    match args.kind {
        ExportKind::Pprof if args.retained => {
            run_on(&target, "building the retained profile", |rt| {
                let model = crate::heap::HeapModel::new(rt)?;
                let gs = rt.goroutines()?;
                with_output(&args.output, out, |w| {
                    let s = export::retained::write_retained_profile(&model, &gs, w)?;
                    Ok(format!(
                        "retained profile, {} samples, {} objects, {} bytes reachable{}",
                        s.samples,
                        s.objects,
                        s.bytes,
                        if s.cut {
                            " (cut at a bound: lower bounds)"
                        } else {
                            ""
                        }
                    ))
                })
            })
            .map(|()| EXIT_OK)
        }
        ExportKind::Pprof if args.heap => run_on(&target, "building the heap profile", |rt| {
            with_output(&args.output, out, |w| {
                let s = export::heapprof::write_heap_profile(rt, w)?;
                Ok(format!(
                    "heap profile, {} samples, MemProfileRate {}, {} bytes in use (sampled)",
                    s.samples, s.rate, s.inuse_bytes
                ))
            })
        })
        .map(|()| EXIT_OK),
        ExportKind::Pprof => run_on(&target, "building the goroutine profile", |rt| {
            with_output(&args.output, out, |w| {
                let s = export::pprof::write_goroutine_profile(rt, w)?;
                Ok(format!(
                    "goroutine profile of {} goroutines, {} samples",
                    s.goroutines, s.samples
                ))
            })
        })
        .map(|()| EXIT_OK),
        ExportKind::Folded => run_on(&target, "folding stacks", |rt| {
            with_output(&args.output, out, |w| {
                let n = export::folded::write_folded(rt, w)?;
                Ok(format!("{n} distinct stacks"))
            })
        })
        .map(|()| EXIT_OK),
        ExportKind::Core => {
            let progress = Progress::start("writing the core");
            let mut file = AtomicFile::create(&args.output)?;
            let stats = export::core::write_core(&target, file.file());
            progress.finish();
            let stats = stats?;
            file.commit()?;
            say!(
                "rdlv: wrote {}: ELF core, {} threads, {} segments, {:.1} MiB ({:.1} MiB of data, the rest holes); open it with `dlv core EXE {}` or `gdb EXE {}`",
                args.output.display(),
                stats.threads,
                stats.segments,
                stats.file_bytes as f64 / 1_048_576.0,
                stats.data_bytes as f64 / 1_048_576.0,
                args.output.display(),
                args.output.display(),
            );
            Ok(EXIT_OK)
        }
    }
}

/// `rdlv report SNAP -o OUT`.
pub fn run_report(
    args: &ReportArgs,
    exe: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let target = open_target(&args.snap, exe)?;
    run_on(&target, "writing the report", |rt| {
        with_output(&args.output, out, |w| {
            let s = export::report::write_report(rt, w)?;
            Ok(format!(
                "HTML report ({:.1} KiB), {} goroutines in {} groups, {}",
                s.bytes as f64 / 1024.0,
                s.goroutines,
                s.groups,
                s.heap
            ))
        })
    })?;
    Ok(EXIT_OK)
}
