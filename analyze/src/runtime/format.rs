//! Printing goroutines: Delve-style one-line summaries, the JSON of
//! CONTRACT.md, grouping by identical stack, and filters.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::frames_of;
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
            }
        }
        s
    }

    /// The CONTRACT JSON object of one goroutine.
    pub fn goroutine_json(&self, g: &Goroutine) -> Value {
        let frames: Vec<Value> = frames_of(g)
            .iter()
            .map(|f| {
                json!({
                    "func": f.function,
                    "file": f.file,
                    "line": f.line,
                    "pc": format!("{:#x}", f.pc),
                    "inlined": f.inlined,
                })
            })
            .collect();
        let created_by = self
            .created_by(&g.g)
            .map(|(func, file, line, _)| {
                json!({"func": func, "file": file, "line": line, "goid": g.g.parent_goid})
            })
            .unwrap_or(Value::Null);
        let mut labels = Map::new();
        for (k, v) in self.labels(&g.g) {
            labels.insert(k, Value::String(v));
        }
        let status = self.status_text(g.g.status());
        let wait_reason = if g.g.wait_reason != 0 {
            Value::String(self.wait_reason_text(g.g.wait_reason).to_string())
        } else {
            Value::Null
        };
        let loc = |k| {
            self.location(g, k)
                .map(|l| json!({"func": l.func, "file": l.file, "line": l.line, "pc": format!("{:#x}", l.pc)}))
                .unwrap_or(Value::Null)
        };
        json!({
            "id": g.g.goid,
            "status": status,
            "wait_reason": wait_reason,
            "wait_minutes": self.wait_minutes(&g.g),
            "locked_to_thread": g.g.lockedm != 0,
            "thread": g.thread,
            "system": g.system,
            "frames": frames,
            "created_by": created_by,
            "labels": labels,
            "header_status": self.status_string(&g.g),
            "parent_goid": g.g.parent_goid,
            "address": format!("{:#x}", g.g.addr),
            "go_location": loc(LocationKind::Go),
            "start_location": loc(LocationKind::Start),
        })
    }
}

/// Status text and visible frames (function, file, line) shared by a group.
type GroupKey = (String, Vec<(String, String, u32)>);

/// Goroutines with the same status text and the same visible stack.
#[derive(Debug, Clone)]
pub struct Group<'g> {
    /// Members, in listing order.
    pub members: Vec<&'g Goroutine>,
    /// Shortest and longest wait in minutes.
    pub minutes: (i64, i64),
}

impl Runtime<'_> {
    /// Groups goroutines by (status text, visible frames with file:line),
    /// biggest group first, ties by first goroutine id.
    pub fn group<'g>(&self, list: &[&'g Goroutine]) -> Vec<Group<'g>> {
        let mut index: HashMap<GroupKey, usize> = HashMap::new();
        let mut groups: Vec<Group<'g>> = Vec::new();
        for g in list {
            let frames = self
                .visible_frames(g)
                .into_iter()
                .filter_map(|i| g.logical.get(i))
                .map(|lf| (lf.name.to_string(), lf.file.to_string(), lf.line))
                .collect();
            let key = (self.status_string(&g.g), frames);
            let m = self.wait_minutes(&g.g);
            match index.get(&key) {
                Some(&i) => {
                    if let Some(gr) = groups.get_mut(i) {
                        gr.members.push(g);
                        gr.minutes = (gr.minutes.0.min(m), gr.minutes.1.max(m));
                    }
                }
                None => {
                    index.insert(key, groups.len());
                    groups.push(Group {
                        members: vec![g],
                        minutes: (m, m),
                    });
                }
            }
        }
        groups.sort_by(|a, b| {
            b.members
                .len()
                .cmp(&a.members.len())
                .then_with(|| a.members[0].g.goid.cmp(&b.members[0].g.goid))
        });
        groups
    }

    /// Text of one group: a count header, then the stack once.
    pub fn group_text(&self, group: &Group<'_>) -> String {
        let Some(first) = group.members.first() else {
            return String::new();
        };
        let n = group.members.len();
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
        let ids: Vec<String> = group
            .members
            .iter()
            .take(10)
            .map(|g| g.g.goid.to_string())
            .collect();
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
    pub fn group_json(&self, group: &Group<'_>) -> Value {
        let Some(first) = group.members.first() else {
            return Value::Null;
        };
        let mut v = self.goroutine_json(first);
        if let Value::Object(o) = &mut v {
            o.insert("count".into(), json!(group.members.len()));
            o.insert(
                "goroutines".into(),
                json!(group.members.iter().map(|g| g.g.goid).collect::<Vec<_>>()),
            );
            o.insert("wait_minutes_min".into(), json!(group.minutes.0));
            o.insert("wait_minutes_max".into(), json!(group.minutes.1));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::is_private_runtime;

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
