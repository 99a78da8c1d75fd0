//! Expressions (CONTRACT.md): package-qualified globals, locals and
//! arguments by name, field selection, indexing of arrays, slices, strings
//! and maps, `*p`, `&x`, `len()`, `cap()`, conversions `T(x)` and
//! `*(*T)(0xADDR)`. A hand-written lexer and recursive-descent parser build an
//! [`Expr`]; [`Evaluator`] turns it into a [`Value`].

use crate::dwarf::{TypeId, TypeKind};

use super::gonum::{self, Const, Num};
use super::json;
use super::maps;
use super::{LoadConfig, Loader, Pointee, Program, Value, ValueKind};

/// Errors of parsing or evaluating an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The text is not an expression of the supported subset.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A name that is neither a local, an argument nor a package variable.
    #[error("could not find symbol value for {name}{}", suggest(.suggestions))]
    NotFound {
        /// The name asked for.
        name: String,
        /// Near names that exist.
        suggestions: Vec<String>,
    },
    /// The operation does not apply to the operand's type.
    #[error("{0}")]
    Type(String),
    /// Memory needed by the expression is not in the snapshot.
    #[error("{0}")]
    Unreadable(String),
    /// Something a snapshot cannot do (calls, assignments).
    #[error("{0}")]
    Unsupported(String),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(u128),
    Float(f64),
    Imag(f64),
    Str(Vec<u8>),
    Char(u32),
    Punct(&'static str),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "{s}"),
            Tok::Int(i) => write!(f, "{i}"),
            Tok::Float(x) => write!(f, "{x}"),
            Tok::Imag(x) => write!(f, "{x}i"),
            Tok::Str(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Tok::Char(c) => write!(f, "{:?}", char::from_u32(*c).unwrap_or('?')),
            Tok::Punct(p) => write!(f, "{p}"),
        }
    }
}

/// Punctuation, longest first (so `&&` is not read as two `&`).
const PUNCTS: [&str; 30] = [
    "...", "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "&^", "*", "&", ".", "[", "]", "(", ")",
    "{", "}", ",", ":", "-", "+", "<", ">", "!", "^", "|", "/", "%",
];

/// Whether the identifier starting at `start` continues through a `/` at
/// `slash` as a package path: `net/http.Client` is one name, `i2/i3` a
/// division. A path is a run of path characters that ends in `.Name`.
fn slash_continues_path(b: &[u8], slash: usize) -> bool {
    let mut j = slash + 1;
    if !b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return false;
    }
    while let Some(&c) = b.get(j) {
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'/' || c == b'-' || c >= 0x80 {
            j += 1;
        } else {
            break;
        }
    }
    b.get(j) == Some(&b'.')
        && b.get(j + 1)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
}

fn lex(src: &str) -> Result<Vec<Tok>, EvalError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            // Identifiers may carry a package path: `net/http.Client` lexes as
            // `net/http` `.` `Client`.
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'_'
                    || b[i] >= 0x80
                    || (b[i] == b'/' && slash_continues_path(b, i))
                    || (b[i] == b'-' && src[start..i].contains('/')))
            {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_string()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            let hex = src[start..].to_ascii_lowercase().starts_with("0x");
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'_'
                    || b[i] == b'.'
                    || ((b[i] == b'-' || b[i] == b'+') && !hex && matches!(b[i - 1], b'e' | b'E')))
            {
                // `1.5` is a float but `x[1].f` must stop at the dot.
                if b[i] == b'.' && !(i + 1 < b.len() && b[i + 1].is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            let text: String = src[start..i].chars().filter(|&c| c != '_').collect();
            let mut lower = text.to_ascii_lowercase();
            // An imaginary literal: `2i`, `1.5i`.
            if lower.len() > 1 && lower.ends_with('i') {
                lower.pop();
                let v = if let Some(h) = lower.strip_prefix("0x") {
                    u128::from_str_radix(h, 16).ok().map(|v| v as f64)
                } else {
                    lower.parse::<f64>().ok()
                };
                out.push(Tok::Imag(v.ok_or_else(|| {
                    EvalError::Syntax(format!("bad number {text}"))
                })?));
                continue;
            }
            let parsed = if let Some(h) = lower.strip_prefix("0x") {
                u128::from_str_radix(h, 16).ok().map(Tok::Int)
            } else if let Some(o) = lower.strip_prefix("0o") {
                u128::from_str_radix(o, 8).ok().map(Tok::Int)
            } else if let Some(bn) = lower.strip_prefix("0b") {
                u128::from_str_radix(bn, 2).ok().map(Tok::Int)
            } else if lower.contains('.') || lower.contains('e') {
                lower.parse::<f64>().ok().map(Tok::Float)
            } else if lower.len() > 1 && lower.starts_with('0') {
                u128::from_str_radix(&lower[1..], 8).ok().map(Tok::Int)
            } else {
                lower.parse::<u128>().ok().map(Tok::Int)
            };
            out.push(parsed.ok_or_else(|| EvalError::Syntax(format!("bad number {text}")))?);
            continue;
        }
        if c == b'"' {
            let (s, next) = lex_quoted(b, i + 1, b'"')?;
            out.push(Tok::Str(s));
            i = next;
            continue;
        }
        if c == b'`' {
            let end = src[i + 1..]
                .find('`')
                .ok_or_else(|| EvalError::Syntax("unterminated raw string".into()))?;
            out.push(Tok::Str(src.as_bytes()[i + 1..i + 1 + end].to_vec()));
            i += end + 2;
            continue;
        }
        if c == b'\'' {
            let (s, next) = lex_quoted(b, i + 1, b'\'')?;
            let text = String::from_utf8_lossy(&s).into_owned();
            let mut chars = text.chars();
            let ch = match (chars.next(), chars.next()) {
                (Some(ch), None) => ch as u32,
                _ if s.len() == 1 => u32::from(s[0]),
                _ => return Err(EvalError::Syntax("bad character literal".into())),
            };
            out.push(Tok::Char(ch));
            i = next;
            continue;
        }
        match PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            Some(p) => {
                out.push(Tok::Punct(p));
                i += p.len();
            }
            None => {
                return Err(EvalError::Syntax(format!(
                    "unexpected character {:?} at offset {i}",
                    src[i..].chars().next().unwrap_or('?')
                )))
            }
        }
    }
    Ok(out)
}

/// Reads a quoted literal body starting at `i`; returns the bytes and the
/// index after the closing quote.
fn lex_quoted(b: &[u8], mut i: usize, quote: u8) -> Result<(Vec<u8>, usize), EvalError> {
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == b'\\' {
            let e = *b
                .get(i + 1)
                .ok_or_else(|| EvalError::Syntax("unterminated escape".into()))?;
            i += 2;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let digits = b
                        .get(i - 1..i + 2)
                        .ok_or_else(|| EvalError::Syntax("bad octal escape".into()))?;
                    let s = std::str::from_utf8(digits).unwrap_or("");
                    out.push(
                        u8::from_str_radix(s, 8)
                            .map_err(|_| EvalError::Syntax("bad octal escape".into()))?,
                    );
                    i += 2;
                }
                b'x' | b'u' | b'U' => {
                    let n = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let digits = b
                        .get(i..i + n)
                        .ok_or_else(|| EvalError::Syntax("short escape".into()))?;
                    let s = std::str::from_utf8(digits).unwrap_or("");
                    let v = u32::from_str_radix(s, 16)
                        .map_err(|_| EvalError::Syntax("bad hex escape".into()))?;
                    i += n;
                    if e == b'x' {
                        out.push(v as u8);
                    } else {
                        let ch = char::from_u32(v)
                            .ok_or_else(|| EvalError::Syntax("bad code point".into()))?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                }
                other => out.push(other),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    Err(EvalError::Syntax("unterminated literal".into()))
}

// ---------------------------------------------------------------- AST

/// A type written in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    /// `main.Config`, `int`.
    Named(String),
    /// `*T`.
    Pointer(Box<TypeExpr>),
    /// `[]T`.
    Slice(Box<TypeExpr>),
    /// `[N]T`.
    Array(u64, Box<TypeExpr>),
    /// `map[K]V`.
    Map(Box<TypeExpr>, Box<TypeExpr>),
}

impl std::fmt::Display for TypeExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeExpr::Named(n) => write!(f, "{n}"),
            TypeExpr::Pointer(t) => write!(f, "*{t}"),
            TypeExpr::Slice(t) => write!(f, "[]{t}"),
            TypeExpr::Array(n, t) => write!(f, "[{n}]{t}"),
            TypeExpr::Map(k, v) => write!(f, "map[{k}]{v}"),
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A name (a local, or the first part of a package-qualified name).
    Ident(String),
    /// Integer literal.
    Int(i128),
    /// Float literal.
    Float(f64),
    /// String literal.
    Str(Vec<u8>),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `x.name`.
    Select(Box<Expr>, String),
    /// `x[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `*x`.
    Deref(Box<Expr>),
    /// `&x`.
    AddrOf(Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `f(args)`: builtins and conversions.
    Call(Box<Expr>, Vec<Expr>),
    /// `(T)(x)` with a type that is not a plain name.
    Convert(TypeExpr, Box<Expr>),
    /// `T{...}` composite literal (map keys of struct type).
    Composite(Box<Expr>, Vec<(Option<String>, Expr)>),
    /// Imaginary literal `2i`.
    Imag(f64),
    /// `x op y` (Go's binary operators).
    Binary(&'static str, Box<Expr>, Box<Expr>),
    /// `!x`, `^x`.
    Unary(&'static str, Box<Expr>),
    /// `x[lo:hi]`.
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    /// `x.(T)`; `x.(data)` is Delve's "whatever the interface holds".
    TypeAssert(Box<Expr>, TypeExpr),
    /// Delve's quoted package path: `"net/http".DefaultClient`.
    PkgPath(String),
}

/// Go's binary operator precedence (5 binds tightest).
fn precedence(op: &str) -> Option<u8> {
    Some(match op {
        "*" | "/" | "%" | "<<" | ">>" | "&" | "&^" => 5,
        "+" | "-" | "|" | "^" => 4,
        "==" | "!=" | "<" | "<=" | ">" | ">=" => 3,
        "&&" => 2,
        "||" => 1,
        _ => return None,
    })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: u32,
}

/// Nesting allowed in an expression (the parser recurses per level).
const MAX_NESTING: u32 = 100;

/// Parses an expression of the supported subset.
pub fn parse(src: &str) -> Result<Expr, EvalError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(EvalError::Syntax("empty expression".into()));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        let extra = p.toks.get(p.pos).map(|t| t.to_string()).unwrap_or_default();
        return Err(EvalError::Syntax(format!(
            "unexpected `{extra}` after the expression"
        )));
    }
    Ok(e)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.is(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), EvalError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(EvalError::Syntax(format!("expected {p}")))
        }
    }
    fn ident(&mut self) -> Result<String, EvalError> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            Some(other) => Err(EvalError::Syntax(format!(
                "expected a name, found `{other}`"
            ))),
            None => Err(EvalError::Syntax(
                "expected a name at the end of the expression".into(),
            )),
        }
    }

    fn expr(&mut self) -> Result<Expr, EvalError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(EvalError::Syntax(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            )));
        }
        let e = self.binary(1);
        self.depth -= 1;
        e
    }

    /// Operators of precedence `min` and tighter, left-associative.
    fn binary(&mut self, min: u8) -> Result<Expr, EvalError> {
        let mut lhs = self.unary()?;
        loop {
            let Some(Tok::Punct(op)) = self.peek() else {
                return Ok(lhs);
            };
            let op: &'static str = op;
            let Some(prec) = precedence(op).filter(|&p| p >= min) else {
                return Ok(lhs);
            };
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(EvalError::Syntax(format!(
                    "expression nested deeper than {MAX_NESTING} levels"
                )));
            }
            let rhs = self.binary(prec + 1);
            self.depth -= 1;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs?));
        }
    }

    fn unary(&mut self) -> Result<Expr, EvalError> {
        if self.depth > MAX_NESTING {
            return Err(EvalError::Syntax(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            )));
        }
        if ["*", "&", "-", "+", "!", "^"].iter().any(|p| self.is(p)) {
            self.depth += 1;
            let r = self.unary_op();
            self.depth -= 1;
            return r;
        }
        self.postfix()
    }

    fn unary_op(&mut self) -> Result<Expr, EvalError> {
        if self.eat("*") {
            return Ok(Expr::Deref(Box::new(self.unary()?)));
        }
        if self.eat("&") {
            return Ok(Expr::AddrOf(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.eat("+") {
            return self.unary();
        }
        if self.eat("!") {
            return Ok(Expr::Unary("!", Box::new(self.unary()?)));
        }
        if self.eat("^") {
            return Ok(Expr::Unary("^", Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, EvalError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                if self.eat("(") {
                    let t = match self.peek() {
                        Some(Tok::Ident(d)) if d == "data" => {
                            self.pos += 1;
                            TypeExpr::Named("data".into())
                        }
                        _ => self.type_expr()?,
                    };
                    self.expect(")")?;
                    e = Expr::TypeAssert(Box::new(e), t);
                    continue;
                }
                let name = self.ident()?;
                e = match e {
                    Expr::Str(path) if !path.is_empty() => Expr::Select(
                        Box::new(Expr::PkgPath(String::from_utf8_lossy(&path).into_owned())),
                        name,
                    ),
                    other => Expr::Select(Box::new(other), name),
                };
            } else if self.eat("[") {
                let lo = if self.is(":") {
                    None
                } else {
                    Some(Box::new(self.expr()?))
                };
                if self.eat(":") {
                    let hi = if self.is("]") {
                        None
                    } else {
                        Some(Box::new(self.expr()?))
                    };
                    self.expect("]")?;
                    e = Expr::Slice(Box::new(e), lo, hi);
                    continue;
                }
                self.expect("]")?;
                let i = lo.ok_or_else(|| EvalError::Syntax("expected an index".into()))?;
                e = Expr::Index(Box::new(e), i);
            } else if self.eat("(") {
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(")") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                e = Expr::Call(Box::new(e), args);
            } else if self.is("{") && is_name_chain(&e) {
                self.pos += 1;
                let mut fields = Vec::new();
                if !self.eat("}") {
                    loop {
                        let save = self.pos;
                        let name = match (self.peek(), self.toks.get(self.pos + 1)) {
                            (Some(Tok::Ident(n)), Some(Tok::Punct(":"))) => {
                                let n = n.clone();
                                self.pos += 2;
                                Some(n)
                            }
                            _ => {
                                self.pos = save;
                                None
                            }
                        };
                        fields.push((name, self.expr()?));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                        if self.eat("}") {
                            break;
                        }
                    }
                }
                e = Expr::Composite(Box::new(e), fields);
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, EvalError> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| EvalError::Syntax("unexpected end of expression".into()))?;
        match tok {
            Tok::Ident(s) => {
                self.pos += 1;
                Ok(match s.as_str() {
                    "true" => Expr::Bool(true),
                    "false" => Expr::Bool(false),
                    "nil" => Expr::Nil,
                    _ => Expr::Ident(s),
                })
            }
            Tok::Int(v) => {
                self.pos += 1;
                Ok(Expr::Int(i128::try_from(v).map_err(|_| {
                    EvalError::Syntax("integer too large".into())
                })?))
            }
            Tok::Float(f) => {
                self.pos += 1;
                Ok(Expr::Float(f))
            }
            Tok::Imag(f) => {
                self.pos += 1;
                Ok(Expr::Imag(f))
            }
            Tok::Char(c) => {
                self.pos += 1;
                Ok(Expr::Int(i128::from(c)))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Tok::Punct("(") => {
                self.pos += 1;
                // `(T)(x)`: try a type first, fall back to a parenthesized expression.
                let save = self.pos;
                if let Ok(t) = self.type_expr() {
                    if self.eat(")") && self.is("(") && !matches!(t, TypeExpr::Named(_)) {
                        self.pos += 1;
                        let arg = self.expr()?;
                        self.expect(")")?;
                        return Ok(Expr::Convert(t, Box::new(arg)));
                    }
                }
                self.pos = save;
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Punct("[") => {
                // `[]T(x)` / `[N]T(x)` conversions.
                let t = self.type_expr()?;
                self.expect("(")?;
                let arg = self.expr()?;
                self.expect(")")?;
                Ok(Expr::Convert(t, Box::new(arg)))
            }
            other => Err(EvalError::Syntax(format!("unexpected `{other}`"))),
        }
    }

    fn type_expr(&mut self) -> Result<TypeExpr, EvalError> {
        self.depth += 1;
        let t = if self.depth > MAX_NESTING {
            Err(EvalError::Syntax(format!(
                "type nested deeper than {MAX_NESTING} levels"
            )))
        } else {
            self.type_expr_inner()
        };
        self.depth -= 1;
        t
    }

    fn type_expr_inner(&mut self) -> Result<TypeExpr, EvalError> {
        if self.eat("*") {
            return Ok(TypeExpr::Pointer(Box::new(self.type_expr()?)));
        }
        if self.eat("[") {
            if self.eat("]") {
                return Ok(TypeExpr::Slice(Box::new(self.type_expr()?)));
            }
            let n = match self.peek() {
                Some(Tok::Int(n)) => {
                    u64::try_from(*n).map_err(|_| EvalError::Syntax("array too long".into()))?
                }
                _ => return Err(EvalError::Syntax("expected an array length".into())),
            };
            self.pos += 1;
            self.expect("]")?;
            return Ok(TypeExpr::Array(n, Box::new(self.type_expr()?)));
        }
        let first = self.ident()?;
        if first == "map" && self.eat("[") {
            let k = self.type_expr()?;
            self.expect("]")?;
            let v = self.type_expr()?;
            return Ok(TypeExpr::Map(Box::new(k), Box::new(v)));
        }
        let mut name = first;
        while self.is(".") {
            if let Some(Tok::Ident(next)) = self.toks.get(self.pos + 1) {
                name = format!("{name}.{next}");
                self.pos += 2;
            } else {
                break;
            }
        }
        // Generic instances: `main.Pair[string,int]`.
        if self.is("[") {
            let save = self.pos;
            self.pos += 1;
            let mut args = Vec::new();
            let ok = loop {
                match self.type_expr() {
                    Ok(t) => args.push(t.to_string()),
                    Err(_) => break false,
                }
                if self.eat("]") {
                    break true;
                }
                if !self.eat(",") {
                    break false;
                }
            };
            if ok {
                name = format!("{name}[{}]", args.join(","));
            } else {
                self.pos = save;
            }
        }
        Ok(TypeExpr::Named(name))
    }
}

fn is_name_chain(e: &Expr) -> bool {
    match e {
        Expr::Ident(_) | Expr::PkgPath(_) => true,
        Expr::Select(b, _) => is_name_chain(b),
        _ => false,
    }
}

/// `a.b.c` → ["a", "b", "c"].
fn name_chain(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Ident(n) | Expr::PkgPath(n) => Some(vec![n.clone()]),
        Expr::Select(b, f) => {
            let mut v = name_chain(b)?;
            v.push(f.clone());
            Some(v)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------- evaluation

/// Where a frame variable's bytes are.
#[derive(Debug, Clone, PartialEq)]
pub enum VarSource {
    /// In memory at this runtime address.
    Memory(u64),
    /// Assembled from registers (and memory pieces).
    Bytes(Vec<u8>),
    /// Not available at this PC; the reason.
    Unavailable(String),
}

/// A local or argument visible in the selected frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeVar {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: TypeId,
    /// Location.
    pub src: VarSource,
    /// Whether it is an argument.
    pub is_arg: bool,
    /// Declaration line (Delve lists variables in this order).
    pub decl_line: u64,
    /// Lexical block depth (0 = the function's outermost scope).
    pub scope_depth: u32,
    /// Whether it is a closure's captured variable (in scope from its
    /// declaration line on, where others start on the next line).
    pub captured: bool,
    /// Whether a variable listed after it has the same name (a deeper
    /// block's, or a duplicate in the same block): Delve lists it as
    /// `(name)` and expressions see the later one.
    pub shadowed: bool,
}

impl ScopeVar {
    /// The name as `locals` lists it: `(x)` for a shadowed `x`.
    pub fn display_name(&self) -> String {
        if self.shadowed {
            format!("({})", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// An intermediate result: a typed location, or a computed value.
#[derive(Debug, Clone)]
enum Operand {
    /// A typed value in memory.
    Place(TypeId, u64),
    /// A typed value whose bytes are known (registers, synthetic headers).
    Bytes(TypeId, Vec<u8>),
    /// A scalar computed from typed operands (`i2 + i3`, `uint8(i4)`).
    Typed(TypeId, Const),
    /// An untyped constant (literals and what they compute).
    Const(Const),
    /// A value without a DWARF type of its own (`&x`, composite literals,
    /// `[]byte(s)`, function values).
    Computed(Value),
}

/// Evaluates expressions against a program and an optional frame scope.
pub struct Evaluator<'p, 'a> {
    prog: &'p Program<'a>,
    scope: Vec<ScopeVar>,
    package: String,
}

/// Entries scanned when indexing a map by key.
const MAP_LOOKUP_LIMIT: u64 = 10_000_000;
/// Bytes of a string loaded to compare or concatenate it (Delve's
/// "longer strings" limit); longer strings are refused, not cut.
const MAX_OPERAND_STRING: u64 = 1 << 20;
/// Elements loaded for `string(bytes)`, `[]byte(s)` and `==` on aggregates.
const MAX_OPERAND_ELEMS: u64 = 1 << 16;

/// The refusal of anything that would run code in the target.
fn needs_live_process(what: &str) -> EvalError {
    EvalError::Unsupported(format!(
        "cannot call {what}: a function call needs a live process (rdlv reads a snapshot)"
    ))
}

impl<'p, 'a> Evaluator<'p, 'a> {
    /// An evaluator over package variables and the given frame variables.
    /// Unqualified package variables are looked up in package `main`.
    pub fn new(prog: &'p Program<'a>, scope: Vec<ScopeVar>) -> Self {
        Evaluator {
            prog,
            scope,
            package: "main".into(),
        }
    }

    /// Unqualified names that are not locals resolve in the package of
    /// `function` (the frame's function, `main.zoo` → `main`), as Delve does.
    pub fn in_function(mut self, function: &str) -> Self {
        self.package = package_of(function).to_string();
        self
    }

    /// Parses and evaluates `src`, loading the result under `cfg`.
    pub fn eval_str(&self, src: &str, cfg: LoadConfig) -> Result<Value, EvalError> {
        let e = parse(src)?;
        self.eval(&e, cfg)
    }

    /// Evaluates a parsed expression, loading the result under `cfg`.
    pub fn eval(&self, e: &Expr, cfg: LoadConfig) -> Result<Value, EvalError> {
        let op = self.operand(e)?;
        let named_const = matches!(op, Operand::Typed(..)) && name_chain(e).is_some();
        let mut v = self.materialize(op, cfg);
        if named_const {
            // A constant by its own name prints as its value (`255`), as in Delve.
            v.display = None;
        }
        Ok(v)
    }

    /// The typed memory location `e` designates (`main.cfg.Name`,
    /// `main.cache["k"]`, `*main.p`), or `None` when its value lives nowhere
    /// in target memory (a constant, a computed value, a register). Reads
    /// only what finding the location needs.
    pub fn place(&self, e: &Expr) -> Result<Option<(TypeId, u64)>, EvalError> {
        Ok(match self.operand(e)? {
            Operand::Place(ty, addr) => Some((ty, addr)),
            _ => None,
        })
    }

    /// Delve's `whatis EXPR`: the type, `Real type:` when a named type has a
    /// different underlying type, `Concrete type:` of a non-nil interface.
    /// Untyped constants have no type and print nothing.
    pub fn whatis(&self, src: &str) -> Result<String, EvalError> {
        let op = self.operand(&parse(src)?)?;
        let ty = match &op {
            Operand::Place(t, _) | Operand::Bytes(t, _) | Operand::Typed(t, _) => *t,
            Operand::Const(_) => return Ok(String::new()),
            Operand::Computed(v) => return Ok(format!("{}\n", v.type_name)),
        };
        let name = &self.prog.ty(ty).name;
        let mut out = format!("{name}\n");
        let (_, under) = self.prog.underlying(ty);
        if &under.name != name && !under.name.is_empty() {
            out.push_str(&format!("Real type: {}\n", under.name));
        }
        if matches!(under.kind, TypeKind::Interface { .. }) {
            match self.iface_dynamic(&op) {
                Ok(Some((dty, _))) => {
                    out.push_str(&format!("Concrete type: {}\n", self.prog.ty(dty).name))
                }
                // Delve's word for the dynamic type of a nil interface.
                Ok(None) => out.push_str("Concrete type: void\n"),
                Err(_) => {}
            }
        }
        Ok(out)
    }

    fn materialize(&self, op: Operand, cfg: LoadConfig) -> Value {
        let mut loader = Loader::new(self.prog, cfg);
        match op {
            Operand::Place(ty, addr) => loader.load(ty, addr),
            Operand::Bytes(ty, bytes) => loader.load_bytes(ty, bytes),
            Operand::Typed(ty, c) => typed_value(self.prog, ty, &c),
            Operand::Const(c) => const_value(&c),
            Operand::Computed(v) => v,
        }
    }

    fn scalar(&self, op: &Operand) -> Result<Value, EvalError> {
        let v = self.materialize(op.clone(), LoadConfig::canonical_shallow());
        if let ValueKind::Unreadable(why) = &v.kind {
            return Err(EvalError::Unreadable(why.clone()));
        }
        Ok(v)
    }

    fn int_of(&self, op: &Operand) -> Result<i128, EvalError> {
        match op {
            Operand::Const(Const::Int(i)) | Operand::Typed(_, Const::Int(i)) => return Ok(*i),
            Operand::Const(Const::Float(f)) if f.fract() == 0.0 && f.abs() < 1e18 => {
                return Ok(*f as i128)
            }
            Operand::Const(_) | Operand::Typed(..) => {
                return Err(EvalError::Type("index must be an integer".into()))
            }
            _ => {}
        }
        match self.scalar(op)?.kind {
            ValueKind::Int(i) => Ok(i128::from(i)),
            ValueKind::Uint(u) => Ok(i128::from(u)),
            ValueKind::UnsafePointer(u) => Ok(i128::from(u)),
            ValueKind::Pointer { addr, .. } => Ok(i128::from(addr)),
            _ => Err(EvalError::Type("index must be an integer".into())),
        }
    }

    fn type_of(&self, op: &Operand) -> Option<TypeId> {
        match op {
            Operand::Place(t, _) | Operand::Bytes(t, _) | Operand::Typed(t, _) => Some(*t),
            Operand::Const(_) | Operand::Computed(_) => None,
        }
    }

    fn lookup_type(&self, t: &TypeExpr) -> Option<TypeId> {
        let name = canonical_type_name(&t.to_string());
        self.prog.dwarf.type_by_name(&name).or_else(|| {
            // `main.T` may be spelled `T` in package main, and Delve's
            // quoted paths arrive unquoted.
            let q = format!("{}.{name}", self.package);
            self.prog.dwarf.type_by_name(&q)
        })
    }

    /// The arithmetic class of a type, `None` for non-scalars.
    fn num_class(&self, ty: TypeId) -> Option<Num> {
        let (_, t) = self.prog.underlying(ty);
        let bits = (t.size * 8) as u32;
        Some(match t.kind {
            TypeKind::Int => Num::Int { signed: true, bits },
            TypeKind::Uint | TypeKind::Uintptr => Num::Int {
                signed: false,
                bits,
            },
            TypeKind::Float => Num::Float(bits),
            TypeKind::Complex => Num::Complex(bits / 2),
            TypeKind::Bool => Num::Bool,
            TypeKind::String => Num::Str,
            _ => return None,
        })
    }

    /// The scalar an operand holds, with its type (`None`: untyped); strings
    /// are loaded whole (up to [`MAX_OPERAND_STRING`]). `Ok(None)` for a
    /// non-scalar.
    fn scalar_const(&self, op: &Operand) -> Result<Option<(Option<TypeId>, Const)>, EvalError> {
        match op {
            Operand::Const(c) => Ok(Some((None, c.clone()))),
            Operand::Typed(t, c) => Ok(Some((Some(*t), c.clone()))),
            Operand::Computed(_) => Ok(None),
            Operand::Place(t, _) | Operand::Bytes(t, _) => {
                if self.num_class(*t).is_none() {
                    return Ok(None);
                }
                let mut cfg = LoadConfig::canonical_shallow();
                cfg.max_string_len = MAX_OPERAND_STRING;
                let v = self.materialize(op.clone(), cfg);
                let c = match v.kind {
                    ValueKind::Unreadable(why) => return Err(EvalError::Unreadable(why)),
                    ValueKind::Bool(b) => Const::Bool(b),
                    ValueKind::Int(i) => Const::Int(i128::from(i)),
                    ValueKind::Uint(u) => Const::Int(i128::from(u)),
                    ValueKind::Float { value, .. } => Const::Float(value),
                    ValueKind::Complex { re, im, .. } => Const::Complex(re, im),
                    ValueKind::String { bytes, len } => {
                        if (bytes.len() as u64) < len {
                            return Err(EvalError::Unsupported(format!(
                                "string of {len} bytes too long for this operation"
                            )));
                        }
                        Const::Str(bytes)
                    }
                    _ => return Ok(None),
                };
                Ok(Some((Some(*t), c)))
            }
        }
    }

    fn type_name_of(&self, op: &Operand) -> String {
        match op {
            Operand::Place(t, _) | Operand::Bytes(t, _) | Operand::Typed(t, _) => {
                self.prog.ty(*t).name.clone()
            }
            Operand::Const(c) => format!("untyped {}", const_kind(c)),
            Operand::Computed(v) => v.type_name.clone(),
        }
    }

    fn operand(&self, e: &Expr) -> Result<Operand, EvalError> {
        match e {
            Expr::Int(i) => Ok(Operand::Const(Const::Int(*i))),
            Expr::Float(f) => Ok(Operand::Const(Const::Float(*f))),
            Expr::Imag(f) => Ok(Operand::Const(Const::Complex(0.0, *f))),
            Expr::Str(s) => Ok(Operand::Const(Const::Str(s.clone()))),
            Expr::Bool(b) => Ok(Operand::Const(Const::Bool(*b))),
            Expr::Nil => Ok(Operand::Const(Const::Nil)),
            Expr::PkgPath(p) => Err(EvalError::Syntax(format!(
                "\"{p}\" is a package path: select a variable of it (\"{p}\".Name)"
            ))),
            Expr::Neg(inner) => {
                let v = self.operand(inner)?;
                self.unary("-", v)
            }
            Expr::Unary(op, inner) => {
                let v = self.operand(inner)?;
                self.unary(op, v)
            }
            Expr::Binary(op, l, r) => self.binary(op, l, r),
            Expr::Ident(_) | Expr::Select(..) => {
                if let Some(chain) = name_chain(e) {
                    let from_path = matches!(leftmost(e), Expr::PkgPath(_));
                    return self.resolve_chain(&chain, from_path);
                }
                let Expr::Select(base, field) = e else {
                    return Err(EvalError::Syntax("bad selector".into()));
                };
                let b = self.operand(base)?;
                self.select(b, field)
            }
            Expr::Index(base, idx) => {
                if let Expr::Select(ch, f) = &**base {
                    if f == "buf" {
                        let c = self.operand(ch)?;
                        if let Some(r) = self.chan_buf_index(&c, idx)? {
                            return Ok(r);
                        }
                    }
                }
                let b = self.operand(base)?;
                self.index(b, idx)
            }
            Expr::Slice(base, lo, hi) => {
                let b = self.operand(base)?;
                let lo = lo
                    .as_ref()
                    .map(|e| self.operand(e).and_then(|o| self.int_of(&o)))
                    .transpose()?;
                let hi = hi
                    .as_ref()
                    .map(|e| self.operand(e).and_then(|o| self.int_of(&o)))
                    .transpose()?;
                self.reslice(b, lo, hi)
            }
            Expr::TypeAssert(x, t) => {
                let op = self.operand(x)?;
                self.type_assert(op, t)
            }
            Expr::Deref(inner) => {
                let op = self.operand(inner)?;
                self.deref(op)
            }
            Expr::AddrOf(inner) => {
                let op = self.operand(inner)?;
                match op {
                    // Delve's text shows `&x` as its address only (the
                    // `&` display); JSON shows the pointee.
                    Operand::Place(ty, addr) => {
                        let pointee =
                            self.materialize(Operand::Place(ty, addr), LoadConfig::delve_print());
                        Ok(Operand::Computed(Value {
                            display: Some("&".into()),
                            composite_target: false,
                            type_name: format!("*{}", self.prog.ty(ty).name),
                            addr: None,
                            kind: ValueKind::Pointer {
                                addr,
                                pointee: Pointee::Loaded(Box::new(pointee)),
                            },
                        }))
                    }
                    _ => Err(EvalError::Type(
                        "cannot take the address of a value that is not in memory".into(),
                    )),
                }
            }
            Expr::Call(callee, args) => self.call(callee, args),
            Expr::Convert(t, arg) => self.convert(t, arg),
            Expr::Composite(t, fields) => self.composite(t, fields),
        }
    }

    fn unary(&self, op: &str, v: Operand) -> Result<Operand, EvalError> {
        let Some((ty, c)) = self.scalar_const(&v)? else {
            return Err(EvalError::Type(format!(
                "operator {op} can not be applied to a value of type {}",
                self.type_name_of(&v)
            )));
        };
        let class = ty.and_then(|t| self.num_class(t));
        let r = gonum::unary(op, &c, class).map_err(|e| EvalError::Type(e.0))?;
        Ok(match ty {
            Some(t) => Operand::Typed(t, r),
            None => Operand::Const(r),
        })
    }

    fn bool_of(&self, e: &Expr) -> Result<(Option<TypeId>, bool), EvalError> {
        let op = self.operand(e)?;
        match self.scalar_const(&op)? {
            Some((t, Const::Bool(b))) => Ok((t, b)),
            _ => Err(EvalError::Type(format!(
                "operator && and || need booleans, not {}",
                self.type_name_of(&op)
            ))),
        }
    }

    fn binary(&self, op: &'static str, l: &Expr, r: &Expr) -> Result<Operand, EvalError> {
        if op == "&&" || op == "||" {
            // Short-circuit, as Go (and Delve) evaluate.
            let (lt, lv) = self.bool_of(l)?;
            if (op == "&&" && !lv) || (op == "||" && lv) {
                return Ok(Operand::Const(Const::Bool(lv)));
            }
            let (rt, rv) = self.bool_of(r)?;
            if let (Some(a), Some(b)) = (lt, rt) {
                if self.prog.ty(a).name != self.prog.ty(b).name {
                    return Err(mismatched(&self.prog.ty(a).name, &self.prog.ty(b).name));
                }
            }
            return Ok(Operand::Const(Const::Bool(rv)));
        }
        let x = self.operand(l)?;
        let y = self.operand(r)?;
        self.binary_values(op, x, y)
    }

    /// `x op y` for evaluated operands (not `&&`/`||`).
    fn binary_values(
        &self,
        op: &'static str,
        x: Operand,
        y: Operand,
    ) -> Result<Operand, EvalError> {
        let type_err = |e: gonum::NumError| EvalError::Type(e.0);
        // Comparisons with nil.
        let xnil = matches!(x, Operand::Const(Const::Nil));
        let ynil = matches!(y, Operand::Const(Const::Nil));
        if xnil || ynil {
            if op != "==" && op != "!=" {
                return Err(EvalError::Type(format!(
                    "operator {op} can not be applied to \"nil\""
                )));
            }
            let is_nil = if xnil && ynil {
                true
            } else {
                self.is_nil(if xnil { &y } else { &x })?
            };
            return Ok(Operand::Const(Const::Bool(is_nil == (op == "=="))));
        }
        if op == "<<" || op == ">>" {
            let Some((xt, Const::Int(xv))) = self.scalar_const(&x)? else {
                return Err(EvalError::Type(format!(
                    "shift of type {}",
                    self.type_name_of(&x)
                )));
            };
            let n = match self.scalar_const(&y)? {
                Some((_, Const::Int(n))) => n,
                Some((None, Const::Float(f))) if f.fract() == 0.0 && f >= 0.0 => f as i128,
                _ => {
                    return Err(EvalError::Type(format!(
                        "shift count type {}, must be integer",
                        self.type_name_of(&y)
                    )))
                }
            };
            let class = xt.and_then(|t| self.num_class(t));
            let r = gonum::shift(op, xv, n, class).map_err(type_err)?;
            return Ok(match xt {
                Some(t) => Operand::Typed(t, r),
                None => Operand::Const(r),
            });
        }
        match (self.scalar_const(&x)?, self.scalar_const(&y)?) {
            (Some((xt, xv)), Some((yt, yv))) => {
                let (ty, a, b) = match (xt, yt) {
                    (None, None) => (None, xv, yv),
                    (Some(t), None) => {
                        let class = self.num_class(t).ok_or_else(|| mismatched_kind(op))?;
                        let b = gonum::represent(&yv, class, &self.prog.ty(t).name)
                            .map_err(type_err)?;
                        (Some(t), xv, b)
                    }
                    (None, Some(t)) => {
                        let class = self.num_class(t).ok_or_else(|| mismatched_kind(op))?;
                        let a = gonum::represent(&xv, class, &self.prog.ty(t).name)
                            .map_err(type_err)?;
                        (Some(t), a, yv)
                    }
                    (Some(t1), Some(t2)) => {
                        let (n1, n2) = (&self.prog.ty(t1).name, &self.prog.ty(t2).name);
                        if n1 != n2 {
                            return Err(mismatched(n1, n2));
                        }
                        (Some(t1), xv, yv)
                    }
                };
                let class = ty.and_then(|t| self.num_class(t));
                let r = gonum::binary(op, &a, &b, class).map_err(type_err)?;
                Ok(match (ty, gonum::is_comparison(op)) {
                    (Some(t), false) => Operand::Typed(t, r),
                    _ => Operand::Const(r),
                })
            }
            (None, None) => {
                if op != "==" && op != "!=" {
                    return Err(EvalError::Type(format!(
                        "operator {op} not defined on {}",
                        self.type_name_of(&x)
                    )));
                }
                let (n1, n2) = (self.type_name_of(&x), self.type_name_of(&y));
                if n1 != n2 {
                    return Err(mismatched(&n1, &n2));
                }
                let eq = self.equal_aggregates(x, y)?;
                Ok(Operand::Const(Const::Bool(eq == (op == "=="))))
            }
            _ => Err(mismatched(&self.type_name_of(&x), &self.type_name_of(&y))),
        }
    }

    /// `x == nil` for a pointer, slice, map, channel, func or interface.
    fn is_nil(&self, op: &Operand) -> Result<bool, EvalError> {
        let v = self.materialize(op.clone(), LoadConfig::canonical_shallow());
        Ok(match &v.kind {
            ValueKind::Pointer { addr, .. } => *addr == 0,
            ValueKind::UnsafePointer(a) => *a == 0,
            ValueKind::Slice { base, .. } => *base == 0,
            ValueKind::Map { addr, .. } | ValueKind::Chan { addr, .. } => *addr == 0,
            ValueKind::Func { pc, .. } => *pc == 0,
            ValueKind::Interface { dyn_type, .. } => dyn_type.is_none(),
            ValueKind::Unreadable(why) => return Err(EvalError::Unreadable(why.clone())),
            _ => {
                return Err(EvalError::Type(format!(
                    "can not compare {} to nil",
                    v.type_name
                )))
            }
        })
    }

    /// `==` on two non-scalar values of the same type: pointers and channels
    /// by address, interfaces by dynamic type and value, structs and arrays
    /// field by field; slices, maps and funcs are not comparable.
    fn equal_aggregates(&self, x: Operand, y: Operand) -> Result<bool, EvalError> {
        let mut cfg = LoadConfig::canonical();
        cfg.max_array_values = MAX_OPERAND_ELEMS;
        cfg.max_string_len = MAX_OPERAND_STRING;
        cfg.max_values = 100_000;
        let (a, b) = (self.materialize(x, cfg.clone()), self.materialize(y, cfg));
        for v in [&a, &b] {
            if let ValueKind::Unreadable(why) = &v.kind {
                return Err(EvalError::Unreadable(why.clone()));
            }
        }
        match (&a.kind, &b.kind) {
            (ValueKind::Pointer { addr: p, .. }, ValueKind::Pointer { addr: q, .. })
            | (ValueKind::Chan { addr: p, .. }, ValueKind::Chan { addr: q, .. })
            | (ValueKind::UnsafePointer(p), ValueKind::UnsafePointer(q)) => Ok(p == q),
            (ValueKind::Slice { .. }, _)
            | (ValueKind::Map { .. }, _)
            | (ValueKind::Func { .. }, _) => Err(EvalError::Type(format!(
                "can not compare {} variables (only with nil)",
                a.type_name
            ))),
            _ => {
                let (ja, jb) = (json::to_json(&a), json::to_json(&b));
                if ja.contains("\"$truncated\"") || jb.contains("\"$truncated\"") {
                    return Err(EvalError::Unsupported("values too large to compare".into()));
                }
                Ok(ja == jb)
            }
        }
    }

    fn resolve_chain(&self, chain: &[String], from_path: bool) -> Result<Operand, EvalError> {
        let first = chain
            .first()
            .ok_or_else(|| EvalError::Syntax("empty name".into()))?;
        // Innermost scope wins: later entries shadow earlier ones.
        if let Some(v) = self
            .scope
            .iter()
            .rev()
            .find(|v| &v.name == first && !v.shadowed)
            .filter(|_| !from_path)
        {
            let mut op = match &v.src {
                VarSource::Memory(a) => Operand::Place(v.ty, *a),
                VarSource::Bytes(b) => Operand::Bytes(v.ty, b.clone()),
                VarSource::Unavailable(why) => {
                    return Err(EvalError::Unreadable(format!(
                        "{first} is unavailable here: {why}"
                    )))
                }
            };
            for f in chain.iter().skip(1) {
                op = self.select(op, f)?;
            }
            return Ok(op);
        }
        for split in (1..=chain.len()).rev() {
            let name = chain[..split].join(".");
            let found = self.find_global(&name).or_else(|| {
                // An unqualified name is a variable of the frame's package.
                (split == 1 && !from_path)
                    .then(|| self.find_global(&format!("{}.{name}", self.package)))
                    .flatten()
            });
            // A function never has fields: `main.cfgg` is not `main.main`.
            let found = found.filter(|r| {
                split == chain.len()
                    || !matches!(
                        r,
                        Ok(Operand::Computed(Value {
                            kind: ValueKind::Func { .. },
                            ..
                        }))
                    )
            });
            if let Some(op) = found {
                let mut op = op?;
                for f in &chain[split..] {
                    op = self.select(op, f)?;
                }
                return Ok(op);
            }
        }
        let full = chain.join(".");
        Err(EvalError::NotFound {
            suggestions: self.near_names(&full),
            name: full,
        })
    }

    /// Up to three existing names close to `name`.
    fn near_names(&self, name: &str) -> Vec<String> {
        let mut cands: Vec<(usize, String)> = Vec::new();
        let limit = (name.len() / 3).max(2);
        let consider = |cands: &mut Vec<(usize, String)>, cand: &str| {
            let d = levenshtein(name, cand);
            if d <= limit {
                cands.push((d, cand.to_string()));
            }
        };
        for v in &self.scope {
            consider(&mut cands, &v.name);
        }
        for g in self.prog.dwarf.globals() {
            consider(&mut cands, &g.name);
            // `cfg` for `main.cfg`: match the short name too.
            if !name.contains('.') {
                if let Some(short) = g.name.rsplit('.').next() {
                    if levenshtein(name, short) <= limit.min(short.len() / 2 + 1) {
                        cands.push((levenshtein(name, short), g.name.clone()));
                    }
                }
            }
        }
        cands.sort();
        cands.dedup_by(|a, b| a.1 == b.1);
        cands.into_iter().take(3).map(|c| c.1).collect()
    }

    /// A package variable or function by its full name, or by a name
    /// ending in `/name` (Delve lets `server.X` stand for
    /// `github.com/nats-io/nats-server/v2/server.X`).
    fn find_global(&self, name: &str) -> Option<Result<Operand, EvalError>> {
        let d = self.prog.dwarf;
        let g = d.global_anywhere(name).or_else(|| {
            name.contains('.')
                .then(|| {
                    let suffix = format!("/{name}");
                    d.globals().find(|g| g.name.ends_with(&suffix))
                })
                .flatten()
        });
        if let Some(g) = g {
            return Some(Ok(Operand::Place(
                g.ty,
                g.addr.wrapping_add(self.prog.bias),
            )));
        }
        if let Some((t, v)) = self.prog.constant(name) {
            return Some(Ok(Operand::Typed(t, Const::Int(i128::from(v)))));
        }
        let f = d.function_by_name(name)?;
        Some(Ok(Operand::Computed(Value {
            display: None,
            composite_target: false,
            type_name: String::new(),
            addr: None,
            kind: ValueKind::Func {
                pc: f.low_pc.wrapping_add(self.prog.bias),
                name: Some(f.name.clone()),
                captured: Vec::new(),
            },
        })))
    }

    /// The dynamic type and value of an interface operand, `None` when nil.
    fn iface_dynamic(&self, op: &Operand) -> Result<Option<(TypeId, Operand)>, EvalError> {
        let ty = self
            .type_of(op)
            .ok_or_else(|| EvalError::Type("not an interface".into()))?;
        let TypeKind::Interface { empty } = self.prog.underlying(ty).1.kind else {
            return Err(EvalError::Type(format!(
                "expression of type {} is not an interface",
                self.prog.ty(ty).name
            )));
        };
        let w = self.header_words(op, 2)?;
        let rtype = if empty || w[0] == 0 {
            w[0]
        } else {
            self.prog
                .mem
                .read_u64(w[0].wrapping_add(8))
                .map_err(|e| EvalError::Unreadable(e.to_string()))?
        };
        if rtype == 0 {
            return Ok(None);
        }
        let dty = self.prog.rtype_dwarf(rtype).ok_or_else(|| {
            EvalError::Unsupported(format!(
                "could not resolve interface type {}",
                self.prog.rtype_name(rtype).unwrap_or_default()
            ))
        })?;
        let direct = Loader::new(self.prog, LoadConfig::canonical_shallow()).direct_iface(rtype);
        Ok(Some((
            dty,
            if direct {
                Operand::Bytes(dty, w[1].to_le_bytes().to_vec())
            } else {
                Operand::Place(dty, w[1])
            },
        )))
    }

    fn type_assert(&self, op: Operand, t: &TypeExpr) -> Result<Operand, EvalError> {
        let iname = self.type_name_of(&op);
        let dynamic = self.iface_dynamic(&op)?;
        if *t == TypeExpr::Named("data".into()) {
            return dynamic
                .map(|(_, v)| v)
                .ok_or_else(|| EvalError::Type(format!("interface conversion: {iname} is nil")));
        }
        let want = self.lookup_type(t).ok_or_else(|| EvalError::NotFound {
            name: t.to_string(),
            suggestions: Vec::new(),
        })?;
        let wname = &self.prog.ty(want).name;
        let Some((dty, v)) = dynamic else {
            return Err(EvalError::Type(format!(
                "interface conversion: {iname} is nil, not {wname}"
            )));
        };
        let dname = &self.prog.ty(dty).name;
        if dname != wname {
            return Err(EvalError::Type(format!(
                "interface conversion: {iname} is {dname}, not {wname}"
            )));
        }
        Ok(v)
    }

    /// The element type of a pointer type.
    fn pointee_of(&self, ptr: TypeId) -> Option<TypeId> {
        match self.prog.underlying(ptr).1.kind {
            TypeKind::Pointer { elem } => elem,
            _ => None,
        }
    }

    /// `ch.buf[i]`: Delve shows a channel's ring buffer as `*[dataqsiz]T`.
    fn chan_buf_index(&self, ch: &Operand, idx: &Expr) -> Result<Option<Operand>, EvalError> {
        let Some(ty) = self.type_of(ch) else {
            return Ok(None);
        };
        let TypeKind::Chan { elem, header } = self.prog.underlying(ty).1.kind else {
            return Ok(None);
        };
        let Some(header) = header.and_then(|h| self.pointee_of(h)) else {
            return Ok(None);
        };
        let p = self.header_words(ch, 1)?[0];
        if p == 0 {
            return Err(EvalError::Unreadable("nil pointer dereference".into()));
        }
        let word = |name: &str| -> Result<u64, EvalError> {
            let (_, off) = self
                .find_field(header, name, 0)
                .ok_or_else(|| EvalError::Type(format!("hchan has no field {name}")))?;
            self.prog
                .mem
                .read_u64(p.wrapping_add(off))
                .map_err(|e| EvalError::Unreadable(e.to_string()))
        };
        let (n, buf) = (word("dataqsiz")?, word("buf")?);
        let i = self.int_of(&self.operand(idx)?)?;
        if i < 0 || i >= i128::from(n) {
            return Err(EvalError::Type(format!("index {i} out of bounds [0, {n})")));
        }
        let esize = self.prog.underlying(elem).1.size;
        Ok(Some(Operand::Place(
            elem,
            buf.wrapping_add((i as u64).wrapping_mul(esize)),
        )))
    }

    /// `x[lo:hi]` of a string, slice, array or pointer to array.
    fn reslice(
        &self,
        op: Operand,
        lo: Option<i128>,
        hi: Option<i128>,
    ) -> Result<Operand, EvalError> {
        let check = |lo: i128, hi: i128, max: u64| -> Result<(u64, u64), EvalError> {
            if lo < 0 || hi < lo || hi > i128::from(max) {
                Err(EvalError::Type(format!(
                    "index out of bounds: [{lo}:{hi}] with capacity {max}"
                )))
            } else {
                Ok((lo as u64, hi as u64))
            }
        };
        if let Operand::Const(Const::Str(s)) | Operand::Typed(_, Const::Str(s)) = &op {
            let (l, h) = check(
                lo.unwrap_or(0),
                hi.unwrap_or(s.len() as i128),
                s.len() as u64,
            )?;
            let sub = s.get(l as usize..h as usize).unwrap_or_default().to_vec();
            return Ok(match op {
                Operand::Typed(t, _) => Operand::Typed(t, Const::Str(sub)),
                _ => Operand::Const(Const::Str(sub)),
            });
        }
        let ty = self
            .type_of(&op)
            .ok_or_else(|| EvalError::Type("can not slice this value".into()))?;
        let (_, under) = self.prog.underlying(ty);
        match under.kind.clone() {
            TypeKind::String => {
                let w = self.header_words(&op, 2)?;
                let (l, h) = check(lo.unwrap_or(0), hi.unwrap_or(i128::from(w[1])), w[1])?;
                if w[0] == 0 && h > 0 {
                    return Err(EvalError::Type("can not slice a nil string".into()));
                }
                let mut b = w[0].wrapping_add(l).to_le_bytes().to_vec();
                b.extend_from_slice(&(h - l).to_le_bytes());
                Ok(Operand::Bytes(ty, b))
            }
            TypeKind::Slice { elem } => {
                let w = self.header_words(&op, 3)?;
                if w[0] == 0 {
                    return Err(EvalError::Type("can not slice a nil slice".into()));
                }
                let (l, h) = check(lo.unwrap_or(0), hi.unwrap_or(i128::from(w[1])), w[2])?;
                let esize = self.prog.underlying(elem).1.size;
                let mut b = w[0]
                    .wrapping_add(l.wrapping_mul(esize))
                    .to_le_bytes()
                    .to_vec();
                b.extend_from_slice(&(h - l).to_le_bytes());
                b.extend_from_slice(&(w[2] - l).to_le_bytes());
                Ok(Operand::Bytes(ty, b))
            }
            TypeKind::Array { elem, len } => {
                let Operand::Place(_, addr) = op else {
                    return Err(EvalError::Type(
                        "can not slice an array that is not in memory".into(),
                    ));
                };
                let sname = format!("[]{}", self.prog.ty(elem).name);
                let sty = self.prog.dwarf.type_by_name(&sname).ok_or_else(|| {
                    EvalError::Unsupported(format!(
                        "can not slice {}: the binary has no type {sname}",
                        self.prog.ty(ty).name
                    ))
                })?;
                let (l, h) = check(lo.unwrap_or(0), hi.unwrap_or(i128::from(len)), len)?;
                let esize = self.prog.underlying(elem).1.size;
                let mut b = addr
                    .wrapping_add(l.wrapping_mul(esize))
                    .to_le_bytes()
                    .to_vec();
                b.extend_from_slice(&(h - l).to_le_bytes());
                b.extend_from_slice(&(len - l).to_le_bytes());
                Ok(Operand::Bytes(sty, b))
            }
            TypeKind::Pointer { elem: Some(elem) }
                if matches!(self.prog.underlying(elem).1.kind, TypeKind::Array { .. }) =>
            {
                let d = self.deref(op)?;
                self.reslice(d, lo, hi)
            }
            _ => Err(EvalError::Type(format!(
                "can not slice a value of type {}",
                self.prog.ty(ty).name
            ))),
        }
    }

    fn select(&self, op: Operand, field: &str) -> Result<Operand, EvalError> {
        let ty = self
            .type_of(&op)
            .ok_or_else(|| EvalError::Type(format!("cannot select .{field} of a constant")))?;
        let (_, under) = self.prog.underlying(ty);
        match &under.kind {
            TypeKind::Struct { .. } => {
                let Some((fty, off)) = self.find_field(ty, field, 0) else {
                    if let Some(m) = self.method_value(ty, &op, field)? {
                        return Ok(m);
                    }
                    let near: Vec<String> = match &under.kind {
                        TypeKind::Struct { fields } => fields
                            .iter()
                            .filter(|f| {
                                levenshtein(&f.name.to_lowercase(), &field.to_lowercase()) <= 2
                            })
                            .map(|f| f.name.clone())
                            .collect(),
                        _ => Vec::new(),
                    };
                    return Err(EvalError::Type(format!(
                        "{} has no field or method {field}{}",
                        self.prog.ty(ty).name,
                        suggest(&near)
                    )));
                };
                Ok(match op {
                    Operand::Place(_, a) => Operand::Place(fty, a.wrapping_add(off)),
                    Operand::Bytes(_, b) => {
                        let size = self.prog.underlying(fty).1.size as usize;
                        let start = off as usize;
                        let slice = b.get(start..start.saturating_add(size)).ok_or_else(|| {
                            EvalError::Unreadable("field outside the variable".into())
                        })?;
                        Operand::Bytes(fty, slice.to_vec())
                    }
                    _ => unreachable_computed()?,
                })
            }
            TypeKind::Pointer { elem } => {
                let elem = *elem;
                if let Some(e) = elem.filter(|e| self.find_field(*e, field, 0).is_none()) {
                    if let Some(m) = self.method_value(e, &op, field)? {
                        return Ok(m);
                    }
                }
                let d = self.deref(op)?;
                self.select(d, field)
            }
            // Through an interface: the field of the value it holds.
            TypeKind::Interface { .. } => match self.iface_dynamic(&op)? {
                Some((_, v)) => self.select(v, field),
                None => Err(EvalError::Unreadable(format!(
                    "nil interface: {} has no field {field}",
                    self.prog.ty(ty).name
                ))),
            },
            // A channel is a pointer to its runtime hchan.
            TypeKind::Chan {
                header: Some(h), ..
            } => {
                let p = self.header_words(&op, 1)?[0];
                if p == 0 {
                    return Err(EvalError::Unreadable("nil pointer dereference".into()));
                }
                let st = self
                    .pointee_of(*h)
                    .ok_or_else(|| EvalError::Type("channel without a DWARF hchan type".into()))?;
                self.select(Operand::Place(st, p), field)
            }
            _ => {
                if let Some(m) = self.method_value(ty, &op, field)? {
                    return Ok(m);
                }
                Err(EvalError::Type(format!(
                    "{} has no field or method {field}",
                    self.prog.ty(ty).name
                )))
            }
        }
    }

    /// `x.Method` as a method value: Delve names the function
    /// (`main.astruct.Get`); rdlv shows the same name (binding the receiver
    /// needs a closure the snapshot does not have).
    fn method_value(
        &self,
        recv: TypeId,
        _op: &Operand,
        name: &str,
    ) -> Result<Option<Operand>, EvalError> {
        let tname = self.prog.ty(recv).name.clone();
        let base = tname.trim_start_matches('*');
        let (pkg, ty) = match base.rfind('.') {
            Some(dot) => (&base[..dot], &base[dot + 1..]),
            None => return Ok(None),
        };
        for cand in [
            format!("{pkg}.{ty}.{name}"),
            format!("{pkg}.(*{ty}).{name}"),
        ] {
            if let Some(f) = self.prog.dwarf.function_by_name(&cand) {
                return Ok(Some(Operand::Computed(Value {
                    display: None,
                    composite_target: false,
                    type_name: String::new(),
                    addr: None,
                    kind: ValueKind::Func {
                        pc: f.low_pc.wrapping_add(self.prog.bias),
                        name: Some(f.name.clone()),
                        captured: Vec::new(),
                    },
                })));
            }
        }
        Ok(None)
    }

    /// A field by name, also through embedded structs (promotion).
    fn find_field(&self, ty: TypeId, name: &str, depth: u32) -> Option<(TypeId, u64)> {
        if depth > 8 {
            return None;
        }
        let TypeKind::Struct { fields } = &self.prog.underlying(ty).1.kind else {
            return None;
        };
        if let Some(f) = fields.iter().find(|f| f.name == name) {
            return Some((f.ty, f.offset));
        }
        fields.iter().filter(|f| f.embedded).find_map(|f| {
            self.find_field(f.ty, name, depth + 1)
                .map(|(t, o)| (t, o + f.offset))
        })
    }

    fn deref(&self, op: Operand) -> Result<Operand, EvalError> {
        if let Operand::Computed(v) = &op {
            // `*(*T)(0xADDR)` and `*&x`.
            if let (ValueKind::Pointer { addr, .. }, Some(elem)) =
                (&v.kind, v.type_name.strip_prefix('*'))
            {
                let t = self
                    .prog
                    .dwarf
                    .type_by_name(elem)
                    .ok_or_else(|| EvalError::Type(format!("unknown type {elem}")))?;
                if *addr == 0 {
                    return Err(EvalError::Unreadable("nil pointer dereference".into()));
                }
                return Ok(Operand::Place(t, *addr));
            }
        }
        let ty = self
            .type_of(&op)
            .ok_or_else(|| EvalError::Type("cannot dereference a constant".into()))?;
        match self.prog.underlying(ty).1.kind {
            TypeKind::Pointer { elem: Some(elem) } => {
                let p = self.int_of(&op)? as u64;
                if p == 0 {
                    return Err(EvalError::Unreadable("nil pointer dereference".into()));
                }
                Ok(Operand::Place(elem, p))
            }
            _ => Err(EvalError::Type(format!(
                "cannot dereference a value of type {}",
                self.prog.ty(ty).name
            ))),
        }
    }

    fn index(&self, op: Operand, idx: &Expr) -> Result<Operand, EvalError> {
        if let Operand::Const(Const::Str(s)) | Operand::Typed(_, Const::Str(s)) = &op {
            let i = self.int_of(&self.operand(idx)?)?;
            let b = usize::try_from(i)
                .ok()
                .and_then(|i| s.get(i))
                .ok_or_else(|| {
                    EvalError::Type(format!("index {i} out of bounds [0, {})", s.len()))
                })?;
            return Ok(match self.prog.dwarf.type_by_name("uint8") {
                Some(t) => Operand::Typed(t, Const::Int(i128::from(*b))),
                None => Operand::Const(Const::Int(i128::from(*b))),
            });
        }
        let ty = self
            .type_of(&op)
            .ok_or_else(|| EvalError::Type("cannot index a constant".into()))?;
        let (_, under) = self.prog.underlying(ty);
        let bounds = |i: i128, len: u64| -> Result<u64, EvalError> {
            if i < 0 || i >= i128::from(len) {
                Err(EvalError::Type(format!(
                    "index {i} out of bounds [0, {len})"
                )))
            } else {
                Ok(i as u64)
            }
        };
        match under.kind.clone() {
            TypeKind::Array { elem, len } => {
                let i = bounds(self.int_of(&self.operand(idx)?)?, len)?;
                let esize = self.prog.underlying(elem).1.size;
                match op {
                    Operand::Place(_, a) => Ok(Operand::Place(elem, a.wrapping_add(i * esize))),
                    Operand::Bytes(_, b) => {
                        let s = (i * esize) as usize;
                        let slice = b.get(s..s + esize as usize).ok_or_else(|| {
                            EvalError::Unreadable("element outside the variable".into())
                        })?;
                        Ok(Operand::Bytes(elem, slice.to_vec()))
                    }
                    _ => unreachable_computed(),
                }
            }
            TypeKind::Slice { elem } => {
                let hdr = self.header_words(&op, 3)?;
                let i = bounds(self.int_of(&self.operand(idx)?)?, hdr[1])?;
                let esize = self.prog.underlying(elem).1.size;
                Ok(Operand::Place(elem, hdr[0].wrapping_add(i * esize)))
            }
            TypeKind::String => {
                let hdr = self.header_words(&op, 2)?;
                let i = bounds(self.int_of(&self.operand(idx)?)?, hdr[1])?;
                let b = self
                    .prog
                    .mem
                    .read_u8(hdr[0].wrapping_add(i))
                    .map_err(|e| EvalError::Unreadable(e.to_string()))?;
                Ok(Operand::Computed(Value {
                    display: None,
                    composite_target: false,
                    type_name: "uint8".into(),
                    addr: Some(hdr[0].wrapping_add(i)),
                    kind: ValueKind::Uint(u64::from(b)),
                }))
            }
            TypeKind::Pointer { elem: Some(elem) }
                if matches!(self.prog.underlying(elem).1.kind, TypeKind::Array { .. }) =>
            {
                let d = self.deref(op)?;
                self.index(d, idx)
            }
            TypeKind::Map { key, elem, header } => {
                let hdr = self.header_words(&op, 1)?[0];
                if hdr == 0 {
                    return Err(EvalError::NotFound {
                        name: "key in nil map".into(),
                        suggestions: Vec::new(),
                    });
                }
                let header = header
                    .ok_or_else(|| EvalError::Type("map without DWARF header type".into()))?;
                let want = self.key_json(idx, key)?;
                let (_, slots) = maps::entries(
                    self.prog,
                    self.prog.mem,
                    header,
                    hdr,
                    key,
                    elem,
                    MAP_LOOKUP_LIMIT,
                )
                .map_err(EvalError::Unreadable)?;
                let mut loader = Loader::new(self.prog, LoadConfig::canonical());
                for (ka, ea) in slots {
                    let k = loader.load(key, ka);
                    if json::to_json(&k) == want {
                        return Ok(Operand::Place(elem, ea));
                    }
                }
                Err(EvalError::NotFound {
                    name: format!("key {want} in map"),
                    suggestions: Vec::new(),
                })
            }
            _ => Err(EvalError::Type(format!(
                "cannot index a value of type {}",
                self.prog.ty(ty).name
            ))),
        }
    }

    /// The canonical JSON of a map key expression, typed as the map's key.
    fn key_json(&self, idx: &Expr, key: TypeId) -> Result<String, EvalError> {
        let op = self.operand(idx)?;
        let v = self.value_as(op, key)?;
        Ok(json::to_json(&v))
    }

    fn header_words(&self, op: &Operand, n: usize) -> Result<Vec<u64>, EvalError> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let w = match op {
                Operand::Place(_, a) => self
                    .prog
                    .mem
                    .read_u64(a.wrapping_add(8 * i as u64))
                    .map_err(|e| EvalError::Unreadable(e.to_string()))?,
                Operand::Bytes(_, b) => {
                    let s = b.get(8 * i..8 * i + 8).ok_or_else(|| {
                        EvalError::Unreadable("header outside the variable".into())
                    })?;
                    u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))
                }
                _ => return Err(EvalError::Type("not in memory".into())),
            };
            out.push(w);
        }
        Ok(out)
    }

    fn call(&self, callee: &Expr, args: &[Expr]) -> Result<Operand, EvalError> {
        let chain = name_chain(callee);
        let name = chain.as_ref().map(|c| c.join("."));
        let is_local = |n: &str| self.scope.iter().any(|v| v.name == n);
        match (name.as_deref(), args) {
            (Some(n @ ("len" | "cap")), [a]) if !is_local(n) => {
                let want_cap = n == "cap";
                let op = self.operand(a)?;
                if let Operand::Const(Const::Str(s)) | Operand::Typed(_, Const::Str(s)) = &op {
                    if !want_cap {
                        return Ok(Operand::Const(Const::Int(s.len() as i128)));
                    }
                }
                let op = match self.type_of(&op).map(|t| &self.prog.underlying(t).1.kind) {
                    Some(TypeKind::Pointer { elem: Some(e) })
                        if matches!(self.prog.underlying(*e).1.kind, TypeKind::Array { .. }) =>
                    {
                        let (_, t) = self.prog.underlying(*e);
                        if let TypeKind::Array { len, .. } = t.kind {
                            return Ok(Operand::Const(Const::Int(i128::from(len))));
                        }
                        op
                    }
                    _ => op,
                };
                if let Some(TypeKind::Slice { .. }) =
                    self.type_of(&op).map(|t| &self.prog.underlying(t).1.kind)
                {
                    let w = self.header_words(&op, 3)?;
                    let n = if want_cap { w[2] } else { w[1] };
                    return Ok(Operand::Const(Const::Int(i128::from(n))));
                }
                let v = self.materialize(op, LoadConfig::canonical_shallow());
                let n = match &v.kind {
                    ValueKind::String { len, .. } if !want_cap => *len,
                    ValueKind::Array { len, .. } => *len,
                    ValueKind::Slice { len, cap, .. } => {
                        if want_cap {
                            *cap
                        } else {
                            *len
                        }
                    }
                    ValueKind::Map { len, .. } if !want_cap => *len,
                    ValueKind::Chan { len, cap, .. } => {
                        if want_cap {
                            *cap
                        } else {
                            *len
                        }
                    }
                    ValueKind::Unreadable(why) => return Err(EvalError::Unreadable(why.clone())),
                    _ => {
                        return Err(EvalError::Type(format!(
                            "invalid argument for {n}: {}",
                            v.type_name
                        )))
                    }
                };
                Ok(Operand::Const(Const::Int(i128::from(n))))
            }
            (Some(n @ ("real" | "imag")), [a]) if !is_local(n) => {
                let op = self.operand(a)?;
                let (t, c) = self.scalar_const(&op)?.ok_or_else(|| {
                    EvalError::Type(format!("invalid argument for {n}: not a number"))
                })?;
                let (re, im) = match c {
                    Const::Complex(r, i) => (r, i),
                    Const::Float(f) if t.is_none() => (f, 0.0),
                    Const::Int(i) if t.is_none() => (i as f64, 0.0),
                    _ => {
                        return Err(EvalError::Type(format!(
                            "invalid argument for {n}: {} is not complex",
                            self.type_name_of(&op)
                        )))
                    }
                };
                let part = Const::Float(if n == "real" { re } else { im });
                match t.and_then(|t| self.num_class(t)) {
                    Some(Num::Complex(bits)) => {
                        let fname = format!("float{bits}");
                        match self.prog.dwarf.type_by_name(&fname) {
                            Some(ft) => Ok(Operand::Typed(ft, part)),
                            None => Ok(Operand::Computed(Value {
                                display: None,
                                composite_target: false,
                                type_name: fname,
                                addr: None,
                                kind: const_value(&part).kind,
                            })),
                        }
                    }
                    _ => Ok(Operand::Const(part)),
                }
            }
            (Some("complex"), [re, im]) if !is_local("complex") => {
                let r = self.operand(re)?;
                let i = self.operand(im)?;
                let num = |op: &Operand| -> Result<(Option<TypeId>, f64), EvalError> {
                    match self.scalar_const(op)? {
                        Some((t, Const::Float(f))) => Ok((t, f)),
                        Some((None, Const::Int(i))) => Ok((None, i as f64)),
                        _ => Err(EvalError::Type("invalid argument for complex".into())),
                    }
                };
                let ((rt, rv), (it, iv)) = (num(&r)?, num(&i)?);
                let t = rt.or(it);
                if let (Some(a), Some(b)) = (rt, it) {
                    if self.prog.ty(a).name != self.prog.ty(b).name {
                        return Err(mismatched(&self.prog.ty(a).name, &self.prog.ty(b).name));
                    }
                }
                let c = Const::Complex(rv, iv);
                match t.and_then(|t| self.num_class(t)) {
                    Some(Num::Float(bits)) => {
                        let cname = format!("complex{}", bits * 2);
                        let c = gonum::convert(&c, Num::Complex(bits), &cname)
                            .map_err(|e| EvalError::Type(e.0))?;
                        match self.prog.dwarf.type_by_name(&cname) {
                            Some(ct) => Ok(Operand::Typed(ct, c)),
                            None => Ok(Operand::Const(c)),
                        }
                    }
                    _ => Ok(Operand::Const(c)),
                }
            }
            (Some(n @ ("min" | "max")), [_, ..]) if !is_local(n) => {
                let mut best: Option<Operand> = None;
                for a in args {
                    let op = self.operand(a)?;
                    best = Some(match best {
                        None => {
                            if self.scalar_const(&op)?.is_none() {
                                return Err(EvalError::Type(format!(
                                    "invalid argument for {n}: {} is not ordered",
                                    self.type_name_of(&op)
                                )));
                            }
                            op
                        }
                        Some(cur) => {
                            // Typing as for `cur < op`, then the one that wins.
                            let less = {
                                let lt = self.binary_values("<", cur.clone(), op.clone())?;
                                matches!(lt, Operand::Const(Const::Bool(true)))
                            };
                            let take_new = if n == "min" { !less } else { less };
                            let (keep, other) = if take_new { (op, cur) } else { (cur, op) };
                            // An untyped winner takes the other's type.
                            match (&keep, self.type_of(&other)) {
                                (Operand::Const(c), Some(t)) => {
                                    let class = self.num_class(t).ok_or_else(|| {
                                        EvalError::Type(format!("invalid argument for {n}"))
                                    })?;
                                    Operand::Typed(
                                        t,
                                        gonum::represent(c, class, &self.prog.ty(t).name)
                                            .map_err(|e| EvalError::Type(e.0))?,
                                    )
                                }
                                _ => keep,
                            }
                        }
                    });
                }
                best.ok_or_else(|| EvalError::Type(format!("not enough arguments for {n}")))
            }
            (Some(n), [a]) => {
                if let Some(t) = self.prog.dwarf.type_by_name(n) {
                    if !is_local(n) && self.prog.dwarf.global(n).is_none() {
                        return self.convert_to(t, a, n);
                    }
                }
                if let Some(t) = self.lookup_type(&TypeExpr::Named(n.to_string())) {
                    if self.scope.iter().all(|v| v.name != n) && self.find_global(n).is_none() {
                        return self.convert_to(t, a, n);
                    }
                }
                self.refuse_call(callee, n)
            }
            (Some(n), _) => self.refuse_call(callee, n),
            _ => Err(needs_live_process("a function value")),
        }
    }

    /// A call of anything that is not a builtin or a conversion: refused
    /// because it would run target code, or not found.
    fn refuse_call(&self, callee: &Expr, name: &str) -> Result<Operand, EvalError> {
        match self.operand(callee) {
            Ok(_) => Err(needs_live_process(name)),
            Err(e @ EvalError::NotFound { .. }) => Err(e),
            Err(_) => Err(needs_live_process(name)),
        }
    }

    fn convert(&self, t: &TypeExpr, arg: &Expr) -> Result<Operand, EvalError> {
        let tname = t.to_string();
        if let Some(id) = self.lookup_type(t) {
            return self.convert_to(id, arg, &tname);
        }
        // `(*T)(addr)` even when DWARF has no `*T` entry (older toolchains).
        if let TypeExpr::Pointer(inner) = t {
            if self.lookup_type(inner).is_some() {
                let op = self.operand(arg)?;
                let addr = match self.scalar_const(&op)? {
                    Some((_, Const::Int(i))) if (0..=i128::from(u64::MAX)).contains(&i) => i as u64,
                    _ => {
                        return Err(EvalError::Type(format!(
                            "can not convert {} to {tname}",
                            self.type_name_of(&op)
                        )))
                    }
                };
                return Ok(Operand::Computed(Value {
                    display: None,
                    composite_target: false,
                    type_name: tname,
                    addr: None,
                    kind: ValueKind::Pointer {
                        addr,
                        pointee: if addr == 0 {
                            Pointee::Nil
                        } else {
                            Pointee::NotLoaded
                        },
                    },
                }));
            }
        }
        Err(EvalError::NotFound {
            name: tname,
            suggestions: Vec::new(),
        })
    }

    /// `T(x)`: Go's conversions (numeric, string, []byte, []rune, pointers),
    /// and Delve's reinterpretation between types of the same layout.
    fn convert_to(&self, t: TypeId, arg: &Expr, written: &str) -> Result<Operand, EvalError> {
        let op = self.operand(arg)?;
        let (tu, target) = self.prog.underlying(t);
        let tname = self.prog.ty(t).name.clone();
        let src_name = self.type_name_of(&op);
        let refuse = || {
            EvalError::Type(format!(
                "can not convert {} (type {src_name}) to {written}",
                expr_text(arg),
            ))
        };
        let type_err = |e: gonum::NumError| EvalError::Type(e.0);
        // Numbers, bools and strings from numbers, bools and strings.
        if let Some(class) = self.num_class(t) {
            if let Some((src_t, c)) = self.scalar_const(&op)? {
                let src_class = src_t.and_then(|s| self.num_class(s));
                let r = match (class, &c) {
                    // string(rune)
                    (Num::Str, Const::Int(i)) => Const::Str(gonum::rune_string(*i)),
                    _ if src_t.is_none() => {
                        gonum::convert_const(&c, class, &tname).map_err(type_err)?
                    }
                    (Num::Complex(_), _) if !matches!(src_class, Some(Num::Complex(_))) => {
                        // Go converts only complex to complex at run time.
                        return Err(refuse());
                    }
                    (_, _) => gonum::convert(&c, class, &tname).map_err(type_err)?,
                };
                // A string conversion of a value in memory keeps it there.
                if class == Num::Str && matches!(c, Const::Str(_)) {
                    if let Operand::Place(_, a) = op {
                        return Ok(Operand::Place(t, a));
                    }
                }
                return Ok(Operand::Typed(t, r));
            }
            // uintptr(p), uint64(unsafe.Pointer(p)): the address.
            if let (Num::Int { bits: 64, .. }, Some(addr)) = (class, self.pointer_addr(&op)?) {
                return Ok(Operand::Typed(t, Const::Int(i128::from(addr))));
            }
            // string(bytes), string(runes) of slices and arrays.
            if class == Num::Str {
                if let Some(s) = self.string_of_elems(&op)? {
                    return Ok(Operand::Typed(t, Const::Str(s)));
                }
            }
            return Err(refuse());
        }
        match &target.kind {
            TypeKind::Pointer { elem } => {
                // Pointer to pointer: from unsafe.Pointer, or between
                // pointers to the same underlying type (Go's rules).
                if let Some(addr) = self.pointer_addr(&op)? {
                    // Or, as a debugger reinterpretation, between pointers to
                    // types of the same size (`(*uintptr)(&m)`): never
                    // reading past the pointee.
                    let size = |e: Option<TypeId>| e.map(|e| self.prog.underlying(e).1.size);
                    let src_elem = match &op {
                        Operand::Computed(v) => v
                            .type_name
                            .strip_prefix('*')
                            .and_then(|n| self.prog.dwarf.type_by_name(n)),
                        _ => self.type_of(&op).and_then(|s| self.pointee_of(s)),
                    };
                    let ok = match self.type_of(&op).map(|s| &self.prog.underlying(s).1.kind) {
                        Some(TypeKind::UnsafePointer) => true,
                        _ => src_elem.is_some() && size(src_elem) == size(*elem),
                    };
                    if !ok {
                        return Err(refuse());
                    }
                    return Ok(Operand::Bytes(t, addr.to_le_bytes().to_vec()));
                }
                // From an integer address.
                match self.scalar_const(&op)? {
                    Some((_, Const::Int(i))) if (0..=i128::from(u64::MAX)).contains(&i) => {
                        let _ = elem;
                        Ok(Operand::Bytes(t, (i as u64).to_le_bytes().to_vec()))
                    }
                    _ => Err(refuse()),
                }
            }
            TypeKind::UnsafePointer => match self.pointer_addr(&op)? {
                Some(addr) => Ok(Operand::Bytes(t, addr.to_le_bytes().to_vec())),
                None => match self.scalar_const(&op)? {
                    Some((Some(st), Const::Int(i)))
                        if matches!(self.prog.underlying(st).1.kind, TypeKind::Uintptr) =>
                    {
                        Ok(Operand::Bytes(t, (i as u64).to_le_bytes().to_vec()))
                    }
                    _ => Err(refuse()),
                },
            },
            TypeKind::Slice { elem } => {
                let elem_class = self.num_class(*elem);
                let Some((_, Const::Str(s))) = self.scalar_const(&op)? else {
                    return self.reinterpret(t, op).ok_or_else(refuse);
                };
                let (vals, ename): (Vec<i128>, _) = match elem_class {
                    Some(Num::Int {
                        signed: false,
                        bits: 8,
                    }) => (s.iter().map(|&b| i128::from(b)).collect(), "uint8"),
                    Some(Num::Int {
                        signed: true,
                        bits: 32,
                    }) => (
                        String::from_utf8_lossy(&s)
                            .chars()
                            .map(|c| i128::from(c as u32))
                            .collect(),
                        "int32",
                    ),
                    _ => return Err(refuse()),
                };
                let _ = ename;
                let elems: Vec<Value> = vals
                    .iter()
                    .map(|&v| typed_value(self.prog, *elem, &Const::Int(v)))
                    .collect();
                let n = elems.len() as u64;
                Ok(Operand::Computed(Value {
                    display: None,
                    composite_target: false,
                    type_name: tname,
                    addr: None,
                    kind: ValueKind::Slice {
                        len: n,
                        cap: n,
                        base: 0,
                        elems,
                    },
                }))
            }
            _ => {
                let _ = tu;
                self.reinterpret(t, op).ok_or_else(refuse)
            }
        }
    }

    /// Delve's conversion between types of identical layout (same size and
    /// kind: struct to struct with the same fields, named to underlying).
    fn reinterpret(&self, t: TypeId, op: Operand) -> Option<Operand> {
        let src = self.type_of(&op)?;
        let (_, a) = self.prog.underlying(src);
        let (_, b) = self.prog.underlying(t);
        let same = a.size == b.size
            && match (&a.kind, &b.kind) {
                (TypeKind::Struct { fields: f }, TypeKind::Struct { fields: g }) => {
                    f.len() == g.len()
                        && f.iter().zip(g).all(|(x, y)| {
                            x.name == y.name
                                && x.offset == y.offset
                                && self.prog.ty(x.ty).name == self.prog.ty(y.ty).name
                        })
                }
                (TypeKind::Slice { elem: e1 }, TypeKind::Slice { elem: e2 }) => {
                    self.prog.ty(*e1).name == self.prog.ty(*e2).name
                }
                (x, y) => {
                    a.name == b.name && std::mem::discriminant(x) == std::mem::discriminant(y)
                }
            };
        if !same {
            return None;
        }
        match op {
            Operand::Place(_, addr) => Some(Operand::Place(t, addr)),
            Operand::Bytes(_, b) => Some(Operand::Bytes(t, b)),
            _ => None,
        }
    }

    /// The address held by a pointer-shaped operand (pointer, unsafe.Pointer).
    fn pointer_addr(&self, op: &Operand) -> Result<Option<u64>, EvalError> {
        if let Operand::Computed(v) = op {
            return Ok(match v.kind {
                ValueKind::Pointer { addr, .. } | ValueKind::UnsafePointer(addr) => Some(addr),
                _ => None,
            });
        }
        let Some(t) = self.type_of(op) else {
            return Ok(None);
        };
        if !matches!(
            self.prog.underlying(t).1.kind,
            TypeKind::Pointer { .. } | TypeKind::UnsafePointer
        ) {
            return Ok(None);
        }
        Ok(Some(self.header_words(op, 1)?[0]))
    }

    /// The string of a `[]byte`, `[N]byte`, `[]rune` or `[N]rune` operand.
    fn string_of_elems(&self, op: &Operand) -> Result<Option<Vec<u8>>, EvalError> {
        let Some(t) = self.type_of(op) else {
            return Ok(None);
        };
        let elem = match self.prog.underlying(t).1.kind {
            TypeKind::Slice { elem } | TypeKind::Array { elem, .. } => elem,
            _ => return Ok(None),
        };
        let ename = self.prog.ty(elem).name.clone();
        let runes = match ename.as_str() {
            "uint8" | "byte" => false,
            "int32" | "rune" => true,
            _ => return Ok(None),
        };
        let mut cfg = LoadConfig::canonical_shallow();
        cfg.max_array_values = MAX_OPERAND_STRING;
        cfg.max_recurse = 1;
        let v = self.materialize(op.clone(), cfg);
        let (elems, len) = match v.kind {
            ValueKind::Slice { elems, len, .. } | ValueKind::Array { elems, len } => (elems, len),
            ValueKind::Unreadable(why) => return Err(EvalError::Unreadable(why)),
            _ => return Ok(None),
        };
        if (elems.len() as u64) < len {
            return Err(EvalError::Unsupported(format!(
                "{len} elements too many to convert to a string"
            )));
        }
        let mut out = Vec::new();
        for e in elems {
            match e.kind {
                ValueKind::Uint(b) if !runes => out.push(b as u8),
                ValueKind::Int(r) if runes => out.extend(gonum::rune_string(i128::from(r))),
                ValueKind::Unreadable(why) => return Err(EvalError::Unreadable(why)),
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    fn composite(&self, t: &Expr, fields: &[(Option<String>, Expr)]) -> Result<Operand, EvalError> {
        let name = name_chain(t).map(|c| c.join(".")).unwrap_or_default();
        let ty = self
            .lookup_type(&TypeExpr::Named(name.clone()))
            .ok_or_else(|| EvalError::NotFound {
                name: name.clone(),
                suggestions: Vec::new(),
            })?;
        let TypeKind::Struct { fields: decl } = &self.prog.underlying(ty).1.kind else {
            return Err(EvalError::Type(format!("{name} is not a struct type")));
        };
        let mut out = Vec::new();
        for (i, f) in decl.iter().enumerate() {
            let given = fields.iter().enumerate().find(|(j, (n, _))| {
                n.as_deref() == Some(f.name.as_str()) || (n.is_none() && *j == i)
            });
            let v = match given {
                Some((_, (_, e))) => self.value_as(self.operand(e)?, f.ty)?,
                None => zero_value(self.prog, f.ty),
            };
            out.push((f.name.clone(), v));
        }
        Ok(Operand::Computed(Value {
            display: None,
            composite_target: false,
            type_name: self.prog.ty(ty).name.clone(),
            addr: None,
            kind: ValueKind::Struct {
                total: out.len(),
                fields: out,
            },
        }))
    }

    /// An operand as a complete value of type `t` (a constant given that
    /// type, Go's assignability).
    fn value_as(&self, op: Operand, t: TypeId) -> Result<Value, EvalError> {
        match &op {
            Operand::Const(Const::Nil) => Ok(zero_value(self.prog, t)),
            Operand::Const(c) => {
                let class = self.num_class(t).ok_or_else(|| {
                    EvalError::Type(format!("cannot use a constant as {}", self.prog.ty(t).name))
                })?;
                let c = gonum::represent(c, class, &self.prog.ty(t).name)
                    .map_err(|e| EvalError::Type(e.0))?;
                Ok(typed_value(self.prog, t, &c))
            }
            _ => Ok(self.materialize(op, LoadConfig::canonical())),
        }
    }
}

fn unreachable_computed<T>() -> Result<T, EvalError> {
    Err(EvalError::Type("not in memory".into()))
}

fn mismatched(a: &str, b: &str) -> EvalError {
    EvalError::Type(format!("mismatched types \"{a}\" and \"{b}\""))
}

fn mismatched_kind(op: &str) -> EvalError {
    EvalError::Type(format!("operator {op} not defined on these operands"))
}

fn const_kind(c: &Const) -> &'static str {
    match c {
        Const::Int(_) => "int",
        Const::Float(_) => "float",
        Const::Complex(..) => "complex",
        Const::Bool(_) => "bool",
        Const::Str(_) => "string",
        Const::Nil => "nil",
    }
}

/// The package of a function name: `main.(*T).m` → `main`,
/// `github.com/a/b.F` → `github.com/a/b`.
fn package_of(function: &str) -> &str {
    let slash = function.rfind('/').map_or(0, |i| i + 1);
    match function[slash..].find('.') {
        Some(dot) => &function[..slash + dot],
        None => function,
    }
}

/// A type name as DWARF spells it: `byte` is `uint8`, `rune` is `int32`.
fn canonical_type_name(name: &str) -> String {
    super::map_type_words(name, &[], |word| match word {
        "byte" => "uint8",
        "rune" => "int32",
        other => other,
    })
}

fn leftmost(e: &Expr) -> &Expr {
    match e {
        Expr::Select(b, _) => leftmost(b),
        other => other,
    }
}

/// Short source text of an expression, for messages.
fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Ident(n) => n.clone(),
        Expr::Int(i) => format!("{i:#x}"),
        Expr::Select(b, f) => format!("{}.{f}", expr_text(b)),
        _ => "expression".into(),
    }
}

/// An untyped constant as a printable value (Delve prints `5`, `1.5`,
/// `(1 + 2i)`, `"s"`, `true`, `nil`).
fn const_value(c: &Const) -> Value {
    let kind = match c {
        Const::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
            (Ok(v), _) => ValueKind::Int(v),
            (_, Ok(u)) => ValueKind::Uint(u),
            _ => ValueKind::Unreadable(format!("constant {i} overflows uint64")),
        },
        Const::Float(f) => ValueKind::Float {
            value: *f,
            bits: 64,
        },
        Const::Complex(r, i) => ValueKind::Complex {
            re: *r,
            im: *i,
            bits: 64,
        },
        Const::Bool(b) => ValueKind::Bool(*b),
        Const::Str(s) => ValueKind::String {
            len: s.len() as u64,
            bytes: s.clone(),
        },
        Const::Nil => ValueKind::Pointer {
            addr: 0,
            pointee: Pointee::Nil,
        },
    };
    Value {
        display: None,
        composite_target: false,
        type_name: String::new(),
        addr: None,
        kind,
    }
}

/// A scalar of DWARF type `t` as a value.
fn typed_value(prog: &Program<'_>, t: TypeId, c: &Const) -> Value {
    let (_, under) = prog.underlying(t);
    let bits = (under.size * 8) as u8;
    let kind = match (c, &under.kind) {
        (Const::Int(i), TypeKind::Int) => ValueKind::Int(*i as i64),
        (Const::Int(i), _) => ValueKind::Uint(*i as u64),
        (Const::Float(f), _) => ValueKind::Float { value: *f, bits },
        (Const::Complex(r, i), _) => ValueKind::Complex {
            re: *r,
            im: *i,
            bits: bits / 2,
        },
        (Const::Bool(b), _) => ValueKind::Bool(*b),
        (Const::Str(s), _) => ValueKind::String {
            len: s.len() as u64,
            bytes: s.clone(),
        },
        (Const::Nil, _) => ValueKind::Pointer {
            addr: 0,
            pointee: Pointee::Nil,
        },
    };
    unaddressable(prog, t, kind)
}

/// A value of type `t` that lives in no memory (a constant, a zero value),
/// with the constant's name as its display when `t` has one for it.
fn unaddressable(prog: &Program<'_>, t: TypeId, kind: ValueKind) -> Value {
    let display = match kind {
        ValueKind::Int(i) => prog.const_descr(t, i),
        ValueKind::Uint(u) => prog.const_descr(t, u as i64),
        _ => None,
    };
    Value {
        display,
        composite_target: false,
        type_name: prog.ty(t).name.clone(),
        addr: None,
        kind,
    }
}

fn zero_value(prog: &Program<'_>, t: TypeId) -> Value {
    let (_, under) = prog.underlying(t);
    let kind = match &under.kind {
        TypeKind::Bool => ValueKind::Bool(false),
        TypeKind::Int => ValueKind::Int(0),
        TypeKind::Uint | TypeKind::Uintptr => ValueKind::Uint(0),
        TypeKind::Float => ValueKind::Float {
            value: 0.0,
            bits: (under.size * 8) as u8,
        },
        TypeKind::String => ValueKind::String {
            bytes: Vec::new(),
            len: 0,
        },
        TypeKind::Struct { fields } => ValueKind::Struct {
            total: fields.len(),
            fields: fields
                .iter()
                .map(|f| (f.name.clone(), zero_value(prog, f.ty)))
                .collect(),
        },
        _ => ValueKind::Pointer {
            addr: 0,
            pointee: Pointee::Nil,
        },
    };
    unaddressable(prog, t, kind)
}

/// Edit distance, for near-miss suggestions.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_subset() {
        assert_eq!(
            parse("main.cfg.Name").expect("parse"),
            Expr::Select(
                Box::new(Expr::Select(
                    Box::new(Expr::Ident("main".into())),
                    "cfg".into()
                )),
                "Name".into()
            )
        );
        assert_eq!(
            parse("net/http.DefaultClient").expect("parse"),
            Expr::Select(
                Box::new(Expr::Ident("net/http".into())),
                "DefaultClient".into()
            )
        );
        assert!(
            matches!(parse(r#"m["k"]"#).expect("parse"), Expr::Index(_, k) if *k == Expr::Str(b"k".to_vec()))
        );
        assert!(matches!(parse("m[3]").expect("parse"), Expr::Index(_, k) if *k == Expr::Int(3)));
        assert!(matches!(parse("*p").expect("parse"), Expr::Deref(_)));
        assert!(matches!(parse("&x").expect("parse"), Expr::AddrOf(_)));
        assert!(matches!(parse("len(x)").expect("parse"), Expr::Call(_, a) if a.len() == 1));
        match parse("*(*main.Node)(0xc000010000)").expect("parse") {
            Expr::Deref(inner) => match *inner {
                Expr::Convert(TypeExpr::Pointer(t), arg) => {
                    assert_eq!(*t, TypeExpr::Named("main.Node".into()));
                    assert_eq!(*arg, Expr::Int(0xc000010000));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("m[main.Point{X: 1, Y: -2}]").expect("parse"),
            Expr::Index(_, k) if matches!(*k, Expr::Composite(..))
        ));
        assert!(matches!(parse("x[1].f").expect("parse"), Expr::Select(..)));
        assert!(matches!(parse("(x)").expect("parse"), Expr::Ident(_)));
        assert!(parse("a +").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn lexes_literals() {
        assert_eq!(
            lex(r#""a\tb\x41""#).expect("lex"),
            vec![Tok::Str(b"a\tbA".to_vec())]
        );
        assert_eq!(
            lex("0x1f 1_000 'a'").expect("lex"),
            vec![Tok::Int(31), Tok::Int(1000), Tok::Char(97)]
        );
        assert_eq!(lex("1.5").expect("lex"), vec![Tok::Float(1.5)]);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        let deep = format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).is_err());
        assert!(parse(&"*".repeat(100_000)).is_err());
        assert!(parse(&format!("({})(0)", "*".repeat(100_000))).is_err());
        for s in [
            "\"abc",
            "'ab'",
            "`x",
            "0x",
            "m[",
            "a.",
            "é.ü[\"\\x\"]",
            "1e999999",
            "\u{0}",
            "[]",
            "map[",
            "(",
            "&&&",
        ] {
            let _ = parse(s);
        }
    }

    #[test]
    fn parses_operators_slices_assertions_and_paths() {
        // Go precedence: * binds tighter than +, + tighter than ==, == than &&.
        match parse("a + b * c == d && e").expect("parse") {
            Expr::Binary("&&", l, _) => match *l {
                Expr::Binary("==", l, _) => match *l {
                    Expr::Binary("+", _, r) => assert!(matches!(*r, Expr::Binary("*", ..))),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        // `i2/i3` divides; `net/http.X` is a path.
        assert!(matches!(
            parse("i2/i3").expect("parse"),
            Expr::Binary("/", ..)
        ));
        assert!(matches!(
            parse("net/http.DefaultClient").expect("parse"),
            Expr::Select(..)
        ));
        assert!(matches!(
            parse("s[2:4]").expect("parse"),
            Expr::Slice(_, Some(_), Some(_))
        ));
        assert!(matches!(
            parse("s[:4]").expect("parse"),
            Expr::Slice(_, None, Some(_))
        ));
        assert!(matches!(
            parse("s[2:]").expect("parse"),
            Expr::Slice(_, Some(_), None)
        ));
        assert!(matches!(
            parse("e.(*main.T)").expect("parse"),
            Expr::TypeAssert(_, TypeExpr::Pointer(_))
        ));
        assert!(matches!(
            parse("e.(data)").expect("parse"),
            Expr::TypeAssert(_, TypeExpr::Named(n)) if n == "data"
        ));
        match parse(r#""github.com/a/b/v2/server".Flag.Port"#).expect("parse") {
            Expr::Select(b, f) => {
                assert_eq!(f, "Port");
                assert!(
                    matches!(*b, Expr::Select(ref p, _) if matches!(**p, Expr::PkgPath(ref s) if s == "github.com/a/b/v2/server"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse("1 + 2i").expect("parse"), Expr::Binary("+", _, r) if *r == Expr::Imag(2.0))
        );
        assert!(matches!(parse("1e-7").expect("parse"), Expr::Float(f) if f == 1e-7));
        assert!(matches!(parse("^x").expect("parse"), Expr::Unary("^", _)));
        assert!(matches!(parse("!b").expect("parse"), Expr::Unary("!", _)));
        assert!(matches!(
            parse("x &^ y").expect("parse"),
            Expr::Binary("&^", ..)
        ));
        assert!(matches!(
            parse("1 << 3 >> 1").expect("parse"),
            Expr::Binary(">>", ..)
        ));
    }

    #[test]
    fn package_of_functions() {
        assert_eq!(package_of("main.zooFrame"), "main");
        assert_eq!(package_of("main.(*T).m"), "main");
        assert_eq!(package_of("github.com/a/b.F"), "github.com/a/b");
        assert_eq!(canonical_type_name("[]byte"), "[]uint8");
        assert_eq!(
            canonical_type_name("map[rune]main.bytes"),
            "map[int32]main.bytes"
        );
    }

    #[test]
    fn distance() {
        assert_eq!(levenshtein("main.cfx", "main.cfg"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
    }
}
