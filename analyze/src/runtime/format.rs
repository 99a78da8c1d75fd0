//! Printing goroutines: Delve-style one-line summaries, the JSON of
//! CONTRACT.md, grouping by identical stack, and filters.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::model::Runtime;
use super::traceback::Goroutine;

/// Bytes of a go-statement wrapper searched for the wrapped call.
const MAX_WRAPPER_CODE: u64 = 1024;
/// Frames Delve looks through for the user location (`maxGoroutineUserCurrentDepth`).
const USER_LOCATION_DEPTH: usize = 30;

/// Which location a summary line shows (Delve's `-u`, `-r`, `-g`, `-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocationKind {
    /// Topmost frame that is not private runtime code.
    #[default]
    User,
    /// Topmost frame.
    Runtime,
    /// The `go` statement that created the goroutine.
    Go,
    /// The goroutine's start function.
    Start,
}

impl LocationKind {
    fn label(self) -> &'static str {
        match self {
            LocationKind::User => "User",
            LocationKind::Runtime => "Runtime",
            LocationKind::Go => "Go",
            LocationKind::Start => "Start",
        }
    }
}

/// A source location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// PC.
    pub pc: u64,
    /// Function name (printed form).
    pub func: String,
    /// File.
    pub file: String,
    /// Line.
    pub line: u32,
}

/// Goroutine filters; every set filter must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Include system goroutines (hidden by default, as `runtime.Stack` hides them).
    pub system: bool,
    /// Substring of the status text (`chan receive`, `IO wait`, `running`).
    pub wait_reason: Option<String>,
    /// Minimum blocked minutes.
    pub min_wait_minutes: Option<i64>,
    /// `key` or `key=value` of a pprof label.
    pub label: Option<String>,
    /// Substring of any frame's function name.
    pub func: Option<String>,
}

/// Delve's notion of private runtime code, for the user location.
fn is_private_runtime(name: &str) -> bool {
    if !name.contains('.') {
        return true;
    }
    if let Some(rest) = name.strip_prefix("runtime.") {
        return rest.starts_with(|c: char| c.is_ascii_lowercase());
    }
    name.starts_with("internal/")
        || name.starts_with("runtime/internal")
        || name.starts_with("iter.")
}

impl Runtime<'_> {
    /// Whether a goroutine passes `filter`.
    pub fn matches(&self, g: &Goroutine, filter: &Filter) -> bool {
        if g.system && !filter.system {
            return false;
        }
        if let Some(w) = &filter.wait_reason {
            if !self.status_string(&g.g).contains(w.as_str()) {
                return false;
            }
        }
        if let Some(min) = filter.min_wait_minutes {
            if self.wait_minutes(&g.g) < min {
                return false;
            }
        }
        if let Some(f) = &filter.func {
            if !g.logical.iter().any(|lf| lf.name.contains(f.as_str())) {
                return false;
            }
        }
        if let Some(l) = &filter.label {
            let labels = self.labels(&g.g);
            let ok = match l.split_once('=') {
                Some((k, v)) => labels.iter().any(|(lk, lv)| lk == k && lv == v),
                None => labels.iter().any(|(lk, _)| lk == l),
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// A location of a goroutine.
    pub fn location(&self, g: &Goroutine, kind: LocationKind) -> Option<Location> {
        let frame_loc = |i: usize| {
            let lf = g.logical.get(i)?;
            let pf = g.frames.get(lf.phys)?;
            Some(Location {
                pc: pf.pc,
                func: self.print_name(&lf.name),
                file: lf.file.to_string(),
                line: lf.line,
            })
        };
        let pc_loc = |pc: u64, back_up: bool| {
            let info = self.pc_info(pc)?;
            let sym = if back_up && pc > info.entry {
                pc - 1
            } else {
                pc
            };
            let s = self.sym_info(sym)?;
            let (_, file, line, _) = s.frames.first()?;
            Some(Location {
                pc,
                func: self.print_name(&info.name),
                file: file.to_string(),
                line: *line,
            })
        };
        match kind {
            LocationKind::Runtime => frame_loc(0),
            LocationKind::User => g
                .logical
                .iter()
                .take(USER_LOCATION_DEPTH)
                .position(|lf| !is_private_runtime(&lf.name))
                .and_then(frame_loc)
                .or_else(|| frame_loc(0)),
            LocationKind::Go => pc_loc(g.g.gopc, true),
            LocationKind::Start => pc_loc(self.unwrap_go_wrapper(g.g.startpc), false),
        }
    }

    /// For a `go f(x)` statement the goroutine starts in a compiler
    /// wrapper (`main.main.gowrap1` since Go 1.22); like Delve, show the
    /// function it calls: the first direct `CALL rel32` to the entry of a
    /// function outside the runtime.
    pub fn unwrap_go_wrapper(&self, startpc: u64) -> u64 {
        let Some(info) = self.pc_info(startpc) else {
            return startpc;
        };
        if !info.name.contains(".gowrap") && !self.is_wrapper_func_id(info.func_id) {
            return startpc;
        }
        let Some(f) = self.tab().find_func(startpc) else {
            return startpc;
        };
        let len = f.end().saturating_sub(f.entry()).min(MAX_WRAPPER_CODE) as usize;
        let Ok(code) = self.mem().read_vec(f.entry(), len) else {
            return startpc;
        };
        for (i, w) in code.windows(5).enumerate() {
            if w[0] != 0xe8 {
                continue;
            }
            let rel = i32::from_le_bytes([w[1], w[2], w[3], w[4]]);
            let next = f.entry().wrapping_add(i as u64 + 5);
            let target = next.wrapping_add_signed(i64::from(rel));
            if let Some(callee) = self.pc_info(target) {
                if callee.entry == target && !callee.name.starts_with("runtime.") {
                    return target;
                }
            }
        }
        startpc
    }

    /// The bracket of a summary line: `chan receive 3m`, `running`.
    fn summary_status(&self, g: &Goroutine) -> String {
        let mut s = self.status_string(&g.g);
        let minutes = self.wait_minutes(&g.g);
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
    pub fn summary_line(&self, g: &Goroutine, kind: LocationKind, labels: bool) -> String {
        let marker = if g.thread.is_some() && g.g.status() == super::goroutine::G_RUNNING {
            '*'
        } else {
            ' '
        };
        let mut s = format!("{marker} Goroutine {} - {}: ", g.g.goid, kind.label());
        match self.location(g, kind) {
            Some(l) => {
                let _ = write!(s, "{}:{} {} ({:#x})", l.file, l.line, l.func, l.pc);
            }
            None => s.push('?'),
        }
        if let Some(tid) = g.thread {
            let _ = write!(s, " (thread {tid})");
        }
        let _ = write!(s, " [{}]", self.summary_status(g));
        if labels {
            let l = self.labels(&g.g);
            if !l.is_empty() {
                let text: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let _ = write!(s, " labels{{{}}}", text.join(", "));
            } else if self.labels_redacted(&g.g) {
                s.push_str(" labels{<redacted>}");
            }
        }
        s
    }

    /// The CONTRACT JSON object of one goroutine.
    pub fn goroutine_json(&self, g: &Goroutine) -> Value {
        serde_json::to_value(self.goroutine_record(g)).unwrap_or(Value::Null)
    }

    /// The CONTRACT JSON object of one goroutine, serialized: the same
    /// bytes as [`Runtime::goroutine_json`] without building a tree.
    pub fn goroutine_json_bytes(&self, g: &Goroutine) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.goroutine_record(g))
    }

    fn goroutine_record<'s>(&'s self, g: &'s Goroutine) -> GoroutineRecord<'s> {
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
        let created_by = self
            .created_by(&g.g)
            .map(|(func, file, line, _)| CreatedByRecord {
                file,
                func,
                goid: g.g.parent_goid,
                line,
            });
        let loc = |k| {
            self.location(g, k).map(|l| LocationRecord {
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
            header_status: self.status_string(&g.g),
            id: g.g.goid,
            labels: self.labels(&g.g).into_iter().collect(),
            locked_to_thread: g.g.lockedm != 0,
            parent_goid: g.g.parent_goid,
            start_location: loc(LocationKind::Start),
            status: self.status_text(g.g.status()),
            system: g.system,
            thread: g.thread,
            wait_minutes: self.wait_minutes(&g.g),
            wait_reason: (g.g.wait_reason != 0).then(|| self.wait_reason_text(g.g.wait_reason)),
        }
    }
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

/// What goroutines of one group share: the status text and the visible
/// frames (function, file, line).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    status: String,
    frames: Vec<(Arc<str>, Arc<str>, u32)>,
}

/// Goroutines with the same status text and the same visible stack.
#[derive(Debug, Clone)]
pub struct Group {
    /// The first member, in listing order: its stack is the group's.
    pub exemplar: Goroutine,
    /// Ids of every member, in listing order.
    pub goids: Vec<u64>,
    /// Shortest and longest wait in minutes.
    pub minutes: (i64, i64),
}

/// Builds groups one goroutine at a time, keeping only the id of every
/// member but the first: 1M goroutines cost 8 MB of ids, not 1M stacks.
#[derive(Debug, Default)]
pub struct Grouper {
    index: HashMap<GroupKey, usize>,
    groups: Vec<Group>,
    members: usize,
}

impl Grouper {
    /// Adds `g` (with its key from [`Runtime::group_key`] and its wait
    /// minutes) to its group; goroutines must come in listing order.
    pub fn add(&mut self, key: GroupKey, minutes: i64, g: Goroutine) {
        self.members += 1;
        if let Some(group) = self.index.get(&key).and_then(|&i| self.groups.get_mut(i)) {
            group.goids.push(g.g.goid);
            group.minutes = (group.minutes.0.min(minutes), group.minutes.1.max(minutes));
            return;
        }
        self.index.insert(key, self.groups.len());
        self.groups.push(Group {
            goids: vec![g.g.goid],
            exemplar: g,
            minutes: (minutes, minutes),
        });
    }

    /// Goroutines added so far.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The groups, biggest first, ties by first goroutine id.
    pub fn finish(self) -> Vec<Group> {
        let mut groups = self.groups;
        groups.sort_by(|a, b| {
            b.goids
                .len()
                .cmp(&a.goids.len())
                .then_with(|| a.exemplar.g.goid.cmp(&b.exemplar.g.goid))
        });
        groups
    }
}

impl Runtime<'_> {
    /// The grouping key of a goroutine: status text and visible frames.
    pub fn group_key(&self, g: &Goroutine) -> GroupKey {
        let frames = self
            .visible_frames(g)
            .into_iter()
            .filter_map(|i| g.logical.get(i))
            .map(|lf| (lf.name.clone(), lf.file.clone(), lf.line))
            .collect();
        GroupKey {
            status: self.status_string(&g.g),
            frames,
        }
    }

    /// Text of one group: a count header, then the stack once.
    pub fn group_text(&self, group: &Group) -> String {
        let first = &group.exemplar;
        let n = group.goids.len();
        let mut s = format!(
            "{n} goroutine{} [{}",
            if n == 1 { "" } else { "s" },
            self.status_string(&first.g)
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
        let block = self.go_traceback(first);
        // Skip the per-goroutine header line of the block.
        for line in block.lines().skip(1) {
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// JSON of one group.
    pub fn group_json(&self, group: &Group) -> Value {
        let mut v = self.goroutine_json(&group.exemplar);
        if let Value::Object(o) = &mut v {
            o.insert("count".into(), json!(group.goids.len()));
            o.insert("goroutines".into(), json!(group.goids));
            o.insert("wait_minutes_min".into(), json!(group.minutes.0));
            o.insert("wait_minutes_max".into(), json!(group.minutes.1));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{
        is_private_runtime, CreatedByRecord, FrameRecord, GoroutineRecord, GroupKey, Grouper, Hex,
        LocationRecord,
    };
    use crate::runtime::{Goroutine, G};

    fn goroutine(goid: u64) -> Goroutine {
        Goroutine {
            g: G {
                goid,
                ..G::default()
            },
            thread: None,
            system: false,
            frames: Vec::new(),
            logical: Arc::from(Vec::new()),
        }
    }

    fn key(status: &str, func: &str) -> GroupKey {
        GroupKey {
            status: status.to_string(),
            frames: vec![(Arc::from(func), Arc::from("/src/main.go"), 7)],
        }
    }

    #[test]
    fn grouper_keeps_ids_in_order_and_sorts_biggest_first() {
        let mut grouper = Grouper::default();
        grouper.add(key("sleep", "main.a"), 0, goroutine(1));
        grouper.add(key("chan receive", "main.b"), 3, goroutine(5));
        grouper.add(key("chan receive", "main.b"), 1, goroutine(6));
        grouper.add(key("sleep", "main.b"), 0, goroutine(7));
        grouper.add(key("chan receive", "main.b"), 2, goroutine(9));
        assert_eq!(grouper.members(), 5);
        let groups = grouper.finish();
        let summary: Vec<(u64, Vec<u64>, (i64, i64))> = groups
            .iter()
            .map(|g| (g.exemplar.g.goid, g.goids.clone(), g.minutes))
            .collect();
        assert_eq!(
            summary,
            vec![
                (5, vec![5, 6, 9], (1, 3)),
                (1, vec![1], (0, 0)),
                (7, vec![7], (0, 0)),
            ]
        );
    }

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

    #[test]
    fn private_runtime_matches_delve() {
        assert!(is_private_runtime("runtime.gopark"));
        assert!(is_private_runtime("internal/poll.runtime_pollWait"));
        assert!(is_private_runtime("iter.Pull"));
        assert!(!is_private_runtime("runtime.Gosched"));
        assert!(!is_private_runtime("main.main"));
        assert!(!is_private_runtime("sync.(*Mutex).Lock"));
    }
}
