//! `/proc` parsing: maps and smaps (with VmFlags), status, thread list,
//! thread names and states, auxv, cmdline and the executable.
//!
//! Parsers take text so they can be tested on fixtures; thin readers take a pid.

use std::path::{Path, PathBuf};

use crate::error::{CaptureError, Result};

/// Longest `/proc` text file we accept (smaps of a huge process is a few MiB).
const MAX_PROC_TEXT: u64 = 256 << 20;
/// Most entries we accept in an auxv (the kernel has a few dozen).
const MAX_AUXV_ENTRIES: usize = 512;

/// One mapping from `/proc/PID/maps` or `/proc/PID/smaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsEntry {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permission string, e.g. `rw-p`.
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// Device `MAJ:MIN` in hex, as printed by the kernel.
    pub dev: String,
    /// Inode (0 for anonymous memory).
    pub inode: u64,
    /// Path or pseudo-name; empty for anonymous mappings.
    pub path: String,
    /// Two-letter VmFlags (smaps only; empty when parsed from maps).
    pub vm_flags: Vec<String>,
    /// Bytes of private pages that no longer match the file (smaps
    /// `Anonymous:`), e.g. relocated RELRO data; `None` when parsed from maps.
    pub anonymous_bytes: Option<u64>,
}

impl MapsEntry {
    /// Whether the mapping is readable according to its permissions.
    pub fn readable(&self) -> bool {
        self.perms.as_bytes().first() == Some(&b'r')
    }

    /// Whether the mapping is writable according to its permissions.
    pub fn writable(&self) -> bool {
        self.perms.as_bytes().get(1) == Some(&b'w')
    }

    /// Whether smaps listed this VmFlag.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.vm_flags.iter().any(|f| f == flag)
    }

    /// Same mapping (range, permissions, file) ignoring VmFlags.
    pub fn same_mapping(&self, other: &MapsEntry) -> bool {
        self.start == other.start
            && self.end == other.end
            && self.perms == other.perms
            && self.offset == other.offset
            && self.dev == other.dev
            && self.inode == other.inode
            && self.path == other.path
    }
}

fn parse_err(what: &str, detail: impl Into<String>) -> CaptureError {
    CaptureError::Parse {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// Parses one maps header line (`start-end perms offset dev inode [path]`).
fn parse_maps_line(line: &str) -> Option<MapsEntry> {
    let mut rest = line;
    let mut fields = [""; 5];
    for field in fields.iter_mut() {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let (start, end) = fields[0].split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if end < start || fields[1].len() != 4 {
        return None;
    }
    let offset = u64::from_str_radix(fields[2], 16).ok()?;
    if !fields[3].contains(':') {
        return None;
    }
    let inode = fields[4].parse::<u64>().ok()?;
    // The path is everything after the padding; it may itself contain spaces.
    let path = rest.trim_start_matches(' ').to_string();
    Some(MapsEntry {
        start,
        end,
        perms: fields[1].to_string(),
        offset,
        dev: fields[3].to_string(),
        inode,
        path,
        vm_flags: Vec::new(),
        anonymous_bytes: None,
    })
}

/// Parses `/proc/PID/maps` or `/proc/PID/smaps` text. In smaps, the
/// `VmFlags:` line of each mapping fills [`MapsEntry::vm_flags`]; the other
/// `Key: value` lines are ignored.
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>> {
    let mut out: Vec<MapsEntry> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let before_any = |field: &str| {
            parse_err(
                "smaps",
                format!("line {}: {field} before any mapping", number + 1),
            )
        };
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            let last = out.last_mut().ok_or_else(|| before_any("VmFlags"))?;
            last.vm_flags = flags.split_whitespace().map(str::to_string).collect();
            continue;
        }
        if let Some(value) = line.strip_prefix("Anonymous:") {
            let last = out.last_mut().ok_or_else(|| before_any("Anonymous"))?;
            let kib = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| parse_err("smaps", format!("line {}: {line:?}", number + 1)))?;
            last.anonymous_bytes = kib.checked_mul(1024);
            continue;
        }
        // smaps attribute lines start with a key and a colon ("Rss:", "THPeligible:").
        let first = line.split(' ').next().unwrap_or("");
        if first.ends_with(':') {
            continue;
        }
        let entry = parse_maps_line(line)
            .ok_or_else(|| parse_err("maps", format!("line {}: {line:?}", number + 1)))?;
        out.push(entry);
    }
    Ok(out)
}

/// The fields of `/proc/PID/status` the capture needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name:` (the comm of the main thread).
    pub name: String,
    /// State letter (`R`, `S`, `D`, `T`, `t`, `Z`, …).
    pub state: char,
    /// `Tgid:`.
    pub tgid: u32,
    /// `PPid:`.
    pub ppid: u32,
    /// `TracerPid:`; non-zero when someone already traces the task.
    pub tracer_pid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// `Threads:`.
    pub threads: u32,
    /// `SigPnd:` thread-pending signal mask.
    pub sig_pnd: u64,
    /// `ShdPnd:` process-pending signal mask.
    pub shd_pnd: u64,
    /// `Seccomp:` mode (0 none, 1 strict, 2 filter).
    pub seccomp: u32,
}

/// Every process id visible in `/proc` (empty if it cannot be listed).
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// The target's descriptors that are userfaultfds, sorted (empty if
/// `/proc/PID/fd` cannot be read).
pub fn userfaultfd_fds(pid: u32) -> Vec<u64> {
    let dir = proc_dir(pid).join("fd");
    let mut fds: Vec<u64> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    std::fs::read_link(entry.path())
                        .is_ok_and(|link| link.as_os_str() == "anon_inode:[userfaultfd]")
                })
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

/// The descriptor number the target's next new descriptor gets (the lowest
/// one not open, by `/proc/PID/fd`).
pub fn lowest_free_fd(pid: u32) -> u64 {
    let mut open: Vec<u64> = std::fs::read_dir(proc_dir(pid).join("fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    open.sort_unstable();
    let mut next = 0u64;
    for fd in open {
        if fd == next {
            next += 1;
        } else if fd > next {
            break;
        }
    }
    next
}

/// Whether the process is in job-control stop (`T`, e.g. after SIGSTOP).
pub fn job_stopped(pid: u32) -> bool {
    read_status(pid).is_ok_and(|status| status.state == 'T')
}

/// Why nothing is injected into a process in job-control stop.
pub const STOPPED_REASON: &str = "the process is stopped (SIGSTOP); it stays stopped";

/// Whether the process marked itself non-dumpable (`PR_SET_DUMPABLE 0`, or
/// it runs a setuid/setcap binary). The kernel shows it only one way: the
/// owner of the files in `/proc/PID` becomes root, so for a target running as root it
/// cannot be seen (and `false` is returned).
pub fn non_dumpable(pid: u32, status: &Status) -> bool {
    use std::os::unix::fs::MetadataExt;
    status.uid != 0 && std::fs::metadata(proc_dir(pid).join("stat")).is_ok_and(|m| m.uid() == 0)
}

/// The target's `Seccomp:` mode (0 when unknown).
pub fn seccomp_mode(pid: u32) -> u32 {
    read_status(pid).map_or(0, |status| status.seccomp)
}

/// Parses `/proc/PID/status`.
pub fn parse_status(text: &str) -> Result<Status> {
    let mut status = Status::default();
    let mut saw_state = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let first_num = |what: &str| -> Result<u32> {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| parse_err("status", format!("{what}: {value:?}")))
        };
        let hex = |what: &str| -> Result<u64> {
            u64::from_str_radix(value, 16)
                .map_err(|_| parse_err("status", format!("{what}: {value:?}")))
        };
        match key {
            "Name" => status.name = value.to_string(),
            "State" => {
                status.state = value
                    .chars()
                    .next()
                    .ok_or_else(|| parse_err("status", "empty State"))?;
                saw_state = true;
            }
            "Tgid" => status.tgid = first_num("Tgid")?,
            "PPid" => status.ppid = first_num("PPid")?,
            "TracerPid" => status.tracer_pid = first_num("TracerPid")?,
            "Uid" => status.uid = first_num("Uid")?,
            "Gid" => status.gid = first_num("Gid")?,
            "Threads" => status.threads = first_num("Threads")?,
            "SigPnd" => status.sig_pnd = hex("SigPnd")?,
            "ShdPnd" => status.shd_pnd = hex("ShdPnd")?,
            "Seccomp" => status.seccomp = first_num("Seccomp")?,
            _ => {}
        }
    }
    if !saw_state {
        return Err(parse_err("status", "no State line"));
    }
    Ok(status)
}

/// State letter from `/proc/PID/task/TID/stat` text. The comm field may
/// contain spaces and parentheses, so the state is found after the last `)`.
pub fn parse_stat_state(text: &str) -> Option<char> {
    let close = text.rfind(')')?;
    text.get(close + 1..)?.trim_start().chars().next()
}

/// Parses the binary auxv (pairs of native-endian u64) up to AT_NULL.
pub fn parse_auxv(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for pair in bytes.chunks_exact(16).take(MAX_AUXV_ENTRIES) {
        let (key, value) = pair.split_at(8);
        let key = u64::from_ne_bytes(key.try_into().unwrap_or([0; 8]));
        let value = u64::from_ne_bytes(value.try_into().unwrap_or([0; 8]));
        if key == 0 {
            break;
        }
        out.push((key, value));
    }
    out
}

/// Splits `/proc/PID/cmdline` at NUL (lossy UTF-8).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// `/proc/PID`.
pub fn proc_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

fn io_err(path: &Path, source: std::io::Error) -> CaptureError {
    CaptureError::Proc {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole `/proc` file, bounded to [`MAX_PROC_TEXT`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    file.take(MAX_PROC_TEXT)
        .read_to_end(&mut out)
        .map_err(|e| io_err(path, e))?;
    Ok(out)
}

/// Reads a whole `/proc` text file.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).or_else(|e| Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Whether `/proc/PID` exists.
pub fn process_exists(pid: u32) -> bool {
    proc_dir(pid).exists()
}

/// Whether process or thread `id` is gone or dying: no `/proc/ID`, state Z
/// or X, or PF_EXITING set (past the point of no return in `do_exit`, while
/// its state may still say R and its mm is already gone).
pub fn gone_or_exiting(id: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(proc_dir(id).join("stat")) else {
        return !process_exists(id);
    };
    // Fields after the command name, which may itself contain ") ".
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("");
    // flags is field 9: the 7th after the state (field 3).
    let flags = fields
        .nth(5)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// `/proc/PID/smaps` parsed (with VmFlags).
pub fn read_smaps(pid: u32) -> Result<Vec<MapsEntry>> {
    parse_maps(&read_text(&proc_dir(pid).join("smaps"))?)
}

/// `/proc/PID/maps` parsed (no VmFlags; much cheaper than smaps).
pub fn read_maps(pid: u32) -> Result<Vec<MapsEntry>> {
    parse_maps(&read_text(&proc_dir(pid).join("maps"))?)
}

/// `/proc/PID/status` parsed.
pub fn read_status(pid: u32) -> Result<Status> {
    parse_status(&read_text(&proc_dir(pid).join("status"))?)
}

/// Thread ids listed in `/proc/PID/task`, sorted.
pub fn list_tasks(pid: u32) -> Result<Vec<u32>> {
    let dir = proc_dir(pid).join("task");
    let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
    let mut tids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err(&dir, e))?;
        if let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

/// Thread name from `/proc/PID/task/TID/comm`, or empty if the thread is gone.
pub fn thread_comm(pid: u32, tid: u32) -> String {
    std::fs::read_to_string(proc_dir(pid).join(format!("task/{tid}/comm")))
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

/// Thread state letter from `/proc/PID/task/TID/stat`, or `None` if gone.
pub fn thread_state(pid: u32, tid: u32) -> Option<char> {
    let text = std::fs::read_to_string(proc_dir(pid).join(format!("task/{tid}/stat"))).ok()?;
    parse_stat_state(&text)
}

/// Whether `/proc/PID/task/TID` exists.
pub fn thread_exists(pid: u32, tid: u32) -> bool {
    proc_dir(pid).join(format!("task/{tid}")).exists()
}

/// `/proc/PID/auxv` parsed.
pub fn read_auxv(pid: u32) -> Result<Vec<(u64, u64)>> {
    Ok(parse_auxv(&read_bytes(&proc_dir(pid).join("auxv"))?))
}

/// `/proc/PID/cmdline` split.
pub fn read_cmdline(pid: u32) -> Result<Vec<String>> {
    Ok(parse_cmdline(&read_bytes(&proc_dir(pid).join("cmdline"))?))
}

/// Target of the `/proc/PID/exe` link as the kernel prints it (may end in ` (deleted)`).
pub fn exe_link(pid: u32) -> Result<String> {
    let path = proc_dir(pid).join("exe");
    let target = std::fs::read_link(&path).map_err(|e| io_err(&path, e))?;
    Ok(target.to_string_lossy().into_owned())
}

/// Device (major, minor) and inode of the executable the process runs, even if
/// the file was deleted or replaced on disk.
pub fn exe_identity(pid: u32) -> Result<(u32, u32, u64)> {
    use std::os::unix::fs::MetadataExt;
    let path = proc_dir(pid).join("exe");
    let meta = std::fs::metadata(&path).map_err(|e| io_err(&path, e))?;
    let dev = meta.dev();
    Ok((libc::major(dev), libc::minor(dev), meta.ino()))
}

/// Bytes of the executable the process runs (through `/proc/PID/exe`, which
/// works even when the file on disk was deleted or replaced).
pub fn read_exe(pid: u32) -> Result<Vec<u8>> {
    let path = proc_dir(pid).join("exe");
    std::fs::read(&path).map_err(|e| io_err(&path, e))
}

/// Value of `kernel.yama.ptrace_scope`, if Yama is present.
pub fn ptrace_scope() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `MemAvailable` from `/proc/meminfo` in bytes, if readable.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// Parses `MemAvailable:   N kB` out of meminfo text.
pub fn parse_mem_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Where this process's memory cgroup lives, from `/proc/self/cgroup` text:
/// `(true, path)` for cgroup v1's memory controller, `(false, path)` for v2.
pub fn parse_memory_cgroup(text: &str) -> Option<(bool, String)> {
    let mut unified = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some((true, path.to_string()));
        }
        if controllers.is_empty() {
            unified = Some((false, path.to_string()));
        }
    }
    unified
}

/// Parses a cgroup memory limit or usage file (`max` or a byte count; v1's
/// "unlimited" is a huge number and is treated like `max`).
pub fn parse_cgroup_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>().ok().filter(|v| *v < (1 << 62))
}

/// Bytes this process may still allocate before its memory cgroup (or an
/// ancestor) hits its limit; `None` when unlimited or unknown. Running out
/// mid-capture would get rdlv-snap OOM-killed: harmless to the target (the
/// kernel detaches) but the capture is lost, so pre-flight checks it.
pub fn cgroup_memory_headroom() -> Option<u64> {
    memory_cgroup_headroom(Path::new("/proc/self/cgroup"))
}

/// Headroom of the memory cgroup (v2 or v1) named in a `/proc/PID/cgroup`
/// file: the smallest `limit - usage` along the path to the root, `None`
/// when unlimited or unknown.
pub fn memory_cgroup_headroom(cgroup_file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(cgroup_file).ok()?;
    let (v1, path) = parse_memory_cgroup(&text)?;
    let (root, limit_file, usage_file) = if v1 {
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
        )
    } else {
        ("/sys/fs/cgroup", "memory.max", "memory.current")
    };
    let mut best: Option<u64> = None;
    let mut dir = PathBuf::from(format!("{root}{path}"));
    loop {
        let limit = std::fs::read_to_string(dir.join(limit_file))
            .ok()
            .and_then(|t| parse_cgroup_bytes(&t));
        let usage = std::fs::read_to_string(dir.join(usage_file))
            .ok()
            .and_then(|t| parse_cgroup_bytes(&t));
        if let (Some(limit), Some(usage)) = (limit, usage) {
            let headroom = limit.saturating_sub(usage);
            best = Some(best.map_or(headroom, |b| b.min(headroom)));
        }
        if dir == Path::new(root) || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    best
}

/// Parses the `MAJ:MIN` device field of a maps line (hex).
pub fn parse_dev(dev: &str) -> Option<(u32, u32)> {
    let (major, minor) = dev.split_once(':')?;
    Some((
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
00400000-00488000 r-xp 00000000 fd:01 1234                               /srv/my app/orders (deleted)
Size:                544 kB
KernelPageSize:        4 kB
Rss:                 400 kB
Anonymous:             8 kB
VmFlags: rd ex mr mw me dw sd
c000000000-c004000000 rw-p 00000000 00:00 0 
Size:              65536 kB
THPeligible:    1
VmFlags: rd wr mr mw me ac sd nh
7ffd1e5f2000-7ffd1e5f6000 r--p 00000000 00:00 0                          [vvar]
Size:                 16 kB
VmFlags: rd mr pf io de dd sd
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Size:                  4 kB
VmFlags: ex
";

    #[test]
    fn parses_smaps_with_flags_and_spaces_in_paths() {
        let maps = parse_maps(SMAPS).unwrap();
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[0].start, 0x400000);
        assert_eq!(maps[0].end, 0x488000);
        assert_eq!(maps[0].perms, "r-xp");
        assert_eq!(maps[0].dev, "fd:01");
        assert_eq!(maps[0].inode, 1234);
        assert_eq!(maps[0].path, "/srv/my app/orders (deleted)");
        assert_eq!(maps[0].vm_flags, ["rd", "ex", "mr", "mw", "me", "dw", "sd"]);
        assert_eq!(maps[0].anonymous_bytes, Some(8192));
        assert_eq!(maps[1].anonymous_bytes, None);
        assert!(maps[0].readable() && !maps[0].writable());
        assert_eq!(maps[1].path, "");
        assert!(maps[1].writable());
        assert!(maps[1].has_flag("ac") && !maps[1].has_flag("dd"));
        assert_eq!(maps[2].path, "[vvar]");
        assert!(maps[2].has_flag("dd") && maps[2].has_flag("io"));
        assert_eq!(maps[3].start, 0xffffffffff600000);
        assert!(!maps[3].readable());
    }

    #[test]
    fn rejects_garbage_maps_lines() {
        assert!(parse_maps("zzzz-0000 rw-p 0 00:00 0\n").is_err());
        assert!(parse_maps("1000-0500 rw-p 0 00:00 0\n").is_err());
        assert!(parse_maps("VmFlags: rd\n").is_err());
        assert!(parse_maps("1000-2000 rw-p 0 00:00 notanumber\n").is_err());
    }

    #[test]
    fn parses_own_maps_and_smaps() {
        let pid = std::process::id();
        let maps = read_maps(pid).unwrap();
        let smaps = read_smaps(pid).unwrap();
        assert!(!maps.is_empty());
        assert!(smaps
            .iter()
            .all(|m| !m.vm_flags.is_empty() && m.anonymous_bytes.is_some()));
        assert!(maps.iter().all(|m| m.anonymous_bytes.is_none()));
        assert!(maps.iter().any(|m| m.path == "[stack]"));
    }

    #[test]
    fn parses_status_fixture() {
        let text = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\n\
                    Pid:\t4242\nPPid:\t1\nTracerPid:\t77\nUid:\t1000\t1000\t1000\t1000\n\
                    Gid:\t100\t100\t100\t100\nThreads:\t3\nSigQ:\t0/1000\nSigPnd:\t0000000000000100\n\
                    ShdPnd:\t0000000000000002\nSeccomp:\t2\n";
        let status = parse_status(text).unwrap();
        assert_eq!(
            status,
            Status {
                name: "sleep".into(),
                state: 'S',
                tgid: 4242,
                ppid: 1,
                tracer_pid: 77,
                uid: 1000,
                gid: 100,
                threads: 3,
                sig_pnd: 0x100,
                shd_pnd: 2,
                seccomp: 2,
            }
        );
        assert!(parse_status("Name:\tx\n").is_err());
        assert!(parse_status("State:\tS\nPPid:\tabc\n").is_err());
    }

    #[test]
    fn stat_state_survives_odd_comm() {
        assert_eq!(parse_stat_state("123 (a) b) c) S 1 2 3"), Some('S'));
        assert_eq!(parse_stat_state("123 (x) t 1"), Some('t'));
        assert_eq!(parse_stat_state("garbage"), None);
        assert_eq!(parse_stat_state("1 (x)"), None);
    }

    #[test]
    fn parses_auxv_and_cmdline() {
        let mut auxv = Vec::new();
        for (k, v) in [(6u64, 4096u64), (9, 0x401000), (0, 0), (7, 7)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&auxv), vec![(6, 4096), (9, 0x401000)]);
        assert_eq!(parse_auxv(&auxv[..20]), vec![(6, 4096)]);
        assert_eq!(
            parse_cmdline(b"./srv\0-x\0\0y\0"),
            vec!["./srv", "-x", "", "y"]
        );
        assert!(parse_cmdline(b"").is_empty());
        let own = read_auxv(std::process::id()).unwrap();
        assert!(own.iter().any(|(k, v)| *k == libc::AT_PAGESZ && *v == 4096));
    }

    #[test]
    fn own_tasks_and_exe() {
        let pid = std::process::id();
        let tids = list_tasks(pid).unwrap();
        assert!(tids.contains(&pid));
        assert!(thread_state(pid, pid).is_some());
        assert!(!thread_comm(pid, pid).is_empty());
        let (major, minor, inode) = exe_identity(pid).unwrap();
        let exe_path = exe_link(pid).unwrap();
        let maps = read_maps(pid).unwrap();
        assert!(maps.iter().any(|m| m.path == exe_path
            && m.inode == inode
            && parse_dev(&m.dev) == Some((major, minor))));
        assert_eq!(parse_dev("fd:01"), Some((0xfd, 1)));
        assert_eq!(
            parse_mem_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_mem_available("MemTotal: 100 kB\n"), None);
        assert_eq!(
            parse_memory_cgroup("9:name=systemd:/\n4:memory:/pod/abc\n0::/\n"),
            Some((true, "/pod/abc".to_string()))
        );
        assert_eq!(
            parse_memory_cgroup("0::/kubepods/burstable/pod1/c2\n"),
            Some((false, "/kubepods/burstable/pod1/c2".to_string()))
        );
        assert_eq!(parse_memory_cgroup("garbage"), None);
        assert_eq!(parse_cgroup_bytes("max\n"), None);
        assert_eq!(parse_cgroup_bytes("536870912\n"), Some(512 << 20));
        assert_eq!(parse_cgroup_bytes("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_bytes("x"), None);
        assert!(mem_available().is_some_and(|m| m > 0));
    }
}
