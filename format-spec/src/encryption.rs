//! Age-encrypted snapshots: `rdlv-snap --encrypt-to` writes one standard age
//! v1 file (age-encryption.org/v1) whose plaintext is an ordinary snapshot.
//! This module opens such a file for random access without ever writing its
//! plaintext anywhere but to the caller's buffers.
//!
//! Why age and not a container of our own: anyone can decrypt the file with
//! stock tools (`age -d -i KEY`), users already hold age and SSH keys, and
//! age's STREAM construction authenticates every 64 KiB chunk, its position and
//! the end of the stream, so truncation, reordering and tampering are detected
//! without a nonce scheme of our own.
//!
//! Random access: an age payload is a sequence of independently sealed
//! chunks of [`AGE_CHUNK_LEN`] plaintext bytes, so plaintext offset `o` lives in
//! chunk `o / AGE_CHUNK_LEN`. [`AgeSource`] decrypts whole chunks on demand
//! through the `age` crate's seekable `StreamReader` and keeps the most
//! recently used ones ([`AGE_CACHE_CHUNKS`]) so that neighbouring small reads
//! (a block header, then its payload; several small zstd frames sharing a
//! chunk) decrypt each chunk once.
//!
//! Invariants:
//! - The plaintext length is authenticated at open (the last chunk must
//!   decrypt *as the last chunk*), so a truncated or extended file is refused
//!   before any byte is used, and [`Source::len`] is exact.
//! - The header MAC is checked at open with the file key the identity
//!   unwrapped; a wrong key or a damaged header fails there.
//! - Every chunk is authenticated before a byte of it is returned; a damaged
//!   chunk is a [`FormatError::Decrypt`] naming its plaintext offset.
//! - After the identity has unwrapped the file key once, further stream
//!   readers (one per concurrent reader thread, pooled) are opened with that
//!   file key, so an SSH or X25519 unwrap happens once per open.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use zeroize::Zeroize;

use crate::source::Source;
use crate::{FormatError, Result};

/// Every age file starts with this (then the version, `v1`, and a newline).
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/";
/// The one age version this reader knows.
const AGE_V1_LINE: &str = "age-encryption.org/v1";
/// An armored (PEM-like) age file starts with this.
const AGE_ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// Plaintext bytes per age payload chunk (fixed by the age format).
pub const AGE_CHUNK_LEN: u64 = 64 * 1024;
/// Ciphertext bytes per full chunk: the plaintext plus the Poly1305 tag.
const AGE_SEALED_CHUNK_LEN: u64 = AGE_CHUNK_LEN + 16;
/// Decrypted chunks kept per open file (16 MiB).
pub const AGE_CACHE_CHUNKS: usize = 256;
/// Stream readers kept for reuse; more concurrent readers open their own and
/// drop them after use.
const MAX_POOLED_READERS: usize = 16;
/// Longest age header this reader parses when only describing a file
/// (headers with a few recipients take a few hundred bytes).
const MAX_HEADER_LEN: usize = 1 << 20;
/// Most recipient stanzas listed for a file.
const MAX_STANZAS: usize = 4096;
/// Largest identity file read (age's own limit is 16 MiB; keys take bytes).
const MAX_IDENTITY_FILE_LEN: u64 = 1 << 20;

/// One recipient stanza of an age header, as written in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeStanza {
    /// Stanza type: `X25519`, `ssh-ed25519`, `ssh-rsa`, `scrypt`, a plugin's name...
    pub kind: String,
    /// The stanza's arguments (for SSH types the first is a 4-byte key tag, base64).
    pub args: Vec<String>,
}

/// The clear-text part of an age file: who can open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeHeader {
    /// Recipient stanzas in file order.
    pub stanzas: Vec<AgeStanza>,
    /// Length of the header including the MAC line (the payload nonce follows).
    pub header_len: u64,
}

impl AgeHeader {
    /// Parses the header at the start of `bytes` (which may hold more of the
    /// file). Only the text structure is checked; the MAC needs the file key.
    pub fn parse(bytes: &[u8]) -> Result<AgeHeader> {
        let bad = |offset: usize, check: String| FormatError::Corrupt {
            section: "age header".into(),
            offset: offset as u64,
            check,
        };
        let mut at = 0usize;
        let next_line = |at: &mut usize| -> Option<(usize, &[u8])> {
            let rest = bytes.get(*at..)?;
            let end = memchr_newline(rest)?;
            let start = *at;
            *at += end + 1;
            rest.get(..end).map(|line| (start, line))
        };
        let truncated = || FormatError::Truncated {
            section: "age header".into(),
            offset: 0,
            needed: bytes.len() as u64 + 1,
            available: bytes.len() as u64,
        };
        let (_, first) = next_line(&mut at).ok_or_else(truncated)?;
        if first != AGE_V1_LINE.as_bytes() {
            let shown = String::from_utf8_lossy(first.get(..first.len().min(64)).unwrap_or(&[]))
                .into_owned();
            return Err(bad(
                0,
                format!("unsupported age version {shown:?} (this rdlv reads {AGE_V1_LINE})"),
            ));
        }
        let mut stanzas = Vec::new();
        let mut in_body = false;
        loop {
            let (start, line) = next_line(&mut at).ok_or_else(truncated)?;
            if let Some(rest) = line.strip_prefix(b"-> ") {
                if stanzas.len() >= MAX_STANZAS {
                    return Err(bad(start, format!("more than {MAX_STANZAS} recipients")));
                }
                let text = std::str::from_utf8(rest)
                    .map_err(|_| bad(start, "recipient line is not text".into()))?;
                let mut words = text.split(' ');
                let kind = words.next().unwrap_or_default().to_string();
                if kind.is_empty() {
                    return Err(bad(start, "recipient line without a type".into()));
                }
                stanzas.push(AgeStanza {
                    kind,
                    args: words.map(str::to_string).collect(),
                });
                in_body = true;
            } else if let Some(mac) = line.strip_prefix(b"--- ") {
                if stanzas.is_empty() {
                    return Err(bad(start, "no recipient before the MAC line".into()));
                }
                if mac.is_empty() {
                    return Err(bad(start, "empty header MAC".into()));
                }
                return Ok(AgeHeader {
                    stanzas,
                    header_len: at as u64,
                });
            } else if in_body && line.len() <= 64 {
                // Body lines are base64, 64 columns; the last one is shorter.
                in_body = line.len() == 64;
            } else {
                return Err(bad(start, "not a recipient, body or MAC line".into()));
            }
        }
    }

    /// Reads and parses the header of the age file `file`, or `None` when the
    /// file does not start with the age magic.
    pub fn read(file: &File) -> Result<Option<AgeHeader>> {
        let len = file.metadata()?.len();
        let mut head = vec![0u8; len.min(MAX_HEADER_LEN as u64) as usize];
        file.read_exact_at(&mut head, 0)?;
        if head.starts_with(AGE_ARMOR_BEGIN) {
            return Err(FormatError::Decrypt(
                "the snapshot is an ASCII-armored age file, which rdlv does not read: \
                 run `age -d -i KEY FILE > plain.snap` and open plain.snap"
                    .into(),
            ));
        }
        if !head.starts_with(AGE_MAGIC) {
            return Ok(None);
        }
        AgeHeader::parse(&head).map(Some)
    }

    /// The recipient types, each once, in file order, with a count and the
    /// SSH key tags: `X25519, ssh-ed25519 (key tag 3n0yYw)`.
    pub fn describe_recipients(&self) -> String {
        let mut kinds: Vec<(&str, usize, Vec<&str>)> = Vec::new();
        for s in &self.stanzas {
            // Random "grease" stanzas some writers add carry no recipient.
            if s.kind.ends_with("-grease") {
                continue;
            }
            let tag = s
                .kind
                .starts_with("ssh-")
                .then(|| s.args.first().map(String::as_str))
                .flatten();
            match kinds.iter_mut().find(|(k, _, _)| *k == s.kind) {
                Some((_, n, tags)) => {
                    *n += 1;
                    tags.extend(tag);
                }
                None => kinds.push((&s.kind, 1, tag.into_iter().collect())),
            }
        }
        let parts: Vec<String> = kinds
            .iter()
            .map(|(kind, n, tags)| {
                let mut text = if *n > 1 {
                    format!("{n} x {kind}")
                } else {
                    kind.to_string()
                };
                if !tags.is_empty() {
                    let label = if tags.len() > 1 {
                        "key tags"
                    } else {
                        "key tag"
                    };
                    text.push_str(&format!(" ({label} {})", tags.join(", ")));
                }
                text
            })
            .collect();
        parts.join(", ")
    }

    /// The distinct recipient types in file order (grease stanzas left out).
    pub fn recipient_types(&self) -> Vec<String> {
        let mut kinds: Vec<String> = Vec::new();
        for s in &self.stanzas {
            if !s.kind.ends_with("-grease") && !kinds.contains(&s.kind) {
                kinds.push(s.kind.clone());
            }
        }
        kinds
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Private keys that may open an encrypted snapshot: the identities of an age
/// identity file (`AGE-SECRET-KEY-1...` lines, as `age-keygen` writes) or one
/// unencrypted OpenSSH private key (`ssh-ed25519` or `ssh-rsa`).
pub struct Identities {
    list: Vec<Box<dyn age::Identity + Send + Sync>>,
    origin: String,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("origin", &self.origin)
            .field("count", &self.list.len())
            .finish()
    }
}

impl Identities {
    /// Reads identities from `path`: an age identity file or an SSH private key.
    pub fn from_file(path: &Path) -> Result<Identities> {
        let origin = path.display().to_string();
        let fail = |reason: String| FormatError::Identity {
            path: origin.clone(),
            reason,
        };
        let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_IDENTITY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        let result = if bytes.len() as u64 > MAX_IDENTITY_FILE_LEN {
            Err(format!(
                "larger than {MAX_IDENTITY_FILE_LEN} bytes: not a key file"
            ))
        } else {
            Identities::from_bytes(&bytes, &origin)
        };
        bytes.zeroize();
        result.map_err(fail)
    }

    fn from_bytes(bytes: &[u8], origin: &str) -> std::result::Result<Identities, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            "not a text file: expected an age identity file or an SSH private key".to_string()
        })?;
        let trimmed = text.trim_start();
        if trimmed.starts_with("-----BEGIN") {
            let identity = age::ssh::Identity::from_buffer(text.as_bytes(), Some(origin.into()))
                .map_err(|e| format!("not a usable SSH private key: {e}"))?;
            return match identity {
                age::ssh::Identity::Unencrypted(_) => Ok(Identities {
                    list: vec![Box::new(identity)],
                    origin: origin.into(),
                }),
                age::ssh::Identity::Encrypted(_) => Err(
                    "the SSH key is protected by a passphrase, which rdlv cannot ask for: \
                     decrypt the snapshot with `age -d -i KEY FILE > plain.snap` instead"
                        .into(),
                ),
                age::ssh::Identity::Unsupported(_) => Err(
                    "unsupported SSH key type: only ssh-ed25519 and ssh-rsa keys open age files"
                        .into(),
                ),
            };
        }
        if trimmed.starts_with("age1") || trimmed.starts_with("ssh-") {
            return Err("this is a public key (a recipient); pass the matching private key".into());
        }
        let list = age::IdentityFile::from_buffer(text.as_bytes())
            .map_err(|e| format!("not an age identity file: {e}"))?
            .into_identities()
            .map_err(|e| format!("unusable identity: {e}"))?;
        if list.is_empty() {
            return Err("no identity (AGE-SECRET-KEY-1...) in the file".into());
        }
        Ok(Identities {
            list,
            origin: origin.into(),
        })
    }

    /// Where the identities came from (the file name).
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// An identity that knows the file key of one age file: what the capture uses
/// to re-read and verify the file it just encrypted (it chose the key, so it
/// needs no private key), and what [`AgeSource`] uses for its further stream
/// readers once the real identity has unwrapped the key. It answers every
/// stanza with its key; the header MAC then tells whether the key is right.
pub struct FileKeyIdentity {
    key: [u8; FILE_KEY_BYTES],
}

impl FileKeyIdentity {
    /// Wraps a file key (copied; the copy is wiped when this is dropped).
    pub fn new(key: &[u8; FILE_KEY_BYTES]) -> FileKeyIdentity {
        FileKeyIdentity { key: *key }
    }
}

impl Drop for FileKeyIdentity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl age::Identity for FileKeyIdentity {
    fn unwrap_stanza(
        &self,
        _stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        Some(Ok(FileKey::new(Box::new(self.key))))
    }
}

/// Wraps the caller's identities and remembers the file key they unwrap.
struct KeyCatcher<'a> {
    inner: &'a Identities,
    key: Mutex<Option<[u8; FILE_KEY_BYTES]>>,
}

impl age::Identity for KeyCatcher<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        for identity in &self.inner.list {
            match identity.unwrap_stanza(stanza) {
                Some(Ok(key)) => {
                    if let Ok(mut slot) = self.key.lock() {
                        *slot = Some(*key.expose_secret());
                    }
                    return Some(Ok(key));
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {}
            }
        }
        None
    }
}

/// `Read + Seek` over a shared file with positional reads, so that every
/// stream reader has its own offset on one descriptor.
struct PositionedFile {
    file: Arc<File>,
    pos: u64,
    len: u64,
}

impl Read for PositionedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PositionedFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

type Reader = age::stream::StreamReader<PositionedFile>;

/// Counters of an [`AgeSource`], to measure how much decryption reads cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgeStats {
    /// Plaintext bytes the snapshot reader asked for.
    pub requested_bytes: u64,
    /// Age chunks decrypted (cache misses).
    pub chunks_decrypted: u64,
    /// Plaintext bytes of those chunks.
    pub decrypted_bytes: u64,
}

/// Decrypted chunks by chunk number, least recently used evicted.
struct ChunkCache {
    entries: HashMap<u64, (Arc<Vec<u8>>, u64)>,
    clock: u64,
}

/// A decrypting random-access [`Source`] over an age-encrypted snapshot.
pub struct AgeSource {
    file: Arc<File>,
    file_len: u64,
    plaintext_len: u64,
    header: AgeHeader,
    key: FileKeyIdentity,
    readers: Mutex<Vec<Reader>>,
    cache: Mutex<ChunkCache>,
    requested: AtomicU64,
    decrypted_chunks: AtomicU64,
    decrypted_bytes: AtomicU64,
}

impl AgeSource {
    /// Opens an age file with the caller's identities: parses the header,
    /// unwraps the file key, checks the header MAC and authenticates the
    /// plaintext length.
    pub fn open(file: File, identities: &Identities) -> Result<AgeSource> {
        let header = AgeHeader::read(&file)?.ok_or(FormatError::BadMagic)?;
        let catcher = KeyCatcher {
            inner: identities,
            key: Mutex::new(None),
        };
        let file = Arc::new(file);
        let file_len = file.metadata()?.len();
        let reader = new_reader(&file, file_len, &catcher).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => FormatError::Decrypt(format!(
                "no identity in {} matches a recipient of this file (it is encrypted to: {})",
                identities.origin(),
                header.describe_recipients()
            )),
            e => decrypt_error(e),
        })?;
        let key = catcher
            .key
            .lock()
            .ok()
            .and_then(|k| *k)
            .ok_or_else(|| FormatError::Decrypt("the identity unwrapped no file key".into()))?;
        let key = FileKeyIdentity::new(&key);
        AgeSource::finish_open(file, file_len, header, key, reader)
    }

    /// Opens an age file whose file key is known (the capture verifying its
    /// own output).
    pub fn open_with_file_key(file: File, key: &FileKeyIdentity) -> Result<AgeSource> {
        let header = AgeHeader::read(&file)?.ok_or(FormatError::BadMagic)?;
        let file = Arc::new(file);
        let file_len = file.metadata()?.len();
        let reader = new_reader(&file, file_len, key).map_err(decrypt_error)?;
        let key = FileKeyIdentity::new(&key.key);
        AgeSource::finish_open(file, file_len, header, key, reader)
    }

    fn finish_open(
        file: Arc<File>,
        file_len: u64,
        header: AgeHeader,
        key: FileKeyIdentity,
        mut reader: Reader,
    ) -> Result<AgeSource> {
        let plaintext_len = reader.seek(SeekFrom::End(0)).map_err(|e| {
            FormatError::Decrypt(format!(
                "the encrypted file is truncated or its last chunk is damaged ({e})"
            ))
        })?;
        Ok(AgeSource {
            file,
            file_len,
            plaintext_len,
            header,
            key,
            readers: Mutex::new(vec![reader]),
            cache: Mutex::new(ChunkCache {
                entries: HashMap::new(),
                clock: 0,
            }),
            requested: AtomicU64::new(0),
            decrypted_chunks: AtomicU64::new(0),
            decrypted_bytes: AtomicU64::new(0),
        })
    }

    /// The clear-text header: who the file is encrypted to.
    pub fn header(&self) -> &AgeHeader {
        &self.header
    }

    /// Size of the encrypted file.
    pub fn encrypted_len(&self) -> u64 {
        self.file_len
    }

    /// Counters since open.
    pub fn stats(&self) -> AgeStats {
        AgeStats {
            requested_bytes: self.requested.load(Ordering::Relaxed),
            chunks_decrypted: self.decrypted_chunks.load(Ordering::Relaxed),
            decrypted_bytes: self.decrypted_bytes.load(Ordering::Relaxed),
        }
    }

    /// The plaintext of chunk `index`, from the cache or decrypted now.
    fn chunk(&self, index: u64) -> Result<Arc<Vec<u8>>> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clock += 1;
            let clock = cache.clock;
            if let Some((data, last_use)) = cache.entries.get_mut(&index) {
                *last_use = clock;
                return Ok(Arc::clone(data));
            }
        }
        // Decrypt outside the lock so other threads keep reading.
        let data = Arc::new(self.decrypt_chunk(index)?);
        if let Ok(mut cache) = self.cache.lock() {
            while cache.entries.len() >= AGE_CACHE_CHUNKS {
                let Some(victim) = cache
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, last_use))| *last_use)
                    .map(|(&k, _)| k)
                else {
                    break;
                };
                cache.entries.remove(&victim);
            }
            cache.clock += 1;
            let clock = cache.clock;
            cache.entries.insert(index, (Arc::clone(&data), clock));
        }
        Ok(data)
    }

    fn decrypt_chunk(&self, index: u64) -> Result<Vec<u8>> {
        let start = index * AGE_CHUNK_LEN;
        let len = self.plaintext_len.saturating_sub(start).min(AGE_CHUNK_LEN) as usize;
        let pooled = self.readers.lock().ok().and_then(|mut r| r.pop());
        let mut reader = match pooled {
            Some(r) => r,
            None => new_reader(&self.file, self.file_len, &self.key).map_err(decrypt_error)?,
        };
        let mut out = vec![0u8; len];
        let result = reader
            .seek(SeekFrom::Start(start))
            .and_then(|_| reader.read_exact(&mut out));
        if let Err(e) = result {
            // The reader's state is unknown after an error: it is dropped.
            let sealed_at = self.header.header_len + 16 + index * AGE_SEALED_CHUNK_LEN;
            return Err(FormatError::Decrypt(format!(
                "age chunk #{index} (plaintext offset {start}, file offset {sealed_at}) does not \
                 authenticate: the encrypted file is damaged ({e})"
            )));
        }
        self.decrypted_chunks.fetch_add(1, Ordering::Relaxed);
        self.decrypted_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < MAX_POOLED_READERS {
                pool.push(reader);
            }
        }
        Ok(out)
    }
}

impl Source for AgeSource {
    fn len(&self) -> u64 {
        self.plaintext_len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.requested
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.plaintext_len)
            .ok_or_else(|| FormatError::Truncated {
                section: "encrypted snapshot".into(),
                offset,
                needed: buf.len() as u64,
                available: self.plaintext_len.saturating_sub(offset),
            })?;
        let mut pos = offset;
        while pos < end {
            let index = pos / AGE_CHUNK_LEN;
            let chunk = self.chunk(index)?;
            let in_chunk = (pos - index * AGE_CHUNK_LEN) as usize;
            let n = ((end - pos) as usize).min(chunk.len().saturating_sub(in_chunk));
            let at = (pos - offset) as usize;
            match (buf.get_mut(at..at + n), chunk.get(in_chunk..in_chunk + n)) {
                (Some(dst), Some(src)) if n > 0 => dst.copy_from_slice(src),
                _ => {
                    return Err(FormatError::Decrypt(format!(
                        "age chunk #{index} is shorter than the authenticated length says"
                    )))
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn encryption(&self) -> Option<&AgeHeader> {
        Some(&self.header)
    }

    fn decryption_stats(&self) -> Option<AgeStats> {
        Some(self.stats())
    }
}

fn new_reader(
    file: &Arc<File>,
    file_len: u64,
    identity: &dyn age::Identity,
) -> std::result::Result<Reader, age::DecryptError> {
    let input = PositionedFile {
        file: Arc::clone(file),
        pos: 0,
        len: file_len,
    };
    age::Decryptor::new(input)?.decrypt(std::iter::once(identity))
}

fn decrypt_error(e: age::DecryptError) -> FormatError {
    FormatError::Decrypt(match e {
        age::DecryptError::InvalidMac => {
            "the age header's MAC does not match: the header is damaged, or the key is not this file's"
                .into()
        }
        age::DecryptError::InvalidHeader => "the age header is malformed".into(),
        age::DecryptError::UnknownFormat => "an age version this rdlv does not read".into(),
        age::DecryptError::NoMatchingKeys => "no identity matches a recipient of this file".into(),
        age::DecryptError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the encrypted file ends inside its header".into()
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        MemoryRegion, Metadata, Snapshot, SnapshotWriter, WriteOptions, DEFAULT_CACHE_BYTES,
    };
    use std::io::Write;

    const REGION_ADDR: u64 = 0x10_0000;

    /// A snapshot of `bytes` bytes of hard-to-compress memory, as plaintext.
    fn plain_snapshot(bytes: usize) -> (Vec<u8>, Vec<u8>) {
        let mut x = 0x9e37_79b9_u32;
        let data: Vec<u8> = (0..bytes)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8 | 1
            })
            .collect();
        let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).unwrap();
        w.write_metadata(&Metadata::default()).unwrap();
        w.write_memory(
            &[MemoryRegion {
                addr: REGION_ADDR,
                data: &data,
            }],
            &mut |_| {},
        )
        .unwrap();
        (w.finish().unwrap().0, data)
    }

    fn encrypt(plaintext: &[u8], recipients: &[&dyn age::Recipient]) -> Vec<u8> {
        let encryptor = age::Encryptor::with_recipients(recipients.iter().copied()).unwrap();
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out).unwrap();
        w.write_all(plaintext).unwrap();
        w.finish().unwrap();
        out
    }

    struct Fixture {
        dir: tempfile::TempDir,
        identity: age::x25519::Identity,
        data: Vec<u8>,
    }

    impl Fixture {
        fn new(bytes: usize) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let identity = age::x25519::Identity::generate();
            let (plain, data) = plain_snapshot(bytes);
            let sealed = encrypt(&plain, &[&identity.to_public()]);
            std::fs::write(dir.path().join("x.snap"), sealed).unwrap();
            use age::secrecy::ExposeSecret;
            std::fs::write(
                dir.path().join("key.txt"),
                format!("# test key\n{}\n", identity.to_string().expose_secret()),
            )
            .unwrap();
            Fixture {
                dir,
                identity,
                data,
            }
        }

        fn snap(&self) -> std::path::PathBuf {
            self.dir.path().join("x.snap")
        }

        fn identities(&self) -> Identities {
            Identities::from_file(&self.dir.path().join("key.txt")).unwrap()
        }

        fn open(&self) -> Result<Snapshot> {
            Snapshot::open_with_identities(
                &self.snap(),
                Some(&self.identities()),
                DEFAULT_CACHE_BYTES,
            )
        }

        fn damage(&self, f: impl FnOnce(&mut Vec<u8>)) {
            let mut bytes = std::fs::read(self.snap()).unwrap();
            f(&mut bytes);
            std::fs::write(self.snap(), bytes).unwrap();
        }
    }

    #[test]
    fn encrypted_snapshot_reads_like_the_plain_one() {
        let fx = Fixture::new(3 << 20);
        let snap = fx.open().unwrap();
        assert_eq!(snap.encryption().unwrap().recipient_types(), ["X25519"]);
        let mut buf = vec![0u8; 100_000];
        for at in [0usize, 65_000, 1 << 20, (3 << 20) - 100_000] {
            snap.read_memory(REGION_ADDR + at as u64, &mut buf).unwrap();
            assert_eq!(buf, fx.data[at..at + buf.len()], "at {at}");
        }
        let report = snap.verify().unwrap();
        assert_eq!(report.bytes, snap.file_len());
        // Verification read everything once: each chunk decrypted about once.
        let stats = snap.decryption_stats().unwrap();
        let chunks = snap.file_len().div_ceil(AGE_CHUNK_LEN);
        assert!(
            stats.chunks_decrypted <= chunks * 2,
            "{stats:?} for {chunks} chunks"
        );
        assert!(stats.decrypted_bytes >= snap.file_len() / 2, "{stats:?}");
    }

    #[test]
    fn without_a_key_the_error_names_the_recipient_types() {
        let fx = Fixture::new(100_000);
        let err = Snapshot::open(&fx.snap()).err().unwrap();
        assert!(matches!(err, FormatError::Encrypted { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("X25519") && text.contains("--identity"),
            "{text}"
        );
        let header = AgeHeader::read(&File::open(fx.snap()).unwrap())
            .unwrap()
            .unwrap();
        // The age crate adds a random "grease" stanza; it is no recipient.
        assert_eq!(header.recipient_types(), ["X25519"]);
        assert_eq!(header.describe_recipients(), "X25519");
    }

    #[test]
    fn wrong_key_damage_and_truncation_are_decrypt_errors() {
        let fx = Fixture::new(300_000);
        let other = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let wrong = fx.dir.path().join("wrong.txt");
        std::fs::write(&wrong, other.to_string().expose_secret()).unwrap();
        let err = Snapshot::open_with_identities(
            &fx.snap(),
            Some(&Identities::from_file(&wrong).unwrap()),
            DEFAULT_CACHE_BYTES,
        )
        .err()
        .unwrap();
        assert!(
            matches!(&err, FormatError::Decrypt(m) if m.contains("no identity") && m.contains("X25519")),
            "{err}"
        );

        let len = std::fs::read(fx.snap()).unwrap().len();
        let header_len = AgeHeader::read(&File::open(fx.snap()).unwrap())
            .unwrap()
            .unwrap()
            .header_len as usize;
        // Header MAC, a middle chunk, the last chunk, truncation, extension.
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Damage)> = vec![
            (
                "header",
                Box::new(move |b: &mut Vec<u8>| b[header_len - 3] ^= 0x01),
            ),
            (
                "middle chunk",
                Box::new(move |b: &mut Vec<u8>| b[header_len + 16 + 70_000] ^= 0x40),
            ),
            (
                "last chunk",
                Box::new(move |b: &mut Vec<u8>| b[len - 5] ^= 0x01),
            ),
            (
                "truncated",
                Box::new(move |b: &mut Vec<u8>| b.truncate(len - 1000)),
            ),
            (
                "truncated at a chunk",
                Box::new(move |b: &mut Vec<u8>| b.truncate(header_len + 16 + 65_552)),
            ),
            (
                "extended",
                Box::new(|b: &mut Vec<u8>| b.extend_from_slice(&[0u8; 100])),
            ),
        ];
        let pristine = std::fs::read(fx.snap()).unwrap();
        for (what, damage) in cases {
            std::fs::write(fx.snap(), &pristine).unwrap();
            fx.damage(|b| damage(b));
            let result = fx.open().and_then(|s| s.verify().map(drop));
            let err = result.err().unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(matches!(err, FormatError::Decrypt(_)), "{what}: {err}");
        }
        drop(fx.identity);
    }

    #[test]
    fn file_key_identity_opens_the_file() {
        // The capture's verification path: the encryptor's file key, no private key.
        struct Recorder<'a>(&'a dyn age::Recipient, Mutex<Option<[u8; 16]>>);
        impl age::Recipient for Recorder<'_> {
            fn wrap_file_key(
                &self,
                key: &FileKey,
            ) -> std::result::Result<
                (Vec<Stanza>, std::collections::HashSet<String>),
                age::EncryptError,
            > {
                *self.1.lock().unwrap() = Some(*key.expose_secret());
                self.0.wrap_file_key(key)
            }
        }
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public();
        let recorder = Recorder(&public, Mutex::new(None));
        let (plain, data) = plain_snapshot(200_000);
        let sealed = encrypt(&plain, &[&recorder]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        std::fs::write(&path, sealed).unwrap();
        let key = FileKeyIdentity::new(&recorder.1.lock().unwrap().unwrap());
        let source = AgeSource::open_with_file_key(File::open(&path).unwrap(), &key).unwrap();
        let snap = Snapshot::from_source(Box::new(source), DEFAULT_CACHE_BYTES).unwrap();
        snap.verify().unwrap();
        let mut buf = vec![0u8; 4096];
        snap.read_memory(REGION_ADDR + 8192, &mut buf).unwrap();
        assert_eq!(buf, data[8192..8192 + 4096]);
        // Another key fails on the header MAC.
        let wrong = FileKeyIdentity::new(&[7u8; 16]);
        let err = AgeSource::open_with_file_key(File::open(&path).unwrap(), &wrong)
            .err()
            .unwrap();
        assert!(
            matches!(&err, FormatError::Decrypt(m) if m.contains("MAC")),
            "{err}"
        );
    }

    #[test]
    fn identity_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let check = |content: &str, want: &str| {
            let path = dir.path().join("id");
            std::fs::write(&path, content).unwrap();
            let err = Identities::from_file(&path).unwrap_err();
            assert!(err.to_string().contains(want), "{content:?}: {err}");
        };
        let public = age::x25519::Identity::generate().to_public().to_string();
        check(&public, "public key");
        check(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN a@b",
            "public key",
        );
        check("hello\n", "not an age identity file");
        check("# only a comment\n", "no identity");
        check(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64\n-----END OPENSSH PRIVATE KEY-----\n",
            "SSH",
        );
        let err = Identities::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[test]
    fn header_parser_bounds_and_errors() {
        let good = b"age-encryption.org/v1\n-> X25519 abc\nAAAA\n-> ssh-ed25519 Zm9v def\n\n--- bWFj\nPAYLOAD";
        let h = AgeHeader::parse(good).unwrap();
        assert_eq!(h.recipient_types(), ["X25519", "ssh-ed25519"]);
        assert_eq!(
            h.describe_recipients(),
            "X25519, ssh-ed25519 (key tag Zm9v)"
        );
        assert_eq!(h.header_len as usize, good.len() - "PAYLOAD".len());
        for bad in [
            &b"age-encryption.org/v2\n"[..],
            b"age-encryption.org/v1\n--- bWFj\n",
            b"age-encryption.org/v1\n-> X25519 abc\n",
            b"age-encryption.org/v1\nnonsense\n--- x\n",
            b"age-encryption.org/v1\n-> \n--- x\n",
        ] {
            assert!(
                AgeHeader::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
