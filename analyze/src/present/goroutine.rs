//! One goroutine or one group as the listings show it: Delve's summary
//! line, the JSON object of CONTRACT.md (written without building a value
//! tree: 100k goroutines are 140 MB of JSON), and a group's header with its
//! stack once. What a goroutine's location, status and group are is the
//! runtime model's; this module only decides how they read.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use crate::runtime::format::{Group, LocationKind};
use crate::runtime::{Goroutine, Runtime};

/// The bracket of a summary line: `chan receive 3m`, `running`.
fn summary_status(rt: &Runtime<'_>, g: &Goroutine) -> String {
    let mut s = rt.status_string(&g.g);
    let minutes = rt.wait_minutes(&g.g);
    if minutes >= 1 {
        let _ = write!(s, " {minutes}m");
    }
    if g.g.lockedm != 0 {
        s.push_str(", locked to thread");
    }
    s
}

/// Delve-style summary line:
/// `  Goroutine 41 - User: main.go:233 main.handle (0x4a1b53) [chan receive 3m]`.
pub fn summary_line(rt: &Runtime<'_>, g: &Goroutine, kind: LocationKind, labels: bool) -> String {
    let marker = if g.thread.is_some() && g.g.status() == crate::runtime::goroutine::G_RUNNING {
        '*'
    } else {
        ' '
    };
    let mut s = format!("{marker} Goroutine {} - {}: ", g.g.goid, kind.label());
    match rt.location(g, kind) {
        Some(l) => {
            let _ = write!(s, "{}:{} {} ({:#x})", l.file, l.line, l.func, l.pc);
        }
        None => s.push('?'),
    }
    if let Some(tid) = g.thread {
        let _ = write!(s, " (thread {tid})");
    }
    let _ = write!(s, " [{}]", summary_status(rt, g));
    if labels {
        let l = rt.labels(&g.g);
        if !l.is_empty() {
            let text: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let _ = write!(s, " labels{{{}}}", text.join(", "));
        } else if rt.labels_redacted(&g.g) {
            s.push_str(" labels{<redacted>}");
        }
    }
    s
}

/// A goroutine exactly as Delve's terminal lists it (`formatGoroutine`
/// with the user location), as `print CH` lists the goroutines waiting on a
/// channel: `Goroutine 7 - User: /src/main.go:12 main.f (0x4a1b53) [chan
/// receive]`. Delve writes the wait reason only for a waiting goroutine or
/// one in a system call, then `waitsince` as the raw nanotime when set.
pub fn delve_goroutine_line(rt: &Runtime<'_>, g: &Goroutine) -> String {
    let mut s = format!("Goroutine {} - User: ", g.g.goid);
    match rt.location(g, LocationKind::User) {
        Some(l) => {
            let _ = write!(s, "{}:{} {} ({:#x})", l.file, l.line, l.func, l.pc);
        }
        None => s.push_str("?:-1 ? (0x0)"),
    }
    if let Some(tid) = g.thread {
        let _ = write!(s, " (thread {tid})");
    }
    let st = g.g.status();
    let waiting =
        st == crate::runtime::goroutine::G_WAITING || st == crate::runtime::goroutine::G_SYSCALL;
    if waiting && g.g.wait_reason != 0 {
        let _ = write!(s, " [{}", rt.wait_reason_text(g.g.wait_reason));
        if g.g.waitsince > 0 {
            let _ = write!(s, " {}", g.g.waitsince);
        }
        s.push(']');
    }
    s
}

/// The CONTRACT JSON object of one goroutine.
pub fn goroutine_json(rt: &Runtime<'_>, g: &Goroutine) -> Value {
    serde_json::to_value(goroutine_record(rt, g)).unwrap_or(Value::Null)
}

/// The CONTRACT JSON object of one goroutine, serialized: the same
/// bytes as [`goroutine_json`] without building a tree.
pub fn goroutine_json_bytes(rt: &Runtime<'_>, g: &Goroutine) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&goroutine_record(rt, g))
}

fn goroutine_record<'s>(rt: &'s Runtime<'_>, g: &'s Goroutine) -> GoroutineRecord<'s> {
    let frames = g
        .logical
        .iter()
        .filter_map(|lf| {
            let pf = g.frames.get(lf.phys)?;
            Some(FrameRecord {
                file: &lf.file,
                func: &lf.name,
                inlined: lf.inlined,
                line: lf.line,
                pc: Hex(pf.pc),
            })
        })
        .collect();
    let created_by =
        crate::present::created_by(rt, &g.g).map(|(func, file, line, _)| CreatedByRecord {
            file,
            func,
            goid: g.g.parent_goid,
            line,
        });
    let loc = |k| {
        rt.location(g, k).map(|l| LocationRecord {
            file: l.file,
            func: l.func,
            line: l.line,
            pc: Hex(l.pc),
        })
    };
    GoroutineRecord {
        address: Hex(g.g.addr),
        created_by,
        frames,
        go_location: loc(LocationKind::Go),
        header_status: rt.status_string(&g.g),
        id: g.g.goid,
        labels: rt.labels(&g.g).into_iter().collect(),
        locked_to_thread: g.g.lockedm != 0,
        parent_goid: g.g.parent_goid,
        start_location: loc(LocationKind::Start),
        status: rt.status_text(g.g.status()),
        system: g.system,
        thread: g.thread,
        wait_minutes: rt.wait_minutes(&g.g),
        wait_reason: (g.g.wait_reason != 0).then(|| rt.wait_reason_text(g.g.wait_reason)),
    }
}

/// Text of one group: a count header, then the stack once.
pub fn group_text(rt: &Runtime<'_>, group: &Group) -> String {
    let first = &group.exemplar;
    let n = group.goids.len();
    let mut s = format!(
        "{n} goroutine{} [{}",
        if n == 1 { "" } else { "s" },
        rt.status_string(&first.g)
    );
    match group.minutes {
        (0, 0) => {}
        (a, b) if a == b => {
            let _ = write!(s, ", {a} minutes");
        }
        (a, b) => {
            let _ = write!(s, ", {a}-{b} minutes");
        }
    }
    s.push_str("]: ");
    let ids: Vec<String> = group.goids.iter().take(10).map(u64::to_string).collect();
    s.push_str(&ids.join(" "));
    if n > 10 {
        let _ = write!(s, " ... ({} more)", n - 10);
    }
    s.push('\n');
    let block = crate::present::go_traceback(rt, first);
    // Skip the per-goroutine header line of the block.
    for line in block.lines().skip(1) {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// JSON of one group.
pub fn group_json(rt: &Runtime<'_>, group: &Group) -> Value {
    let mut v = goroutine_json(rt, &group.exemplar);
    if let Value::Object(o) = &mut v {
        o.insert("count".into(), json!(group.goids.len()));
        o.insert("goroutines".into(), json!(group.goids));
        o.insert("wait_minutes_min".into(), json!(group.minutes.0));
        o.insert("wait_minutes_max".into(), json!(group.minutes.1));
    }
    v
}

/// A number serialized as a `0x...` string.
#[derive(Debug, Clone, Copy)]
struct Hex(u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

// Fields of the records below are in byte order of their names: the
// output must stay identical to a `serde_json::Value` object (sorted keys).

/// One goroutine as CONTRACT.md's JSON object, plus extra keys.
#[derive(Serialize)]
struct GoroutineRecord<'s> {
    address: Hex,
    created_by: Option<CreatedByRecord>,
    frames: Vec<FrameRecord<'s>>,
    go_location: Option<LocationRecord>,
    header_status: String,
    id: u64,
    labels: BTreeMap<String, String>,
    locked_to_thread: bool,
    parent_goid: u64,
    start_location: Option<LocationRecord>,
    status: &'static str,
    system: bool,
    thread: Option<u32>,
    wait_minutes: i64,
    wait_reason: Option<&'s str>,
}

#[derive(Serialize)]
struct FrameRecord<'s> {
    file: &'s str,
    func: &'s str,
    inlined: bool,
    line: u32,
    pc: Hex,
}

#[derive(Serialize)]
struct CreatedByRecord {
    file: String,
    func: String,
    goid: u64,
    line: u32,
}

#[derive(Serialize)]
struct LocationRecord {
    file: String,
    func: String,
    line: u32,
    pc: Hex,
}

#[cfg(test)]
mod tests {
    use super::{CreatedByRecord, FrameRecord, GoroutineRecord, Hex, LocationRecord};

    #[test]
    fn goroutine_record_serializes_like_a_sorted_value() {
        let record = GoroutineRecord {
            address: Hex(0xc000001),
            created_by: Some(CreatedByRecord {
                file: "/src/main.go".into(),
                func: "main.main".into(),
                goid: 1,
                line: 12,
            }),
            frames: vec![FrameRecord {
                file: "/src/main.go",
                func: "main.f",
                inlined: true,
                line: 3,
                pc: Hex(0x4a1b53),
            }],
            go_location: Some(LocationRecord {
                file: "/src/main.go".into(),
                func: "main.main".into(),
                line: 12,
                pc: Hex(0x4a0000),
            }),
            header_status: "chan receive, 3 minutes".into(),
            id: 41,
            labels: [("tenant".to_string(), "a\"cme".to_string())]
                .into_iter()
                .collect(),
            locked_to_thread: false,
            parent_goid: 1,
            start_location: None,
            status: "waiting",
            system: false,
            thread: Some(12345),
            wait_minutes: 3,
            wait_reason: Some("chan receive"),
        };
        let direct = serde_json::to_string(&record).expect("record");
        let value = serde_json::to_value(&record).expect("value");
        assert_eq!(direct, value.to_string());
        assert!(direct.contains(r#""pc":"0x4a1b53""#), "{direct}");
    }
}
