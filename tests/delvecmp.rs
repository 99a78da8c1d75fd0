//! Comparing rdlv with Delve text for text on one frozen instant: a script
//! both debuggers run (`print "@@@@ KEY"` before each command, so each
//! output splits into answers per key), the package variables and frames
//! to ask about, and what rdlv deliberately says differently
//! ([`delve_quirk`]). Used by the real-server test (tests/e2e/realserver.rs)
//! and by `bench-values`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::realserver::{strip_ansi, Frozen};

/// The marker before each answer.
pub const MARK: &str = "@@@@ ";
/// Frames asked about per sampled goroutine, innermost first.
pub const MAX_FRAMES: usize = 12;

/// Names of package variables in `rdlv vars` text: a line that starts a
/// value (`NAME = ...` at column 0).
pub fn var_names(text: &str) -> Vec<String> {
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
pub fn sample(mut names: Vec<String>, n: Option<usize>) -> Vec<String> {
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
pub fn split_answers(text: &str) -> BTreeMap<String, String> {
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
pub fn expr_for(name: &str) -> String {
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
pub fn refused(answer: &str) -> bool {
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

/// How the answers to one set of keys compared.
pub struct Comparison {
    /// Keys asked about.
    pub keys: usize,
    /// Answers with equal text.
    pub equal: usize,
    /// Keys both refused.
    pub both_refused: usize,
    /// Keys Delve refused and rdlv answered.
    pub only_delve: usize,
    /// Keys Delve answered (not refused).
    pub delve_printed: usize,
    /// Of those, answered with equal text.
    pub printed_equal: usize,
    /// Key, Delve's answer, rdlv's answer.
    pub differ: Vec<(String, String, String)>,
}

/// Compares the answers to `keys`: equal text, refused by both, or
/// different.
pub fn compare(
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
    /// Prints the counts, `what` first.
    pub fn print(&self, what: &str) {
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

/// `(goroutine, frame)` pairs: `n` goroutines not on a thread and not in a
/// system call taken evenly
/// from `rdlv goroutines --format json` output, and up to [`MAX_FRAMES`] of
/// each one's frames.
pub fn sample_frames(json: &str, n: usize) -> std::io::Result<Vec<(u64, usize)>> {
    #[derive(serde::Deserialize)]
    struct G {
        id: u64,
        status: String,
        thread: Option<u64>,
        frames: Vec<serde::de::IgnoredAny>,
    }
    let mut gs: Vec<G> = serde_json::from_str(json)
        .map_err(|e| std::io::Error::other(format!("rdlv goroutines --format json: {e}")))?;
    // On a thread, Delve walks the thread's registers (from `runtime.futex`
    // of a blocking syscall) where rdlv, as the runtime's traceback does,
    // walks the goroutine's saved state: frame N is not the same frame.
    // A goroutine in a system call holds a thread too, even at an instant
    // when its M is between the two (exitsyscall's slow path drops it),
    // and Delve may walk that thread.
    gs.retain(|g| g.thread.is_none() && g.status != "syscall");
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
pub fn normalize(answer: &str) -> String {
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

/// Whether Delve answered from memory: not refused, and not one
/// `(unreadable …)` for the whole value (a type it cannot resolve, a
/// package it cannot place).
pub fn delve_answered(answer: &str) -> bool {
    !refused(answer) && !answer.starts_with("(unreadable ")
}

/// Runs `cmd` for its stdout with colours stripped; a debugger session
/// (`session`) may exit non-zero after a failed command and still have
/// answered the others.
pub fn run_for_stdout(cmd: &mut Command, session: bool) -> std::io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() && (!session || out.stdout.is_empty()) {
        return Err(std::io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(strip_ansi(&String::from_utf8_lossy(&out.stdout)))
}

/// Both debuggers' answers on one frozen instant.
pub struct Answers {
    /// Package variables rdlv lists.
    pub package_variables: usize,
    /// The package variables asked about (keys: their names).
    pub globals: Vec<String>,
    /// The frame listings asked about (keys: `goroutine G frame F locals`).
    pub frames: Vec<String>,
    /// Every package variable rdlv lists, for [`suffix_shadowed`].
    pub names: Vec<String>,
    /// Delve's answers by key.
    pub theirs: BTreeMap<String, String>,
    /// rdlv's answers by key.
    pub ours: BTreeMap<String, String>,
    /// One `dlv core` session.
    pub dlv_time: Duration,
    /// One rdlv REPL session.
    pub rdlv_time: Duration,
}

/// Asks `dlv core` (on the core) and the rdlv REPL (on the snapshot) of
/// `frozen` the same script, written to `work`: `print NAME` for package
/// variables rdlv lists sampled evenly (`sample`; `None` for all), and
/// `locals` and `args` of every frame (up to [`MAX_FRAMES`]) of
/// `goroutines` goroutines sampled evenly.
pub fn ask_both(
    frozen: &Frozen,
    rdlv: &Path,
    dlv: &Path,
    work: &Path,
    sample_n: Option<usize>,
    goroutines: usize,
) -> std::io::Result<Answers> {
    let listing = run_for_stdout(
        Command::new(rdlv).arg("vars").arg(&frozen.snap).arg("."),
        false,
    )?;
    let all = var_names(&listing);
    let globals = sample(all.clone(), sample_n);
    let listing = run_for_stdout(
        Command::new(rdlv)
            .arg("goroutines")
            .arg(&frozen.snap)
            .args(["--format", "json"]),
        false,
    )?;
    let mut script = String::new();
    for n in &globals {
        script.push_str(&format!("print \"{MARK}{n}\"\nprint {}\n", expr_for(n)));
    }
    let mut frames = Vec::new();
    for (g, f) in sample_frames(&listing, goroutines)? {
        for what in ["locals", "args"] {
            let key = format!("goroutine {g} frame {f} {what}");
            script.push_str(&format!("print \"{MARK}{key}\"\n{key}\n"));
            frames.push(key);
        }
    }
    let init = work.join("values.init");
    std::fs::write(&init, format!("{script}exit\n"))?;
    let t = Instant::now();
    let theirs = run_for_stdout(
        Command::new(dlv)
            .arg("core")
            .arg(&frozen.exe)
            .arg(&frozen.core)
            .arg("--init")
            .arg(&init)
            .arg("--allow-non-terminal-interactive=true"),
        true,
    )?;
    let dlv_time = t.elapsed();
    let t = Instant::now();
    let ours = run_for_stdout(
        Command::new(rdlv)
            .arg(&frozen.snap)
            .arg("--init")
            .arg(&init),
        true,
    )?;
    let rdlv_time = t.elapsed();
    Ok(Answers {
        package_variables: all.len(),
        globals,
        frames,
        names: all,
        theirs: split_answers(&theirs),
        ours: split_answers(&ours),
        dlv_time,
        rdlv_time,
    })
}

/// Whether Delve may answer `"P".X` for package variable `name` (`P.X`)
/// with another package's: it matches the quoted path as a suffix, so
/// `"compress/flate".X` also finds `github.com/klauspost/compress/flate.X`
/// (and a vendored copy `vendor/P.X`) when that variable exists.
pub fn suffix_shadowed(name: &str, names: &[String]) -> bool {
    let suffix = format!("/{name}");
    names.iter().any(|n| n != name && n.ends_with(&suffix))
}

/// Why rdlv's `ours` differs from Delve's `theirs` on purpose, if it does,
/// line by line (both as printed): `None` when a difference is not one of
/// the known ones, a failure for the tests.
pub fn delve_quirk(theirs: &str, ours: &str) -> Option<&'static str> {
    let (t, o) = (normalize(theirs), normalize(ours));
    if t == o {
        return Some(QUIRK_FAKE_OR_REASON);
    }
    let (tl, ol): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
    let (mut i, mut j) = (0, 0);
    let mut why = None;
    while i < tl.len() && j < ol.len() {
        let (a, b) = (tl[i], ol[j]);
        i += 1;
        j += 1;
        if normalize(a) == normalize(b) {
            continue;
        }
        let reason = if b.ends_with("(unreadable part of the variable is optimized away)")
            && zero_filled(a)
        {
            QUIRK_MISSING_PIECE
        } else if b.contains("(unreadable corrupt slice header") && impossible_header(a) {
            QUIRK_CORRUPT_HEADER
        } else if constants_aside(&normalize(a)) == constants_aside(&normalize(b)) {
            QUIRK_CONSTANT_NAME
        } else {
            return None;
        };
        // The same field or variable, which Delve expanded over lines:
        // its deeper lines and the bracket closing them are skipped.
        let name = |l: &str| {
            let l = l.trim_start();
            let at = [l.find(": "), l.find(" = ")].into_iter().flatten().min();
            at.map(|at| l[..at].to_string())
        };
        if reason != QUIRK_CONSTANT_NAME && name(a) != name(b) {
            return None;
        }
        let indent = |l: &str| l.len() - l.trim_start_matches('\t').len();
        let depth = indent(a);
        if a.trim_end().ends_with(['[', '{']) {
            while i < tl.len() && indent(tl[i]) > depth {
                i += 1;
            }
            if i < tl.len() && indent(tl[i]) == depth && tl[i].trim_start().starts_with([']', '}'])
            {
                i += 1;
            }
        }
        why = why.or(Some(reason));
    }
    if i != tl.len() || j != ol.len() {
        return None;
    }
    why
}

/// Reason: the two differ only in why a variable is unreadable or in the
/// fake address of a register-held value.
pub const QUIRK_FAKE_OR_REASON: &str = "unreadable reasons are worded apart (Delve names its \
     DWARF evaluator's state, rdlv the location); a value held in registers has no address, and \
     Delve numbers its fake ones (0xbeef…) in the order its session meets them, rdlv's are \
     0xffffff…";
/// Reason: a piece of the variable is missing.
pub const QUIRK_MISSING_PIECE: &str = "DWARF describes the variable in pieces and one is empty \
     at this PC: Delve fills it with zeros (a slice of 3 printed `len: 0`, a time.Time with \
     `loc: nil`) or prints the static type before its reason; a missing piece makes the value \
     unavailable, never zero";
/// Reason: an impossible slice header.
pub const QUIRK_CORRUPT_HEADER: &str = "the slice header is impossible (cap below len, or a \
     length no memory holds): Delve prints it, rdlv says it is corrupt rather than print a wrong \
     value";
/// Reason: another constant of the type has the same value.
pub const QUIRK_CONSTANT_NAME: &str = "several constants of the type share the value: Delve \
     takes the first after sorting them with slices.SortFunc, unstable past 12 constants, rdlv \
     the first in DWARF order (Delve's choice too up to 12)";
/// Reason: Delve found the variable in another package.
pub const QUIRK_SUFFIX_PACKAGE: &str = "another package's path ends with this one's \
     (`github.com/klauspost/compress/flate`, `vendor/golang.org/x/net/idna`): Delve matches a \
     quoted package path as a suffix and may answer for the other package";

/// Whether Delve's line shows what filling a missing piece with zeros
/// gives: a zero length or capacity, a nil, a zero, or a reason of its own.
fn zero_filled(line: &str) -> bool {
    ["len: 0", "cap: 0", "nil", "(unreadable "]
        .iter()
        .any(|z| line.contains(z))
        || line.ends_with(" 0")
        || line.ends_with(": 0,")
        || line.ends_with(" = 0")
}

/// Whether Delve's line prints a slice header no slice has: `len: L, cap:
/// C` with C below L, or a length beyond 2^40 elements.
fn impossible_header(line: &str) -> bool {
    let number = |key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    match (number("len: "), number("cap: ")) {
        (Some(len), Some(cap)) => cap < len || len > 1 << 40,
        _ => false,
    }
}

/// `line` with each constant name before its value (`pkg.Name (42)`) as
/// `CONST (42)`.
fn constants_aside(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(" (") {
        let after = &rest[at + 2..];
        let digits = after
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        let is_value = digits > 0 && after[digits..].starts_with(')');
        let head = &rest[..at];
        if is_value {
            let start = head.rfind([' ', '\t', '{', '[']).map_or(0, |s| s + 1);
            out.push_str(&head[..start]);
            out.push_str("CONST");
        } else {
            out.push_str(head);
        }
        out.push_str(" (");
        rest = after;
    }
    out.push_str(rest);
    out
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
        let pkgs = [
            "compress/flate",
            "github.com/klauspost/compress/flate",
            "os",
        ]
        .map(String::from);
        assert!(suffix_shadowed("compress/flate", &pkgs));
        assert!(!suffix_shadowed("os", &pkgs));
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
    fn quirks_are_recognized_and_nothing_else() {
        assert_eq!(
            delve_quirk(
                "github.com/x/y.DefaultDelay (1000000000)",
                "github.com/x/y.pruneTime (1000000000)"
            ),
            Some(QUIRK_CONSTANT_NAME)
        );
        assert_eq!(
            delve_quirk(
                "map[T]*E [\n\tStringEscape (3109): (*E)(0x10), \n]",
                "map[T]*E [\n\tLiteralStringEscape (3109): (*E)(0x10), \n]"
            ),
            Some(QUIRK_CONSTANT_NAME),
            "a constant as a map key"
        );
        assert_eq!(
            delve_quirk("x.A (1)", "x.B (2)"),
            None,
            "another value is no quirk"
        );
        assert_eq!(
            delve_quirk(
                "p = []uint8 len: 0, cap: 4096, []",
                "p = (unreadable part of the variable is optimized away)"
            ),
            Some(QUIRK_MISSING_PIECE)
        );
        assert_eq!(delve_quirk("n = 3", "n = 4"), None);
        assert_eq!(
            delve_quirk(
                "T {\n\tcats: []int len: 9, cap: 0, [\n\t\t1,\n\t\t2,\n\t],\n\tn: 1,}",
                "T {\n\tcats: (unreadable corrupt slice header: len 9 cap 0),\n\tn: 1,}"
            ),
            Some(QUIRK_CORRUPT_HEADER),
            "Delve's expansion of the corrupt slice is skipped"
        );
        assert_eq!(
            delve_quirk(
                "T {\n\tcats: []int len: 9, cap: 9, [\n\t\t1,\n\t],\n\tn: 1,}",
                "T {\n\tcats: (unreadable corrupt slice header: len 9 cap 9),\n\tn: 1,}"
            ),
            None,
            "a header Delve shows as possible is no quirk"
        );
        assert_eq!(
            delve_quirk(
                "n = 3",
                "n = (unreadable part of the variable is optimized away)"
            ),
            None,
            "a value Delve reads with no zero is no quirk"
        );
        assert_eq!(
            delve_quirk(
                "T {\n\tcats: []int len: 9, cap: 0, [\n\t\t1,\n\t],\n\tn: 1,}",
                "T {\n\tcats: (unreadable corrupt slice header: len 9 cap 0),\n\tn: 2,}"
            ),
            None,
            "what follows must still be equal"
        );
        assert_eq!(delve_quirk("a = 1\nb = 2", "a = 1"), None);
        assert_eq!(
            delve_quirk(
                "x = (unreadable empty OP stack)",
                "x = (unreadable in register rax)"
            ),
            Some(QUIRK_FAKE_OR_REASON)
        );
    }
}
