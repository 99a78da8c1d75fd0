//! Go's arithmetic, comparison and conversion rules on scalars, without any
//! DWARF or memory: what `i2 + i3`, `uint8(i4)`, `1 << 62` and `"a" < "b"`
//! mean in Go (the spec's "Constant expressions", "Arithmetic operators",
//! "Conversions").
//!
//! Invariants:
//! - A typed result always lies in its type's range: integer results wrap to
//!   the type's width exactly as the Go runtime computes them (two's
//!   complement), float32 results are rounded to float32.
//! - Where Go leaves a result implementation-defined (a float converted to
//!   an integer type it does not fit) or refuses a constant (`uint8(300)`),
//!   the operation is refused, never answered with a guess: a debugger must
//!   not show a wrong value.
//! - Untyped integer constants are exact up to 127 bits; beyond that an
//!   operation is refused ("constant overflow") rather than rounded.

/// An untyped constant, or the value of a typed scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Const {
    /// Integer (also runes).
    Int(i128),
    /// Floating point.
    Float(f64),
    /// Complex.
    Complex(f64, f64),
    /// Boolean.
    Bool(bool),
    /// String bytes.
    Str(Vec<u8>),
    /// The predeclared `nil`.
    Nil,
}

/// What a scalar type is, as far as arithmetic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num {
    /// An integer type of `bits` width.
    Int {
        /// Signed (intN) or unsigned (uintN, uintptr).
        signed: bool,
        /// 8, 16, 32 or 64.
        bits: u32,
    },
    /// float32 or float64.
    Float(u32),
    /// complex64 (32) or complex128 (64): the width of each part.
    Complex(u32),
    /// bool.
    Bool,
    /// string.
    Str,
}

/// Errors of Go's rules: the message says what Go says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NumError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, NumError> {
    Err(NumError(s.into()))
}

/// The smallest and largest value of an integer type.
pub fn int_range(signed: bool, bits: u32) -> (i128, i128) {
    let bits = bits.clamp(1, 64);
    if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// `v` wrapped to an integer type (two's complement), as Go's runtime
/// arithmetic and integer conversions do.
pub fn wrap(v: i128, signed: bool, bits: u32) -> i128 {
    let bits = bits.clamp(1, 64);
    let mask: u128 = if bits == 64 {
        u64::MAX as u128
    } else {
        (1u128 << bits) - 1
    };
    let low = (v as u128) & mask;
    if signed && low >> (bits - 1) & 1 == 1 {
        (low as i128) - (1i128 << bits)
    } else {
        low as i128
    }
}

/// A float rounded to the precision of a float type.
pub fn round_float(f: f64, bits: u32) -> f64 {
    if bits == 32 {
        f64::from(f as f32)
    } else {
        f
    }
}

fn kind_name(c: &Const) -> &'static str {
    match c {
        Const::Int(_) => "integer",
        Const::Float(_) => "floating-point",
        Const::Complex(..) => "complex",
        Const::Bool(_) => "boolean",
        Const::Str(_) => "string",
        Const::Nil => "nil",
    }
}

fn show(c: &Const) -> String {
    match c {
        Const::Int(i) => i.to_string(),
        Const::Float(f) => format!("{f}"),
        Const::Complex(r, i) => format!("({r} + {i}i)"),
        Const::Bool(b) => b.to_string(),
        Const::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
        Const::Nil => "nil".into(),
    }
}

/// An exact integer value of a float, when it has one that fits 127 bits.
fn float_to_int_exact(f: f64) -> Option<i128> {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1.7e38 {
        Some(f as i128)
    } else {
        None
    }
}

/// An untyped constant given type `t` (Go's assignability of constants):
/// it must be representable in `t`, else the error Go gives.
pub fn represent(c: &Const, t: Num, tname: &str) -> Result<Const, NumError> {
    let bad = || {
        err(format!(
            "cannot use {} (untyped {} constant) as {tname} value",
            show(c),
            kind_name(c)
        ))
    };
    match (t, c) {
        (Num::Int { signed, bits }, _) => {
            let v = match c {
                Const::Int(i) => *i,
                Const::Float(f) => match float_to_int_exact(*f) {
                    Some(i) => i,
                    None => return err(format!("constant {} truncated to integer", show(c))),
                },
                Const::Complex(r, 0.0) => match float_to_int_exact(*r) {
                    Some(i) => i,
                    None => return err(format!("constant {} truncated to integer", show(c))),
                },
                _ => return bad(),
            };
            let (lo, hi) = int_range(signed, bits);
            if v < lo || v > hi {
                return err(format!("constant {v} overflows {tname}"));
            }
            Ok(Const::Int(v))
        }
        (Num::Float(bits), Const::Int(i)) => Ok(Const::Float(round_float(*i as f64, bits))),
        (Num::Float(bits), Const::Float(f)) => {
            let r = round_float(*f, bits);
            if r.is_infinite() {
                return err(format!("constant {} overflows {tname}", show(c)));
            }
            Ok(Const::Float(r))
        }
        (Num::Float(bits), Const::Complex(r, 0.0)) => Ok(Const::Float(round_float(*r, bits))),
        (Num::Complex(bits), Const::Int(i)) => {
            Ok(Const::Complex(round_float(*i as f64, bits), 0.0))
        }
        (Num::Complex(bits), Const::Float(f)) => Ok(Const::Complex(round_float(*f, bits), 0.0)),
        (Num::Complex(bits), Const::Complex(r, i)) => {
            Ok(Const::Complex(round_float(*r, bits), round_float(*i, bits)))
        }
        (Num::Bool, Const::Bool(_)) | (Num::Str, Const::Str(_)) => Ok(c.clone()),
        _ => bad(),
    }
}

/// Promotes two untyped constants to the later kind of integer, float,
/// complex (Go: "the result is of the operand's kind that appears later").
fn promote(a: &Const, b: &Const) -> (Const, Const) {
    fn rank(c: &Const) -> u8 {
        match c {
            Const::Int(_) => 0,
            Const::Float(_) => 1,
            Const::Complex(..) => 2,
            _ => 3,
        }
    }
    let up = |c: &Const, to: u8| match (c, to) {
        (Const::Int(i), 1) => Const::Float(*i as f64),
        (Const::Int(i), 2) => Const::Complex(*i as f64, 0.0),
        (Const::Float(f), 2) => Const::Complex(*f, 0.0),
        _ => c.clone(),
    };
    let (ra, rb) = (rank(a), rank(b));
    if ra > 2 || rb > 2 {
        return (a.clone(), b.clone());
    }
    let r = ra.max(rb);
    (up(a, r), up(b, r))
}

/// Whether `op` is a comparison.
pub fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | "<" | "<=" | ">" | ">=")
}

fn ordered<T: PartialOrd>(op: &str, a: T, b: T) -> Option<bool> {
    Some(match op {
        "==" => a == b,
        "!=" => a != b,
        "<" => a < b,
        "<=" => a <= b,
        ">" => a > b,
        ">=" => a >= b,
        _ => return None,
    })
}

/// `a op b` for two operands of the same type (`t`, `None` for untyped
/// constants). Comparisons give `Const::Bool`; shifts are [`shift`].
pub fn binary(op: &str, a: &Const, b: &Const, t: Option<Num>) -> Result<Const, NumError> {
    let (a, b) = if t.is_none() {
        promote(a, b)
    } else {
        (a.clone(), b.clone())
    };
    let undefined = |what: &str| err(format!("operator {op} not defined on {what}"));
    match (&a, &b) {
        (Const::Int(x), Const::Int(y)) => {
            let (x, y) = (*x, *y);
            if let Some(r) = ordered(op, x, y) {
                return Ok(Const::Bool(r));
            }
            if matches!(op, "/" | "%") && y == 0 {
                return err("integer divide by zero");
            }
            let r = match t {
                Some(Num::Int { signed, bits }) => {
                    let r = match op {
                        "+" => x.wrapping_add(y),
                        "-" => x.wrapping_sub(y),
                        "*" => x.wrapping_mul(y),
                        "/" => x.wrapping_div(y),
                        "%" => x.wrapping_rem(y),
                        "&" => x & y,
                        "|" => x | y,
                        "^" => x ^ y,
                        "&^" => x & !y,
                        _ => return undefined("integers"),
                    };
                    wrap(r, signed, bits)
                }
                _ => {
                    let r = match op {
                        "+" => x.checked_add(y),
                        "-" => x.checked_sub(y),
                        "*" => x.checked_mul(y),
                        "/" => x.checked_div(y),
                        "%" => x.checked_rem(y),
                        "&" => Some(x & y),
                        "|" => Some(x | y),
                        "^" => Some(x ^ y),
                        "&^" => Some(x & !y),
                        _ => return undefined("untyped integers"),
                    };
                    r.ok_or_else(|| NumError("constant overflow".into()))?
                }
            };
            Ok(Const::Int(r))
        }
        (Const::Float(x), Const::Float(y)) => {
            let (x, y) = (*x, *y);
            if let Some(r) = ordered(op, x, y) {
                return Ok(Const::Bool(r));
            }
            if op == "/" && y == 0.0 {
                return err("division by zero");
            }
            let r = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                _ => return undefined("floats"),
            };
            let r = match t {
                Some(Num::Float(bits)) => round_float(r, bits),
                _ => r,
            };
            Ok(Const::Float(r))
        }
        (Const::Complex(ar, ai), Const::Complex(br, bi)) => {
            let (ar, ai, br, bi) = (*ar, *ai, *br, *bi);
            match op {
                "==" => return Ok(Const::Bool(ar == br && ai == bi)),
                "!=" => return Ok(Const::Bool(ar != br || ai != bi)),
                _ => {}
            }
            let (r, i) = match op {
                "+" => (ar + br, ai + bi),
                "-" => (ar - br, ai - bi),
                "*" => (ar * br - ai * bi, ar * bi + ai * br),
                "/" => {
                    let d = br * br + bi * bi;
                    if d == 0.0 {
                        return err("division by zero");
                    }
                    ((ar * br + ai * bi) / d, (ai * br - ar * bi) / d)
                }
                _ => return undefined("complex numbers"),
            };
            let bits = match t {
                Some(Num::Complex(b)) => b,
                _ => 64,
            };
            Ok(Const::Complex(round_float(r, bits), round_float(i, bits)))
        }
        (Const::Str(x), Const::Str(y)) => {
            if let Some(r) = ordered(op, x.as_slice(), y.as_slice()) {
                return Ok(Const::Bool(r));
            }
            if op == "+" {
                let mut s = x.clone();
                s.extend_from_slice(y);
                return Ok(Const::Str(s));
            }
            undefined("strings")
        }
        (Const::Bool(x), Const::Bool(y)) => match op {
            "==" => Ok(Const::Bool(x == y)),
            "!=" => Ok(Const::Bool(x != y)),
            "&&" => Ok(Const::Bool(*x && *y)),
            "||" => Ok(Const::Bool(*x || *y)),
            _ => undefined("bool"),
        },
        _ => err(format!(
            "invalid operation: mismatched types untyped {} and untyped {}",
            kind_name(&a),
            kind_name(&b)
        )),
    }
}

/// `x << n` / `x >> n` with `x` of integer type `t` (`None`: untyped).
pub fn shift(op: &str, x: i128, n: i128, t: Option<Num>) -> Result<Const, NumError> {
    if n < 0 {
        return err("invalid shift count: must not be negative");
    }
    match t {
        Some(Num::Int { signed, bits }) => {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let r = match op {
                "<<" if n >= bits => 0,
                "<<" => wrap(((x as u128) << n) as i128, signed, bits),
                _ if n >= bits => {
                    if x < 0 {
                        -1
                    } else {
                        0
                    }
                }
                _ => x >> n,
            };
            Ok(Const::Int(r))
        }
        None => match op {
            "<<" => {
                if x == 0 {
                    return Ok(Const::Int(0));
                }
                let n = u32::try_from(n).ok().filter(|&n| n < 127);
                match n.and_then(|n| x.checked_mul(1i128.checked_shl(n)?)) {
                    Some(r) => Ok(Const::Int(r)),
                    None => err("constant shift overflow"),
                }
            }
            _ => Ok(Const::Int(if n >= 127 {
                if x < 0 {
                    -1
                } else {
                    0
                }
            } else {
                x >> n
            })),
        },
        Some(_) => err("shift of a non-integer"),
    }
}

/// `-x`, `^x`, `!x`, `+x`.
pub fn unary(op: &str, x: &Const, t: Option<Num>) -> Result<Const, NumError> {
    match (op, x, t) {
        ("+", c, _) => Ok(c.clone()),
        ("-", Const::Int(i), Some(Num::Int { signed, bits })) => {
            Ok(Const::Int(wrap(i.wrapping_neg(), signed, bits)))
        }
        ("-", Const::Int(i), _) => i
            .checked_neg()
            .map(Const::Int)
            .ok_or_else(|| NumError("constant overflow".into())),
        ("-", Const::Float(f), _) => Ok(Const::Float(-f)),
        ("-", Const::Complex(r, i), _) => Ok(Const::Complex(-r, -i)),
        ("^", Const::Int(i), Some(Num::Int { signed, bits })) => {
            Ok(Const::Int(wrap(!i, signed, bits)))
        }
        ("^", Const::Int(i), None) => Ok(Const::Int(!i)),
        ("!", Const::Bool(b), _) => Ok(Const::Bool(!b)),
        _ => err(format!(
            "operator {op} not defined on {} value",
            kind_name(x)
        )),
    }
}

/// The numeric conversion `T(x)` of a non-constant value `x` of class
/// `from` to class `to` (Go's "Conversions between numeric types").
/// Refused where Go's result would be implementation-defined.
pub fn convert(x: &Const, to: Num, tname: &str) -> Result<Const, NumError> {
    match (x, to) {
        (Const::Int(i), Num::Int { signed, bits }) => Ok(Const::Int(wrap(*i, signed, bits))),
        (Const::Float(f), Num::Int { signed, bits }) => {
            let t = f.trunc();
            let (lo, hi) = int_range(signed, bits);
            if !t.is_finite() || t < lo as f64 || t > hi as f64 {
                return err(format!(
                    "{} does not fit in {tname}: Go leaves the result of this conversion implementation-defined",
                    show(x)
                ));
            }
            Ok(Const::Int(t as i128))
        }
        (Const::Int(i), Num::Float(bits)) => Ok(Const::Float(round_float(*i as f64, bits))),
        (Const::Float(f), Num::Float(bits)) => Ok(Const::Float(round_float(*f, bits))),
        (Const::Int(i), Num::Complex(bits)) => {
            Ok(Const::Complex(round_float(*i as f64, bits), 0.0))
        }
        (Const::Float(f), Num::Complex(bits)) => Ok(Const::Complex(round_float(*f, bits), 0.0)),
        (Const::Complex(r, i), Num::Complex(bits)) => {
            Ok(Const::Complex(round_float(*r, bits), round_float(*i, bits)))
        }
        (Const::Bool(_), Num::Bool) | (Const::Str(_), Num::Str) => Ok(x.clone()),
        _ => err(format!("cannot convert {} to {tname}", show(x))),
    }
}

/// The conversion `T(c)` of an untyped constant: Go requires the constant to
/// be representable in `T` (`uint8(300)`, `int(3.5)` are compile errors),
/// except integer constants converted to a float or complex type.
pub fn convert_const(c: &Const, to: Num, tname: &str) -> Result<Const, NumError> {
    match (c, to) {
        (Const::Float(_), Num::Int { .. }) | (Const::Int(_), Num::Int { .. }) => {
            represent(c, to, tname)
        }
        (Const::Float(f), Num::Float(bits)) => Ok(Const::Float(round_float(*f, bits))),
        _ => convert(c, to, tname),
    }
}

/// `string(rune)`: the UTF-8 of a code point, U+FFFD when it is not one.
pub fn rune_string(i: i128) -> Vec<u8> {
    let c = u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}');
    c.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const I8: Num = Num::Int {
        signed: true,
        bits: 8,
    };
    const U8: Num = Num::Int {
        signed: false,
        bits: 8,
    };
    const I64: Num = Num::Int {
        signed: true,
        bits: 64,
    };

    #[test]
    fn conversions_follow_the_spec() {
        assert_eq!(convert(&Const::Float(3.0), I64, "int"), Ok(Const::Int(3)));
        assert_eq!(convert(&Const::Float(-3.9), I64, "int"), Ok(Const::Int(-3)));
        assert_eq!(convert(&Const::Int(800), U8, "uint8"), Ok(Const::Int(32)));
        assert_eq!(convert(&Const::Int(-500), I8, "int8"), Ok(Const::Int(12)));
        assert!(convert(&Const::Float(300.0), I8, "int8").is_err());
        assert!(convert(&Const::Float(f64::NAN), I64, "int").is_err());
        assert_eq!(
            convert(&Const::Float(0.1), Num::Float(32), "float32"),
            Ok(Const::Float(f64::from(0.1f32)))
        );
        assert!(convert_const(&Const::Int(300), U8, "uint8").is_err());
        assert!(convert_const(&Const::Float(3.5), I64, "int").is_err());
        assert_eq!(
            convert_const(&Const::Float(3.0), I64, "int"),
            Ok(Const::Int(3))
        );
    }

    #[test]
    fn typed_arithmetic_wraps() {
        assert_eq!(
            binary("+", &Const::Int(127), &Const::Int(1), Some(I8)),
            Ok(Const::Int(-128))
        );
        assert_eq!(
            binary(
                "/",
                &Const::Int(i64::MIN.into()),
                &Const::Int(-1),
                Some(I64)
            ),
            Ok(Const::Int(i64::MIN.into()))
        );
        assert_eq!(
            binary("-", &Const::Int(0), &Const::Int(1), Some(U8)),
            Ok(Const::Int(255))
        );
        assert_eq!(
            binary("/", &Const::Int(-7), &Const::Int(2), None),
            Ok(Const::Int(-3))
        );
        assert_eq!(
            binary("%", &Const::Int(-7), &Const::Int(2), None),
            Ok(Const::Int(-1))
        );
        assert!(binary("/", &Const::Int(1), &Const::Int(0), Some(I64)).is_err());
        assert_eq!(
            binary("/", &Const::Int(7), &Const::Float(2.0), None),
            Ok(Const::Float(3.5))
        );
        assert_eq!(
            binary("&^", &Const::Int(0b1111), &Const::Int(0b0101), None),
            Ok(Const::Int(0b1010))
        );
        assert_eq!(unary("^", &Const::Int(2), Some(I64)), Ok(Const::Int(-3)));
        assert_eq!(unary("^", &Const::Int(2), Some(U8)), Ok(Const::Int(253)));
        assert_eq!(
            unary("-", &Const::Int(-128), Some(I8)),
            Ok(Const::Int(-128))
        );
    }

    #[test]
    fn shifts() {
        assert_eq!(shift("<<", 1, 62, None), Ok(Const::Int(1 << 62)));
        assert_eq!(shift("<<", 1, 8, Some(U8)), Ok(Const::Int(0)));
        assert_eq!(shift("<<", 1, 7, Some(I8)), Ok(Const::Int(-128)));
        assert_eq!(shift(">>", -8, 100, Some(I64)), Ok(Const::Int(-1)));
        assert!(shift("<<", 1, 200, None).is_err());
        assert!(shift("<<", 1, -1, None).is_err());
    }

    #[test]
    fn representability() {
        assert!(represent(&Const::Int(256), U8, "uint8").is_err());
        assert_eq!(
            represent(&Const::Float(2.0), U8, "uint8"),
            Ok(Const::Int(2))
        );
        assert!(represent(&Const::Str(b"x".to_vec()), U8, "uint8").is_err());
        assert!(represent(&Const::Float(1e300), Num::Float(32), "float32").is_err());
    }
}
