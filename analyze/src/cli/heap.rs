//! `rdlv heap`, `rdlv leaks` and `rdlv waits`: thin glue over
//! [`crate::heap`], which holds all the logic.

use std::io::Write;

use clap::{Args, ValueEnum};

use crate::heap::{census, HeapModel};
use crate::runtime::Runtime;
use crate::target::Target;

use super::stacks::TextOrJson;

/// `rdlv heap SNAP`.
#[derive(Debug, Clone, Default, Args)]
pub struct HeapArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    pub format: TextOrJson,
    /// Print only the N largest types (text only).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
}

/// Runs `rdlv heap`.
pub fn run_heap(target: &Target, args: &HeapArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = Runtime::new(target)?;
    let model = HeapModel::new(&rt)?;
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
