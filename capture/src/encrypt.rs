//! `--encrypt-to`: the snapshot leaves rdlv-snap only as one standard age
//! file (age-encryption.org/v1), so neither the disk nor a pipe ever sees a
//! plaintext byte of the target's memory.
//!
//! Recipients are public keys only (`age1...` X25519, `ssh-ed25519`,
//! `ssh-rsa`): the production host holds nothing that decrypts. The age crate
//! does the encryption; this module parses recipients and keeps a copy of the
//! file key the encryptor chose ([`KeyRecorder`]), so that the capture can
//! decrypt and verify what it wrote without any private key. The copy is wiped
//! when the [`FileKeyCell`] is dropped, right after verification.
//!
//! Invariants:
//! - Parsing happens before the target is touched: a bad recipient is a usage
//!   error (exit 2) and nothing is stopped.
//! - No `age-plugin-*` program is ever run (the crate's `plugin` feature is off).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use zeroize::Zeroize;

use crate::error::{CaptureError, Result};

/// Most recipients accepted (flags and files together); age has no limit,
/// this only bounds what a recipients file can make us do.
const MAX_RECIPIENTS: usize = 1024;
/// Largest recipients file read.
const MAX_RECIPIENTS_FILE_LEN: u64 = 1 << 20;

/// One public key the snapshot is encrypted to.
#[derive(Clone)]
enum Recipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl Recipient {
    fn kind(&self) -> &'static str {
        match self {
            Recipient::X25519(_) => "X25519",
            Recipient::Ssh(age::ssh::Recipient::SshEd25519(..)) => "ssh-ed25519",
            Recipient::Ssh(age::ssh::Recipient::SshRsa(..)) => "ssh-rsa",
        }
    }

    fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
}

/// Parses one recipient as age's `-r` does; `origin` says where it came from
/// for the error message.
fn parse_recipient(text: &str, origin: &str) -> Result<Recipient> {
    let text = text.trim();
    let bad = |why: String| CaptureError::Usage(format!("{origin}: {why}"));
    // A post-quantum recipient is Bech32 with the prefix `age1pq`, so it
    // reads `age1pq1...`; an X25519 one (prefix `age`) may well begin
    // `age1pq` too (1 in 1024), but never `age1pq1`: `1` is not a Bech32
    // data character.
    if text.starts_with("age1pq1") {
        return Err(bad(
            "post-quantum age1pq1... recipients are not supported yet; use an age1... X25519 or SSH key".into(),
        ));
    }
    if text.starts_with("age1") {
        return age::x25519::Recipient::from_str(text)
            .map(Recipient::X25519)
            .map_err(|e| bad(format!("invalid age recipient {text:?}: {e}")));
    }
    if text.starts_with("ssh-") {
        use age::ssh::ParseRecipientKeyError as E;
        return age::ssh::Recipient::from_str(text)
            .map(Recipient::Ssh)
            .map_err(|e| {
                bad(match e {
                    E::RsaModulusTooSmall => {
                        "ssh-rsa key too small (age needs at least 2048 bits)".into()
                    }
                    E::RsaModulusTooLarge => "ssh-rsa key too large".into(),
                    E::Unsupported(kind) => {
                        format!("unsupported SSH key type {kind}: use ssh-ed25519 or ssh-rsa")
                    }
                    _ => "invalid SSH public key".into(),
                })
            });
    }
    if text.starts_with("AGE-SECRET-KEY-") || text.contains("PRIVATE KEY") {
        return Err(bad(
            "this is a private key: --encrypt-to takes the public key (age-keygen -y KEY, or the .pub file)".into(),
        ));
    }
    Err(bad(format!(
        "not a recipient: expected age1... or an ssh-ed25519/ssh-rsa public key, got {:?}",
        text.chars().take(40).collect::<String>()
    )))
}

/// The recipients of `--encrypt-to` and `--encrypt-to-file`.
#[derive(Clone)]
pub struct Encryption {
    recipients: Vec<Recipient>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.recipients.iter().map(Recipient::kind))
            .finish()
    }
}

impl Encryption {
    /// Collects recipients from the flags (in order: each `--encrypt-to`,
    /// then each file's lines; a file's blank lines and `#` comments are
    /// skipped, as age's `-R` does). `None` when neither flag was given.
    pub fn from_args(recipients: &[String], files: &[PathBuf]) -> Result<Option<Encryption>> {
        if recipients.is_empty() && files.is_empty() {
            return Ok(None);
        }
        let mut parsed = Vec::new();
        for text in recipients {
            parsed.push(parse_recipient(text, "--encrypt-to")?);
        }
        for file in files {
            let before = parsed.len();
            for (n, line) in read_recipients_file(file)?.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let origin = format!("--encrypt-to-file {}:{}", file.display(), n + 1);
                parsed.push(parse_recipient(line, &origin)?);
                if parsed.len() > MAX_RECIPIENTS {
                    return Err(CaptureError::Usage(format!(
                        "more than {MAX_RECIPIENTS} recipients"
                    )));
                }
            }
            if parsed.len() == before {
                return Err(CaptureError::Usage(format!(
                    "--encrypt-to-file {}: no recipient in the file",
                    file.display()
                )));
            }
        }
        if parsed.len() > MAX_RECIPIENTS {
            return Err(CaptureError::Usage(format!(
                "more than {MAX_RECIPIENTS} recipients"
            )));
        }
        Ok(Some(Encryption { recipients: parsed }))
    }

    /// The recipient types, in order (`X25519`, `ssh-ed25519`, `ssh-rsa`).
    pub fn kinds(&self) -> Vec<&'static str> {
        self.recipients.iter().map(Recipient::kind).collect()
    }

    /// An age encryptor to every recipient and the cell that will hold the
    /// file key it chose.
    pub fn encryptor(&self) -> Result<(age::Encryptor, FileKeyCell)> {
        let cell = FileKeyCell::default();
        let recorders: Vec<KeyRecorder<'_>> = self
            .recipients
            .iter()
            .map(|r| KeyRecorder {
                inner: r.as_age(),
                cell: Arc::clone(&cell.key),
            })
            .collect();
        let encryptor =
            age::Encryptor::with_recipients(recorders.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| {
                    CaptureError::Usage(format!("cannot encrypt to these recipients: {e}"))
                })?;
        Ok((encryptor, cell))
    }
}

fn read_recipients_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let bad =
        |why: String| CaptureError::Usage(format!("--encrypt-to-file {}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_RECIPIENTS_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_RECIPIENTS_FILE_LEN {
        return Err(bad(format!("larger than {MAX_RECIPIENTS_FILE_LEN} bytes")));
    }
    Ok(text)
}

/// The file key of the file being written, once the encryptor has chosen it.
/// Wiped on drop.
#[derive(Default)]
pub struct FileKeyCell {
    key: Arc<Mutex<Option<[u8; FILE_KEY_BYTES]>>>,
}

impl FileKeyCell {
    /// An identity that decrypts exactly this file (for verification).
    pub fn identity(&self) -> Option<rdlv_format::FileKeyIdentity> {
        let slot = self.key.lock().ok()?;
        slot.as_ref().map(rdlv_format::FileKeyIdentity::new)
    }
}

impl Drop for FileKeyCell {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.key.lock() {
            if let Some(key) = slot.as_mut() {
                key.zeroize();
            }
            *slot = None;
        }
    }
}

/// Passes the file key on to a real recipient and keeps a copy of it.
struct KeyRecorder<'a> {
    inner: &'a dyn age::Recipient,
    cell: Arc<Mutex<Option<[u8; FILE_KEY_BYTES]>>>,
}

impl age::Recipient for KeyRecorder<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError>
    {
        if let Ok(mut slot) = self.cell.lock() {
            *slot = Some(*file_key.expose_secret());
        }
        self.inner.wrap_file_key(file_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    const ED25519_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@example";

    #[test]
    fn parses_the_three_recipient_types_and_files() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recipients.txt");
        std::fs::write(&file, format!("# team keys\n\n{public}\n{ED25519_PUB}\n")).unwrap();
        let enc = Encryption::from_args(std::slice::from_ref(&public), &[file])
            .unwrap()
            .unwrap();
        assert_eq!(enc.kinds(), ["X25519", "X25519", "ssh-ed25519"]);
        assert!(Encryption::from_args(&[], &[]).unwrap().is_none());
    }

    #[test]
    fn an_x25519_recipient_that_begins_age1pq_is_not_mistaken_for_post_quantum() {
        // About one X25519 key in 1024 encodes as `age1pq...`.
        let public = (0..200_000)
            .map(|_| age::x25519::Identity::generate().to_public().to_string())
            .find(|p| p.starts_with("age1pq"))
            .expect("an age1pq... X25519 recipient within 200000 keys");
        let enc = Encryption::from_args(std::slice::from_ref(&public), &[])
            .unwrap()
            .unwrap();
        assert_eq!(enc.kinds(), ["X25519"]);
        let pq = "age1pq1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";
        let err = Encryption::from_args(&[pq.to_string()], &[]).unwrap_err();
        assert!(err.to_string().contains("post-quantum"), "{err}");
    }

    #[test]
    fn bad_recipients_are_usage_errors_that_say_why() {
        let cases = [
            ("age1notakey", "invalid age recipient"),
            ("AGE-SECRET-KEY-1QQQ", "private key"),
            ("ecdsa-sha2-nistp256 AAAA", "not a recipient"),
            ("ssh-dss AAAAB3NzaC1kc3M=", "SSH"),
            ("hello", "not a recipient"),
        ];
        for (text, want) in cases {
            let err = Encryption::from_args(&[text.to_string()], &[]).unwrap_err();
            assert!(matches!(err, CaptureError::Usage(_)), "{text}: {err}");
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# nobody\n").unwrap();
        let err = Encryption::from_args(&[], &[empty]).unwrap_err();
        assert!(err.to_string().contains("no recipient"), "{err}");
    }

    /// The age crate decrypts what we encrypt, and the recorded file key
    /// decrypts it too (what verification relies on).
    #[test]
    fn output_decrypts_with_the_identity_and_with_the_recorded_key() {
        let identity = age::x25519::Identity::generate();
        let enc = Encryption::from_args(&[identity.to_public().to_string()], &[])
            .unwrap()
            .unwrap();
        let (encryptor, cell) = enc.encryptor().unwrap();
        let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out).unwrap();
        w.write_all(&plaintext).unwrap();
        w.finish().unwrap();
        for id in [
            Box::new(identity) as Box<dyn age::Identity>,
            Box::new(cell.identity().unwrap()),
        ] {
            let mut got = Vec::new();
            age::Decryptor::new(&out[..])
                .unwrap()
                .decrypt(std::iter::once(id.as_ref()))
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got, plaintext);
        }
    }
}
