//! Stack maps and stack objects read from real binaries of every supported
//! toolchain, against the compiler's own assembly listing (`-gcflags=-S`):
//! it names the `gclocals·…` symbol of each function's FUNCDATA 0 and 1
//! and dumps its bytes, prints `PCDATA $1` (the stack map index) before
//! every call, and dumps `F.stkobj` with the `runtime.gcbits.…` symbol of
//! each record's mask as a relocation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use super::fixtures::{go_command, VERSIONS};
use super::*;
use crate::binary::Binary;

/// The program: pointer and scalar locals and arguments, stack arguments
/// (more than nine integer arguments), and address-taken locals and
/// arguments that do not escape (stack objects).
const PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
)

type pair struct {
	p *int
	n int
	q *string
}

var sink any

//go:noinline
func look(p *pair) int {
	if p.p != nil {
		return *p.p + p.n
	}
	return p.n
}

//go:noinline
func use(x *int) int { return *x }

//go:noinline
func many(a, b, c, d, e, f, g, h, i, j, k, l *int, m int) int {
	return use(a) + use(b) + use(c) + use(d) + use(e) + use(f) + use(g) + use(h) + use(i) + use(j) + use(k) + use(l) + m
}

//go:noinline
func holder(a *int, s string, n int) int {
	x := new(int)
	*x = n
	pr := pair{p: x, n: n, q: &s}
	r := look(&pr)
	r += use(a)
	sink = x
	r += many(a, x, a, x, a, x, a, x, a, x, a, x, n)
	return r + use(x)
}

func main() {
	v := 3
	fmt.Fprintln(os.Stderr, holder(&v, "s", len(os.Args)))
}
"#;

/// Functions of [`PROGRAM`] checked.
const FUNCS: [&str; 5] = [
    "main.look",
    "main.use",
    "main.many",
    "main.holder",
    "main.main",
];

/// What the listing says of one function.
#[derive(Debug, Default)]
struct Listed {
    /// FUNCDATA index → symbol.
    funcdata: HashMap<u32, String>,
    /// (offset of the instruction after a CALL, PCDATA $1 in force at the CALL).
    calls: Vec<(u64, i32)>,
}

/// The parsed listing.
#[derive(Debug, Default)]
struct Listing {
    funcs: HashMap<String, Listed>,
    /// Data symbol → bytes.
    data: HashMap<String, Vec<u8>>,
    /// Data symbol → (offset, target symbol) relocations.
    rels: HashMap<String, Vec<(usize, String)>>,
}

fn parse_listing(text: &str) -> Listing {
    let mut out = Listing::default();
    let mut func: Option<String> = None;
    let mut data: Option<String> = None;
    let mut stackmap_index = -1;
    // (call offset) waiting for the next instruction's offset.
    let mut pending_call: Option<i32> = None;
    let mut func_size = 0u64;
    let flush = |out: &mut Listing, func: &Option<String>, pending: &mut Option<i32>, end: u64| {
        if let (Some(f), Some(idx)) = (func, pending.take()) {
            out.funcs
                .entry(f.clone())
                .or_default()
                .calls
                .push((end, idx));
        }
    };
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            flush(&mut out, &func, &mut pending_call, func_size);
            func = None;
            data = None;
            if let Some((name, rest)) = line.split_once(" STEXT") {
                func = Some(name.to_string());
                stackmap_index = -1;
                func_size = rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("size="))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                out.funcs.entry(name.to_string()).or_default();
            } else if let Some((name, _)) = line.split_once(" SRODATA") {
                data = Some(name.to_string());
                out.data.entry(name.to_string()).or_default();
            }
            continue;
        }
        let t = line.trim_start();
        if let Some(name) = &data {
            if let Some(rel) = t.strip_prefix("rel ") {
                let mut parts = rel.split_whitespace();
                let off = parts
                    .next()
                    .and_then(|p| p.split('+').next())
                    .and_then(|p| p.parse().ok())
                    .expect("rel offset");
                let target = parts.nth(1).expect("rel target").to_string();
                out.rels
                    .entry(name.clone())
                    .or_default()
                    .push((off, target));
            } else if t.starts_with("0x") {
                let (head, _) = t.split_once("  ").unwrap_or((t, ""));
                let bytes = out.data.get_mut(name).expect("symbol seen");
                for b in head.split_whitespace().skip(1) {
                    bytes.push(u8::from_str_radix(b, 16).expect("hex byte"));
                }
            }
            continue;
        }
        let Some(f) = func.clone() else { continue };
        let fields: Vec<&str> = t.split('\t').collect();
        if fields.len() < 2 {
            continue;
        }
        let Some(off) = fields[0]
            .split_whitespace()
            .next()
            .and_then(|o| u64::from_str_radix(o.trim_start_matches("0x"), 16).ok())
        else {
            continue;
        };
        let op = fields[1];
        let arg = fields.get(2).copied().unwrap_or("");
        match op {
            "FUNCDATA" | "PCDATA" => {
                let (idx, val) = arg.split_once(", ").expect("pseudo-op operands");
                let idx: u32 = idx.trim_start_matches('$').parse().expect("index");
                if op == "FUNCDATA" {
                    let sym = val.trim_end_matches("(SB)").to_string();
                    out.funcs.entry(f).or_default().funcdata.insert(idx, sym);
                } else if idx == pcdata::STACK_MAP_INDEX {
                    stackmap_index = val.trim_start_matches('$').parse().expect("value");
                }
            }
            _ => {
                // A real instruction: it ends any call before it.
                if pending_call.is_some() {
                    flush(&mut out, &func, &mut pending_call, off);
                }
                if op == "CALL" {
                    pending_call = Some(stackmap_index);
                }
            }
        }
    }
    flush(&mut out, &func, &mut pending_call, func_size);
    out
}

struct Built {
    binary: PathBuf,
    listing: Listing,
}

fn build(version: &str) -> Built {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    PROGRAM.hash(&mut h);
    let dir = std::env::temp_dir().join(format!(
        "rdlv-stackmap-fixture-{:016x}/go{version}",
        h.finish()
    ));
    std::fs::create_dir_all(&dir).expect("fixture dir");
    for (name, text) in [("go.mod", "module smfx\n\ngo 1.21\n"), ("main.go", PROGRAM)] {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            std::fs::write(&path, text).expect("write fixture source");
        }
    }
    let binary = dir.join("prog");
    let listing = dir.join("listing.txt");
    if !binary.exists() || !listing.exists() {
        let go = go_command(version);
        let tmp = dir.join(format!("prog.tmp{}", std::process::id()));
        let out = Command::new(&go)
            .current_dir(&dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", "0")
            .args(["build", "-gcflags=-S", "-o"])
            .arg(&tmp)
            .arg(".")
            .output()
            .expect("run go build");
        assert!(
            out.status.success(),
            "go{version} build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ltmp = dir.join(format!("listing.tmp{}", std::process::id()));
        std::fs::write(&ltmp, &out.stderr).expect("write listing");
        std::fs::rename(&ltmp, &listing).expect("listing into place");
        std::fs::rename(&tmp, &binary).expect("binary into place");
    }
    let text = std::fs::read_to_string(&listing).expect("read listing");
    Built {
        binary,
        listing: parse_listing(&text),
    }
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The mask bytes a `runtime.gcbits.HEX+0` relocation target names, when
/// the name spells them out.
fn gcbits_mask(target: &str) -> Option<Vec<u8>> {
    let hex = target.strip_prefix("runtime.gcbits.")?.strip_suffix("+0")?;
    if hex.len() % 2 != 0 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn check_version(version: &str) {
    let built = build(version);
    let bytes = std::fs::read(&built.binary).expect("read binary");
    let bin = Binary::parse(Arc::from(bytes.into_boxed_slice())).expect("parse binary");
    let tab = Pclntab::new(&bin, 0).expect("pclntab");
    let mut calls_checked = 0;
    let mut objects_checked = 0;
    for name in FUNCS {
        let what = format!("Go {version} {name}");
        let listed = built
            .listing
            .funcs
            .get(name)
            .unwrap_or_else(|| panic!("{what}: not in the listing"));
        let f = tab
            .func_by_name(name)
            .unwrap_or_else(|| panic!("{what}: not in the pclntab"));
        for (index, map) in [
            (funcdata::ARGS_POINTER_MAPS, f.args_pointer_maps()),
            (funcdata::LOCALS_POINTER_MAPS, f.locals_pointer_maps()),
        ] {
            let map = map.unwrap_or_else(|e| panic!("{what}: {e}"));
            let Some(sym) = listed.funcdata.get(&index) else {
                assert!(map.is_none(), "{what}: FUNCDATA {index} not in the listing");
                continue;
            };
            let want = &built.listing.data[sym];
            let map = map.unwrap_or_else(|| panic!("{what}: FUNCDATA {index} missing"));
            assert_eq!(map.n as i32, i32_at(want, 0), "{what}: {sym} n");
            assert_eq!(map.nbit as i32, i32_at(want, 4), "{what}: {sym} nbit");
            let per = map.nbit.div_ceil(8) as usize;
            for i in 0..map.n {
                let start = 8 + i as usize * per;
                // The listing omits trailing zero bytes of a symbol.
                let mut expect = want.get(start..).unwrap_or(&[]).to_vec();
                expect.resize(per.max(expect.len()), 0);
                expect.truncate(per);
                let got = map
                    .bitmap(i as i32, "test", name)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(got.bytes, &expect[..], "{what}: {sym} bitmap {i}");
            }
            assert!(map.bitmap(map.n as i32, "test", name).is_err());
            assert!(map.bitmap(-1, "test", name).is_err());
        }
        for &(ret, idx) in &listed.calls {
            let got = f.stack_map_index(f.entry() + ret);
            assert_eq!(got, idx.max(0), "{what}: stack map index before +{ret:#x}");
            calls_checked += 1;
        }
        let objects = f.stack_objects().unwrap_or_else(|e| panic!("{what}: {e}"));
        match listed.funcdata.get(&funcdata::STACK_OBJECTS) {
            None => assert!(
                objects.is_empty(),
                "{what}: stack objects not in the listing"
            ),
            Some(sym) => {
                let want = &built.listing.data[sym];
                let mut padded = want.clone();
                padded.resize(8 + objects.len() * 16, 0);
                assert_eq!(
                    u64::from_le_bytes(padded[..8].try_into().unwrap()),
                    objects.len() as u64,
                    "{what}: stack object count"
                );
                let rels = built.listing.rels.get(sym).cloned().unwrap_or_default();
                for (i, o) in objects.iter().enumerate() {
                    let at = 8 + i * 16;
                    assert_eq!(o.off, i32_at(&padded, at), "{what}: object {i} off");
                    assert_eq!(
                        o.size as i32,
                        i32_at(&padded, at + 4),
                        "{what}: object {i} size"
                    );
                    assert_eq!(
                        o.ptrdata as i32,
                        i32_at(&padded, at + 8).abs(),
                        "{what}: object {i} ptrdata"
                    );
                    let target = rels
                        .iter()
                        .find(|(off, _)| *off == at + 12)
                        .map(|(_, t)| t.as_str())
                        .unwrap_or_else(|| panic!("{what}: no gcdata relocation for object {i}"));
                    let Some(mask) = gcbits_mask(target) else {
                        continue;
                    };
                    let words = o.ptrdata.div_ceil(8);
                    let got = tab
                        .rodata_bytes(o.gcdataoff, words.div_ceil(8) as usize)
                        .unwrap_or_else(|| panic!("{what}: object {i} mask not readable"));
                    for w in 0..words {
                        let bit = |m: &[u8]| {
                            m.get((w / 8) as usize)
                                .is_some_and(|b| b >> (w % 8) & 1 != 0)
                        };
                        assert_eq!(
                            bit(got),
                            bit(&mask),
                            "{what}: object {i} mask word {w} ({target})"
                        );
                    }
                    objects_checked += 1;
                }
            }
        }
    }
    assert!(
        calls_checked >= 20,
        "Go {version}: only {calls_checked} calls checked"
    );
    // holder has `pr` and the address-taken argument `s`; main has `v`.
    assert!(
        objects_checked >= 3,
        "Go {version}: only {objects_checked} stack objects checked"
    );
    // holder's pair: pointer words 0 and 2, scalar word 1.
    let holder = tab.func_by_name("main.holder").expect("holder");
    let objs = holder.stack_objects().expect("holder objects");
    let pr = objs
        .iter()
        .find(|o| o.off < 0 && o.size == 24)
        .expect("pr is a stack object");
    let mask = tab.rodata_bytes(pr.gcdataoff, 1).expect("pr mask");
    assert_eq!(mask[0] & 0b111, 0b101, "Go {version}: mask of pair");
    // many takes its last four arguments on the stack: three pointers then an int.
    let many = tab.func_by_name("main.many").expect("many");
    let args = many
        .args_pointer_maps()
        .expect("many args")
        .expect("has args map");
    assert!(
        args.nbit >= 4,
        "Go {version}: many's args map has {} bits",
        args.nbit
    );
}

#[test]
fn stackmap_parse_rejects_bad_headers() {
    assert!(matches!(
        StackMap::parse(&[1, 0, 0], "t", "f"),
        Err(StackMapError::Truncated { .. })
    ));
    // n = -1.
    let neg = [0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0];
    assert!(matches!(
        StackMap::parse(&neg, "t", "f"),
        Err(StackMapError::OutOfRange { field: "n", .. })
    ));
    // nbit above the bound.
    let mut big = vec![1, 0, 0, 0];
    big.extend_from_slice(&(MAX_STACKMAP_BITS + 1).to_le_bytes());
    assert!(matches!(
        StackMap::parse(&big, "t", "f"),
        Err(StackMapError::OutOfRange { field: "nbit", .. })
    ));
    // Two bitmaps of 9 bits (2 bytes each) but only 3 bytes present.
    let short = [2, 0, 0, 0, 9, 0, 0, 0, 0xff, 0x01, 0x02];
    assert!(matches!(
        StackMap::parse(&short, "t", "f"),
        Err(StackMapError::Truncated { need: 12, .. })
    ));
    let ok = [2, 0, 0, 0, 9, 0, 0, 0, 0x81, 0x01, 0x02, 0x00, 0xee];
    let m = StackMap::parse(&ok, "t", "f").expect("parses");
    assert_eq!((m.n, m.nbit), (2, 9));
    let b0 = m.bitmap(0, "t", "f").expect("bitmap 0");
    assert_eq!(b0.ones().collect::<Vec<_>>(), vec![0, 7, 8]);
    let b1 = m.bitmap(1, "t", "f").expect("bitmap 1");
    assert_eq!(b1.ones().collect::<Vec<_>>(), vec![1]);
    assert!(!b1.bit(9) && !b1.bit(1000));
    assert!(matches!(
        m.bitmap(2, "t", "f"),
        Err(StackMapError::BadIndex { index: 2, n: 2, .. })
    ));
}

#[test]
fn stack_objects_parse_rejects_bad_tables() {
    assert!(matches!(
        parse_stack_objects(&[1, 0], "f"),
        Err(StackMapError::Truncated { .. })
    ));
    let mut huge = (MAX_STACK_OBJECTS + 1).to_le_bytes().to_vec();
    huge.resize(64, 0);
    assert!(matches!(
        parse_stack_objects(&huge, "f"),
        Err(StackMapError::OutOfRange { field: "count", .. })
    ));
    let mut one = 1u64.to_le_bytes().to_vec();
    for v in [-24i32, 24, -16, 0x40] {
        one.extend_from_slice(&v.to_le_bytes());
    }
    let objs = parse_stack_objects(&one, "f").expect("parses");
    assert_eq!(
        objs,
        vec![StackObjectRecord {
            off: -24,
            size: 24,
            ptrdata: 16,
            gc_prog: true,
            gcdataoff: 0x40
        }]
    );
    assert_eq!(objs[0].addr(0x1000, 0x2000), Some(0x1000 - 24));
    assert!(matches!(
        parse_stack_objects(&one[..20], "f"),
        Err(StackMapError::Truncated { need: 24, .. })
    ));
    let mut neg = 1u64.to_le_bytes().to_vec();
    for v in [8i32, -1, 0, 0] {
        neg.extend_from_slice(&v.to_le_bytes());
    }
    assert!(matches!(
        parse_stack_objects(&neg, "f"),
        Err(StackMapError::OutOfRange { field: "size", .. })
    ));
}

macro_rules! per_version {
    ($($name:ident => $idx:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            check_version(VERSIONS[$idx]);
        }
    )*};
}

per_version!(
    stackmaps_match_the_compiler_listing_go1_21 => 0,
    stackmaps_match_the_compiler_listing_go1_22 => 1,
    stackmaps_match_the_compiler_listing_go1_23 => 2,
    stackmaps_match_the_compiler_listing_go1_24 => 3,
    stackmaps_match_the_compiler_listing_go1_25 => 4,
    stackmaps_match_the_compiler_listing_go1_26 => 5,
    stackmaps_match_the_compiler_listing_go1_27 => 6,
);
