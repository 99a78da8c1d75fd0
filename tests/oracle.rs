//! What a corpus program reports about itself: parsed `stacks.txt`,
//! `values.json` and `locals.json` (CONTRACT.md, "Corpus oracle protocol").

use serde::Deserialize;
use serde_json::Value;

/// One frame line pair of a Go traceback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFrame {
    /// Function name as printed (`main.(*worker).run`, `main.genericWait[...]`).
    pub func: String,
    /// The text between the parentheses: `0x0?, {0x1, 0x2}`, `...` for inlined frames.
    pub args: String,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
    /// The `+0x..` offset from the function entry, when printed.
    pub pc_offset: Option<u64>,
    /// Printed as an inlined frame: `(...)` and no `+0x` offset.
    pub inlined: bool,
}

/// The `created by` trailer of a goroutine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBy {
    /// Creating function (physical frame name).
    pub func: String,
    /// Goroutine that ran the `go` statement, when printed (`in goroutine N`).
    pub goid: Option<u64>,
    /// Source file of the `go` statement.
    pub file: String,
    /// Its line.
    pub line: u32,
    /// `+0x..` offset, when printed.
    pub pc_offset: Option<u64>,
}

/// One goroutine block of `runtime.Stack(buf, true)` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoroutineBlock {
    /// Goroutine id.
    pub id: u64,
    /// Everything between the brackets of the header (`chan receive, 3 minutes, locked to thread`).
    pub status: String,
    /// The status without its suffixes (`chan receive`, `running`, `syscall`).
    pub wait_reason: String,
    /// `N minutes`, when printed.
    pub minutes: Option<u64>,
    /// `, locked to thread` was printed.
    pub locked_to_thread: bool,
    /// Suffixes other than minutes and locking, in order (e.g. `synctest bubble 3`).
    pub other_suffixes: Vec<String>,
    /// pprof labels printed in the header (Go 1.26 with
    /// `GODEBUG=tracebacklabels=1`: ` labels:{"k": "v", ...}`), in order.
    pub labels: Vec<(String, String)>,
    /// Logical frames, innermost first.
    pub frames: Vec<StackFrame>,
    /// `...N frames elided...` was printed after this many frames: (position, N).
    pub elided: Option<(usize, u64)>,
    /// `goroutine running on other thread; stack unavailable` was printed.
    pub stack_unavailable: bool,
    /// The `created by` trailer.
    pub created_by: Option<CreatedBy>,
    /// The block's text as printed, without the trailing blank line.
    pub text: String,
}

impl GoroutineBlock {
    /// Whether this goroutine belongs to the oracle machinery, which the
    /// protocol excludes from comparisons: the goroutine serving SIGUSR1
    /// (it runs `corpus/internal/oracle.serve`) and the os/signal goroutine.
    pub fn is_oracle_machinery(&self) -> bool {
        self.frames.iter().any(|f| {
            f.func == "corpus/internal/oracle.serve"
                || f.func == "os/signal.signal_recv"
                || f.func == "os/signal.loop"
        }) || self.created_by.as_ref().is_some_and(|c| {
            c.func.starts_with("os/signal.") || c.func.starts_with("corpus/internal/oracle.Ready")
        })
    }

    /// Whether the goroutine was running (or runnable) when the dump was
    /// taken: such goroutines are compared by function only.
    pub fn is_running(&self) -> bool {
        self.wait_reason == "running" || self.wait_reason == "runnable" || self.stack_unavailable
    }

    /// Function names of the frames, innermost first.
    pub fn funcs(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.func.as_str()).collect()
    }
}

/// One entry of `values.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OracleValue {
    /// Expression (`main.cfg`).
    pub expr: String,
    /// Canonical JSON of its value.
    pub value: Value,
}

/// `locals.json`: the arguments and locals of one parked function.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OracleLocals {
    /// Goroutine id running the function.
    pub goroutine: u64,
    /// Function name (`main.parkLocals`).
    pub func: String,
    /// Locals by name, canonical JSON.
    pub locals: serde_json::Map<String, Value>,
    /// Arguments by name, canonical JSON.
    pub args: serde_json::Map<String, Value>,
}

/// Everything one SIGUSR1 made the program write.
#[derive(Debug, Clone)]
pub struct Oracle {
    /// `stacks.txt` verbatim.
    pub stacks_text: String,
    /// `stacks.txt` parsed, in the order printed (allgs order).
    pub goroutines: Vec<GoroutineBlock>,
    /// `values.json`, in registration order.
    pub values: Vec<OracleValue>,
    /// `values.json` verbatim: one entry per line. serde_json objects sort
    /// their keys, so struct field order must be checked on this text.
    pub values_text: String,
    /// `locals.json`, when the program records locals.
    pub locals: Option<OracleLocals>,
}

impl Oracle {
    /// Goroutines to compare with a snapshot: all but the oracle machinery.
    pub fn compared_goroutines(&self) -> impl Iterator<Item = &GoroutineBlock> {
        self.goroutines.iter().filter(|g| !g.is_oracle_machinery())
    }

    /// The goroutine with this id.
    pub fn goroutine(&self, id: u64) -> Option<&GoroutineBlock> {
        self.goroutines.iter().find(|g| g.id == id)
    }

    /// The first goroutine one of whose frames is `func`.
    pub fn goroutine_in(&self, func: &str) -> Option<&GoroutineBlock> {
        self.goroutines
            .iter()
            .find(|g| g.frames.iter().any(|f| f.func == func))
    }

    /// The canonical JSON value reported for `expr`.
    pub fn value(&self, expr: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|v| v.expr == expr)
            .map(|v| &v.value)
    }
}

/// Splits `runtime.Stack(buf, true)` text into goroutine blocks. Lines that
/// are not part of a goroutine block are ignored; a malformed block is an
/// error naming it.
pub fn parse_stacks(text: &str) -> Result<Vec<GoroutineBlock>, String> {
    let mut blocks = Vec::new();
    for chunk in text.split("\n\n") {
        let chunk = chunk.trim_matches('\n');
        if chunk.starts_with("goroutine ") {
            blocks.push(parse_block(chunk)?);
        }
    }
    Ok(blocks)
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Parses `\t/path/file.go:123 +0x1d[ fp=.. sp=.. pc=..]`.
fn parse_location(line: &str) -> Option<(String, u32, Option<u64>)> {
    let line = line.strip_prefix('\t')?;
    let (loc, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let (file, line_no) = loc.rsplit_once(':')?;
    let line_no = line_no.parse().ok()?;
    let offset = rest
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix('+'))
        .and_then(parse_hex);
    Some((file.to_string(), line_no, offset))
}

/// Splits `main.(*T).m(0x1, {0x2})` into name and argument text: the
/// arguments are the last parenthesised group (names contain parentheses).
fn split_call(line: &str) -> Option<(String, String)> {
    let body = line.strip_suffix(')')?;
    let mut depth = 1usize;
    for (i, c) in body.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return Some((body[..i].to_string(), body[i + 1..].to_string()));
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_header(line: &str) -> Option<(u64, String)> {
    let rest = line.strip_prefix("goroutine ")?;
    let id_end = rest.find(|c: char| !c.is_ascii_digit())?;
    let id = rest[..id_end].parse().ok()?;
    let open = rest.find('[')?;
    let close = rest.rfind("]:")?;
    (open < close).then(|| (id, rest[open + 1..close].to_string()))
}

/// Reads one runtime-quoted string (`"..."` with `\"` and `\\` escapes;
/// other escapes are kept as written) from the front of `s`.
fn take_quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => {
                let (_, next) = chars.next()?;
                if next != '"' && next != '\\' {
                    out.push('\\');
                }
                out.push(next);
            }
            _ => out.push(c),
        }
    }
    None
}

/// Parses `{"k1": "v1", "k2": "v2"}`.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut rest = text.strip_prefix('{')?;
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('}') {
        return after.is_empty().then_some(labels);
    }
    loop {
        let (key, after) = take_quoted(rest)?;
        let (value, after) = take_quoted(after.strip_prefix(": ")?)?;
        labels.push((key, value));
        if let Some(after) = after.strip_prefix(", ") {
            rest = after;
        } else {
            return (after == "}").then_some(labels);
        }
    }
}

fn parse_block(chunk: &str) -> Result<GoroutineBlock, String> {
    let mut lines = chunk.lines();
    let header = lines.next().unwrap_or_default();
    let (id, status) =
        parse_header(header).ok_or_else(|| format!("bad goroutine header: {header:?}"))?;
    let (plain_status, labels) = match status.find(" labels:{") {
        Some(at) => {
            let text = &status[at + " labels:".len()..];
            let labels =
                parse_labels(text).ok_or_else(|| format!("goroutine {id}: bad labels {text:?}"))?;
            (&status[..at], labels)
        }
        None => (status.as_str(), Vec::new()),
    };
    let mut parts = plain_status.split(", ");
    let wait_reason = parts.next().unwrap_or_default().to_string();
    let mut minutes = None;
    let mut locked_to_thread = false;
    let mut other_suffixes = Vec::new();
    for part in parts {
        if part == "locked to thread" {
            locked_to_thread = true;
        } else if let Some(n) = part.strip_suffix(" minutes").and_then(|n| n.parse().ok()) {
            minutes = Some(n);
        } else {
            other_suffixes.push(part.to_string());
        }
    }
    let mut block = GoroutineBlock {
        id,
        status,
        wait_reason,
        minutes,
        locked_to_thread,
        other_suffixes,
        labels,
        frames: Vec::new(),
        elided: None,
        stack_unavailable: false,
        created_by: None,
        text: chunk.to_string(),
    };
    let bad = |what: &str, line: &str| format!("goroutine {id}: {what}: {line:?}");
    while let Some(line) = lines.next() {
        if line.trim() == "goroutine running on other thread; stack unavailable" {
            block.stack_unavailable = true;
        } else if let Some(n) = line
            .strip_prefix("...")
            .and_then(|l| l.strip_suffix(" frames elided..."))
        {
            let n = n.parse().map_err(|_| bad("bad elision line", line))?;
            block.elided = Some((block.frames.len(), n));
        } else if line == "...additional frames elided..." {
            block.elided = Some((block.frames.len(), 0));
        } else if let Some(rest) = line.strip_prefix("created by ") {
            let (func, goid) = match rest.split_once(" in goroutine ") {
                Some((f, g)) => (
                    f.to_string(),
                    Some(g.parse().map_err(|_| bad("bad created-by", line))?),
                ),
                None => (rest.to_string(), None),
            };
            let loc_line = lines
                .next()
                .ok_or_else(|| bad("created-by without location", line))?;
            let (file, line_no, pc_offset) =
                parse_location(loc_line).ok_or_else(|| bad("bad location", loc_line))?;
            block.created_by = Some(CreatedBy {
                func,
                goid,
                file,
                line: line_no,
                pc_offset,
            });
        } else if let Some((func, args)) = split_call(line) {
            let loc_line = lines
                .next()
                .ok_or_else(|| bad("frame without location", line))?;
            let (file, line_no, pc_offset) =
                parse_location(loc_line).ok_or_else(|| bad("bad location", loc_line))?;
            let inlined = args == "..." && pc_offset.is_none();
            block.frames.push(StackFrame {
                func,
                args,
                file,
                line: line_no,
                pc_offset,
                inlined,
            });
        } else {
            return Err(bad("unrecognised line", line));
        }
    }
    Ok(block)
}

/// Compares two canonical JSON values (key order is not compared: serde_json
/// objects sort their keys; check field order on the text); numbers are equal when they denote
/// the same float64 (so `1e+21` equals `1e21`). The sign of zero is not
/// compared: serde_json reads the text `-0` as the integer 0. Returns
/// the JSON-pointer-like path of the first difference.
pub fn json_diff(expected: &Value, actual: &Value) -> Result<(), String> {
    fn walk(e: &Value, a: &Value, path: &mut String) -> Result<(), String> {
        match (e, a) {
            (Value::Number(x), Value::Number(y)) => {
                let same = match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                    (Some(p), Some(q), _, _) => p == q,
                    (_, _, Some(p), Some(q)) => p == q,
                    _ => x.as_f64() == y.as_f64(),
                };
                if same {
                    Ok(())
                } else {
                    Err(format!("{path}: expected {x}, got {y}"))
                }
            }
            (Value::Array(xs), Value::Array(ys)) => {
                if xs.len() != ys.len() {
                    return Err(format!(
                        "{path}: expected {} elements, got {}",
                        xs.len(),
                        ys.len()
                    ));
                }
                for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    walk(x, y, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            (Value::Object(xs), Value::Object(ys)) => {
                let xk: Vec<_> = xs.keys().collect();
                let yk: Vec<_> = ys.keys().collect();
                if xk != yk {
                    return Err(format!("{path}: expected keys {xk:?}, got {yk:?}"));
                }
                for (k, x) in xs {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k);
                    walk(x, &ys[k], path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ if e == a => Ok(()),
            _ => Err(format!("{path}: expected {}, got {}", short(e), short(a))),
        }
    }
    walk(expected, actual, &mut String::new())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

/// What [`compare_goroutines`] checks beyond the protocol's fixed rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareOptions {
    /// Compare argument text too (`0x0?, {0x1, 0x2}`).
    pub args: bool,
    /// Allowed difference in `N minutes` (the oracle is taken a moment after
    /// the capture, so a boundary can be crossed).
    pub minutes_tolerance: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            args: true,
            minutes_tolerance: 1,
        }
    }
}

/// Compares goroutines as the oracle printed them (`expected`, e.g.
/// [`Oracle::goroutines`]) with goroutines parsed from a tool's Go-format
/// output (`actual`), following CONTRACT.md's oracle protocol: the oracle's
/// own goroutines are left out of both sides; the same goroutines must appear
/// in the same order; a goroutine running on either side is compared by its
/// outermost function and creator only; every other one by status, frames
/// (function, file, line, offset, inlining, and arguments when asked),
/// elision and `created by`. Returns every difference found.
pub fn compare_goroutines(
    expected: &[GoroutineBlock],
    actual: &[GoroutineBlock],
    options: CompareOptions,
) -> Result<(), Vec<String>> {
    let expected: Vec<&GoroutineBlock> = expected
        .iter()
        .filter(|g| !g.is_oracle_machinery())
        .collect();
    let actual: Vec<&GoroutineBlock> = actual.iter().filter(|g| !g.is_oracle_machinery()).collect();
    let mut diffs = Vec::new();
    let expected_ids: Vec<u64> = expected.iter().map(|g| g.id).collect();
    let actual_ids: Vec<u64> = actual.iter().map(|g| g.id).collect();
    if expected_ids != actual_ids {
        diffs.push(format!(
            "goroutine ids differ:\n expected {expected_ids:?}\n actual   {actual_ids:?}"
        ));
    }
    for e in &expected {
        let Some(a) = actual.iter().find(|a| a.id == e.id) else {
            continue;
        };
        let mut d = |what: String| diffs.push(format!("goroutine {}: {what}", e.id));
        if e.created_by.as_ref().map(|c| (&c.func, c.goid))
            != a.created_by.as_ref().map(|c| (&c.func, c.goid))
        {
            d(format!(
                "created by {:?}, got {:?}",
                e.created_by, a.created_by
            ));
        }
        if e.is_running() || a.is_running() {
            let outer = |g: &GoroutineBlock| {
                g.frames
                    .iter()
                    .rev()
                    .find(|f| f.func != "runtime.goexit")
                    .map(|f| f.func.clone())
            };
            if let (Some(x), Some(y)) = (outer(e), outer(a)) {
                if x != y {
                    d(format!(
                        "running goroutine's outermost function {x}, got {y}"
                    ));
                }
            }
            continue;
        }
        if (
            &e.wait_reason,
            e.locked_to_thread,
            &e.other_suffixes,
            &e.labels,
        ) != (
            &a.wait_reason,
            a.locked_to_thread,
            &a.other_suffixes,
            &a.labels,
        ) {
            d(format!("status [{}], got [{}]", e.status, a.status));
        }
        let minutes = |g: &GoroutineBlock| g.minutes.unwrap_or(0);
        if minutes(e).abs_diff(minutes(a)) > options.minutes_tolerance {
            d(format!("{} minutes, got {}", minutes(e), minutes(a)));
        }
        if e.elided != a.elided {
            d(format!("elision {:?}, got {:?}", e.elided, a.elided));
        }
        if e.created_by != a.created_by {
            d(format!(
                "created by {:?}, got {:?}",
                e.created_by, a.created_by
            ));
        }
        if e.frames.len() != a.frames.len() {
            d(format!(
                "{} frames {:?}, got {} {:?}",
                e.frames.len(),
                e.funcs(),
                a.frames.len(),
                a.funcs()
            ));
            continue;
        }
        for (i, (x, y)) in e.frames.iter().zip(&a.frames).enumerate() {
            let same = x.func == y.func
                && x.file == y.file
                && x.line == y.line
                && x.pc_offset == y.pc_offset
                && x.inlined == y.inlined
                && (!options.args || x.args == y.args);
            if !same {
                d(format!("frame {i}: expected {x:?}, got {y:?}"));
            }
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "goroutine 46 [running]:
corpus/internal/oracle.AllStacks()
	/work/main/corpus/internal/oracle/oracle.go:160 +0x45
corpus/internal/oracle.serve(0xc000020150)
	/work/main/corpus/internal/oracle/oracle.go:147 +0x9c
created by corpus/internal/oracle.Ready.func1 in goroutine 1
	/work/main/corpus/internal/oracle/oracle.go:128 +0xa5

goroutine 39 [chan receive, 3 minutes, locked to thread]:
main.(*worker).run(0x0?)
	/work/main/corpus/cmd/parked/main.go:147 +0x1c
main.main.gowrap1()
	/work/main/corpus/cmd/parked/main.go:233 +0x25
created by main.main in goroutine 1
	/work/main/corpus/cmd/parked/main.go:233 +0x7c5

goroutine 41 [chan receive]:
main.inlineC(...)
	/work/main/corpus/cmd/parked/main.go:160
main.inlineRoot(0x0?)
	/work/main/corpus/cmd/parked/main.go:156 +0x1d
...106 frames elided...
main.recurse(0x0?)
	/work/main/corpus/cmd/parked/main.go:130 +0x2f

goroutine 42 [running]:
	goroutine running on other thread; stack unavailable
created by main.main in goroutine 1
	/work/main/corpus/cmd/parked/main.go:240 +0x8c5

goroutine 1 [select (no cases)]:
main.main()
	/work/main/corpus/cmd/parked/main.go:245 +0x6d
";

    #[test]
    fn parses_headers_frames_and_trailers() {
        let blocks = parse_stacks(SAMPLE).expect("parse");
        assert_eq!(blocks.len(), 5);
        assert!(blocks[0].is_oracle_machinery());
        let worker = &blocks[1];
        assert_eq!(worker.id, 39);
        assert_eq!(worker.wait_reason, "chan receive");
        assert_eq!(worker.minutes, Some(3));
        assert!(worker.locked_to_thread);
        assert_eq!(worker.funcs(), ["main.(*worker).run", "main.main.gowrap1"]);
        assert_eq!(worker.frames[0].args, "0x0?");
        assert_eq!(worker.frames[0].line, 147);
        assert_eq!(worker.frames[0].pc_offset, Some(0x1c));
        let created = worker.created_by.as_ref().expect("created by");
        assert_eq!(
            (created.func.as_str(), created.goid, created.line),
            ("main.main", Some(1), 233)
        );
        assert!(!worker.is_oracle_machinery());
        let inl = &blocks[2];
        assert!(inl.frames[0].inlined);
        assert!(!inl.frames[1].inlined);
        assert_eq!(inl.elided, Some((2, 106)));
        assert!(blocks[3].stack_unavailable && blocks[3].is_running());
        assert!(blocks[4].created_by.is_none());
    }

    #[test]
    fn parses_labels_in_the_header() {
        let text = "goroutine 29 [chan receive, locked to thread labels:{\"k\\\"1\": \"v, 1\", \"k2\": \"v2\"}]:\nmain.f()\n\t/x.go:1 +0x1\n";
        let blocks = parse_stacks(text).expect("parse");
        let g = &blocks[0];
        assert_eq!(g.wait_reason, "chan receive");
        assert!(g.locked_to_thread);
        assert_eq!(
            g.labels,
            [
                ("k\"1".to_string(), "v, 1".to_string()),
                ("k2".to_string(), "v2".to_string())
            ]
        );
    }

    #[test]
    fn compare_goroutines_follows_the_protocol() {
        let expected = parse_stacks(SAMPLE).expect("parse");
        compare_goroutines(&expected, &expected, CompareOptions::default()).expect("identical");

        // The oracle's goroutine differs freely; the running one by frames.
        let mut actual = expected.clone();
        actual[0].frames.clear();
        actual[3].frames = vec![actual[1].frames[1].clone()];
        actual[3].stack_unavailable = false;
        compare_goroutines(&expected, &actual, CompareOptions::default())
            .expect("excluded and running");

        let mut actual = expected.clone();
        actual[1].frames[0].line += 1;
        actual[2].wait_reason = "select".into();
        actual[4].frames[0].args = "0x1".into();
        let diffs =
            compare_goroutines(&expected, &actual, CompareOptions::default()).expect_err("differs");
        assert_eq!(diffs.len(), 3, "{diffs:#?}");
        assert!(diffs[0].starts_with("goroutine 39: frame 0"), "{diffs:#?}");
        let without_args = CompareOptions {
            args: false,
            ..CompareOptions::default()
        };
        assert_eq!(
            compare_goroutines(&expected, &actual, without_args)
                .expect_err("differs")
                .len(),
            2
        );

        let missing: Vec<_> = expected.iter().filter(|g| g.id != 41).cloned().collect();
        let diffs = compare_goroutines(&expected, &missing, CompareOptions::default())
            .expect_err("missing");
        assert!(diffs[0].contains("ids differ"), "{diffs:#?}");
    }

    #[test]
    fn rejects_garbage_inside_a_block() {
        let err = parse_stacks("goroutine 1 [running]:\nnot a frame line\n").expect_err("garbage");
        assert!(err.contains("goroutine 1"), "{err}");
    }

    #[test]
    fn json_diff_treats_number_spellings_alike_and_reports_paths() {
        let a: Value = serde_json::from_str(r#"{"x":[1e21,-0,{"y":"s"}]}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"x":[1e+21,-0.0,{"y":"s"}]}"#).expect("json");
        json_diff(&a, &b).expect("equal");
        let c: Value = serde_json::from_str(r#"{"x":[1e21,-0,{"y":"t"}]}"#).expect("json");
        let err = json_diff(&a, &c).expect_err("differs");
        assert!(err.starts_with("/x/2/y"), "{err}");
        let d: Value = serde_json::from_str(r#"{"x":[1e21,0.5,{"y":"s"}]}"#).expect("json");
        assert!(json_diff(&a, &d).unwrap_err().starts_with("/x/1"));
    }
}
