//! `rdlv export pprof --heap --retained`: the dominator tree as a pprof
//! profile, so that `go tool pprof -http` draws who retains the heap as a
//! flame graph. Each sample is one [`RetainedStack`]: its "call stack" is
//! the root, then the types of the dominators down to the objects (leaf
//! first in the encoding, as pprof wants), its values the objects and bytes
//! at exactly that path; pprof's cumulative figure of a frame is then what
//! that root or those objects retain. There are no addresses: every
//! location is a name (a root as CONTRACT.md writes it, or a type as the
//! census names it), so pprof shows names and never symbolizes.

use std::collections::HashMap;
use std::io::Write;

use super::pprof::{proto, write_gzipped};
use crate::error::Result;
use crate::heap::retain::{retained_stacks, RetainedStack};
use crate::heap::HeapModel;
use crate::runtime::Goroutine;

/// What the retained profile holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetainedStats {
    /// Samples (distinct paths).
    pub samples: usize,
    /// Objects reached.
    pub objects: u64,
    /// Bytes reached.
    pub bytes: u64,
    /// Whether a bound cut the graph or the paths (figures are lower bounds).
    pub cut: bool,
}

/// The retained profile as a message (not yet encoded).
pub fn retained_profile(
    model: &HeapModel<'_, '_>,
    gs: &[Goroutine],
) -> Result<(proto::Profile, RetainedStats)> {
    let (stacks, cut) = retained_stacks(model, gs)?;
    Ok(encode(&stacks, cut, capture_time(model)))
}

fn capture_time(model: &HeapModel<'_, '_>) -> i64 {
    let ns = model
        .rt
        .target()
        .snapshot()
        .metadata()
        .capture
        .clock_realtime_ns;
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Encodes `stacks` (frames outermost first) as a profile.
fn encode(stacks: &[RetainedStack], cut: bool, time_nanos: i64) -> (proto::Profile, RetainedStats) {
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_ids: HashMap<String, i64> = HashMap::new();
    let mut string = |s: &str, strings: &mut Vec<String>| -> i64 {
        if let Some(&i) = string_ids.get(s) {
            return i;
        }
        strings.push(s.to_string());
        let i = strings.len() as i64 - 1;
        string_ids.insert(s.to_string(), i);
        i
    };
    let mut profile = proto::Profile::default();
    let objects = string("retained_objects", &mut strings);
    let count = string("count", &mut strings);
    let space = string("retained_space", &mut strings);
    let bytes = string("bytes", &mut strings);
    profile.sample_type = vec![
        proto::ValueType {
            ty: objects,
            unit: count,
        },
        proto::ValueType {
            ty: space,
            unit: bytes,
        },
    ];
    profile.default_sample_type = space;
    // One function and one location per name.
    let mut locations: HashMap<String, u64> = HashMap::new();
    let mut stats = RetainedStats {
        cut,
        ..RetainedStats::default()
    };
    for s in stacks {
        let mut ids = Vec::with_capacity(s.frames.len());
        for name in s.frames.iter().rev() {
            let id = match locations.get(name) {
                Some(&id) => id,
                None => {
                    let id = locations.len() as u64 + 1;
                    let n = string(name, &mut strings);
                    profile.function.push(proto::Function {
                        id,
                        name: n,
                        system_name: n,
                        filename: 0,
                        start_line: 0,
                    });
                    profile.location.push(proto::Location {
                        id,
                        mapping_id: 0,
                        address: 0,
                        line: vec![proto::Line {
                            function_id: id,
                            line: 0,
                            column: 0,
                        }],
                        is_folded: false,
                    });
                    locations.insert(name.clone(), id);
                    id
                }
            };
            ids.push(id);
        }
        profile.sample.push(proto::Sample {
            location_id: ids,
            value: vec![
                i64::try_from(s.objects).unwrap_or(i64::MAX),
                i64::try_from(s.bytes).unwrap_or(i64::MAX),
            ],
            label: Vec::new(),
        });
        stats.samples += 1;
        stats.objects += s.objects;
        stats.bytes += s.bytes;
    }
    profile.time_nanos = time_nanos;
    profile.string_table = strings;
    (profile, stats)
}

/// Writes the gzipped retained profile of `model` to `out`.
pub fn write_retained_profile(
    model: &HeapModel<'_, '_>,
    gs: &[Goroutine],
    out: &mut dyn Write,
) -> Result<RetainedStats> {
    let (profile, stats) = retained_profile(model, gs)?;
    write_gzipped(&profile, out)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn stack(frames: &[&str], objects: u64, bytes: u64) -> RetainedStack {
        RetainedStack {
            frames: frames.iter().map(|s| s.to_string()).collect(),
            objects,
            bytes,
        }
    }

    /// Leaf first, one location per name shared by every sample, values
    /// as given, and a round trip through the encoding.
    #[test]
    fn stacks_encode_leaf_first_with_shared_locations() {
        let stacks = [
            stack(&["main.cache", "*main.Entry", "[]uint8"], 10, 640),
            stack(&["main.cache", "*main.Entry"], 10, 480),
            stack(&["(shared)", "[]uint8"], 1, 64),
        ];
        let (p, stats) = encode(&stacks, false, 7);
        assert_eq!(stats.samples, 3);
        assert_eq!((stats.objects, stats.bytes), (21, 1184));
        assert_eq!(p.location.len(), 4);
        let name = |loc: u64| {
            let f = &p.function[(loc - 1) as usize];
            p.string_table[f.name as usize].clone()
        };
        let first: Vec<String> = p.sample[0].location_id.iter().map(|&l| name(l)).collect();
        assert_eq!(first, ["[]uint8", "*main.Entry", "main.cache"]);
        assert_eq!(p.sample[0].value, vec![10, 640]);
        assert_eq!(p.string_table[0], "");
        assert_eq!(
            p.string_table[p.default_sample_type as usize],
            "retained_space"
        );
        let again = proto::Profile::decode(p.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(again, p);
    }
}
