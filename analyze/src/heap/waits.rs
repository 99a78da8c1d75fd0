//! The wait-for graph: each blocked goroutine → the channel or sync
//! primitive it waits on → the other goroutines whose stacks reach that
//! primitive (candidate senders, receivers, holders: Go records no mutex
//! owner, so "reaches it" is the evidence there is).
//!
//! Wait objects come from [`super::leaks::waits`]. Reach is computed per
//! goroutine by a bounded mark from its stack alone, scanned with stack
//! maps as the leak detector scans it ([`super::stacks`]) (at most
//! [`MAX_REACH_PER_GOROUTINE`] heap objects). The blocked goroutines'
//! sudogs are opaque to it: their `c`/`elem` words are hidden so that a
//! channel's wait queue does not make every waiter reach every other
//! waiter's channel, and their queue links (`next`, `prev`, `waitlink`,
//! the treap's `parent`, `g`) so that a waiter does not reach every other
//! waiter of its queue; without them, 10,000 goroutines waiting on one
//! mutex each marked the bound's worth of sudogs and goroutines, about
//! four seconds per thousand. A primitive outside the heap (a global) is
//! reached when a stack word (any word from the innermost SP up)
//! points within [`NEAR_GLOBAL`] bytes of it.
//!
//! Cycles: strongly connected components of two or more goroutines, all
//! blocked, in the graph "G waits on an object G' reaches" are reported as
//! likely deadlocks (nobody outside the cycle can reach what they wait for
//! only through the stacks; the leak detector says whether anyone can at all).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::Result;
use crate::runtime::Goroutine;

use crate::value::frame::FrameSlotFinder;

use super::graph::Marker;
use super::leaks::{stack_range, waits, WaitKind};
use super::HeapModel;

/// Bound on heap objects one goroutine's reach visits.
pub const MAX_REACH_PER_GOROUTINE: u64 = 8192;
/// Goroutines whose reach is computed; past this only blocked ones are.
pub const MAX_REACH_GOROUTINES: usize = 20_000;
/// A stack word within this many bytes of a non-heap primitive reaches it.
pub const NEAR_GLOBAL: u64 = 64;

/// One blocked goroutine's wait on one object.
#[derive(Debug, Clone)]
pub struct WaitEdge {
    /// The waiting goroutine.
    pub waiter: u64,
    /// Its wait reason.
    pub reason: String,
    /// The object waited on (`hchan`, or a semaphore/notifyList address).
    pub object: u64,
    /// What the object is (`chan int`, `sync.Mutex`, ...).
    pub object_kind: String,
    /// The heap object containing it and that object's type, when known.
    pub container: Option<(u64, Option<String>)>,
    /// The global variable containing it, when it is not in the heap.
    pub global: Option<String>,
    /// The waiter's own frame variable that names it (see [`name_in_frames`]).
    pub variable: Option<FrameVariable>,
    /// The goroutines whose stacks reach the object, shared by every edge
    /// to it (so many waiters on one object cost one list), sorted; it can
    /// include the waiter itself: [`WaitEdge::others`] leaves it out.
    pub reached_by: Arc<[u64]>,
}

/// A frame variable: the logical frame index (as `bt` numbers frames) and
/// `function.variable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameVariable {
    /// Logical frame index of the waiter.
    pub frame: u32,
    /// `main.lockBoth.second`.
    pub name: String,
}

/// Bytes of one frame variable read to look for a pointer to the object.
const MAX_VARIABLE_BYTES: u64 = 256;

/// The variable of one of `g`'s own frames (innermost first; not the
/// runtime's, `sync`'s or `internal/`'s, whose parameters name every
/// primitive) that holds `object` (a primitive on the stack) or a pointer
/// to it or to `container`, the heap object holding it (`s.mu.Lock()`
/// names `s`).
fn name_in_frames(
    finder: &mut FrameSlotFinder<'_>,
    mem: &dyn crate::memory::Memory,
    g: &Goroutine,
    object: u64,
    container: Option<u64>,
) -> Option<FrameVariable> {
    for (i, l) in g.logical.iter().enumerate() {
        let func = &*l.name;
        if func.starts_with("runtime.")
            || func.starts_with("sync.")
            || func.starts_with("internal/")
        {
            continue;
        }
        let Some(pf) = g.frames.get(l.phys) else {
            continue;
        };
        let stack = g.g.stack_lo..g.g.stack_hi;
        for s in finder.slots((pf.pc, pf.sym_pc), l.inline_depth, pf.fp, stack) {
            let holds = s.addr <= object && object - s.addr < s.size;
            let points = || {
                let len = s.size.min(MAX_VARIABLE_BYTES) as usize;
                mem.read_vec(s.addr, len).is_ok_and(|b| {
                    b.chunks_exact(8).any(|w| {
                        let p = u64::from_le_bytes(w.try_into().unwrap_or_default());
                        p == object || Some(p) == container
                    })
                })
            };
            if holds || points() {
                return Some(FrameVariable {
                    frame: u32::try_from(i).unwrap_or(u32::MAX),
                    name: format!("{func}.{}", s.name),
                });
            }
        }
    }
    None
}

/// Goroutines listed per edge in the text, JSON and dot outputs (the
/// count is always given): a channel with thousands of waiters would
/// otherwise list every one of them for every one of them.
pub const MAX_LISTED_REACHERS: usize = 100;

impl WaitEdge {
    /// The other goroutines whose stacks reach the object.
    pub fn others(&self) -> impl Iterator<Item = u64> + '_ {
        let waiter = self.waiter;
        self.reached_by
            .iter()
            .copied()
            .filter(move |&g| g != waiter)
    }

    /// How many [`WaitEdge::others`] there are (`reached_by` is sorted).
    pub fn others_count(&self) -> usize {
        let own = self.reached_by.binary_search(&self.waiter).is_ok();
        self.reached_by.len() - usize::from(own)
    }
}

/// The wait-for graph.
#[derive(Debug, Clone, Default)]
pub struct WaitGraph {
    /// Every wait edge.
    pub edges: Vec<WaitEdge>,
    /// Goroutines blocked forever by construction (`select {}`, nil channels).
    pub never: Vec<(u64, String)>,
    /// Cycles of blocked goroutines: likely deadlocks.
    pub cycles: Vec<Vec<u64>>,
    /// Whether some reach was cut by a bound (the graph may miss edges).
    pub truncated: bool,
    /// Goroutines the leak detector finds leaked (see [`super::leaks`]).
    pub leaked: Vec<u64>,
}

fn sync_kind(reason: &str) -> &'static str {
    match reason {
        "sync.Mutex.Lock" => "sync.Mutex",
        "sync.RWMutex.RLock" | "sync.RWMutex.Lock" => "sync.RWMutex",
        "sync.Cond.Wait" => "sync.Cond",
        "sync.WaitGroup.Wait" | "semacquire" => "sync.WaitGroup",
        _ => "semaphore",
    }
}

/// Builds the wait-for graph of `gs`.
pub fn wait_graph(model: &HeapModel<'_, '_>, gs: &[Goroutine]) -> Result<WaitGraph> {
    let ws = waits(model, gs)?;
    let mem = model.mem();
    let mut types = model.types();
    let elemtype = model.layout.hchan.opt("elemtype");
    let mut hidden_words = model.layout.sudog_hidden_words();
    hidden_words.extend(model.layout.sudog_link_words());
    let sudogs: Vec<u64> = ws.iter().flat_map(|w| w.sudogs.iter().copied()).collect();
    let mut graph = WaitGraph::default();
    // Objects waited on, by address.
    let objects: HashSet<u64> = ws.iter().flat_map(|w| w.objects.iter().copied()).collect();
    // Reach of each goroutine, restricted to the waited-on objects: heap
    // objects by the slot that holds them, the others (globals) sorted for
    // the stack-word search. Everything shared by the goroutines' walks is
    // built once, so the cost is one bounded walk per goroutine.
    let mut by_slot: HashMap<(u32, u64), Vec<u64>> = HashMap::new();
    let mut outside: Vec<u64> = Vec::new();
    for &o in &objects {
        match model.heap.object_of(o) {
            Some((idx, slot)) => by_slot.entry((idx as u32, slot)).or_default().push(o),
            None if model.heap.span_of(o).is_none() => outside.push(o),
            None => {}
        }
    }
    outside.sort_unstable();
    let hidden = {
        let mut m = Marker::bounded(model, 0);
        for &s in &sudogs {
            for &o in &hidden_words {
                m.hide(s.wrapping_add(o));
            }
        }
        m.share_hidden()
    };
    let mut reached_lists: HashMap<u64, Vec<u64>> = HashMap::new();
    // One marker for every walk: what it reads of the heap is kept.
    let mut m = Marker::bounded(model, MAX_REACH_PER_GOROUTINE);
    m.set_hidden(hidden);
    for (i, g) in gs.iter().enumerate() {
        let blocked = ws.get(i).is_some_and(|w| w.kind != WaitKind::Runnable);
        if i >= MAX_REACH_GOROUTINES && !blocked {
            graph.truncated = true;
            continue;
        }
        m.restart();
        m.scan_goroutine(g);
        m.drain();
        let (lo, hi) = stack_range(g);
        graph.truncated |= m.exhausted;
        let goid = g.g.goid;
        let mut found: Vec<u64> = Vec::new();
        m.for_each_marked(|idx, slot| {
            if let Some(os) = by_slot.get(&(idx, slot)) {
                found.extend_from_slice(os);
            }
        });
        found.extend(near_words(mem, lo, hi, &outside));
        found.sort_unstable();
        found.dedup();
        for o in found {
            reached_lists.entry(o).or_default().push(goid);
        }
    }
    // Objects outside the heap are named once each, however many wait on them.
    let mut globals: HashMap<u64, Option<String>> = HashMap::new();
    let prog = model.program();
    let mut finder = prog.as_ref().map(FrameSlotFinder::new);
    let reached: HashMap<u64, Arc<[u64]>> = reached_lists
        .into_iter()
        .map(|(o, mut v)| {
            v.sort_unstable();
            (o, Arc::from(v))
        })
        .collect();
    for w in &ws {
        let Some(g) = gs.get(w.index) else { continue };
        let goid = g.g.goid;
        match w.kind {
            WaitKind::Runnable => continue,
            WaitKind::Never if w.objects.is_empty() => {
                graph.never.push((goid, w.reason.clone()));
                continue;
            }
            _ => {}
        }
        for &o in &w.objects {
            let object_kind = if w.kind == WaitKind::Chan {
                elemtype
                    .and_then(|off| mem.read_u64(o.wrapping_add(off)).ok())
                    .and_then(|t| types.get(t))
                    .map(|t| format!("chan {}", t.name))
                    .unwrap_or_else(|| "chan".to_string())
            } else {
                sync_kind(&w.reason).to_string()
            };
            let container = model.heap.object_of(o).and_then(|(idx, slot)| {
                let s = model.heap.spans.get(idx)?;
                let base = s.object(slot);
                let ty = if s.has_header(model.layout.minor) {
                    mem.read_u64(base)
                        .ok()
                        .and_then(|h| types.get(h))
                        .map(|t| t.name.clone())
                } else if s.sizeclass() == 0 && s.large_type != 0 {
                    types.get(s.large_type).map(|t| t.name.clone())
                } else {
                    None
                };
                Some((base, ty))
            });
            let global = if container.is_none() {
                globals
                    .entry(o)
                    .or_insert_with(|| global_name(model, o))
                    .clone()
            } else {
                None
            };
            let variable = match (&global, finder.as_mut()) {
                (None, Some(f)) => name_in_frames(f, mem, g, o, container.as_ref().map(|c| c.0)),
                _ => None,
            };
            let reached_by = reached.get(&o).cloned().unwrap_or_else(|| Arc::from([]));
            graph.edges.push(WaitEdge {
                waiter: goid,
                reason: w.reason.clone(),
                object: o,
                object_kind,
                container,
                global,
                variable,
                reached_by,
            });
        }
    }
    let leaked: HashSet<u64> = super::leaks::find_leaks(model, gs)?
        .leaked
        .iter()
        .map(|l| l.id)
        .collect();
    graph.cycles = cycles(&graph.edges, &leaked);
    graph.leaked = leaked.into_iter().collect();
    graph.leaked.sort_unstable();
    Ok(graph)
}

/// Of `outside` (waited-on objects outside the heap, sorted), those that a
/// word of the stack `[lo, hi)` points at or shortly below.
fn near_words(mem: &dyn crate::memory::Memory, lo: u64, hi: u64, outside: &[u64]) -> Vec<u64> {
    let mut found = Vec::new();
    if outside.is_empty() || hi <= lo || hi - lo > super::graph::MAX_STACK_BYTES {
        return found;
    }
    let Ok(buf) = mem.read_vec(lo, (hi - lo) as usize) else {
        return found;
    };
    for chunk in buf.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let p = u64::from_le_bytes(w);
        // The objects in [p, p + NEAR_GLOBAL).
        let from = outside.partition_point(|&o| o < p);
        for &o in outside[from..].iter().take_while(|&&o| o - p < NEAR_GLOBAL) {
            found.push(o);
        }
    }
    found
}

/// The data/bss symbol containing `addr`, if any.
fn global_name(model: &HeapModel<'_, '_>, addr: u64) -> Option<String> {
    let bias = model.rt.target().bias();
    let link = addr.wrapping_sub(bias);
    model
        .rt
        .target()
        .binary()
        .symbols()
        .iter()
        .find(|(_, s)| s.size > 0 && s.addr <= link && link < s.addr.saturating_add(s.size))
        .map(|(n, s)| {
            let off = link - s.addr;
            if off == 0 {
                n.clone()
            } else {
                format!("{n}+{off}")
            }
        })
}

/// Strongly connected components (Tarjan, iterative) of two or more
/// goroutines in "waiter → goroutine that reaches its object", among the
/// goroutines in `stuck` (the leaked ones: a cycle that a goroutine able
/// to run, or a global, can still break is no deadlock).
///
/// The graph is walked with the objects as nodes between the goroutines
/// (waiter → object → each goroutine that reaches it), so its size is the
/// edges plus the reach lists, not their product: 10,000 goroutines that
/// wait on one channel and all reach it are 20,000 arcs, not 10^8. A
/// goroutine reaching the object it waits on itself closes a loop through
/// one goroutine only, which is no cycle.
fn cycles(edges: &[WaitEdge], stuck: &HashSet<u64>) -> Vec<Vec<u64>> {
    /// A node: a stuck goroutine, or an object some stuck goroutine waits on.
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    enum Node {
        G(u64),
        O(u64),
    }
    let mut ids: HashMap<Node, usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut id = |n: Node, nodes: &mut Vec<Node>| -> usize {
        *ids.entry(n).or_insert_with(|| {
            nodes.push(n);
            nodes.len() - 1
        })
    };
    let mut arcs: Vec<(usize, usize)> = Vec::new();
    let mut objects_done: HashSet<u64> = HashSet::new();
    let mut waiters: Vec<u64> = edges
        .iter()
        .map(|e| e.waiter)
        .filter(|w| stuck.contains(w))
        .collect();
    waiters.sort_unstable();
    waiters.dedup();
    for &w in &waiters {
        id(Node::G(w), &mut nodes);
    }
    let is_waiter = |g: u64| waiters.binary_search(&g).is_ok();
    for e in edges.iter().filter(|e| is_waiter(e.waiter)) {
        let g = id(Node::G(e.waiter), &mut nodes);
        let o = id(Node::O(e.object), &mut nodes);
        arcs.push((g, o));
        // Every edge to one object shares its reach list: once per object.
        if objects_done.insert(e.object) {
            for r in e.reached_by.iter().copied().filter(|&r| is_waiter(r)) {
                let r = id(Node::G(r), &mut nodes);
                arcs.push((o, r));
            }
        }
    }
    // Successors in one array (CSR): node v's are succ[start[v]..start[v + 1]].
    arcs.sort_unstable();
    arcs.dedup();
    let n = nodes.len();
    let mut start = vec![0usize; n + 1];
    for &(v, _) in &arcs {
        start[v + 1] += 1;
    }
    for v in 0..n {
        start[v + 1] += start[v];
    }
    let succ: Vec<usize> = arcs.iter().map(|&(_, w)| w).collect();

    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, position of its next successor in `succ`)
        let mut call: Vec<(usize, usize)> = vec![(root, start[root])];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if *pos < start[v + 1] {
                let w = succ[*pos];
                *pos += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, start[w]));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    if let Node::G(g) = nodes[w] {
                        comp.push(g);
                    }
                    if w == v {
                        break;
                    }
                }
                if comp.len() >= 2 {
                    comp.sort_unstable();
                    out.push(comp);
                }
            }
        }
    }
    out.sort();
    out
}

impl WaitEdge {
    /// What the object is and where it lives: `sync.Mutex 0x.. in
    /// main.muBox at 0x..`, `chan int 0x.. (global main.jobs)`.
    pub fn object_text(&self) -> String {
        let mut s = format!("{} 0x{:x}", self.object_kind, self.object);
        if let Some((base, ty)) = &self.container {
            match ty {
                Some(t) => s.push_str(&format!(" in {t} at 0x{base:x}")),
                None => s.push_str(&format!(" in heap object 0x{base:x}")),
            }
        }
        if let Some(g) = &self.global {
            s.push_str(&format!(" (global {g})"));
        }
        s
    }

    /// Which of the waiter's own variables names the object: ` (main.f.mu
    /// in frame 2)`, or nothing. A waiter's fact, so not part of
    /// [`WaitEdge::object_text`], which the dot output shares among waiters.
    pub fn variable_text(&self) -> String {
        self.variable
            .as_ref()
            .map(|v| format!(" ({} in frame {})", v.name, v.frame))
            .unwrap_or_default()
    }
}

impl WaitGraph {
    /// Text report.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for e in &self.edges {
            let count = e.others_count();
            let by = if count == 0 {
                "no other goroutine's stack reaches it".to_string()
            } else {
                let listed: Vec<String> = e
                    .others()
                    .take(MAX_LISTED_REACHERS)
                    .map(|g| g.to_string())
                    .collect();
                let more = count.saturating_sub(listed.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("reached by goroutines {}{more}", listed.join(", "))
            };
            let _ = writeln!(
                s,
                "goroutine {} [{}] waits on {}{}: {by}",
                e.waiter,
                e.reason,
                e.object_text(),
                e.variable_text()
            );
        }
        for (g, r) in &self.never {
            let _ = writeln!(s, "goroutine {g} [{r}] can never be woken");
        }
        if self.cycles.is_empty() {
            let _ = writeln!(s, "no wait cycles");
        } else {
            let _ = writeln!(s, "cycles (likely deadlocks):");
            for c in &self.cycles {
                let ids: Vec<String> = c.iter().map(|g| g.to_string()).collect();
                let _ = writeln!(s, "  goroutines {}", ids.join(" <-> "));
            }
        }
        if self.truncated {
            let _ = writeln!(
                s,
                "note: some goroutines' reach was cut at {MAX_REACH_PER_GOROUTINE} objects or not computed; edges may be missing"
            );
        }
        s
    }

    /// JSON.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "waits": self.edges.iter().map(|e| json!({
                "goroutine": e.waiter,
                "wait_reason": e.reason,
                "object": format!("{:#x}", e.object),
                "kind": e.object_kind,
                "container": e.container.as_ref().map(|(b, t)| json!({"addr": format!("{b:#x}"), "type": t})),
                "global": e.global,
                "variable": e.variable.as_ref().map(|v| json!({"frame": v.frame, "name": v.name})),
                "reached_by": e.others().take(MAX_LISTED_REACHERS).collect::<Vec<_>>(),
                "reached_by_count": e.others_count(),
            })).collect::<Vec<_>>(),
            "never": self.never.iter().map(|(g, r)| json!({"goroutine": g, "wait_reason": r})).collect::<Vec<_>>(),
            "cycles": self.cycles,
            "leaked": self.leaked,
            "truncated": self.truncated,
        })
    }

    /// Graphviz dot: goroutines as boxes, objects as ellipses; cycle members red.
    pub fn dot(&self) -> String {
        use std::fmt::Write as _;
        let in_cycle: HashSet<u64> = self.cycles.iter().flatten().copied().collect();
        let mut s = String::from("digraph waits {\n  rankdir=LR;\n");
        let mut seen_g = HashSet::new();
        let mut seen_o = HashSet::new();
        let mut node_g = |s: &mut String, g: u64| {
            if seen_g.insert(g) {
                let color = if in_cycle.contains(&g) {
                    ",color=red"
                } else {
                    ""
                };
                let _ = writeln!(s, "  g{g} [shape=box,label=\"goroutine {g}\"{color}];");
            }
        };
        for e in &self.edges {
            node_g(&mut s, e.waiter);
            let first = seen_o.insert(e.object);
            if first {
                let _ = writeln!(
                    s,
                    "  o{:x} [shape=ellipse,label=\"{}\"];",
                    e.object,
                    e.object_text().replace('"', "\\\"")
                );
            }
            let _ = writeln!(
                s,
                "  g{} -> o{:x} [label=\"{}\"];",
                e.waiter, e.object, e.reason
            );
            // The object's reachers once per object, not once per waiter.
            if first {
                for r in e.reached_by.iter().copied().take(MAX_LISTED_REACHERS) {
                    node_g(&mut s, r);
                    let _ = writeln!(s, "  o{:x} -> g{r} [style=dashed];", e.object);
                }
            }
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(waiter: u64, object: u64, by: &[u64]) -> WaitEdge {
        WaitEdge {
            waiter,
            reason: "sync.Mutex.Lock".into(),
            object,
            object_kind: "sync.Mutex".into(),
            container: None,
            global: None,
            variable: None,
            reached_by: Arc::from(by),
        }
    }

    #[test]
    fn two_goroutine_cycle_is_found_and_a_chain_is_not() {
        let all: HashSet<u64> = [1, 2, 3, 4].into_iter().collect();
        let e = vec![
            edge(1, 0xa, &[2]),
            edge(2, 0xb, &[1]),
            edge(3, 0xc, &[1, 4]),
        ];
        assert_eq!(cycles(&e, &all), vec![vec![1, 2]]);
        let chain = vec![edge(1, 0xa, &[2]), edge(2, 0xb, &[3])];
        assert!(
            cycles(&chain, &all).is_empty(),
            "3 waits on nothing: no cycle"
        );
        let only_one: HashSet<u64> = [1].into_iter().collect();
        assert!(
            cycles(&e, &only_one).is_empty(),
            "2 can still run: no deadlock"
        );
    }

    #[test]
    fn waiters_of_one_object_that_all_reach_it_are_one_cycle() {
        // Every waiter reaches the object too: each can wake each other.
        let n = 3000u64;
        let all: Arc<[u64]> = (1..=n).collect::<Vec<_>>().into();
        let stuck: HashSet<u64> = (1..=n).collect();
        let edges: Vec<WaitEdge> = (1..=n)
            .map(|g| WaitEdge {
                reached_by: Arc::clone(&all),
                ..edge(g, 0xa, &[])
            })
            .collect();
        assert_eq!(cycles(&edges, &stuck), vec![(1..=n).collect::<Vec<_>>()]);
        assert_eq!(edges[0].others_count(), n as usize - 1);
        assert_eq!(edges[0].others().count(), n as usize - 1);
        // Reaching only the object one waits on oneself is no cycle.
        let alone = vec![edge(1, 0xa, &[1]), edge(2, 0xb, &[2])];
        assert!(cycles(&alone, &stuck).is_empty());
        // A cycle through two objects, beside a goroutine that only waits.
        let two = vec![
            edge(1, 0xa, &[2, 3]),
            edge(2, 0xb, &[1]),
            edge(3, 0xb, &[1]),
            edge(4, 0xa, &[2, 3]),
        ];
        assert_eq!(cycles(&two, &stuck), vec![vec![1, 2, 3]]);
    }
}
