//! Tests of the pclntab reader (and of [`crate::binary`] and
//! [`crate::disasm`] on real executables) against the Go toolchains' own
//! answers, for every supported Go version and link mode.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use super::fixtures::{self, Fixture, Variant, INLINED_CALL_LINE, OUTER_CALL_LINE, PROGRAM};
use super::*;
use crate::binary::Binary;
use crate::disasm::{func_rip_refs, rip_relative_refs, RipAccess};

fn load(path: &std::path::Path) -> Binary {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Binary::parse(Arc::from(bytes.into_boxed_slice()))
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn table(bin: &Binary, bias: u64, what: &str) -> Pclntab {
    Pclntab::new(bin, bias).unwrap_or_else(|e| panic!("{what}: pclntab: {e}"))
}

/// The GNU build id as `readelf -n` prints it.
fn readelf_gnu_build_id(path: &std::path::Path) -> Option<String> {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(path)
        .output()
        .expect("readelf is installed (binutils)");
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Build ID: ")
            .map(|s| s.trim().to_string())
    })
}

/// `funcNameForPrint`: the runtime shows generic shapes as `[...]`.
fn name_for_print(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for ch in name.chars() {
        match ch {
            '[' => {
                if depth == 0 {
                    out.push_str("[...]");
                }
                depth += 1;
            }
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out
}

fn check_binary_facts(fx: &Fixture) {
    let want_minor: u32 = fx.version.split('.').nth(1).unwrap().parse().unwrap();
    let want_patch: u32 = fx.version.split('.').nth(2).unwrap().parse().unwrap();
    for variant in Variant::ALL {
        let path = fx.binary(variant);
        let what = format!("go{} {variant:?}", fx.version);
        let bin = load(path);
        let v = bin
            .go_version()
            .unwrap_or_else(|| panic!("{what}: no Go version"));
        assert_eq!(v.raw, format!("go{}", fx.version), "{what}");
        assert_eq!(
            (v.major, v.minor, v.patch),
            (1, want_minor, want_patch),
            "{what}"
        );
        let buildid = fx.go_tool(&["buildid", path.to_str().unwrap()], "");
        assert_eq!(
            bin.go_build_id(),
            Some(buildid.trim()),
            "{what}: Go build id"
        );
        assert_eq!(
            bin.gnu_build_id().map(str::to_string),
            readelf_gnu_build_id(path),
            "{what}: GNU build id"
        );
        assert_eq!(bin.is_pie(), variant.pie(), "{what}: PIE");
        assert_eq!(bin.has_dwarf(), !variant.stripped(), "{what}: DWARF");
        assert_eq!(
            bin.symbol("runtime.main").is_some(),
            !variant.stripped(),
            "{what}: symbols"
        );
        let modinfo = bin
            .go_modinfo()
            .unwrap_or_else(|| panic!("{what}: no modinfo"));
        assert!(
            modinfo.starts_with("path\tfixture\n"),
            "{what}: modinfo {modinfo:?}"
        );
        let cgo = if matches!(variant, Variant::Default | Variant::Stripped | Variant::Pie) {
            "0"
        } else {
            "1"
        };
        assert!(
            modinfo.contains(&format!("build\tCGO_ENABLED={cgo}\n")),
            "{what}: modinfo {modinfo:?}"
        );
        let runtime_base = 0x5555_5555_4000u64;
        if variant.pie() {
            assert_eq!(
                bin.load_bias(bin.entry() + runtime_base),
                runtime_base,
                "{what}"
            );
        } else {
            assert_eq!(bin.load_bias(bin.entry() + runtime_base), 0, "{what}");
        }
        // Entry code read through the segments equals the bytes of .text.
        let text = bin.section_info(".text").expect(".text exists").clone();
        let entry_file = (text.file_offset + (bin.entry() - text.addr)) as usize;
        assert_eq!(
            bin.read_static(bin.entry(), 16),
            bin.data().expect("data").get(entry_file..entry_file + 16),
            "{what}: read_static"
        );
        if !variant.stripped() {
            // .debug_info is zlib-compressed: decompression must yield a DWARF unit header.
            let info = bin.section_info(".debug_info").expect("debug_info");
            assert_ne!(info.flags & object::elf::SHF_COMPRESSED.0, 0, "{what}");
            let (_, bytes) = bin
                .section(".debug_info")
                .expect("decompressed .debug_info");
            assert!(
                bytes.len() as u64 > info.size,
                "{what}: decompressed is larger"
            );
            let version = u16::from_le_bytes([bytes[4], bytes[5]]);
            let want = if want_minor >= 25 { 5 } else { 4 };
            assert_eq!(version, want, "{what}: DWARF version");
        }
    }
}

/// Functions and PCs to compare: every entry, the middle and the last byte.
fn sample_pcs(tab: &Pclntab) -> Vec<u64> {
    let mut pcs = Vec::new();
    for f in tab.funcs() {
        pcs.push(f.entry());
        if f.end() > f.entry() + 2 {
            pcs.push(f.entry() + (f.end() - f.entry()) / 2);
            pcs.push(f.end() - 1);
        }
    }
    pcs
}

fn check_against_addr2line(fx: &Fixture) {
    for variant in Variant::ALL.into_iter().filter(|v| !v.stripped()) {
        let path = fx.binary(variant);
        let what = format!("go{} {variant:?}", fx.version);
        let bin = load(path);
        let tab = table(&bin, 0, &what);
        assert!(
            (1000..20000).contains(&tab.len()),
            "{what}: implausible function count {}",
            tab.len()
        );
        // Entries agree with .symtab wherever a function has a symbol (a name
        // may belong to several functions: a body and its ABI wrapper).
        let (mut with_symbol, mut agree) = (0usize, 0usize);
        for f in tab.funcs() {
            if let Some(sym) = bin.symbol(f.name()) {
                with_symbol += 1;
                agree += usize::from(tab.funcs_named(f.name()).any(|g| g.entry() == sym.addr));
            }
        }
        assert_eq!(agree, with_symbol, "{what}: entries vs .symtab");
        assert!(
            with_symbol * 10 >= tab.len() * 9,
            "{what}: {with_symbol} of {} have symbols",
            tab.len()
        );
        // The body, not the ABI wrapper, is what a lookup by name gives.
        for name in ["runtime.schedinit", "runtime.newproc"] {
            let all: Vec<Func<'_>> = tab.funcs_named(name).collect();
            assert!(!all.is_empty(), "{what}: {name}");
            let body = tab.func_by_name(name).expect("found");
            assert_eq!(
                body.entry(),
                bin.symbol(name).expect("symbol").addr,
                "{what}: {name}"
            );
            assert!(all.iter().all(|f| f.size() <= body.size()));
        }
        let md = tab
            .moduledata()
            .unwrap_or_else(|| panic!("{what}: no moduledata"));
        let sym = |n: &str| {
            bin.symbol(n)
                .unwrap_or_else(|| panic!("{what}: no {n}"))
                .addr
        };
        assert_eq!(md.addr, sym("runtime.firstmoduledata"), "{what}");
        assert_eq!(md.text, sym("runtime.text"), "{what}");
        assert_eq!(md.etext, sym("runtime.etext"), "{what}");
        assert_eq!(md.types, sym("runtime.types"), "{what}");
        assert_eq!(md.etypes, sym("runtime.etypes"), "{what}");
        assert_eq!(md.noptrdata, sym("runtime.noptrdata"), "{what}");
        assert_eq!(md.end, sym("runtime.end"), "{what}");
        assert_eq!(Some(md.gofunc), tab.gofunc(), "{what}");
        assert_eq!(md.gofunc, sym("go:func.*"), "{what}: gofunc");
        assert_eq!(tab.text_start(), md.text, "{what}: text start");
        let minor = bin.go_version().unwrap().minor;
        if minor <= 26 {
            let (typelinks, ntypes) = md.typelinks.expect("typelinks");
            assert_eq!(typelinks, sym("runtime.typelink"), "{what}: typelinks");
            assert!(ntypes > 10, "{what}: {ntypes} typelinks");
            let (itablinks, _) = md.itablinks.expect("itablinks");
            assert_eq!(itablinks, sym("runtime.itablink"), "{what}: itablinks");
        } else {
            assert_eq!(md.typelinks, None, "{what}");
        }

        let pcs = sample_pcs(&tab);
        let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
        let out = fx.go_tool(&["addr2line", path.to_str().unwrap()], &input);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2 * pcs.len(), "{what}: addr2line output");
        let mut compared = 0usize;
        for (i, &pc) in pcs.iter().enumerate() {
            let (want_name, want_loc) = (lines[2 * i], lines[2 * i + 1]);
            let f = tab
                .find_func(pc)
                .unwrap_or_else(|| panic!("{what}: no func at {pc:#x}"));
            assert_eq!(f.name(), want_name, "{what}: name at {pc:#x}");
            match f.file_line(pc) {
                Some((file, line)) => {
                    assert_eq!(
                        format!("{file}:{line}"),
                        want_loc,
                        "{what}: {want_name} at {pc:#x}"
                    )
                }
                // Padding after the last instruction, and linker markers,
                // have no line; addr2line then prints an empty file and a
                // line <= 0.
                None => {
                    let line = want_loc
                        .strip_prefix(':')
                        .and_then(|l| l.parse::<i64>().ok());
                    assert!(
                        line.is_some_and(|l| l <= 0),
                        "{what}: {want_name} at {pc:#x}: {want_loc}"
                    );
                }
            }
            compared += 1;
            // At the entry no frame is allocated yet.
            // (Linker markers such as go:textfipsstart have no pcsp table.)
            if pc == f.entry() && !f.name().starts_with("go:") {
                assert_eq!(f.sp_delta(pc), Some(0), "{what}: {want_name} sp at entry");
            }
        }
        assert!(compared > 3000, "{what}: only {compared} PCs compared");
        let goexit = tab.func_by_name("runtime.goexit").expect("runtime.goexit");
        assert_ne!(
            goexit.flag() & func_flag::TOP_FRAME,
            0,
            "{what}: goexit is a top frame"
        );
        let main = tab.func_by_name("main.main").expect("main.main");
        assert_eq!(
            tab.find_func(main.entry()).map(|f| f.name()),
            Some("main.main")
        );
        assert!(main.sp_delta(main.end() - 1).is_some() || main.end() - main.entry() > 1);
        assert!(tab.func_by_name("main.no_such_function").is_none());
        assert!(tab.find_func(tab.text_start().wrapping_sub(1)).is_none());
        assert!(tab.find_func(tab.text_end()).is_none());
        // Argument info exists for a function with arguments.
        let outer = tab.func_by_name("main.outer").expect("main.outer");
        let arg_info = outer
            .funcdata_bytes(funcdata::ARG_INFO, 64)
            .unwrap_or_else(|| panic!("{what}: main.outer has no ArgInfo"));
        // One int argument at offset 0, size 8, then the end marker 0xff.
        assert_eq!(
            &arg_info[..3],
            &[0, 8, 0xff],
            "{what}: ArgInfo of main.outer"
        );
    }
}

/// Everything a function exposes at one PC, for comparing two tables.
fn describe(f: &Func<'_>, pc: u64) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        f.file_line(pc),
        f.sp_delta(pc),
        f.pcdata(pcdata::UNSAFE_POINT, pc),
        f.pcdata(pcdata::STACK_MAP_INDEX, pc),
        f.pcdata(pcdata::INL_TREE_INDEX, pc),
        f.frames_at(pc)
    )
}

fn func_summary(f: &Func<'_>) -> String {
    let funcdata: Vec<Option<&[u8]>> = (0..8).map(|i| f.funcdata_bytes(i, 32)).collect();
    format!(
        "{} {:#x}..{:#x} flag={} id={} args={} defer={} line={} npc={} nfd={} {:?}",
        f.name(),
        f.entry(),
        f.end(),
        f.flag(),
        f.func_id(),
        f.args_size(),
        f.deferreturn(),
        f.start_line(),
        f.npcdata(),
        f.nfuncdata(),
        funcdata
    )
}

/// Maps link-time address `addr` of `from` to the same place in `to`,
/// through the allocated section containing it: a stripped build has a longer
/// `.go.buildinfo` (its flags are recorded), which shifts the data after it.
fn rebase(from: &Binary, to: &Binary, addr: u64) -> Option<u64> {
    let inside = section_containing(from, addr)?;
    let twin = to.section_info(&inside.name)?;
    Some(twin.addr + (addr - inside.addr))
}

/// The allocated section holding `addr`, or else the one `addr` is the end of.
fn section_containing(bin: &Binary, addr: u64) -> Option<&crate::binary::Section> {
    let alloc = |s: &&crate::binary::Section| s.flags & 2 != 0 && s.addr != 0;
    let sections = bin.sections();
    sections
        .iter()
        .filter(alloc)
        .find(|s| addr >= s.addr && addr < s.addr + s.size)
        .or_else(|| {
            sections
                .iter()
                .filter(alloc)
                .find(|s| addr == s.addr + s.size)
        })
}

fn check_stripped_matches_unstripped(fx: &Fixture) {
    for variant in Variant::ALL.into_iter().filter(|v| v.stripped()) {
        let what = format!("go{} {variant:?}", fx.version);
        let stripped = load(fx.binary(variant));
        let full = load(fx.binary(variant.unstripped_twin()));
        assert!(
            stripped.symbols().is_empty(),
            "{what}: stripped has symbols"
        );
        let bias = if variant.pie() { 0x7f00_0000_0000 } else { 0 };
        let a = table(&stripped, bias, &what);
        let b = table(&full, bias, &what);
        assert_eq!(a.len(), b.len(), "{what}: function count");
        assert_eq!(a.text_start(), b.text_start(), "{what}");
        assert_eq!(stripped.go_version(), full.go_version(), "{what}");
        // Stripping changes .go.buildinfo and the modinfo string in .rodata,
        // so data addresses move; text does not. Data pointers must land in
        // the section of the same name.
        let section_of = |bin: &Binary, addr: u64| {
            let addr = addr - bias;
            section_containing(bin, addr).map(|s| s.name.clone())
        };
        let (ma, mb) = (
            a.moduledata().expect("moduledata"),
            b.moduledata().expect("moduledata"),
        );
        let fields = |m: &ModuleData| {
            [
                m.addr,
                m.pc_header,
                m.findfunctab,
                m.noptrdata,
                m.enoptrdata,
                m.data,
                m.edata,
                m.bss,
                m.ebss,
                m.noptrbss,
                m.enoptrbss,
                m.end,
                m.gcdata,
                m.gcbss,
                m.types,
                m.etypes,
                m.rodata,
                m.gofunc,
            ]
        };
        for (i, (x, y)) in fields(ma).into_iter().zip(fields(mb)).enumerate() {
            let (sx, sy) = (section_of(&stripped, x), section_of(&full, y));
            assert!(
                sx.is_some() && sx == sy,
                "{what}: moduledata field #{i}: {sx:?} vs {sy:?}"
            );
        }
        assert_eq!(
            (ma.text, ma.etext, ma.minpc, ma.maxpc, ma.table_lens),
            (mb.text, mb.etext, mb.minpc, mb.maxpc, mb.table_lens),
            "{what}"
        );
        assert_eq!(
            ma.pc_header - bias,
            stripped
                .section_info(".gopclntab")
                .map_or(ma.pc_header - bias, |s| s.addr)
        );
        let mut pcs_compared = 0usize;
        for (fa, fb) in a.funcs().zip(b.funcs()) {
            assert_eq!(func_summary(&fa), func_summary(&fb), "{what}");
            for i in 0..8 {
                let (x, y) = (fa.funcdata_addr(i), fb.funcdata_addr(i));
                assert_eq!(
                    x.is_some(),
                    y.is_some(),
                    "{what}: {} funcdata {i}",
                    fa.name()
                );
                if let (Some(x), Some(y)) = (x, y) {
                    assert_eq!(
                        section_of(&stripped, x),
                        section_of(&full, y),
                        "{what}: {}",
                        fa.name()
                    );
                }
            }
            // Every 5th byte of each function (and its entry).
            for pc in (fa.entry()..fa.end()).step_by(5) {
                assert_eq!(
                    describe(&fa, pc),
                    describe(&fb, pc),
                    "{what}: {} at {pc:#x}",
                    fa.name()
                );
                pcs_compared += 1;
            }
        }
        assert!(
            pcs_compared > 50_000,
            "{what}: only {pcs_compared} PCs compared"
        );
    }
}

/// Parses the fixture's output: the runtime address of `main.marker` and,
/// per PC, the frames `runtime.CallersFrames` expands it into.
/// A frame as the fixture prints it: function, file, line.
type PrintedFrame = (String, String, u32);

fn run_fixture(path: &std::path::Path) -> (u64, Vec<(u64, Vec<PrintedFrame>)>) {
    let out = Command::new(path).output().expect("run fixture");
    assert!(out.status.success(), "{} failed", path.display());
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let mut marker = None;
    let mut groups: Vec<(u64, Vec<PrintedFrame>)> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["marker", addr] => marker = u64::from_str_radix(addr, 16).ok(),
            ["pc", pc, func, file, line] => {
                let pc = u64::from_str_radix(pc, 16).expect("hex pc");
                let frame = (
                    func.to_string(),
                    file.to_string(),
                    line.parse().expect("line"),
                );
                match groups.last_mut() {
                    Some((last, frames)) if *last == pc => frames.push(frame),
                    _ => groups.push((pc, vec![frame])),
                }
            }
            _ => panic!("unexpected fixture output line {line:?}"),
        }
    }
    (marker.expect("marker line"), groups)
}

fn check_runtime_frames(fx: &Fixture) {
    for variant in Variant::ALL {
        let what = format!("go{} {variant:?}", fx.version);
        let path = fx.binary(variant);
        let bin = load(path);
        let (marker, groups) = run_fixture(path);
        let link_marker = table(&bin, 0, &what)
            .func_by_name("main.marker")
            .expect("main.marker")
            .entry();
        let bias = marker.wrapping_sub(link_marker);
        if !variant.pie() {
            assert_eq!(bias, 0, "{what}: non-PIE has a load bias");
        }
        let tab = table(&bin, bias, &what);
        assert!(groups.len() >= 4, "{what}: only {} PCs", groups.len());
        // runtime.Callers lists one PC per logical frame: the return PC for
        // the innermost call of a physical frame, then one marker PC per
        // inlined parent; CallersFrames turns each into one frame at pc-1.
        let mut i = 0;
        while i < groups.len() {
            let (pc, _) = groups[i];
            let f = tab
                .find_func(pc)
                .unwrap_or_else(|| panic!("{what}: no func at {pc:#x}"));
            let expanded = f.frames_at(pc - 1);
            for (k, frame) in expanded.iter().enumerate() {
                let (runtime_pc, frames) = groups.get(i + k).unwrap_or_else(|| {
                    panic!("{what}: runtime has fewer frames than {expanded:?}")
                });
                let got = (name_for_print(&frame.name), frame.file.clone(), frame.line);
                assert_eq!(
                    frames.as_slice(),
                    &[got],
                    "{what}: frame {k} of {pc:#x} (runtime pc {runtime_pc:#x})"
                );
                assert_eq!(frame.inlined, k + 1 < expanded.len(), "{what}");
            }
            i += expanded.len();
        }
        // The first PC is the return from `callers` in inlinedHelper, inlined into outer.
        let (pc, _) = groups[0];
        let f = tab.find_func(pc).expect("func of first pc");
        assert_eq!(f.name(), "main.outer", "{what}");
        let frames = f.frames_at(pc - 1);
        let summary: Vec<(&str, u32, bool)> = frames
            .iter()
            .map(|fr| (fr.name.as_str(), fr.line, fr.inlined))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("main.inlinedHelper", INLINED_CALL_LINE, true),
                ("main.outer", OUTER_CALL_LINE, false)
            ],
            "{what}"
        );
        assert!(
            frames[0].file.ends_with("/main.go"),
            "{what}: {:?}",
            frames[0].file
        );
    }
}

fn check_disasm_allgadd(fx: &Fixture) {
    let mut per_variant = Vec::new();
    for variant in Variant::ALL {
        let what = format!("go{} {variant:?}", fx.version);
        let bin = load(fx.binary(variant));
        let tab = table(&bin, 0, &what);
        let f = tab
            .func_by_name("runtime.allgadd")
            .expect("runtime.allgadd");
        let code = bin
            .read_static(f.entry(), (f.end() - f.entry()) as usize)
            .expect("code of allgadd");
        let decoded = rip_relative_refs(code, f.entry());
        assert_eq!(
            decoded.decoded_len,
            code.len(),
            "{what}: allgadd not fully decoded"
        );
        let targets: BTreeSet<u64> = decoded.refs.iter().map(|r| r.target).collect();
        if !variant.stripped() {
            for name in ["runtime.allgs", "runtime.allglen"] {
                let sym = bin
                    .symbol(name)
                    .unwrap_or_else(|| panic!("{what}: no {name}"));
                assert!(
                    targets.contains(&sym.addr),
                    "{what}: {name} at {:#x} not among {targets:x?}",
                    sym.addr
                );
            }
        }
        // Decoder coverage over every function of the binary.
        let (mut full, mut total) = (0usize, 0usize);
        for f in tab.funcs() {
            if let Some(code) = bin.read_static(f.entry(), (f.end() - f.entry()) as usize) {
                total += 1;
                full += usize::from(rip_relative_refs(code, f.entry()).decoded_len == code.len());
            }
        }
        assert!(
            full * 1000 >= total * 999,
            "{what}: only {full} of {total} functions decode completely"
        );
        per_variant.push((variant, bin, decoded.refs));
    }
    // The stripped build references the same places (rebased to its layout).
    for (variant, bin, refs) in &per_variant {
        if variant.stripped() {
            let twin = variant.unstripped_twin();
            let (_, full, want) = per_variant.iter().find(|(v, _, _)| *v == twin).unwrap();
            let want: Vec<(u64, RipAccess, Option<u64>)> = want
                .iter()
                .map(|r| (r.insn_addr, r.access, rebase(full, bin, r.target)))
                .collect();
            let got: Vec<(u64, RipAccess, Option<u64>)> = refs
                .iter()
                .map(|r| (r.insn_addr, r.access, Some(r.target)))
                .collect();
            assert_eq!(
                got, want,
                "go{} {variant:?}: stripped refs differ",
                fx.version
            );
        }
    }
}

/// (instruction address, target) of every RIP-relative operand GNU objdump sees.
fn objdump_rip_refs(path: &std::path::Path) -> BTreeSet<(u64, u64)> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(path)
        .output()
        .expect("objdump is installed (binutils)");
    assert!(out.status.success(), "objdump failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains("(%rip)"))
        .filter_map(|l| {
            let (addr, rest) = l.trim_start().split_once(':')?;
            let target = rest.split_once('#')?.1.split_whitespace().next()?;
            Some((
                u64::from_str_radix(addr, 16).ok()?,
                u64::from_str_radix(target, 16).ok()?,
            ))
        })
        .collect()
}

/// Every function the decoder walks completely yields exactly the
/// RIP-relative operands GNU objdump finds in it.
fn check_disasm_against_objdump(fx: &Fixture) {
    let path = fx.binary(Variant::Default);
    let what = format!("go{} Default", fx.version);
    let bin = load(path);
    let tab = table(&bin, 0, &what);
    let want_all = objdump_rip_refs(path);
    assert!(
        want_all.len() > 1000,
        "{what}: objdump found {} refs",
        want_all.len()
    );
    let (mut funcs, mut refs) = (0usize, 0usize);
    for f in tab.funcs() {
        let Some(decoded) = func_rip_refs(&bin, &tab, &f) else {
            continue;
        };
        if decoded.decoded_len as u64 != f.size() {
            continue;
        }
        let got: BTreeSet<(u64, u64)> = decoded
            .refs
            .iter()
            .map(|r| (r.insn_addr, r.target))
            .collect();
        let want: BTreeSet<(u64, u64)> = want_all
            .range((f.entry(), 0)..(f.end(), 0))
            .copied()
            .collect();
        assert_eq!(got, want, "{what}: {}", f.name());
        funcs += 1;
        refs += got.len();
    }
    assert!(
        funcs * 1000 >= tab.len() * 999,
        "{what}: {funcs} of {} functions",
        tab.len()
    );
    assert!(
        refs * 1000 >= want_all.len() * 999,
        "{what}: {refs} of {} refs",
        want_all.len()
    );
}

/// Truncated and garbled pclntab bytes give errors or wrong answers, never panics.
fn check_corrupt_tables(fx: &Fixture) {
    let bin = load(fx.binary(Variant::Default));
    let good = table(&bin, 0, "default");
    let text = good.text_start();
    let sample: Vec<u64> = sample_pcs(&good).into_iter().step_by(7).collect();
    let start = bin
        .file_offset(good.moduledata().unwrap().pc_header)
        .unwrap() as usize;
    let pcln: Vec<u8> = bin.data().expect("data")[start..good.pclntable.end].to_vec();
    let exercise = |bytes: Vec<u8>| {
        let n = bytes.len();
        let layout = Layout {
            data: Arc::new(rdlv_format::FileImage::from_bytes(&bytes).expect("image")),
            header_off: 0,
            len: n,
            segments: Vec::new(),
            bias: 0,
            text_start_fallback: Some(text),
            moduledata: None,
            gofunc_fallback: None,
        };
        let Ok(tab) = Pclntab::assemble(layout) else {
            return false;
        };
        for &pc in &sample {
            if let Some(f) = tab.find_func(pc) {
                let _ = (f.name(), f.file_line(pc), f.sp_delta(pc), f.frames_at(pc));
                let _ = (f.pcdata(pcdata::INL_TREE_INDEX, pc), f.funcdata_bytes(0, 8));
            }
        }
        let _ = tab.func_by_name("main.main");
        true
    };
    for cut in (0..200).chain((200..pcln.len()).step_by(pcln.len() / 97)) {
        let ok = exercise(pcln[..cut].to_vec());
        if cut < 72 {
            assert!(!ok, "a {cut}-byte pclntab was accepted");
        }
    }
    assert!(exercise(pcln.clone()), "the intact table is rejected");
    let mut state = 0x9e37_79b9u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    for _round in 0..24 {
        let mut bytes = pcln.clone();
        for _ in 0..64 {
            let i = next() % bytes.len();
            bytes[i] = next() as u8;
        }
        exercise(bytes);
    }
    // A garbled header field is rejected outright.
    let mut bad = pcln.clone();
    bad[0] = 0;
    assert!(!exercise(bad));
    // Whole-binary garbling exercises the locate step too.
    for _round in 0..6 {
        let mut bytes = bin.data().expect("data").to_vec();
        for _ in 0..256 {
            let i = next() % bytes.len();
            bytes[i] = next() as u8;
        }
        if let Ok(b) = Binary::parse(Arc::from(bytes.into_boxed_slice())) {
            if let Ok(tab) = Pclntab::new(&b, 0) {
                for &pc in &sample {
                    if let Some(f) = tab.find_func(pc) {
                        let _ = (f.name(), f.file_line(pc), f.frames_at(pc));
                    }
                }
            }
        }
    }
}

/// The toolchain's own `go` command: a large, stripped, real-world binary
/// built by that Go release.
fn check_toolchain_binary(fx: &Fixture) {
    let path = if fx.go.is_absolute() {
        fx.go.clone()
    } else {
        let out = Command::new("go")
            .args(["env", "GOROOT"])
            .output()
            .expect("go env");
        std::path::PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8").trim())
            .join("bin/go")
    };
    let what = format!("{} (go{})", path.display(), fx.version);
    let bin = load(&path);
    assert_eq!(
        bin.go_version().map(|v| v.raw.as_str()),
        Some(format!("go{}", fx.version).as_str())
    );
    let buildid = fx.go_tool(&["buildid", path.to_str().unwrap()], "");
    assert_eq!(bin.go_build_id(), Some(buildid.trim()), "{what}");
    let tab = table(&bin, 0, &what);
    assert!(tab.len() > 5000, "{what}: {} functions", tab.len());
    let pcs: Vec<u64> = sample_pcs(&tab).into_iter().step_by(5).collect();
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let out = fx.go_tool(&["addr2line", path.to_str().unwrap()], &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2 * pcs.len(), "{what}: addr2line output");
    let mut compared = 0;
    for (i, &pc) in pcs.iter().enumerate() {
        let f = tab
            .find_func(pc)
            .unwrap_or_else(|| panic!("{what}: no func at {pc:#x}"));
        assert_eq!(f.name(), lines[2 * i], "{what}: name at {pc:#x}");
        if let Some((file, line)) = f.file_line(pc) {
            assert_eq!(
                format!("{file}:{line}"),
                lines[2 * i + 1],
                "{what}: at {pc:#x}"
            );
            compared += 1;
        }
    }
    assert!(compared > 4000, "{what}: only {compared} lines compared");
    let (mut full, mut total) = (0usize, 0usize);
    for f in tab.funcs() {
        if let Some(d) = func_rip_refs(&bin, &tab, &f) {
            total += 1;
            full += usize::from(d.decoded_len as u64 == f.size());
        }
    }
    assert!(
        full * 1000 >= total * 999,
        "{what}: only {full} of {total} functions decode completely"
    );
}

/// Zeroes the section header fields of the ELF header, as
/// `strip --strip-section-headers` would leave it.
fn without_section_headers(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[0x28..0x30].fill(0); // e_shoff
    out[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    out
}

/// Without section headers everything is found by scanning segments.
fn check_without_section_headers(fx: &Fixture) {
    for variant in [
        Variant::Stripped,
        Variant::PieExternalStripped,
        Variant::Default,
    ] {
        let what = format!("go{} {variant:?} without section headers", fx.version);
        let normal = load(fx.binary(variant));
        let bytes = std::fs::read(fx.binary(variant)).expect("read fixture");
        let bare = Binary::parse(Arc::from(
            without_section_headers(&bytes).into_boxed_slice(),
        ))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(bare.sections().is_empty(), "{what}");
        assert_eq!(bare.go_version(), normal.go_version(), "{what}");
        assert_eq!(bare.go_modinfo(), normal.go_modinfo(), "{what}");
        assert_eq!(bare.go_build_id(), normal.go_build_id(), "{what}");
        assert_eq!(bare.gnu_build_id(), normal.gnu_build_id(), "{what}");
        let a = table(&bare, 0, &what);
        let b = table(&normal, 0, &what);
        assert_eq!(a.len(), b.len(), "{what}");
        assert_eq!(a.moduledata(), b.moduledata(), "{what}");
        assert_eq!(a.gofunc(), b.gofunc(), "{what}");
        for (fa, fb) in a.funcs().zip(b.funcs()).step_by(3) {
            assert_eq!(func_summary(&fa), func_summary(&fb), "{what}");
            let mid = fa.entry() + fa.size() / 2;
            assert_eq!(describe(&fa, mid), describe(&fb, mid), "{what}");
        }
    }
}

#[test]
fn fixture_line_numbers_match_the_program() {
    let lines: Vec<&str> = PROGRAM.lines().collect();
    assert!(lines[INLINED_CALL_LINE as usize - 1].contains("return callers(skip + 1)"));
    assert!(lines[OUTER_CALL_LINE as usize - 1].contains("return inlinedHelper(skip)"));
}

#[test]
fn pcvalue_decodes_zigzag_deltas_and_quantum() {
    // value -1+1 = 0 for 4 quanta, then +8 = 8 for 6 quanta, then -3 = 5 for 1.
    let table = [2u8, 4, 16, 6, 5, 1, 0];
    for (quantum, entry) in [(1u8, 0x1000u64), (4, 0x2000)] {
        let q = u64::from(quantum);
        let at = |off: u64| pcvalue(&table, entry, entry + off * q, quantum);
        assert_eq!(at(0), Some(0));
        assert_eq!(at(3), Some(0));
        assert_eq!(at(4), Some(8));
        assert_eq!(at(9), Some(8));
        assert_eq!(at(10), Some(5));
        assert_eq!(at(11), None);
        assert_eq!(pcvalue(&table, entry, entry - 1, quantum), None);
    }
    // A multi-byte varint: value delta 300 (zig-zag 600 = 0xd8 0x04), pc delta 200.
    let long = [0xd8u8, 0x04, 0xc8, 0x01, 0];
    assert_eq!(pcvalue(&long, 0, 199, 1), Some(299));
    assert_eq!(pcvalue(&long, 0, 200, 1), None);
    // Truncated tables end the walk without a value.
    for cut in 0..table.len() {
        assert!(pcvalue(&table[..cut], 0, 10, 1).is_none() || cut > 4);
    }
}

#[test]
fn header_rejects_garbage() {
    assert!(PcHeader::parse(&[]).is_err());
    let mut h = vec![0u8; 200];
    h[..8].copy_from_slice(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8]);
    let put = |h: &mut Vec<u8>, i: usize, v: u64| {
        h[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes())
    };
    put(&mut h, 0, 2); // nfunc
    for (i, off) in [(3, 72u64), (4, 80), (5, 88), (6, 96), (7, 104)] {
        put(&mut h, i, off);
    }
    assert!(PcHeader::parse(&h).is_ok());
    let mut bad = h.clone();
    put(&mut bad, 5, 300); // filetab past the end
    assert!(PcHeader::parse(&bad).is_err());
    let mut bad = h.clone();
    put(&mut bad, 4, 70); // out of order
    assert!(PcHeader::parse(&bad).is_err());
    let mut bad = h.clone();
    bad[7] = 4;
    assert!(matches!(
        PcHeader::parse(&bad),
        Err(AnalyzeError::Unsupported(
            crate::error::Unsupported::PointerSize { size: 4 }
        ))
    ));
    let mut bad = h.clone();
    bad[0] = 0xf0;
    assert!(matches!(
        PcHeader::parse(&bad),
        Err(AnalyzeError::Unsupported(
            crate::error::Unsupported::OldGo { magic: 0xffff_fff0 }
        ))
    ));
    let mut bad = h;
    put(&mut bad, 0, 0);
    assert!(PcHeader::parse(&bad).is_err());
}

macro_rules! per_version {
    ($($module:ident => $version:literal),* $(,)?) => {$(
        mod $module {
            use super::*;
            fn fx() -> &'static Fixture {
                fixtures::fixture($version)
            }
            #[test]
            fn binary_facts() {
                check_binary_facts(fx());
            }
            #[test]
            fn pclntab_matches_addr2line() {
                check_against_addr2line(fx());
            }
            #[test]
            fn stripped_matches_unstripped() {
                check_stripped_matches_unstripped(fx());
            }
            #[test]
            fn frames_match_runtime_callers_frames() {
                check_runtime_frames(fx());
            }
            #[test]
            fn disasm_finds_allgs_in_allgadd() {
                check_disasm_allgadd(fx());
            }
            #[test]
            fn toolchain_go_binary_matches_addr2line() {
                check_toolchain_binary(fx());
            }
            #[test]
            fn found_without_section_headers() {
                check_without_section_headers(fx());
            }
            #[test]
            fn disasm_matches_objdump() {
                check_disasm_against_objdump(fx());
            }
            #[test]
            fn corrupt_tables_do_not_panic() {
                check_corrupt_tables(fx());
            }
        }
    )*};
}

per_version!(
    go1_21 => "1.21.13",
    go1_22 => "1.22.10",
    go1_23 => "1.23.9",
    go1_24 => "1.24.11",
    go1_25 => "1.25.5",
    go1_26 => "1.26.8",
    go1_27 => "1.27.3",
);
