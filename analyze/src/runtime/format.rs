//! Which goroutines and which of their places: Delve's locations (user,
//! current, go statement, start), the `-with`/`-without` filters, and
//! grouping by identical visible stack. How they read is
//! [`crate::present`]'s.

use std::collections::HashMap;
use std::sync::Arc;

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
    /// The word Delve prints for it: `User`, `Runtime`, `Go`, `Start`.
    pub fn label(self) -> &'static str {
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
        return !rest.starts_with(|c: char| c.is_ascii_uppercase());
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
            // Delve looks at physical frames: a user function inlined into
            // a runtime one does not count, and the name is the physical
            // function's while the line is the innermost inlined call's.
            LocationKind::User => g
                .frames
                .iter()
                .enumerate()
                .take(USER_LOCATION_DEPTH)
                .filter(|(_, pf)| !is_private_runtime(&pf.info.name))
                .find_map(|(phys, pf)| {
                    let lf = g.logical.iter().find(|lf| lf.phys == phys)?;
                    Some(Location {
                        pc: pf.pc,
                        func: self.print_name(&pf.info.name),
                        file: lf.file.to_string(),
                        line: lf.line,
                    })
                })
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{is_private_runtime, GroupKey, Grouper};
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
    fn private_runtime_matches_delve() {
        assert!(is_private_runtime("runtime.gopark"));
        assert!(is_private_runtime("internal/poll.runtime_pollWait"));
        assert!(is_private_runtime("iter.Pull"));
        assert!(!is_private_runtime("runtime.Gosched"));
        assert!(!is_private_runtime("main.main"));
        assert!(!is_private_runtime("sync.(*Mutex).Lock"));
    }
}
