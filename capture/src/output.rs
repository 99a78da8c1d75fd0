//! The output file: no partial snapshot may ever be visible under its name.
//!
//! The snapshot is written into an anonymous `O_TMPFILE` inode in the target
//! directory and only linked under its name once complete and synced, so even
//! SIGKILL leaves nothing behind. On filesystems without `O_TMPFILE` a
//! dot-prefixed temporary file is used and renamed at the end. `-o -` streams
//! to stdout.

use std::cell::Cell;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::encrypt::{Encryption, FileKeyCell};
use crate::error::{CaptureError, Result};

/// Where the snapshot goes, opened before the target is stopped, and whether
/// it is encrypted on the way.
pub struct Output {
    dest: Dest,
    encryption: Option<Encryption>,
    name: String,
    cost: OutputCost,
}

/// What writing cost beyond producing the bytes, for `--json`: the figures
/// behind "encryption adds little to a capture".
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputCost {
    /// Time in the age layer (encrypting and sealing chunks), without the
    /// destination's own writes; zero when not encrypting.
    pub encrypt: Duration,
    /// Reading the linked file back and checking every block (decrypting
    /// it first when encrypted); zero for stdout and memory.
    pub verify: Duration,
}

enum Dest {
    /// A named file, being written anonymously.
    File(PendingFile),
    /// Standard output.
    Stdout,
    /// A memfd (`--redact`'s full snapshot), kept open after writing for
    /// `rdlv redact` to read.
    Memory(File),
    /// Already written by [`Output::write`].
    Written,
}

impl Output {
    /// Opens the destination. `-` means stdout. Fails early (before anything
    /// is stopped) if the file exists without `force` or the directory is not
    /// writable. With `encryption`, everything written is one age file.
    pub fn open(path: &str, force: bool, encryption: Option<Encryption>) -> Result<Output> {
        let dest = if path == "-" {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(CaptureError::Usage(
                    "refusing to write a binary snapshot to a terminal; redirect stdout or use -o FILE".into(),
                ));
            }
            Dest::Stdout
        } else {
            Dest::File(PendingFile::create(Path::new(path), force)?)
        };
        let name = match &dest {
            Dest::File(file) => file.path.display().to_string(),
            _ => "-".to_string(),
        };
        Ok(Output {
            dest,
            encryption,
            name,
            cost: OutputCost::default(),
        })
    }

    /// An output into anonymous memory: `--redact`'s full snapshot, which
    /// must never reach a filesystem. Not encrypted (it never leaves this
    /// process and the `rdlv redact` child) and not verified here (`rdlv
    /// redact` verifies its input before anything else).
    pub fn memory() -> Result<Output> {
        Ok(Output {
            dest: Dest::Memory(crate::redact::memfd()?),
            encryption: None,
            name: "the in-memory full snapshot".to_string(),
            cost: OutputCost::default(),
        })
    }

    /// The memfd of an output from [`Output::memory`].
    pub fn memory_file(&self) -> Option<&File> {
        match &self.dest {
            Dest::Memory(f) => Some(f),
            _ => None,
        }
    }

    /// What the write cost beyond producing the bytes (after [`Output::write`]).
    pub fn cost(&self) -> OutputCost {
        self.cost
    }

    /// Display name (`-` for stdout).
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Streams the snapshot that `produce` writes (plaintext) to the
    /// destination, through the age encryptor when encrypting, so only
    /// ciphertext reaches the file or the pipe. A file is then synced, linked
    /// under its name and verified: read back in full and every block checked
    /// (an encrypted file is decrypted for that with the file key the
    /// encryptor chose, which is wiped afterwards; no private key is needed).
    /// A file that fails verification is removed. Returns the bytes written
    /// to the destination. Only the first call writes.
    pub fn write(&mut self, produce: &mut dyn FnMut(&mut dyn Write) -> Result<u64>) -> Result<u64> {
        let name = self.name.clone();
        match std::mem::replace(&mut self.dest, Dest::Written) {
            Dest::Stdout => {
                let stdout = std::io::stdout();
                let (bytes, _key, encrypt) =
                    write_through(stdout.lock(), self.encryption.as_ref(), produce, &name)?;
                self.cost.encrypt = encrypt;
                Ok(bytes)
            }
            Dest::File(mut pending) => {
                let (bytes, key, encrypt) =
                    write_through(pending.file(), self.encryption.as_ref(), produce, &name)?;
                self.cost.encrypt = encrypt;
                let path = pending.path().to_path_buf();
                pending.commit()?;
                let verify_started = Instant::now();
                if let Err(source) = verify_file(&path, key.as_ref()) {
                    let _ = std::fs::remove_file(&path);
                    return Err(CaptureError::Verify { file: name, source });
                }
                self.cost.verify = verify_started.elapsed();
                Ok(bytes)
            }
            Dest::Memory(file) => {
                let written = write_through(&file, None, produce, &name).map(|(bytes, _, _)| bytes);
                self.dest = Dest::Memory(file);
                written
            }
            Dest::Written => Err(CaptureError::Usage(format!(
                "internal error: the snapshot for {name} was already written"
            ))),
        }
    }
}

/// Counts the bytes that reach the destination.
struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Adds the time spent in `inner`'s writes to `spent`.
struct Timed<'a, W: Write> {
    inner: W,
    spent: &'a Cell<Duration>,
}

impl<W: Write> Write for Timed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        let n = self.inner.write(buf);
        self.spent.set(self.spent.get() + started.elapsed());
        n
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        let r = self.inner.flush();
        self.spent.set(self.spent.get() + started.elapsed());
        r
    }
}

/// Runs `produce` into `out` (through an age stream when encrypting) and
/// flushes; returns the bytes written, when encrypting the file key, and
/// the time the age layer itself took (its writes minus the destination's).
fn write_through<W: Write>(
    out: W,
    encryption: Option<&Encryption>,
    produce: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
    name: &str,
) -> Result<(u64, Option<FileKeyCell>, Duration)> {
    let io = |e| CaptureError::output(name, e);
    let mut counted = Counting {
        inner: BufWriter::with_capacity(1 << 20, out),
        count: 0,
    };
    let (key, encrypt) = match encryption {
        None => {
            produce(&mut counted)?;
            (None, Duration::ZERO)
        }
        Some(encryption) => {
            let (encryptor, key) = encryption.encryptor()?;
            let (outer, inner) = (Cell::new(Duration::ZERO), Cell::new(Duration::ZERO));
            let dest = Timed {
                inner: &mut counted,
                spent: &inner,
            };
            let stream = encryptor.wrap_output(dest).map_err(io)?;
            let mut timed = Timed {
                inner: stream,
                spent: &outer,
            };
            produce(&mut timed)?;
            // Seals the last chunk: without it the file does not decrypt.
            let started = Instant::now();
            timed.inner.finish().map_err(io)?;
            outer.set(outer.get() + started.elapsed());
            (Some(key), outer.get().saturating_sub(inner.get()))
        }
    };
    counted.flush().map_err(io)?;
    Ok((counted.count, key, encrypt))
}

/// Reads the linked file back and checks every block; an encrypted file is
/// decrypted with its own file key (so it must be an age file).
fn verify_file(path: &Path, key: Option<&FileKeyCell>) -> rdlv_format::Result<()> {
    let snapshot = match key {
        None => rdlv_format::Snapshot::open(path)?,
        Some(key) => {
            let identity = key.identity().ok_or_else(|| {
                rdlv_format::FormatError::Decrypt("the encryptor recorded no file key".into())
            })?;
            let source = rdlv_format::AgeSource::open_with_file_key(File::open(path)?, &identity)?;
            rdlv_format::Snapshot::from_source(Box::new(source), rdlv_format::DEFAULT_CACHE_BYTES)?
        }
    };
    snapshot.verify().map(drop)
}

/// How the pending file will get its name.
enum Naming {
    /// Anonymous O_TMPFILE inode; linked at the end.
    Anonymous,
    /// Visible temporary file with this path; renamed at the end.
    Temporary(PathBuf),
}

/// A file being written that has no final name yet. Dropping it without
/// [`PendingFile::commit`] leaves nothing behind.
pub struct PendingFile {
    file: File,
    path: PathBuf,
    naming: Naming,
    force: bool,
    committed: bool,
}

fn io_to_output(path: &Path, error: std::io::Error) -> CaptureError {
    CaptureError::output(&path.display().to_string(), error)
}

fn cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

impl PendingFile {
    /// Creates the anonymous file in `path`'s directory.
    pub fn create(path: &Path, force: bool) -> Result<PendingFile> {
        if !force && std::fs::symlink_metadata(path).is_ok() {
            return Err(CaptureError::Exists {
                file: path.to_path_buf(),
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir_c = cstring(&dir).map_err(|e| io_to_output(path, e))?;
        // SAFETY: valid C string; the returned fd is owned by the File below.
        let fd = unsafe {
            libc::open(
                dir_c.as_ptr(),
                libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd >= 0 {
            // SAFETY: fd is a fresh descriptor we own.
            let file = unsafe { File::from_raw_fd(fd) };
            // The mode passed to open is filtered by umask; make it exactly 0600.
            set_mode_0600(&file).map_err(|e| io_to_output(path, e))?;
            return Ok(PendingFile {
                file,
                path: path.to_path_buf(),
                naming: Naming::Anonymous,
                force,
                committed: false,
            });
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            // Filesystems without O_TMPFILE answer EOPNOTSUPP (or EISDIR/EINVAL on old kernels).
            Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL) => {}
            _ => return Err(io_to_output(path, error)),
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot".into());
        let temp = dir.join(format!(".{file_name}.rdlv-snap-{}.tmp", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(&temp)
            .map_err(|e| io_to_output(path, e))?;
        set_mode_0600(&file).map_err(|e| io_to_output(path, e))?;
        Ok(PendingFile {
            file,
            path: path.to_path_buf(),
            naming: Naming::Temporary(temp),
            force,
            committed: false,
        })
    }

    /// The file to write into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data and gives the file its name. Without `force`, fails if
    /// the name appeared meanwhile; with it, replaces the old file atomically.
    pub fn commit(mut self) -> Result<()> {
        let path = self.path.clone();
        self.file.flush().map_err(|e| io_to_output(&path, e))?;
        self.file.sync_all().map_err(|e| io_to_output(&path, e))?;
        match &self.naming {
            Naming::Anonymous => {
                let proc_fd = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
                if self.force {
                    // Link under a temporary name, then rename over the old file.
                    let temp = temp_sibling(&path);
                    link_fd(&proc_fd, &temp).map_err(|e| io_to_output(&path, e))?;
                    if let Err(e) = std::fs::rename(&temp, &path) {
                        let _ = std::fs::remove_file(&temp);
                        return Err(io_to_output(&path, e));
                    }
                } else {
                    link_fd(&proc_fd, &path).map_err(|e| match e.raw_os_error() {
                        Some(libc::EEXIST) => CaptureError::Exists { file: path.clone() },
                        _ => io_to_output(&path, e),
                    })?;
                }
            }
            Naming::Temporary(temp) => {
                if !self.force {
                    // link() fails if the name exists, unlike rename().
                    std::fs::hard_link(temp, &path).map_err(|e| match e.raw_os_error() {
                        Some(libc::EEXIST) => CaptureError::Exists { file: path.clone() },
                        _ => io_to_output(&path, e),
                    })?;
                    let _ = std::fs::remove_file(temp);
                } else {
                    std::fs::rename(temp, &path).map_err(|e| io_to_output(&path, e))?;
                }
            }
        }
        self.committed = true;
        sync_parent(&path);
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            if let Naming::Temporary(temp) = &self.naming {
                let _ = std::fs::remove_file(temp);
            }
        }
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    path.with_file_name(format!(".{name}.rdlv-snap-{}.link", std::process::id()))
}

/// Links an open O_TMPFILE inode (through its /proc/self/fd path) at `to`.
fn link_fd(proc_fd: &Path, to: &Path) -> std::io::Result<()> {
    let from_c = cstring(proc_fd)?;
    let to_c = cstring(to)?;
    // SAFETY: valid C strings.
    let ret = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_mode_0600(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Makes the new directory entry durable; failures only weaken durability.
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Small extension so the fallback path sets the mode at creation.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn nothing_visible_until_commit_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        let mut pending = PendingFile::create(&path, false).unwrap();
        assert!(matches!(pending.naming, Naming::Anonymous));
        pending.file().write_all(b"hello").unwrap();
        assert!(entries(dir.path()).is_empty());
        pending.commit().unwrap();
        assert_eq!(entries(dir.path()), ["x.snap"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        let mut pending = PendingFile::create(&path, false).unwrap();
        pending.file().write_all(&[1u8; 4096]).unwrap();
        drop(pending);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        std::fs::write(&path, b"old").unwrap();
        assert!(matches!(
            PendingFile::create(&path, false),
            Err(CaptureError::Exists { .. })
        ));
        let mut pending = PendingFile::create(&path, true).unwrap();
        pending.file().write_all(b"new").unwrap();
        pending.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["x.snap"]);
        // A file that appears while we write is not clobbered without --force.
        let late = dir.path().join("late.snap");
        let pending = PendingFile::create(&late, false).unwrap();
        std::fs::write(&late, b"someone else").unwrap();
        assert!(matches!(pending.commit(), Err(CaptureError::Exists { .. })));
        assert_eq!(std::fs::read(&late).unwrap(), b"someone else");
    }

    #[test]
    fn temporary_fallback_renames_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.snap");
        let temp = dir.path().join(".y.snap.tmp");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .unwrap();
        let mut pending = PendingFile {
            file,
            path: path.clone(),
            naming: Naming::Temporary(temp.clone()),
            force: false,
            committed: false,
        };
        pending.file().write_all(b"data").unwrap();
        pending.commit().unwrap();
        assert_eq!(entries(dir.path()), ["y.snap"]);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .unwrap();
        drop(PendingFile {
            file,
            path: dir.path().join("z.snap"),
            naming: Naming::Temporary(temp),
            force: false,
            committed: false,
        });
        assert_eq!(entries(dir.path()), ["y.snap"]);
    }

    #[test]
    fn missing_directory_is_an_output_error() {
        let err = PendingFile::create(Path::new("/nonexistent-dir-rdlv/x.snap"), false)
            .err()
            .unwrap();
        assert!(matches!(err, CaptureError::Output { .. }), "{err}");
    }
}
