//! Goroutines (`runtime.g`) and Ms (`runtime.m`): finding `allgs` (with
//! symbols, from the code of `runtime.allgadd` without them), decoding each
//! g, and matching threads to Ms and running goroutines.

use std::collections::HashMap;

use crate::disasm;
use crate::error::{Corrupt, Result, Unsupported};

use super::model::Runtime;

/// `_Gscan`, OR-ed onto a status while the GC scans the stack.
pub const G_SCAN: u32 = 0x1000;
/// `_Grunning`.
pub const G_RUNNING: u32 = 2;
/// `_Gsyscall`.
pub const G_SYSCALL: u32 = 3;
/// `_Gwaiting`.
pub const G_WAITING: u32 = 4;
/// `_Gdead`.
pub const G_DEAD: u32 = 6;
/// `_Gleaked` (1.26+).
pub const G_LEAKED: u32 = 10;
/// `_Gdeadextra` (1.26+).
pub const G_DEAD_EXTRA: u32 = 11;

/// Bound on `allglen`: more goroutines than this is taken as corruption.
const MAX_GOROUTINES: u64 = 10_000_000;
/// Bound on the `allm` list walk.
const MAX_MS: usize = 100_000;
/// Bound on a labels list.
const MAX_LABELS: u64 = 1000;
/// Bound on one label key or value.
const MAX_LABEL_LEN: u64 = 4096;
/// Bound on a g struct (Go 1.26: 456 bytes).
const MAX_G_SIZE: u64 = 4096;
/// Bound on an m struct (Go 1.22: 2024 bytes).
const MAX_M_SIZE: u64 = 16384;

/// One decoded `runtime.g`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct G {
    /// Address of the g.
    pub addr: u64,
    /// goid.
    pub goid: u64,
    /// atomicstatus, including the `_Gscan` bit.
    pub status_raw: u32,
    /// waitreason code.
    pub wait_reason: u8,
    /// waitsince (nanotime), 0 if unset.
    pub waitsince: i64,
    /// stack.lo
    pub stack_lo: u64,
    /// stack.hi
    pub stack_hi: u64,
    /// sched.sp
    pub sched_sp: u64,
    /// sched.pc
    pub sched_pc: u64,
    /// sched.bp
    pub sched_bp: u64,
    /// syscallsp
    pub syscallsp: u64,
    /// syscallpc
    pub syscallpc: u64,
    /// stktopsp
    pub stktopsp: u64,
    /// m (the M running it, 0 if none).
    pub m: u64,
    /// lockedm (0 if not locked).
    pub lockedm: u64,
    /// parentGoid.
    pub parent_goid: u64,
    /// gopc: return PC of the go statement.
    pub gopc: u64,
    /// startpc: the goroutine's function.
    pub startpc: u64,
    /// labels (unsafe.Pointer).
    pub labels: u64,
    /// waiting (*sudog).
    pub waiting: u64,
    /// ancestors (*[]ancestorInfo), set with GODEBUG=tracebackancestors.
    pub ancestors: u64,
    /// runningCleanups (1.25+).
    pub running_cleanups: bool,
}

impl G {
    /// Status without the scan bit.
    pub fn status(&self) -> u32 {
        self.status_raw & !G_SCAN
    }
}

fn u64_at(buf: &[u8], off: u64) -> u64 {
    let off = off as usize;
    buf.get(off..off + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

fn u32_at(buf: &[u8], off: u64) -> u32 {
    let off = off as usize;
    buf.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

fn u8_at(buf: &[u8], off: u64) -> u8 {
    buf.get(off as usize).copied().unwrap_or(0)
}

/// One decoded `runtime.m`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct M {
    /// Address of the m.
    pub addr: u64,
    /// id.
    pub id: i64,
    /// procid: the Linux thread id.
    pub procid: u64,
    /// g0.
    pub g0: u64,
    /// gsignal.
    pub gsignal: u64,
    /// curg.
    pub curg: u64,
    /// p (0 if none).
    pub p: u64,
    /// lockedg.
    pub lockedg: u64,
    /// alllink.
    pub alllink: u64,
    /// mallocing.
    pub mallocing: i32,
    /// throwing.
    pub throwing: i32,
    /// preemptoff string (pointer, length).
    pub preemptoff: (u64, u64),
    /// locks.
    pub locks: i32,
    /// dying.
    pub dying: i32,
    /// spinning.
    pub spinning: bool,
    /// blocked.
    pub blocked: bool,
    /// incgo.
    pub incgo: bool,
    /// ncgo.
    pub ncgo: i32,
    /// vdsoSP.
    pub vdso_sp: u64,
    /// vdsoPC.
    pub vdso_pc: u64,
}

/// Registers of a thread that runs a goroutine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadRegs {
    /// Linux thread id.
    pub tid: u32,
    /// rip.
    pub pc: u64,
    /// rsp.
    pub sp: u64,
    /// rbp.
    pub bp: u64,
}

/// A thread of the snapshot with what the runtime says about it.
#[derive(Debug, Clone)]
pub struct ThreadState {
    /// Linux thread id.
    pub tid: u32,
    /// Thread name (comm).
    pub name: String,
    /// Kernel state letter/word at capture.
    pub state: String,
    /// Registers.
    pub regs: ThreadRegs,
    /// The g in the thread's TLS slot, if readable.
    pub tls_g: Option<u64>,
    /// The M, if the thread is a Go thread.
    pub m: Option<M>,
}

impl<'t> Runtime<'t> {
    /// Decodes the g at `addr`.
    pub fn read_g(&self, addr: u64) -> Result<G> {
        let l = &self.layout.g;
        let size = l.size.min(MAX_G_SIZE);
        let buf = self.mem().read_vec(addr, size as usize)?;
        Ok(G {
            addr,
            goid: u64_at(&buf, l.goid),
            status_raw: u32_at(&buf, l.atomicstatus),
            wait_reason: u8_at(&buf, l.waitreason),
            waitsince: u64_at(&buf, l.waitsince) as i64,
            stack_lo: u64_at(&buf, l.stack_lo),
            stack_hi: u64_at(&buf, l.stack_hi),
            sched_sp: u64_at(&buf, l.sched_sp),
            sched_pc: u64_at(&buf, l.sched_pc),
            sched_bp: u64_at(&buf, l.sched_bp),
            syscallsp: u64_at(&buf, l.syscallsp),
            syscallpc: u64_at(&buf, l.syscallpc),
            stktopsp: u64_at(&buf, l.stktopsp),
            m: u64_at(&buf, l.m),
            lockedm: u64_at(&buf, l.lockedm),
            parent_goid: u64_at(&buf, l.parent_goid),
            gopc: u64_at(&buf, l.gopc),
            startpc: u64_at(&buf, l.startpc),
            labels: u64_at(&buf, l.labels),
            waiting: u64_at(&buf, l.waiting),
            ancestors: u64_at(&buf, l.ancestors),
            running_cleanups: l.running_cleanups.is_some_and(|o| u8_at(&buf, o) != 0),
        })
    }

    /// Decodes the m at `addr`.
    pub fn read_m(&self, addr: u64) -> Result<M> {
        let l = &self.layout.m;
        let size = l.size.min(MAX_M_SIZE);
        let buf = self.mem().read_vec(addr, size as usize)?;
        Ok(M {
            addr,
            id: u64_at(&buf, l.id) as i64,
            procid: u64_at(&buf, l.procid),
            g0: u64_at(&buf, l.g0),
            gsignal: u64_at(&buf, l.gsignal),
            curg: u64_at(&buf, l.curg),
            p: u64_at(&buf, l.p),
            lockedg: u64_at(&buf, l.lockedg),
            alllink: u64_at(&buf, l.alllink),
            mallocing: u32_at(&buf, l.mallocing) as i32,
            throwing: u32_at(&buf, l.throwing) as i32,
            preemptoff: (u64_at(&buf, l.preemptoff), u64_at(&buf, l.preemptoff + 8)),
            locks: u32_at(&buf, l.locks) as i32,
            dying: u32_at(&buf, l.dying) as i32,
            spinning: u8_at(&buf, l.spinning) != 0,
            blocked: u8_at(&buf, l.blocked) != 0,
            incgo: u8_at(&buf, l.incgo) != 0,
            ncgo: u32_at(&buf, l.ncgo) as i32,
            vdso_sp: u64_at(&buf, l.vdso_sp),
            vdso_pc: u64_at(&buf, l.vdso_pc),
        })
    }

    /// Whether the slice header at `addr` looks like `allgs`: a bounded
    /// length and a first element that is a g whose `sched.g` points back
    /// at itself (set by newproc1 for every g ever created).
    fn plausible_allgs(&self, addr: u64) -> Option<(u64, u64)> {
        let mem = self.mem();
        let ptr = mem.read_u64(addr).ok()?;
        let len = mem.read_u64(addr.wrapping_add(8)).ok()?;
        let cap = mem.read_u64(addr.wrapping_add(16)).ok()?;
        if ptr == 0 || ptr % 8 != 0 || len == 0 || len > cap || cap > MAX_GOROUTINES {
            return None;
        }
        let first = mem.read_u64(ptr).ok()?;
        if first == 0 || first % 8 != 0 {
            return None;
        }
        let self_ptr = mem
            .read_u64(first.wrapping_add(self.layout.g.sched_g))
            .ok()?;
        let goid = mem.read_u64(first.wrapping_add(self.layout.g.goid)).ok()?;
        (self_ptr == first && goid == 1).then_some((ptr, len))
    }

    /// Finds the `allgs` backing array and its length.
    ///
    /// With symbols: `runtime.allgs` / `runtime.allglen`. Stripped: the
    /// RIP-relative data references of `runtime.allgadd` (its name survives
    /// in the pclntab) are tried as slice headers.
    pub fn allgs(&self) -> Result<(u64, u64)> {
        if let Some(addr) = self.global("runtime.allgs") {
            let mem = self.mem();
            let ptr = mem.read_u64(addr)?;
            let len = match self.global("runtime.allglen") {
                Some(l) => mem.read_u64(l)?,
                None => mem.read_u64(addr.wrapping_add(8))?,
            };
            if len > MAX_GOROUTINES {
                return Err(Corrupt::Count {
                    what: "runtime.allglen",
                    count: len,
                    bound: MAX_GOROUTINES,
                }
                .into());
            }
            return Ok((ptr, len));
        }
        for func_name in [
            "runtime.allgadd",
            "runtime.forEachG",
            "runtime.forEachGRace",
        ] {
            let Some(f) = self.tab().func_by_name(func_name) else {
                continue;
            };
            let len = f.end().saturating_sub(f.entry()).min(4096) as usize;
            let Ok(code) = self.mem().read_vec(f.entry(), len) else {
                continue;
            };
            let decoded = disasm::rip_relative_refs(&code, f.entry());
            for r in &decoded.refs {
                if let Some(found) = self.plausible_allgs(r.target) {
                    return Ok(found);
                }
            }
        }
        Err(Unsupported::Stripped {
            symbol: "runtime.allgs",
            tried: "the code of runtime.allgadd references no plausible goroutine list",
        }
        .into())
    }

    /// Addresses of every g in `allgs`, in order.
    pub fn all_g_addrs(&self) -> Result<Vec<u64>> {
        let (ptr, len) = self.allgs()?;
        let bytes = self.mem().read_vec(ptr, (len * 8) as usize)?;
        Ok(bytes
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .collect())
    }

    /// Every thread of the snapshot, with its M when it is a Go thread.
    /// The M is found through the g in the thread's TLS (`fs_base-8`),
    /// and accepted only if its `procid` is the thread's id.
    pub fn threads(&self) -> Vec<ThreadState> {
        let meta = self.target().snapshot().metadata();
        meta.threads
            .iter()
            .map(|t| {
                let regs = ThreadRegs {
                    tid: t.tid,
                    pc: t.regs.rip,
                    sp: t.regs.rsp,
                    bp: t.regs.rbp,
                };
                let tls_g = t
                    .regs
                    .fs_base
                    .checked_sub(8)
                    .and_then(|a| self.mem().read_u64(a).ok())
                    .filter(|g| *g != 0);
                let m = tls_g
                    .and_then(|g| self.mem().read_u64(g.wrapping_add(self.layout.g.m)).ok())
                    .filter(|m| *m != 0)
                    .and_then(|m| self.read_m(m).ok())
                    .filter(|m| m.procid == u64::from(t.tid));
                ThreadState {
                    tid: t.tid,
                    name: t.name.clone(),
                    state: t.state.clone(),
                    regs,
                    tls_g,
                    m,
                }
            })
            .collect()
    }

    /// Every M: the `allm` list when the symbol exists, else the Ms found
    /// through the threads. Sorted as the runtime lists them (newest first).
    pub fn all_ms(&self, threads: &[ThreadState]) -> Vec<M> {
        let mut out = Vec::new();
        if let Some(head) = self
            .global("runtime.allm")
            .and_then(|a| self.mem().read_u64(a).ok())
        {
            let mut cur = head;
            // A corrupt snapshot can link the list into a cycle: stop at the
            // first M seen twice instead of repeating it up to MAX_MS times.
            let mut seen = std::collections::HashSet::new();
            while cur != 0 && out.len() < MAX_MS && seen.insert(cur) {
                match self.read_m(cur) {
                    Ok(m) => {
                        cur = m.alllink;
                        out.push(m);
                    }
                    Err(_) => break,
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
        let mut by_addr: HashMap<u64, M> = HashMap::new();
        for t in threads {
            if let Some(m) = &t.m {
                by_addr.insert(m.addr, m.clone());
            }
        }
        out = by_addr.into_values().collect();
        out.sort_by_key(|m| std::cmp::Reverse(m.id));
        out
    }

    /// pprof labels of a goroutine, in the runtime's order.
    /// 1.24+: `*labelMap` is a sorted slice of (key, value) strings.
    /// 1.21-1.23: `*labelMap` is a `map[string]string` (classic hmap).
    pub fn labels(&self, g: &G) -> Vec<(String, String)> {
        if g.labels == 0 {
            return Vec::new();
        }
        if self.minor >= 24 {
            self.labels_slice(g.labels).unwrap_or_default()
        } else {
            self.labels_hmap(g.labels).unwrap_or_default()
        }
    }

    /// Whether `g` has pprof labels whose memory was removed by `rdlv
    /// redact` (kept only with `--keep-labels`): [`Self::labels`] then finds
    /// none, and a caller showing labels says they were redacted instead of
    /// showing an empty set.
    pub fn labels_redacted(&self, g: &G) -> bool {
        g.labels != 0
            && matches!(
                self.mem().read_u64(g.labels),
                Err(crate::error::AnalyzeError::Redacted { .. })
            )
    }

    fn read_string(&self, ptr: u64, len: u64) -> Option<String> {
        if len == 0 {
            return Some(String::new());
        }
        if len > MAX_LABEL_LEN {
            return None;
        }
        let bytes = self.mem().read_vec(ptr, len as usize).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn labels_slice(&self, addr: u64) -> Option<Vec<(String, String)>> {
        let mem = self.mem();
        let ptr = mem.read_u64(addr).ok()?;
        let len = mem.read_u64(addr.wrapping_add(8)).ok()?.min(MAX_LABELS);
        let raw = mem.read_vec(ptr, (len * 32) as usize).ok()?;
        let mut out = Vec::new();
        for e in raw.chunks_exact(32) {
            let k = self.read_string(u64_at(e, 0), u64_at(e, 8))?;
            let v = self.read_string(u64_at(e, 16), u64_at(e, 24))?;
            out.push((k, v));
        }
        Some(out)
    }

    /// Classic map iteration for `map[string]string` (16-byte keys and
    /// values, 8 slots per bucket: tophash[8], keys, values, overflow).
    fn labels_hmap(&self, addr: u64) -> Option<Vec<(String, String)>> {
        const BUCKET: u64 = 8 + 8 * 16 + 8 * 16 + 8;
        let mem = self.mem();
        let hmap = mem.read_u64(addr).ok()?;
        if hmap == 0 {
            return Some(Vec::new());
        }
        let count = mem.read_u64(hmap).ok()?;
        let b = mem.read_u8(hmap.wrapping_add(9)).ok()?;
        if b > 16 || count > MAX_LABELS {
            return None;
        }
        let buckets = mem.read_u64(hmap.wrapping_add(16)).ok()?;
        let mut out = Vec::new();
        for i in 0..(1u64 << b) {
            let mut bucket = buckets.checked_add(i * BUCKET)?;
            let mut hops = 0;
            while bucket != 0 && hops < 64 {
                let raw = mem.read_vec(bucket, BUCKET as usize).ok()?;
                for slot in 0..8u64 {
                    if raw.get(slot as usize).copied().unwrap_or(0) < 5 {
                        continue;
                    }
                    let k = 8 + slot * 16;
                    let v = 8 + 128 + slot * 16;
                    let key = self.read_string(u64_at(&raw, k), u64_at(&raw, k + 8))?;
                    let val = self.read_string(u64_at(&raw, v), u64_at(&raw, v + 8))?;
                    out.push((key, val));
                }
                bucket = u64_at(&raw, BUCKET - 8);
                hops += 1;
            }
            if out.len() as u64 >= MAX_LABELS {
                break;
            }
        }
        out.sort();
        Some(out)
    }
}
