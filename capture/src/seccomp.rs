//! Whether the target's seccomp filters let an injected syscall through,
//! decided exactly: the filters are read from the stopped host thread
//! (`PTRACE_SECCOMP_GET_FILTER`, which needs CAP_SYS_ADMIN) and run, with a
//! small classic-BPF interpreter, on the `seccomp_data` the kernel would
//! build for each syscall rdlv-snap would inject (its number, the real
//! arguments, `AUDIT_ARCH_X86_64`, the address after the host's `syscall`
//! instruction).
//!
//! The kernel runs every filter of the thread and keeps the most
//! restrictive action: the lowest `ret & SECCOMP_RET_ACTION_FULL` compared
//! as a signed number, the most recently installed filter winning ties
//! (`seccomp_run_filters`). Only `SECCOMP_RET_ALLOW` lets rdlv-snap inject.
//! `SECCOMP_RET_ERRNO` would make the call fail harmlessly, but it is
//! decided before anything is injected, so the capture falls back at once.
//! Everything else (KILL_PROCESS, KILL_THREAD, TRAP: a SIGSYS the Go runtime
//! would crash on; TRACE and USER_NOTIF: another process decides; LOG: the
//! call runs but lands in the audit log as the service's own; any value the
//! kernel does not know, which it treats as KILL_PROCESS) means never inject.
//!
//! Invariants: a filter is at most [`BPF_MAXINSNS`] instructions, at most
//! [`MAX_FILTERS`] are read, every load and jump is bounds-checked, jumps
//! only go forward (so every run ends within the program's length), and a
//! program the interpreter does not fully understand is an error, which the
//! callers treat as "never inject". Nothing here panics on a hostile
//! program.

use nix::errno::Errno;

use crate::freeze::ptrace;

/// Longest classic BPF program the kernel accepts (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;
/// Most filters read from one thread (the kernel's own bound is 32768
/// instructions over all of them, so at least 8 per filter).
pub const MAX_FILTERS: usize = 4096;
/// `AUDIT_ARCH_X86_64`: the `arch` of a native x86-64 syscall.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `sizeof(struct seccomp_data)`.
const SECCOMP_DATA_LEN: u32 = 64;
/// `PTRACE_SECCOMP_GET_FILTER`.
const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
/// Scratch memory slots of classic BPF (`BPF_MEMWORDS`).
const MEMWORDS: usize = 16;

const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
const SECCOMP_RET_DATA: u32 = 0x0000_ffff;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// One classic BPF instruction (`struct sock_filter`, the same layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

impl Insn {
    /// Decodes `struct sock_filter` records (8 bytes each, native endian).
    pub fn parse_all(bytes: &[u8]) -> Result<Vec<Insn>, BpfError> {
        if !bytes.len().is_multiple_of(8) {
            return Err(BpfError::Malformed(format!(
                "{} bytes is not a whole number of 8-byte instructions",
                bytes.len()
            )));
        }
        let count = bytes.len() / 8;
        if count == 0 || count > BPF_MAXINSNS {
            return Err(BpfError::Length(count));
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect())
    }
}

/// What the kernel hands a seccomp filter (`struct seccomp_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeccompData {
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the calling convention.
    pub arch: u32,
    /// Address of the instruction after `syscall`.
    pub instruction_pointer: u64,
    /// The six syscall arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// A native x86-64 syscall made at `ip`.
    pub fn x86_64(nr: u64, args: [u64; 6], ip: u64) -> SeccompData {
        SeccompData {
            nr: nr as i32,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: ip,
            args,
        }
    }

    /// The 32-bit word at byte `offset` (little endian, as on x86-64).
    fn word(&self, offset: u32) -> Option<u32> {
        let low = |v: u64| v as u32;
        let high = |v: u64| (v >> 32) as u32;
        match offset {
            0 => Some(self.nr as u32),
            4 => Some(self.arch),
            8 => Some(low(self.instruction_pointer)),
            12 => Some(high(self.instruction_pointer)),
            16..=60 if offset.is_multiple_of(4) => {
                let arg = *self.args.get(((offset - 16) / 8) as usize)?;
                Some(if offset.is_multiple_of(8) {
                    low(arg)
                } else {
                    high(arg)
                })
            }
            _ => None,
        }
    }
}

/// Why a filter could not be evaluated (the callers never inject then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BpfError {
    /// Empty or longer than [`BPF_MAXINSNS`].
    #[error("a filter of {0} instructions (1..=4096 allowed)")]
    Length(usize),
    /// A jump or the program's end leads outside it.
    #[error("instruction {0} jumps or runs past the end of the filter")]
    OutOfBounds(usize),
    /// An instruction seccomp does not allow or we do not know.
    #[error("instruction {index} (code {code:#06x}) is not one a seccomp filter may use")]
    Unsupported {
        /// Its index.
        index: usize,
        /// Its opcode.
        code: u16,
    },
    /// A load outside `seccomp_data` or the scratch memory.
    #[error("instruction {index} loads from offset {k}, outside seccomp_data or scratch memory")]
    BadLoad {
        /// Its index.
        index: usize,
        /// The offset.
        k: u32,
    },
    /// Bytes that are not a filter.
    #[error("not a filter: {0}")]
    Malformed(String),
}

/// Runs one classic BPF program on `data`; returns its `SECCOMP_RET_*` value.
pub fn run(prog: &[Insn], data: &SeccompData) -> Result<u32, BpfError> {
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(BpfError::Length(prog.len()));
    }
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    // Every jump goes forward, so at most one step per instruction.
    for _ in 0..prog.len() {
        let index = pc;
        let insn = *prog.get(pc).ok_or(BpfError::OutOfBounds(index))?;
        let unsupported = BpfError::Unsupported {
            index,
            code: insn.code,
        };
        let bad_load = BpfError::BadLoad { index, k: insn.k };
        let slot = |k: u32| mem.get(k as usize).copied().ok_or(bad_load.clone());
        pc += 1;
        match insn.code {
            // BPF_LD | BPF_W | BPF_ABS
            0x20 => a = data.word(insn.k).ok_or(bad_load.clone())?,
            // BPF_LD | BPF_W | BPF_LEN, BPF_LDX | BPF_W | BPF_LEN
            0x80 => a = SECCOMP_DATA_LEN,
            0x81 => x = SECCOMP_DATA_LEN,
            // BPF_LD | BPF_IMM, BPF_LDX | BPF_IMM
            0x00 => a = insn.k,
            0x01 => x = insn.k,
            // BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM
            0x60 => a = slot(insn.k)?,
            0x61 => x = slot(insn.k)?,
            // BPF_ST, BPF_STX
            0x02 | 0x03 => {
                let value = if insn.code == 0x02 { a } else { x };
                *mem.get_mut(insn.k as usize).ok_or(bad_load.clone())? = value;
            }
            // BPF_RET | BPF_K, BPF_RET | BPF_A
            0x06 => return Ok(insn.k),
            0x16 => return Ok(a),
            // BPF_MISC | BPF_TAX, BPF_MISC | BPF_TXA
            0x07 => x = a,
            0x87 => a = x,
            code if code & 0x07 == 0x04 && code <= 0xff => {
                let operand = if code & 0x08 != 0 { x } else { insn.k };
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(operand),
                    0x10 => a.wrapping_sub(operand),
                    0x20 => a.wrapping_mul(operand),
                    // Division by zero ends a classic filter with 0 (KILL).
                    0x30 if operand == 0 => return Ok(0),
                    0x30 => a / operand,
                    0x90 if operand == 0 => return Ok(0),
                    0x90 => a % operand,
                    0x40 => a | operand,
                    0x50 => a & operand,
                    0xa0 => a ^ operand,
                    0x60 if operand < 32 => a << operand,
                    0x70 if operand < 32 => a >> operand,
                    0x80 if code == 0x84 => a.wrapping_neg(),
                    _ => return Err(unsupported),
                };
            }
            code if code & 0x07 == 0x05 && code <= 0xff => {
                let operand = if code & 0x08 != 0 { x } else { insn.k };
                let offset = match code & 0xf0 {
                    0x00 if code == 0x05 => insn.k as usize,
                    0x10 => branch(insn, a == operand),
                    0x20 => branch(insn, a > operand),
                    0x30 => branch(insn, a >= operand),
                    0x40 => branch(insn, a & operand != 0),
                    _ => return Err(unsupported),
                };
                pc = pc
                    .checked_add(offset)
                    .filter(|&target| target < prog.len())
                    .ok_or(BpfError::OutOfBounds(index))?;
            }
            _ => return Err(unsupported),
        }
    }
    Err(BpfError::OutOfBounds(prog.len().saturating_sub(1)))
}

fn branch(insn: Insn, taken: bool) -> usize {
    usize::from(if taken { insn.jt } else { insn.jf })
}

/// What the kernel would do with a syscall, by the filters' combined return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The syscall runs.
    Allow,
    /// The syscall fails with this errno and does nothing.
    Errno(u16),
    /// Anything else: the process or thread is killed, gets SIGSYS, a
    /// tracer or supervisor decides, or the call is logged (the raw value).
    Other(u32),
}

impl Action {
    fn of(ret: u32) -> Action {
        match ret & SECCOMP_RET_ACTION_FULL {
            SECCOMP_RET_ALLOW => Action::Allow,
            SECCOMP_RET_ERRNO => Action::Errno((ret & SECCOMP_RET_DATA) as u16),
            _ => Action::Other(ret),
        }
    }

    /// The kernel's name for the action.
    pub fn name(&self) -> String {
        match self {
            Action::Allow => "SECCOMP_RET_ALLOW".into(),
            Action::Errno(errno) => {
                format!("SECCOMP_RET_ERRNO ({})", Errno::from_raw(i32::from(*errno)))
            }
            Action::Other(ret) => match ret & SECCOMP_RET_ACTION_FULL {
                SECCOMP_RET_KILL_PROCESS => "SECCOMP_RET_KILL_PROCESS".into(),
                SECCOMP_RET_KILL_THREAD => "SECCOMP_RET_KILL_THREAD".into(),
                SECCOMP_RET_TRAP => "SECCOMP_RET_TRAP".into(),
                SECCOMP_RET_USER_NOTIF => "SECCOMP_RET_USER_NOTIF".into(),
                SECCOMP_RET_TRACE => "SECCOMP_RET_TRACE".into(),
                SECCOMP_RET_LOG => "SECCOMP_RET_LOG".into(),
                other => format!("an unknown action {other:#010x}"),
            },
        }
    }
}

/// Runs every filter (most recent first, as read) and combines their
/// results as the kernel does.
pub fn decide(filters: &[Vec<Insn>], data: &SeccompData) -> Result<Action, BpfError> {
    let mut ret = SECCOMP_RET_ALLOW;
    for filter in filters {
        let current = run(filter, data)?;
        if ((current & SECCOMP_RET_ACTION_FULL) as i32) < ((ret & SECCOMP_RET_ACTION_FULL) as i32) {
            ret = current;
        }
    }
    Ok(Action::of(ret))
}

/// One syscall rdlv-snap would inject, with its real arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Its name, for messages.
    pub name: &'static str,
    /// Its x86-64 number.
    pub nr: u64,
    /// Its arguments.
    pub args: [u64; 6],
    /// Whether it may be made with the target's filters suspended
    /// (`PTRACE_O_SUSPEND_SECCOMP`) when they would only refuse it with an
    /// errno. Not for a call that a sentinel may have to make again without
    /// the suspension (the pre-copy's `close()`).
    pub suspendable: bool,
}

/// How the planned syscalls may be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// The filters allow every one of them.
    Allowed,
    /// The filters allow all but suspendable calls they would refuse with
    /// an errno (harmless: nothing done); those are made with the filters
    /// suspended for the host thread (`PTRACE_O_SUSPEND_SECCOMP`).
    Suspended,
}

/// Whether the filters of the stopped thread `tid` let every syscall of
/// `planned`, made at `ip`, through (with `suspend`, see [`Admitted`]), or
/// the reason not to inject.
pub fn check(tid: u32, ip: u64, planned: &[Planned], suspend: bool) -> Result<Admitted, String> {
    let filters = read_filters(tid).map_err(unreadable)?;
    judge(&filters, ip, planned, suspend)
}

/// [`check`] on filters already read. An errno verdict is suspended only
/// when `suspend` (rdlv-snap [`can_suspend`]) and the call is suspendable;
/// a kill, trap, trace or notify verdict is never injected, suspended or not.
pub fn judge(
    filters: &[Vec<Insn>],
    ip: u64,
    planned: &[Planned],
    suspend: bool,
) -> Result<Admitted, String> {
    let mut admitted = Admitted::Allowed;
    for call in planned {
        let data = SeccompData::x86_64(call.nr, call.args, ip);
        match decide(filters, &data) {
            Ok(Action::Allow) => {}
            Ok(Action::Errno(_)) if suspend && call.suspendable => {
                admitted = Admitted::Suspended;
            }
            Ok(action @ Action::Errno(_)) => {
                let hint = if call.suspendable {
                    "; with CAP_SYS_ADMIN and no seccomp filter of its own, rdlv-snap makes the call with the filter suspended (PTRACE_O_SUSPEND_SECCOMP)"
                } else {
                    ""
                };
                return Err(format!(
                    "the target's seccomp filter answers {}() with {}: nothing was injected{hint}",
                    call.name,
                    action.name()
                ));
            }
            Ok(action) => {
                return Err(format!(
                    "the target's seccomp filter answers {}() with {}, which could harm it: nothing was injected",
                    call.name,
                    action.name()
                ))
            }
            Err(error) => {
                return Err(format!(
                    "the target's seccomp filter cannot be evaluated ({error}): nothing was injected"
                ))
            }
        }
    }
    Ok(admitted)
}

/// Whether rdlv-snap may suspend a tracee's seccomp filters
/// (`PTRACE_O_SUSPEND_SECCOMP`): the kernel requires CAP_SYS_ADMIN and a
/// tracer that runs under no seccomp filter itself (and
/// CONFIG_CHECKPOINT_RESTORE, found out when the option is set).
pub fn can_suspend() -> bool {
    have_cap_sys_admin() && crate::proc::seccomp_mode(std::process::id()) == 0
}

/// The message when a thread's filters cannot be read.
fn unreadable(errno: Errno) -> String {
    match errno {
        Errno::EACCES | Errno::EPERM => unreadable_without_capability(),
        other => format!(
            "the target runs under a seccomp filter that rdlv-snap cannot read (PTRACE_SECCOMP_GET_FILTER: {other}), so an injected syscall could kill it"
        ),
    }
}

/// Why a filtered target gets the plain copy when rdlv-snap lacks
/// CAP_SYS_ADMIN, and what gives the fast path.
pub fn unreadable_without_capability() -> String {
    "the target runs under a seccomp filter (Seccomp: 2) that rdlv-snap cannot read without CAP_SYS_ADMIN \
     (PTRACE_SECCOMP_GET_FILTER), so an injected syscall could kill it; for the fast path run rdlv-snap as root \
     on the host, or give it the capability (`docker run --cap-add SYS_ADMIN`, `kubectl debug --profile=sysadmin`)"
        .into()
}

/// Before any stop: whether syscalls may be injected into `pid` at all as
/// far as seccomp goes. `Ok(false)`: no filter; `Ok(true)`: filters that
/// must be [`check`]ed on the host thread once stopped; `Err`: never (strict
/// mode, or filters rdlv-snap cannot read), with the reason to print.
pub fn admission(pid: u32) -> Result<bool, String> {
    admit(crate::proc::seccomp_mode(pid), have_cap_sys_admin())
}

/// [`admission`] from the target's `Seccomp:` mode and our capability.
pub fn admit(mode: u32, can_read_filters: bool) -> Result<bool, String> {
    match mode {
        0 => Ok(false),
        2 if can_read_filters => Ok(true),
        2 => Err(unreadable_without_capability()),
        _ => Err(format!(
            "the target runs in seccomp mode {mode} (strict), where any injected syscall kills it"
        )),
    }
}

/// Whether this process has CAP_SYS_ADMIN in its effective set.
pub fn have_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// Reads every seccomp filter of `tid` (ptrace-stopped by us), most recent
/// first. Empty when the thread has none.
pub fn read_filters(tid: u32) -> Result<Vec<Vec<Insn>>, Errno> {
    let mut filters = Vec::new();
    for index in 0..MAX_FILTERS {
        let count = match ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, 0) {
            Ok(count) => usize::try_from(count).unwrap_or(0),
            // Past the oldest filter (or none at all).
            Err(Errno::ENOENT) => return Ok(filters),
            Err(errno) => return Err(errno),
        };
        if count == 0 || count > BPF_MAXINSNS {
            return Err(Errno::E2BIG);
        }
        let mut raw = vec![0u8; count * 8];
        let got = ptrace(
            PTRACE_SECCOMP_GET_FILTER,
            tid,
            index,
            raw.as_mut_ptr() as usize,
        )?;
        if usize::try_from(got).ok() != Some(count) {
            return Err(Errno::EAGAIN);
        }
        filters.push(Insn::parse_all(&raw).map_err(|_| Errno::EINVAL)?);
    }
    Err(Errno::E2BIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's default profile (moby/profiles v0.3.0) as libseccomp
    /// compiles it for a default container on x86-64; see
    /// `testdata/seccomp/README.md` for how it was made.
    const DOCKER_DEFAULT: &[u8] = include_bytes!("../testdata/seccomp/docker-default.bpf");
    /// libseccomp: allow everything, kill the process on userfaultfd.
    const KILL_USERFAULTFD: &[u8] = include_bytes!("../testdata/seccomp/kill-userfaultfd.bpf");

    const SYS_CLOSE: u64 = 3;
    const SYS_CLONE: u64 = 56;
    const SYS_WAIT4: u64 = 61;
    const SYS_EXIT_GROUP: u64 = 231;
    const SYS_USERFAULTFD: u64 = 323;
    const SYS_UNSHARE: u64 = 272;
    const SYS_KEXEC_LOAD: u64 = 246;
    const IP: u64 = 0x46_8d4e;

    fn data(nr: u64, args: [u64; 6]) -> SeccompData {
        SeccompData::x86_64(nr, args, IP)
    }

    fn filter(bytes: &[u8]) -> Vec<Insn> {
        Insn::parse_all(bytes).unwrap()
    }

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn docker_default_profile_decides_each_injected_syscall() {
        let docker = vec![filter(DOCKER_DEFAULT)];
        let uffd_flags = 1 | libc::O_CLOEXEC as u64 | libc::O_NONBLOCK as u64;
        // userfaultfd needs CAP_SYS_PTRACE in the profile: EPERM for a default container.
        assert_eq!(
            decide(&docker, &data(SYS_USERFAULTFD, [uffd_flags, 0, 0, 0, 0, 0])).unwrap(),
            Action::Errno(libc::EPERM as u16)
        );
        // A plain fork, its child's exit_group, the reaping wait4 and close are allowed.
        for (nr, args) in [
            (SYS_CLONE, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            (SYS_EXIT_GROUP, [82, 0, 0, 0, 0, 0]),
            (SYS_WAIT4, [1234, 0, 0x4000_0001, 0, 0, 0]),
            (SYS_CLOSE, [7, 0, 0, 0, 0, 0]),
        ] {
            assert_eq!(
                decide(&docker, &data(nr, args)).unwrap(),
                Action::Allow,
                "{nr}"
            );
        }
        // clone with CLONE_NEWUSER is refused by the argument check; unshare and ptrace too.
        let clone_newuser = data(
            SYS_CLONE,
            [0x1000_0000 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
        );
        assert_eq!(
            decide(&docker, &clone_newuser).unwrap(),
            Action::Errno(libc::EPERM as u16)
        );
        assert_ne!(
            decide(&docker, &data(SYS_UNSHARE, [0; 6])).unwrap(),
            Action::Allow
        );
        // A foreign architecture (aarch64) is killed.
        let mut foreign = data(SYS_CLOSE, [7, 0, 0, 0, 0, 0]);
        foreign.arch = 0xC000_00B7;
        assert!(matches!(
            decide(&docker, &foreign).unwrap(),
            Action::Other(_)
        ));
        assert!(judge(&docker, IP, &[precopy_call(uffd_flags)], false)
            .unwrap_err()
            .contains("EPERM"));
        assert_eq!(
            decide(&docker, &data(SYS_KEXEC_LOAD, [0; 6])).unwrap(),
            Action::Errno(libc::EPERM as u16)
        );
    }

    fn precopy_call(flags: u64) -> Planned {
        Planned {
            name: "userfaultfd",
            nr: SYS_USERFAULTFD,
            args: [flags, 0, 0, 0, 0, 0],
            suspendable: true,
        }
    }

    /// Docker's default profile answers userfaultfd() with EPERM: with the
    /// right to suspend filters that call is made suspended, a close() it
    /// allows goes through as it is, and neither an errno verdict on a call
    /// that is not suspendable nor a kill verdict is ever suspended.
    #[test]
    fn an_errno_verdict_is_suspended_only_for_suspendable_calls() {
        let docker = vec![filter(DOCKER_DEFAULT)];
        let uffd_flags = 1 | libc::O_CLOEXEC as u64 | libc::O_NONBLOCK as u64;
        let close = Planned {
            name: "close",
            nr: SYS_CLOSE,
            args: [7, 0, 0, 0, 0, 0],
            suspendable: false,
        };
        let planned = [precopy_call(uffd_flags), close];
        assert_eq!(judge(&docker, IP, &planned, true), Ok(Admitted::Suspended));
        let refused = judge(&docker, IP, &planned, false).unwrap_err();
        assert!(
            refused.contains("EPERM") && refused.contains("PTRACE_O_SUSPEND_SECCOMP"),
            "{refused}"
        );
        assert_eq!(judge(&docker, IP, &[close], true), Ok(Admitted::Allowed));
        let fixed = Planned {
            suspendable: false,
            ..precopy_call(uffd_flags)
        };
        assert!(judge(&docker, IP, &[fixed], true).is_err());
        let kill = vec![filter(KILL_USERFAULTFD)];
        let reason = judge(&kill, IP, &[precopy_call(1)], true).unwrap_err();
        assert!(reason.contains("SECCOMP_RET_KILL_PROCESS"), "{reason}");
    }

    #[test]
    fn kill_on_userfaultfd_is_never_injected() {
        let kill = vec![filter(KILL_USERFAULTFD)];
        assert_eq!(
            decide(&kill, &data(SYS_USERFAULTFD, [1, 0, 0, 0, 0, 0])).unwrap(),
            Action::Other(SECCOMP_RET_KILL_PROCESS)
        );
        assert_eq!(
            decide(&kill, &data(SYS_CLOSE, [3, 0, 0, 0, 0, 0])).unwrap(),
            Action::Allow
        );
        let reason = judge(&kill, IP, &[precopy_call(1)], false).unwrap_err();
        assert!(reason.contains("SECCOMP_RET_KILL_PROCESS"), "{reason}");
        // Together with Docker's the most restrictive wins, in either order.
        let docker = filter(DOCKER_DEFAULT);
        let both = vec![docker.clone(), filter(KILL_USERFAULTFD)];
        let userfaultfd = data(SYS_USERFAULTFD, [1, 0, 0, 0, 0, 0]);
        assert_eq!(
            decide(&both, &userfaultfd).unwrap(),
            Action::Other(SECCOMP_RET_KILL_PROCESS)
        );
        let reversed = vec![filter(KILL_USERFAULTFD), docker];
        assert_eq!(
            decide(&reversed, &userfaultfd).unwrap(),
            Action::Other(SECCOMP_RET_KILL_PROCESS)
        );
    }

    #[test]
    fn admission_needs_the_capability_for_filtered_targets() {
        assert_eq!(admit(0, false), Ok(false));
        assert_eq!(admit(2, true), Ok(true));
        let without = admit(2, false).unwrap_err();
        assert!(without.contains("--cap-add SYS_ADMIN") && without.contains("CAP_SYS_ADMIN"));
        assert!(admit(1, true).unwrap_err().contains("strict"));
    }

    #[test]
    fn combines_like_the_kernel() {
        let ret = |k| vec![insn(0x06, 0, 0, k)];
        let errno_1 = ret(SECCOMP_RET_ERRNO | 1);
        let errno_2 = ret(SECCOMP_RET_ERRNO | 2);
        let d = data(0, [0; 6]);
        assert_eq!(decide(&[], &d).unwrap(), Action::Allow);
        // Equal actions: the first (most recent) filter's data wins.
        assert_eq!(
            decide(&[errno_1.clone(), errno_2.clone()], &d).unwrap(),
            Action::Errno(1)
        );
        assert_eq!(
            decide(&[errno_2, errno_1.clone()], &d).unwrap(),
            Action::Errno(2)
        );
        // LOG is less restrictive than ERRNO, TRAP more, KILL_PROCESS most.
        let log = ret(SECCOMP_RET_LOG);
        assert_eq!(
            decide(&[log.clone(), errno_1.clone()], &d).unwrap(),
            Action::Errno(1)
        );
        assert_eq!(
            decide(std::slice::from_ref(&log), &d).unwrap(),
            Action::Other(SECCOMP_RET_LOG)
        );
        let trap = ret(SECCOMP_RET_TRAP);
        assert_eq!(
            decide(&[errno_1, trap], &d).unwrap(),
            Action::Other(SECCOMP_RET_TRAP)
        );
        let kill = ret(SECCOMP_RET_KILL_PROCESS);
        let thread = ret(SECCOMP_RET_KILL_THREAD);
        assert_eq!(
            decide(&[thread, kill, log], &d).unwrap(),
            Action::Other(SECCOMP_RET_KILL_PROCESS)
        );
        // Unknown actions are never taken for ALLOW.
        let odd = ret(0x7ffe_0000);
        assert!(judge(&[odd], IP, &[precopy_call(1)], false)
            .unwrap_err()
            .contains("unknown action"));
    }

    #[test]
    fn reads_every_field_of_seccomp_data() {
        let d = SeccompData {
            nr: 323,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0x1122_3344_5566_7788,
            args: [1, 2, 3, 4, 5, 0xaaaa_bbbb_cccc_dddd],
        };
        let load = |k| run(&[insn(0x20, 0, 0, k), insn(0x16, 0, 0, 0)], &d).unwrap();
        assert_eq!(load(0), 323);
        assert_eq!(load(4), AUDIT_ARCH_X86_64);
        assert_eq!(load(8), 0x5566_7788);
        assert_eq!(load(12), 0x1122_3344);
        assert_eq!(load(16), 1);
        assert_eq!(load(20), 0);
        assert_eq!(load(56), 0xcccc_dddd);
        assert_eq!(load(60), 0xaaaa_bbbb);
        for k in [2, 64, 68, u32::MAX] {
            assert!(matches!(
                run(&[insn(0x20, 0, 0, k), insn(0x16, 0, 0, 0)], &d),
                Err(BpfError::BadLoad { .. })
            ));
        }
        // Scratch memory, ALU and X.
        let prog = [
            insn(0x00, 0, 0, 40), // A = 40
            insn(0x02, 0, 0, 15), // M[15] = A
            insn(0x01, 0, 0, 2),  // X = 2
            insn(0x2c, 0, 0, 0),  // A *= X
            insn(0x04, 0, 0, 1),  // A += 1
            insn(0x61, 0, 0, 15), // X = M[15]
            insn(0x1c, 0, 0, 0),  // A -= X
            insn(0x16, 0, 0, 0),  // ret A
        ];
        assert_eq!(run(&prog, &d).unwrap(), 41);
        assert!(run(&[insn(0x02, 0, 0, 16), insn(0x06, 0, 0, 0)], &d).is_err());
        // Division by zero ends the filter with 0 (kill).
        let div = [
            insn(0x01, 0, 0, 0),
            insn(0x3c, 0, 0, 0),
            insn(0x06, 0, 0, SECCOMP_RET_ALLOW),
        ];
        assert_eq!(run(&div, &d).unwrap(), 0);
    }

    #[test]
    fn hostile_programs_are_errors_not_panics() {
        let d = data(SYS_USERFAULTFD, [0; 6]);
        assert_eq!(run(&[], &d), Err(BpfError::Length(0)));
        let long = vec![insn(0x06, 0, 0, SECCOMP_RET_ALLOW); BPF_MAXINSNS + 1];
        assert_eq!(run(&long, &d), Err(BpfError::Length(BPF_MAXINSNS + 1)));
        assert!(run(&long[..BPF_MAXINSNS], &d).is_ok());
        // Jumps past the end, by k, jt or jf.
        assert!(matches!(
            run(&[insn(0x05, 0, 0, 1)], &d),
            Err(BpfError::OutOfBounds(0))
        ));
        assert!(run(&[insn(0x05, 0, 0, u32::MAX), insn(0x06, 0, 0, 0)], &d).is_err());
        assert!(run(&[insn(0x15, 255, 0, 0), insn(0x06, 0, 0, 0)], &d).is_err());
        assert!(run(&[insn(0x15, 0, 255, 1), insn(0x06, 0, 0, 0)], &d).is_err());
        // Falling off the end without a return.
        assert!(matches!(
            run(&[insn(0x00, 0, 0, 0)], &d),
            Err(BpfError::OutOfBounds(0))
        ));
        // Opcodes seccomp refuses: packet loads (H, B, IND, MSH), RET X, unknown.
        for code in [0x28, 0x30, 0x40, 0xb1, 0x0e, 0xff, 0x64 | 0x100] {
            let prog = [insn(code, 0, 0, 40), insn(0x06, 0, 0, SECCOMP_RET_ALLOW)];
            assert!(
                matches!(run(&prog, &d), Err(BpfError::Unsupported { .. })),
                "code {code:#x}"
            );
        }
        // Shifts by 32 or more are not taken as anything.
        assert!(run(&[insn(0x64, 0, 0, 32), insn(0x06, 0, 0, 0)], &d).is_err());
        // Every 16-bit opcode with every small k on a short program: no panic.
        for code in 0..=u16::MAX {
            for k in [0, 1, 15, 16, 63, 64, u32::MAX] {
                let prog = [
                    insn(code, 1, 0, k),
                    insn(0x06, 0, 0, 0),
                    insn(0x16, 0, 0, 0),
                ];
                let _ = run(&prog, &d);
            }
        }
        assert!(Insn::parse_all(&[0; 7]).is_err());
        assert!(Insn::parse_all(&[]).is_err());
        assert!(Insn::parse_all(&vec![0; 8 * (BPF_MAXINSNS + 1)]).is_err());
        // A filter that cannot be evaluated is never a reason to inject.
        let bad = vec![vec![
            insn(0x28, 0, 0, 0),
            insn(0x06, 0, 0, SECCOMP_RET_ALLOW),
        ]];
        assert!(judge(&bad, IP, &[precopy_call(1)], false)
            .unwrap_err()
            .contains("cannot be evaluated"));
    }

    /// Kills and reaps a forked child.
    struct ChildGuard(libc::pid_t);

    impl Drop for ChildGuard {
        fn drop(&mut self) {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }

    /// The filters of a thread of this process's child are read back as
    /// installed (needs CAP_SYS_ADMIN: the tests run as root).
    #[test]
    fn reads_the_filters_of_a_stopped_thread() {
        assert!(
            have_cap_sys_admin(),
            "this test needs CAP_SYS_ADMIN (run as root)"
        );
        let prog = filter(KILL_USERFAULTFD);
        let mut pipe = [0i32; 2];
        // SAFETY: a new pipe.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: fork in a test process; the child only makes raw syscalls
        // and exits, never returning into the test harness.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: raw syscalls in the forked child.
            unsafe {
                let (one, zero, filter_mode) =
                    (1 as libc::c_ulong, 0 as libc::c_ulong, 2 as libc::c_ulong);
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero);
                let ret = libc::prctl(
                    libc::PR_SET_SECCOMP,
                    filter_mode,
                    &fprog as *const libc::sock_fprog,
                );
                let status = [if ret == 0 {
                    1
                } else {
                    100 + *libc::__errno_location() as u8
                }];
                libc::write(pipe[1], status.as_ptr().cast(), 1);
                libc::pause();
                libc::_exit(0);
            }
        }
        let child_guard = ChildGuard(child);
        let pid = child as u32;
        let mut status = [0u8];
        // SAFETY: reading one byte from our pipe, then closing both ends.
        let got = unsafe { libc::read(pipe[0], status.as_mut_ptr().cast(), 1) };
        unsafe {
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        assert_eq!(
            (got, status[0]),
            (1, 1),
            "the child could not install its filter"
        );
        assert_eq!(crate::proc::seccomp_mode(pid), 2);
        let frozen = crate::freeze::Frozen::freeze(
            pid,
            std::time::Duration::from_secs(5),
            &std::sync::atomic::AtomicI32::new(0),
            &[],
        )
        .unwrap();
        let read = read_filters(pid);
        drop(frozen);
        drop(child_guard);
        assert_eq!(read.unwrap(), vec![prog]);
        // This process has no filter.
        assert_eq!(crate::proc::seccomp_mode(std::process::id()), 0);
    }
}
