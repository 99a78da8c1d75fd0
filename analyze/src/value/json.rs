//! Canonical value JSON (CONTRACT.md, `print --format json`).
//!
//! Written by hand rather than through serde so that numbers keep the exact
//! text Go's `strconv.FormatFloat(f, 'g', -1, bits)` gives, and so that map
//! keys sort by the same bytes the reflection oracle sorts by.

use std::fmt::Write as _;

use super::{Pointee, Value, ValueKind};

/// Integers whose magnitude exceeds 2^53 are written as decimal strings.
const EXACT_INT_LIMIT: u64 = 1 << 53;

/// The canonical JSON text of `v`.
pub fn to_json(v: &Value) -> String {
    let mut s = String::new();
    write_value(&mut s, v);
    s
}

/// Appends the canonical JSON of `v` to `out`.
pub fn write_value(out: &mut String, v: &Value) {
    match &v.kind {
        ValueKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ValueKind::Int(i) => {
            if i.unsigned_abs() > EXACT_INT_LIMIT {
                let _ = write!(out, "\"{i}\"");
            } else {
                let _ = write!(out, "{i}");
            }
        }
        ValueKind::Uint(u) => {
            if *u > EXACT_INT_LIMIT {
                let _ = write!(out, "\"{u}\"");
            } else {
                let _ = write!(out, "{u}");
            }
        }
        ValueKind::Float { value, bits } => write_float(out, *value, *bits),
        ValueKind::Complex { re, im, bits } => {
            out.push('[');
            write_float(out, *re, *bits);
            out.push(',');
            write_float(out, *im, *bits);
            out.push(']');
        }
        ValueKind::String { bytes, len } => {
            if (bytes.len() as u64) < *len {
                let mut b = bytes.clone();
                b.extend_from_slice(format!("...+{} more", len - bytes.len() as u64).as_bytes());
                write_string(out, &b);
            } else {
                write_string(out, bytes);
            }
        }
        ValueKind::Array { len, elems } => write_elems(out, elems, *len),
        ValueKind::Slice {
            len, base, elems, ..
        } => {
            if *base == 0 {
                out.push_str("null");
            } else {
                write_elems(out, elems, *len);
            }
        }
        ValueKind::Struct { fields, total } => {
            out.push('{');
            let mut first = true;
            for (name, fv) in fields.iter().filter(|(n, _)| n != "_") {
                if !first {
                    out.push(',');
                }
                first = false;
                write_string(out, name.as_bytes());
                out.push(':');
                write_value(out, fv);
            }
            if fields.len() < *total {
                if !first {
                    out.push(',');
                }
                let _ = write!(out, "\"$more\":{}", total - fields.len());
            }
            out.push('}');
        }
        ValueKind::Pointer { addr, pointee } => match pointee {
            Pointee::Nil => out.push_str("null"),
            Pointee::Cycle => {
                let _ = write!(out, "{{\"$cycle\":\"0x{addr:x}\"}}");
            }
            Pointee::NotLoaded => {
                let _ = write!(out, "{{\"$ptr\":\"0x{addr:x}\"}}");
            }
            Pointee::Loaded(p) => write_value(out, p),
        },
        ValueKind::Map { addr, len, entries } => {
            if *addr == 0 {
                out.push_str("null");
                return;
            }
            let mut pairs: Vec<(String, String)> = entries
                .iter()
                .map(|(k, v)| {
                    let mut ks = String::new();
                    write_value(&mut ks, k);
                    let mut vs = String::new();
                    write_value(&mut vs, v);
                    (ks, vs)
                })
                .collect();
            pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('[');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                out.push_str(k);
                out.push(',');
                out.push_str(v);
                out.push(']');
            }
            if (entries.len() as u64) < *len {
                if !entries.is_empty() {
                    out.push(',');
                }
                let _ = write!(out, "{{\"$more\":{}}}", len - entries.len() as u64);
            }
            out.push(']');
        }
        ValueKind::Chan {
            addr,
            elem_type,
            len,
            cap,
            closed,
            buffer,
            senders,
            receivers,
            ..
        } => {
            if *addr == 0 {
                out.push_str("null");
                return;
            }
            out.push_str("{\"$chan\":");
            write_string(out, elem_type.as_bytes());
            let _ = write!(
                out,
                ",\"len\":{len},\"cap\":{cap},\"closed\":{closed},\"buffer\":"
            );
            write_elems(out, buffer, *len);
            let _ = write!(
                out,
                ",\"senders\":{senders:?},\"receivers\":{receivers:?}}}"
            );
        }
        ValueKind::Interface {
            dyn_type, value, ..
        } => match (dyn_type, value) {
            (None, _) => out.push_str("null"),
            (Some(t), v) => {
                out.push_str("{\"$type\":");
                write_string(out, t.as_bytes());
                out.push_str(",\"$value\":");
                match v {
                    Some(v) => write_value(out, v),
                    None => out.push_str("{\"$more\":1}"),
                }
                out.push('}');
            }
        },
        ValueKind::Func { pc, name, .. } => {
            if *pc == 0 {
                out.push_str("null");
            } else {
                out.push_str("{\"$func\":");
                match name {
                    Some(n) => write_string(out, n.as_bytes()),
                    None => write_string(out, b"?"),
                }
                out.push('}');
            }
        }
        ValueKind::UnsafePointer(p) => {
            let _ = write!(out, "\"0x{p:x}\"");
        }
        ValueKind::Unreadable(why) => {
            out.push_str("{\"$unreadable\":");
            write_string(out, why.as_bytes());
            out.push('}');
        }
    }
}

fn write_elems(out: &mut String, elems: &[Value], len: u64) {
    out.push('[');
    for (i, e) in elems.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(out, e);
    }
    if (elems.len() as u64) < len {
        if !elems.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{{\"$more\":{}}}", len - elems.len() as u64);
    }
    out.push(']');
}

/// Writes a float as Go's `strconv.FormatFloat(f, 'g', -1, bits)`; NaN and
/// infinities as the strings of the canonical table.
pub fn write_float(out: &mut String, f: f64, bits: u8) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "\"+Inf\"" } else { "\"-Inf\"" });
    } else {
        out.push_str(&format_go_float(f, bits, 'g'));
    }
}

/// Go's `strconv.FormatFloat(f, fmt, -1, bits)` for `fmt` 'g' or 'f' and a
/// finite `f`: the shortest digits that read back at that width.
pub fn format_go_float(f: f64, bits: u8, fmt: char) -> String {
    // Rust's `{:e}` prints the shortest round-trip digits: "1.2345e-7".
    let sci = if bits == 32 {
        format!("{:e}", f as f32)
    } else {
        format!("{f:e}")
    };
    let (neg, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, sci),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    let nd = digits.len() as i32;
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    // strconv's shortest 'g' switches to %e when exp < -4 || exp >= 6
    // ("if shortest { eprec = 6 }" in ftoa.go).
    let _ = nd;
    let use_exp = fmt == 'g' && !(-4..6).contains(&exp);
    if use_exp {
        s.push_str(&digits[..1]);
        if nd > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            s.push('0');
        }
        let _ = write!(s, "{a}");
        return s;
    }
    if exp >= 0 {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            s.push_str(&digits);
            s.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            s.push_str(&digits[..int_len]);
            s.push('.');
            s.push_str(&digits[int_len..]);
        }
    } else {
        s.push_str("0.");
        s.push_str(&"0".repeat((-exp - 1) as usize));
        s.push_str(&digits);
    }
    s
}

/// Writes `bytes` as a JSON string exactly as the oracle does: `"` and `\`
/// escaped, `\b \f \n \r \t` short forms, other controls as `\u00xx`, and each
/// byte that is not part of valid UTF-8 as U+FFFD.
pub fn write_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                escape_into(out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                escape_into(out, std::str::from_utf8(good).unwrap_or(""));
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for _ in 0..n {
                    out.push('\u{fffd}');
                }
                rest = bad.get(n..).unwrap_or(&[]);
            }
        }
    }
    out.push('"');
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go_g_format() {
        assert_eq!(format_go_float(0.1, 64, 'g'), "0.1");
        assert_eq!(format_go_float(f64::from(0.1f32), 32, 'g'), "0.1");
        assert_eq!(format_go_float(1e6, 64, 'g'), "1e+06");
        assert_eq!(format_go_float(123456.0, 64, 'g'), "123456");
        assert_eq!(format_go_float(1234567.0, 64, 'g'), "1.234567e+06");
        assert_eq!(format_go_float(1e21, 64, 'g'), "1e+21");
        assert_eq!(format_go_float(1e-7, 64, 'g'), "1e-07");
        assert_eq!(format_go_float(0.0001, 64, 'g'), "0.0001");
        assert_eq!(format_go_float(0.00001, 64, 'g'), "1e-05");
        assert_eq!(format_go_float(-2.5, 64, 'g'), "-2.5");
        assert_eq!(format_go_float(0.0, 64, 'g'), "0");
        assert_eq!(format_go_float(100.0, 64, 'g'), "100");
        assert_eq!(format_go_float(2.5625, 64, 'f'), "2.5625");
        assert_eq!(format_go_float(1e21, 64, 'f'), "1000000000000000000000");
        assert_eq!(format_go_float(1.5e-7, 64, 'f'), "0.00000015");
    }

    #[test]
    fn strings_replace_each_invalid_byte() {
        let mut s = String::new();
        write_string(&mut s, b"h\xc3\xa9\xff\"\n\x01\xe4\xb8A");
        assert_eq!(s, "\"h\u{e9}\u{fffd}\\\"\\n\\u0001\u{fffd}\u{fffd}A\"");
    }

    #[test]
    fn big_integers_are_strings() {
        let v = |kind| Value {
            display: None,
            composite_target: false,
            type_name: "int64".into(),
            addr: None,
            kind,
        };
        assert_eq!(to_json(&v(ValueKind::Int(1 << 53))), "9007199254740992");
        assert_eq!(
            to_json(&v(ValueKind::Int((1 << 53) + 1))),
            "\"9007199254740993\""
        );
        assert_eq!(
            to_json(&v(ValueKind::Int(i64::MIN))),
            "\"-9223372036854775808\""
        );
        assert_eq!(
            to_json(&v(ValueKind::Uint(u64::MAX))),
            "\"18446744073709551615\""
        );
    }
}
