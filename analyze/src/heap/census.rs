//! The census: every allocated heap object counted by type, beside the
//! runtime's own accounting read from the same snapshot.
//!
//! Types are exact or absent: a header object (1.22+, scan, 513 B–32 KiB)
//! is named by its malloc header, a large object by `mspan.largeType`;
//! every other object is `unknown` with its size class (never guessed).
//! Bytes are slot bytes (`elemsize`), which is what the runtime's
//! `HeapAlloc` counts, so with every span swept the census total equals
//! `heap_alloc` recomputed from the runtime's counters (see
//! [`RuntimeAccounting`]).

use std::collections::HashMap;

use crate::error::{Result, Unsupported};
use crate::memory::Memory;
use crate::runtime::Runtime;

use super::layout::{HeapLayout, HeapLayoutError};
use super::spans::{Span, MALLOC_HEADER_SIZE, SIZE_CLASS_TO_SIZE};
use super::types::Types;
use super::HeapModel;

/// Bound on `len(allp)` (GOMAXPROCS is capped at 2^20... far below).
const MAX_PROCS: u64 = 1 << 16;
/// Span classes per mcache (`numSpanClasses`).
const NUM_SPAN_CLASSES: u64 = 136;
/// `heapStatsDelta` ring slots of `consistentHeapStats`.
const HEAP_STATS_SLOTS: u64 = 3;

/// What a census entry counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypeKey {
    /// A runtime type by name; `array` when the object holds two or more
    /// elements of it (a slice's backing array).
    Typed {
        /// Type name as reflect prints it.
        name: String,
        /// Backing array of several elements.
        array: bool,
    },
    /// No type is known: by size class (0 = large) and slot size.
    Unknown {
        /// Size class.
        size_class: u8,
        /// Slot bytes.
        elem_size: u64,
    },
}

impl TypeKey {
    /// The name printed for this entry.
    pub fn label(&self) -> String {
        match self {
            TypeKey::Typed { name, array: false } => name.clone(),
            TypeKey::Typed { name, array: true } => format!("[]{name}"),
            TypeKey::Unknown { .. } => "unknown".to_string(),
        }
    }

    /// The name in a listing of the census: [`TypeKey::label`], with the
    /// size class and slot size of an unknown type.
    pub fn listing_label(&self) -> String {
        match self {
            TypeKey::Unknown {
                size_class,
                elem_size,
            } => format!("unknown (size class {size_class}, {elem_size} B)"),
            k => k.label(),
        }
    }
}

/// One census line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeCount {
    /// What is counted.
    pub key: TypeKey,
    /// Objects.
    pub objects: u64,
    /// Slot bytes.
    pub bytes: u64,
}

/// The runtime's own accounting, read from the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeAccounting {
    /// `gcController.heapInUse`: bytes of in-use spans.
    pub heap_inuse: Option<u64>,
    /// `gcController.heapLive`: marked at the last GC plus allocated since
    /// (whole cached spans count as allocated).
    pub heap_live: Option<u64>,
    /// `gcController.heapMarked`: bytes marked by the last GC.
    pub heap_marked: Option<u64>,
    /// `MemStats.HeapAlloc` as `ReadMemStats` would compute it: the
    /// consistent heap stats plus what the Ps' mcaches have not flushed.
    pub heap_alloc: Option<u64>,
    /// Allocated slots by the same counters (`MemStats.HeapObjects` less the
    /// tiny allocations packed into shared 16-byte blocks).
    pub heap_objects: Option<u64>,
}

/// The census of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// Allocated objects.
    pub total_objects: u64,
    /// Their slot bytes.
    pub total_bytes: u64,
    /// Lines sorted by bytes, largest first.
    pub types: Vec<TypeCount>,
    /// In-use spans.
    pub spans: u64,
    /// Bytes of in-use spans.
    pub span_bytes: u64,
    /// Objects in spans not yet swept this cycle (may include garbage from the last GC).
    pub unswept_objects: u64,
    /// Their bytes.
    pub unswept_bytes: u64,
    /// Objects whose header named no valid type (counted as unknown).
    pub bad_headers: u64,
    /// Spans skipped as damaged, with the first descriptions.
    pub damaged_spans: u64,
    /// Descriptions of the first damaged spans.
    pub damage: Vec<String>,
    /// The runtime's accounting.
    pub runtime: RuntimeAccounting,
}

/// Counts every allocated object of `model` by type.
pub fn census(model: &HeapModel<'_, '_>) -> Census {
    let mut types = model.types();
    let mut by: HashMap<TypeKey, (u64, u64)> = HashMap::new();
    let mut c = Census {
        spans: model.heap.spans.len() as u64,
        span_bytes: model.heap.span_bytes(),
        damaged_spans: model.heap.damaged_count,
        damage: model.heap.damaged.clone(),
        ..Census::default()
    };
    let minor = model.layout.minor;
    for s in &model.heap.spans {
        let n = s.allocated_count();
        c.total_objects += n;
        c.total_bytes += n * s.elemsize;
        if !s.swept {
            c.unswept_objects += n;
            c.unswept_bytes += n * s.elemsize;
        }
        let unknown = TypeKey::Unknown {
            size_class: s.sizeclass(),
            elem_size: s.elemsize,
        };
        if s.has_header(minor) {
            for i in s.allocated() {
                let key = header_key(model.mem(), &mut types, s, i).unwrap_or_else(|| {
                    c.bad_headers += 1;
                    unknown.clone()
                });
                let e = by.entry(key).or_default();
                e.0 += 1;
                e.1 += s.elemsize;
            }
            continue;
        }
        let key = if s.sizeclass() == 0 && s.large_type != 0 && n > 0 {
            match types.get(s.large_type) {
                Some(t) => TypeKey::Typed {
                    name: t.name.clone(),
                    array: t.size > 0 && s.elemsize / t.size >= 2 && t.size * 2 <= s.elemsize,
                },
                None => {
                    c.bad_headers += n;
                    unknown
                }
            }
        } else {
            unknown
        };
        if n > 0 {
            let e = by.entry(key).or_default();
            e.0 += n;
            e.1 += n * s.elemsize;
        }
    }
    c.types = by
        .into_iter()
        .map(|(key, (objects, bytes))| TypeCount {
            key,
            objects,
            bytes,
        })
        .collect();
    c.types
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
    c.runtime = accounting(model.rt, &model.layout);
    c
}

/// The type of allocated slot `i` of `s`, as the census counts it: by its
/// malloc header, by `largeType`, or unknown by size class. `None` when a
/// header or `largeType` names no valid type (counted as unknown).
pub fn object_type(
    mem: &dyn Memory,
    types: &mut Types<'_>,
    minor: u32,
    s: &Span,
    i: u64,
) -> Option<TypeKey> {
    if s.has_header(minor) {
        return header_key(mem, types, s, i);
    }
    if s.sizeclass() == 0 && s.large_type != 0 {
        let t = types.get(s.large_type)?;
        return Some(TypeKey::Typed {
            name: t.name.clone(),
            array: t.size > 0 && s.elemsize / t.size >= 2 && t.size * 2 <= s.elemsize,
        });
    }
    Some(TypeKey::Unknown {
        size_class: s.sizeclass(),
        elem_size: s.elemsize,
    })
}

fn header_key(mem: &dyn Memory, types: &mut Types<'_>, s: &Span, i: u64) -> Option<TypeKey> {
    let header = mem.read_u64(s.object(i)).ok()?;
    let t = types.get(header)?;
    let data = s.elemsize - MALLOC_HEADER_SIZE;
    Some(TypeKey::Typed {
        name: t.name.clone(),
        array: t.size > 0 && data / t.size >= 2,
    })
}

/// Reads the runtime's counters. Each figure is `None` when its fields or
/// globals cannot be read.
pub fn accounting(rt: &Runtime<'_>, layout: &HeapLayout) -> RuntimeAccounting {
    let mem = rt.mem();
    let mut a = RuntimeAccounting::default();
    if let Some(gc) = rt.global("runtime.gcController") {
        let f = |name: &str| {
            layout
                .gc_controller
                .opt(name)
                .and_then(|o| mem.read_u64(gc.wrapping_add(o)).ok())
        };
        a.heap_inuse = f("heapInUse");
        a.heap_live = f("heapLive");
        a.heap_marked = f("heapMarked");
    }
    if let Ok((bytes, objects)) = heap_alloc(rt, layout) {
        a.heap_alloc = Some(bytes);
        a.heap_objects = Some(objects);
    }
    a
}

/// `HeapAlloc` and `HeapObjects` as `readmemstats_m` computes them after
/// `flushallmcaches`: the three `heapStatsDelta` slots summed, plus for
/// every P's cached span the slots allocated since it was cached.
fn heap_alloc(rt: &Runtime<'_>, l: &HeapLayout) -> Result<(u64, u64)> {
    let mem = rt.mem();
    let memstats = rt.global("runtime.memstats").ok_or(Unsupported::Stripped {
        symbol: "runtime.memstats",
        tried: super::HEAP_STRIPPED,
    })?;
    let delta = &l.heap_stats_delta;
    if delta.size == 0 {
        return Err(HeapLayoutError::NoSize {
            ty: "runtime.heapStatsDelta",
            minor: l.minor,
        }
        .into());
    }
    let stats = memstats.wrapping_add(l.mstats.req("heapStats")?);
    let (la, lf, sa, sf) = (
        delta.req("largeAlloc")?,
        delta.req("largeFree")?,
        delta.req("smallAllocCount")?,
        delta.req("smallFreeCount")?,
    );
    let mut bytes: i128 = 0;
    let mut objects: i128 = 0;
    for slot in 0..HEAP_STATS_SLOTS {
        let d = stats.wrapping_add(slot * delta.size);
        let buf = mem.read_vec(d, delta.size as usize)?;
        let w = |o: u64| -> i128 {
            let o = o as usize;
            buf.get(o..o + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .map(i128::from)
                .unwrap_or(0)
        };
        bytes += w(la) - w(lf);
        // largeAllocCount/largeFreeCount follow largeAlloc/largeFree.
        objects += w(la + 8) - w(lf + 8);
        for (class, size) in SIZE_CLASS_TO_SIZE.iter().enumerate() {
            let n = w(sa + class as u64 * 8) - w(sf + class as u64 * 8);
            bytes += n * i128::from(*size);
            objects += n;
        }
    }
    // Unflushed mcache allocations.
    let allp = rt.global("runtime.allp").ok_or(Unsupported::Stripped {
        symbol: "runtime.allp",
        tried: super::HEAP_STRIPPED,
    })?;
    let ptr = mem.read_u64(allp)?;
    let n = mem.read_u64(allp.wrapping_add(8))?.min(MAX_PROCS);
    let p_mcache = l.p.req("mcache")?;
    let mc_alloc = l.mcache.req("alloc")?;
    let ac = l.mspan.req("allocCount")?;
    let acbc = l.mspan.req("allocCountBeforeCache")?;
    let es = l.mspan.req("elemsize")?;
    for i in 0..n {
        let p = mem.read_u64(ptr.wrapping_add(i * 8))?;
        if p == 0 {
            continue;
        }
        let mc = mem.read_u64(p.wrapping_add(p_mcache))?;
        if mc == 0 {
            continue;
        }
        let spans = mem.read_vec(mc.wrapping_add(mc_alloc), (NUM_SPAN_CLASSES * 8) as usize)?;
        for chunk in spans.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let s = u64::from_le_bytes(w);
            if s == 0 {
                continue;
            }
            let count = i128::from(mem.read_u16(s.wrapping_add(ac))?);
            let before = i128::from(mem.read_u16(s.wrapping_add(acbc))?);
            let elem = i128::from(mem.read_u64(s.wrapping_add(es))?);
            bytes += (count - before) * elem;
            objects += count - before;
        }
    }
    let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    Ok((clamp(bytes), clamp(objects)))
}

impl Census {
    /// Text report: the runtime's figures and ours, then types by bytes.
    pub fn text(&self, top: Option<usize>) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(
            s,
            "heap: {} objects, {} bytes in {} in-use spans ({} bytes)",
            self.total_objects, self.total_bytes, self.spans, self.span_bytes
        );
        let _ = writeln!(
            s,
            "runtime: heap_alloc {} ({} objects), heap_inuse {}, heap_live {}, heap_marked {}",
            opt(self.runtime.heap_alloc),
            opt(self.runtime.heap_objects),
            opt(self.runtime.heap_inuse),
            opt(self.runtime.heap_live),
            opt(self.runtime.heap_marked)
        );
        if self.unswept_objects > 0 {
            let _ = writeln!(
                s,
                "note: {} objects ({} bytes) are in spans not swept since the last GC and may be garbage",
                self.unswept_objects, self.unswept_bytes
            );
        }
        if self.damaged_spans > 0 {
            let _ = writeln!(s, "warning: {} damaged spans skipped:", self.damaged_spans);
            for d in &self.damage {
                let _ = writeln!(s, "  {d}");
            }
        }
        if self.bad_headers > 0 {
            let _ = writeln!(
                s,
                "warning: {} objects have a malloc header or largeType that is not a type of this binary (counted as unknown)",
                self.bad_headers
            );
        }
        let _ = writeln!(s, "{:>12} {:>14}  type", "objects", "bytes");
        for t in self.types.iter().take(top.unwrap_or(usize::MAX)) {
            let label = t.key.listing_label();
            let _ = writeln!(s, "{:>12} {:>14}  {label}", t.objects, t.bytes);
        }
        s
    }

    /// JSON per CONTRACT.md (`heap --format json`), with extra keys.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        let types: Vec<_> = self
            .types
            .iter()
            .map(|t| match &t.key {
                TypeKey::Unknown {
                    size_class,
                    elem_size,
                } => json!({"type": "unknown", "objects": t.objects, "bytes": t.bytes,
                            "size_class": size_class, "elem_size": elem_size}),
                k => json!({"type": k.label(), "objects": t.objects, "bytes": t.bytes}),
            })
            .collect();
        json!({
            "total": {"objects": self.total_objects, "bytes": self.total_bytes},
            "runtime": {
                "heap_alloc": self.runtime.heap_alloc,
                "heap_objects": self.runtime.heap_objects,
                "heap_inuse": self.runtime.heap_inuse,
                "heap_live": self.runtime.heap_live,
                "heap_marked": self.runtime.heap_marked,
            },
            "spans": {"in_use": self.spans, "bytes": self.span_bytes,
                      "damaged": self.damaged_spans, "damage": self.damage},
            "unswept": {"objects": self.unswept_objects, "bytes": self.unswept_bytes},
            "bad_headers": self.bad_headers,
            "types": types,
        })
    }
}
