//! `rdlv info` (what a snapshot holds) and `rdlv verify` (is it intact).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rdlv_format::{Mapping, MappingCapture, Snapshot};
use serde::Serialize;

use super::progress::Progress;
use super::{open_snapshot, EXIT_OK};
use crate::runtime::Runtime;
use crate::{AnalyzeError, Target};

/// Output format of `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InfoFormat {
    /// Aligned text for people.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// Options of `rdlv info`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InfoArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = InfoFormat::Text)]
    pub format: InfoFormat,
}

/// Facts read from the Go runtime's state in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeFacts {
    /// Number of goroutines (all, including the runtime's own), if known.
    pub goroutines: Option<u64>,
    /// GOMAXPROCS at capture, if known.
    pub gomaxprocs: Option<u64>,
}

/// Everything `info` prints, in the JSON shape (`--format json`).
#[derive(Debug, Clone, Serialize)]
pub struct InfoReport {
    /// The snapshot file.
    pub snapshot: SnapshotFacts,
    /// The captured process.
    pub process: ProcessFacts,
    /// How the capture happened.
    pub capture: CaptureFacts,
    /// Sizes of the file and the memory in it.
    pub sizes: SizeFacts,
    /// The executable used for analysis.
    pub executable: ExecutableFacts,
    /// Go runtime facts; `null` when the snapshot could not be analyzed.
    pub runtime: Option<RuntimeFacts>,
    /// Why runtime facts are missing, if they are.
    pub analysis_error: Option<String>,
    /// Every mapping of the process.
    pub mappings: Vec<MappingFacts>,
    /// What `rdlv redact` kept, for a redacted snapshot; `null` otherwise.
    pub redaction: Option<rdlv_format::Redaction>,
}

/// The file.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotFacts {
    /// Path as given.
    pub path: String,
    /// `major.minor` of the file format.
    pub format_version: String,
    /// Size in bytes.
    pub file_bytes: u64,
}

/// The process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessFacts {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Executable path as the kernel reported it.
    pub exe: String,
    /// Whether that file was deleted or replaced after the process started.
    pub exe_deleted: bool,
    /// Command line.
    pub cmdline: Vec<String>,
    /// Go version the binary was built with (`go1.26.8`).
    pub go_version: Option<String>,
    /// Go build id.
    pub go_build_id: Option<String>,
    /// GNU build id.
    pub gnu_build_id: Option<String>,
    /// Package path of the main package (modinfo `path`).
    pub main_package: Option<String>,
    /// Main module path (modinfo `mod`).
    pub module: Option<String>,
    /// Main module version (modinfo `mod`, e.g. `(devel)`).
    pub module_version: Option<String>,
    /// VCS revision from the build settings, if recorded.
    pub vcs_revision: Option<String>,
}

/// The capture.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureFacts {
    /// Capture tool and version.
    pub tool: String,
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel: String,
    /// Architecture.
    pub arch: String,
    /// Page size.
    pub page_size: u64,
    /// `plain`, `cow` or `precopy`.
    pub method: String,
    /// First thread stopped to last resumed, microseconds (for `precopy`,
    /// of both stops).
    pub pause_us: u64,
    /// For `precopy`: the set-up stop and what was copied before the stop.
    pub precopy: Option<rdlv_format::PrecopyInfo>,
    /// Stopping all threads, microseconds.
    pub freeze_us: u64,
    /// Copying memory while stopped, microseconds.
    pub copy_us: u64,
    /// CLOCK_REALTIME at capture, nanoseconds since the epoch.
    pub realtime_ns: u64,
    /// The same as an RFC 3339 UTC date and time.
    pub realtime_utc: String,
    /// CLOCK_MONOTONIC at capture, nanoseconds.
    pub monotonic_ns: u64,
    /// Threads stopped and recorded.
    pub threads: usize,
    /// Warnings the capture recorded.
    pub warnings: Vec<String>,
}

/// Sizes.
#[derive(Debug, Clone, Serialize)]
pub struct SizeFacts {
    /// The snapshot file.
    pub file_bytes: u64,
    /// Memory copied from the target (including all-zero pages).
    pub memory_captured_bytes: u64,
    /// Of that, all-zero pages stored as zero runs.
    pub zero_bytes: u64,
    /// Non-zero memory stored in chunks, uncompressed.
    pub data_bytes: u64,
    /// The same, compressed.
    pub compressed_bytes: u64,
    /// `data_bytes / compressed_bytes` (0 when nothing was compressed).
    pub compression_ratio: f64,
}

/// The executable.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutableFacts {
    /// `embedded`, `--exe PATH`, or `missing`.
    pub source: String,
    /// Size in bytes, when known.
    pub bytes: Option<u64>,
    /// Whether it has DWARF (typed variables need it).
    pub dwarf: Option<bool>,
    /// Whether it is position independent.
    pub pie: Option<bool>,
    /// The copy embedded in the snapshot, if any.
    pub embedded: Option<EmbeddedFacts>,
}

/// An executable embedded in the snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedFacts {
    /// Its path on the captured host.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Compressed size in the snapshot.
    pub compressed_bytes: u64,
}

/// One mapping.
#[derive(Debug, Clone, Serialize)]
pub struct MappingFacts {
    /// First address, hex.
    pub start: String,
    /// End address (exclusive), hex.
    pub end: String,
    /// `end - start`.
    pub size: u64,
    /// Permissions (`r-xp`).
    pub perms: String,
    /// File offset.
    pub offset: u64,
    /// Path or pseudo-name.
    pub path: String,
    /// `captured`, `from_executable` or `skipped`.
    pub capture: String,
    /// For `captured`: bytes of present pages copied.
    pub present_bytes: Option<u64>,
    /// For `captured`: of those, all-zero bytes.
    pub zero_bytes: Option<u64>,
    /// For `skipped`: why.
    pub reason: Option<String>,
}

/// `rdlv info SNAP`: opens the snapshot (and, if possible, its executable for
/// runtime facts) and prints the report. A snapshot that cannot be read is an
/// error; an executable that cannot be analyzed only removes the runtime facts.
pub fn run_info_path(
    snap: &Path,
    exe: Option<&Path>,
    args: &InfoArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let snapshot = open_snapshot(snap)?;
    let spinner = Progress::start("reading the Go runtime state");
    let target = Target::open(snap, exe);
    spinner.finish();
    if let (Err(_), Some(path)) = (&target, exe) {
        // An executable the user named that does not fit is an input error,
        // not a missing detail.
        return target.map(drop).with_context(|| {
            format!(
                "cannot use --exe {} with {}",
                path.display(),
                snap.display()
            )
        });
    }
    let report = match &target {
        Ok(target) => build_report(snap, &snapshot, Ok(target), exe),
        Err(e) => build_report(snap, &snapshot, Err(e), exe),
    };
    write_report(&report, args.format, out)
}

/// `info` inside the REPL, on an already opened target.
pub fn run_info(
    snap: &Path,
    target: &Target,
    exe: Option<&Path>,
    args: &InfoArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let report = build_report(snap, target.snapshot(), Ok(target), exe);
    write_report(&report, args.format, out)
}

fn write_report(
    report: &InfoReport,
    format: InfoFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        InfoFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
        InfoFormat::Text => write_text(report, out)?,
    }
    Ok(())
}

/// Runtime facts of an opened target. Filled from the runtime model when it
/// can read them; a failure is reported, not fatal, since `info` must work on
/// snapshots whose runtime state is damaged.
pub fn runtime_facts(target: &Target) -> Result<RuntimeFacts, AnalyzeError> {
    // Counting reads only each g's status word, not its stack: no unwinding.
    let summary = Runtime::new(target)?.summary()?;
    Ok(RuntimeFacts {
        goroutines: Some(summary.goroutines),
        gomaxprocs: summary.gomaxprocs,
    })
}

/// Collects the report from a snapshot and the result of opening its target.
pub fn build_report(
    snap: &Path,
    snapshot: &Snapshot,
    target: Result<&Target, &AnalyzeError>,
    exe: Option<&Path>,
) -> InfoReport {
    let meta = snapshot.metadata();
    let process = &meta.process;
    let capture = &meta.capture;
    let modinfo = process
        .go_modinfo
        .as_deref()
        .map(ModInfo::parse)
        .unwrap_or_default();
    let (compressed, data, zero) = snapshot.memory_sizes();
    let (major, minor) = snapshot.version();
    let (runtime, analysis_error) = match target {
        Ok(t) => match runtime_facts(t) {
            Ok(facts) => (Some(facts), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    let embedded = snapshot
        .embedded_files()
        .into_iter()
        .find(|f| f.role == rdlv_format::FileRole::Executable)
        .map(|f| EmbeddedFacts {
            name: f.name,
            bytes: f.size,
            compressed_bytes: f.compressed_size,
        });
    let mut executable = match (target, exe) {
        (Ok(t), _) => ExecutableFacts {
            source: match exe {
                Some(p) => format!("--exe {}", p.display()),
                None => "embedded".to_string(),
            },
            bytes: Some(t.binary().file_len()),
            dwarf: Some(t.binary().has_dwarf()),
            pie: Some(t.binary().is_pie()),
            embedded: None,
        },
        (Err(_), Some(p)) => ExecutableFacts {
            source: format!("--exe {}", p.display()),
            bytes: None,
            dwarf: None,
            pie: None,
            embedded: None,
        },
        (Err(_), None) => ExecutableFacts {
            source: if embedded.is_some() {
                "embedded"
            } else {
                "missing"
            }
            .to_string(),
            bytes: None,
            dwarf: None,
            pie: None,
            embedded: None,
        },
    };
    executable.embedded = embedded;
    InfoReport {
        redaction: meta.redaction.clone(),
        snapshot: SnapshotFacts {
            path: snap.display().to_string(),
            format_version: format!("{major}.{minor}"),
            file_bytes: snapshot.file_len(),
        },
        process: ProcessFacts {
            pid: process.pid,
            ppid: process.ppid,
            uid: process.uid,
            gid: process.gid,
            exe: process.exe_path.clone(),
            exe_deleted: process.exe_deleted,
            cmdline: process.cmdline.clone(),
            go_version: process.go_version.clone(),
            go_build_id: process.go_build_id.clone(),
            gnu_build_id: process.gnu_build_id.clone(),
            main_package: modinfo.path,
            module: modinfo.module,
            module_version: modinfo.version,
            vcs_revision: modinfo.vcs_revision,
        },
        capture: CaptureFacts {
            tool: capture.tool_version.clone(),
            hostname: capture.hostname.clone(),
            kernel: capture.kernel_release.clone(),
            arch: capture.arch.clone(),
            page_size: capture.page_size,
            method: capture.method.clone(),
            pause_us: capture.pause_us,
            precopy: capture.precopy.clone(),
            freeze_us: capture.freeze_us,
            copy_us: capture.copy_us,
            realtime_ns: capture.clock_realtime_ns,
            realtime_utc: utc_datetime(capture.clock_realtime_ns),
            monotonic_ns: capture.clock_monotonic_ns,
            threads: meta.threads.len(),
            warnings: capture.warnings.clone(),
        },
        sizes: SizeFacts {
            file_bytes: snapshot.file_len(),
            memory_captured_bytes: capture.bytes_captured.max(data.saturating_add(zero)),
            zero_bytes: zero,
            data_bytes: data,
            compressed_bytes: compressed,
            compression_ratio: if compressed == 0 {
                0.0
            } else {
                // Two decimals are all anyone reads; keeps the JSON stable.
                ((data as f64 / compressed as f64) * 100.0).round() / 100.0
            },
        },
        executable,
        runtime,
        analysis_error,
        mappings: meta.mappings.iter().map(mapping_facts).collect(),
    }
}

fn mapping_facts(m: &Mapping) -> MappingFacts {
    let (capture, present_bytes, zero_bytes, reason) = match &m.capture {
        MappingCapture::Captured {
            present_bytes,
            zero_bytes,
        } => ("captured", Some(*present_bytes), Some(*zero_bytes), None),
        MappingCapture::FromExecutable => ("from_executable", None, None, None),
        MappingCapture::Skipped { reason } => ("skipped", None, None, Some(reason.clone())),
    };
    MappingFacts {
        start: format!("0x{:x}", m.start),
        end: format!("0x{:x}", m.end),
        size: m.end.saturating_sub(m.start),
        perms: m.perms.clone(),
        offset: m.offset,
        path: m.path.clone(),
        capture: capture.to_string(),
        present_bytes,
        zero_bytes,
        reason,
    }
}

fn write_text(r: &InfoReport, out: &mut dyn Write) -> std::io::Result<()> {
    let p = &r.process;
    let c = &r.capture;
    let s = &r.sizes;
    writeln!(
        out,
        "Snapshot   {} (format {}, {})",
        r.snapshot.path,
        r.snapshot.format_version,
        human_bytes(r.snapshot.file_bytes)
    )?;
    if let Some(red) = &r.redaction {
        writeln!(
            out,
            "Redacted   by rdlv {}: kept {} of memory in {} runs (what {} read), removed {}; reading removed memory is an error",
            red.tool_version,
            human_bytes(red.kept_bytes),
            red.kept_ranges,
            red.analyses.join(", "),
            human_bytes(red.redacted_bytes)
        )?;
        for k in &red.kept_values {
            writeln!(
                out,
                "  kept       {} ({} at {:#x}{}): {}{}",
                k.expr,
                k.type_name,
                k.addr,
                if k.deep { ", deep" } else { "" },
                human_bytes(k.bytes),
                k.truncated
                    .as_ref()
                    .map(|t| format!(", cut short: {t}"))
                    .unwrap_or_default()
            )?;
        }
    }
    writeln!(
        out,
        "Process    pid {} (ppid {}, uid {}, gid {})",
        p.pid, p.ppid, p.uid, p.gid
    )?;
    let deleted = if p.exe_deleted && !p.exe.ends_with("(deleted)") {
        " (deleted)"
    } else {
        ""
    };
    writeln!(out, "  exe        {}{deleted}", p.exe)?;
    writeln!(out, "  cmdline    {}", shell_quote_all(&p.cmdline))?;
    writeln!(
        out,
        "  go         {}",
        p.go_version.as_deref().unwrap_or("unknown")
    )?;
    if let Some(module) = &p.module {
        let version = p.module_version.as_deref().unwrap_or("");
        writeln!(out, "  module     {module} {version}")?;
    }
    if let Some(path) = &p.main_package {
        writeln!(out, "  main       {path}")?;
    }
    if let Some(rev) = &p.vcs_revision {
        writeln!(out, "  revision   {rev}")?;
    }
    writeln!(
        out,
        "  go build   {}",
        p.go_build_id.as_deref().unwrap_or("none")
    )?;
    writeln!(
        out,
        "  gnu build  {}",
        p.gnu_build_id.as_deref().unwrap_or("none")
    )?;
    let e = &r.executable;
    let mut exe_line = e.source.clone();
    if let Some(bytes) = e.bytes {
        exe_line.push_str(&format!(", {}", human_bytes(bytes)));
    }
    if let Some(pie) = e.pie {
        exe_line.push_str(if pie { ", PIE" } else { ", not PIE" });
    }
    if let Some(dwarf) = e.dwarf {
        exe_line.push_str(if dwarf {
            ", DWARF"
        } else {
            ", no DWARF (stacks only)"
        });
    }
    writeln!(out, "  executable {exe_line}")?;
    match &e.embedded {
        Some(f) => writeln!(
            out,
            "  embedded   {} ({}, {} compressed)",
            f.name,
            human_bytes(f.bytes),
            human_bytes(f.compressed_bytes)
        )?,
        None => writeln!(
            out,
            "  embedded   none (captured with --no-exe; pass --exe PATH)"
        )?,
    }
    match (&r.runtime, &r.analysis_error) {
        (Some(rt), _) => {
            let show = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "?".to_string());
            writeln!(
                out,
                "Runtime    {} goroutines (including the runtime's own), GOMAXPROCS {}",
                show(rt.goroutines),
                show(rt.gomaxprocs)
            )?;
        }
        (None, Some(err)) => writeln!(out, "Runtime    unavailable: {err}")?,
        (None, None) => writeln!(out, "Runtime    unavailable")?,
    }
    writeln!(
        out,
        "Capture    {} on {} (kernel {}, {}, page {} B)",
        c.tool, c.hostname, c.kernel, c.arch, c.page_size
    )?;
    writeln!(
        out,
        "  method     {}",
        if c.method.is_empty() {
            "unknown"
        } else {
            &c.method
        }
    )?;
    writeln!(
        out,
        "  pause      {} (freeze {}, copy {})",
        human_micros(c.pause_us),
        human_micros(c.freeze_us),
        human_micros(c.copy_us)
    )?;
    if let Some(p) = &c.precopy {
        writeln!(
            out,
            "  pre-copy   {} set-up stop (in the pause); {} copied while running, {} of it unchanged at the stop",
            human_micros(p.setup_pause_us),
            human_bytes(p.precopy_bytes),
            human_bytes(p.reused_bytes)
        )?;
    }
    writeln!(out, "  time       {} (CLOCK_REALTIME)", c.realtime_utc)?;
    writeln!(
        out,
        "  monotonic  {} (CLOCK_MONOTONIC)",
        seconds(c.monotonic_ns)
    )?;
    writeln!(out, "  threads    {}", c.threads)?;
    for warning in &c.warnings {
        writeln!(out, "  warning    {warning}")?;
    }
    writeln!(out, "Sizes")?;
    writeln!(out, "  file             {:>12}", human_bytes(s.file_bytes))?;
    writeln!(
        out,
        "  memory captured  {:>12}",
        human_bytes(s.memory_captured_bytes)
    )?;
    writeln!(out, "  zero elided      {:>12}", human_bytes(s.zero_bytes))?;
    writeln!(
        out,
        "  compressed       {:>12}  ({} of data, ratio {:.2})",
        human_bytes(s.compressed_bytes),
        human_bytes(s.data_bytes),
        s.compression_ratio
    )?;
    writeln!(out, "Mappings ({})", r.mappings.len())?;
    let rows: Vec<[String; 5]> = r
        .mappings
        .iter()
        .map(|m| {
            let capture = match m.capture.as_str() {
                "captured" => format!(
                    "captured {} present{}",
                    human_bytes(m.present_bytes.unwrap_or(0)),
                    match m.zero_bytes {
                        Some(z) if z > 0 => format!(" ({} zero)", human_bytes(z)),
                        _ => String::new(),
                    }
                ),
                "from_executable" => "from executable".to_string(),
                _ => format!("skipped: {}", m.reason.as_deref().unwrap_or("")),
            };
            [
                format!("{}-{}", padded_hex(&m.start), padded_hex(&m.end)),
                m.perms.clone(),
                human_bytes(m.size),
                capture,
                m.path.clone(),
            ]
        })
        .collect();
    let header = ["RANGE", "PERMS", "SIZE", "CAPTURE", "PATH"].map(String::from);
    let mut widths = [0usize; 4];
    for row in rows.iter().chain(std::iter::once(&header)) {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line = format!(
            "  {:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Fields of Go's module info text (`go version -m`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `path` line: the main package.
    pub path: Option<String>,
    /// `mod` line: the main module.
    pub module: Option<String>,
    /// `mod` line: its version.
    pub version: Option<String>,
    /// `build vcs.revision=…`.
    pub vcs_revision: Option<String>,
}

impl ModInfo {
    /// Parses the tab-separated lines of a modinfo string.
    pub fn parse(text: &str) -> ModInfo {
        let mut info = ModInfo::default();
        for line in text.lines() {
            let mut fields = line.split('\t');
            match fields.next() {
                Some("path") => info.path = fields.next().map(str::to_string),
                Some("mod") => {
                    info.module = fields.next().map(str::to_string);
                    info.version = fields.next().map(str::to_string);
                }
                Some("build") => {
                    if let Some(rev) = fields.next().and_then(|f| f.strip_prefix("vcs.revision=")) {
                        info.vcs_revision = Some(rev.to_string());
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// `rdlv verify SNAP`: checks every block and chunk; exit 3 with the failed
/// check on corruption.
pub fn run_verify_path(snap: &Path, out: &mut dyn Write) -> anyhow::Result<i32> {
    let snapshot = open_snapshot(snap)?;
    let spinner = Progress::start(&format!(
        "verifying {} ({})",
        snap.display(),
        human_bytes(snapshot.file_len())
    ));
    let started = std::time::Instant::now();
    let report = snapshot
        .verify()
        .map_err(AnalyzeError::from)
        .with_context(|| format!("{}: verification failed", snap.display()))?;
    spinner.finish();
    writeln!(
        out,
        "{}: ok: {} blocks, {} memory chunks, {} checked ({} bytes) in {:.2} s",
        snap.display(),
        report.blocks,
        report.chunks,
        human_bytes(report.bytes),
        report.bytes,
        started.elapsed().as_secs_f64()
    )?;
    Ok(EXIT_OK)
}

/// `0x400000` → `0x000000400000` (12 digits cover user space; longer stays longer).
fn padded_hex(hex: &str) -> String {
    let digits = hex.trim_start_matches("0x");
    format!("0x{digits:0>12}")
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Microseconds as `850 µs`, `12.35 ms` or `1.234 s`.
pub fn human_micros(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.3} s", us as f64 / 1e6)
    }
}

fn seconds(ns: u64) -> String {
    format!("{}.{:09} s", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Nanoseconds since the Unix epoch as `2026-11-28T08:08:29.123456Z`.
pub fn utc_datetime(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01, using the
/// 400-year era arithmetic (eras of 146097 days starting on March 1st).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn shell_quote_all(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_gregorian() {
        assert_eq!(utc_datetime(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (leap day of a century divisible by 400) 12:34:56.789 UTC.
        assert_eq!(
            utc_datetime(951_827_696_789_000_000),
            "2000-02-29T12:34:56.789000Z"
        );
        // 2026-11-28 08:08:29 UTC.
        assert_eq!(
            utc_datetime(1_795_853_309_000_000_000),
            "2026-11-28T08:08:29.000000Z"
        );
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_micros(850), "850 µs");
        assert_eq!(human_micros(12_345), "12.35 ms");
        assert_eq!(human_micros(1_234_000), "1.234 s");
        assert_eq!(seconds(12_000_000_345), "12.000000345 s");
    }

    #[test]
    fn modinfo_fields() {
        let text = "path\texample.com/corpus/parked\nmod\texample.com/corpus\t(devel)\t\n\
                    dep\tgolang.org/x/sys\tv0.1.0\th1:abc\nbuild\t-compiler=gc\nbuild\tvcs.revision=0123abc\n";
        let info = ModInfo::parse(text);
        assert_eq!(info.path.as_deref(), Some("example.com/corpus/parked"));
        assert_eq!(info.module.as_deref(), Some("example.com/corpus"));
        assert_eq!(info.version.as_deref(), Some("(devel)"));
        assert_eq!(info.vcs_revision.as_deref(), Some("0123abc"));
        assert_eq!(ModInfo::parse(""), ModInfo::default());
    }

    #[test]
    fn cmdline_quoting() {
        assert_eq!(
            shell_quote_all(&["/bin/x".into(), "a b".into(), "it's".into(), "".into()]),
            r"/bin/x 'a b' 'it'\''s' ''"
        );
    }
}
