//! Presentation: how goroutines read in the listings (`goroutines`, `bt`,
//! `--format go`, `--format json`, groups), as free functions over the
//! runtime model. The model (`runtime/`) decides what is true of a
//! goroutine (status, frames, which frames Go shows, locations, groups);
//! nothing here reads target memory beyond what printing a frame's
//! arguments needs, and nothing in `runtime/` formats a listing.

pub mod goroutine;
pub mod stack;
pub mod traceback;

pub use goroutine::{goroutine_json, goroutine_json_bytes, group_json, group_text, summary_line};
pub use stack::{goroutine_rows, rows_of, StackRow};
pub use traceback::{created_by, go_traceback};
