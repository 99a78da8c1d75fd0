//! `rdlv report`: one self-contained HTML page for a ticket reader.
//!
//! Why server-side HTML: the page must be readable from a ticket attachment
//! with JavaScript off, and make no network request (no fonts, scripts or
//! images from anywhere; the favicon is an empty `data:` URL). Everything —
//! capture facts, the goroutine groups with counts, statuses and wait-time
//! ranges, each group's stack in a `<details>`, and the icicle graph (rows
//! of absolutely positioned boxes, widths in percent) — is plain HTML and
//! CSS. The small inline script only adds the search box (filtering groups
//! and dimming icicle boxes) and click-to-search on icicle boxes.
//!
//! Invariants: every text from the snapshot is HTML-escaped; the page size is
//! bounded independently of the goroutine count: at most [`MAX_GROUPS`]
//! groups, [`MAX_IDS`] ids per group, [`MAX_ICICLE_NODES`] icicle boxes, each
//! at least [`MIN_ICICLE_FRACTION`] of the total wide.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use crate::error::Result;
use crate::runtime::format::{Group, GroupKey, Grouper};
use crate::runtime::traceback::GOROUTINE_BATCH;
use crate::runtime::{Goroutine, Runtime};

/// Groups shown in full; the rest are summed in one line.
pub const MAX_GROUPS: usize = 2000;
/// Goroutine ids listed per group.
pub const MAX_IDS: usize = 100;
/// Boxes drawn in the icicle graph.
pub const MAX_ICICLE_NODES: usize = 4000;
/// Narrowest icicle box drawn, as a fraction of all goroutines.
pub const MIN_ICICLE_FRACTION: f64 = 0.001;
/// Deepest icicle row drawn.
pub const MAX_ICICLE_DEPTH: usize = 64;

/// What the report shows, gathered from the runtime.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// (label, value) rows of capture facts.
    pub facts: Vec<(String, String)>,
    /// Goroutines listed.
    pub goroutines: usize,
    /// Groups, biggest first.
    pub groups: Vec<GroupView>,
}

/// One group as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct GroupView {
    /// Members.
    pub count: usize,
    /// Status text (`chan receive`).
    pub status: String,
    /// Wait minutes (min, max).
    pub minutes: (i64, i64),
    /// Whether the exemplar is locked to its thread.
    pub locked: bool,
    /// First ids.
    pub ids: Vec<u64>,
    /// Visible frames, innermost first: (function, file, line).
    pub frames: Vec<(String, String, u32)>,
    /// `created by` line, if any.
    pub created_by: Option<String>,
    /// pprof labels of the exemplar.
    pub labels: Vec<(String, String)>,
}

/// Collects the report data of a snapshot.
pub fn collect(rt: &Runtime<'_>) -> Result<ReportData> {
    let mut grouper = Grouper::default();
    rt.for_each_goroutine_batch(
        GOROUTINE_BATCH,
        |g: Goroutine| {
            if g.system {
                return None;
            }
            let key = rt.group_key(&g);
            let minutes = rt.wait_minutes(&g.g);
            Some((key, minutes, g))
        },
        |batch: Vec<(GroupKey, i64, Goroutine)>| -> Result<()> {
            for (key, minutes, g) in batch {
                grouper.add(key, minutes, g);
            }
            Ok(())
        },
    )?;
    let goroutines = grouper.members();
    let groups: Vec<GroupView> = grouper
        .finish()
        .iter()
        .map(|group| group_view(rt, group))
        .collect();
    Ok(ReportData {
        facts: facts(rt, goroutines, groups.len()),
        goroutines,
        groups,
    })
}

fn group_view(rt: &Runtime<'_>, group: &Group) -> GroupView {
    let g = &group.exemplar;
    let frames = rt
        .visible_frames(g)
        .into_iter()
        .filter_map(|i| g.logical.get(i))
        .map(|lf| (rt.print_name(&lf.name), lf.file.to_string(), lf.line))
        .collect();
    let created_by = rt.created_by(&g.g).map(|(func, file, line, _)| {
        if g.g.parent_goid != 0 {
            format!("{func} in goroutine {} at {file}:{line}", g.g.parent_goid)
        } else {
            format!("{func} at {file}:{line}")
        }
    });
    GroupView {
        count: group.goids.len(),
        status: rt.status_string(&g.g),
        minutes: group.minutes,
        locked: g.g.lockedm != 0,
        ids: group.goids.iter().take(MAX_IDS).copied().collect(),
        frames,
        created_by,
        labels: rt.labels(&g.g),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix nanoseconds (proleptic Gregorian).
pub fn utc_text(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn facts(rt: &Runtime<'_>, goroutines: usize, groups: usize) -> Vec<(String, String)> {
    let meta = rt.target().snapshot().metadata();
    let p = &meta.process;
    let c = &meta.capture;
    let mut f = vec![
        (
            "Process".to_string(),
            format!("pid {} {}", p.pid, p.exe_path),
        ),
        ("Command line".to_string(), p.cmdline.join(" ")),
        (
            "Go version".to_string(),
            p.go_version.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("Captured at".to_string(), utc_text(c.clock_realtime_ns)),
        (
            "Host".to_string(),
            format!("{} (Linux {}, {})", c.hostname, c.kernel_release, c.arch),
        ),
        (
            "Pause".to_string(),
            format!(
                "{:.3} ms ({} capture)",
                c.pause_us as f64 / 1000.0,
                if c.method.is_empty() {
                    "plain"
                } else {
                    &c.method
                }
            ),
        ),
        ("Threads".to_string(), meta.threads.len().to_string()),
        (
            "Goroutines".to_string(),
            format!("{goroutines} user goroutines in {groups} groups"),
        ),
        (
            "Memory captured".to_string(),
            format!("{:.1} MiB", c.bytes_captured as f64 / 1_048_576.0),
        ),
        ("Captured by".to_string(), c.tool_version.clone()),
    ];
    for w in &c.warnings {
        f.push(("Capture warning".to_string(), w.clone()));
    }
    f
}

/// HTML-escapes text (also fit for attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn minutes_text(m: (i64, i64)) -> String {
    match m {
        (0, 0) => String::new(),
        (a, b) if a == b => format!("{a} min"),
        (a, b) => format!("{a}–{b} min"),
    }
}

/// A node of the icicle tree (root first).
#[derive(Default)]
struct Node {
    name: String,
    count: usize,
    children: Vec<usize>,
    index: HashMap<String, usize>,
}

/// Icicle boxes: (depth, left fraction, width fraction, name, count).
fn icicle(data: &ReportData) -> Vec<(usize, f64, f64, String, usize)> {
    let mut nodes = vec![Node::default()];
    for g in &data.groups {
        nodes[0].count += g.count;
        let mut cur = 0usize;
        for (func, _, _) in g.frames.iter().rev().take(MAX_ICICLE_DEPTH) {
            let next = match nodes[cur].index.get(func) {
                Some(&n) => n,
                None => {
                    let n = nodes.len();
                    nodes.push(Node {
                        name: func.clone(),
                        ..Node::default()
                    });
                    nodes[cur].index.insert(func.clone(), n);
                    nodes[cur].children.push(n);
                    n
                }
            };
            nodes[next].count += g.count;
            cur = next;
        }
    }
    let total = nodes[0].count.max(1) as f64;
    let mut out = Vec::new();
    // Breadth first so the widest (shallowest) boxes win the node budget.
    let mut queue = std::collections::VecDeque::from([(0usize, 0usize, 0.0f64)]);
    while let Some((n, depth, left)) = queue.pop_front() {
        if out.len() >= MAX_ICICLE_NODES {
            break;
        }
        let node = &nodes[n];
        let width = node.count as f64 / total;
        if width < MIN_ICICLE_FRACTION {
            continue;
        }
        let name = if n == 0 {
            "all goroutines".to_string()
        } else {
            node.name.clone()
        };
        out.push((depth, left, width, name, node.count));
        let mut children = node.children.clone();
        children.sort_by(|a, b| nodes[*b].count.cmp(&nodes[*a].count));
        let mut x = left;
        for c in children {
            queue.push_back((c, depth + 1, x));
            x += nodes[c].count as f64 / total;
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}\
table.facts td{padding:1px 12px 1px 0;vertical-align:top}table.facts td:first-child{color:#666}\
#icicle{position:relative;border:1px solid #ddd;overflow:hidden}\
#icicle div{position:absolute;height:18px;box-sizing:border-box;border:1px solid #fff;\
background:#f4a261;font:11px/16px monospace;white-space:nowrap;overflow:hidden;padding:0 3px;cursor:pointer}\
#icicle div.d0{background:#aaa}#icicle div.dim{opacity:.25}\
details{border-bottom:1px solid #eee;padding:3px 0}summary{cursor:pointer}\
.count{display:inline-block;min-width:5em;font-weight:bold}.st{color:#a0522d}.wait{color:#666}\
.top{font-family:monospace}pre{margin:4px 0 4px 2em;font-size:12px}\
.ids{color:#666;font-size:12px;margin-left:2em}#search{width:30em;padding:3px}.hidden{display:none}";

const SCRIPT: &str = "(function(){'use strict';\
var q=document.getElementById('search');var groups=document.querySelectorAll('#groups details');\
var boxes=document.querySelectorAll('#icicle div');var shown=document.getElementById('shown');\
function apply(){var t=q.value.toLowerCase();var n=0;\
for(var i=0;i<groups.length;i++){var g=groups[i];var hit=t===''||g.textContent.toLowerCase().indexOf(t)>=0;\
g.classList.toggle('hidden',!hit);if(hit){n++;}}\
for(var j=0;j<boxes.length;j++){var b=boxes[j];var m=t===''||b.title.toLowerCase().indexOf(t)>=0;b.classList.toggle('dim',!m);}\
shown.textContent=t===''?'':n+' of '+groups.length+' groups match';}\
q.addEventListener('input',apply);\
for(var k=0;k<boxes.length;k++){boxes[k].addEventListener('click',function(e){\
var name=e.currentTarget.getAttribute('data-f');if(name){q.value=name;apply();}});}\
document.getElementById('searchbox').classList.remove('hidden');})();";

/// Renders the page.
pub fn render(data: &ReportData, title: &str) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(title));
    h.push_str("<h2>Capture</h2>\n<table class=\"facts\">\n");
    for (k, v) in &data.facts {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table>\n");

    // Summary table: readable with JavaScript off.
    let _ = writeln!(
        h,
        "<h2>Goroutines: {} in {} groups</h2>",
        data.goroutines,
        data.groups.len()
    );
    h.push_str("<div id=\"searchbox\" class=\"hidden\"><input id=\"search\" type=\"search\" placeholder=\"Search functions, files, statuses, labels\" aria-label=\"search\"> <span id=\"shown\"></span></div>\n");

    let boxes = icicle(data);
    let depth = boxes.iter().map(|b| b.0).max().unwrap_or(0) + 1;
    let _ = writeln!(
        h,
        "<h2>Icicle graph (root at the top, width = goroutines)</h2>\n<div id=\"icicle\" style=\"height:{}px\">",
        depth * 18
    );
    for (d, left, width, name, count) in &boxes {
        let pct = 100.0 * width;
        let _ = writeln!(
            h,
            "<div class=\"d{}\" style=\"top:{}px;left:{:.3}%;width:{:.3}%\" title=\"{} ({} goroutines, {:.1}%)\" data-f=\"{}\">{}</div>",
            usize::from(*d == 0),
            d * 18,
            left * 100.0,
            pct,
            escape(name),
            count,
            pct,
            if *d == 0 { String::new() } else { escape(name) },
            escape(name)
        );
    }
    h.push_str("</div>\n<h2>Groups (biggest first)</h2>\n<div id=\"groups\">\n");
    for g in data.groups.iter().take(MAX_GROUPS) {
        let top = g
            .frames
            .iter()
            .find(|f| !f.0.starts_with("runtime."))
            .or(g.frames.first());
        let mut status = escape(&g.status);
        if g.locked {
            status.push_str(", locked to thread");
        }
        let _ = write!(
            h,
            "<details><summary><span class=\"count\">{}</span> <span class=\"st\">[{}]</span> <span class=\"wait\">{}</span> <span class=\"top\">{}</span></summary>",
            g.count,
            status,
            escape(&minutes_text(g.minutes)),
            top.map(|f| format!("{} {}:{}", escape(&f.0), escape(&f.1), f.2))
                .unwrap_or_default()
        );
        h.push_str("<pre>");
        for (func, file, line) in &g.frames {
            let _ = writeln!(h, "{}\n\t{}:{}", escape(func), escape(file), line);
        }
        if let Some(c) = &g.created_by {
            let _ = writeln!(h, "created by {}", escape(c));
        }
        h.push_str("</pre>");
        if !g.labels.is_empty() {
            let l: Vec<String> = g
                .labels
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                .collect();
            let _ = write!(h, "<div class=\"ids\">labels: {}</div>", l.join(", "));
        }
        let ids: Vec<String> = g.ids.iter().map(u64::to_string).collect();
        let _ = write!(h, "<div class=\"ids\">goroutines: {}", ids.join(" "));
        if g.count > g.ids.len() {
            let _ = write!(h, " … ({} more)", g.count - g.ids.len());
        }
        h.push_str("</div></details>\n");
    }
    h.push_str("</div>\n");
    if data.groups.len() > MAX_GROUPS {
        let rest: usize = data.groups.iter().skip(MAX_GROUPS).map(|g| g.count).sum();
        let _ = writeln!(
            h,
            "<p>{} more groups ({rest} goroutines) not shown: list them with <code>rdlv goroutines SNAP --group</code>.</p>",
            data.groups.len() - MAX_GROUPS
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"ids\">Written by rdlv {}.</p><script>{SCRIPT}</script></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// Writes the report of `rt`; returns (goroutines, groups).
pub fn write_report(rt: &Runtime<'_>, out: &mut dyn Write) -> Result<(usize, usize)> {
    let data = collect(rt)?;
    let exe = &rt.target().snapshot().metadata().process.exe_path;
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let title = format!("rdlv report: {name}");
    out.write_all(render(&data, &title).as_bytes())?;
    Ok((data.goroutines, data.groups.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(count: usize, frames: &[&str]) -> GroupView {
        GroupView {
            count,
            status: "chan receive".into(),
            minutes: (1, 4),
            ids: (1..=count as u64).collect(),
            frames: frames
                .iter()
                .map(|f| (f.to_string(), "/src/<x>.go".to_string(), 7))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn utc_text_formats_known_instants() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc_text(1_764_633_600_000_000_000 + 3_723_000_000_000),
            "2025-12-02 01:02:03 UTC"
        );
        assert_eq!(utc_text(951_782_400_000_000_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn page_escapes_and_shows_groups_without_script() {
        let data = ReportData {
            facts: vec![("Process".into(), "pid 1 <evil>".into())],
            goroutines: 5,
            groups: vec![
                group(3, &["runtime.gopark", "main.wait", "main.main"]),
                group(2, &["main.<b>"]),
            ],
        };
        let page = render(&data, "t");
        assert!(page.contains("pid 1 &lt;evil&gt;"));
        assert!(page.contains("main.&lt;b&gt;"));
        assert!(!page.contains("<evil>"));
        assert!(page.contains("<span class=\"count\">3</span>"));
        assert!(page.contains("1–4 min"));
        assert!(page.contains("/src/&lt;x&gt;.go:7"));
        // The icicle root spans everything; main.main is 60% of it.
        assert!(page.contains("left:0.000%;width:100.000%"));
        assert!(page.contains("width:60.000%"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn icicle_is_bounded() {
        let groups: Vec<GroupView> = (0..MAX_ICICLE_NODES * 2)
            .map(|i| group(1, &[&format!("main.f{i}")]))
            .collect();
        let data = ReportData {
            goroutines: groups.len(),
            groups,
            ..Default::default()
        };
        let boxes = icicle(&data);
        assert!(boxes.len() <= MAX_ICICLE_NODES);
        // Each leaf is 1/8000 of the total: below the minimum width.
        assert_eq!(boxes.len(), 1);
    }
}
