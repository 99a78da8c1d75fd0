//! Snapshot consistency under memory churn: `corpus/cmd/churn` rewrites four
//! regions flat out (in-order page stamps in an mmap, the same behind
//! `MADV_DONTNEED`, in the Go heap, and a ring of slots that are unmapped and
//! mapped again), so a snapshot that mixes memory from before and after the
//! freeze breaks the invariants documented in that program. Each snapshot
//! is checked page by page; between captures the writers must progress and
//! the target must run untraced. The checkers themselves are shown to reject
//! torn images (synthetic ones below, and real ones spliced from two
//! captures).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rdlv_e2e::{describe_output, run_snap, SnapshotFile, Target, Variant, DEFAULT_GO};
use rdlv_format::{MappingCapture, Snapshot};

const PAGE: usize = 4096;
/// Offset of a page's second stamp: its last 8 bytes.
const LAST_STAMP: usize = PAGE - 8;
/// The remap ring's shape, as fixed in corpus/cmd/churn.
const RING_SLOTS: usize = 64;
const SLOT_LEN: usize = 64 << 10;
const SLOT_PAGES: usize = SLOT_LEN / PAGE;
/// Size of each of the seq, dontneed and heap regions, in MiB.
const REGION_MB: &str = "16";
/// How long a writer may take to show progress after a capture.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(5);

fn word(bytes: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[off..off + 8]);
    u64::from_le_bytes(w)
}

/// How a sweep region's writer treats a page before stamping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SweepKind {
    /// Stamps in place (the `seq` mmap and the `heap` buffer).
    InPlace,
    /// `MADV_DONTNEED` first, so the page being written may read as zero.
    DontNeed,
}

/// The `(first, last)` stamps of pages `i-3..=i+3`, for failure messages.
fn stamps_around(stamps: &[(u64, u64)], i: usize) -> String {
    let from = i.saturating_sub(3);
    let to = (i + 4).min(stamps.len());
    (from..to)
        .map(|j| {
            let (a, b) = stamps[j];
            let mark = if j == i { " <--" } else { "" };
            format!("\n    page {j}: ({a}, {b}){mark}")
        })
        .collect()
}

/// Checks pass `g` as the older of the two passes: pages reading
/// `(g+1, g+1)`, then at most one boundary page in a state the writer can be
/// caught in, then pages reading `(g, g)`. Returns the first page that does
/// not fit.
fn sweep_fits(kind: SweepKind, stamps: &[(u64, u64)], g: u64) -> Result<(), usize> {
    let Some(next) = g.checked_add(1) else {
        return Err(0);
    };
    let k = stamps.iter().take_while(|&&s| s == (next, next)).count();
    let Some(&boundary) = stamps.get(k) else {
        return Ok(());
    };
    let allowed: &[(u64, u64)] = match kind {
        SweepKind::InPlace => &[(g, g), (next, g)],
        SweepKind::DontNeed => &[(g, g), (0, 0), (next, 0)],
    };
    if !allowed.contains(&boundary) {
        return Err(k);
    }
    match stamps[k + 1..].iter().position(|&s| s != (g, g)) {
        Some(j) => Err(k + 1 + j),
        None => Ok(()),
    }
}

/// Checks one sweep region's image (whole pages, in address order) against
/// its invariant; returns the older pass present (every page carries it or
/// the one after). The error names the page and shows the stamps around it.
fn check_sweep(kind: SweepKind, image: &[u8]) -> Result<u64, String> {
    if image.is_empty() || !image.len().is_multiple_of(PAGE) {
        return Err(format!("image of {} bytes is not whole pages", image.len()));
    }
    let stamps: Vec<(u64, u64)> = image
        .chunks_exact(PAGE)
        .map(|p| (word(p, 0), word(p, LAST_STAMP)))
        .collect();
    for (i, page) in image.chunks_exact(PAGE).enumerate() {
        if let Some(off) = page[8..LAST_STAMP].iter().position(|&b| b != 0) {
            return Err(format!(
                "page {i}: byte {} is {:#04x}; only the stamps at 0 and {LAST_STAMP} are ever written{}",
                off + 8,
                page[off + 8],
                stamps_around(&stamps, i)
            ));
        }
    }
    let Some(min) = stamps
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .filter(|&s| s != 0)
        .min()
    else {
        return Err(
            "every stamp is zero, but the writer completes a pass before READY".to_string(),
        );
    };
    // The smallest stamp is the older pass, unless the older pass has no
    // page left (all pages newer but a zero boundary page): then it is one
    // less. Page 0's stamp gives the candidates that best locate a fault
    // when neither fits (a stale page far from page 0 rather than page 0).
    let head = stamps[0].0;
    let candidates = [
        Some(min),
        min.checked_sub(1),
        Some(head),
        head.checked_sub(1),
    ];
    let mut furthest: Option<(usize, u64)> = None;
    for g in candidates.into_iter().flatten().filter(|&g| g != 0) {
        match sweep_fits(kind, &stamps, g) {
            Ok(()) => return Ok(g),
            Err(bad) if furthest.is_none_or(|(far, _)| bad > far) => furthest = Some((bad, g)),
            Err(_) => {}
        }
    }
    let (bad, g) = furthest.unwrap_or((0, min));
    Err(format!(
        "page {bad} of {}: stamps do not form one pass boundary (pages ({next}, {next}), at most \
         one boundary page, then pages ({g}, {g})){}",
        stamps.len(),
        stamps_around(&stamps, bad),
        next = g.saturating_add(1),
    ))
}

/// The three words of a ring page: `(gen, slot, gen)` when complete.
fn slot_page_words(page: &[u8]) -> (u64, u64, u64) {
    (word(page, 0), word(page, 8), word(page, LAST_STAMP))
}

fn slot_pages_around(image: &[u8], i: usize) -> String {
    let from = i.saturating_sub(2);
    let to = (i + 3).min(image.len() / PAGE);
    (from..to)
        .map(|j| {
            let (a, b, c) = slot_page_words(&image[j * PAGE..(j + 1) * PAGE]);
            let mark = if j == i { " <--" } else { "" };
            format!("\n    page {j}: ({a}, {b}, {c}){mark}")
        })
        .collect()
}

/// Checks the remap ring: `table[s]` is the pass that last completed slot
/// `s`, `slots[s]` the slot's bytes or `None` when no mapping covered it in
/// the snapshot. Returns the older pass present in the table.
fn check_remap(table: &[u64], slots: &[Option<Vec<u8>>]) -> Result<u64, String> {
    if table.len() != RING_SLOTS || slots.len() != RING_SLOTS {
        return Err(format!(
            "{} table words and {} slots, expected {RING_SLOTS}",
            table.len(),
            slots.len()
        ));
    }
    let table_text = || format!("\n    table: {table:?}");
    // Table: (new)^k (old)^(64-k); when it is uniform the writer is on slot 0
    // of the next pass.
    let first = table[0];
    let (k, old) = match table.iter().position(|&t| t != first) {
        None => (0, first),
        Some(k) => (k, first.wrapping_sub(1)),
    };
    if old == 0 || old == u64::MAX {
        return Err(format!(
            "table word {k} gives pass {old}, but a full pass completes before READY{}",
            table_text()
        ));
    }
    let new = old + 1;
    if let Some(bad) = table[k..].iter().position(|&t| t != old) {
        return Err(format!(
            "table word {}: the table must read {new} up to one slot and {old} after it{}",
            k + bad,
            table_text()
        ));
    }
    for (s, slot) in slots.iter().enumerate() {
        let Some(image) = slot else {
            if s == k {
                continue;
            }
            return Err(format!(
                "slot {s} is not mapped; only slot {k}, the one being replaced, may be absent{}",
                table_text()
            ));
        };
        if image.len() != SLOT_LEN {
            return Err(format!(
                "slot {s}: {} bytes, expected {SLOT_LEN}",
                image.len()
            ));
        }
        for (p, page) in image.chunks_exact(PAGE).enumerate() {
            if let Some(off) = page[16..LAST_STAMP].iter().position(|&b| b != 0) {
                return Err(format!(
                    "slot {s} page {p}: byte {} is {:#04x}; only the three stamps are ever written{}",
                    off + 16,
                    page[off + 16],
                    slot_pages_around(image, p)
                ));
            }
        }
        let sid = s as u64;
        let all_pages_are = |g: u64| {
            image
                .chunks_exact(PAGE)
                .all(|p| slot_page_words(p) == (g, sid, g))
        };
        if s != k {
            let want = table[s];
            if let Some(p) = image
                .chunks_exact(PAGE)
                .position(|pg| slot_page_words(pg) != (want, sid, want))
            {
                return Err(format!(
                    "slot {s} page {p}: the table says pass {want} completed this slot, so every \
                     page must read ({want}, {s}, {want}){}{}",
                    slot_pages_around(image, p),
                    table_text()
                ));
            }
            continue;
        }
        // The slot being replaced: all old, or a fresh mapping being stamped
        // page by page (full pages, at most one partial page, zero pages).
        if all_pages_are(old) {
            continue;
        }
        let mut previous = 3;
        let mut partial = 0;
        for (p, page) in image.chunks_exact(PAGE).enumerate() {
            let progress = match slot_page_words(page) {
                w if w == (new, sid, new) => 3,
                w if w == (new, sid, 0) => 2,
                w if w == (new, 0, 0) => 1,
                (0, 0, 0) => 0,
                _ => 4,
            };
            if progress > previous {
                return Err(format!(
                    "slot {s} page {p}: the slot being replaced (table: pass {old} done) must read \
                     all ({old}, {s}, {old}), or pages ({new}, {s}, {new}) then at most one partly \
                     stamped page then zero pages{}{}",
                    slot_pages_around(image, p),
                    table_text()
                ));
            }
            if progress == 1 || progress == 2 {
                partial += 1;
            }
            if partial > 1 {
                return Err(format!(
                    "slot {s} page {p}: a second partly stamped page in the slot being replaced{}",
                    slot_pages_around(image, p)
                ));
            }
            previous = progress;
        }
    }
    Ok(old)
}

/// The ring's slots in order: a slot's bytes, or `None` when no mapping of
/// the snapshot covers it.
type SlotImages = Vec<Option<Vec<u8>>>;

/// The regions the churn program announced.
#[derive(Debug, Clone, Copy)]
struct Regions {
    seq: (u64, usize),
    dontneed: (u64, usize),
    heap: (u64, usize),
    remap: (u64, usize),
    remap_table: (u64, usize),
}

fn regions(target: &Target) -> Regions {
    let region = |name: &str| -> (u64, usize) {
        let prefix = format!("REGION {name} ");
        let line = target
            .stdout_lines()
            .into_iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("churn printed no {prefix:?} line"));
        let mut words = line[prefix.len()..].split_whitespace();
        let addr = words
            .next()
            .and_then(|w| w.strip_prefix("0x"))
            .and_then(|w| u64::from_str_radix(w, 16).ok())
            .unwrap_or_else(|| panic!("bad address in {line:?}"));
        let len: usize = words
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("bad length in {line:?}"));
        assert!(
            addr.is_multiple_of(PAGE as u64) && len.is_multiple_of(PAGE) && len > 0,
            "region not page aligned: {line:?}"
        );
        (addr, len)
    };
    let r = Regions {
        seq: region("seq"),
        dontneed: region("dontneed"),
        heap: region("heap"),
        remap: region("remap"),
        remap_table: region("remaptable"),
    };
    assert_eq!(r.remap.1, RING_SLOTS * SLOT_LEN, "remap ring size");
    assert!(r.remap_table.1 >= RING_SLOTS * 8, "remap table size");
    r
}

/// Reads the page at `addr` into `out`: `Ok(false)` when no mapping of the
/// snapshot covers it; a page of a captured mapping that is not in the
/// memory index was not present, and reads as zero (SPEC).
fn read_page(snap: &Snapshot, addr: u64, out: &mut [u8]) -> Result<bool, String> {
    let end = addr + PAGE as u64;
    let Some(mapping) = snap
        .metadata()
        .mappings
        .iter()
        .find(|m| m.start <= addr && end <= m.end)
    else {
        return Ok(false);
    };
    match &mapping.capture {
        MappingCapture::Captured { .. } => {
            if snap.is_captured(addr, PAGE as u64) {
                snap.read_memory(addr, out)
                    .map_err(|e| format!("read page {addr:#x}: {e}"))?;
            } else {
                out.fill(0);
            }
            Ok(true)
        }
        other => Err(format!(
            "mapping {:#x}-{:#x} holding page {addr:#x} was not captured: {other:?}",
            mapping.start, mapping.end
        )),
    }
}

/// A sweep region's bytes; every page must be mapped.
fn read_region(snap: &Snapshot, (addr, len): (u64, usize)) -> Result<Vec<u8>, String> {
    let mut image = vec![0u8; len];
    for (i, page) in image.chunks_exact_mut(PAGE).enumerate() {
        let at = addr + (i * PAGE) as u64;
        if !read_page(snap, at, page)? {
            return Err(format!(
                "page {i} ({at:#x}) is in no mapping of the snapshot"
            ));
        }
    }
    Ok(image)
}

/// The ring's table words and slots (`None`: no mapping covers the slot).
fn read_remap(snap: &Snapshot, r: &Regions) -> Result<(Vec<u64>, SlotImages), String> {
    let table_page = read_region(snap, (r.remap_table.0, PAGE))?;
    let table = (0..RING_SLOTS).map(|s| word(&table_page, s * 8)).collect();
    let mut slots = Vec::with_capacity(RING_SLOTS);
    for s in 0..RING_SLOTS {
        let base = r.remap.0 + (s * SLOT_LEN) as u64;
        let mut image = vec![0u8; SLOT_LEN];
        let mut mapped = 0;
        for (p, page) in image.chunks_exact_mut(PAGE).enumerate() {
            if read_page(snap, base + (p * PAGE) as u64, page)? {
                mapped += 1;
            }
        }
        match mapped {
            0 => slots.push(None),
            SLOT_PAGES => slots.push(Some(image)),
            n => {
                return Err(format!(
                    "slot {s} ({base:#x}): {n} of its {SLOT_PAGES} pages are mapped; a slot is \
                     mapped and unmapped whole"
                ))
            }
        }
    }
    Ok((table, slots))
}

/// The older pass of every region in one snapshot, and the raw images the
/// splice check reuses.
struct Checked {
    seq: u64,
    dontneed: u64,
    heap: u64,
    remap: u64,
    seq_image: Vec<u8>,
    remap_table: Vec<u64>,
    remap_slots: SlotImages,
}

/// Checks every region of the snapshot at `path`; panics naming the region.
fn check_snapshot(path: &Path, r: &Regions, what: &str) -> Checked {
    let snap =
        Snapshot::open(path).unwrap_or_else(|e| panic!("{what}: open {}: {e}", path.display()));
    let sweep = |name: &str, kind: SweepKind, region: (u64, usize)| -> (u64, Vec<u8>) {
        let image = read_region(&snap, region)
            .unwrap_or_else(|e| panic!("{what}: region {name} at {:#x}: {e}", region.0));
        let g = check_sweep(kind, &image).unwrap_or_else(|e| {
            panic!(
                "{what}: region {name} at {:#x} is inconsistent: {e}",
                region.0
            )
        });
        (g, image)
    };
    let (seq, seq_image) = sweep("seq", SweepKind::InPlace, r.seq);
    let (dontneed, _) = sweep("dontneed", SweepKind::DontNeed, r.dontneed);
    let (heap, _) = sweep("heap", SweepKind::InPlace, r.heap);
    let (remap_table, remap_slots) =
        read_remap(&snap, r).unwrap_or_else(|e| panic!("{what}: region remap: {e}"));
    let remap = check_remap(&remap_table, &remap_slots).unwrap_or_else(|e| {
        panic!(
            "{what}: region remap at {:#x} is inconsistent: {e}",
            r.remap.0
        )
    });
    Checked {
        seq,
        dontneed,
        heap,
        remap,
        seq_image,
        remap_table,
        remap_slots,
    }
}

/// One little-endian word of the live target, through `/proc/PID/mem`.
fn live_word(pid: u32, addr: u64) -> u64 {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("open /proc/{pid}/mem: {e}"));
    let mut w = [0u8; 8];
    mem.read_exact_at(&mut w, addr)
        .unwrap_or_else(|e| panic!("read /proc/{pid}/mem at {addr:#x}: {e}"));
    u64::from_le_bytes(w)
}

/// Waits until every writer has started a pass newer than any stamp in the
/// snapshot (page 0's first stamp, the table's first word).
fn assert_writers_progress(target: &Target, r: &Regions, c: &Checked, what: &str) {
    let watched = [
        ("seq", r.seq.0, c.seq),
        ("dontneed", r.dontneed.0, c.dontneed),
        ("heap", r.heap.0, c.heap),
        ("remap", r.remap_table.0, c.remap),
    ];
    let deadline = Instant::now() + PROGRESS_TIMEOUT;
    for (name, addr, older_pass) in watched {
        loop {
            let live = live_word(target.pid(), addr);
            if live > older_pass + 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: writer of {name} made no progress after the capture: live stamp {live}, \
                 snapshot had pass {older_pass}; stderr: {}",
                target.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Real torn images: the checkers must reject bytes spliced from two
/// captures taken some passes apart.
fn assert_splices_rejected(earlier: &Checked, later: &Checked) {
    assert!(
        later.seq >= earlier.seq + 2 && later.remap >= earlier.remap + 2,
        "captures too close for a splice to be detectable: seq passes {} then {}, remap {} then {}",
        earlier.seq,
        later.seq,
        earlier.remap,
        later.remap
    );
    let half = earlier.seq_image.len() / PAGE / 2 * PAGE;
    for (first, second) in [(earlier, later), (later, earlier)] {
        let mut spliced = first.seq_image[..half].to_vec();
        spliced.extend_from_slice(&second.seq_image[half..]);
        assert!(
            check_sweep(SweepKind::InPlace, &spliced).is_err(),
            "a seq image spliced from passes {} and {} was accepted",
            first.seq,
            second.seq
        );
        assert!(
            check_remap(&first.remap_table, &second.remap_slots).is_err(),
            "a remap table of pass {} with slots of pass {} was accepted",
            first.remap,
            second.remap
        );
    }
}

/// Whether `rdlv-snap --help` offers `--precopy`.
fn precopy_listed() -> bool {
    let out = run_snap(&["--help"]);
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap --help", &out)
    );
    String::from_utf8_lossy(&out.stdout).contains("--precopy")
}

/// Captures the churning target `rounds` times with `extra` arguments and
/// checks each snapshot, the summary's method, progress and the target's health.
fn churn_captures(extra: &[&str], method: Option<&str>, rounds: usize) {
    let target = Target::start("churn", DEFAULT_GO, Variant::Default, &["-mb", REGION_MB]);
    let r = regions(&target);
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let mut previous: Option<Checked> = None;
    for round in 0..rounds {
        let what = format!("capture {round} ({})", args.join(" "));
        let snap: SnapshotFile = target.capture(&args);
        let summary = snap.json();
        if let Some(method) = method {
            assert_eq!(
                summary["method"].as_str(),
                Some(method),
                "{what}: --json summary: {summary}"
            );
        }
        let checked = check_snapshot(snap.path(), &r, &what);
        if let Some(method) = method {
            let snapshot = Snapshot::open(snap.path()).expect("reopen snapshot");
            assert_eq!(
                snapshot.metadata().capture.method,
                method,
                "{what}: method recorded in the snapshot"
            );
        }
        target.assert_running_untraced();
        assert_writers_progress(&target, &r, &checked, &what);
        if let Some(prev) = &previous {
            for (name, before, after) in [
                ("seq", prev.seq, checked.seq),
                ("dontneed", prev.dontneed, checked.dontneed),
                ("heap", prev.heap, checked.heap),
                ("remap", prev.remap, checked.remap),
            ] {
                assert!(
                    after > before,
                    "{what}: region {name} at pass {after}, not past the previous capture's {before}"
                );
            }
            assert_splices_rejected(prev, &checked);
        }
        eprintln!(
            "{what}: consistent; passes seq {} dontneed {} heap {} remap {}; method {}, pause {} \
             us, pre-copied bytes reused {}",
            checked.seq,
            checked.dontneed,
            checked.heap,
            checked.remap,
            summary["method"],
            summary["pause_us"],
            summary["precopy_reused_bytes"]
        );
        previous = Some(checked);
    }
}

/// The checkers against real torn memory: the `seq` and `heap` regions read
/// through `/proc/PID/mem` while the writers run (what a capture that copied
/// without freezing, or failed to re-copy, would store). The writer laps a
/// slow reader several times, so nearly every read is torn; a few attempts
/// absorb a writer descheduled for a whole read.
#[test]
fn unfrozen_reads_of_churning_memory_are_rejected() {
    let target = Target::start("churn", DEFAULT_GO, Variant::Default, &["-mb", REGION_MB]);
    let r = regions(&target);
    let mem = std::fs::File::open(format!("/proc/{}/mem", target.pid()))
        .unwrap_or_else(|e| panic!("open /proc/{}/mem: {e}", target.pid()));
    for (name, (addr, len)) in [("seq", r.seq), ("heap", r.heap)] {
        let mut image = vec![0u8; len];
        let rejected = (0..20).find_map(|attempt| {
            // Page by page, as a copy loop would go, so the writer laps the reader.
            for (i, page) in image.chunks_exact_mut(PAGE).enumerate() {
                mem.read_exact_at(page, addr + (i * PAGE) as u64)
                    .unwrap_or_else(|e| panic!("read {name} page {i}: {e}"));
            }
            check_sweep(SweepKind::InPlace, &image)
                .err()
                .map(|e| (attempt, e))
        });
        let (attempt, err) = rejected.unwrap_or_else(|| {
            panic!("20 unfrozen reads of region {name} were all accepted as consistent")
        });
        eprintln!(
            "{name}: unfrozen read {attempt} rejected: {}",
            err.lines().next().unwrap_or("")
        );
    }
    target.assert_running_untraced();
}

#[test]
fn plain_captures_of_churning_memory_are_consistent() {
    churn_captures(&[], None, 4);
}

/// `--precopy` copies while the writers run, so every page of the four
/// regions is written after its first copy: any write the tracking misses
/// leaves a page passes behind its neighbours. A fallback to the plain copy
/// fails the method check. (`--precopy` excludes `--cow`: the suite's second
/// run through tests/cow/rdlv-snap must skip this test.)
#[test]
fn precopy_captures_of_churning_memory_are_consistent() {
    assert!(precopy_listed(), "rdlv-snap --help does not list --precopy");
    churn_captures(&["--precopy"], Some("precopy"), 4);
}

/// A sweep image of `n` pages: pages before `k` at pass `g+1`, page `k` as
/// given, pages after it at pass `g`.
fn sweep_image(n: usize, g: u64, k: usize, boundary: (u64, u64)) -> Vec<u8> {
    let mut image = vec![0u8; n * PAGE];
    for (i, page) in image.chunks_exact_mut(PAGE).enumerate() {
        let (a, b) = match i.cmp(&k) {
            std::cmp::Ordering::Less => (g + 1, g + 1),
            std::cmp::Ordering::Equal => boundary,
            std::cmp::Ordering::Greater => (g, g),
        };
        page[..8].copy_from_slice(&a.to_le_bytes());
        page[LAST_STAMP..].copy_from_slice(&b.to_le_bytes());
    }
    image
}

fn set_stamps(image: &mut [u8], page: usize, (a, b): (u64, u64)) {
    image[page * PAGE..page * PAGE + 8].copy_from_slice(&a.to_le_bytes());
    image[page * PAGE + LAST_STAMP..(page + 1) * PAGE].copy_from_slice(&b.to_le_bytes());
}

#[test]
fn sweep_checker_accepts_every_state_a_writer_can_be_stopped_in() {
    let g = 7;
    // With every page at pass g+1, that pass is the older (and only) one.
    let older = |k: usize, boundary: (u64, u64)| {
        if k == 9 && boundary == (g + 1, g + 1) {
            g + 1
        } else {
            g
        }
    };
    for k in [0, 1, 5, 9] {
        for boundary in [(g, g), (g + 1, g), (g + 1, g + 1)] {
            let image = sweep_image(10, g, k, boundary);
            assert_eq!(
                check_sweep(SweepKind::InPlace, &image),
                Ok(older(k, boundary)),
                "k={k} {boundary:?}"
            );
        }
        for boundary in [(g, g), (0, 0), (g + 1, 0), (g + 1, g + 1)] {
            let image = sweep_image(10, g, k, boundary);
            assert_eq!(
                check_sweep(SweepKind::DontNeed, &image),
                Ok(older(k, boundary)),
                "k={k} {boundary:?}"
            );
        }
    }
    // Every page of the newer pass but the last, which is being rewritten.
    let image = sweep_image(10, g, 9, (0, 0));
    assert_eq!(check_sweep(SweepKind::DontNeed, &image), Ok(g));
}

#[test]
fn sweep_checker_rejects_torn_images() {
    let g = 7;
    let torn = |kind: SweepKind, image: &[u8], why: &str| {
        let err = check_sweep(kind, image).expect_err(why);
        assert!(err.contains("page "), "{why}: message names no page: {err}");
    };
    // Second stamp newer than the first: the page was copied half before a write.
    torn(
        SweepKind::InPlace,
        &sweep_image(10, g, 4, (g, g + 1)),
        "(g, g+1)",
    );
    // A page of the newer pass after the boundary: copied after a later write.
    let mut image = sweep_image(10, g, 3, (g, g));
    set_stamps(&mut image, 7, (g + 1, g + 1));
    torn(SweepKind::InPlace, &image, "newer page after the boundary");
    // An older page before the boundary.
    let mut image = sweep_image(10, g, 6, (g + 1, g));
    set_stamps(&mut image, 2, (g, g));
    torn(SweepKind::InPlace, &image, "older page before the boundary");
    // Three passes in one image.
    let mut image = sweep_image(10, g, 5, (g, g));
    set_stamps(&mut image, 0, (g + 2, g + 2));
    torn(SweepKind::InPlace, &image, "three passes");
    // A zero page in place-written memory, and two in DONTNEED memory.
    torn(
        SweepKind::InPlace,
        &sweep_image(10, g, 4, (0, 0)),
        "zero page in seq",
    );
    let mut image = sweep_image(10, g, 4, (0, 0));
    set_stamps(&mut image, 8, (0, 0));
    torn(SweepKind::DontNeed, &image, "two zero pages");
    // A DONTNEED page cannot keep its old last stamp under a new first one.
    torn(
        SweepKind::DontNeed,
        &sweep_image(10, g, 4, (g + 1, g)),
        "(g+1, g) after DONTNEED",
    );
    // A stray byte between the stamps.
    let mut image = sweep_image(10, g, 4, (g, g));
    image[3 * PAGE + 100] = 1;
    torn(SweepKind::InPlace, &image, "stray byte");
    // Nothing written at all.
    assert!(check_sweep(SweepKind::InPlace, &vec![0u8; 4 * PAGE]).is_err());
}

/// A consistent ring at older pass `g` with the writer on slot `k`, whose
/// bytes are given (`None`: absent).
fn ring(g: u64, k: usize, slot_k: Option<Vec<u8>>) -> (Vec<u64>, SlotImages) {
    let table: Vec<u64> = (0..RING_SLOTS)
        .map(|s| if s < k { g + 1 } else { g })
        .collect();
    let slots = (0..RING_SLOTS)
        .map(|s| {
            if s == k {
                slot_k.clone()
            } else {
                Some(slot_image(s, table[s], SLOT_PAGES, 3))
            }
        })
        .collect();
    (table, slots)
}

/// Slot `s` with `full` pages stamped `(gen, s, gen)`, then one page with
/// the first `partial` of its three writes done, then zero pages.
fn slot_image(s: usize, gen: u64, full: usize, partial: usize) -> Vec<u8> {
    let mut image = vec![0u8; SLOT_LEN];
    for (p, page) in image.chunks_exact_mut(PAGE).enumerate() {
        let writes = match p.cmp(&full) {
            std::cmp::Ordering::Less => 3,
            std::cmp::Ordering::Equal => partial,
            std::cmp::Ordering::Greater => 0,
        };
        if writes >= 1 {
            page[..8].copy_from_slice(&gen.to_le_bytes());
        }
        if writes >= 2 {
            page[8..16].copy_from_slice(&(s as u64).to_le_bytes());
        }
        if writes >= 3 {
            page[LAST_STAMP..].copy_from_slice(&gen.to_le_bytes());
        }
    }
    image
}

#[test]
fn remap_checker_accepts_every_state_the_ring_can_be_stopped_in() {
    let g = 11;
    for k in [0, 1, 30, 63] {
        let states = [
            None,
            Some(slot_image(k, g, SLOT_PAGES, 3)),
            Some(slot_image(k, g + 1, SLOT_PAGES, 3)),
            Some(slot_image(k, g + 1, 0, 0)),
            Some(slot_image(k, g + 1, 5, 1)),
            Some(slot_image(k, g + 1, 5, 2)),
            Some(slot_image(k, g + 1, 15, 0)),
        ];
        for (i, state) in states.into_iter().enumerate() {
            let (table, slots) = ring(g, k, state);
            assert_eq!(check_remap(&table, &slots), Ok(g), "slot {k}, state {i}");
        }
    }
}

#[test]
fn remap_checker_rejects_torn_rings() {
    let g = 11;
    let k = 20;
    let torn = |table: &[u64], slots: &[Option<Vec<u8>>], why: &str| {
        let err = check_remap(table, slots).expect_err(why);
        assert!(
            err.contains("slot") || err.contains("table"),
            "{why}: {err}"
        );
    };
    // Another slot absent.
    let (table, mut slots) = ring(g, k, None);
    slots[3] = None;
    torn(&table, &slots, "two absent slots");
    // The table says a slot was redone, its bytes are from the pass before.
    let (table, mut slots) = ring(g, k, None);
    slots[5] = Some(slot_image(5, g, SLOT_PAGES, 3));
    torn(&table, &slots, "slot older than its table word");
    // Bytes of a newer pass than the table (the table page copied first).
    let (table, mut slots) = ring(g, k, None);
    slots[40] = Some(slot_image(40, g + 1, SLOT_PAGES, 3));
    torn(&table, &slots, "slot newer than its table word");
    // The slot being replaced mixes old and new pages.
    let mut mixed = slot_image(k, g + 1, 4, 0);
    mixed[10 * PAGE..11 * PAGE].copy_from_slice(&slot_image(k, g, SLOT_PAGES, 3)[..PAGE]);
    let (table, slots) = ring(g, k, Some(mixed));
    torn(&table, &slots, "old page in a fresh slot");
    // A full page after a zero page in the fresh slot.
    let mut gap = slot_image(k, g + 1, 4, 0);
    gap[8 * PAGE..9 * PAGE].copy_from_slice(&slot_image(k, g + 1, SLOT_PAGES, 3)[..PAGE]);
    let (table, slots) = ring(g, k, Some(gap));
    torn(&table, &slots, "stamped page after a zero page");
    // Two steps in the table.
    let (mut table, slots) = ring(g, k, None);
    table[50] = g - 1;
    torn(&table, &slots, "table with two steps");
    // A page labelled with another slot.
    let (table, mut slots) = ring(g, k, None);
    slots[9] = Some(slot_image(10, table[9], SLOT_PAGES, 3));
    torn(&table, &slots, "page of another slot");
}
