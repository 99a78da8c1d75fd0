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
    let offset = if loc == 0 {
        0
    } else {
        zone_offset(prog, loc_f.ty, loc).unwrap_or(0)
    };
    if wall & HAS_MONOTONIC != 0 {
        let sec = ((wall << 1) >> 31) as i64;
        Some(format!(
            "{}, {ext:+}",
            rfc3339(sec + WALL_EPOCH_UNIX, offset)
        ))
    } else {
        Some(rfc3339(ext.checked_sub(UNIX_TO_INTERNAL)?, offset))
    }
}

/// The UTC offset of a `*time.Location` at `loc`: its cached zone, else its
/// only zone (fixed zones).
fn zone_offset(prog: &Program<'_>, loc_ptr_ty: TypeId, loc: u64) -> Option<i64> {
    let TypeKind::Pointer { elem: Some(loc_ty) } = prog.underlying(loc_ptr_ty).1.kind else {
        return None;
    };
    let mem = prog.mem;
    let cache = field(prog, loc_ty, "cacheZone")?;
    let zone_ptr = mem.read_u64(loc.wrapping_add(cache.offset)).ok()?;
    let zone_ty = match prog.underlying(cache.ty).1.kind {
        TypeKind::Pointer { elem: Some(z) } => z,
        _ => return None,
    };
    let off = field(prog, zone_ty, "offset")?.offset;
    if zone_ptr != 0 {
        return Some(i64::from(
            mem.read_u32(zone_ptr.wrapping_add(off)).ok()? as i32
        ));
    }
    let zones = field(prog, loc_ty, "zone")?;
    let base = mem.read_u64(loc.wrapping_add(zones.offset)).ok()?;
    let len = mem
        .read_u64(loc.wrapping_add(zones.offset).wrapping_add(8))
        .ok()?;
    (len == 1 && base != 0).then_some(())?;
    Some(i64::from(mem.read_u32(base.wrapping_add(off)).ok()? as i32))
}
