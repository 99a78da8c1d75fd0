//! `rdlv-snap PID -o FILE`: freeze a running process for milliseconds, copy
//! its memory, resume it, then write one self-contained snapshot.
//!
//! Exit codes: 0 the snapshot is complete and verified; 1 the capture failed
//! (the target runs, no file is left); 2 usage error.
//!
//! `rdlv-snap idle` only waits for SIGTERM/SIGINT/SIGHUP: the command of the
//! rdlv-snap container image, so captures can be exec'd into it (idle.rs).

mod capture;
mod copy;
mod cow;
mod encrypt;
mod error;
mod exeinfo;
mod failpoint;
mod freeze;
mod idle;
mod inject;
mod nice;
mod output;
mod pages;
mod precopy;
mod preflight;
mod proc;
mod redact;
mod seccomp;
mod sentinel;
mod snapshot;
mod stop;
#[cfg(test)]
mod testutil;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use clap::Parser;

use crate::capture::{Method, Requested};

/// Signal number of the first SIGINT/SIGTERM/SIGHUP received, 0 if none.
static ABORT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    let _ = ABORT.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// Installs handlers that only set [`ABORT`]. No SA_RESTART, so blocking
/// calls return EINTR and the flag is seen promptly; the capture loops then
/// resume the target and clean up.
fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only performs an atomic store.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Parses `500ms`, `1s`, `1.5s`, `250us`, `2m`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 1s, 2.5s"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use us, ms, s or m"
            ))
        }
    };
    let seconds = value * scale;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 3600.0 {
        return Err(format!(
            "duration {text:?} must be greater than 0 and at most 1 hour"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `512M`, `2G`, `64k`, `1048576` (bytes; binary units).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. 512M, 2G, 1048576"))?;
    let shift = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        other => return Err(format!("unknown size unit {other:?}: use k, M, G or T")),
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Capture a running process into an rdlv snapshot, pausing it only while
/// its memory is copied.
#[derive(Debug, Parser)]
#[command(name = "rdlv-snap", version, about)]
struct Cli {
    /// Process id to capture.
    pid: u32,
    /// Output file, or `-` for stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: String,
    /// Overwrite FILE if it exists; capture a target that made itself
    /// non-dumpable; with --redact --keep, keep a value that holds key
    /// material (`rdlv redact --force`).
    #[arg(long)]
    force: bool,
    /// Print one JSON object with the results to stdout (to stderr with `-o -`).
    #[arg(long)]
    json: bool,
    /// Give up and resume the target if it would stay stopped longer than this.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    max_pause: Duration,
    /// Do not embed the executable (the analyzer then needs the binary).
    #[arg(long)]
    no_exe: bool,
    /// zstd compression level (1 fastest .. 19 smallest).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    level: i32,
    /// Compression threads (default: one per CPU). They run after the
    /// target resumed, 5 nice levels below the target (at most nice 19), so
    /// a busy service keeps the CPU; fewer threads leave it more at the cost
    /// of a longer capture.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// No progress bar and no summary line.
    #[arg(short, long)]
    quiet: bool,
    /// Copy-on-write capture: make the frozen target fork, resume it at once
    /// and read the stopped child (pause about one page-table copy). Falls
    /// back to the plain copy, with a note, when fork injection is refused.
    #[arg(long)]
    cow: bool,
    /// With --cow: most extra memory the fork may add to the target (page
    /// tables plus pages copied on write while the child is read), e.g. 512M.
    #[arg(long, value_name = "SIZE", default_value_t = cow::DEFAULT_MAX_EXTRA, value_parser = parse_size)]
    cow_max_extra: u64,
    /// Pre-copy capture, the default: copy memory while the target runs,
    /// with the kernel tracking the pages it writes (userfaultfd, Linux
    /// 6.7+), then stop it only to copy those. Falls back to the plain copy,
    /// with a note, when write tracking cannot be set up (not a Go program,
    /// seccomp filter, older kernel). Not with --cow.
    #[arg(long, conflicts_with = "cow", overrides_with = "no_precopy")]
    precopy: bool,
    /// Plain capture: copy every page while the target is stopped (a longer
    /// pause, nothing injected). Use it for processes whose memory devices
    /// write into pages pinned beforehand (O_DIRECT reads in flight, io_uring
    /// fixed buffers, RDMA): write tracking does not see those writes.
    #[arg(long, overrides_with = "precopy")]
    no_precopy: bool,
    /// Encrypt the snapshot to this public key as it is written: FILE is one
    /// standard age file (`age -d -i KEY FILE` gives the plain snapshot;
    /// `rdlv -i KEY` opens it directly). An `age1...` X25519 recipient or an
    /// `ssh-ed25519`/`ssh-rsa` public key line. Repeatable.
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    encrypt_to: Vec<String>,
    /// Encrypt to every recipient listed in this file, one per line (blank
    /// lines and `#` comments skipped), like age's -R. Repeatable.
    #[arg(long = "encrypt-to-file", value_name = "FILE")]
    encrypt_to_file: Vec<std::path::PathBuf>,
    /// Write a redacted snapshot (what `rdlv redact` keeps: goroutines,
    /// stacks, scheduler) instead of the full one, which is held only in
    /// memory (a memfd) and never written to a disk. Runs the rdlv analyzer:
    /// --redact-with PATH, else $RDLV, else rdlv beside rdlv-snap, else on
    /// PATH. Combines with --encrypt-to and `-o -`.
    #[arg(long, conflicts_with = "no_exe")]
    redact: bool,
    /// With --redact: the rdlv binary to run.
    #[arg(long, value_name = "PATH", requires = "redact")]
    redact_with: Option<std::path::PathBuf>,
    /// With --redact: also keep this value (`rdlv redact --keep EXPR`: Delve
    /// syntax over package variables, e.g. `main.cfg.Name`). Repeatable.
    #[arg(long = "keep", value_name = "EXPR", requires = "redact")]
    keep: Vec<String>,
    /// With --redact --keep: also keep what the kept values reach
    /// (`rdlv redact --keep-deep`).
    #[arg(long, requires = "keep")]
    keep_deep: bool,
    /// With --redact: keep pprof label values (`rdlv redact --keep-labels`).
    #[arg(long, requires = "redact")]
    keep_labels: bool,
}

/// The `rdlv redact` options for `--redact`, with the analyzer found (before
/// anything is stopped).
fn redactor(cli: &Cli) -> Result<Option<redact::Redactor>, error::CaptureError> {
    if !cli.redact {
        return Ok(None);
    }
    let rdlv = redact::find_rdlv(
        cli.redact_with.as_deref(),
        std::env::var_os(redact::RDLV_ENV),
        std::env::current_exe().ok(),
        std::env::var_os("PATH"),
    )?;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for expr in &cli.keep {
        args.push("--keep".into());
        args.push(expr.into());
    }
    if cli.keep_deep {
        args.push("--keep-deep".into());
    }
    if cli.keep_labels {
        args.push("--keep-labels".into());
    }
    // `--force` is the one "I accept the risk" switch of rdlv-snap; for the
    // redaction it means keeping key material that --keep designates.
    if cli.force && !cli.keep.is_empty() {
        args.push("--force".into());
    }
    Ok(Some(redact::Redactor { rdlv, args }))
}

fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn main() {
    let mut args = std::env::args();
    match args.nth(1).as_deref() {
        Some(sentinel::SENTINEL_ARG) => {
            std::process::exit(sentinel::run_sentinel(&args.next().unwrap_or_default()))
        }
        Some(idle::IDLE_ARG) if args.next().is_none() => std::process::exit(idle::run()),
        _ => {}
    }
    let cli = Cli::parse();
    let encryption = match encrypt::Encryption::from_args(&cli.encrypt_to, &cli.encrypt_to_file) {
        Ok(encryption) => encryption,
        Err(error) => {
            eprintln!("rdlv-snap: error: {error}");
            std::process::exit(error.exit_code());
        }
    };
    let redact = match redactor(&cli) {
        Ok(redact) => redact,
        Err(error) => {
            eprintln!("rdlv-snap: error: {error}");
            std::process::exit(error.exit_code());
        }
    };
    let encrypted_to = encryption.as_ref().map(|e| e.kinds());
    install_signal_handlers();
    let options = capture::Options {
        pid: cli.pid,
        output: cli.output.clone(),
        force: cli.force,
        max_pause: cli.max_pause,
        embed_exe: !cli.no_exe,
        level: cli.level,
        threads: cli.threads.map_or(0, usize::from),
        progress: !cli.quiet && std::io::stderr().is_terminal(),
        method: if cli.cow {
            capture::Requested::Cow
        } else if cli.no_precopy {
            capture::Requested::Plain
        } else {
            capture::Requested::Precopy
        },
        cow_max_extra: cli.cow_max_extra,
        encryption,
        redact,
    };
    match capture::run(&options, &ABORT) {
        Ok(summary) => {
            let stored = summary.bytes_captured + summary.exe_bytes;
            let ratio = if summary.file_bytes > 0 {
                stored as f64 / summary.file_bytes as f64
            } else {
                0.0
            };
            let method = &summary.method;
            let (cow, precopy) = match method {
                Method::Cow(stats) => (Some(stats), None),
                Method::Precopy(stats) => (None, Some(stats)),
                Method::Plain(_) => (None, None),
            };
            if cli.json {
                let json = serde_json::json!({
                    "pid": summary.pid,
                    "threads": summary.threads,
                    "pause_us": summary.pause_us,
                    "freeze_us": summary.freeze_us,
                    "copy_us": summary.copy_us,
                    "regs_us": summary.regs_us,
                    "plan_us": summary.plan_us,
                    "resume_us": summary.resume_us,
                    "bytes_captured": summary.bytes_captured,
                    "zero_bytes": summary.zero_bytes,
                    "exe_bytes": summary.exe_bytes,
                    "exe_fill_bytes": summary.exe_fill_bytes,
                    "file_bytes": summary.file_bytes,
                    "file": summary.file,
                    "write_ms": summary.write_ms,
                    "encrypt_us": summary.encrypt_us,
                    "verify_us": summary.verify_us,
                    "total_ms": summary.total_ms,
                    "compression_ratio": (ratio * 100.0).round() / 100.0,
                    "mappings": summary.mappings,
                    "go_version": summary.go_version,
                    "method": method.name(),
                    "cow_fallback": method.fallback_from(Requested::Cow),
                    "cow_extra_bytes": cow.and_then(|c| c.extra_bytes),
                    "fork_us": cow.map_or(0, |c| c.fork_us),
                    "reap_pause_us": cow.map_or(0, |c| c.reap_pause_us),
                    "read_ms": cow.map_or(0, |c| c.read_ms),
                    "precopy_fallback": method.fallback_from(Requested::Precopy),
                    "precopy_attach_pause_us": precopy.map(|p| p.setup_pause_us),
                    "precopy_tracked_bytes": precopy.map(|p| p.tracked_bytes),
                    "precopy_bytes": precopy.map(|p| p.precopy_bytes),
                    "precopy_ms": precopy.map(|p| p.precopy_ms),
                    "precopy_reused_bytes": precopy.map(|p| p.reused_bytes),
                    "precopy_teardown_us": precopy.map(|p| p.teardown_us),
                    "page_scan": summary.page_scan,
                    "warnings": summary.warnings,
                    "encrypted_to": encrypted_to,
                    "redacted": summary.unredacted_bytes.is_some(),
                    "unredacted_bytes": summary.unredacted_bytes,
                });
                if cli.output == "-" {
                    eprintln!("{json}");
                } else {
                    println!("{json}");
                }
            }
            if !cli.quiet && !cli.json {
                let detail = if let Some(cow) = cow {
                    format!(
                        "freeze {:.1} ms, fork {:.1} ms; copy-on-write image read in {} ms",
                        summary.freeze_us as f64 / 1000.0,
                        cow.fork_us as f64 / 1000.0,
                        cow.read_ms
                    )
                } else if let Some(precopy) = precopy {
                    format!(
                        "{:.1} ms stop to set up write tracking, then {} copied in {} ms while running ({} of it unchanged since), then freeze {:.1} ms, copy of the rest {:.1} ms",
                        precopy.setup_pause_us as f64 / 1000.0,
                        human_bytes(precopy.precopy_bytes),
                        precopy.precopy_ms,
                        human_bytes(precopy.reused_bytes),
                        summary.freeze_us as f64 / 1000.0,
                        summary.copy_us as f64 / 1000.0,
                    )
                } else {
                    format!(
                        "freeze {:.1} ms, copy {:.1} ms",
                        summary.freeze_us as f64 / 1000.0,
                        summary.copy_us as f64 / 1000.0
                    )
                };
                let mut encrypted = summary
                    .unredacted_bytes
                    .map(|full| {
                        format!(
                            ", redacted by rdlv from {} held in memory",
                            human_bytes(full)
                        )
                    })
                    .unwrap_or_default();
                if let Some(kinds) = &encrypted_to {
                    encrypted.push_str(&format!(", age-encrypted to {}", kinds.join(", ")));
                }
                eprintln!(
                    "rdlv-snap: captured process {} ({}{}): {} threads, {} in {:.1} ms of pause ({detail}) -> {} ({}{encrypted}, ratio {:.1}) in {} ms",
                    summary.pid,
                    summary.name,
                    summary.go_version.as_deref().map(|v| format!(", {v}")).unwrap_or_default(),
                    summary.threads,
                    human_bytes(summary.bytes_captured),
                    summary.pause_us as f64 / 1000.0,
                    summary.file,
                    human_bytes(summary.file_bytes),
                    ratio,
                    summary.total_ms,
                );
                for warning in &summary.warnings {
                    eprintln!("rdlv-snap: warning: {warning}");
                }
            }
        }
        Err(error) => {
            eprintln!("rdlv-snap: error: {error}");
            std::process::exit(error.exit_code());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1"), Ok(1));
        assert!(parse_size("").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
        let cli = Cli::try_parse_from([
            "rdlv-snap",
            "1",
            "-o",
            "f",
            "--cow",
            "--cow-max-extra",
            "1G",
        ])
        .unwrap();
        assert!(cli.cow);
        assert_eq!(cli.cow_max_extra, 1 << 30);
        let cli = Cli::try_parse_from(["rdlv-snap", "1", "-o", "f"]).unwrap();
        assert!(!cli.cow);
        assert_eq!(cli.cow_max_extra, 512 << 20);
    }

    #[test]
    fn cli_matches_the_contract() {
        let cli = Cli::try_parse_from(["rdlv-snap", "42", "-o", "x.snap"]).unwrap();
        assert_eq!(cli.pid, 42);
        assert_eq!(cli.max_pause, Duration::from_secs(1));
        assert_eq!(cli.level, 1);
        let cli = Cli::try_parse_from([
            "rdlv-snap",
            "42",
            "-o",
            "-",
            "--force",
            "--json",
            "--max-pause",
            "300ms",
            "--no-exe",
            "--level",
            "3",
            "-q",
        ])
        .unwrap();
        assert!(cli.force && cli.json && cli.no_exe && cli.quiet);
        assert_eq!(cli.level, 3);
        let err = Cli::try_parse_from(["rdlv-snap", "42"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(Cli::try_parse_from(["rdlv-snap", "x", "-o", "f"]).is_err());
        assert!(Cli::try_parse_from(["rdlv-snap", "1", "-o", "f", "--level", "20"]).is_err());
    }

    #[test]
    fn redact_options_need_redact() {
        let cli = Cli::try_parse_from([
            "rdlv-snap",
            "1",
            "-o",
            "-",
            "--redact",
            "--keep",
            "main.cfg",
            "--keep",
            "main.cache[\"k\"]",
            "--keep-deep",
            "--keep-labels",
        ])
        .unwrap();
        assert!(cli.redact && cli.keep_deep && cli.keep_labels);
        assert_eq!(cli.keep, ["main.cfg", "main.cache[\"k\"]"]);
        for args in [
            &["--keep", "main.cfg"][..],
            &["--keep-labels"],
            &["--redact-with", "/bin/rdlv"],
            &["--redact", "--keep-deep"],
            &["--redact", "--no-exe"],
        ] {
            let mut argv = vec!["rdlv-snap", "1", "-o", "f"];
            argv.extend_from_slice(args);
            let err = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
