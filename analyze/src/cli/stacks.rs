//! `goroutines`, `bt`, `threads` and `sched`: the runtime's view of the
//! captured process (see CONTRACT.md for the `--format go` and JSON shapes).

use std::io::Write;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::color::Style;
use super::progress::Progress;
use super::UsageError;
use crate::error::{AnalyzeError, NotFound};
use crate::present;
use crate::present::{rows_of, StackRow};
use crate::runtime::cframes::ThreadFrame;
use crate::runtime::format::{Filter, GroupKey, Grouper, LocationKind};
use crate::runtime::traceback::GOROUTINE_BATCH;
use crate::runtime::{Goroutine, Runtime};
use crate::Target;

/// Output formats of `goroutines`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum GoroutinesFormat {
    /// One Delve-style line per goroutine (or per group with `--group`).
    #[default]
    Text,
    /// Exactly the text of Go's `runtime.Stack(buf, true)`.
    Go,
    /// A JSON array, one object per goroutine (CONTRACT.md).
    Json,
}

/// Output formats of `bt`, `threads`, `sched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TextOrJson {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// `goroutines`: which goroutines, shown how (Delve's options and rdlv's).
#[derive(Debug, Clone, Default, Args)]
pub struct GoroutinesArgs {
    /// Show the user location: topmost frame outside private runtime code (default).
    #[arg(short = 'u', long = "user")]
    pub user: bool,
    /// Show the runtime location: the topmost frame.
    #[arg(short = 'r', long = "runtime")]
    pub runtime: bool,
    /// Show where the goroutine was created (the go statement).
    #[arg(short = 'g', long = "go")]
    pub go: bool,
    /// Show the start function.
    #[arg(short = 's', long = "start")]
    pub start: bool,
    /// Show pprof labels.
    #[arg(short = 'l', long = "labels")]
    pub labels: bool,
    /// Also print each goroutine's stack, DEPTH frames deep (Delve's -t; default 10).
    #[arg(
        short = 't',
        long = "stack",
        value_name = "DEPTH",
        num_args = 0..=1,
        default_missing_value = "10"
    )]
    pub stack: Option<usize>,
    /// Group: alone, goroutines with identical stacks and status, biggest group
    /// first; with BY (userloc, curloc, goloc, startloc, running, user, label KEY),
    /// as Delve groups.
    #[arg(long, value_name = "BY", num_args = 0..=2)]
    pub group: Option<Vec<String>>,
    /// Delve's -with / -without filters.
    #[command(flatten)]
    pub filters: LocationFilters,
    /// Include the runtime's own (system) goroutines.
    #[arg(long)]
    pub system: bool,
    /// Only goroutines whose status/wait reason contains this text (e.g. "chan receive").
    #[arg(long = "wait-reason", value_name = "TEXT")]
    pub wait_reason: Option<String>,
    /// Only goroutines blocked at least this long: minutes, or a duration like 90s, 5m, 2h.
    #[arg(long = "min-wait", value_name = "DURATION")]
    pub min_wait: Option<String>,
    /// Only goroutines with this pprof label: KEY or KEY=VALUE.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub label: Option<String>,
    /// Only goroutines with a frame whose function name contains this text.
    #[arg(long = "func", value_name = "TEXT")]
    pub func: Option<String>,
    /// Run this debugger command in every listed goroutine (Delve's -exec; takes the
    /// rest of a REPL line).
    #[arg(long, value_name = "COMMAND", value_hint = clap::ValueHint::CommandString)]
    pub exec: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GoroutinesFormat::Text)]
    pub format: GoroutinesFormat,
}

/// Delve's `-with KIND [ARG]` and `-without KIND [ARG]`, repeatable. Each
/// occurrence keeps its own words (clap's derive cannot group the values of
/// a repeated option, so this one `Args` is written by hand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationFilters {
    /// The words of each `-with`.
    pub with: Vec<Vec<String>>,
    /// The words of each `-without`.
    pub without: Vec<Vec<String>>,
}

impl LocationFilters {
    fn occurrences(m: &clap::ArgMatches, id: &str) -> Vec<Vec<String>> {
        m.get_occurrences::<String>(id)
            .map(|o| o.map(|words| words.cloned().collect()).collect())
            .unwrap_or_default()
    }
}

impl clap::FromArgMatches for LocationFilters {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(LocationFilters {
            with: Self::occurrences(m, "with"),
            without: Self::occurrences(m, "without"),
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for LocationFilters {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let filter = |id: &'static str| {
            clap::Arg::new(id)
                .long(id)
                .num_args(1..=2)
                .value_names(["KIND", "ARG"])
                .action(clap::ArgAction::Append)
        };
        cmd.arg(filter("with").short('w').help(
            "Only goroutines where KIND matches: userloc|curloc|goloc|startloc TEXT, \
             label KEY[=VALUE], running, user (Delve's -with; repeatable)",
        ))
        .arg(
            filter("without")
                .alias("wo")
                .help("Only goroutines where KIND does not match (Delve's -without, -wo)"),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// What a Delve filter or grouping looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoroutineField {
    /// A location (`file:line in func`).
    Location(LocationKind),
    /// A pprof label.
    Label,
    /// Whether the goroutine was on an OS thread.
    Running,
    /// Whether it is a user (not runtime) goroutine.
    User,
}

impl GoroutineField {
    /// Delve's keywords, plus `go`, `start`, `cur` for the locations.
    fn parse(word: &str, option: &str) -> Result<GoroutineField, UsageError> {
        Ok(match word {
            "userloc" => GoroutineField::Location(LocationKind::User),
            "curloc" | "cur" => GoroutineField::Location(LocationKind::Runtime),
            "goloc" | "go" => GoroutineField::Location(LocationKind::Go),
            "startloc" | "start" => GoroutineField::Location(LocationKind::Start),
            "label" => GoroutineField::Label,
            "running" => GoroutineField::Running,
            "user" => GoroutineField::User,
            other => {
                return Err(UsageError(format!(
                    "{option} {other:?}: expected userloc, curloc, goloc, startloc, label, running or user"
                )))
            }
        })
    }
}

/// One `-with`/`-without` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFilter {
    /// What is tested.
    pub field: GoroutineField,
    /// The substring (locations) or `KEY[=VALUE]` (labels); empty otherwise.
    pub arg: String,
    /// `-without`.
    pub negated: bool,
}

/// How `goroutines` groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// `--group`: identical status and stack (rdlv's own, biggest first).
    Stack,
    /// `-group FIELD`: Delve's grouping by a key, groups sorted by key.
    By(GoroutineField, String),
}

/// Most groups Delve's `-group` prints (`maxGoroutineGroups`).
pub const MAX_DELVE_GROUPS: usize = 50;
/// Goroutines shown per Delve group (`maxGroupMembers`).
pub const MAX_DELVE_GROUP_MEMBERS: usize = 5;

/// `goroutines` after validation: what to select and how to show it.
#[derive(Debug, Clone)]
pub struct GoroutineQuery {
    /// rdlv's filters.
    pub filter: Filter,
    /// Delve's `-with`/`-without`, all of which must hold.
    pub fields: Vec<FieldFilter>,
    /// The location shown on each line.
    pub kind: LocationKind,
    /// Show labels.
    pub labels: bool,
    /// Frames of stack shown under each goroutine (`-t`).
    pub stack_depth: Option<usize>,
    /// Grouping, if any.
    pub grouping: Option<Grouping>,
    /// Output format.
    pub format: GoroutinesFormat,
    /// Goroutine marked with `*` (the REPL's selection).
    pub selected: Option<u64>,
}

impl GoroutinesArgs {
    /// Validates the options into a query.
    pub fn query(&self) -> Result<GoroutineQuery, UsageError> {
        let mut fields = Vec::new();
        for (words, negated) in self
            .filters
            .with
            .iter()
            .map(|w| (w, false))
            .chain(self.filters.without.iter().map(|w| (w, true)))
        {
            let option = if negated { "-without" } else { "-with" };
            let Some(kind) = words.first() else {
                return Err(UsageError(format!("{option} needs a KIND")));
            };
            let field = GoroutineField::parse(kind, option)?;
            let arg = words.get(1).cloned();
            let arg = match (&field, arg) {
                (GoroutineField::Running | GoroutineField::User, None) => String::new(),
                (GoroutineField::Running | GoroutineField::User, Some(extra)) => {
                    return Err(UsageError(format!(
                        "{option} {kind} takes no argument, found {extra:?}{}",
                        if field == GoroutineField::User {
                            format!(" (to match the user location: {option} userloc {extra})")
                        } else {
                            String::new()
                        }
                    )))
                }
                (_, Some(arg)) => arg,
                (_, None) => {
                    return Err(UsageError(format!(
                        "{option} {kind} needs to be followed by an expression"
                    )))
                }
            };
            fields.push(FieldFilter {
                field,
                arg,
                negated,
            });
        }
        let grouping = match self.group.as_deref() {
            None => None,
            Some([]) => Some(Grouping::Stack),
            Some([by, rest @ ..]) => {
                let field = GoroutineField::parse(by, "-group")?;
                let key = match (&field, rest) {
                    (GoroutineField::Label, [key]) => key.clone(),
                    (GoroutineField::Label, _) => {
                        return Err(UsageError("-group label needs a KEY".to_string()))
                    }
                    (_, []) => String::new(),
                    (_, [extra, ..]) => {
                        return Err(UsageError(format!(
                            "-group {by} takes no argument, found {extra:?}"
                        )))
                    }
                };
                Some(Grouping::By(field, key))
            }
        };
        // Delve lists the runtime's goroutines too; asking about "user"
        // would otherwise answer over user goroutines only.
        let about_user = fields.iter().any(|f| f.field == GoroutineField::User)
            || matches!(grouping, Some(Grouping::By(GoroutineField::User, _)));
        let min_wait_minutes = match &self.min_wait {
            Some(t) => Some(parse_min_wait(t).map_err(UsageError)?),
            None => None,
        };
        Ok(GoroutineQuery {
            filter: Filter {
                system: self.system || about_user,
                wait_reason: self.wait_reason.clone(),
                min_wait_minutes,
                label: self.label.clone(),
                func: self.func.clone(),
            },
            fields,
            kind: self.location_kind(),
            labels: self.labels,
            stack_depth: self.stack,
            grouping,
            format: self.format,
            selected: None,
        })
    }
}

/// `rdlv bt SNAP GOID`.
#[derive(Debug, Clone, Default, Args)]
pub struct BtArgs {
    /// Goroutine id (in the REPL, default: the selected goroutine).
    #[arg(value_name = "GOID")]
    pub goid: Option<u64>,
    /// Also print each frame's local variables and arguments (Delve's `bt -full`).
    #[arg(long)]
    pub full: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// `rdlv threads SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct ThreadsArgs {
    /// Also print each thread's stack, from its registers (g0 stacks
    /// continue onto the goroutine through systemstack/morestack).
    #[arg(long)]
    pub stacks: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// `rdlv sched SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct SchedArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// Parses `--min-wait`: plain minutes, or a number with s/m/h.
pub fn parse_min_wait(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "m"),
    };
    let n: i64 = num.parse().map_err(|_| {
        format!("--min-wait {text:?}: expected minutes or a duration like 90s, 5m, 2h")
    })?;
    match unit {
        "s" => Ok(n / 60),
        "m" | "min" => Ok(n),
        "h" => Ok(n.saturating_mul(60)),
        _ => Err(format!(
            "--min-wait {text:?}: unknown unit {unit:?} (use s, m or h)"
        )),
    }
}

impl GoroutinesArgs {
    fn location_kind(&self) -> LocationKind {
        if self.runtime {
            LocationKind::Runtime
        } else if self.go {
            LocationKind::Go
        } else if self.start {
            LocationKind::Start
        } else {
            LocationKind::User
        }
    }
}

/// Called after each listed goroutine with its id (`-exec`).
pub type Visit<'a> = &'a mut dyn FnMut(u64, &mut dyn Write) -> anyhow::Result<()>;

/// Delve's `formatLoc`: `file:line in func`, the text filters and group
/// keys look at.
fn location_text(rt: &Runtime<'_>, g: &Goroutine, kind: LocationKind) -> String {
    match rt.location(g, kind) {
        Some(l) => format!("{}:{} in {}", l.file, l.line, l.func),
        None => ":0 in ?".to_string(),
    }
}

fn label_value(rt: &Runtime<'_>, g: &Goroutine, key: &str) -> Option<String> {
    rt.labels(&g.g)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Delve's `matchGoroutineFilter`.
fn field_matches(rt: &Runtime<'_>, g: &Goroutine, f: &FieldFilter) -> bool {
    let holds = match &f.field {
        GoroutineField::Location(kind) => location_text(rt, g, *kind).contains(f.arg.as_str()),
        GoroutineField::Label => match f.arg.split_once('=') {
            Some((k, v)) => label_value(rt, g, k).unwrap_or_default() == v,
            None => label_value(rt, g, &f.arg).is_some(),
        },
        GoroutineField::Running => g.thread.is_some(),
        GoroutineField::User => !g.system,
    };
    holds != f.negated
}

/// Delve's group key (`GroupGoroutines`).
fn group_key_text(rt: &Runtime<'_>, g: &Goroutine, field: &GoroutineField, key: &str) -> String {
    match field {
        GoroutineField::Location(kind) => location_text(rt, g, *kind),
        GoroutineField::Label => format!("{key}={}", label_value(rt, g, key).unwrap_or_default()),
        GoroutineField::Running => format!("running={}", g.thread.is_some()),
        GoroutineField::User => format!("user={}", !g.system),
    }
}

/// Digits of `n` in decimal (Delve's `digits`, at least 1).
fn digits(n: usize) -> usize {
    n.checked_ilog10().map(|d| d as usize + 1).unwrap_or(1)
}

/// Delve's `printStack`: `0  0x… in func` / `at file:line`, indented.
fn stack_text(rt: &Runtime<'_>, frames: &[StackRow], indent: &str, style: Style) -> String {
    let mut s = String::new();
    let d = digits(frames.len().saturating_sub(1));
    let pad = format!("{indent}{}", " ".repeat(d + 2 + indent.len()));
    for (i, f) in frames.iter().enumerate() {
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!(
                "{indent}{i:>d$}  {:#018x} in {}\n{pad}at {}\n",
                f.pc,
                style.function(&rt.print_name(&f.function)),
                style.file_line(&f.file, f.line)
            ),
        );
    }
    s
}

/// A text line of the listing, with the REPL's selection marked `*`.
fn listing_line(rt: &Runtime<'_>, g: &Goroutine, q: &GoroutineQuery, style: Style) -> String {
    let mut line = present::summary_line(rt, g, q.kind, q.labels);
    if q.selected == Some(g.g.goid) && line.starts_with(' ') {
        line.replace_range(..1, "*");
    }
    line.push('\n');
    if let Some(depth) = q.stack_depth {
        let mut frames = rows_of(g);
        frames.truncate(depth.saturating_add(1));
        line.push_str(&stack_text(rt, &frames, "\t", style));
    }
    line
}

/// One listed goroutine as the format wants it (text line, Go block or JSON).
fn member_text(
    rt: &Runtime<'_>,
    g: &Goroutine,
    q: &GoroutineQuery,
    style: Style,
) -> anyhow::Result<String> {
    Ok(match q.format {
        GoroutinesFormat::Text => listing_line(rt, g, q, style),
        GoroutinesFormat::Go => present::go_traceback(rt, g),
        GoroutinesFormat::Json => String::from_utf8(present::goroutine_json_bytes(rt, g)?)?,
    })
}

/// Delve's groups while streaming: only the [`MAX_DELVE_GROUPS`] smallest
/// keys are kept (Delve prints groups sorted by key and stops there), each
/// with its first [`MAX_DELVE_GROUP_MEMBERS`] members and a total.
#[derive(Default)]
struct DelveGroups {
    groups: std::collections::BTreeMap<String, (Vec<(u64, String)>, usize)>,
    too_many: bool,
}

impl DelveGroups {
    fn add(&mut self, key: String, goid: u64, text: Option<String>) {
        let entry = self.groups.entry(key).or_default();
        entry.1 += 1;
        if let Some(text) = text {
            if entry.0.len() < MAX_DELVE_GROUP_MEMBERS {
                entry.0.push((goid, text));
            }
        }
        if self.groups.len() > MAX_DELVE_GROUPS {
            self.groups.pop_last();
            self.too_many = true;
        }
    }

    /// Whether a member of `key` would still be shown (its text is needed).
    fn wants(&self, key: &str) -> bool {
        match self.groups.get(key) {
            Some((shown, _)) => shown.len() < MAX_DELVE_GROUP_MEMBERS,
            None => {
                self.groups.len() < MAX_DELVE_GROUPS
                    || self
                        .groups
                        .last_key_value()
                        .is_some_and(|(k, _)| key < k.as_str())
            }
        }
    }
}

/// Where a listing reports its progress and how it colours.
#[derive(Clone)]
pub struct Presentation {
    /// Colours.
    pub style: Style,
    /// Progress of the command.
    pub progress: Progress,
}

impl Default for Presentation {
    fn default() -> Self {
        Presentation {
            style: Style::PLAIN,
            progress: Progress::hidden(),
        }
    }
}

/// `goroutines`: list goroutines as text, Go traceback text or JSON,
/// filtered and grouped as `query` says; `each` runs after every listed
/// goroutine (Delve's `-exec`, text format only).
///
/// Streams: goroutines are unwound and formatted one batch at a time
/// ([`GOROUTINE_BATCH`] `allgs` entries, in parallel) and written in
/// `allgs` order, so memory does not grow with the goroutine count; with
/// `--group` only a key and an id per goroutine are kept, with Delve's
/// `-group` only the first 50 keys and 5 members each.
pub fn run_goroutines(
    target: &Target,
    query: &GoroutineQuery,
    show: &Presentation,
    mut each: Option<Visit<'_>>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if each.is_some() && query.format != GoroutinesFormat::Text {
        return Err(UsageError("-exec works with --format text only".to_string()).into());
    }
    let rt = Runtime::new(target)?;
    let total = rt.all_g_addrs()?.len() as u64;
    let progress = &show.progress;
    progress.set_message("listing goroutines");
    progress.set_total(total);
    let mut remaining = total;
    let mut advance = move || {
        let step = remaining.min(GOROUTINE_BATCH as u64);
        remaining -= step;
        progress.inc(step);
    };
    let style = show.style;
    let mut out = std::io::BufWriter::new(out);
    let selected = |g: &Goroutine| {
        rt.matches(g, &query.filter) && query.fields.iter().all(|f| field_matches(&rt, g, f))
    };
    match (&query.grouping, query.format) {
        (Some(Grouping::By(field, key)), format) => {
            let mut groups = DelveGroups::default();
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| {
                    selected(&g).then(|| {
                        let k = group_key_text(&rt, &g, field, key);
                        (k, g)
                    })
                },
                |batch: Vec<(String, Goroutine)>| -> anyhow::Result<()> {
                    advance();
                    for (k, g) in batch {
                        let text = if groups.wants(&k) {
                            Some(member_text(&rt, &g, query, style)?)
                        } else {
                            None
                        };
                        groups.add(k, g.g.goid, text);
                    }
                    Ok(())
                },
            )?;
            progress.finish();
            if format == GoroutinesFormat::Json {
                out.write_all(b"[")?;
                for (i, (k, (members, total))) in groups.groups.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(b"{\"group\":")?;
                    serde_json::to_writer(&mut out, k)?;
                    write!(out, ",\"total\":{total},\"goroutines\":[")?;
                    for (j, (_, text)) in members.iter().enumerate() {
                        if j > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(text.as_bytes())?;
                    }
                    out.write_all(b"]}")?;
                }
                out.write_all(b"]\n")?;
            } else {
                let count = groups.groups.len();
                for (i, (k, (members, total))) in groups.groups.iter().enumerate() {
                    writeln!(out, "{k}")?;
                    for (goid, text) in members {
                        for line in text.lines() {
                            writeln!(out, "\t{line}")?;
                        }
                        if let Some(visit) = each.as_mut() {
                            visit(*goid, &mut out)?;
                        }
                    }
                    writeln!(out, "\tTotal: {total}")?;
                    if i + 1 != count {
                        writeln!(out)?;
                    }
                }
                if groups.too_many {
                    writeln!(out, "Too many groups")?;
                }
            }
        }
        (None, GoroutinesFormat::Go) => {
            let mut first = true;
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| selected(&g).then(|| present::go_traceback(&rt, &g)),
                |blocks: Vec<String>| -> anyhow::Result<()> {
                    advance();
                    for b in blocks {
                        if !first {
                            out.write_all(b"\n")?;
                        }
                        first = false;
                        out.write_all(b.as_bytes())?;
                    }
                    Ok(())
                },
            )?;
        }
        (None, GoroutinesFormat::Json) => {
            // One object at a time: 1M goroutines make ~1.5 GB of JSON.
            let mut first = true;
            out.write_all(b"[")?;
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| selected(&g).then(|| present::goroutine_json_bytes(&rt, &g)),
                |items: Vec<serde_json::Result<Vec<u8>>>| -> anyhow::Result<()> {
                    advance();
                    for item in items {
                        if !first {
                            out.write_all(b",")?;
                        }
                        first = false;
                        out.write_all(&item?)?;
                    }
                    Ok(())
                },
            )?;
            out.write_all(b"]\n")?;
        }
        (Some(Grouping::Stack), format) => {
            let mut grouper = Grouper::default();
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| {
                    selected(&g).then(|| {
                        let key = rt.group_key(&g);
                        let minutes = rt.wait_minutes(&g.g);
                        (key, minutes, g)
                    })
                },
                |batch: Vec<(GroupKey, i64, Goroutine)>| -> anyhow::Result<()> {
                    advance();
                    for (key, minutes, g) in batch {
                        grouper.add(key, minutes, g);
                    }
                    Ok(())
                },
            )?;
            progress.finish();
            let members = grouper.members();
            let groups = grouper.finish();
            if format == GoroutinesFormat::Json {
                out.write_all(b"[")?;
                for (i, group) in groups.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut out, &present::group_json(&rt, group))?;
                }
                out.write_all(b"]\n")?;
            } else {
                for (i, group) in groups.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b"\n")?;
                    }
                    out.write_all(present::group_text(&rt, group).as_bytes())?;
                    if let Some(visit) = each.as_mut() {
                        visit(group.exemplar.g.goid, &mut out)?;
                    }
                }
                writeln!(out, "[{members} goroutines in {} groups]", groups.len())?;
            }
        }
        (None, GoroutinesFormat::Text) => {
            let mut count = 0usize;
            rt.for_each_goroutine_batch(
                GOROUTINE_BATCH,
                |g| selected(&g).then(|| (g.g.goid, listing_line(&rt, &g, query, style))),
                |lines: Vec<(u64, String)>| -> anyhow::Result<()> {
                    advance();
                    count += lines.len();
                    for (goid, text) in lines {
                        out.write_all(text.as_bytes())?;
                        if let Some(visit) = each.as_mut() {
                            visit(goid, &mut out)?;
                        }
                    }
                    Ok(())
                },
            )?;
            writeln!(out, "[{count} goroutines]")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// JSON of one frame: the CONTRACT keys plus sp, cfa and entry.
fn frame_json(f: &StackRow) -> Value {
    json!({
        "func": f.function,
        "file": f.file,
        "line": f.line,
        "pc": format!("{:#x}", f.pc),
        "inlined": f.inlined,
        "sp": format!("{:#x}", f.sp),
        "cfa": format!("{:#x}", f.cfa),
        "entry": format!("{:#x}", f.entry),
    })
}

/// Logical frames of physical frames not tied to a listed goroutine.
fn frames_of_phys(rt: &Runtime<'_>, phys: &[crate::runtime::PhysFrame]) -> Vec<StackRow> {
    let logical = rt.expand(phys).into();
    let g = Goroutine {
        g: crate::runtime::G::default(),
        thread: None,
        system: false,
        frames: phys.to_vec(),
        logical,
    };
    rows_of(&g)
}

/// A thread's frames: native ones (function = ELF symbol or `?`, no file)
/// then Go ones with inlined calls expanded.
fn thread_stack_frames(rt: &Runtime<'_>, t: &crate::runtime::ThreadState) -> Vec<StackRow> {
    let stack = rt.thread_stack(t);
    let mut out = Vec::new();
    let mut go = Vec::new();
    for f in stack {
        match f {
            ThreadFrame::Go(pf) => go.push(pf),
            ThreadFrame::Native { pc, sp, symbol } => out.push(StackRow {
                pc,
                sym_pc: pc,
                sp,
                cfa: 0,
                function: symbol.unwrap_or_else(|| "?".to_string()),
                entry: 0,
                file: String::new(),
                line: 0,
                inlined: false,
                inline_depth: 0,
                physical_index: out.len(),
            }),
        }
    }
    let base = out.len();
    out.extend(frames_of_phys(rt, &go).into_iter().map(|mut f| {
        f.physical_index += base;
        f
    }));
    out
}

/// `bt`: every frame of goroutine `goid`, runtime frames included.
pub fn run_bt(
    target: &Target,
    goid: u64,
    args: &BtArgs,
    style: Style,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let g = rt.goroutine(goid)?;
    let frames = rows_of(&g);
    match args.format {
        TextOrJson::Json => {
            let v: Vec<Value> = frames.iter().map(frame_json).collect();
            out.write_all(serde_json::to_string(&v)?.as_bytes())?;
            writeln!(out)?;
        }
        TextOrJson::Text => {
            if frames.is_empty() {
                return Err(AnalyzeError::from(NotFound::NoStack { goid }).into());
            }
            for (i, f) in frames.iter().enumerate() {
                let inl = if f.inlined { " (inlined)" } else { "" };
                writeln!(
                    out,
                    "{i:>2}  {:#018x} in {}{inl}\n    at {}",
                    f.pc,
                    style.function(&rt.print_name(&f.function)),
                    style.file_line(&f.file, f.line)
                )?;
                if args.full {
                    // A frame without DWARF (assembly, stripped) still gets
                    // its line; the reason replaces the variables.
                    match super::values::frame_locals_lines(target, goid, i) {
                        Ok(lines) => {
                            for line in lines {
                                writeln!(out, "        {line}")?;
                            }
                        }
                        Err(e) => writeln!(out, "        (no variables: {e})")?,
                    }
                }
            }
        }
    }
    Ok(())
}

/// `threads`: every OS thread, where it is and which goroutine it runs.
pub fn run_threads(
    target: &Target,
    args: &ThreadsArgs,
    style: Style,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let threads = rt.threads();
    let goid_of = |g: u64| -> Option<u64> {
        if g == 0 {
            None
        } else {
            rt.mem().read_u64(g.wrapping_add(rt.layout.g.goid)).ok()
        }
    };
    let mut rows = Vec::new();
    for t in &threads {
        let loc = rt.pc_info(t.regs.pc).and_then(|info| {
            let s = rt.sym_info(t.regs.pc)?;
            let (_, file, line, _) = s.frames.first()?;
            Some((rt.print_name(&info.name), file.to_string(), *line))
        });
        let (on, goid) = match (&t.m, t.tls_g) {
            (Some(m), Some(g)) if g == m.g0 => ("g0", goid_of(m.curg)),
            (Some(m), Some(g)) if g == m.gsignal => ("gsignal", goid_of(m.curg)),
            (Some(m), Some(_)) if m.curg != 0 => ("goroutine", goid_of(m.curg)),
            (Some(_), _) => ("idle", None),
            (None, _) => ("non-Go", None),
        };
        let frames = if args.stacks {
            thread_stack_frames(&rt, t)
        } else {
            Vec::new()
        };
        rows.push((t, loc, on, goid, frames));
    }
    match args.format {
        TextOrJson::Json => {
            let v: Vec<Value> = rows
                .iter()
                .map(|(t, loc, on, goid, frames)| {
                    let mut v = json!({
                        "tid": t.tid,
                        "name": t.name,
                        "state": t.state,
                        "pc": format!("{:#x}", t.regs.pc),
                        "sp": format!("{:#x}", t.regs.sp),
                        "func": loc.as_ref().map(|l| l.0.clone()),
                        "file": loc.as_ref().map(|l| l.1.clone()),
                        "line": loc.as_ref().map(|l| l.2),
                        "m": t.m.as_ref().map(|m| m.id),
                        "on": on,
                        "goroutine": goid,
                    });
                    if args.stacks {
                        v["frames"] = Value::Array(frames.iter().map(frame_json).collect());
                    }
                    v
                })
                .collect();
            out.write_all(serde_json::to_string(&v)?.as_bytes())?;
            writeln!(out)?;
        }
        TextOrJson::Text => {
            for (t, loc, on, goid, frames) in &rows {
                let marker = if *on == "goroutine" { '*' } else { ' ' };
                let place = match loc {
                    Some((f, file, line)) => format!("{file}:{line} {f}"),
                    None => "(not Go code)".to_string(),
                };
                let m =
                    t.m.as_ref()
                        .map(|m| format!("M{}", m.id))
                        .unwrap_or_else(|| "-".into());
                let g = match (on, goid) {
                    (&"goroutine", Some(id)) => format!("goroutine {id}"),
                    (&"g0" | &"gsignal", Some(id)) => format!("{on} (curg {id})"),
                    (other, _) => other.to_string(),
                };
                writeln!(
                    out,
                    "{marker} Thread {} at {:#x} {place} [{m} {g}] ({}, {})",
                    t.tid, t.regs.pc, t.name, t.state
                )?;
                for f in frames {
                    if f.file.is_empty() {
                        writeln!(out, "    {:#018x} in {} (native)", f.pc, f.function)?;
                        continue;
                    }
                    let inl = if f.inlined { " (inlined)" } else { "" };
                    writeln!(
                        out,
                        "    {:#018x} in {}{inl}\n        at {}",
                        f.pc,
                        style.function(&rt.print_name(&f.function)),
                        style.file_line(&f.file, f.line)
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `sched`: the scheduler as `GODEBUG=schedtrace=1,scheddetail=1` prints it.
pub fn run_sched(target: &Target, args: &SchedArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let state = rt.sched_state()?;
    match args.format {
        TextOrJson::Json => {
            out.write_all(serde_json::to_string(&rt.sched_json(&state))?.as_bytes())?;
            writeln!(out)?;
        }
        TextOrJson::Text => out.write_all(rt.sched_text(&state)?.as_bytes())?,
    }
    Ok(())
}

/// Up to five live goroutine ids numerically closest to `goid`, ascending
/// (for "no goroutine N" errors).
pub fn nearest_goroutine_ids(target: &Target, goid: u64) -> Vec<u64> {
    let Ok(rt) = Runtime::new(target) else {
        return Vec::new();
    };
    let Ok(addrs) = rt.all_g_addrs() else {
        return Vec::new();
    };
    let mut ids: Vec<u64> = addrs
        .into_iter()
        .filter_map(|a| rt.read_g(a).ok())
        .filter(|g| is_live(g.status(), rt.minor))
        .map(|g| g.goid)
        .collect();
    ids.sort_by_key(|id| (id.abs_diff(goid), *id));
    ids.truncate(5);
    ids.sort_unstable();
    ids
}

/// Whether a g status is a goroutine rather than a free g (`_Gdead`, and
/// from Go 1.26 `_Gdeadextra`, which has the same meaning for cgo callbacks).
fn is_live(status: u32, minor: u32) -> bool {
    use crate::runtime::goroutine::{G_DEAD, G_DEAD_EXTRA};
    status != G_DEAD && !(minor >= 26 && status == G_DEAD_EXTRA)
}

/// The goroutine an OS thread was running (its M's `curg`).
pub fn goroutine_of_thread(target: &Target, tid: u32) -> anyhow::Result<u64> {
    let rt = Runtime::new(target)?;
    let threads = rt.threads();
    let Some(thread) = threads.iter().find(|t| t.tid == tid) else {
        return Err(AnalyzeError::from(NotFound::Thread {
            tid,
            known: threads.iter().map(|t| t.tid).collect(),
        })
        .into());
    };
    let curg = thread.m.as_ref().map(|m| m.curg).unwrap_or(0);
    if curg == 0 {
        return Err(AnalyzeError::from(NotFound::NoGoroutineOnThread { tid }).into());
    }
    Ok(rt.read_g(curg)?.goid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delve_filters_and_groupings_validate() {
        let args = |with: &[&[&str]], group: Option<&[&str]>| GoroutinesArgs {
            filters: LocationFilters {
                with: with
                    .iter()
                    .map(|w| w.iter().map(|s| s.to_string()).collect())
                    .collect(),
                without: Vec::new(),
            },
            group: group.map(|g| g.iter().map(|s| s.to_string()).collect()),
            ..GoroutinesArgs::default()
        };
        let q = args(&[&["userloc", "main.go"], &["go", "x"]], None)
            .query()
            .unwrap();
        assert_eq!(
            q.fields[0].field,
            GoroutineField::Location(LocationKind::User)
        );
        assert_eq!(
            q.fields[1].field,
            GoroutineField::Location(LocationKind::Go)
        );
        assert!(!q.filter.system);
        // `user` asks about the runtime's goroutines too.
        let q = args(&[&["user"]], None).query().unwrap();
        assert!(q.filter.system);
        let err = args(&[&["user", "readLoop"]], None).query().unwrap_err();
        assert!(err.0.contains("-with userloc readLoop"), "{}", err.0);
        assert!(args(&[&["userloc"]], None).query().is_err());
        assert!(args(&[&["bogus", "x"]], None).query().is_err());
        let q = args(&[], Some(&[])).query().unwrap();
        assert_eq!(q.grouping, Some(Grouping::Stack));
        let q = args(&[], Some(&["label", "tenant"])).query().unwrap();
        assert_eq!(
            q.grouping,
            Some(Grouping::By(GoroutineField::Label, "tenant".into()))
        );
        assert!(args(&[], Some(&["label"])).query().is_err());
        assert!(args(&[], Some(&["user", "x"])).query().is_err());
        let q = args(&[], Some(&["user"])).query().unwrap();
        assert!(q.filter.system);
    }

    #[test]
    fn delve_groups_keep_the_smallest_keys_and_five_members() {
        let mut groups = DelveGroups::default();
        for i in 0..(MAX_DELVE_GROUPS as u64 + 10) {
            let key = format!("k{:03}", 100 - i);
            for m in 0..7 {
                let text = groups.wants(&key).then(|| format!("{i}.{m}"));
                groups.add(key.clone(), i * 10 + m, text);
            }
        }
        assert!(groups.too_many);
        assert_eq!(groups.groups.len(), MAX_DELVE_GROUPS);
        let (first, (members, total)) = groups.groups.iter().next().unwrap();
        assert_eq!(first, "k041");
        assert_eq!(*total, 7);
        assert_eq!(members.len(), MAX_DELVE_GROUP_MEMBERS);
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
    }

    #[test]
    fn min_wait_accepts_minutes_and_durations() {
        assert_eq!(parse_min_wait("5"), Ok(5));
        assert_eq!(parse_min_wait("5m"), Ok(5));
        assert_eq!(parse_min_wait("2h"), Ok(120));
        assert_eq!(parse_min_wait("90s"), Ok(1));
        assert!(parse_min_wait("5x").is_err());
        assert!(parse_min_wait("m").is_err());
    }
}
