//! Delve's `print` text format (`pkg/terminal` prints
//! `Variable.MultilineString`): `main.Config {Name: "orders", ...}`,
//! `[]int len: 3, cap: 3, [1,2,3]`, `map[string]int ["a": 1, ]`, structs
//! and arrays of composite values broken over lines with tabs.
//!
//! The text is Delve's, character for character, wherever Delve reads the
//! value from memory (the end-to-end tests compare them on the corpus and
//! on a real server). Where rdlv differs on purpose, Delve's text would be
//! wrong (a missing piece printed as zero, an impossible slice header
//! printed as a slice), depends on Delve's session (the fake addresses of
//! values held in registers) or on an unstable sort (which of several
//! constants of equal value names it), or Delve cannot say (a dynamic type
//! without DWARF); `rdlv_e2e::delvecmp` lists these with their reasons.

use std::fmt::Write as _;

use super::json::format_go_float;
use super::{Pointee, Value, ValueKind};

/// Strings longer than this break the enclosing struct over lines (Delve's
/// `maxShortStringLen`).
const MAX_SHORT_STRING_LEN: usize = 7;
const INDENT: &str = "\t";

#[derive(Clone, Copy, Default)]
struct Flags {
    top: bool,
    include_type: bool,
    newlines: bool,
}

/// Delve's `print` output for `v` (multi-line where Delve breaks lines).
pub fn render(v: &Value) -> String {
    let mut s = String::new();
    write_to(
        &mut s,
        v,
        Flags {
            top: true,
            include_type: true,
            newlines: true,
        },
        "",
    );
    s
}

/// Delve's single-line form (`SinglelineString`), used by `locals`/`args` lists
/// and `bt -full`.
pub fn render_single_line(v: &Value) -> String {
    let mut s = String::new();
    write_to(
        &mut s,
        v,
        Flags {
            top: true,
            include_type: true,
            newlines: false,
        },
        "",
    );
    s
}

fn type_str(v: &Value) -> &str {
    &v.type_name
}

/// `(T)(0xADDR)`, with the type quoted when it has a package path.
fn addr_form(out: &mut String, ty: &str, addr: u64, star: bool) {
    let star = if star { "*" } else { "" };
    if ty.contains('/') {
        let _ = write!(out, "({star}{ty:?})(0x{addr:x})");
    } else {
        let _ = write!(out, "({star}{ty})(0x{addr:x})");
    }
}

fn write_to(out: &mut String, v: &Value, flags: Flags, indent: &str) {
    match &v.kind {
        ValueKind::Unreadable(why) => {
            let _ = write!(out, "(unreadable {why})");
        }
        ValueKind::Slice {
            len,
            cap,
            base,
            elems,
        } => {
            if flags.include_type {
                let _ = write!(out, "{} len: {len}, cap: {cap}, ", type_str(v));
            }
            if *base == 0 && elems.is_empty() {
                out.push_str("nil");
                return;
            }
            write_elems(out, elems, *len, flags, indent);
        }
        ValueKind::Array { len, elems } => {
            if flags.include_type {
                let _ = write!(out, "{} ", type_str(v));
            }
            write_elems(out, elems, *len, flags, indent);
        }
        ValueKind::Pointer { addr, pointee } => match pointee {
            // The predeclared nil (an untyped constant) has no type to show.
            Pointee::Nil if v.type_name.is_empty() => out.push_str("nil"),
            Pointee::Nil => {
                // The load names the element of a named pointer type.
                let elem = match &v.display {
                    Some(elem) => elem.as_str(),
                    None => v.type_name.strip_prefix('*').unwrap_or(&v.type_name),
                };
                if flags.include_type {
                    let _ = write!(out, "*{elem} nil");
                } else {
                    out.push_str("*nil");
                }
            }
            Pointee::NotLoaded | Pointee::Cycle => addr_form(out, type_str(v), *addr, false),
            // `&x`: Delve prints the address alone.
            Pointee::Loaded(_) if v.display.as_deref() == Some("&") => {
                addr_form(out, type_str(v), *addr, false)
            }
            Pointee::Loaded(p) => {
                if flags.top && flags.newlines {
                    addr_form(out, type_str(v), *addr, false);
                    out.push('\n');
                }
                out.push('*');
                write_to(
                    out,
                    p,
                    Flags {
                        top: false,
                        ..flags
                    },
                    indent,
                );
            }
        },
        ValueKind::UnsafePointer(p) => {
            let _ = write!(out, "unsafe.Pointer(0x{p:x})");
        }
        // On multiple lines Delve prints the runtime's hchan, a nil
        // channel as an empty struct; on one line `chan T len/cap`.
        ValueKind::Chan {
            addr,
            len,
            cap,
            fields,
            ..
        } => {
            if flags.newlines && (*addr == 0 || !fields.is_empty()) {
                write_struct(out, v, fields, fields.len(), flags, indent);
            } else if *addr == 0 {
                let _ = write!(out, "{} nil", type_str(v));
            } else {
                let _ = write!(out, "{} {len}/{cap}", type_str(v));
            }
        }
        ValueKind::Struct { fields, total } => {
            let mut flags = flags;
            if let Some(t) = &v.display {
                let _ = write!(out, "{}({t})", type_str(v));
                flags.include_type = false;
            }
            write_struct(out, v, fields, *total, flags, indent);
        }
        ValueKind::Interface {
            dyn_type,
            value,
            pointer_data,
        } => {
            let Some(dyn_type) = dyn_type else {
                if flags.include_type {
                    let _ = write!(out, "{} nil", type_str(v));
                } else {
                    out.push_str("nil");
                }
                return;
            };
            let Some(data) = value else {
                if flags.include_type {
                    let _ = write!(out, "{}({dyn_type}) ", type_str(v));
                }
                // Past the recursion limit Delve elides a pointer it did
                // not follow, and shows other data by the interface's own
                // address: `*(*"io/fs.FS")(0xc000123400)`.
                if *pointer_data {
                    out.push_str("...");
                } else {
                    out.push('*');
                    addr_form(out, type_str(v), v.addr.unwrap_or(0), true);
                }
                return;
            };
            if flags.include_type {
                let _ = write!(out, "{}({}) ", type_str(v), type_str(data));
            }
            let inner = Flags {
                top: false,
                include_type: !flags.include_type,
                newlines: flags.newlines,
            };
            match &data.kind {
                ValueKind::Pointer { addr, pointee } => match pointee {
                    Pointee::Nil => out.push_str("nil"),
                    // Delve prints the address of the data word here, not the pointer.
                    Pointee::NotLoaded | Pointee::Cycle => {
                        let _ = write!(out, "0x{:x}", data.addr.unwrap_or(*addr));
                    }
                    Pointee::Loaded(_) => write_to(out, data, inner, indent),
                },
                _ => write_to(out, data, inner, indent),
            }
        }
        ValueKind::Map { addr, len, entries } => {
            if flags.include_type {
                let _ = write!(out, "{} ", type_str(v));
            }
            if *addr == 0 && entries.is_empty() {
                out.push_str("nil");
                return;
            }
            let nl = flags.newlines && !entries.is_empty();
            let child_indent = format!("{indent}{INDENT}");
            out.push('[');
            for (k, val) in entries {
                if nl {
                    let _ = write!(out, "\n{indent}{INDENT}");
                }
                write_to(out, k, Flags::default(), &child_indent);
                out.push_str(": ");
                write_to(
                    out,
                    val,
                    Flags {
                        newlines: nl,
                        ..Flags::default()
                    },
                    &child_indent,
                );
                // Delve writes the separator after every pair, the last too.
                out.push_str(", ");
            }
            close_list(out, entries.len(), *len, nl, indent);
        }
        ValueKind::Func { pc, name, captured } => {
            if *pc == 0 {
                out.push_str("nil");
            } else {
                match name {
                    Some(n) => out.push_str(n),
                    None => {
                        let _ = write!(out, "0x{pc:x}");
                    }
                }
                // Delve lists a closure's captured variables on multi-line prints.
                if flags.newlines && !captured.is_empty() {
                    out.push_str(" {\n");
                    let child_indent = format!("{indent}{INDENT}");
                    for (n, c) in captured {
                        let _ = write!(out, "{indent}{INDENT}{n} {} = ", type_str(c));
                        write_to(
                            out,
                            c,
                            Flags {
                                top: false,
                                include_type: false,
                                newlines: flags.newlines,
                            },
                            &child_indent,
                        );
                        out.push('\n');
                    }
                    let _ = write!(out, "{indent}}}");
                }
            }
        }
        ValueKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ValueKind::Int(i) if v.display.is_some() => {
            let _ = write!(out, "{} ({i})", v.display.as_deref().unwrap_or_default());
        }
        ValueKind::Uint(u) if v.display.is_some() => {
            let _ = write!(out, "{} ({u})", v.display.as_deref().unwrap_or_default());
        }
        ValueKind::Int(i) => {
            let _ = write!(out, "{i}");
        }
        ValueKind::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        ValueKind::Float { value, bits } => out.push_str(&float_text(*value, *bits)),
        ValueKind::Complex { re, im, bits } => {
            let _ = write!(
                out,
                "({} + {}i)",
                float_text(*re, *bits),
                float_text(*im, *bits)
            );
        }
        ValueKind::String { bytes, len } => {
            let mut b = bytes.clone();
            if (bytes.len() as u64) < *len {
                b.extend_from_slice(format!("...+{} more", len - bytes.len() as u64).as_bytes());
            }
            out.push_str(&go_quote(&b));
        }
    }
}

fn float_text(f: f64, bits: u8) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if f == 0.0 {
        // Delve keeps floats as go/constant values, which have no negative zero.
        "0".into()
    } else {
        format_go_float(f, bits, 'f')
    }
}

/// Stands for the (unloaded) aggregate behind a pointer.
static COMPOSITE: ValueKind = ValueKind::Struct {
    fields: Vec::new(),
    total: 0,
};

/// The kind behind any pointers, and whether there was a pointer (Delve's `recursiveKind`).
fn recursive_kind(mut v: &Value) -> (&ValueKind, bool) {
    let mut hasptr = false;
    loop {
        match &v.kind {
            ValueKind::Pointer {
                pointee: Pointee::Loaded(p),
                ..
            } => {
                hasptr = true;
                v = p;
            }
            // An unloaded pointer counts as its pointee's kind, as in Delve.
            ValueKind::Pointer { .. } if v.composite_target => return (&COMPOSITE, true),
            k @ ValueKind::Pointer { .. } => return (k, true),
            k => return (k, hasptr),
        }
    }
}

fn breaks_line(v: &Value) -> bool {
    let (kind, hasptr) = recursive_kind(v);
    match kind {
        ValueKind::Slice { .. }
        | ValueKind::Array { .. }
        | ValueKind::Struct { .. }
        | ValueKind::Map { .. }
        | ValueKind::Interface { .. } => true,
        ValueKind::String { bytes, .. } => hasptr || bytes.len() > MAX_SHORT_STRING_LEN,
        _ => false,
    }
}

fn write_elems(out: &mut String, elems: &[Value], len: u64, flags: Flags, indent: &str) {
    let nl = flags.newlines
        && elems.first().is_some_and(|first| {
            let (kind, hasptr) = recursive_kind(first);
            match kind {
                ValueKind::Slice { .. }
                | ValueKind::Array { .. }
                | ValueKind::Struct { .. }
                | ValueKind::Map { .. }
                | ValueKind::Interface { .. } => true,
                ValueKind::String { .. } => {
                    hasptr
                        || elems.iter().any(|e| {
                            matches!(&e.kind, ValueKind::String { bytes, .. } if bytes.len() > MAX_SHORT_STRING_LEN)
                        })
                }
                _ => false,
            }
        });
    let child_indent = format!("{indent}{INDENT}");
    out.push('[');
    for (i, e) in elems.iter().enumerate() {
        if nl {
            let _ = write!(out, "\n{indent}{INDENT}");
        }
        write_to(
            out,
            e,
            Flags {
                newlines: nl,
                ..Flags::default()
            },
            &child_indent,
        );
        if i + 1 != elems.len() || nl {
            out.push(',');
        }
    }
    close_list(out, elems.len(), len, nl, indent);
}

/// Ends a list that showed `shown` of `len` elements: Delve's `...+N more`
/// (or `...` when none were shown), then the closing bracket.
fn close_list(out: &mut String, shown: usize, len: u64, nl: bool, indent: &str) {
    if (shown as u64) < len {
        if shown > 0 {
            if nl {
                let _ = write!(out, "\n{indent}{INDENT}");
            } else {
                out.push(',');
            }
            let _ = write!(out, "...+{} more", len - shown as u64);
        } else {
            out.push_str("...");
        }
    }
    if nl {
        let _ = write!(out, "\n{indent}");
    }
    out.push(']');
}

fn write_struct(
    out: &mut String,
    v: &Value,
    fields: &[(String, Value)],
    total: usize,
    flags: Flags,
    indent: &str,
) {
    if fields.is_empty() && total != 0 {
        addr_form(out, type_str(v), v.addr.unwrap_or(0), true);
        return;
    }
    if flags.include_type {
        let _ = write!(out, "{} ", type_str(v));
    }
    let nl = flags.newlines && fields.iter().any(|(_, f)| breaks_line(f));
    let child_indent = format!("{indent}{INDENT}");
    out.push('{');
    for (i, (name, f)) in fields.iter().enumerate() {
        if nl {
            let _ = write!(out, "\n{indent}{INDENT}");
        }
        let _ = write!(out, "{name}: ");
        write_to(
            out,
            f,
            Flags {
                top: false,
                include_type: true,
                newlines: nl,
            },
            &child_indent,
        );
        if i + 1 != fields.len() || nl {
            out.push(',');
            if !nl {
                out.push(' ');
            }
        }
    }
    if fields.len() != total {
        if nl {
            let _ = write!(out, "\n{indent}{INDENT}");
        } else {
            out.push(',');
        }
        let _ = write!(out, "...+{} more", total - fields.len());
    }
    // Unlike arrays and maps, Delve closes a broken struct on the last line: `x,}`.
    out.push('}');
}

/// Go's `strconv.Quote`: printable runes kept, invalid bytes as `\xNN`.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (good, bad_len) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => (
                std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or(""),
                e.error_len().unwrap_or(rest.len() - e.valid_up_to()),
            ),
        };
        for c in good.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                    if (c as u32) < 0x10000 {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    } else {
                        let _ = write!(out, "\\U{:08x}", c as u32);
                    }
                }
                c => out.push(c),
            }
        }
        let consumed = good.len();
        for b in rest.iter().skip(consumed).take(bad_len) {
            let _ = write!(out, "\\x{b:02x}");
        }
        rest = rest.get(consumed + bad_len..).unwrap_or(&[]);
    }
    out.push('"');
    out
}

/// `2024-02-29T13:14:15Z` / `...+01:00` for Unix seconds and a zone offset.
pub(crate) fn rfc3339(unix: i64, offset: i64) -> String {
    // Both come from target memory; beyond ±2^50 s no calendar date is
    // meaningful and the arithmetic below could overflow.
    const LIMIT: i64 = 1 << 50;
    let local = match unix.checked_add(offset) {
        Some(l) if (-LIMIT..LIMIT).contains(&l) && (-LIMIT..LIMIT).contains(&offset) => l,
        _ => return format!("<invalid time: {unix} s, offset {offset} s>"),
    };
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if offset == 0 {
        s.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let a = offset.abs();
        let _ = write!(s, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(type_name: &str, kind: ValueKind) -> Value {
        Value {
            display: None,
            composite_target: false,
            type_name: type_name.into(),
            addr: Some(0x1000),
            kind,
        }
    }

    #[test]
    fn slices_structs_and_maps_like_delve() {
        let ints = v(
            "[]int",
            ValueKind::Slice {
                len: 3,
                cap: 3,
                base: 0x10,
                elems: (1..=3).map(|i| v("int", ValueKind::Int(i))).collect(),
            },
        );
        assert_eq!(render(&ints), "[]int len: 3, cap: 3, [1,2,3]");
        let s = v(
            "main.Config",
            ValueKind::Struct {
                fields: vec![
                    ("Timeout".into(), v("int", ValueKind::Int(15))),
                    ("On".into(), v("bool", ValueKind::Bool(true))),
                ],
                total: 2,
            },
        );
        assert_eq!(render(&s), "main.Config {Timeout: 15, On: true}");
        let m = v(
            "map[string]int",
            ValueKind::Map {
                addr: 0x20,
                len: 1,
                entries: vec![(
                    v(
                        "string",
                        ValueKind::String {
                            bytes: b"a".to_vec(),
                            len: 1,
                        },
                    ),
                    v("int", ValueKind::Int(1)),
                )],
            },
        );
        // Delve breaks every non-empty map over lines, with a separator after the last pair.
        assert_eq!(render(&m), "map[string]int [\n\t\"a\": 1, \n]");
        assert_eq!(render_single_line(&m), "map[string]int [\"a\": 1, ]");
        let nil = v(
            "[]int",
            ValueKind::Slice {
                len: 0,
                cap: 0,
                base: 0,
                elems: vec![],
            },
        );
        assert_eq!(render(&nil), "[]int len: 0, cap: 0, nil");
        let long = v(
            "main.T",
            ValueKind::Struct {
                fields: vec![(
                    "Name".into(),
                    v(
                        "string",
                        ValueKind::String {
                            bytes: b"orders-eu".to_vec(),
                            len: 9,
                        },
                    ),
                )],
                total: 1,
            },
        );
        assert_eq!(render(&long), "main.T {\n\tName: \"orders-eu\",}");
        assert_eq!(render_single_line(&long), "main.T {Name: \"orders-eu\"}");
    }

    #[test]
    fn strings_quote_like_go() {
        assert_eq!(
            go_quote(b"h\xc3\xa9\xff\"\n\x01"),
            "\"h\u{e9}\\xff\\\"\\n\\x01\""
        );
        let s = v(
            "string",
            ValueKind::String {
                bytes: b"abc".to_vec(),
                len: 10,
            },
        );
        assert_eq!(render(&s), "\"abc...+7 more\"");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(1_709_212_455, 0), "2024-02-29T13:14:15Z");
        assert_eq!(rfc3339(946_681_199, 3600), "1999-12-31T23:59:59+01:00");
    }
}
