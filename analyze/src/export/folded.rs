//! Folded stacks (Brendan Gregg's `stackcollapse` format): one line per
//! distinct stack, `root;caller;...;leaf COUNT`, weight = goroutines.
//!
//! Why from the pprof profile: the folded file then draws exactly the
//! flame graph `go tool pprof -http` draws for our `export pprof` (same
//! goroutine set, same frames: runtime frames included, `runtime.goexit`
//! and elided wrappers left out, inlined calls expanded), so the two
//! exports never disagree. Labels are not part of a folded line; stacks
//! that differ only by labels are summed.
//!
//! Invariants: lines are sorted by count descending, then by text; no
//! frame name contains `;` or a newline (any that would is replaced by `_`),
//! so every line splits back into the same frames.

use std::collections::HashMap;
use std::io::Write;

use super::pprof::proto::Profile;
use crate::error::Result;
use crate::runtime::Runtime;

/// Folded lines of a profile: (frames root first joined by `;`, count).
pub fn fold_profile(p: &Profile) -> Vec<(String, u64)> {
    let string = |i: i64| -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| p.string_table.get(i))
            .map_or("", String::as_str)
    };
    let funcs: HashMap<u64, &str> = p.function.iter().map(|f| (f.id, string(f.name))).collect();
    let locs: HashMap<u64, Vec<&str>> = p
        .location
        .iter()
        .map(|l| {
            let names = l
                .line
                .iter()
                .map(|line| funcs.get(&line.function_id).copied().unwrap_or("?"))
                .collect();
            (l.id, names)
        })
        .collect();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for s in &p.sample {
        // Leaf first in the profile, inlined callee first in a location:
        // reversing both gives root first.
        let mut frames: Vec<String> = Vec::new();
        for id in s.location_id.iter().rev() {
            if let Some(names) = locs.get(id) {
                for n in names.iter().rev() {
                    frames.push(clean(n));
                }
            }
        }
        let count = s.value.first().copied().unwrap_or(0).max(0) as u64;
        *counts.entry(frames.join(";")).or_default() += count;
    }
    let mut lines: Vec<(String, u64)> = counts.into_iter().collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    lines
}

fn clean(name: &str) -> String {
    if name.is_empty() {
        return "?".to_string();
    }
    name.replace([';', '\n', '\r'], "_")
}

/// Writes the folded goroutine stacks of `rt`; returns the number of lines.
pub fn write_folded(rt: &Runtime<'_>, out: &mut dyn Write) -> Result<usize> {
    let (profile, _) = super::pprof::goroutine_profile(rt)?;
    let lines = fold_profile(&profile);
    let mut w = std::io::BufWriter::new(out);
    for (stack, count) in &lines {
        writeln!(w, "{stack} {count}")?;
    }
    w.flush()?;
    Ok(lines.len())
}

#[cfg(test)]
mod tests {
    use super::super::pprof::proto::{Function, Line, Location, Sample};
    use super::*;

    #[test]
    fn folds_root_first_and_sums_equal_stacks() {
        let strings = [
            "",
            "runtime.gopark",
            "main.inner",
            "main.outer",
            "main.main",
        ];
        let p = Profile {
            string_table: strings.iter().map(|s| s.to_string()).collect(),
            function: (1..=4)
                .map(|i| Function {
                    id: i,
                    name: i as i64,
                    ..Default::default()
                })
                .collect(),
            location: vec![
                Location {
                    id: 1,
                    line: vec![Line {
                        function_id: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                Location {
                    id: 2,
                    line: vec![
                        Line {
                            function_id: 2,
                            ..Default::default()
                        },
                        Line {
                            function_id: 3,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                Location {
                    id: 3,
                    line: vec![Line {
                        function_id: 4,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            sample: vec![
                Sample {
                    location_id: vec![1, 2],
                    value: vec![3],
                    label: vec![],
                },
                Sample {
                    location_id: vec![1, 2],
                    value: vec![2],
                    label: vec![],
                },
                Sample {
                    location_id: vec![1, 3],
                    value: vec![9],
                    label: vec![],
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            fold_profile(&p),
            vec![
                ("main.main;runtime.gopark".to_string(), 9),
                ("main.outer;main.inner;runtime.gopark".to_string(), 5),
            ]
        );
        assert_eq!(clean("a;b"), "a_b");
    }
}
