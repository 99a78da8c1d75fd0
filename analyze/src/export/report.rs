//! `rdlv report`: one self-contained HTML page for a ticket reader.
//!
//! Why server-side HTML: the page must be readable from a ticket attachment
//! with JavaScript off, and make no network request (no fonts, scripts or
//! images from anywhere; the favicon is an empty `data:` URL). Everything —
//! capture facts, the goroutine groups with counts, statuses and wait-time
//! ranges, each group's stack in a `<details>`, the icicle graph (rows
//! of absolutely positioned boxes, widths in percent), and the heap views
//! (census, leaked goroutines, the wait-for graph) — is plain HTML and
//! CSS. The small inline script only adds the search box (filtering groups
//! and dimming icicle boxes) and click-to-search on icicle boxes.
//!
//! The heap views are what `rdlv heap`, `rdlv leaks` and `rdlv waits` print,
//! from the same functions of [`crate::heap`]. The heap is the part of a
//! snapshot most often unanalysable (a redacted snapshot has no heap, a Go
//! release without a layout table and without DWARF has no known layout), so
//! a heap failure never fails the page: each of the three sections then says
//! why instead ([`Section`]), and the goroutine part stands.
//!
//! Invariants: every text from the snapshot is HTML-escaped; the page size is
//! bounded independently of the goroutine count and the heap's size: at most
//! [`MAX_GROUPS`] groups, [`MAX_IDS`] ids per group or per list,
//! [`MAX_ICICLE_NODES`] icicle boxes, each at least [`MIN_ICICLE_FRACTION`]
//! of the total wide, [`MAX_HEAP_TYPES`] census rows, [`MAX_LEAK_GROUPS`]
//! leak groups, [`MAX_WAIT_EDGES`] wait edges and [`MAX_CYCLES`] cycles; a
//! cut list says how much was left out and which command lists it all.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use crate::error::{AnalyzeError, Result, Unsupported};
use crate::heap::census::{self, Census, TypeKey};
use crate::heap::leaks::{self, LeakReport};
use crate::heap::waits::{self, WaitGraph};
use crate::heap::HeapModel;
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
/// Census rows (types by bytes) shown; `rdlv heap` lists them all.
pub const MAX_HEAP_TYPES: usize = 100;
/// Groups of leaked goroutines (same stack, same wait) shown.
pub const MAX_LEAK_GROUPS: usize = 200;
/// Wait edges (goroutine -> object -> candidates) shown.
pub const MAX_WAIT_EDGES: usize = 1000;
/// Wait-for cycles shown.
pub const MAX_CYCLES: usize = 100;
/// Frames shown per stack of a heap view (leaked goroutines).
pub const MAX_STACK_FRAMES: usize = 100;

/// Goroutines above which the report leaves the wait-for graph out. It
/// grows with the goroutines (`rdlv waits`: about 0.25 s at 10,000, 2.5 s
/// and 400 MiB at 100,000, bench/README.md); past this the report would
/// spend most of its time and memory on it. `rdlv waits` computes it at
/// any count.
pub const MAX_WAITS_GOROUTINES: usize = 200_000;

/// A heap view, or why the snapshot cannot give it (the error's text,
/// which says what was missing: "redacted", "no heap layout for Go 1.N").
pub type Section<T> = std::result::Result<T, String>;

/// What the report shows, gathered from the runtime.
#[derive(Debug, Clone)]
pub struct ReportData {
    /// (label, value) rows of capture facts.
    pub facts: Vec<(String, String)>,
    /// Goroutines listed.
    pub goroutines: usize,
    /// Groups, biggest first.
    pub groups: Vec<GroupView>,
    /// The heap census (`rdlv heap`).
    pub heap: Section<Census>,
    /// Leaked goroutines (`rdlv leaks`).
    pub leaks: Section<LeakReport>,
    /// The wait-for graph (`rdlv waits`).
    pub waits: Section<WaitGraph>,
}

impl Default for ReportData {
    fn default() -> Self {
        const NONE: &str = "not analysed";
        ReportData {
            facts: Vec::new(),
            goroutines: 0,
            groups: Vec::new(),
            heap: Err(NONE.into()),
            leaks: Err(NONE.into()),
            waits: Err(NONE.into()),
        }
    }
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

/// Collects the report data of a snapshot. Fails only when the goroutines
/// cannot be read; a heap that cannot be analysed fills the heap sections
/// with the reason.
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
    let (heap, leaks, waits) = heap_sections(rt);
    Ok(ReportData {
        facts: facts(rt, goroutines, groups.len()),
        goroutines,
        groups,
        heap,
        leaks,
        waits,
    })
}

/// The three heap views, each from the function its command calls; any
/// failure becomes that section's text.
fn heap_sections(rt: &Runtime<'_>) -> (Section<Census>, Section<LeakReport>, Section<WaitGraph>) {
    let why = |e: AnalyzeError| heap_failure(&e);
    let model = match HeapModel::new(rt) {
        Ok(m) => m,
        Err(e) => {
            let e = why(e);
            return (Err(e.clone()), Err(e.clone()), Err(e));
        }
    };
    let census = census::census(&model);
    let gs = match rt.goroutines() {
        Ok(gs) => gs,
        Err(e) => {
            let e = why(e);
            return (Ok(census), Err(e.clone()), Err(e));
        }
    };
    let leaks = leaks::find_leaks(&model, &gs).map_err(why);
    let waits = if gs.len() > MAX_WAITS_GOROUTINES {
        Err(format!(
            "the snapshot has {} goroutines, more than the {MAX_WAITS_GOROUTINES} the report \
             computes the wait-for graph for (it grows with them: seconds and hundreds of MiB \
             at 100,000)",
            gs.len()
        ))
    } else {
        waits::wait_graph(&model, &gs).map_err(why)
    };
    (Ok(census), leaks, waits)
}

/// Why the heap could not be analysed, and what to do about it.
fn heap_failure(e: &AnalyzeError) -> String {
    let hint = match e {
        AnalyzeError::Redacted { .. } => {
            "a redacted snapshot keeps no heap: report on the original snapshot"
        }
        // Already says to pass the unstripped twin.
        AnalyzeError::Unsupported(Unsupported::Stripped { .. }) => "",
        AnalyzeError::Unsupported(_) | AnalyzeError::HeapLayout(_) | AnalyzeError::Layout(_) => {
            "for a stripped binary, pass its unstripped twin with --exe (the layout then comes from DWARF)"
        }
        AnalyzeError::Unreadable { .. } | AnalyzeError::Corrupt(_) | AnalyzeError::Snapshot(_) => {
            "the heap in this snapshot is incomplete or damaged; `rdlv verify SNAP` checks the file"
        }
        _ => "",
    };
    if hint.is_empty() {
        e.to_string()
    } else {
        format!("{e}; {hint}")
    }
}

fn group_view(rt: &Runtime<'_>, group: &Group) -> GroupView {
    let g = &group.exemplar;
    let frames = rt
        .visible_frames(g)
        .into_iter()
        .filter_map(|i| g.logical.get(i))
        .map(|lf| (rt.print_name(&lf.name), lf.file.to_string(), lf.line))
        .collect();
    let created_by = crate::present::created_by(rt, &g.g).map(|(func, file, line, _)| {
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
.ids{color:#666;font-size:12px;margin-left:2em}#search{width:30em;padding:3px}.hidden{display:none}\
table.data{border-collapse:collapse;font-size:13px}table.data th{text-align:left;border-bottom:1px solid #ccc;padding:2px 10px 2px 0}\
table.data td{padding:1px 10px 1px 0;vertical-align:top}table.data td:first-child,table.data td:nth-child(2){text-align:right}\
#wait-edges td:nth-child(2){text-align:left}td.ty{font-family:monospace}tr.cyc td{color:#b00020;font-weight:bold}\
.deadlock{border-left:4px solid #b00020;background:#fdecee;padding:4px 10px}.unavailable,.warn{color:#8a4b00}\
.note,.more{color:#666}.nav a{margin-right:4px}";

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
    h.push_str(
        "<p class=\"nav\"><a href=\"#goroutines\">Goroutines</a> · <a href=\"#heap\">Heap</a> · \
         <a href=\"#leaks\">Leaks</a> · <a href=\"#waits\">Waits</a></p>\n",
    );
    h.push_str("<h2>Capture</h2>\n<table class=\"facts\">\n");
    for (k, v) in &data.facts {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table>\n");

    // Summary table: readable with JavaScript off.
    let _ = writeln!(
        h,
        "<h2 id=\"goroutines\">Goroutines: {} in {} groups</h2>",
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
    render_heap(&mut h, &data.heap);
    render_leaks(&mut h, &data.leaks);
    render_waits(&mut h, &data.waits);
    let _ = writeln!(
        h,
        "<p class=\"ids\">Written by rdlv {}.</p><script>{SCRIPT}</script></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// The paragraph a section shows instead of its view.
fn unavailable(h: &mut String, what: &str, why: &str, command: &str) {
    let _ = writeln!(
        h,
        "<p class=\"unavailable\">The {what} could not be analysed from this snapshot: {}. \
         The rest of the report does not depend on it; <code>{command}</code> is the same analysis on its own.</p>",
        escape(why)
    );
}

/// `N more ... not shown: list them with COMMAND`.
fn left_out(h: &mut String, n: usize, what: &str, command: &str) {
    if n > 0 {
        let _ = writeln!(
            h,
            "<p class=\"more\">{n} more {what} not shown: list them with <code>{command}</code>.</p>"
        );
    }
}

/// Up to [`MAX_IDS`] goroutine ids, then how many more.
fn id_list(ids: &[u64]) -> String {
    let mut s: Vec<String> = ids.iter().take(MAX_IDS).map(u64::to_string).collect();
    if ids.len() > MAX_IDS {
        s.push(format!("… ({} more)", ids.len() - MAX_IDS));
    }
    s.join(" ")
}

fn opt_bytes(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
}

/// The census as `rdlv heap` prints it: our totals beside the runtime's own
/// accounting, then the largest types by bytes (untyped objects by size class).
fn render_heap(h: &mut String, heap: &Section<Census>) {
    h.push_str("<h2 id=\"heap\">Heap</h2>\n");
    let c = match heap {
        Ok(c) => c,
        Err(why) => return unavailable(h, "heap", why, "rdlv heap SNAP"),
    };
    let rt = &c.runtime;
    let _ = writeln!(
        h,
        "<table class=\"facts\">\n<tr><td>Census</td><td>{} objects, {} bytes in {} in-use spans ({} bytes)</td></tr>\n\
         <tr><td>Runtime accounting</td><td>heap_alloc {} ({} objects), heap_inuse {}, heap_live {}, heap_marked {}</td></tr>",
        c.total_objects,
        c.total_bytes,
        c.spans,
        c.span_bytes,
        opt_bytes(rt.heap_alloc),
        opt_bytes(rt.heap_objects),
        opt_bytes(rt.heap_inuse),
        opt_bytes(rt.heap_live),
        opt_bytes(rt.heap_marked)
    );
    let unknown: Vec<_> = c
        .types
        .iter()
        .filter(|t| matches!(t.key, TypeKey::Unknown { .. }))
        .collect();
    if !unknown.is_empty() {
        let objects: u64 = unknown.iter().map(|t| t.objects).sum();
        let bytes: u64 = unknown.iter().map(|t| t.bytes).sum();
        let _ = writeln!(
            h,
            "<tr><td>Untyped</td><td>{objects} objects, {bytes} bytes in {} size classes \
             (no malloc header or largeType names their type; never guessed)</td></tr>",
            unknown.len()
        );
    }
    h.push_str("</table>\n");
    if c.unswept_objects > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} objects ({} bytes) are in spans not swept since the last GC and may be garbage.</p>",
            c.unswept_objects, c.unswept_bytes
        );
    }
    if c.damaged_spans > 0 {
        let _ = write!(
            h,
            "<p class=\"warn\">{} damaged spans skipped:",
            c.damaged_spans
        );
        for d in c.damage.iter().take(MAX_IDS) {
            let _ = write!(h, "<br>{}", escape(d));
        }
        h.push_str("</p>\n");
    }
    if c.bad_headers > 0 {
        let _ = writeln!(
            h,
            "<p class=\"warn\">{} objects have a malloc header or largeType that is not a type of this binary (counted as unknown).</p>",
            c.bad_headers
        );
    }
    h.push_str(
        "<table class=\"data\" id=\"heap-types\"><thead><tr><th>objects</th><th>bytes</th><th>type</th></tr></thead><tbody>\n",
    );
    for t in c.types.iter().take(MAX_HEAP_TYPES) {
        let label = t.key.listing_label();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"ty\">{}</td></tr>",
            t.objects,
            t.bytes,
            escape(&label)
        );
    }
    h.push_str("</tbody></table>\n");
    if c.types.len() > MAX_HEAP_TYPES {
        let rest = &c.types[MAX_HEAP_TYPES..];
        let objects: u64 = rest.iter().map(|t| t.objects).sum();
        let bytes: u64 = rest.iter().map(|t| t.bytes).sum();
        left_out(
            h,
            rest.len(),
            &format!("types ({objects} objects, {bytes} bytes)"),
            "rdlv heap SNAP",
        );
    }
}

/// A frame as the page prints it: (function, file, line).
type FrameText = (String, String, u32);

/// Leaked goroutines grouped by stack and wait reason, biggest group first
/// (as `rdlv leaks` prints them).
fn render_leaks(h: &mut String, leaks: &Section<LeakReport>) {
    h.push_str("<h2 id=\"leaks\">Leaks</h2>\n");
    let r = match leaks {
        Ok(r) => r,
        Err(why) => return unavailable(h, "leaked goroutines", why, "rdlv leaks SNAP"),
    };
    let _ = writeln!(
        h,
        "<p>{} leaked goroutines ({} blocked in channel or sync waits; fixed point after {} rounds): \
         blocked on an object that no goroutine that can still run, and no global, can reach.</p>",
        r.leaked.len(),
        r.blocked,
        r.rounds
    );
    // (frames, reason) -> member ids, in first-seen order.
    let mut index: HashMap<(Vec<FrameText>, String), usize> = HashMap::new();
    let mut groups: Vec<(Vec<FrameText>, String, Vec<u64>)> = Vec::new();
    for l in &r.leaked {
        let frames: Vec<FrameText> = l
            .frames
            .iter()
            .map(|f| (f.function.clone(), f.file.clone(), f.line))
            .collect();
        let key = (frames, l.wait_reason.clone());
        match index.get(&key) {
            Some(&i) => groups[i].2.push(l.id),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key.0, key.1, vec![l.id]));
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.2.len()));
    if groups.is_empty() {
        return;
    }
    h.push_str("<div id=\"leak-groups\">\n");
    for (frames, reason, ids) in groups.iter().take(MAX_LEAK_GROUPS) {
        let top = frames
            .iter()
            .find(|f| !f.0.starts_with("runtime."))
            .or(frames.first());
        let _ = write!(
            h,
            "<details open><summary><span class=\"count\">{}</span> <span class=\"st\">[{}]</span> <span class=\"top\">{}</span></summary><pre>",
            ids.len(),
            escape(reason),
            top.map(|f| format!("{} {}:{}", escape(&f.0), escape(&f.1), f.2))
                .unwrap_or_default()
        );
        for (func, file, line) in frames.iter().take(MAX_STACK_FRAMES) {
            let _ = writeln!(h, "{}\n\t{}:{}", escape(func), escape(file), line);
        }
        if frames.len() > MAX_STACK_FRAMES {
            let _ = writeln!(h, "… {} more frames", frames.len() - MAX_STACK_FRAMES);
        }
        let _ = writeln!(
            h,
            "</pre><div class=\"ids\">goroutines: {}</div></details>",
            id_list(ids)
        );
    }
    h.push_str("</div>\n");
    left_out(
        h,
        groups.len().saturating_sub(MAX_LEAK_GROUPS),
        "groups of leaked goroutines",
        "rdlv leaks SNAP",
    );
}

/// The wait-for graph as `rdlv waits` prints it, cycles (likely deadlocks)
/// first, then every edge with its waiter marked when it is in a cycle.
fn render_waits(h: &mut String, waits: &Section<WaitGraph>) {
    h.push_str("<h2 id=\"waits\">Waits</h2>\n");
    let w = match waits {
        Ok(w) => w,
        Err(why) => return unavailable(h, "wait-for graph", why, "rdlv waits SNAP"),
    };
    let in_cycle: std::collections::HashSet<u64> = w.cycles.iter().flatten().copied().collect();
    if w.cycles.is_empty() {
        h.push_str("<p>No wait cycles.</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<div class=\"deadlock\" id=\"cycles\"><b>{} cycles of blocked goroutines (likely deadlocks):</b><ul>",
            w.cycles.len()
        );
        for c in w.cycles.iter().take(MAX_CYCLES) {
            let ids: Vec<String> = c.iter().take(MAX_IDS).map(u64::to_string).collect();
            let more = if c.len() > MAX_IDS {
                format!(" … ({} more)", c.len() - MAX_IDS)
            } else {
                String::new()
            };
            let _ = writeln!(h, "<li>goroutines {}{more}</li>", ids.join(" &lt;-&gt; "));
        }
        h.push_str("</ul></div>\n");
        left_out(
            h,
            w.cycles.len().saturating_sub(MAX_CYCLES),
            "cycles",
            "rdlv waits SNAP",
        );
    }
    if !w.edges.is_empty() {
        h.push_str(
            "<table class=\"data\" id=\"wait-edges\"><thead><tr><th>goroutine</th><th>waits in</th>\
             <th>on object</th><th>candidates (other goroutines whose stacks reach it)</th></tr></thead><tbody>\n",
        );
        for e in w.edges.iter().take(MAX_WAIT_EDGES) {
            let mark = if in_cycle.contains(&e.waiter) {
                " class=\"cyc\""
            } else {
                ""
            };
            let others: Vec<u64> = e.others().collect();
            let by = if others.is_empty() {
                "none".to_string()
            } else {
                id_list(&others)
            };
            let _ = writeln!(
                h,
                "<tr{mark}><td>{}</td><td>{}</td><td class=\"ty\">{}</td><td>{by}</td></tr>",
                e.waiter,
                escape(&e.reason),
                escape(&format!("{}{}", e.object_text(), e.variable_text()))
            );
        }
        h.push_str("</tbody></table>\n");
        left_out(
            h,
            w.edges.len().saturating_sub(MAX_WAIT_EDGES),
            "wait edges",
            "rdlv waits SNAP",
        );
    }
    if !w.never.is_empty() {
        h.push_str("<p>Can never be woken (<code>select {}</code>, nil channels):</p><ul>\n");
        for (g, r) in w.never.iter().take(MAX_WAIT_EDGES) {
            let _ = writeln!(h, "<li>goroutine {g} [{}]</li>", escape(r));
        }
        h.push_str("</ul>\n");
        left_out(
            h,
            w.never.len().saturating_sub(MAX_WAIT_EDGES),
            "goroutines that can never be woken",
            "rdlv waits SNAP",
        );
    }
    if w.truncated {
        let _ = writeln!(
            h,
            "<p class=\"note\">Some goroutines' reach was cut at {} objects or not computed: edges may be missing.</p>",
            waits::MAX_REACH_PER_GOROUTINE
        );
    }
}

/// What a written report holds, for the one-line summary on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// User goroutines listed.
    pub goroutines: usize,
    /// Their groups.
    pub groups: usize,
    /// The heap sections in a phrase: their sizes, or which are missing and why.
    pub heap: String,
    /// Bytes of HTML written.
    pub bytes: usize,
}

/// The heap sections of `data` in one phrase.
fn heap_phrase(data: &ReportData) -> String {
    let census = match &data.heap {
        Ok(c) => format!("heap census of {} types", c.types.len()),
        Err(why) => return format!("no heap sections ({why})"),
    };
    let leaks = match &data.leaks {
        Ok(l) => format!("{} leaked goroutines", l.leaked.len()),
        Err(why) => format!("no leaks section ({why})"),
    };
    let waits = match &data.waits {
        Ok(w) => format!("{} wait cycles", w.cycles.len()),
        Err(why) => format!("no waits section ({why})"),
    };
    format!("{census}, {leaks}, {waits}")
}

/// Writes the report of `rt`.
pub fn write_report(rt: &Runtime<'_>, out: &mut dyn Write) -> Result<ReportSummary> {
    let data = collect(rt)?;
    let exe = &rt.target().snapshot().metadata().process.exe_path;
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let title = format!("rdlv report: {name}");
    let page = render(&data, &title);
    out.write_all(page.as_bytes())?;
    Ok(ReportSummary {
        goroutines: data.goroutines,
        groups: data.groups.len(),
        heap: heap_phrase(&data),
        bytes: page.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::waits::WaitEdge;

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
            ..Default::default()
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

    fn frame(function: &str, line: u32) -> crate::present::StackRow {
        crate::present::StackRow {
            pc: 0x1000,
            sym_pc: 0xfff,
            sp: 0,
            cfa: 0,
            function: function.into(),
            entry: 0x1000,
            file: "/src/zoo.go".into(),
            line,
            inlined: false,
            inline_depth: 0,
            physical_index: 0,
        }
    }

    fn leak(id: u64, reason: &str, frames: &[(&str, u32)]) -> crate::heap::leaks::Leak {
        crate::heap::leaks::Leak {
            id,
            wait_reason: reason.into(),
            object: Some(0xc000010000),
            objects: vec![0xc000010000],
            frames: frames.iter().map(|(f, l)| frame(f, *l)).collect(),
        }
    }

    fn edge(waiter: u64, object: u64, by: &[u64]) -> WaitEdge {
        WaitEdge {
            waiter,
            reason: "sync.Mutex.Lock".into(),
            object,
            object_kind: "sync.Mutex".into(),
            container: Some((object - 8, Some("main.Account<T>".into()))),
            global: None,
            variable: None,
            reached_by: std::sync::Arc::from(by),
        }
    }

    fn heap_data() -> ReportData {
        use crate::heap::census::{RuntimeAccounting, TypeCount};
        let typed = |name: &str, objects, bytes| TypeCount {
            key: TypeKey::Typed {
                name: name.into(),
                array: false,
            },
            objects,
            bytes,
        };
        let census = Census {
            total_objects: 1603,
            total_bytes: 1_050_000,
            types: vec![
                typed("main.Big", 3, 1_000_000),
                TypeCount {
                    key: TypeKey::Unknown {
                        size_class: 2,
                        elem_size: 16,
                    },
                    objects: 1500,
                    bytes: 24_000,
                },
                typed("main.Pair[<evil>]", 100, 26_000),
            ],
            spans: 12,
            span_bytes: 1_100_000,
            runtime: RuntimeAccounting {
                heap_alloc: Some(1_050_000),
                heap_objects: Some(1603),
                heap_inuse: Some(1_100_000),
                heap_live: None,
                heap_marked: Some(900_000),
            },
            ..Default::default()
        };
        let stack = [
            ("runtime.gopark", 1),
            ("main.leakSend", 42),
            ("main.main", 9),
        ];
        let leaks = LeakReport {
            leaked: vec![
                leak(21, "chan send", &stack),
                leak(22, "chan send", &stack),
                leak(30, "sync.WaitGroup.Wait", &[("main.waitForever", 77)]),
            ],
            blocked: 7,
            rounds: 2,
            reachable_objects: 0,
        };
        let waits = WaitGraph {
            edges: vec![
                edge(40, 0xc000100008, &[41]),
                edge(41, 0xc000200008, &[40]),
                edge(50, 0xc000300008, &[]),
            ],
            never: vec![(60, "select (no cases)".into())],
            cycles: vec![vec![40, 41]],
            truncated: false,
            leaked: vec![21, 22, 30, 40, 41],
        };
        ReportData {
            heap: Ok(census),
            leaks: Ok(leaks),
            waits: Ok(waits),
            ..Default::default()
        }
    }

    /// The text between `<h2 id="ID">` and the next `<h2`.
    fn section<'a>(page: &'a str, id: &str) -> &'a str {
        let start = page
            .find(&format!("<h2 id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no section {id}"));
        let rest = &page[start + 4..];
        let end = rest.find("<h2").unwrap_or(rest.len());
        &rest[..end]
    }

    #[test]
    fn heap_sections_show_census_leaks_and_cycles() {
        let page = render(&heap_data(), "t");
        let heap = section(&page, "heap");
        assert!(heap.contains("1603 objects, 1050000 bytes in 12 in-use spans (1100000 bytes)"));
        assert!(heap.contains(
            "heap_alloc 1050000 (1603 objects), heap_inuse 1100000, heap_live ?, heap_marked 900000"
        ));
        assert!(heap.contains("<tr><td>3</td><td>1000000</td><td class=\"ty\">main.Big</td></tr>"));
        assert!(heap.contains("unknown (size class 2, 16 B)"));
        assert!(heap.contains("1500 objects, 24000 bytes in 1 size classes"));
        assert!(heap.contains("main.Pair[&lt;evil&gt;]") && !heap.contains("<evil>"));
        // Rows in census order (by bytes).
        let big = heap.find("main.Big").unwrap();
        let unknown = heap.find("unknown (size class").unwrap();
        assert!(big < unknown);

        let leaks = section(&page, "leaks");
        assert!(leaks.contains("3 leaked goroutines (7 blocked"));
        // 21 and 22 share a stack: one group of 2, listed first.
        let g2 = leaks
            .find("<span class=\"count\">2</span> <span class=\"st\">[chan send]</span> <span class=\"top\">main.leakSend /src/zoo.go:42</span>")
            .expect("group of 2");
        let g1 = leaks
            .find("<span class=\"count\">1</span> <span class=\"st\">[sync.WaitGroup.Wait]</span>")
            .expect("group of 1");
        assert!(g2 < g1);
        assert!(leaks.contains("goroutines: 21 22</div>"));
        assert!(leaks.contains("goroutines: 30</div>"));
        assert!(leaks.contains("runtime.gopark\n\t/src/zoo.go:1\nmain.leakSend"));

        let waits = section(&page, "waits");
        assert!(waits.contains("1 cycles of blocked goroutines (likely deadlocks)"));
        assert!(waits.contains("<li>goroutines 40 &lt;-&gt; 41</li>"));
        assert!(waits.contains(
            "<tr class=\"cyc\"><td>40</td><td>sync.Mutex.Lock</td><td class=\"ty\">sync.Mutex 0xc000100008 in main.Account&lt;T&gt; at 0xc000100000</td><td>41</td></tr>"
        ));
        assert!(waits.contains("<tr><td>50</td>") && waits.contains("<td>none</td>"));
        assert!(waits.contains("<li>goroutine 60 [select (no cases)]</li>"));
        assert!(!page.contains("more types") && !page.contains("more wait edges"));
    }

    #[test]
    fn unanalysable_heap_says_why_in_each_section() {
        let why = "memory at 0x4000 (+8 bytes) was redacted from this snapshot <x>";
        let data = ReportData {
            heap: Err(why.into()),
            leaks: Err(why.into()),
            waits: Err(why.into()),
            ..heap_data()
        };
        let page = render(&data, "t");
        for (id, command) in [
            ("heap", "rdlv heap SNAP"),
            ("leaks", "rdlv leaks SNAP"),
            ("waits", "rdlv waits SNAP"),
        ] {
            let s = section(&page, id);
            assert!(
                s.contains("could not be analysed from this snapshot: memory at 0x4000 (+8 bytes) was redacted from this snapshot &lt;x&gt;."),
                "{id}: {s}"
            );
            assert!(s.contains(&format!("<code>{command}</code>")), "{id}");
            assert!(!s.contains("<table"), "{id}");
        }
    }

    #[test]
    fn heap_views_are_bounded_and_say_what_was_left_out() {
        let mut data = heap_data();
        if let Ok(c) = &mut data.heap {
            c.types = (0..MAX_HEAP_TYPES as u64 + 5)
                .map(|i| crate::heap::census::TypeCount {
                    key: TypeKey::Typed {
                        name: format!("main.T{i}"),
                        array: false,
                    },
                    objects: 1,
                    bytes: 10,
                })
                .collect();
        }
        if let Ok(w) = &mut data.waits {
            w.edges = (0..MAX_WAIT_EDGES as u64 + 3)
                .map(|i| edge(1000 + i, 0x10000 + 0x100 * i, &[]))
                .collect();
        }
        if let Ok(l) = &mut data.leaks {
            l.leaked = (0..MAX_LEAK_GROUPS as u64 + 1)
                .map(|i| leak(5000 + i, "chan receive", &[("main.f", i as u32)]))
                .chain(
                    (0..MAX_IDS as u64 + 7).map(|i| leak(9000 + i, "chan send", &[("main.g", 1)])),
                )
                .collect();
        }
        let page = render(&data, "t");
        let heap = section(&page, "heap");
        assert_eq!(
            heap.matches("<tr><td>1</td><td>10</td>").count(),
            MAX_HEAP_TYPES
        );
        assert!(heap.contains("5 more types (5 objects, 50 bytes) not shown: list them with <code>rdlv heap SNAP</code>"));
        let waits = section(&page, "waits");
        assert_eq!(
            waits.matches("<td>sync.Mutex.Lock</td>").count(),
            MAX_WAIT_EDGES
        );
        assert!(waits.contains("3 more wait edges not shown"));
        let leaks = section(&page, "leaks");
        assert!(leaks.contains(&format!("<span class=\"count\">{}</span>", MAX_IDS + 7)));
        assert!(leaks.contains("… (7 more)</div>"));
        assert!(leaks.contains("2 more groups of leaked goroutines not shown"));
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
