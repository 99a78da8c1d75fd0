//! `--color auto|always|never`: Delve's colours for stack traces and source
//! listings, and nothing else.
//!
//! Delve (pkg/terminal/terminal.go, service/api/prettyprint.go) colours
//! only two things by default: in a stack trace the function name and the
//! file's base name with its line are bold; in a source listing the `=>`
//! arrow is yellow, line numbers blue, string literals green and comments
//! bright magenta. Goroutine lists, values and every other line stay plain,
//! so rdlv does the same (`bt`, `bt -full`, `threads --stacks`,
//! `goroutines -t`, `list`).
//!
//! Invariant: a [`Style`] that is off returns its input unchanged, so code
//! that formats through it prints byte-identical text with colour off.
//! `auto` colours only when stdout is a terminal, `TERM` is not `dumb` and
//! `NO_COLOR` is unset or empty (<https://no-color.org>); `always` wins
//! over `NO_COLOR`, as that convention asks of an explicit flag.

use std::borrow::Cow;

/// When to colour (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

/// Bold, Delve's `stacktrace-function-color` and `stacktrace-basename-color`.
const BOLD: &str = "\x1b[1m";
/// Delve's `source-list-arrow-color` default (yellow).
const YELLOW: &str = "\x1b[33m";
/// Delve's `source-list-line-color` default (blue).
const BLUE: &str = "\x1b[34m";
/// Delve's `source-list-string-color` default (green).
const GREEN: &str = "\x1b[32m";
/// Delve's `source-list-comment-color` default (bright magenta).
const BRIGHT_MAGENTA: &str = "\x1b[95m";
/// Back to normal.
const RESET: &str = "\x1b[0m";

/// Whether output is coloured, and the colours Delve uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    on: bool,
}

impl Style {
    /// No colour at all.
    pub const PLAIN: Style = Style { on: false };

    /// The style for `choice` when stdout is (or is not) a terminal, reading
    /// `NO_COLOR` and `TERM` from the environment.
    pub fn new(choice: ColorChoice, stdout_is_terminal: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style::decide(choice, stdout_is_terminal, no_color, dumb)
    }

    /// The decision itself, without the environment (tested alone).
    pub fn decide(choice: ColorChoice, terminal: bool, no_color: bool, dumb: bool) -> Style {
        let on = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color && !dumb,
        };
        Style { on }
    }

    fn paint<'a>(self, code: &str, text: &'a str) -> Cow<'a, str> {
        if self.on && !text.is_empty() {
            Cow::Owned(format!("{code}{text}{RESET}"))
        } else {
            Cow::Borrowed(text)
        }
    }

    /// A function name in a stack trace.
    pub fn function(self, name: &str) -> Cow<'_, str> {
        self.paint(BOLD, name)
    }

    /// `file:line` in a stack trace: the directory plain, the base name and
    /// line bold.
    pub fn file_line(self, file: &str, line: u32) -> String {
        if !self.on {
            return format!("{file}:{line}");
        }
        let split = file.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (dir, base) = file.split_at(split);
        format!("{dir}{BOLD}{base}:{line}{RESET}")
    }

    /// The `=>` (or blank) marker of a source listing.
    pub fn arrow(self, marker: &str) -> Cow<'_, str> {
        self.paint(YELLOW, marker)
    }

    /// A line number of a source listing.
    pub fn line_number(self, number: &str) -> Cow<'_, str> {
        self.paint(BLUE, number)
    }

    /// One line of Go source with string literals and comments coloured.
    /// The lexing is per line (a raw string or block comment spanning lines
    /// is coloured from its first line only), enough for a listing.
    pub fn go_source(self, line: &str) -> Cow<'_, str> {
        if !self.on {
            return Cow::Borrowed(line);
        }
        let mut out = String::with_capacity(line.len() + 16);
        let mut rest = line;
        while !rest.is_empty() {
            let Some(start) = rest.find(['"', '`', '\'', '/']) else {
                out.push_str(rest);
                break;
            };
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            if tail.starts_with("//") || tail.starts_with("/*") {
                let end = if tail.starts_with("/*") {
                    tail.find("*/").map(|i| i + 2).unwrap_or(tail.len())
                } else {
                    tail.len()
                };
                out.push_str(&self.paint(BRIGHT_MAGENTA, &tail[..end]));
                rest = &tail[end..];
                continue;
            }
            if let Some(after) = tail.strip_prefix('/') {
                out.push('/');
                rest = after;
                continue;
            }
            let quote = tail.as_bytes()[0];
            let mut end = tail.len();
            let mut escaped = false;
            for (i, b) in tail.bytes().enumerate().skip(1) {
                if escaped {
                    escaped = false;
                } else if b == b'\\' && quote != b'`' {
                    escaped = true;
                } else if b == quote {
                    end = i + 1;
                    break;
                }
            }
            out.push_str(&self.paint(GREEN, &tail[..end]));
            rest = &tail[end..];
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_terminal_and_no_color() {
        use ColorChoice::*;
        assert!(Style::decide(Auto, true, false, false).on);
        assert!(!Style::decide(Auto, false, false, false).on);
        assert!(!Style::decide(Auto, true, true, false).on);
        assert!(!Style::decide(Auto, true, false, true).on);
        assert!(Style::decide(Always, false, true, true).on);
        assert!(!Style::decide(Never, true, false, false).on);
    }

    #[test]
    fn off_is_the_identity() {
        let s = Style::PLAIN;
        assert_eq!(s.function("main.main"), "main.main");
        assert_eq!(s.file_line("/src/a/main.go", 12), "/src/a/main.go:12");
        let line = r#"	x := "a // b" // c"#;
        assert_eq!(s.go_source(line), line);
    }

    #[test]
    fn on_marks_what_delve_marks() {
        let s = Style { on: true };
        assert_eq!(s.function("main.f"), "\x1b[1mmain.f\x1b[0m");
        assert_eq!(
            s.file_line("/src/a/main.go", 12),
            "/src/a/\x1b[1mmain.go:12\x1b[0m"
        );
        assert_eq!(
            s.go_source(r#"x := "a // \"b" // c"#),
            "x := \x1b[32m\"a // \\\"b\"\x1b[0m \x1b[95m// c\x1b[0m"
        );
        assert_eq!(s.go_source("a / b"), "a / b");
    }
}
