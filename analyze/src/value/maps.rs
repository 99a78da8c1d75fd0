//! Map iteration for both runtime layouts, described by the linker's
//! synthesized DWARF types: classic `hash<K,V>`/`bucket<K,V>` (Go <= 1.23)
//! and Swiss `map<K,V>`/`table<K,V>`/groups (Go 1.24+).

use crate::dwarf::{Field, TypeId, TypeKind};
use crate::memory::Memory;

use super::Program;

/// Keys and elements larger than this are stored behind a pointer (both layouts).
const MAX_INLINE: u64 = 128;
/// Bounds against corrupt headers.
const MAX_BUCKETS: u64 = 1 << 26;
const MAX_DIRECTORY: u64 = 1 << 20;
const MAX_GROUPS: u64 = 1 << 26;

/// A field of a struct type, by name.
pub(crate) fn field(prog: &Program<'_>, st: TypeId, name: &str) -> Option<Field> {
    match &prog.underlying(st).1.kind {
        TypeKind::Struct { fields } => fields.iter().find(|f| f.name == name).cloned(),
        _ => None,
    }
}

fn pointee(prog: &Program<'_>, t: TypeId) -> Option<TypeId> {
    match prog.underlying(t).1.kind {
        TypeKind::Pointer { elem } => elem,
        _ => None,
    }
}

fn array_elem(prog: &Program<'_>, t: TypeId) -> Option<(TypeId, u64)> {
    match prog.underlying(t).1.kind {
        TypeKind::Array { elem, .. } => Some((elem, prog.underlying(elem).1.size)),
        _ => None,
    }
}

fn rd(mem: &dyn Memory, addr: u64) -> Result<u64, String> {
    mem.read_u64(addr).map_err(|e| e.to_string())
}

fn rd_sized(mem: &dyn Memory, addr: u64, size: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    let n = size.min(8) as usize;
    mem.read(addr, &mut b[..n]).map_err(|e| e.to_string())?;
    Ok(u64::from_le_bytes(b))
}

/// The entries of the map whose header (`*hash<K,V>` or `*map<K,V>`, type
/// `header_ptr`) is at `hdr`: the runtime's entry count and up to `limit`
/// (key address, element address) pairs, indirection resolved.
pub(crate) fn entries(
    prog: &Program<'_>,
    mem: &dyn Memory,
    header_ptr: TypeId,
    hdr: u64,
    key: TypeId,
    elem: TypeId,
    limit: u64,
) -> Result<(u64, Vec<(u64, u64)>), String> {
    let st = pointee(prog, header_ptr).ok_or("map header type is not a pointer")?;
    let indirect_key = prog.underlying(key).1.size > MAX_INLINE;
    let indirect_elem = prog.underlying(elem).1.size > MAX_INLINE;
    if field(prog, st, "dirPtr").is_some() {
        swiss(prog, mem, st, hdr, indirect_key, indirect_elem, limit)
    } else if field(prog, st, "buckets").is_some() {
        classic(prog, mem, st, hdr, indirect_key, indirect_elem, limit)
    } else {
        Err(format!("unknown map layout {}", prog.ty(st).name))
    }
}

struct Out {
    entries: Vec<(u64, u64)>,
    limit: u64,
}

impl Out {
    fn full(&self) -> bool {
        self.entries.len() as u64 >= self.limit
    }
    fn push(&mut self, mem: &dyn Memory, k: u64, e: u64, ik: bool, ie: bool) -> Result<(), String> {
        let k = if ik { rd(mem, k)? } else { k };
        let e = if ie { rd(mem, e)? } else { e };
        self.entries.push((k, e));
        Ok(())
    }
}

fn classic(
    prog: &Program<'_>,
    mem: &dyn Memory,
    st: TypeId,
    hdr: u64,
    ik: bool,
    ie: bool,
    limit: u64,
) -> Result<(u64, Vec<(u64, u64)>), String> {
    let f = |n: &str| field(prog, st, n).ok_or_else(|| format!("hash has no field {n}"));
    let count = rd(mem, hdr + f("count")?.offset)?;
    let flags = rd_sized(mem, hdr + f("flags")?.offset, 1)?;
    let b = rd_sized(mem, hdr + f("B")?.offset, 1)?;
    let buckets_f = f("buckets")?;
    let buckets = rd(mem, hdr + buckets_f.offset)?;
    let oldbuckets = rd(mem, hdr + f("oldbuckets")?.offset)?;
    let mut out = Out {
        entries: Vec::new(),
        limit,
    };
    if count == 0 || limit == 0 {
        return Ok((count, out.entries));
    }
    let bt = pointee(prog, buckets_f.ty).ok_or("buckets is not a pointer")?;
    let bsize = prog.underlying(bt).1.size;
    let bf = |n: &str| field(prog, bt, n).ok_or_else(|| format!("bucket has no field {n}"));
    let tophash_off = bf("tophash")?.offset;
    let keys = bf("keys")?;
    let values = bf("values")?;
    let overflow_off = bf("overflow")?.offset;
    let (_, kslot) = array_elem(prog, keys.ty).ok_or("bucket keys is not an array")?;
    let (_, eslot) = array_elem(prog, values.ty).ok_or("bucket values is not an array")?;
    if b >= 64 || (1u64 << b) > MAX_BUCKETS {
        return Err(format!("corrupt map: B = {b}"));
    }
    let nb = 1u64 << b;
    let same_size = flags & 8 != 0;
    let oldmask = if same_size {
        nb - 1
    } else {
        (nb >> 1).saturating_sub(1)
    };
    let mut visited = 0u64;
    let mut walk = |start: u64, out: &mut Out| -> Result<(), String> {
        let mut bucket = start;
        while bucket != 0 && !out.full() {
            visited += 1;
            if visited > MAX_BUCKETS {
                return Err("map overflow chains do not end".into());
            }
            let mut top = [0u8; 8];
            mem.read(bucket.wrapping_add(tophash_off), &mut top)
                .map_err(|e| e.to_string())?;
            for (i, &t) in top.iter().enumerate() {
                // 0 emptyRest, 1 emptyOne, 2..4 evacuated; 5+ a full slot.
                if t >= 5 && !out.full() {
                    let i = i as u64;
                    out.push(
                        mem,
                        bucket + keys.offset + i * kslot,
                        bucket + values.offset + i * eslot,
                        ik,
                        ie,
                    )?;
                }
            }
            bucket = rd(mem, bucket + overflow_off)?;
        }
        Ok(())
    };
    for i in 0..nb {
        if out.full() {
            break;
        }
        if oldbuckets != 0 {
            let ob = i & oldmask;
            let old = oldbuckets + ob * bsize;
            let t0 = rd_sized(mem, old + tophash_off, 1)?;
            let evacuated = (2..=4).contains(&t0);
            if !evacuated {
                // The old bucket still holds the entries of both halves.
                if ob == i {
                    walk(old, &mut out)?;
                }
                continue;
            }
        }
        walk(buckets + i * bsize, &mut out)?;
    }
    Ok((count, out.entries))
}

fn swiss(
    prog: &Program<'_>,
    mem: &dyn Memory,
    st: TypeId,
    hdr: u64,
    ik: bool,
    ie: bool,
    limit: u64,
) -> Result<(u64, Vec<(u64, u64)>), String> {
    let f = |n: &str| field(prog, st, n).ok_or_else(|| format!("map has no field {n}"));
    let used = rd(mem, hdr + f("used")?.offset)?;
    let dir_f = f("dirPtr")?;
    let dir_ptr = rd(mem, hdr + dir_f.offset)?;
    let dir_len = rd(mem, hdr + f("dirLen")?.offset)?;
    let mut out = Out {
        entries: Vec::new(),
        limit,
    };
    if used == 0 || dir_ptr == 0 || limit == 0 {
        return Ok((used, out.entries));
    }
    // dirPtr: **table<K,V>; table.groups.data: *group.
    let table_t = pointee(prog, dir_f.ty)
        .and_then(|t| pointee(prog, t))
        .ok_or("map dirPtr is not **table")?;
    let tf = |n: &str| field(prog, table_t, n).ok_or_else(|| format!("table has no field {n}"));
    let groups_f = tf("groups")?;
    let gref = groups_f.ty;
    let gf =
        |n: &str| field(prog, gref, n).ok_or_else(|| format!("groupReference has no field {n}"));
    let data_f = gf("data")?;
    let mask_f = gf("lengthMask")?;
    let group_t = pointee(prog, data_f.ty).ok_or("groups.data is not a pointer")?;
    let gsize = prog.underlying(group_t).1.size;
    let ctrl_off = field(prog, group_t, "ctrl")
        .ok_or("group has no ctrl")?
        .offset;
    // Interleaved slots {key, elem}, or split keys/elems arrays.
    let slot_addr: Box<dyn Fn(u64, u64) -> (u64, u64)> =
        if let Some(slots) = field(prog, group_t, "slots") {
            let (slot_t, slot_size) =
                array_elem(prog, slots.ty).ok_or("group slots is not an array")?;
            let k = field(prog, slot_t, "key").ok_or("slot has no key")?.offset;
            let e = field(prog, slot_t, "elem")
                .ok_or("slot has no elem")?
                .offset;
            let base = slots.offset;
            Box::new(move |g, i| (g + base + i * slot_size + k, g + base + i * slot_size + e))
        } else {
            let keys = field(prog, group_t, "keys").ok_or("group has neither slots nor keys")?;
            let elems = field(prog, group_t, "elems").ok_or("group has no elems")?;
            let (_, ks) = array_elem(prog, keys.ty).ok_or("group keys is not an array")?;
            let (_, es) = array_elem(prog, elems.ty).ok_or("group elems is not an array")?;
            Box::new(move |g, i| (g + keys.offset + i * ks, g + elems.offset + i * es))
        };
    let scan_group = |g: u64, out: &mut Out| -> Result<(), String> {
        let ctrl = rd(mem, g + ctrl_off)?;
        for i in 0..8u64 {
            if out.full() {
                break;
            }
            let c = (ctrl >> (8 * i)) & 0xff;
            // High bit set: empty (0x80) or deleted (0xfe).
            if c & 0x80 == 0 {
                let (k, e) = slot_addr(g, i);
                out.push(mem, k, e, ik, ie)?;
            }
        }
        Ok(())
    };
    if dir_len == 0 {
        // Small map: dirPtr is the single group.
        scan_group(dir_ptr, &mut out)?;
        return Ok((used, out.entries));
    }
    if dir_len > MAX_DIRECTORY {
        return Err(format!("corrupt map: dirLen = {dir_len}"));
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..dir_len {
        if out.full() {
            break;
        }
        let table = rd(mem, dir_ptr + 8 * i)?;
        // A table spans several consecutive directory entries: visit it once.
        if table == 0 || !seen.insert(table) {
            continue;
        }
        let data = rd(mem, table + groups_f.offset + data_f.offset)?;
        let mask = rd(mem, table + groups_f.offset + mask_f.offset)?;
        if mask >= MAX_GROUPS {
            return Err(format!("corrupt map table: lengthMask = {mask}"));
        }
        for g in 0..=mask {
            if out.full() {
                break;
            }
            scan_group(data + g * gsize, &mut out)?;
        }
    }
    Ok((used, out.entries))
}
