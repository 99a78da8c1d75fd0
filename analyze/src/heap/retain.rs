//! Retention: which root holds how much of the heap (`rdlv heap --by
//! root`) and one path from a root to an object (`rdlv heap --path`).
//!
//! The object graph is the one the collector would trace ([`super::graph`]
//! in recording mode: the same pointer bits, stack maps and stack objects),
//! with every root a node of its own: each package variable (by `.symtab`
//! symbol), each variable of a parked goroutine frame that DWARF places in
//! memory at the frame's PC (`goroutine 41 frame 2 main.handle.buf`: the
//! pointer words inside it, and the stack objects it is or whose pointer it holds),
//! the rest of each frame (by goroutine id and the frame number `bt`
//! prints), and per goroutine what the runtime scans besides its frames.
//! Without DWARF (a stripped binary) frames are roots whole. A top node
//! points at every root. An object's *retained* bytes
//! are those of the objects it dominates (every path from the top passes
//! through it), itself included; a root's retained bytes are what would be
//! freed if that root alone let go. An object two roots reach is retained
//! by neither (its immediate dominator is the top).
//!
//! Dominators are computed with the semi-NCA algorithm (Lengauer-Tarjan
//! semidominators with path compression, then nearest common ancestors
//! walked in preorder), iteratively: no recursion on untrusted depth.
//!
//! Invariants: node 0 is the top; every node the DFS reaches has an
//! immediate dominator that precedes it in preorder; retained bytes of a
//! node are at least its own size and never exceed the heap scanned.

use std::collections::VecDeque;

use crate::error::{NotFound, Result, Unsupported};
use crate::runtime::Goroutine;

use super::census::{object_type, TypeKey};
use super::graph::{Marker, Node, Recorder, RootKey};
use super::HeapModel;

/// Bound on edges recorded (16 bytes each: 4 GiB of edge lists).
pub const MAX_EDGES: usize = 1 << 28;
/// Roots listed by default in text output.
pub const DEFAULT_TOP_ROOTS: usize = 30;
/// Bound on the length of a retention path printed.
pub const MAX_PATH_LEN: usize = 10_000;

/// The recorded object graph in compressed adjacency form.
pub struct ObjectGraph {
    /// Nodes by id (0 = top).
    pub nodes: Vec<Node>,
    /// Successors of node `i`: `succ[start[i]..start[i + 1]]`.
    start: Vec<u32>,
    succ: Vec<u32>,
    /// Package variable names ([`RootKey::Global`] indexes).
    globals: Vec<String>,
    /// Frame variable names ([`RootKey::Local`] indexes).
    locals: Vec<String>,
    /// Goroutine id -> index in the goroutines the graph was built from
    /// (roots are many, a frame's and its variables': no search by id).
    goroutine_index: std::collections::HashMap<u64, usize>,
    /// Whether nodes were dropped at the node bound (results are then
    /// lower bounds).
    pub truncated: bool,
}

impl ObjectGraph {
    /// Marks the whole heap from every root (globals, every goroutine
    /// stack) and records the graph. With DWARF, the stack variables of
    /// parked frames are roots of their own (see [`Marker::name_frame_slots`]).
    pub fn build(model: &HeapModel<'_, '_>, gs: &[Goroutine]) -> Result<ObjectGraph> {
        let prog = model.program();
        let mut finder = prog.as_ref().map(crate::value::frame::FrameSlotFinder::new);
        let mut m = Marker::recording(model);
        m.scan_globals();
        m.drain();
        for g in gs {
            if let Some(f) = finder.as_mut() {
                m.name_frame_slots(g, f);
            }
            m.scan_goroutine(g);
            m.drain();
        }
        // Not data-dependent: `Marker::recording` always holds a recorder
        // and nothing between here and there takes it.
        let rec = m
            .take_recorder()
            .expect("a recording marker holds its recorder");
        let mut graph = Self::from_recorder(rec)?;
        graph.goroutine_index = gs.iter().enumerate().map(|(i, g)| (g.g.goid, i)).collect();
        Ok(graph)
    }

    fn from_recorder(rec: Recorder) -> Result<ObjectGraph> {
        if rec.edges.len() > MAX_EDGES {
            return Err(Unsupported::TooMany {
                what: "pointers in the object graph",
                count: rec.edges.len() as u64,
                limit: format!("{MAX_EDGES}: too big to compute retention"),
            }
            .into());
        }
        let (start, succ) = adjacency(rec.nodes.len(), || rec.edges.iter().copied());
        Ok(ObjectGraph {
            nodes: rec.nodes,
            start,
            succ,
            globals: rec.globals,
            locals: rec.locals,
            goroutine_index: std::collections::HashMap::new(),
            truncated: rec.truncated,
        })
    }

    /// A graph from explicit nodes and edges (tests).
    #[cfg(test)]
    fn from_edges(nodes: Vec<Node>, edges: Vec<(u32, u32)>) -> ObjectGraph {
        let rec = Recorder::for_test(nodes, edges);
        match Self::from_recorder(rec) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has only the top node.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    fn successors(&self, v: u32) -> &[u32] {
        let v = v as usize;
        match (self.start.get(v), self.start.get(v + 1)) {
            (Some(&a), Some(&b)) => self.succ.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The name of root node `key`, as CONTRACT.md writes roots
    /// (`main.cache`, `goroutine 41 frame 2 main.handle`,
    /// `goroutine 41 frame 2 main.handle.buf`); `gs` are the goroutines
    /// the graph was built from.
    pub fn root_name(&self, key: RootKey, gs: &[Goroutine]) -> String {
        match key {
            RootKey::Global(i) => self
                .globals
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("global #{i}")),
            RootKey::Segment(false) => "data (no symbol)".to_string(),
            RootKey::Segment(true) => "bss (no symbol)".to_string(),
            RootKey::Frame(goid, frame) => {
                let func = self
                    .goroutine_index
                    .get(&goid)
                    .and_then(|&i| gs.get(i))
                    .filter(|g| g.g.goid == goid)
                    .and_then(|g| g.logical.get(frame as usize))
                    .map(|l| l.name.to_string())
                    .unwrap_or_else(|| "?".to_string());
                format!("goroutine {goid} frame {frame} {func}")
            }
            RootKey::Local(goid, frame, name) => {
                let local = self.locals.get(name as usize).map_or("?", String::as_str);
                format!(
                    "{}.{local}",
                    self.root_name(RootKey::Frame(goid, frame), gs)
                )
            }
            RootKey::Goroutine(goid) => format!("goroutine {goid}"),
        }
    }
}

/// Compressed adjacency of `pairs` (from, to) over nodes `0..n`: the
/// targets of node `i` are `targets[start[i]..start[i + 1]]`, in the order
/// given. `pairs` is iterated twice (count, then fill); pairs naming a node
/// at or past `n` are dropped.
fn adjacency<I>(n: usize, pairs: impl Fn() -> I) -> (Vec<u32>, Vec<u32>)
where
    I: Iterator<Item = (u32, u32)>,
{
    let mut start = vec![0u32; n + 1];
    for (from, _) in pairs() {
        if let Some(c) = start.get_mut(from as usize + 1) {
            *c += 1;
        }
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut fill = start.clone();
    let mut targets = vec![0u32; *start.last().unwrap_or(&0) as usize];
    for (from, to) in pairs() {
        if let Some(at) = fill.get_mut(from as usize) {
            if let Some(slot) = targets.get_mut(*at as usize) {
                *slot = to;
                *at += 1;
            }
        }
    }
    (start, targets)
}

/// The dominator tree of an [`ObjectGraph`] and retained sizes.
pub struct Dominators {
    /// Immediate dominator of each node (`u32::MAX`: not reached; the top
    /// is its own).
    pub idom: Vec<u32>,
    /// Retained bytes of each node (0 when not reached).
    pub retained: Vec<u64>,
    /// Objects each node retains (itself included for objects).
    pub retained_objects: Vec<u64>,
}

/// Computes immediate dominators (semi-NCA, see the module docs) and
/// retained bytes; `size(node)` gives a node's own bytes.
pub fn dominators(graph: &ObjectGraph, size: &dyn Fn(Node) -> u64) -> Dominators {
    const NONE: u32 = u32::MAX;
    let n = graph.len();
    // Preorder numbering from the top (1-based; 0 = not reached).
    let mut pre = vec![0u32; n];
    let mut vertex: Vec<u32> = Vec::with_capacity(n + 1);
    vertex.push(NONE);
    let mut parent = vec![0u32; n + 1];
    let mut stack: Vec<(u32, u32)> = vec![(0, 0)];
    while let Some((v, from)) = stack.pop() {
        if pre[v as usize] != 0 {
            continue;
        }
        vertex.push(v);
        let number = (vertex.len() - 1) as u32;
        pre[v as usize] = number;
        parent[number as usize] = from;
        for &w in graph.successors(v).iter().rev() {
            if pre.get(w as usize) == Some(&0) {
                stack.push((w, number));
            }
        }
    }
    let reached = vertex.len() - 1;
    // Predecessors in preorder numbers, for reached nodes only.
    let (pred_start, preds) = adjacency(reached + 1, || {
        (0..n as u32)
            .filter(|&v| pre[v as usize] != 0)
            .flat_map(|v| {
                let pre = &pre;
                graph
                    .successors(v)
                    .iter()
                    .map(move |&w| (pre.get(w as usize).copied().unwrap_or(0), pre[v as usize]))
            })
            .filter(|&(pw, _)| pw != 0)
    });
    // Semidominators (Lengauer-Tarjan, path compression).
    let mut semi: Vec<u32> = (0..=reached as u32).collect();
    let mut label: Vec<u32> = (0..=reached as u32).collect();
    let mut ancestor = vec![0u32; reached + 1];
    let mut path = Vec::new();
    for w in (2..=reached).rev() {
        let (a, b) = (pred_start[w] as usize, pred_start[w + 1] as usize);
        for &v in &preds[a..b] {
            let u = eval(v, &mut ancestor, &mut label, &semi, &mut path);
            if semi[u as usize] < semi[w] {
                semi[w] = semi[u as usize];
            }
        }
        ancestor[w] = parent[w];
    }
    // Immediate dominators (NCA walk in preorder).
    let mut idom_pre = vec![0u32; reached + 1];
    for w in 2..=reached {
        let mut d = parent[w];
        while d > semi[w] {
            d = idom_pre[d as usize];
        }
        idom_pre[w] = d;
    }
    if reached >= 1 {
        idom_pre[1] = 1;
    }
    let mut idom = vec![NONE; n];
    for w in 1..=reached {
        idom[vertex[w] as usize] = vertex[idom_pre[w] as usize];
    }
    // Retained sizes, children before their dominators (reverse preorder).
    let mut retained = vec![0u64; n];
    let mut retained_objects = vec![0u64; n];
    for w in (1..=reached).rev() {
        let v = vertex[w] as usize;
        let node = graph.nodes[v];
        retained[v] = retained[v].saturating_add(size(node));
        if matches!(node, Node::Object(..)) {
            retained_objects[v] += 1;
        }
        if w > 1 {
            let d = idom[v] as usize;
            retained[d] = retained[d].saturating_add(retained[v]);
            retained_objects[d] += retained_objects[v];
        }
    }
    Dominators {
        idom,
        retained,
        retained_objects,
    }
}

/// Lengauer-Tarjan `EVAL` with iterative path compression: the vertex of
/// least semidominator on the forest path above `v` (`v` itself at a
/// forest root).
fn eval(v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<u32>) -> u32 {
    if ancestor[v as usize] == 0 {
        return v;
    }
    path.clear();
    let mut u = v;
    while ancestor[ancestor[u as usize] as usize] != 0 {
        path.push(u);
        u = ancestor[u as usize];
    }
    for &u in path.iter().rev() {
        let a = ancestor[u as usize] as usize;
        if semi[label[a] as usize] < semi[label[u as usize] as usize] {
            label[u as usize] = label[a];
        }
        ancestor[u as usize] = ancestor[a];
    }
    label[v as usize]
}

/// One root's share of the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRetention {
    /// The root as CONTRACT.md names it.
    pub root: String,
    /// Bytes of the objects it dominates.
    pub retained_bytes: u64,
    /// How many objects it dominates.
    pub objects: u64,
}

/// One type's share: the objects of that type no other object of the same
/// type dominates, and everything they dominate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRetention {
    /// The type as the census names it.
    pub key: TypeKey,
    /// Objects of the type reached.
    pub objects: u64,
    /// Bytes retained by them together.
    pub retained_bytes: u64,
}

/// `rdlv heap --by root`: retention per root and per type.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Roots by retained bytes, largest first (roots retaining nothing are left out).
    pub roots: Vec<RootRetention>,
    /// Types by retained bytes, largest first.
    pub types: Vec<TypeRetention>,
    /// Objects reached from the roots.
    pub reachable_objects: u64,
    /// Their bytes.
    pub reachable_bytes: u64,
    /// Reached by two or more roots: retained by none of them alone.
    pub shared_bytes: u64,
    /// The graph was cut at its node bound (figures are lower bounds).
    pub truncated: bool,
}

/// Slot bytes of an object node (0 for roots).
fn node_size(model: &HeapModel<'_, '_>, node: Node) -> u64 {
    match node {
        Node::Object(idx, _) => model.heap.spans.get(idx as usize).map_or(0, |s| s.elemsize),
        _ => 0,
    }
}

/// Computes retention for the whole heap.
pub fn retention(model: &HeapModel<'_, '_>, gs: &[Goroutine]) -> Result<Retention> {
    let graph = ObjectGraph::build(model, gs)?;
    let dom = dominators(&graph, &|node| node_size(model, node));
    let mut out = Retention {
        truncated: graph.truncated,
        ..Retention::default()
    };
    for (v, node) in graph.nodes.iter().enumerate() {
        match *node {
            Node::Root(key) if dom.retained[v] > 0 => out.roots.push(RootRetention {
                root: graph.root_name(key, gs),
                retained_bytes: dom.retained[v],
                objects: dom.retained_objects[v],
            }),
            Node::Object(..) if dom.idom[v] != u32::MAX => {
                out.reachable_objects += 1;
                out.reachable_bytes += node_size(model, *node);
                if dom.idom[v] == 0 {
                    out.shared_bytes += dom.retained[v];
                }
            }
            _ => {}
        }
    }
    out.roots.sort_by(|a, b| {
        b.retained_bytes
            .cmp(&a.retained_bytes)
            .then_with(|| a.root.cmp(&b.root))
    });
    out.types = type_retention(model, &graph, &dom);
    Ok(out)
}

/// Retained bytes per type: a walk of the dominator tree counting, for
/// each type, the objects with no dominator of the same type.
fn type_retention(
    model: &HeapModel<'_, '_>,
    graph: &ObjectGraph,
    dom: &Dominators,
) -> Vec<TypeRetention> {
    let n = graph.len();
    let (type_of, key_list) = object_types(model, graph, dom);
    // Children lists of the dominator tree.
    let (child_start, children) = dominator_children(dom, n);
    let mut active = vec![0u32; key_list.len()];
    let mut objects = vec![0u64; key_list.len()];
    let mut bytes = vec![0u64; key_list.len()];
    // Iterative DFS: (node, entering).
    let mut stack = vec![(0u32, true)];
    while let Some((v, entering)) = stack.pop() {
        let t = type_of[v as usize];
        if entering {
            if t != u32::MAX {
                objects[t as usize] += 1;
                if active[t as usize] == 0 {
                    bytes[t as usize] += dom.retained[v as usize];
                }
                active[t as usize] += 1;
            }
            stack.push((v, false));
            let (a, b) = (child_start[v as usize], child_start[v as usize + 1]);
            for &c in &children[a as usize..b as usize] {
                stack.push((c, true));
            }
        } else if t != u32::MAX {
            active[t as usize] -= 1;
        }
    }
    let mut out: Vec<TypeRetention> = key_list
        .into_iter()
        .enumerate()
        .map(|(i, key)| TypeRetention {
            key,
            objects: objects[i],
            retained_bytes: bytes[i],
        })
        .collect();
    out.sort_by(|a, b| {
        b.retained_bytes
            .cmp(&a.retained_bytes)
            .then_with(|| a.key.cmp(&b.key))
    });
    out
}

/// The children of every node in the dominator tree (adjacency form).
fn dominator_children(dom: &Dominators, n: usize) -> (Vec<u32>, Vec<u32>) {
    adjacency(n, || {
        (1..n)
            .filter(|&v| dom.idom[v] != u32::MAX)
            .map(|v| (dom.idom[v], v as u32))
    })
}

/// The census type of every reached object node (`u32::MAX` for roots,
/// the top and unreached nodes), as indexes into the returned key list.
fn object_types(
    model: &HeapModel<'_, '_>,
    graph: &ObjectGraph,
    dom: &Dominators,
) -> (Vec<u32>, Vec<TypeKey>) {
    use std::collections::HashMap;
    let n = graph.len();
    let mut types = model.types();
    let minor = model.layout.minor;
    let mut keys: HashMap<TypeKey, u32> = HashMap::new();
    let mut key_list: Vec<TypeKey> = Vec::new();
    let mut type_of = vec![u32::MAX; n];
    for (v, node) in graph.nodes.iter().enumerate() {
        if let Node::Object(idx, slot) = *node {
            if dom.idom[v] == u32::MAX {
                continue;
            }
            let Some(s) = model.heap.spans.get(idx as usize) else {
                continue;
            };
            let key =
                object_type(model.mem(), &mut types, minor, s, slot).unwrap_or(TypeKey::Unknown {
                    size_class: s.sizeclass(),
                    elem_size: s.elemsize,
                });
            let next = key_list.len() as u32;
            let id = *keys.entry(key.clone()).or_insert_with(|| {
                key_list.push(key);
                next
            });
            type_of[v] = id;
        }
    }
    (type_of, key_list)
}

/// Bound on the frames of one retained stack: objects deeper in the
/// dominator tree count at this depth.
pub const MAX_RETAINED_DEPTH: usize = 64;

/// Bound on distinct retained stacks (the trie of root and type paths).
pub const MAX_RETAINED_STACKS: usize = 1 << 20;

/// The paths of the retained profile (`rdlv export pprof --heap
/// --retained`), as a trie kept compact (no path is spelled out): each
/// path is a root, then the types of the dominators on the way down (a run
/// of one type, a linked list, is one frame), with the objects whose own
/// dominator path it is and their bytes. Summed over the paths under a
/// frame, the bytes are what the frame's objects retain, as a flame graph
/// shows them. Objects the top dominates directly (reached from two roots)
/// are under a first frame `(shared)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainedPaths {
    /// Frame names by label id: roots as CONTRACT.md writes them, types as
    /// the census names them.
    pub labels: Vec<String>,
    /// Trie nodes; node 0 is the empty path (`parent` and `label` unused).
    pub nodes: Vec<PathNode>,
    /// Whether a bound cut something (graph nodes, [`MAX_RETAINED_STACKS`]):
    /// the figures are then lower bounds.
    pub cut: bool,
}

/// One node of [`RetainedPaths`]: a path one label longer than its parent's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathNode {
    /// The node of the path without this frame.
    pub parent: u32,
    /// This frame's label id.
    pub label: u32,
    /// Objects at exactly this path.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl RetainedPaths {
    /// The label ids of node `n`'s path, innermost first (pprof's order),
    /// at most [`MAX_RETAINED_DEPTH`] + 1 of them.
    pub fn frames(&self, n: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut x = n;
        while x != 0 && out.len() <= MAX_RETAINED_DEPTH {
            let Some(node) = self.nodes.get(x as usize) else {
                break;
            };
            out.push(node.label);
            x = node.parent;
        }
        out
    }
}

/// The retained paths of the whole heap.
pub fn retained_stacks(model: &HeapModel<'_, '_>, gs: &[Goroutine]) -> Result<RetainedPaths> {
    let graph = ObjectGraph::build(model, gs)?;
    let dom = dominators(&graph, &|node| node_size(model, node));
    let n = graph.len();
    let (type_ids, key_list) = object_types(model, &graph, &dom);
    // Labels by name: every "unknown" size class is one label, so that a
    // chain of them is one frame.
    let mut labels = Labels::default();
    let type_label: Vec<u32> = key_list.iter().map(|k| labels.id(k.label())).collect();
    let type_of: Vec<u32> = type_ids
        .iter()
        .map(|&t| type_label.get(t as usize).copied().unwrap_or(u32::MAX))
        .collect();
    let shared = labels.id("(shared)".to_string());
    let mut trie = PathTrie::new();
    let mut cut = graph.truncated;
    let mut at = vec![0u32; n];
    let (child_start, children) = dominator_children(&dom, n);
    // Preorder from the top: a node's dominator is placed before it.
    let mut stack: Vec<u32> = vec![0];
    while let Some(v) = stack.pop() {
        let vi = v as usize;
        if v != 0 {
            let parent = at[dom.idom[vi] as usize];
            let label = match graph.nodes[vi] {
                Node::Root(key) => Some(labels.id(graph.root_name(key, gs))),
                Node::Object(..) if dom.idom[vi] == 0 => Some(shared),
                Node::Object(..) => type_of.get(vi).copied().filter(|&t| t != u32::MAX),
                Node::Top => None,
            };
            let mut here = parent;
            if let Some(label) = label {
                here = trie.child(parent, label, &mut cut);
                // A shared object: its own type under `(shared)` too.
                if label == shared {
                    if let Some(t) = type_of.get(vi).copied().filter(|&t| t != u32::MAX) {
                        here = trie.child(here, t, &mut cut);
                    }
                }
            }
            at[vi] = here;
            if let Node::Object(..) = graph.nodes[vi] {
                let node = &mut trie.nodes[here as usize];
                node.objects += 1;
                node.bytes += node_size(model, graph.nodes[vi]);
            }
        }
        let (a, b) = (child_start[vi], child_start[vi + 1]);
        stack.extend_from_slice(&children[a as usize..b as usize]);
    }
    Ok(RetainedPaths {
        labels: labels.names,
        nodes: trie.nodes,
        cut,
    })
}

/// Frame names interned: the same text is the same label id.
#[derive(Default)]
struct Labels {
    names: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
}

impl Labels {
    fn id(&mut self, name: String) -> u32 {
        let next = self.names.len() as u32;
        *self.ids.entry(name).or_insert_with_key(|name| {
            self.names.push(name.clone());
            next
        })
    }
}

/// The paths of [`retained_stacks`] being built: the nodes of
/// [`RetainedPaths`], with each node's depth and the child of every
/// (node, label) pair.
struct PathTrie {
    nodes: Vec<PathNode>,
    depth: Vec<u16>,
    children: std::collections::HashMap<(u32, u32), u32>,
}

impl PathTrie {
    fn new() -> PathTrie {
        PathTrie {
            nodes: vec![PathNode {
                label: u32::MAX,
                ..PathNode::default()
            }],
            depth: vec![0],
            children: std::collections::HashMap::new(),
        }
    }

    /// The node for `label` under `parent`: `parent` itself when it already
    /// ends in `label` (a run of one type is one frame) or is
    /// [`MAX_RETAINED_DEPTH`] deep, or when the trie is full
    /// ([`MAX_RETAINED_STACKS`], which sets `cut`).
    fn child(&mut self, parent: u32, label: u32, cut: &mut bool) -> u32 {
        let p = parent as usize;
        if self.nodes[p].label == label || usize::from(self.depth[p]) >= MAX_RETAINED_DEPTH {
            return parent;
        }
        if let Some(&c) = self.children.get(&(parent, label)) {
            return c;
        }
        if self.nodes.len() >= MAX_RETAINED_STACKS {
            *cut = true;
            return parent;
        }
        let c = self.nodes.len() as u32;
        self.children.insert((parent, label), c);
        self.nodes.push(PathNode {
            parent,
            label,
            objects: 0,
            bytes: 0,
        });
        self.depth.push(self.depth[p] + 1);
        c
    }
}

impl Retention {
    /// CONTRACT.md `heap --by root` JSON (`roots`), with the per-type lines
    /// and totals beside it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "roots": self.roots.iter().map(|r| serde_json::json!({
                "root": r.root,
                "retained_bytes": r.retained_bytes,
                "objects": r.objects,
            })).collect::<Vec<_>>(),
            "types": self.types.iter().map(|t| {
                let mut v = serde_json::json!({
                    "type": t.key.label(),
                    "objects": t.objects,
                    "retained_bytes": t.retained_bytes,
                });
                if let TypeKey::Unknown { size_class, elem_size } = t.key {
                    v["size_class"] = size_class.into();
                    v["elem_size"] = elem_size.into();
                }
                v
            }).collect::<Vec<_>>(),
            "reachable": {"objects": self.reachable_objects, "bytes": self.reachable_bytes},
            "shared_bytes": self.shared_bytes,
            "truncated": self.truncated,
        })
    }

    /// Text: the `top` roots (all with `None`), then totals.
    pub fn text(&self, top: Option<usize>) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let top = top.unwrap_or(DEFAULT_TOP_ROOTS);
        let _ = writeln!(
            s,
            "{} objects ({}) reachable from {} roots; {} reached by two or more roots, retained by none alone",
            self.reachable_objects,
            bytes_text(self.reachable_bytes),
            self.roots.len(),
            bytes_text(self.shared_bytes),
        );
        if self.truncated {
            let _ = writeln!(
                s,
                "warning: the object graph was cut at its node bound; figures are lower bounds"
            );
        }
        let _ = writeln!(s, "\n{:>12} {:>9}  ROOT", "RETAINED", "OBJECTS");
        for r in self.roots.iter().take(top) {
            let _ = writeln!(
                s,
                "{:>12} {:>9}  {}",
                bytes_text(r.retained_bytes),
                r.objects,
                r.root
            );
        }
        if self.roots.len() > top {
            let _ = writeln!(s, "... {} more roots (--top N)", self.roots.len() - top);
        }
        s
    }
}

fn bytes_text(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// One step of a retention path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// The root the path starts from.
    Root(String),
    /// A heap object: base address, slot bytes, type.
    Object {
        /// Base address.
        addr: u64,
        /// Slot bytes.
        size: u64,
        /// Type as the census names it.
        key: TypeKey,
    },
}

/// A shortest path (fewest pointers) from a root to the heap object that
/// contains `addr`. Errors when `addr` is in no allocated object, or no
/// root reaches it (garbage not yet collected).
pub fn path_to(model: &HeapModel<'_, '_>, gs: &[Goroutine], addr: u64) -> Result<Vec<PathStep>> {
    let (idx, slot) = model
        .heap
        .object_of(addr)
        .ok_or(NotFound::NotHeapObject { addr })?;
    let graph = ObjectGraph::build(model, gs)?;
    let target = graph
        .nodes
        .iter()
        .position(|n| *n == Node::Object(idx as u32, slot))
        .ok_or(NotFound::Unreachable { addr })?;
    // Breadth-first from the top: fewest pointers.
    let mut from = vec![u32::MAX; graph.len()];
    from[0] = 0;
    let mut queue = VecDeque::from([0u32]);
    while let Some(v) = queue.pop_front() {
        if v as usize == target {
            break;
        }
        for &w in graph.successors(v) {
            if let Some(f) = from.get_mut(w as usize) {
                if *f == u32::MAX {
                    *f = v;
                    queue.push_back(w);
                }
            }
        }
    }
    if from[target] == u32::MAX {
        return Err(NotFound::Unreachable { addr }.into());
    }
    let mut nodes = vec![target as u32];
    let mut v = target as u32;
    while v != 0 && nodes.len() <= MAX_PATH_LEN {
        v = from[v as usize];
        if v != 0 {
            nodes.push(v);
        }
    }
    nodes.reverse();
    let mut types = model.types();
    let minor = model.layout.minor;
    Ok(nodes
        .into_iter()
        .filter_map(|v| match graph.nodes.get(v as usize)? {
            Node::Top => None,
            Node::Root(key) => Some(PathStep::Root(graph.root_name(*key, gs))),
            Node::Object(idx, slot) => {
                let s = model.heap.spans.get(*idx as usize)?;
                let key = object_type(model.mem(), &mut types, minor, s, *slot).unwrap_or(
                    TypeKey::Unknown {
                        size_class: s.sizeclass(),
                        elem_size: s.elemsize,
                    },
                );
                Some(PathStep::Object {
                    addr: s.object(*slot),
                    size: s.elemsize,
                    key,
                })
            }
        })
        .collect())
}

/// Text of a retention path, one step per line.
pub fn path_text(path: &[PathStep]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for (i, step) in path.iter().enumerate() {
        let arrow = if i == 0 { "" } else { "-> " };
        match step {
            PathStep::Root(name) => {
                let _ = writeln!(s, "{arrow}{name}");
            }
            PathStep::Object { addr, size, key } => {
                let _ = writeln!(
                    s,
                    "{:indent$}{arrow}{addr:#x} {} ({size} B)",
                    "",
                    key.label(),
                    indent = i.min(40) * 2
                );
            }
        }
    }
    s
}

/// JSON of a retention path.
pub fn path_json(path: &[PathStep]) -> serde_json::Value {
    serde_json::Value::Array(
        path.iter()
            .map(|step| match step {
                PathStep::Root(name) => serde_json::json!({"root": name}),
                PathStep::Object { addr, size, key } => serde_json::json!({
                    "addr": format!("{addr:#x}"),
                    "size": size,
                    "type": key.label(),
                }),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of one label is one node; paths stop growing at the depth
    /// bound; the same (parent, label) is the same node.
    #[test]
    fn path_trie_collapses_runs_and_bounds_depth() {
        let mut t = PathTrie::new();
        let mut cut = false;
        let root = t.child(0, 7, &mut cut);
        let a = t.child(root, 1, &mut cut);
        assert_eq!(t.child(a, 1, &mut cut), a, "a run of one type is one frame");
        assert_eq!(
            t.child(root, 1, &mut cut),
            a,
            "the same path is the same node"
        );
        let b = t.child(a, 2, &mut cut);
        assert_ne!(b, a);
        let mut deep = b;
        for i in 0..2 * MAX_RETAINED_DEPTH as u32 {
            deep = t.child(deep, 100 + i, &mut cut);
        }
        assert_eq!(usize::from(t.depth[deep as usize]), MAX_RETAINED_DEPTH);
        assert!(!cut);
    }

    /// Sizes: object nodes weigh their slot number (so sums identify sets).
    fn weight(node: Node) -> u64 {
        match node {
            Node::Object(_, slot) => slot,
            _ => 0,
        }
    }

    fn obj(w: u64) -> Node {
        Node::Object(0, w)
    }

    #[test]
    fn dominators_of_a_known_graph() {
        // 0 top -> 1 root A, 2 root B.
        // A -> 3; 3 -> 4, 3 -> 5; 4 -> 6; 5 -> 6 (6 dominated by 3).
        // B -> 7; 7 -> 8; A -> 8 (8 shared by both roots: idom top).
        // 9 unreachable.
        let nodes = vec![
            Node::Top,
            Node::Root(RootKey::Global(0)),
            Node::Root(RootKey::Global(1)),
            obj(10),
            obj(20),
            obj(30),
            obj(40),
            obj(50),
            obj(60),
            obj(70),
        ];
        let edges = vec![
            (0, 1),
            (0, 2),
            (1, 3),
            (3, 4),
            (3, 5),
            (4, 6),
            (5, 6),
            (2, 7),
            (7, 8),
            (1, 8),
            (9, 3),
        ];
        let g = ObjectGraph::from_edges(nodes, edges);
        let d = dominators(&g, &weight);
        assert_eq!(d.idom[1], 0);
        assert_eq!(d.idom[2], 0);
        assert_eq!(d.idom[3], 1);
        assert_eq!(d.idom[4], 3);
        assert_eq!(d.idom[5], 3);
        assert_eq!(d.idom[6], 3);
        assert_eq!(d.idom[7], 2);
        assert_eq!(d.idom[8], 0);
        assert_eq!(d.idom[9], u32::MAX);
        assert_eq!(d.retained[3], 10 + 20 + 30 + 40);
        assert_eq!(d.retained[1], 100);
        assert_eq!(d.retained[2], 50);
        assert_eq!(d.retained_objects[1], 4);
        assert_eq!(d.retained[0], 100 + 50 + 60);
        assert_eq!(d.retained[9], 0);
    }

    /// Brute force: v dominates w iff w is unreachable from the top once v is
    /// removed. Checked on pseudo-random graphs with cycles.
    #[test]
    #[allow(clippy::needless_range_loop)] // indexes several arrays by node
    fn dominators_equal_brute_force_on_random_graphs() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..200 {
            let n = 2 + next(14) as usize;
            let mut nodes = vec![Node::Top];
            for i in 1..n {
                nodes.push(obj(i as u64));
            }
            let mut edges = Vec::new();
            for _ in 0..next(3 * n as u64) + 1 {
                let a = next(n as u64) as u32;
                let b = 1 + next(n as u64 - 1) as u32;
                edges.push((a, b));
            }
            let g = ObjectGraph::from_edges(nodes, edges);
            let d = dominators(&g, &weight);
            let reach = |removed: Option<u32>| {
                let mut seen = vec![false; n];
                let mut stack = vec![0u32];
                seen[0] = true;
                while let Some(v) = stack.pop() {
                    for &w in g.successors(v) {
                        if Some(w) != removed && !seen[w as usize] {
                            seen[w as usize] = true;
                            stack.push(w);
                        }
                    }
                }
                seen
            };
            let all = reach(None);
            for w in 1..n {
                if !all[w] {
                    assert_eq!(d.idom[w], u32::MAX);
                    continue;
                }
                // Dominators of w: v with w unreachable without v (plus top).
                let doms: Vec<u32> = (1..n as u32)
                    .filter(|&v| v as usize != w && !reach(Some(v))[w])
                    .collect();
                // The immediate one is the dominator dominated by all others.
                let expected = doms
                    .iter()
                    .copied()
                    .find(|&v| doms.iter().all(|&u| u == v || !reach(Some(u))[v as usize]))
                    .unwrap_or(0);
                assert_eq!(d.idom[w], expected, "node {w} of {:?}", g.succ);
            }
            // Retained = own + retained of dominator-tree children.
            for v in 0..n {
                if !all[v] {
                    continue;
                }
                let children: u64 = (1..n)
                    .filter(|&c| all[c] && d.idom[c] as usize == v && c != v)
                    .map(|c| d.retained[c])
                    .sum();
                assert_eq!(d.retained[v], weight(g.nodes[v]) + children);
            }
        }
    }
}
