//! Goroutine leaks: the Go 1.26 leak detector's fixed point (runtime
//! `mgc.go` `findMaybeRunnableGoroutines`/`isMaybeRunnable`), run offline
//! on the snapshot's heap for every supported version.
//!
//! 1. Every goroutine that is not blocked in a channel or sync wait (its
//!    wait reason outside `chan receive (nil chan)` … `sync.WaitGroup.Wait`)
//!    may still run: its stack is a root, with the globals.
//! 2. The `c`/`elem` words of blocked goroutines' sudogs are hidden, as the
//!    runtime hides them, because `allgs` and `semtable` reach every sudog.
//! 3. Mark; then a blocked goroutine whose wait object is marked (or not
//!    in the heap) may run after all: its stack becomes a root. Repeat to a
//!    fixed point.
//! 4. The goroutines still blocked are leaked, except (Go 1.27 rule) the
//!    main goroutine in `select {}`.
//!
//! Wait objects: for channel waits, `sudog.c` of every sudog on
//! `g.waiting` (one per select case); for sync waits, `sudog.elem` (the
//! semaphore or notifyList address) of `g.waiting` on 1.26+, and on
//! 1.21–1.25 of the goroutine's sudog found in the `semtable` treaps. On
//! 1.21–1.23 a WaitGroup waiter's reason is plain `semacquire`; it is taken
//! as a sync wait when its stack is in `sync.(*WaitGroup).Wait`. A sync
//! waiter whose sudog cannot be found (e.g. `sync.Cond` before 1.26) is
//! treated as able to run: never reported without evidence.
//!
//! Stacks are scanned precisely, with the stack maps and stack objects the
//! runtime uses ([`super::stacks`]): a dead slot that still holds a stale
//! pointer (say, a stack reused from an exited goroutine) keeps nothing
//! alive. Differences from the runtime: where a map cannot be read, a
//! frame, and a goroutine running on a thread at capture time (not at a
//! safe point), are scanned conservatively, and 1.21 heap objects too;
//! each can only make more objects reachable, i.e. report fewer leaks,
//! never more.

use std::collections::HashMap;

use crate::error::{Corrupt, Result, Unsupported};
use crate::present::{rows_of, StackRow};
use crate::runtime::Goroutine;

use super::graph::Marker;
use super::HeapModel;

/// Bound on sudogs followed along one `g.waiting` list.
pub const MAX_WAITING_SUDOGS: usize = 1 << 16;
/// Bound on sudogs visited in the semaphore table.
pub const MAX_SEMA_SUDOGS: usize = 1 << 22;
/// `semTabSize`.
const SEM_TAB_SIZE: u64 = 251;
/// Stride of `semtable` entries (`cpu.CacheLinePadSize` on amd64).
const SEM_TAB_STRIDE: u64 = 64;
/// `_Gwaiting`.
const G_WAITING: u32 = 4;

/// How a goroutine waits, for the leak detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// Not blocked in a channel or sync wait: may run.
    Runnable,
    /// `select {}` or a nil channel: can never run.
    Never,
    /// Channel send/receive or select on non-nil channels.
    Chan,
    /// Mutex, RWMutex, WaitGroup or Cond.
    Sync,
}

/// A goroutine's wait, with the objects it waits on.
#[derive(Debug, Clone)]
pub struct Wait {
    /// Index into the goroutine list.
    pub index: usize,
    /// How it waits.
    pub kind: WaitKind,
    /// The wait reason text.
    pub reason: String,
    /// Addresses of the objects waited on (`hchan`s, or sema/notifyList addresses).
    pub objects: Vec<u64>,
    /// Addresses of the goroutine's sudogs.
    pub sudogs: Vec<u64>,
}

/// The wait of every goroutine of `gs` (same order).
pub fn waits(model: &HeapModel<'_, '_>, gs: &[Goroutine]) -> Result<Vec<Wait>> {
    let rt = model.rt;
    let mem = model.mem();
    let l = &model.layout;
    let off_c = l.sudog_c()?;
    let off_elem = l.sudog_elem()?;
    let off_waitlink = l.sudog.req("waitlink")?;
    let sema = if l.minor < 26 {
        sema_waiters(model)?
    } else {
        HashMap::new()
    };
    let mut out = Vec::with_capacity(gs.len());
    for (index, g) in gs.iter().enumerate() {
        let reason = rt.wait_reason_text(g.g.wait_reason).to_string();
        let waiting = g.g.status() == G_WAITING;
        let in_wg_wait = || {
            g.logical
                .iter()
                .any(|f| &*f.name == "sync.(*WaitGroup).Wait")
        };
        let mut kind = if !waiting {
            WaitKind::Runnable
        } else {
            match reason.as_str() {
                "select (no cases)" | "chan send (nil chan)" | "chan receive (nil chan)" => {
                    WaitKind::Never
                }
                "chan receive" | "chan send" | "select" => WaitKind::Chan,
                "sync.Cond.Wait"
                | "sync.Mutex.Lock"
                | "sync.RWMutex.RLock"
                | "sync.RWMutex.Lock"
                | "sync.WaitGroup.Wait" => WaitKind::Sync,
                "semacquire" if l.minor < 24 && in_wg_wait() => WaitKind::Sync,
                _ => WaitKind::Runnable,
            }
        };
        let mut objects = Vec::new();
        let mut sudogs = Vec::new();
        match kind {
            WaitKind::Chan => {
                let mut s = g.g.waiting;
                while s != 0 && sudogs.len() < MAX_WAITING_SUDOGS && !sudogs.contains(&s) {
                    sudogs.push(s);
                    if let Ok(c) = mem.read_u64(s.wrapping_add(off_c)) {
                        if c != 0 {
                            objects.push(c);
                        }
                    }
                    s = mem.read_u64(s.wrapping_add(off_waitlink)).unwrap_or(0);
                }
            }
            WaitKind::Sync => {
                let found = if l.minor >= 26 {
                    let s = g.g.waiting;
                    (s != 0)
                        .then(|| mem.read_u64(s.wrapping_add(off_elem)).ok().map(|e| (s, e)))
                        .flatten()
                } else {
                    sema.get(&g.g.addr).copied()
                };
                match found {
                    Some((s, elem)) if elem != 0 => {
                        sudogs.push(s);
                        objects.push(elem);
                    }
                    _ => kind = WaitKind::Runnable,
                }
            }
            _ => {}
        }
        out.push(Wait {
            index,
            kind,
            reason,
            objects,
            sudogs,
        });
    }
    Ok(out)
}

/// g address → (sudog, elem) of every waiter in `runtime.semtable`.
fn sema_waiters(model: &HeapModel<'_, '_>) -> Result<HashMap<u64, (u64, u64)>> {
    let mem = model.mem();
    let l = &model.layout;
    let table = model
        .rt
        .global("runtime.semtable")
        .ok_or(Unsupported::Stripped {
            symbol: "runtime.semtable",
            tried: super::HEAP_STRIPPED,
        })?;
    let treap = l.sema_root.req("treap")?;
    let (og, oprev, onext, owl) = (
        l.sudog.req("g")?,
        l.sudog.req("prev")?,
        l.sudog.req("next")?,
        l.sudog.req("waitlink")?,
    );
    let oelem = l.sudog_elem()?;
    let mut out = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0..SEM_TAB_SIZE {
        let root = mem
            .read_u64(table.wrapping_add(i * SEM_TAB_STRIDE).wrapping_add(treap))
            .unwrap_or(0);
        let mut stack = vec![root];
        while let Some(s) = stack.pop() {
            if s == 0 || !seen.insert(s) {
                continue;
            }
            if seen.len() > MAX_SEMA_SUDOGS {
                return Err(Corrupt::TooMany {
                    what: "waiters on runtime.semtable",
                    bound: MAX_SEMA_SUDOGS as u64,
                }
                .into());
            }
            let rd = |o: u64| mem.read_u64(s.wrapping_add(o)).unwrap_or(0);
            let g = rd(og);
            if g != 0 {
                out.insert(g, (s, rd(oelem)));
            }
            stack.push(rd(oprev));
            stack.push(rd(onext));
            stack.push(rd(owl));
        }
    }
    Ok(out)
}

/// Stack range `[lo, hi)` of a goroutine: from its innermost frame.
pub fn stack_range(g: &Goroutine) -> (u64, u64) {
    let lo = g
        .frames
        .first()
        .map(|f| f.sp)
        .filter(|&sp| sp != 0)
        .unwrap_or(if g.g.syscallsp != 0 {
            g.g.syscallsp
        } else {
            g.g.sched_sp
        });
    (lo.max(g.g.stack_lo), g.g.stack_hi)
}

/// One leaked goroutine.
#[derive(Debug, Clone)]
pub struct Leak {
    /// goid.
    pub id: u64,
    /// Wait reason.
    pub wait_reason: String,
    /// The first object it waits on (None for `select {}` and nil channels).
    pub object: Option<u64>,
    /// Every object it waits on.
    pub objects: Vec<u64>,
    /// Frames, innermost first, runtime frames included.
    pub frames: Vec<StackRow>,
}

/// The result of the fixed point.
#[derive(Debug, Clone, Default)]
pub struct LeakReport {
    /// Leaked goroutines, in `allgs` order.
    pub leaked: Vec<Leak>,
    /// Goroutines blocked in a channel or sync wait at the start.
    pub blocked: usize,
    /// Rounds until the fixed point.
    pub rounds: usize,
    /// Heap objects reachable at the fixed point.
    pub reachable_objects: u64,
}

/// Runs the leak detector.
pub fn find_leaks(model: &HeapModel<'_, '_>, gs: &[Goroutine]) -> Result<LeakReport> {
    let ws = waits(model, gs)?;
    let mut m = Marker::whole(model);
    let hidden = model.layout.sudog_hidden_words();
    let mut pending: Vec<&Wait> = Vec::new();
    for w in &ws {
        if w.kind == WaitKind::Runnable {
            continue;
        }
        for &s in &w.sudogs {
            for &o in &hidden {
                m.hide(s.wrapping_add(o));
            }
        }
        pending.push(w);
    }
    let blocked = pending.len();
    m.scan_globals();
    for w in &ws {
        if w.kind == WaitKind::Runnable {
            if let Some(g) = gs.get(w.index) {
                m.scan_goroutine(g);
            }
        }
    }
    m.drain();
    let mut rounds = 1;
    loop {
        let mut woke = Vec::new();
        pending.retain(|w| {
            let runnable = w.kind != WaitKind::Never
                && w.objects.iter().any(|&o| m.is_marked_or_not_in_heap(o));
            if runnable {
                woke.push(w.index);
            }
            !runnable
        });
        if woke.is_empty() {
            break;
        }
        rounds += 1;
        for i in woke {
            if let Some(g) = gs.get(i) {
                m.scan_goroutine(g);
            }
        }
        m.drain();
    }
    let minor = model.layout.minor;
    let leaked = pending
        .into_iter()
        .filter_map(|w| {
            let g = gs.get(w.index)?;
            if minor >= 27 && g.g.goid == 1 && w.reason == "select (no cases)" {
                return None;
            }
            Some(Leak {
                id: g.g.goid,
                wait_reason: w.reason.clone(),
                object: w.objects.first().copied(),
                objects: w.objects.clone(),
                frames: rows_of(g),
            })
        })
        .collect();
    Ok(LeakReport {
        leaked,
        blocked,
        rounds,
        reachable_objects: m.marked,
    })
}

/// CONTRACT.md frame JSON.
pub fn frame_json(f: &StackRow) -> serde_json::Value {
    serde_json::json!({
        "func": f.function,
        "file": f.file,
        "line": f.line,
        "pc": format!("{:#x}", f.pc),
        "inlined": f.inlined,
    })
}

impl LeakReport {
    /// `leaks --format json` (CONTRACT.md): one object per leaked goroutine.
    pub fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.leaked
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "id": l.id,
                        "wait_reason": l.wait_reason,
                        "object": l.object.map(|o| format!("{o:#x}")),
                        "objects": l.objects.iter().map(|o| format!("{o:#x}")).collect::<Vec<_>>(),
                        "frames": l.frames.iter().map(frame_json).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }

    /// Text: leaked goroutines grouped by stack (function:line list), with counts.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut groups: Vec<(Vec<String>, String, Vec<u64>)> = Vec::new();
        for l in &self.leaked {
            let key: Vec<String> = l
                .frames
                .iter()
                .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
                .collect();
            match groups
                .iter_mut()
                .find(|(k, r, _)| *k == key && *r == l.wait_reason)
            {
                Some(g) => g.2.push(l.id),
                None => groups.push((key, l.wait_reason.clone(), vec![l.id])),
            }
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.2.len()));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} leaked goroutines ({} blocked in channel or sync waits; fixed point after {} rounds)",
            self.leaked.len(),
            self.blocked,
            self.rounds
        );
        for (frames, reason, ids) in &groups {
            let shown: Vec<String> = ids.iter().take(10).map(|i| i.to_string()).collect();
            let more = if ids.len() > 10 { ", ..." } else { "" };
            let _ = writeln!(
                s,
                "\n{} goroutines [{reason}]: {}{more}",
                ids.len(),
                shown.join(", ")
            );
            for f in frames {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }
}
