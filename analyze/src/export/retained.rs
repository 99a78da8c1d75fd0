//! `rdlv export pprof --heap --retained`: the dominator tree as a pprof
//! profile, so that `go tool pprof -http` draws who retains the heap as a
//! flame graph. Each sample is one path of [`RetainedPaths`]: its "call stack" is
//! the root, then the types of the dominators down to the objects (leaf
//! first in the encoding, as pprof wants), its values the objects and bytes
//! at exactly that path; pprof's cumulative figure of a frame is then what
//! that root or those objects retain. There are no addresses: every
//! location is a name (a root as CONTRACT.md writes it, or a type as the
//! census names it), so pprof shows names and never symbolizes.

use std::io::Write;

use super::pprof::{proto, write_gzipped};
use crate::error::Result;
use crate::heap::retain::{retained_stacks, RetainedPaths};
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
    let paths = retained_stacks(model, gs)?;
    Ok(encode(&paths, capture_time(model)))
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

/// Encodes `paths` as a profile: one sample per path holding objects, one
/// function and location per label.
fn encode(paths: &RetainedPaths, time_nanos: i64) -> (proto::Profile, RetainedStats) {
    let mut profile = proto::Profile::default();
    let mut strings: Vec<String> = vec![String::new()];
    let mut add_string = |s: &str| -> i64 {
        strings.push(s.to_string());
        strings.len() as i64 - 1
    };
    let objects = add_string("retained_objects");
    let count = add_string("count");
    let space = add_string("retained_space");
    let bytes = add_string("bytes");
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
    // Location (and function) id of a label, made on first use.
    let mut location_of: Vec<u64> = vec![0; paths.labels.len()];
    let mut stats = RetainedStats {
        cut: paths.cut,
        ..RetainedStats::default()
    };
    for (n, node) in paths.nodes.iter().enumerate().skip(1) {
        if node.objects == 0 {
            continue;
        }
        let mut ids = Vec::new();
        for label in paths.frames(n as u32) {
            let Some(slot) = location_of.get_mut(label as usize) else {
                continue;
            };
            if *slot == 0 {
                let id = profile.location.len() as u64 + 1;
                let name = add_string(&paths.labels[label as usize]);
                profile.function.push(proto::Function {
                    id,
                    name,
                    system_name: name,
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
                *slot = id;
            }
            ids.push(*slot);
        }
        profile.sample.push(proto::Sample {
            location_id: ids,
            value: vec![
                i64::try_from(node.objects).unwrap_or(i64::MAX),
                i64::try_from(node.bytes).unwrap_or(i64::MAX),
            ],
            label: Vec::new(),
        });
        stats.samples += 1;
        stats.objects += node.objects;
        stats.bytes += node.bytes;
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
    use crate::heap::retain::PathNode;
    use prost::Message;

    /// Leaf first, one location per label shared by every sample, values
    /// as given, paths without objects left out, and a round trip through
    /// the encoding.
    #[test]
    fn paths_encode_leaf_first_with_shared_locations() {
        let node = |parent, label, objects, bytes| PathNode {
            parent,
            label,
            objects,
            bytes,
        };
        let paths = RetainedPaths {
            labels: ["main.cache", "*main.Entry", "[]uint8", "(shared)"]
                .map(String::from)
                .to_vec(),
            nodes: vec![
                PathNode::default(),
                node(0, 0, 0, 0),
                node(1, 1, 10, 480),
                node(2, 2, 10, 640),
                node(0, 3, 0, 0),
                node(4, 2, 1, 64),
            ],
            cut: false,
        };
        let (p, stats) = encode(&paths, 7);
        assert_eq!(stats.samples, 3);
        assert_eq!((stats.objects, stats.bytes), (21, 1184));
        assert_eq!(p.location.len(), 4);
        let name = |loc: u64| {
            let f = &p.function[(loc - 1) as usize];
            p.string_table[f.name as usize].clone()
        };
        let deepest = p
            .sample
            .iter()
            .find(|s| s.value == vec![10, 640])
            .expect("sample");
        let frames: Vec<String> = deepest.location_id.iter().map(|&l| name(l)).collect();
        assert_eq!(frames, ["[]uint8", "*main.Entry", "main.cache"]);
        assert_eq!(p.string_table[0], "");
        assert_eq!(
            p.string_table[p.default_sample_type as usize],
            "retained_space"
        );
        let again = proto::Profile::decode(p.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(again, p);
    }
}
