//! The sampled heap profile the process itself would serve at
//! `/debug/pprof/heap` (debug=0): gzipped `perftools.profiles.Profile`
//! with sample types alloc_objects/count, alloc_space/bytes,
//! inuse_objects/count, inuse_space/bytes, period type space/bytes, period
//! `runtime.MemProfileRate`. Like the runtime's, the profile names no
//! `default_sample_type`: pprof shows the last type, inuse_space.
//!
//! Replayed from the snapshot in the runtime's three steps:
//!
//! 1. `memProfileInternal(_, inuseZero=true)` (runtime/mprof.go): every
//!    bucket of the `runtime.mbuckets` list, in `allnext` order. Its
//!    published counts are `active` plus `future[mProfCycle % 3]` (the
//!    runtime flushes that cycle into `active` first, in case it is read
//!    between `mProf_NextCycle` and `mProf_Flush`); when no bucket has any
//!    published allocation or free (no GC yet), every `future` cycle is
//!    added as well. Before Go 1.27 a cycle counts (allocs, frees,
//!    alloc_bytes, free_bytes); from 1.27 (allocs, frees) only, the bytes
//!    being counts times the bucket's object `size`.
//! 2. The record's stack: the bucket's `nstk` PCs after its header; before
//!    Go 1.23 copied into `Stack0 [32]` and cut at the first zero.
//! 3. `writeHeapProto` (runtime/pprof/protomem.go): leading frames whose
//!    `FuncForPC` name starts with `runtime.` (or `internal/runtime/`, Go
//!    1.24+) are hidden unless that leaves no location; values scaled by
//!    `scaleHeapSample` when the rate is above 1; a `bytes` numeric label
//!    with the block size (AllocBytes / AllocObjects before 1.27, omitted
//!    when zero; the bucket size, always, from 1.27); locations through the
//!    shared [`Builder`] (the goroutine profile's `profileBuilder` replay).
//!
//! Invariants: the bucket walk is bounded by [`MAX_MEM_BUCKETS`] and each
//! stack by [`MAX_PROF_STACK_DEPTH`]; a list longer than that or looping, a
//! bucket of another type or a stack deeper than that is reported as
//! corrupt rather than truncated silently. Needs the symbols
//! `runtime.mbuckets`, `runtime.MemProfileRate` and `runtime.mProfCycle`
//! (not found in a stripped binary: a `NotFound` error says so).

use std::collections::{HashMap, HashSet};
use std::io::Write;

use super::pprof::{proto, write_gzipped, Builder};
use crate::error::{AnalyzeError, Corrupt, NotFound, Result};
use crate::runtime::Runtime;

/// Most buckets walked on `runtime.mbuckets` (one per distinct allocation
/// stack and size; real processes have at most some hundred thousand).
pub const MAX_MEM_BUCKETS: usize = 4_000_000;
/// `maxProfStackDepth`: the most PCs a bucket may hold (the runtime throws
/// past it).
pub const MAX_PROF_STACK_DEPTH: u64 = 1024;
/// `len(MemProfileRecord.Stack0)`: PCs a record keeps before Go 1.23.
const STACK0_LEN: usize = 32;
/// `memProfile`, the first `bucketType`.
const MEM_PROFILE_BUCKET: u64 = 1;
/// Size of the bucket header: next, allnext, typ, hash, size, nstk (one
/// word each in every release 1.21–1.27).
const BUCKET_HEADER: u64 = 6 * 8;
/// Offset of `allnext` in the header.
const BUCKET_ALLNEXT: u64 = 8;
/// Offset of `typ` in the header.
const BUCKET_TYP: u64 = 16;
/// Offset of `size` in the header.
const BUCKET_SIZE: u64 = 32;
/// Offset of `nstk` in the header.
const BUCKET_NSTK: u64 = 40;
/// `len(memRecord.future)`.
const FUTURE_CYCLES: u64 = 3;

/// One `memRecordCycle`: allocations and frees (and, before Go 1.27, their bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemCycle {
    /// Objects allocated.
    pub allocs: u64,
    /// Objects freed.
    pub frees: u64,
    /// Bytes allocated (before Go 1.27; 0 after).
    pub alloc_bytes: u64,
    /// Bytes freed (before Go 1.27; 0 after).
    pub free_bytes: u64,
}

impl MemCycle {
    fn add(&mut self, o: &MemCycle) {
        self.allocs = self.allocs.wrapping_add(o.allocs);
        self.frees = self.frees.wrapping_add(o.frees);
        self.alloc_bytes = self.alloc_bytes.wrapping_add(o.alloc_bytes);
        self.free_bytes = self.free_bytes.wrapping_add(o.free_bytes);
    }

    fn is_empty(&self) -> bool {
        self.allocs == 0 && self.frees == 0
    }
}

/// One memory-profile bucket as read from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemBucket {
    /// Object size the bucket counts (`bucket.size`).
    pub size: u64,
    /// Allocation stack, return PCs, leaf first.
    pub stack: Vec<u64>,
    /// `active`.
    pub active: MemCycle,
    /// `future[0..3]`.
    pub future: [MemCycle; 3],
}

/// One record `memProfileInternal` reports (`profilerecord.MemProfileRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemRecord {
    /// Bytes allocated.
    pub alloc_bytes: i64,
    /// Bytes freed.
    pub free_bytes: i64,
    /// Objects allocated.
    pub alloc_objects: i64,
    /// Objects freed.
    pub free_objects: i64,
    /// `ObjectSize` (Go 1.27+: the bucket's size; before: unused, 0).
    pub object_size: i64,
    /// The stack as the record holds it.
    pub stack: Vec<u64>,
}

/// Size of one `memRecordCycle` for a Go minor version.
fn cycle_len(minor: u32) -> u64 {
    if minor >= 27 {
        2 * 8
    } else {
        4 * 8
    }
}

fn word(raw: &[u8], off: u64) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    raw.get(off..off.checked_add(8)?)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

fn parse_cycle(raw: &[u8], off: u64, minor: u32) -> Option<MemCycle> {
    let mut c = MemCycle {
        allocs: word(raw, off)?,
        frees: word(raw, off + 8)?,
        ..MemCycle::default()
    };
    if minor < 27 {
        c.alloc_bytes = word(raw, off + 16)?;
        c.free_bytes = word(raw, off + 24)?;
    }
    Some(c)
}

/// Where the memory profile of the snapshot lives.
struct Globals {
    /// Address of `runtime.mbuckets`.
    mbuckets: u64,
    /// `runtime.MemProfileRate`.
    rate: i64,
    /// `mProfCycle.read()`.
    cycle: u32,
}

fn read_globals(rt: &Runtime<'_>) -> Result<Globals> {
    let need = |symbol: &'static str| {
        rt.global(symbol).ok_or(NotFound::Symbol {
            symbol,
            needed_by: "the heap profile",
        })
    };
    let mem = rt.mem();
    let rate = mem.read_u64(need("runtime.MemProfileRate")?)? as i64;
    let cycle = mem.read_u32(need("runtime.mProfCycle")?)? >> 1;
    Ok(Globals {
        mbuckets: need("runtime.mbuckets")?,
        rate,
        cycle,
    })
}

/// Reads the `runtime.mbuckets` list, in `allnext` order (empty when
/// nothing was ever sampled), with `MemProfileRate` and the heap profile
/// cycle `mProfCycle.read()`.
pub fn read_mem_buckets(rt: &Runtime<'_>) -> Result<(Vec<MemBucket>, i64, u32)> {
    let g = read_globals(rt)?;
    let mem = rt.mem();
    let clen = cycle_len(rt.minor);
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut b = mem.read_u64(g.mbuckets)?;
    while b != 0 {
        if out.len() >= MAX_MEM_BUCKETS {
            return Err(Corrupt::TooMany {
                what: "memory-profile buckets on runtime.mbuckets",
                bound: MAX_MEM_BUCKETS as u64,
            }
            .into());
        }
        if !seen.insert(b) {
            return Err(Corrupt::Cycle {
                what: "runtime.mbuckets",
                addr: b,
            }
            .into());
        }
        let header = mem.read_vec(b, BUCKET_HEADER as usize)?;
        let bad = |detail: String| -> AnalyzeError {
            Corrupt::Record {
                what: "memory-profile bucket",
                addr: b,
                detail,
            }
            .into()
        };
        let short = || bad("shorter than its fields".to_string());
        let field = |off| word(&header, off).ok_or_else(short);
        let typ = field(BUCKET_TYP)?;
        if typ != MEM_PROFILE_BUCKET {
            return Err(bad(format!("type {typ}, not memProfile")));
        }
        let nstk = field(BUCKET_NSTK)?;
        if nstk > MAX_PROF_STACK_DEPTH {
            return Err(bad(format!(
                "claims {nstk} PCs (the runtime allows {MAX_PROF_STACK_DEPTH})"
            )));
        }
        let body_len = nstk * 8 + clen * (1 + FUTURE_CYCLES);
        let body = mem.read_vec(b + BUCKET_HEADER, body_len as usize)?;
        let stack = (0..nstk)
            .map(|i| word(&body, i * 8).ok_or_else(short))
            .collect::<Result<Vec<u64>>>()?;
        let rec = nstk * 8;
        let cycle = |i: u64| parse_cycle(&body, rec + i * clen, rt.minor).ok_or_else(short);
        out.push(MemBucket {
            size: field(BUCKET_SIZE)?,
            stack,
            active: cycle(0)?,
            future: [cycle(1)?, cycle(2)?, cycle(3)?],
        });
        b = field(BUCKET_ALLNEXT)?;
    }
    Ok((out, g.rate, g.cycle))
}

/// `memProfileInternal(_, true)` over buckets read from the snapshot, for
/// Go minor version `minor` at heap profile cycle `cycle`.
pub fn mem_profile(buckets: &[MemBucket], cycle: u32, minor: u32) -> Vec<MemRecord> {
    let index = (cycle as u64 % FUTURE_CYCLES) as usize;
    let mut active: Vec<MemCycle> = buckets
        .iter()
        .map(|b| {
            let mut a = b.active;
            if let Some(f) = b.future.get(index) {
                a.add(f);
            }
            a
        })
        .collect();
    if active.iter().all(MemCycle::is_empty) {
        for (a, b) in active.iter_mut().zip(buckets) {
            for (c, f) in b.future.iter().enumerate() {
                if c != index {
                    a.add(f);
                }
            }
        }
    }
    buckets
        .iter()
        .zip(active)
        .map(|(b, a)| {
            let mut stack = b.stack.clone();
            if minor < 23 {
                stack.truncate(STACK0_LEN);
                if let Some(z) = stack.iter().position(|&pc| pc == 0) {
                    stack.truncate(z);
                }
            }
            let (alloc_bytes, free_bytes, object_size) = if minor >= 27 {
                (
                    a.allocs.wrapping_mul(b.size) as i64,
                    a.frees.wrapping_mul(b.size) as i64,
                    b.size as i64,
                )
            } else {
                (a.alloc_bytes as i64, a.free_bytes as i64, 0)
            };
            MemRecord {
                alloc_bytes,
                free_bytes,
                alloc_objects: a.allocs as i64,
                free_objects: a.frees as i64,
                object_size,
                stack,
            }
        })
        .collect()
}

/// `scaleHeapSample` for Go 1.21–1.26: `size` is the total of `count` blocks.
pub fn scale_heap_sample(count: i64, size: i64, rate: i64) -> (i64, i64) {
    if count == 0 || size == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count, size);
    }
    let avg = size as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg / rate as f64).exp());
    ((count as f64 * scale) as i64, (size as f64 * scale) as i64)
}

/// `scaleHeapSample` for Go 1.27+: `avg` is the object size of each block.
pub fn scale_heap_sample_sized(count: i64, avg: i64, rate: i64) -> (i64, i64) {
    if count == 0 || avg == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count, count.wrapping_mul(avg));
    }
    let scale = 1.0 / (1.0 - (-(avg as f64) / rate as f64).exp());
    (
        (count as f64 * scale) as i64,
        (count.wrapping_mul(avg) as f64 * scale) as i64,
    )
}

/// What the heap export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapProfileStats {
    /// Samples (memory-profile buckets).
    pub samples: usize,
    /// `runtime.MemProfileRate` (the period).
    pub rate: i64,
    /// In-use bytes over all samples, as written (scaled).
    pub inuse_bytes: i64,
}

/// Whether `FuncForPC(addr)` names a runtime function (what
/// `writeHeapProto` hides at the leaf end of a stack).
fn is_runtime_pc(rt: &Runtime<'_>, cache: &mut HashMap<u64, bool>, addr: u64) -> bool {
    if let Some(&r) = cache.get(&addr) {
        return r;
    }
    let r = rt.tab().find_func(addr).is_some_and(|f| {
        let frames = f.frames_at(addr);
        let name = frames
            .first()
            .map_or_else(|| f.name(), |fr| fr.name.as_str());
        name.starts_with("runtime.") || (rt.minor >= 24 && name.starts_with("internal/runtime/"))
    });
    cache.insert(addr, r);
    r
}

/// The heap profile of `rt` as a message (not yet encoded).
pub fn heap_profile(rt: &Runtime<'_>) -> Result<(proto::Profile, HeapProfileStats)> {
    let (buckets, rate, cycle) = read_mem_buckets(rt)?;
    if buckets.is_empty() {
        return Err(NotFound::NoHeapProfile { rate }.into());
    }
    let records = mem_profile(&buckets, cycle, rt.minor);
    let mut b = Builder::new(rt);
    b.profile.period_type = Some(b.value_type("space", "bytes"));
    b.profile.period = rate;
    let types = [
        b.value_type("alloc_objects", "count"),
        b.value_type("alloc_space", "bytes"),
        b.value_type("inuse_objects", "count"),
        b.value_type("inuse_space", "bytes"),
    ];
    b.profile.sample_type = types.to_vec();
    // `writeHeap` passes no default sample type (only `allocs` does):
    // pprof then shows the last one, inuse_space.
    let mut hidden = HashMap::new();
    let mut stats = HeapProfileStats {
        samples: records.len(),
        rate,
        inuse_bytes: 0,
    };
    for r in &records {
        let first_user = r
            .stack
            .iter()
            .position(|&pc| !is_runtime_pc(rt, &mut hidden, pc));
        // All-runtime stacks are kept whole (the loop never finds a
        // non-runtime frame, so nothing is cut).
        let hidden_stk = first_user.map_or(&r.stack[..], |i| &r.stack[i..]);
        let mut locs = b.locs_for_stack(hidden_stk);
        if locs.is_empty() {
            locs = b.locs_for_stack(&r.stack);
        }
        let inuse_objects = r.alloc_objects.wrapping_sub(r.free_objects);
        let (values, label) = if rt.minor >= 27 {
            let (ao, ab) = scale_heap_sample_sized(r.alloc_objects, r.object_size, rate);
            let (io, ib) = scale_heap_sample_sized(inuse_objects, r.object_size, rate);
            (vec![ao, ab, io, ib], Some(r.object_size))
        } else {
            let (ao, ab) = scale_heap_sample(r.alloc_objects, r.alloc_bytes, rate);
            let inuse_bytes = r.alloc_bytes.wrapping_sub(r.free_bytes);
            let (io, ib) = scale_heap_sample(inuse_objects, inuse_bytes, rate);
            let block = if r.alloc_objects > 0 {
                r.alloc_bytes / r.alloc_objects
            } else {
                0
            };
            (vec![ao, ab, io, ib], (block != 0).then_some(block))
        };
        stats.inuse_bytes = stats.inuse_bytes.wrapping_add(values[3]);
        let label = label.map(|num| proto::Label {
            key: b.string_index("bytes"),
            str: 0,
            num,
            num_unit: 0,
        });
        b.profile.sample.push(proto::Sample {
            location_id: locs,
            value: values,
            label: label.into_iter().collect(),
        });
    }
    Ok((b.finish(), stats))
}

/// Writes the gzipped heap profile of `rt` to `out`.
pub fn write_heap_profile(rt: &Runtime<'_>, out: &mut dyn Write) -> Result<HeapProfileStats> {
    let (profile, stats) = heap_profile(rt)?;
    write_gzipped(&profile, out)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cyc(allocs: u64, frees: u64, ab: u64, fb: u64) -> MemCycle {
        MemCycle {
            allocs,
            frees,
            alloc_bytes: ab,
            free_bytes: fb,
        }
    }

    fn bucket(active: MemCycle, future: [MemCycle; 3]) -> MemBucket {
        MemBucket {
            size: 16,
            stack: vec![0x401000, 0x402000],
            active,
            future,
        }
    }

    #[test]
    fn published_counts_include_the_unflushed_cycle_only() {
        let z = MemCycle::default();
        let b = bucket(cyc(3, 1, 48, 16), [z, cyc(1, 0, 16, 0), cyc(5, 0, 80, 0)]);
        // Cycle 4: index 1 is flushed into active, index 2 (future allocations) is not.
        let r = mem_profile(&[b], 4, 26);
        assert_eq!(r[0].alloc_objects, 4);
        assert_eq!(r[0].free_objects, 1);
        assert_eq!(r[0].alloc_bytes, 64);
        assert_eq!(r[0].free_bytes, 16);
    }

    #[test]
    fn without_a_published_cycle_every_future_cycle_counts() {
        let z = MemCycle::default();
        let a = bucket(z, [cyc(1, 0, 16, 0), z, cyc(2, 0, 32, 0)]);
        let b = bucket(z, [z, cyc(0, 0, 0, 0), z]);
        let r = mem_profile(&[a, b], 1, 26);
        assert_eq!(r[0].alloc_objects, 3);
        assert_eq!(r[0].alloc_bytes, 48);
        assert_eq!(r[1].alloc_objects, 0);
    }

    #[test]
    fn go127_bytes_come_from_the_bucket_size() {
        let z = MemCycle::default();
        let b = bucket(cyc(3, 1, 0, 0), [z, z, z]);
        let r = mem_profile(&[b], 0, 27);
        assert_eq!(r[0].alloc_bytes, 48);
        assert_eq!(r[0].free_bytes, 16);
        assert_eq!(r[0].object_size, 16);
    }

    #[test]
    fn old_records_keep_32_pcs_up_to_the_first_zero() {
        let z = MemCycle::default();
        let mut b = bucket(cyc(1, 0, 8, 0), [z, z, z]);
        b.stack = (1..=40).collect();
        assert_eq!(mem_profile(&[b.clone()], 0, 22)[0].stack.len(), 32);
        assert_eq!(mem_profile(&[b.clone()], 0, 23)[0].stack.len(), 40);
        b.stack = vec![5, 6, 0, 7];
        assert_eq!(mem_profile(&[b], 0, 21)[0].stack, vec![5, 6]);
    }

    #[test]
    fn scaling_follows_the_rate() {
        assert_eq!(scale_heap_sample(4, 64, 1), (4, 64));
        assert_eq!(scale_heap_sample(0, 64, 512), (0, 0));
        // avg 512 at rate 512: scale 1/(1-e^-1) = 1.58197...
        assert_eq!(scale_heap_sample(10, 5120, 512), (15, 8099));
        assert_eq!(scale_heap_sample_sized(4, 16, 1), (4, 64));
        assert_eq!(scale_heap_sample_sized(10, 512, 512), (15, 8099));
    }
}
