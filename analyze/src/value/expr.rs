//! Expressions (CONTRACT.md): package-qualified globals, locals and
//! arguments by name, field selection, indexing of arrays, slices, strings
//! and maps, `*p`, `&x`, `len()`, `cap()`, conversions `T(x)` and
//! `*(*T)(0xADDR)`. A hand-written lexer and recursive-descent parser build an
//! [`Expr`]; [`Evaluator`] turns it into a [`Value`].

use crate::dwarf::{TypeId, TypeKind};

use super::json;
use super::maps;
use super::{LoadConfig, Loader, Pointee, Program, Value, ValueKind};

/// Errors of parsing or evaluating an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
            Tok::Str(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Tok::Char(c) => write!(f, "{:?}", char::from_u32(*c).unwrap_or('?')),
            Tok::Punct(p) => write!(f, "{p}"),
        }
    }
}

const PUNCTS: [&str; 14] = [
    "...", "*", "&", ".", "[", "]", "(", ")", "{", "}", ",", ":", "-", "+",
];

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
                    || (b[i] == b'/'
                        && i + 1 < b.len()
                        && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_'))
                    || (b[i] == b'-' && src[start..i].contains('/')))
            {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_string()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                // `1.5` is a float but `x[1].f` must stop at the dot.
                if b[i] == b'.' && !(i + 1 < b.len() && b[i + 1].is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            let text: String = src[start..i].chars().filter(|&c| c != '_').collect();
            let lower = text.to_ascii_lowercase();
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
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: u32,
}

/// Nesting allowed in an expression (the parser recurses per level).
const MAX_NESTING: u32 = 200;

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
        let e = self.unary();
        self.depth -= 1;
        e
    }

    fn unary(&mut self) -> Result<Expr, EvalError> {
        if self.depth > MAX_NESTING {
            return Err(EvalError::Syntax(format!(
                "expression nested deeper than {MAX_NESTING} levels"
            )));
        }
        if self.is("*") || self.is("&") || self.is("-") || self.is("+") {
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
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, EvalError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                let name = self.ident()?;
                e = Expr::Select(Box::new(e), name);
            } else if self.eat("[") {
                let i = self.expr()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(i));
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
        Expr::Ident(_) => true,
        Expr::Select(b, _) => is_name_chain(b),
        _ => false,
    }
}

/// `a.b.c` → ["a", "b", "c"].
fn name_chain(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Ident(n) => Some(vec![n.clone()]),
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
}

/// An intermediate result: a typed location, or a computed value.
#[derive(Debug, Clone)]
enum Operand {
    /// A typed value in memory.
    Place(TypeId, u64),
    /// A typed value whose bytes are known (registers).
    Bytes(TypeId, Vec<u8>),
    /// A constant or computed value (literals, len, &x).
    Computed(Value),
}

/// Evaluates expressions against a program and an optional frame scope.
pub struct Evaluator<'p, 'a> {
    prog: &'p Program<'a>,
    scope: Vec<ScopeVar>,
}

/// Entries scanned when indexing a map by key.
const MAP_LOOKUP_LIMIT: u64 = 10_000_000;

impl<'p, 'a> Evaluator<'p, 'a> {
    /// An evaluator over package variables and the given frame variables.
    pub fn new(prog: &'p Program<'a>, scope: Vec<ScopeVar>) -> Self {
        Evaluator { prog, scope }
    }

    /// Parses and evaluates `src`, loading the result under `cfg`.
    pub fn eval_str(&self, src: &str, cfg: LoadConfig) -> Result<Value, EvalError> {
        let e = parse(src)?;
        self.eval(&e, cfg)
    }

    /// Evaluates a parsed expression, loading the result under `cfg`.
    pub fn eval(&self, e: &Expr, cfg: LoadConfig) -> Result<Value, EvalError> {
        let op = self.operand(e)?;
        Ok(self.materialize(op, cfg))
    }

    fn materialize(&self, op: Operand, cfg: LoadConfig) -> Value {
        let mut loader = Loader::new(self.prog, cfg);
        match op {
            Operand::Place(ty, addr) => loader.load(ty, addr),
            Operand::Bytes(ty, bytes) => loader.load_bytes(ty, bytes),
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
            Operand::Place(t, _) | Operand::Bytes(t, _) => Some(*t),
            Operand::Computed(_) => None,
        }
    }

    fn lookup_type(&self, t: &TypeExpr) -> Option<TypeId> {
        self.prog.dwarf.type_by_name(&t.to_string())
    }

    fn operand(&self, e: &Expr) -> Result<Operand, EvalError> {
        match e {
            Expr::Int(i) => Ok(Operand::Computed(const_int(*i))),
            Expr::Float(f) => Ok(Operand::Computed(Value {
                display: None,
                composite_target: false,
                type_name: "float64".into(),
                addr: None,
                kind: ValueKind::Float {
                    value: *f,
                    bits: 64,
                },
            })),
            Expr::Str(s) => Ok(Operand::Computed(Value {
                display: None,
                composite_target: false,
                type_name: "string".into(),
                addr: None,
                kind: ValueKind::String {
                    bytes: s.clone(),
                    len: s.len() as u64,
                },
            })),
            Expr::Bool(b) => Ok(Operand::Computed(Value {
                display: None,
                composite_target: false,
                type_name: "bool".into(),
                addr: None,
                kind: ValueKind::Bool(*b),
            })),
            Expr::Nil => Ok(Operand::Computed(Value {
                display: None,
                composite_target: false,
                type_name: "nil".into(),
                addr: None,
                kind: ValueKind::Pointer {
                    addr: 0,
                    pointee: Pointee::Nil,
                },
            })),
            Expr::Neg(inner) => {
                let v = self.operand(inner)?;
                match self.scalar(&v)?.kind {
                    ValueKind::Int(i) => Ok(Operand::Computed(const_int(-i128::from(i)))),
                    ValueKind::Uint(u) => Ok(Operand::Computed(const_int(-i128::from(u)))),
                    ValueKind::Float { value, bits } => Ok(Operand::Computed(Value {
                        display: None,
                        composite_target: false,
                        type_name: "float64".into(),
                        addr: None,
                        kind: ValueKind::Float {
                            value: -value,
                            bits,
                        },
                    })),
                    _ => Err(EvalError::Type("cannot negate a non-number".into())),
                }
            }
            Expr::Ident(_) | Expr::Select(..) => {
                if let Some(chain) = name_chain(e) {
                    return self.resolve_chain(&chain);
                }
                let Expr::Select(base, field) = e else {
                    return Err(EvalError::Syntax("bad selector".into()));
                };
                let b = self.operand(base)?;
                self.select(b, field)
            }
            Expr::Index(base, idx) => {
                let b = self.operand(base)?;
                self.index(b, idx)
            }
            Expr::Deref(inner) => {
                let op = self.operand(inner)?;
                self.deref(op)
            }
            Expr::AddrOf(inner) => {
                let op = self.operand(inner)?;
                match op {
                    Operand::Place(ty, addr) => {
                        let pointee =
                            self.materialize(Operand::Place(ty, addr), LoadConfig::delve_print());
                        Ok(Operand::Computed(Value {
                            display: None,
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

    fn resolve_chain(&self, chain: &[String]) -> Result<Operand, EvalError> {
        let first = chain
            .first()
            .ok_or_else(|| EvalError::Syntax("empty name".into()))?;
        // Innermost scope wins: later entries shadow earlier ones.
        if let Some(v) = self.scope.iter().rev().find(|v| &v.name == first) {
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
            if let Some(g) = self.prog.dwarf.global(&name) {
                let mut op = Operand::Place(g.ty, g.addr.wrapping_add(self.prog.bias));
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

    fn select(&self, op: Operand, field: &str) -> Result<Operand, EvalError> {
        let ty = self
            .type_of(&op)
            .ok_or_else(|| EvalError::Type(format!("cannot select .{field} of a constant")))?;
        let (_, under) = self.prog.underlying(ty);
        match &under.kind {
            TypeKind::Struct { .. } => {
                let (fty, off) = self.find_field(ty, field, 0).ok_or_else(|| {
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
                    EvalError::Type(format!(
                        "{} has no field or method {field}{}",
                        self.prog.ty(ty).name,
                        suggest(&near)
                    ))
                })?;
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
                    Operand::Computed(_) => unreachable_computed()?,
                })
            }
            TypeKind::Pointer { .. } => {
                let d = self.deref(op)?;
                self.select(d, field)
            }
            _ => Err(EvalError::Type(format!(
                "{} has no field or method {field}",
                self.prog.ty(ty).name
            ))),
        }
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
        let ty = self
            .type_of(&op)
            .ok_or_else(|| EvalError::Type("cannot dereference a constant".into()));
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
        let ty = ty?;
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
                    Operand::Computed(_) => unreachable_computed(),
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
        let v = match op {
            Operand::Computed(v) => coerce(self.prog, v, key),
            other => self.materialize(other, LoadConfig::canonical()),
        };
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
                Operand::Computed(_) => return Err(EvalError::Type("not in memory".into())),
            };
            out.push(w);
        }
        Ok(out)
    }

    fn call(&self, callee: &Expr, args: &[Expr]) -> Result<Operand, EvalError> {
        let chain = name_chain(callee);
        let name = chain.as_ref().map(|c| c.join("."));
        match (name.as_deref(), args) {
            (Some("len"), [a]) | (Some("cap"), [a]) => {
                let want_cap = name.as_deref() == Some("cap");
                let op = self.operand(a)?;
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
                            "invalid argument for {}: {}",
                            name.unwrap_or_default(),
                            v.type_name
                        )))
                    }
                };
                Ok(Operand::Computed(const_int(i128::from(n))))
            }
            (Some(n), [a]) => {
                if let Some(t) = self.prog.dwarf.type_by_name(n) {
                    return self.convert_to(t, a);
                }
                if self.prog.dwarf.function_by_name(n).is_some() {
                    return Err(EvalError::Unsupported(format!(
                        "cannot call {n}: a snapshot is read-only, function calls need a live process"
                    )));
                }
                Err(EvalError::NotFound {
                    suggestions: self.near_names(n),
                    name: n.to_string(),
                })
            }
            _ => Err(EvalError::Unsupported(
                "function calls are not supported on a snapshot".into(),
            )),
        }
    }

    fn convert(&self, t: &TypeExpr, arg: &Expr) -> Result<Operand, EvalError> {
        if let Some(id) = self.lookup_type(t) {
            return self.convert_to(id, arg);
        }
        // `(*T)(addr)` even when DWARF has no `*T` entry (older toolchains).
        if let TypeExpr::Pointer(inner) = t {
            if self.lookup_type(inner).is_some() {
                let op = self.operand(arg)?;
                let addr = self.int_of(&op)? as u64;
                return Ok(Operand::Computed(Value {
                    display: None,
                    composite_target: false,
                    type_name: t.to_string(),
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
            name: t.to_string(),
            suggestions: Vec::new(),
        })
    }

    fn convert_to(&self, t: TypeId, arg: &Expr) -> Result<Operand, EvalError> {
        let op = self.operand(arg)?;
        let target = self.prog.underlying(t).1;
        match (&target.kind, op) {
            (TypeKind::Pointer { .. } | TypeKind::UnsafePointer, Operand::Computed(v)) => {
                let addr = match v.kind {
                    ValueKind::Int(i) => i as u64,
                    ValueKind::Uint(u) | ValueKind::UnsafePointer(u) => u,
                    ValueKind::Pointer { addr, .. } => addr,
                    _ => {
                        return Err(EvalError::Type(format!(
                            "cannot convert {} to {}",
                            v.type_name,
                            self.prog.ty(t).name
                        )))
                    }
                };
                Ok(Operand::Bytes(t, addr.to_le_bytes().to_vec()))
            }
            (_, Operand::Computed(v)) => Ok(Operand::Computed(coerce(self.prog, v, t))),
            (_, Operand::Place(src, addr)) => {
                let (ss, ts) = (self.prog.underlying(src).1.size, target.size);
                if ss != ts && !is_numeric(&target.kind) {
                    return Err(EvalError::Type(format!(
                        "cannot convert {} ({ss} bytes) to {} ({ts} bytes)",
                        self.prog.ty(src).name,
                        self.prog.ty(t).name
                    )));
                }
                if ss == ts {
                    return Ok(Operand::Place(t, addr));
                }
                let v = self.scalar(&Operand::Place(src, addr))?;
                Ok(Operand::Computed(coerce(self.prog, v, t)))
            }
            (_, Operand::Bytes(_, b)) => Ok(Operand::Bytes(t, b)),
        }
    }

    fn composite(&self, t: &Expr, fields: &[(Option<String>, Expr)]) -> Result<Operand, EvalError> {
        let name = name_chain(t).map(|c| c.join(".")).unwrap_or_default();
        let ty = self
            .prog
            .dwarf
            .type_by_name(&name)
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
                Some((_, (_, e))) => match self.operand(e)? {
                    Operand::Computed(v) => coerce(self.prog, v, f.ty),
                    other => self.materialize(other, LoadConfig::canonical()),
                },
                None => zero_value(self.prog, f.ty),
            };
            out.push((f.name.clone(), v));
        }
        Ok(Operand::Computed(Value {
            display: None,
            composite_target: false,
            type_name: name,
            addr: None,
            kind: ValueKind::Struct {
                total: out.len(),
                fields: out,
            },
        }))
    }
}

fn unreachable_computed<T>() -> Result<T, EvalError> {
    Err(EvalError::Type("not in memory".into()))
}

fn is_numeric(k: &TypeKind) -> bool {
    matches!(
        k,
        TypeKind::Int | TypeKind::Uint | TypeKind::Uintptr | TypeKind::Float
    )
}

fn const_int(i: i128) -> Value {
    Value {
        display: None,
        composite_target: false,
        type_name: "int".into(),
        addr: None,
        kind: match i64::try_from(i) {
            Ok(v) => ValueKind::Int(v),
            Err(_) => ValueKind::Uint(i as u64),
        },
    }
}

/// Gives a constant the representation of type `t` (so a key `3` compares
/// equal to a `uint8` key 3, `"x"` to a named string type, etc.).
fn coerce(prog: &Program<'_>, v: Value, t: TypeId) -> Value {
    let (_, under) = prog.underlying(t);
    let type_name = prog.ty(t).name.clone();
    let kind = match (&under.kind, v.kind) {
        (TypeKind::Int, ValueKind::Int(i)) => ValueKind::Int(i),
        (TypeKind::Int, ValueKind::Uint(u)) => ValueKind::Int(u as i64),
        (TypeKind::Uint | TypeKind::Uintptr, ValueKind::Int(i)) => ValueKind::Uint(i as u64),
        (TypeKind::Uint | TypeKind::Uintptr, ValueKind::Uint(u)) => ValueKind::Uint(u),
        (TypeKind::Float, ValueKind::Int(i)) => ValueKind::Float {
            value: i as f64,
            bits: (under.size * 8) as u8,
        },
        (TypeKind::Float, ValueKind::Float { value, .. }) => ValueKind::Float {
            value: if under.size == 4 {
                f64::from(value as f32)
            } else {
                value
            },
            bits: (under.size * 8) as u8,
        },
        (TypeKind::Int, ValueKind::Float { value, .. }) => ValueKind::Int(value as i64),
        (_, other) => other,
    };
    Value {
        display: None,
        composite_target: false,
        type_name,
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
    Value {
        display: None,
        composite_target: false,
        type_name: prog.ty(t).name.clone(),
        addr: None,
        kind,
    }
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
    fn distance() {
        assert_eq!(levenshtein("main.cfx", "main.cfg"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
    }
}
