//! rdlv-analyze: everything the `rdlv` binary knows about Go processes,
//! computed offline from a snapshot.
//!
//! Layers, bottom up: [`memory`] (one trait over all target memory),
//! [`binary`] and [`pclntab`] (static facts from the executable),
//! [`runtime`] (goroutines, threads, stacks as the Go runtime sees them),
//! [`dwarf`] and [`value`] (typed variables and expressions); [`export`]
//! writes what other tools read (pprof, ELF cores, folded stacks, HTML). A
//! [`Session`] owns one opened snapshot and builds each part once.
#![deny(missing_docs)]

pub mod binary;
pub mod buildinfo;
pub mod disasm;
pub mod dwarf;
pub mod error;
pub mod export;
pub mod heap;
pub mod keys;
pub mod memory;
pub mod pclntab;
pub mod present;
pub mod redact;
pub mod runtime;
pub mod session;
pub mod value;

pub use error::{AnalyzeError, ErrorClass, Result};
pub use session::Session;
/// The session under its former name, kept while callers move to [`Session`].
pub use session::Session as Target;
