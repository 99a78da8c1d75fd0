//! The scheduler at the instant of capture, printed as
//! `GODEBUG=schedtrace=1,scheddetail=1` would print it (proc.go `schedtrace`),
//! plus a few facts the runtime does not print (GC phase).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::error::{Corrupt, Result, Unsupported};

use super::goroutine::M;
use super::model::Runtime;

/// Bound on `len(allp)` (GOMAXPROCS is at most 2^24 in practice far less).
const MAX_PROCS: u64 = 1 << 16;
/// Bound on `preemptoff` text.
const MAX_PREEMPTOFF: u64 = 256;

/// One P.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P {
    /// Address.
    pub addr: u64,
    /// id.
    pub id: i32,
    /// status (_Pidle 0, _Prunning 1, _Psyscall 2, _Pgcstop 3, _Pdead 4).
    pub status: u32,
    /// schedtick.
    pub schedtick: u32,
    /// syscalltick.
    pub syscalltick: u32,
    /// Id of the M holding it, if any.
    pub m_id: Option<i64>,
    /// Local run queue length (runqtail - runqhead).
    pub runqsize: u32,
    /// runnext goroutine address (0 if none).
    pub runnext: u64,
    /// gFree count.
    pub gfreecnt: i32,
    /// Timers in its heap.
    pub timerslen: u64,
}

/// The scheduler state.
#[derive(Debug, Clone)]
pub struct SchedState {
    /// Milliseconds since the runtime's `starttime`, or since runtime init
    /// when schedtrace never ran (0 when neither is known).
    pub elapsed_ms: i64,
    /// GOMAXPROCS.
    pub gomaxprocs: i32,
    /// sched.npidle.
    pub idleprocs: i32,
    /// mcount() = mnext - nmfreed.
    pub threads: i64,
    /// sched.nmspinning.
    pub spinningthreads: i32,
    /// sched.needspinning.
    pub needspinning: u32,
    /// sched.nmidle.
    pub idlethreads: i32,
    /// Global run queue size.
    pub runqueue: i32,
    /// sched.gcwaiting.
    pub gcwaiting: bool,
    /// sched.nmidlelocked.
    pub nmidlelocked: i32,
    /// sched.stopwait.
    pub stopwait: i32,
    /// sched.sysmonwait.
    pub sysmonwait: bool,
    /// Ps in allp order.
    pub ps: Vec<P>,
    /// Ms in allm order.
    pub ms: Vec<M>,
    /// GC phase (`runtime.gcphase`: 0 off, 1 mark, 2 mark termination).
    pub gcphase: Option<u32>,
}

/// Counts shown by `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeSummary {
    /// Goroutines that are not dead (user and system).
    pub goroutines: u64,
    /// GOMAXPROCS, when the symbol (or allp) is readable.
    pub gomaxprocs: Option<u64>,
}

fn gc_phase_name(p: u32) -> &'static str {
    match p {
        0 => "off",
        1 => "mark",
        2 => "mark termination",
        _ => "?",
    }
}

/// Scheduler globals recovered from the code of `runtime.schedtrace`.
#[derive(Debug, Clone, Copy, Default)]
struct SchedGlobals {
    sched: Option<u64>,
    allp: Option<u64>,
    gomaxprocs: Option<u64>,
}

impl Runtime<'_> {
    /// Stripped binaries: `runtime.schedtrace` (its name survives in the
    /// pclntab) reads `sched.*`, `gomaxprocs` and `allp` RIP-relatively.
    /// `sched` is the base most of those references agree on given the
    /// layout; `allp` the slice whose elements are Ps numbered 0..n;
    /// `gomaxprocs` the 32-bit word equal to `len(allp)`.
    fn sched_globals_from_code(&self) -> SchedGlobals {
        let mut out = SchedGlobals::default();
        let Some(f) = self.tab().func_by_name("runtime.schedtrace") else {
            return out;
        };
        let len = f.end().saturating_sub(f.entry()).min(16384) as usize;
        let Ok(code) = self.mem().read_vec(f.entry(), len) else {
            return out;
        };
        let refs = crate::disasm::rip_relative_refs(&code, f.entry()).refs;
        let l = &self.layout.sched;
        let fields = [
            l.npidle,
            l.nmspinning,
            l.needspinning,
            l.nmidle,
            l.gcwaiting,
            l.nmidlelocked,
            l.stopwait,
            l.sysmonwait,
        ];
        let mut votes: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for r in &refs {
            for off in fields {
                if let Some(base) = r.target.checked_sub(off) {
                    *votes.entry(base).or_default() += 1;
                }
            }
        }
        out.sched = votes
            .into_iter()
            .filter(|(_, n)| *n >= 4)
            .max_by_key(|(base, n)| (*n, std::cmp::Reverse(*base)))
            .map(|(base, _)| base);
        let mem = self.mem();
        let p_id = self.layout.p.id;
        for r in &refs {
            let (Ok(ptr), Ok(n)) = (
                mem.read_u64(r.target),
                mem.read_u64(r.target.wrapping_add(8)),
            ) else {
                continue;
            };
            if n == 0 || n > 1024 || ptr == 0 {
                continue;
            }
            let numbered = (0..n).all(|i| {
                mem.read_u64(ptr.wrapping_add(i * 8))
                    .and_then(|p| mem.read_u32(p.wrapping_add(p_id)))
                    .is_ok_and(|id| u64::from(id) == i)
            });
            if numbered {
                out.allp = Some(r.target);
                out.gomaxprocs = refs
                    .iter()
                    .map(|g| g.target)
                    .filter(|&t| {
                        t != r.target && out.sched.is_none_or(|s| t < s || t >= s + l.size)
                    })
                    .find(|&t| mem.read_u32(t).is_ok_and(|v| u64::from(v) == n));
                break;
            }
        }
        out
    }

    fn need_global(&self, name: &'static str) -> Result<u64> {
        let from_code = || {
            let g = self.sched_globals_from_code();
            match name {
                "runtime.sched" => g.sched,
                "runtime.allp" => g.allp,
                "runtime.gomaxprocs" => g.gomaxprocs,
                _ => None,
            }
        };
        self.global(name).or_else(from_code).ok_or(
            Unsupported::Stripped {
                symbol: name,
                tried: "the code of runtime.schedtrace did not reveal it",
            }
            .into(),
        )
    }

    /// Goroutine count and GOMAXPROCS, cheaply (no unwinding).
    pub fn summary(&self) -> Result<RuntimeSummary> {
        let addrs = self.all_g_addrs()?;
        let status_off = self.layout.g.atomicstatus;
        let mut goroutines = 0u64;
        for a in addrs {
            if let Ok(st) = self.mem().read_u32(a.wrapping_add(status_off)) {
                let st = st & !super::goroutine::G_SCAN;
                if st != super::goroutine::G_DEAD
                    && !(self.minor >= 26 && st == super::goroutine::G_DEAD_EXTRA)
                {
                    goroutines += 1;
                }
            }
        }
        let gomaxprocs = self
            .global("runtime.gomaxprocs")
            .and_then(|a| self.mem().read_u32(a).ok())
            .map(u64::from);
        Ok(RuntimeSummary {
            goroutines,
            gomaxprocs,
        })
    }

    fn read_p(&self, addr: u64, ms: &[M]) -> Result<P> {
        let l = &self.layout.p;
        let mem = self.mem();
        let m_addr = mem.read_u64(addr.wrapping_add(l.m))?;
        let head = mem.read_u32(addr.wrapping_add(l.runqhead))?;
        let tail = mem.read_u32(addr.wrapping_add(l.runqtail))?;
        let gfree = l.gfree_size.or(l.gfree_n);
        let timers = l.timers_heap.or(l.timers_slice);
        Ok(P {
            addr,
            id: mem.read_u32(addr.wrapping_add(l.id))? as i32,
            status: mem.read_u32(addr.wrapping_add(l.status))?,
            schedtick: mem.read_u32(addr.wrapping_add(l.schedtick))?,
            syscalltick: mem.read_u32(addr.wrapping_add(l.syscalltick))?,
            m_id: if m_addr == 0 {
                None
            } else {
                ms.iter()
                    .find(|m| m.addr == m_addr)
                    .map(|m| m.id)
                    .or_else(|| self.read_m(m_addr).ok().map(|m| m.id))
            },
            runqsize: tail.wrapping_sub(head),
            runnext: mem.read_u64(addr.wrapping_add(l.runnext))?,
            gfreecnt: match gfree {
                Some(o) => mem.read_u32(addr.wrapping_add(o))? as i32,
                None => 0,
            },
            timerslen: match timers {
                Some(o) => mem.read_u64(addr.wrapping_add(o).wrapping_add(8))?,
                None => 0,
            },
        })
    }

    /// Reads the scheduler state (needs the runtime's symbols).
    pub fn sched_state(&self) -> Result<SchedState> {
        let mem = self.mem();
        let sched = self.need_global("runtime.sched")?;
        let l = &self.layout.sched;
        let gomaxprocs = mem.read_u32(self.need_global("runtime.gomaxprocs")?)? as i32;
        let threads = self.threads();
        let ms = self.all_ms(&threads);
        let allp = self.need_global("runtime.allp")?;
        let allp_ptr = mem.read_u64(allp)?;
        let allp_len = mem.read_u64(allp.wrapping_add(8))?;
        if allp_len > MAX_PROCS {
            return Err(Corrupt::Count {
                what: "len(runtime.allp)",
                count: allp_len,
                bound: MAX_PROCS,
            }
            .into());
        }
        let mut ps = Vec::with_capacity(allp_len as usize);
        for i in 0..allp_len {
            let p = mem.read_u64(allp_ptr.wrapping_add(i * 8))?;
            ps.push(self.read_p(p, &ms)?);
        }
        // schedtrace counts from its first call (made by sysmon soon after
        // start when GODEBUG=schedtrace is set); without it, from runtime init.
        let read_time = |name: &str| {
            self.global(name)
                .and_then(|a| mem.read_u64(a).ok())
                .unwrap_or(0) as i64
        };
        let starttime = match read_time("runtime.starttime") {
            0 => read_time("runtime.runtimeInitTime"),
            t => t,
        };
        let elapsed_ms = if starttime == 0 {
            0
        } else {
            (self.now_ns as i64).saturating_sub(starttime) / 1_000_000
        };
        let runqueue = match l.runq_size.or(l.runqsize) {
            Some(o) => mem.read_u32(sched.wrapping_add(o))? as i32,
            None => 0,
        };
        let mnext = mem.read_u64(sched.wrapping_add(l.mnext))? as i64;
        let nmfreed = mem.read_u64(sched.wrapping_add(l.nmfreed))? as i64;
        Ok(SchedState {
            elapsed_ms,
            gomaxprocs,
            idleprocs: mem.read_u32(sched.wrapping_add(l.npidle))? as i32,
            threads: mnext.wrapping_sub(nmfreed),
            spinningthreads: mem.read_u32(sched.wrapping_add(l.nmspinning))? as i32,
            needspinning: mem.read_u32(sched.wrapping_add(l.needspinning))?,
            idlethreads: mem.read_u32(sched.wrapping_add(l.nmidle))? as i32,
            runqueue,
            gcwaiting: mem.read_u8(sched.wrapping_add(l.gcwaiting))? != 0,
            nmidlelocked: mem.read_u32(sched.wrapping_add(l.nmidlelocked))? as i32,
            stopwait: mem.read_u32(sched.wrapping_add(l.stopwait))? as i32,
            sysmonwait: mem.read_u8(sched.wrapping_add(l.sysmonwait))? != 0,
            ps,
            ms,
            gcphase: self
                .global("runtime.gcphase")
                .and_then(|a| mem.read_u32(a).ok()),
        })
    }

    fn goid_at(&self, g: u64) -> Option<u64> {
        if g == 0 {
            return None;
        }
        self.mem().read_u64(g.wrapping_add(self.layout.g.goid)).ok()
    }

    /// `schedtrace(true)` text for the captured instant, then a GC line.
    pub fn sched_text(&self, s: &SchedState) -> Result<String> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} needspinning={} idlethreads={} runqueue={} gcwaiting={} nmidlelocked={} stopwait={} sysmonwait={}",
            s.elapsed_ms, s.gomaxprocs, s.idleprocs, s.threads, s.spinningthreads, s.needspinning,
            s.idlethreads, s.runqueue, s.gcwaiting, s.nmidlelocked, s.stopwait, s.sysmonwait
        );
        for (i, p) in s.ps.iter().enumerate() {
            let m = p
                .m_id
                .map(|m| m.to_string())
                .unwrap_or_else(|| "nil".into());
            let _ = writeln!(
                out,
                "  P{i}: status={} schedtick={} syscalltick={} m={m} runqsize={} gfreecnt={} timerslen={}",
                p.status, p.schedtick, p.syscalltick, p.runqsize, p.gfreecnt, p.timerslen
            );
        }
        for m in &s.ms {
            let p = if m.p == 0 {
                "nil".to_string()
            } else {
                s.ps.iter()
                    .find(|p| p.addr == m.p)
                    .map(|p| p.id.to_string())
                    .unwrap_or_else(|| "?".into())
            };
            let curg = self
                .goid_at(m.curg)
                .map(|g| g.to_string())
                .unwrap_or_else(|| "nil".into());
            let lockedg = self
                .goid_at(m.lockedg)
                .map(|g| g.to_string())
                .unwrap_or_else(|| "nil".into());
            let preemptoff = if m.preemptoff.1 > 0 && m.preemptoff.1 <= MAX_PREEMPTOFF {
                self.mem()
                    .read_vec(m.preemptoff.0, m.preemptoff.1 as usize)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  M{}: p={p} curg={curg} mallocing={} throwing={} preemptoff={preemptoff} locks={} dying={} spinning={} blocked={} lockedg={lockedg}",
                m.id, m.mallocing, m.throwing, m.locks, m.dying, m.spinning, m.blocked
            );
        }
        let m_ids: std::collections::HashMap<u64, i64> =
            s.ms.iter().map(|m| (m.addr, m.id)).collect();
        for addr in self.all_g_addrs()? {
            let Ok(g) = self.read_g(addr) else { continue };
            let id_of = |m: u64| -> String {
                if m == 0 {
                    return "nil".into();
                }
                m_ids
                    .get(&m)
                    .copied()
                    .or_else(|| self.read_m(m).ok().map(|m| m.id))
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "?".into())
            };
            let _ = writeln!(
                out,
                "  G{}: status={}({}) m={} lockedm={}",
                g.goid,
                g.status_raw,
                self.wait_reason_text(g.wait_reason),
                id_of(g.m),
                id_of(g.lockedm)
            );
        }
        if let Some(p) = s.gcphase {
            let _ = writeln!(out, "GC phase: {}", gc_phase_name(p));
        }
        Ok(out)
    }

    /// JSON of the scheduler state.
    pub fn sched_json(&self, s: &SchedState) -> Value {
        json!({
            "elapsed_ms": s.elapsed_ms,
            "gomaxprocs": s.gomaxprocs,
            "idleprocs": s.idleprocs,
            "threads": s.threads,
            "spinningthreads": s.spinningthreads,
            "needspinning": s.needspinning,
            "idlethreads": s.idlethreads,
            "runqueue": s.runqueue,
            "gcwaiting": s.gcwaiting,
            "nmidlelocked": s.nmidlelocked,
            "stopwait": s.stopwait,
            "sysmonwait": s.sysmonwait,
            "gc_phase": s.gcphase.map(gc_phase_name),
            "ps": s.ps.iter().map(|p| json!({
                "id": p.id, "status": p.status, "schedtick": p.schedtick,
                "syscalltick": p.syscalltick, "m": p.m_id, "runqsize": p.runqsize,
                "runnext": self.goid_at(p.runnext), "gfreecnt": p.gfreecnt, "timerslen": p.timerslen,
            })).collect::<Vec<_>>(),
            "ms": s.ms.iter().map(|m| json!({
                "id": m.id, "thread": m.procid, "curg": self.goid_at(m.curg),
                "p": s.ps.iter().find(|p| p.addr == m.p).map(|p| p.id),
                "spinning": m.spinning, "blocked": m.blocked, "lockedg": self.goid_at(m.lockedg),
                "incgo": m.incgo, "mallocing": m.mallocing, "locks": m.locks,
            })).collect::<Vec<_>>(),
        })
    }
}
