//! `rdlv`: the offline analyzer's command line. See `cli` for the commands.

// The command modules address the library as `crate::…` as well as
// `rdlv_analyze::…`; re-exporting it at the binary's root makes both work.
#[allow(unused_imports)]
pub use rdlv_analyze::*;

mod cli;

fn main() {
    std::process::exit(cli::main());
}
