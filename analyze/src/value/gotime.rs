//! Readable `time.Time` values, as Delve shows them: RFC 3339 from the
//! `wall`/`ext` encoding (time/time.go), in the value's own zone offset.

use crate::dwarf::{TypeId, TypeKind};
use crate::memory::Memory;

use super::maps::field;
use super::text::rfc3339;
use super::Program;

/// Seconds from the wall-clock epoch (1885-01-01) to the Unix epoch.
const WALL_EPOCH_UNIX: i64 = -2_682_288_000;
/// Seconds from 0001-01-01 (the `ext` epoch without monotonic) to the Unix epoch.
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;
const HAS_MONOTONIC: u64 = 1 << 63;

/// `2024-02-29T13:14:15Z` (with `, +ext` when the value carries a monotonic
/// reading), or `None` when the fields cannot be read.
pub(crate) fn time_display(
    prog: &Program<'_>,
    mem: &dyn Memory,
    ty: TypeId,
    addr: u64,
) -> Option<String> {
    let wall = mem
        .read_u64(addr.wrapping_add(field(prog, ty, "wall")?.offset))
        .ok()?;
    let ext = mem
        .read_u64(addr.wrapping_add(field(prog, ty, "ext")?.offset))
        .ok()? as i64;
    let loc_f = field(prog, ty, "loc")?;
    let loc = mem.read_u64(addr.wrapping_add(loc_f.offset)).ok()?;
    let zone = |unix: i64| -> i64 {
        if loc == 0 {
            0
        } else {
            // Unknown offsets show the instant in UTC: never a wrong time.
            zone_offset(prog, loc_f.ty, loc, unix).unwrap_or(0)
        }
    };
    if wall & HAS_MONOTONIC != 0 {
        let sec = ((wall << 1) >> 31) as i64;
        let unix = sec + WALL_EPOCH_UNIX;
        Some(format!("{}, {ext:+}", rfc3339(unix, zone(unix))))
    } else {
        let unix = ext.checked_sub(UNIX_TO_INTERNAL)?;
        Some(rfc3339(unix, zone(unix)))
    }
}

/// Transitions searched in a zone's table (Go's tzdata has a few hundred).
const MAX_TRANSITIONS: u64 = 1 << 16;

/// The UTC offset in effect at `unix` seconds in the `*time.Location` at
/// `loc`, found as `Location.lookup` finds it: the cached zone when the
/// instant is in its range, else the transition table. `None` when the
/// table cannot tell (past the last transition of a zone with a TZ rule,
/// or before the first one) rather than a guess.
fn zone_offset(prog: &Program<'_>, loc_ptr_ty: TypeId, loc: u64, unix: i64) -> Option<i64> {
    let TypeKind::Pointer { elem: Some(loc_ty) } = prog.underlying(loc_ptr_ty).1.kind else {
        return None;
    };
    let mem = prog.mem;
    let at = |name: &str| field(prog, loc_ty, name).map(|f| (loc.wrapping_add(f.offset), f.ty));
    let elem_of = |t: TypeId| match prog.underlying(t).1.kind {
        TypeKind::Pointer { elem } => elem,
        TypeKind::Slice { elem } => Some(elem),
        _ => None,
    };
    let (cache_addr, cache_ty) = at("cacheZone")?;
    let zone_ty = elem_of(cache_ty)?;
    let zone_off = field(prog, zone_ty, "offset")?.offset;
    let offset_at = |z: u64| -> Option<i64> {
        Some(i64::from(
            mem.read_u32(z.wrapping_add(zone_off)).ok()? as i32
        ))
    };
    let cache = mem.read_u64(cache_addr).ok()?;
    let start = mem.read_u64(at("cacheStart")?.0).ok()? as i64;
    let end = mem.read_u64(at("cacheEnd")?.0).ok()? as i64;
    if cache != 0 && start <= unix && unix < end {
        return offset_at(cache);
    }
    let (zones_addr, _) = at("zone")?;
    let zbase = mem.read_u64(zones_addr).ok()?;
    let zlen = mem.read_u64(zones_addr.wrapping_add(8)).ok()?;
    let zsize = prog.underlying(zone_ty).1.size;
    if zlen == 0 {
        return Some(0);
    }
    let (tx_addr, tx_ty) = at("tx")?;
    let tbase = mem.read_u64(tx_addr).ok()?;
    let tlen = mem.read_u64(tx_addr.wrapping_add(8)).ok()?;
    if tlen == 0 {
        return (zlen == 1).then(|| offset_at(zbase)).flatten();
    }
    if tlen > MAX_TRANSITIONS {
        return None;
    }
    let tx_elem = match prog.underlying(tx_ty).1.kind {
        TypeKind::Slice { elem } => elem,
        _ => return None,
    };
    let tsize = prog.underlying(tx_elem).1.size;
    let when_off = field(prog, tx_elem, "when")?.offset;
    let index_off = field(prog, tx_elem, "index")?.offset;
    let when = |i: u64| -> Option<i64> {
        Some(
            mem.read_u64(tbase.wrapping_add(i * tsize + when_off))
                .ok()? as i64,
        )
    };
    if unix < when(0)? {
        return None;
    }
    // The last transition at or before `unix`.
    let (mut lo, mut hi) = (0u64, tlen);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if when(mid)? <= unix {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if lo + 1 == tlen {
        // Past the last transition a TZ rule (`extend`) may apply.
        let (ext_addr, _) = at("extend")?;
        if mem.read_u64(ext_addr.wrapping_add(8)).ok()? != 0 {
            return None;
        }
    }
    let idx = u64::from(
        mem.read_u8(tbase.wrapping_add(lo * tsize + index_off))
            .ok()?,
    );
    if idx >= zlen {
        return None;
    }
    offset_at(zbase.wrapping_add(idx * zsize))
}
