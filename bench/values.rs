//! bench-values: the globals and frame variables of a real Go server,
//! printed by rdlv and by `dlv core` from the same frozen instant, compared
//! text for text.
//!
//! The corpus programs are built to exercise every value form; a real
//! server has the types nobody thought of. This starts Caddy or the NATS
//! server with JetStream (`--server caddy|nats`, see `server.rs`; `--exe BIN
//! --args ".."` for another HTTP server) with a client thread loading it the
//! whole time, puts it in job-control stop, captures it once with
//! `rdlv-snap` and once with `gcore` (both read the same stopped memory),
//! and lets it run on. Two samples are printed by one `dlv core` session and
//! one rdlv REPL session from the same script, every command preceded by a
//! marker `print "@@@@ KEY"` so the two outputs split into answers per key:
//! - package variables rdlv lists (`rdlv vars SNAP .`), sampled evenly
//!   (`--sample N`, or `--all`), each by `print NAME`;
//! - the frames of goroutines sampled evenly from `rdlv goroutines`
//!   (`--goroutines N`, at most [`MAX_FRAMES`] frames each; not those on a
//!   thread, whose frames Delve counts from the thread's registers), each by
//!   `goroutine G frame F locals` and `... args`.
//!
//! Each answer is one of: equal text; both refused (Delve says "Command
//! failed", so does rdlv); different. Prints the counts, the first
//! differences, and writes every difference to `--report FILE`; `--keep
//! DIR` works in DIR and leaves the snapshot, the core and the script there. Nothing here
//! asserts; the target is 100% equal on what Delve prints.
//!
//! Usage: bench-values [--server caddy|nats] [--sample N (400) | --all]
//! [--goroutines N (40)] [--report FILE] [--keep DIR] [--exe BIN --args ARGS]
//! [--rdlv PATH] [--rdlv-snap PATH] [--dlv PATH]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

// Shared with the other benchmarks; this one needs only `root`.
#[allow(dead_code)]
mod common;
// Shared with bench-oneshot, which also names a serving function.
#[allow(dead_code)]
mod server;
use common::root;
use server::{load_once, start_server, strip_ansi, Kind};

/// The marker before each answer.
const MARK: &str = "@@@@ ";
/// Frames printed per sampled goroutine, innermost first.
const MAX_FRAMES: usize = 12;

struct Options {
    server: Kind,
    sample: Option<usize>,
    goroutines: usize,
    report: Option<PathBuf>,
    keep: Option<PathBuf>,
    exe: Option<PathBuf>,
    args: Vec<String>,
    rdlv: PathBuf,
    snap: PathBuf,
    dlv: PathBuf,
}

const USAGE: &str = "bench-values [--server caddy|nats] [--sample N (400) | --all] \
[--goroutines N (40)] [--report FILE] [--keep DIR] [--exe BIN --args \"ARGS\"] [--rdlv PATH] [--rdlv-snap PATH] [--dlv PATH]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options> {
    let r = root();
    let mut o = Options {
        server: Kind::Caddy,
        sample: Some(400),
        goroutines: 40,
        report: None,
        keep: None,
        exe: None,
        args: Vec::new(),
        rdlv: r.join("target/release/rdlv"),
        snap: r.join("target/release/rdlv-snap"),
        dlv: r.join(".toolchains/bin/dlv"),
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sample" => o.sample = Some(value()?.parse().context("--sample")?),
            "--all" => o.sample = None,
            "--server" => o.server = Kind::parse(&value()?)?,
            "--goroutines" => o.goroutines = value()?.parse().context("--goroutines")?,
            "--report" => o.report = Some(value()?.into()),
            "--keep" => o.keep = Some(value()?.into()),
            "--exe" => o.exe = Some(value()?.into()),
            "--args" => o.args = value()?.split_whitespace().map(String::from).collect(),
            "--rdlv" => o.rdlv = value()?.into(),
            "--rdlv-snap" => o.snap = value()?.into(),
            "--dlv" => o.dlv = value()?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// Names of package variables in `rdlv vars` text: a line that starts a
/// value (`NAME = ...` at column 0).
fn var_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (name, _) = l.split_once(" = ")?;
            let starts = name.chars().next()?;
            (!name.contains(char::is_whitespace) && (starts.is_alphabetic() || starts == '_'))
                .then(|| name.to_string())
        })
        .collect()
}

/// Every `step`-th name, `n` in all (all of them when `n` is `None`).
fn sample(mut names: Vec<String>, n: Option<usize>) -> Vec<String> {
    names.sort();
    names.dedup();
    let Some(n) = n.filter(|&n| n > 0 && n < names.len()) else {
        return names;
    };
    let step = names.len() as f64 / n as f64;
    (0..n)
        .filter_map(|i| names.get((i as f64 * step) as usize).cloned())
        .collect()
}

/// The answer after each marker, by name. A line `"@@@@ NAME"` (the
/// printed marker string) opens the answer for NAME.
fn split_answers(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        let marker = line
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .and_then(|l| l.strip_prefix(MARK));
        if let Some(name) = marker {
            if let Some((n, lines)) = current.take() {
                out.insert(n, lines.join("\n").trim().to_string());
            }
            current = Some((name.to_string(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some((n, lines)) = current {
        out.insert(n, lines.join("\n").trim().to_string());
    }
    out
}

/// The expression that names package variable `name` in Delve's syntax: a
/// package path with a `/` or a `.` is quoted (`"net/http".DefaultClient`),
/// with the `%2e` of symbol names decoded.
fn expr_for(name: &str) -> String {
    let Some(slash) = name.rfind('/') else {
        return name.to_string();
    };
    let Some(dot) = name[slash..].find('.').map(|d| slash + d) else {
        return name.to_string();
    };
    format!("\"{}\"{}", name[..dot].replace("%2e", "."), &name[dot..])
}

/// Whether a debugger refused: Delve prints `FILE.init:LINE: error` for a
/// failed command of its init script (`Command failed: ..` at its prompt);
/// rdlv writes its errors to stderr, leaving the answer empty.
fn refused(answer: &str) -> bool {
    answer.is_empty()
        || answer.starts_with("Command failed")
        || answer.split_once(".init:").is_some_and(|(path, rest)| {
            !path.starts_with('"')
                && !path.contains(char::is_whitespace)
                && rest
                    .split_once(": ")
                    .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
}

fn run(cmd: &mut Command) -> Result<String> {
    run_session(cmd, false)
}

/// Runs `cmd` for its stdout; a debugger session (`session`) may exit
/// non-zero after a failed command and still have answered the others.
fn run_session(cmd: &mut Command, session: bool) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() && (!session || out.stdout.is_empty()) {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(strip_ansi(&String::from_utf8_lossy(&out.stdout)))
}

fn main() -> Result<()> {
    let o = parse_args(std::env::args().skip(1))?;
    for (what, path) in [("rdlv", &o.rdlv), ("rdlv-snap", &o.snap), ("dlv", &o.dlv)] {
        if !path.exists() {
            bail!("{what} not found at {}", path.display());
        }
    }
    let dir = tempfile::tempdir()?;
    let work = match &o.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)?;
            keep.as_path()
        }
        None => dir.path(),
    };
    let (server, bin) = start_server(o.server, o.exe.as_deref(), &o.args, work)?;
    let pid = server.child.id();

    // Load: one client thread on fresh connections the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let (port, kind) = (server.port, server.kind);
    let client = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if load_once(kind, port).is_ok() {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // One frozen instant for both readers.
    let snap = work.join("server.snap");
    let core_prefix = work.join("core");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let captured = (|| -> Result<()> {
        run(Command::new(&o.snap)
            .arg(pid.to_string())
            .arg("-o")
            .arg(&snap)
            .arg("-q"))
        .context("rdlv-snap")?;
        run(Command::new("gcore")
            .arg("-o")
            .arg(&core_prefix)
            .arg(pid.to_string()))
        .context("gcore")?;
        Ok(())
    })();
    // SAFETY: as above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    captured?;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    drop(server);
    let core = work.join(format!("core.{pid}"));
    eprintln!(
        "{}: {} load units ({kind:?} clients) served; captured stopped",
        bin.display(),
        served.load(Ordering::Relaxed)
    );

    let listing = run(Command::new(&o.rdlv).arg("vars").arg(&snap).arg("."))?;
    let all = var_names(&listing);
    let names = sample(all.clone(), o.sample);
    let listing = run(Command::new(&o.rdlv)
        .arg("goroutines")
        .arg(&snap)
        .args(["--format", "json"]))?;
    let frames = sample_frames(&listing, o.goroutines)?;
    eprintln!(
        "{} package variables, comparing {}; {} frames of {} goroutines",
        all.len(),
        names.len(),
        frames.len(),
        frames
            .iter()
            .map(|f| f.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    let mut script = String::new();
    for n in &names {
        script.push_str(&format!("print \"{MARK}{n}\"\nprint {}\n", expr_for(n)));
    }
    let mut frame_keys = Vec::new();
    for (g, f) in &frames {
        for what in ["locals", "args"] {
            let key = format!("goroutine {g} frame {f} {what}");
            script.push_str(&format!("print \"{MARK}{key}\"\n{key}\n"));
            frame_keys.push(key);
        }
    }
    let init = work.join("values.init");
    std::fs::write(&init, format!("{script}exit\n"))?;

    let t = Instant::now();
    let theirs = run_session(
        Command::new(&o.dlv)
            .arg("core")
            .arg(&bin)
            .arg(&core)
            .arg("--init")
            .arg(&init)
            .arg("--allow-non-terminal-interactive=true"),
        true,
    )?;
    let dlv_time = t.elapsed();
    let t = Instant::now();
    let ours = run_session(
        Command::new(&o.rdlv).arg(&snap).arg("--init").arg(&init),
        true,
    )?;
    let rdlv_time = t.elapsed();
    let (theirs, ours) = (split_answers(&theirs), split_answers(&ours));

    let globals = compare(&names, &theirs, &ours);
    let locals = compare(&frame_keys, &theirs, &ours);
    println!(
        "one session each: dlv core {:.2} s, rdlv {:.2} s",
        dlv_time.as_secs_f64(),
        rdlv_time.as_secs_f64()
    );
    globals.print("package variables");
    locals.print("frames' locals and args");
    // Frame answers compared variable by variable too: one line a variable.
    let (mut vars, mut vars_equal) = (0, 0);
    for k in &frame_keys {
        let (Some(t), Some(r)) = (theirs.get(k), ours.get(k)) else {
            continue;
        };
        if refused(t) || t.starts_with('(') {
            continue;
        }
        let mine: std::collections::BTreeSet<&str> = r.lines().collect();
        for line in t.lines() {
            vars += 1;
            vars_equal += usize::from(mine.contains(line));
        }
    }
    println!(
        "frame variables Delve prints: {vars}, rdlv prints {vars_equal} identically ({:.1}%)",
        100.0 * vars_equal as f64 / vars.max(1) as f64
    );
    // The same frames with what two readers may rightly word apart set
    // aside: why a variable is unreadable, and the fake address of a value
    // held in registers (Delve numbers them in the order a session meets
    // them).
    let same_aside = frame_keys
        .iter()
        .filter(|k| {
            let (t, r) = (theirs.get(*k), ours.get(*k));
            t.is_some_and(|t| !refused(t)) && t.map(|t| normalize(t)) == r.map(|r| normalize(r))
        })
        .count();
    println!(
        "frames equal with unreadable reasons and register-value addresses set aside: {same_aside} of {} ({:.1}%)",
        locals.delve_printed,
        100.0 * same_aside as f64 / locals.delve_printed.max(1) as f64
    );
    for (n, t, r) in globals.differ.iter().chain(&locals.differ).take(15) {
        println!(
            "--- {n}\n  dlv:  {}\n  rdlv: {}",
            first_line(t),
            first_line(r)
        );
    }
    if let Some(path) = &o.report {
        let mut text = String::new();
        for (n, t, r) in globals.differ.iter().chain(&locals.differ) {
            text.push_str(&format!("=== {n}\n--- dlv\n{t}\n--- rdlv\n{r}\n"));
        }
        std::fs::write(path, text)?;
        println!("every difference: {}", path.display());
    }
    Ok(())
}

/// How the answers to one set of keys compared.
struct Comparison {
    keys: usize,
    equal: usize,
    both_refused: usize,
    only_delve: usize,
    delve_printed: usize,
    printed_equal: usize,
    /// Key, Delve's answer, rdlv's answer.
    differ: Vec<(String, String, String)>,
}

fn compare(
    keys: &[String],
    theirs: &BTreeMap<String, String>,
    ours: &BTreeMap<String, String>,
) -> Comparison {
    let mut c = Comparison {
        keys: keys.len(),
        equal: 0,
        both_refused: 0,
        only_delve: 0,
        delve_printed: 0,
        printed_equal: 0,
        differ: Vec::new(),
    };
    for k in keys {
        let (t, r) = (
            theirs.get(k).map_or("", String::as_str),
            ours.get(k).map_or("", String::as_str),
        );
        if !refused(t) {
            c.delve_printed += 1;
        }
        if t == r {
            c.equal += 1;
            c.printed_equal += usize::from(!refused(t));
        } else if refused(t) && refused(r) {
            c.both_refused += 1;
        } else {
            if refused(t) {
                c.only_delve += 1;
            }
            c.differ.push((k.clone(), t.to_string(), r.to_string()));
        }
    }
    c
}

impl Comparison {
    fn print(&self, what: &str) {
        println!(
            "{what}: compared {}: {} equal text, {} refused by both, {} different \
             ({} of them refused by Delve only); of the {} Delve prints, rdlv prints {} \
             identically ({:.1}%)",
            self.keys,
            self.equal,
            self.both_refused,
            self.differ.len(),
            self.only_delve,
            self.delve_printed,
            self.printed_equal,
            100.0 * self.printed_equal as f64 / self.delve_printed.max(1) as f64,
        );
    }
}

/// `(goroutine, frame)` pairs: `n` goroutines not on a thread taken evenly
/// from `rdlv goroutines --format json` output, and up to [`MAX_FRAMES`] of
/// each one's frames.
fn sample_frames(json: &str, n: usize) -> Result<Vec<(u64, usize)>> {
    #[derive(serde::Deserialize)]
    struct G {
        id: u64,
        thread: Option<u64>,
        frames: Vec<serde::de::IgnoredAny>,
    }
    let mut gs: Vec<G> = serde_json::from_str(json).context("rdlv goroutines --format json")?;
    // On a thread, Delve walks the thread's registers (from `runtime.futex`
    // of a blocking syscall) where rdlv, as the runtime's traceback does,
    // walks the goroutine's saved state: frame N is not the same frame.
    gs.retain(|g| g.thread.is_none());
    let step = (gs.len() as f64 / n.max(1) as f64).max(1.0);
    let mut out = Vec::new();
    for i in 0..n.min(gs.len()) {
        let Some(g) = gs.get((i as f64 * step) as usize) else {
            break;
        };
        out.extend((0..g.frames.len().min(MAX_FRAMES)).map(|f| (g.id, f)));
    }
    Ok(out)
}

/// `answer` with each `(unreadable REASON)` as `(unreadable)` and each
/// fake address of a register-held value (Delve's `0xbeef…`, rdlv's
/// `0xffffff…`) as `0xFAKE`.
fn normalize(answer: &str) -> String {
    let mut out = String::with_capacity(answer.len());
    for line in answer.lines() {
        let line = match line.find("(unreadable ") {
            Some(at) if line.ends_with(')') => format!("{}(unreadable)", &line[..at]),
            _ => line.to_string(),
        };
        let mut rest = line.as_str();
        while let Some(at) = rest.find("0x") {
            out.push_str(&rest[..at]);
            let digits = rest[at + 2..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .map_or(rest.len() - at - 2, |n| n);
            let hex = &rest[at + 2..at + 2 + digits];
            let fake = hex.len() == 16 && (hex.starts_with("beef") || hex.starts_with("ffffff"));
            out.push_str(if fake {
                "0xFAKE"
            } else {
                &rest[at..at + 2 + digits]
            });
            rest = &rest[at + 2 + digits..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut cut: String = line.chars().take(160).collect();
    if s.lines().count() > 1 || cut.len() < line.len() {
        cut.push_str(" ...");
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_split_at_the_markers() {
        let text =
            "Type 'help'\n\"@@@@ a.b\"\n1\n\"@@@@ c\"\n[]int len: 2, cap: 2, [\n\t1,\n\t2,\n]\n";
        let got = split_answers(text);
        assert_eq!(got["a.b"], "1");
        assert_eq!(got["c"], "[]int len: 2, cap: 2, [\n\t1,\n\t2,\n]");
        assert!(refused(
            "/tmp/x/values.init:2: could not find symbol value for _cgo_bindm"
        ));
        assert!(refused(""));
        assert!(!refused("\"a.init:2: is a string\""));
    }

    #[test]
    fn var_names_skip_continuation_lines_and_sampling_is_even() {
        let text = "a = 1\n\t\"x = y\",\nb = []int len: 0\n*72\n";
        assert_eq!(var_names(text), ["a", "b"]);
        let names: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        assert_eq!(
            sample(names.clone(), Some(5)),
            ["v0", "v2", "v4", "v6", "v8"]
        );
        assert_eq!(sample(names, None).len(), 10);
    }

    #[test]
    fn normalizing_sets_aside_reasons_and_fake_addresses() {
        assert_eq!(
            normalize("x = (unreadable empty OP stack)\nl = net.Listener(*net.TCPListener) 0xbeef000000002308"),
            "x = (unreadable)\nl = net.Listener(*net.TCPListener) 0xFAKE\n"
        );
        assert_eq!(
            normalize("l = io.Reader(*net.TCPConn) 0xffffff0000000008\np = (*int)(0xc000012345)"),
            "l = io.Reader(*net.TCPConn) 0xFAKE\np = (*int)(0xc000012345)\n"
        );
    }

    #[test]
    fn package_paths_are_quoted_for_delve() {
        assert_eq!(expr_for("os.Args"), "os.Args");
        assert_eq!(
            expr_for("net/http.DefaultClient"),
            "\"net/http\".DefaultClient"
        );
        assert_eq!(
            expr_for("crypto/internal/entropy/v1%2e0%2e0._K"),
            "\"crypto/internal/entropy/v1.0.0\"._K"
        );
    }
}
