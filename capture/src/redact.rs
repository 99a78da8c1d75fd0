//! `rdlv-snap --redact`: capture straight to a redacted snapshot, with the
//! full image never on a disk.
//!
//! Redaction needs DWARF, the Go runtime model and the value engine, which
//! this binary must not carry (it stays Go-agnostic and small). So the full
//! snapshot is written into a memfd (anonymous memory, never a file on a
//! filesystem; like rdlv-snap's own buffers it can reach swap only if the
//! host has swap), and `rdlv redact /proc/self/fd/N -o -` runs as a child
//! that inherits that one descriptor. Its stdout, the redacted snapshot, is
//! streamed into the ordinary output ([`crate::output::Output`]): encrypted
//! as it arrives with `--encrypt-to`, written to an anonymous file linked
//! only once complete, verified, or sent to stdout with `-o -`.
//!
//! Invariants: the analyzer is found before the target is stopped
//! ([`find_rdlv`]); the memfd is close-on-exec for every other child and is
//! closed when the capture ends; a failing `rdlv redact` leaves no output
//! file (the output is committed only after the child exited 0).

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{CaptureError, Result};
use crate::output::Output;

/// Environment variable naming the `rdlv` binary (after `--redact-with`).
pub const RDLV_ENV: &str = "RDLV";

/// How to run the analyzer's redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    /// The `rdlv` binary.
    pub rdlv: PathBuf,
    /// Options after `rdlv redact SNAP -o -` (`--keep EXPR`, `--keep-deep`,
    /// `--keep-labels`).
    pub args: Vec<OsString>,
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `rdlv`: `explicit` (`--redact-with`), else `$RDLV`, else `rdlv`
/// beside this executable, else the first `rdlv` on `PATH`. The error lists
/// what was tried and how to provide it.
pub fn find_rdlv(
    explicit: Option<&Path>,
    env: Option<OsString>,
    self_exe: Option<PathBuf>,
    path: Option<OsString>,
) -> Result<PathBuf> {
    let mut tried = Vec::new();
    if let Some(p) = explicit {
        if is_executable(p) {
            return Ok(p.to_path_buf());
        }
        return Err(CaptureError::Usage(format!(
            "--redact-with {}: not an executable file; pass the path of the rdlv analyzer",
            p.display()
        )));
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        return Err(CaptureError::Usage(format!(
            "${RDLV_ENV}={}: not an executable file; point it at the rdlv analyzer",
            p.display()
        )));
    }
    if let Some(dir) = self_exe.as_deref().and_then(Path::parent) {
        let p = dir.join("rdlv");
        if is_executable(&p) {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    if let Some(path) = path {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("rdlv");
            if is_executable(&p) {
                return Ok(p);
            }
        }
        tried.push("rdlv on PATH".into());
    }
    Err(CaptureError::Usage(format!(
        "--redact runs the rdlv analyzer, which was not found (tried {}); nothing was stopped; \
         install rdlv beside rdlv-snap or on PATH, set {RDLV_ENV}=/path/to/rdlv, or pass --redact-with /path/to/rdlv",
        tried.join(", ")
    )))
}

/// A new memfd for the full snapshot, close-on-exec.
pub fn memfd() -> Result<File> {
    let name = c"rdlv-snap-full-snapshot";
    // SAFETY: a NUL-terminated name and flags; the returned descriptor is
    // owned by the File from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(CaptureError::output(
            "the in-memory snapshot (memfd_create)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Runs `rdlv redact` on the full snapshot in `full` and streams its output
/// into `out`. Returns the bytes written to the destination.
pub fn run(redactor: &Redactor, full: &File, out: &mut Output) -> Result<u64> {
    let fd = full.as_raw_fd();
    let mut cmd = Command::new(&redactor.rdlv);
    cmd.arg("redact")
        .arg(format!("/proc/self/fd/{fd}"))
        .arg("-o")
        .arg("-")
        .args(&redactor.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env("NO_COLOR", "1");
    // SAFETY: between fork and exec only fcntl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // The one descriptor the child inherits: the memfd.
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let failed = |detail: String| CaptureError::Redact {
        rdlv: redactor.rdlv.clone(),
        detail,
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start it: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no pipe to its output".into()))?;
    let mut status = None;
    let written = out.write(&mut |w: &mut dyn Write| {
        let n = std::io::copy(&mut stdout, w)
            .map_err(|e| failed(format!("reading its output: {e}")))?;
        let s = child
            .wait()
            .map_err(|e| failed(format!("waiting for it: {e}")))?;
        status = Some(s);
        if !s.success() {
            return Err(failed(format!("it exited with {s} (its message is above)")));
        }
        Ok(n)
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    #[test]
    fn rdlv_is_found_in_the_documented_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let c = dir.path().join("c");
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let explicit = exe(&a, "my-rdlv");
        let beside = exe(&b, "rdlv");
        let on_path = exe(&c, "rdlv");
        let snap = Some(b.join("rdlv-snap"));
        let path = Some(OsString::from(c.as_os_str()));
        let env = Some(OsString::from(explicit.as_os_str()));
        assert_eq!(
            find_rdlv(Some(&explicit), None, snap.clone(), path.clone()).ok(),
            Some(explicit.clone())
        );
        assert_eq!(
            find_rdlv(None, env, snap.clone(), path.clone()).ok(),
            Some(explicit.clone())
        );
        assert_eq!(find_rdlv(None, None, snap, path.clone()).ok(), Some(beside));
        assert_eq!(
            find_rdlv(None, None, Some(a.join("rdlv-snap")), path).ok(),
            Some(on_path)
        );
        // Not found: a usage error (exit 2) that says how to provide it.
        let err = find_rdlv(None, None, Some(a.join("rdlv-snap")), None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("--redact-with") && text.contains("RDLV="),
            "{text}"
        );
        // A given path that is not executable is refused, not skipped.
        let plain = a.join("plain");
        std::fs::write(&plain, "x").expect("write");
        assert!(find_rdlv(Some(&plain), None, None, None).is_err());
        assert!(find_rdlv(None, Some(plain.into_os_string()), None, None).is_err());
    }

    #[test]
    fn the_memfd_is_anonymous_memory() {
        let mut f = memfd().expect("memfd");
        f.write_all(b"abc").expect("write");
        let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("link");
        assert!(
            link.to_string_lossy()
                .starts_with("/memfd:rdlv-snap-full-snapshot"),
            "{}",
            link.display()
        );
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("read back"),
            b"abc"
        );
    }
}
