//! Helpers shared by the end-to-end tests (crate `rdlv_e2e`).
//!
//! The flow of a test:
//!
//! ```no_run
//! use rdlv_e2e::{Target, Variant, DEFAULT_GO, run_rdlv};
//! // Build corpus/cmd/parked with Go 1.26, start it, wait for READY.
//! let target = Target::start("parked", DEFAULT_GO, Variant::Default, &[]);
//! // Capture first (rdlv-snap PID -o FILE), ...
//! let snap = target.capture(&[]);
//! // ... then ask the program for its own view (SIGUSR1 → $ORACLE_DIR).
//! let oracle = target.oracle();
//! for g in oracle.compared_goroutines() {
//!     // compare g.id, g.wait_reason, g.frames, g.created_by with
//!     // `rdlv goroutines SNAP --format json`
//! }
//! let out = run_rdlv(&["goroutines".as_ref(), snap.path().as_os_str()]);
//! # let _ = out;
//! ```
//!
//! * [`toolchain`]: Go toolchains per release ([`go_toolchain`]) and cached
//!   corpus builds per release and [`Variant`] ([`build_corpus`]).
//! * [`target`]: [`Target`], a running corpus program (killed on drop), with
//!   [`Target::capture`] and [`Target::oracle`], `/proc` thread states.
//! * [`oracle`]: [`Oracle`] (parsed `stacks.txt`, `values.json`,
//!   `locals.json`), [`parse_stacks`] (also for `rdlv goroutines --format
//!   go` output), [`compare_goroutines`] (the protocol's comparison rules),
//!   [`json_diff`] (canonical values).
//! * [`tools`]: paths of `rdlv-snap`/`rdlv` (`$RDLV_SNAP`, `$RDLV`, else
//!   built with cargo once per test process) and runners.
//! * [`realserver`]: real Go servers from the module proxy (Caddy, NATS)
//!   started, loaded and frozen for `rdlv-snap` and `gcore` at one instant.
//! * [`delvecmp`]: rdlv against `dlv core` on that instant, answer for
//!   answer, and the differences rdlv makes on purpose.
#![deny(missing_docs)]

pub mod delvecmp;
pub mod oracle;
pub mod realserver;
pub mod target;
pub mod toolchain;
pub mod tools;

pub use oracle::{
    compare_goroutines, json_diff, parse_stacks, CompareOptions, CreatedBy, GoroutineBlock, Oracle,
    OracleLocals, OracleValue, StackFrame,
};
pub use target::{pattern_byte, Pattern, SnapshotFile, Target, ThreadStatus, PATTERN_SEED};
pub use toolchain::{
    build_corpus, go_toolchain, target_dirs, workspace_root, Variant, CORPUS_PROGRAMS, DEFAULT_GO,
    GO_VERSIONS,
};
pub use tools::{
    describe_output, rdlv_path, rdlv_snap_path, rdlv_snap_unwrapped_path, run_rdlv, run_snap,
};
