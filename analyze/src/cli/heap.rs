//! `rdlv heap`, `rdlv leaks` and `rdlv waits`: thin glue over
//! [`crate::heap`], which holds all the logic.

use std::io::Write;

use clap::{Args, ValueEnum};

use crate::heap::{census, retain, HeapModel};
use crate::runtime::Runtime;
use crate::Target;

use super::stacks::TextOrJson;

/// `rdlv heap SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct HeapArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
    /// Print only the N largest types or roots (text only).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// What to group the heap by: `type` (the census: objects and bytes by
    /// type) or `root` (retained bytes per global variable and goroutine
    /// frame, from the dominator tree of the object graph).
    #[arg(long, value_enum, default_value_t = HeapBy::Type)]
    pub by: HeapBy,
    /// Print one shortest path from a root to the heap object holding
    /// ADDR (hex), or the object a Go expression points at (`main.cache`,
    /// `main.cfg.Items`).
    #[arg(long, value_name = "ADDR|EXPR", conflicts_with = "by")]
    pub path: Option<String>,
}

/// Groupings of `rdlv heap`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum HeapBy {
    /// Objects and bytes by type (the census).
    #[default]
    Type,
    /// Retained bytes by root.
    Root,
}

/// Runs `rdlv heap`.
pub fn run_heap(target: &Target, args: &HeapArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let model = HeapModel::new(&rt)?;
    if let Some(what) = &args.path {
        let addr = match parse_addr(what) {
            Some(addr) => addr,
            None => super::values::expr_address(target, what)?,
        };
        let gs = rt.goroutines()?;
        let path = retain::path_to(&model, &gs, addr)?;
        match args.format {
            TextOrJson::Text => out.write_all(retain::path_text(&path).as_bytes())?,
            TextOrJson::Json => {
                serde_json::to_writer_pretty(&mut *out, &retain::path_json(&path))?;
                writeln!(out)?;
            }
        }
        return Ok(());
    }
    if args.by == HeapBy::Root {
        let gs = rt.goroutines()?;
        let r = retain::retention(&model, &gs)?;
        match args.format {
            TextOrJson::Text => out.write_all(r.text(args.top).as_bytes())?,
            TextOrJson::Json => {
                serde_json::to_writer_pretty(&mut *out, &r.json())?;
                writeln!(out)?;
            }
        }
        return Ok(());
    }
    let c = census::census(&model);
    match args.format {
        TextOrJson::Text => out.write_all(c.text(args.top).as_bytes())?,
        TextOrJson::Json => {
            serde_json::to_writer_pretty(&mut *out, &c.json())?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `0x…` as an address (anything else is an expression).
fn parse_addr(s: &str) -> Option<u64> {
    let t = s.trim();
    let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"))?;
    u64::from_str_radix(hex, 16).ok()
}

/// Output formats of `rdlv waits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum WaitsFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// Graphviz dot.
    Dot,
    /// JSON.
    Json,
}

/// `rdlv leaks SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct LeaksArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
}

/// Runs `rdlv leaks`.
pub fn run_leaks(target: &Target, args: &LeaksArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let model = HeapModel::new(&rt)?;
    let gs = rt.goroutines()?;
    let report = crate::heap::leaks::find_leaks(&model, &gs)?;
    match args.format {
        TextOrJson::Text => out.write_all(report.text().as_bytes())?,
        TextOrJson::Json => {
            serde_json::to_writer_pretty(&mut *out, &report.json())?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `rdlv waits SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct WaitsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = WaitsFormat::Text)]
    pub format: WaitsFormat,
}

/// Runs `rdlv waits`.
pub fn run_waits(target: &Target, args: &WaitsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let model = HeapModel::new(&rt)?;
    let gs = rt.goroutines()?;
    let graph = crate::heap::waits::wait_graph(&model, &gs)?;
    match args.format {
        WaitsFormat::Text => out.write_all(graph.text().as_bytes())?,
        WaitsFormat::Dot => out.write_all(graph.dot().as_bytes())?,
        WaitsFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &graph.json())?;
            writeln!(out)?;
        }
    }
    Ok(())
}
