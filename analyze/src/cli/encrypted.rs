//! `rdlv info` of an encrypted snapshot without a key: what the age header
//! tells in the clear (that it is encrypted, to which recipient types and
//! SSH key tags), and how to open it. Everything else is inside the
//! encryption.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::info::{InfoArgs, InfoFormat};
use crate::AnalyzeError;

/// `info --format json` of an encrypted snapshot opened without a key.
#[derive(Debug, Serialize)]
struct EncryptedReport {
    file: String,
    file_bytes: u64,
    encrypted: bool,
    /// `age-encryption.org/v1`.
    encryption: &'static str,
    /// One entry per recipient stanza, in header order.
    recipients: Vec<Recipient>,
}

#[derive(Debug, Serialize)]
struct Recipient {
    #[serde(rename = "type")]
    kind: String,
    /// The SSH key tag (base64 of 4 bytes of the key's hash), for SSH types.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_tag: Option<String>,
}

/// Describes `snap` if it is an age file and returns `true`; returns `false`
/// (writing nothing) for any other file, which `info` then reads as usual.
pub fn run_info(snap: &Path, args: &InfoArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let context = || format!("cannot open snapshot {}", snap.display());
    let file = std::fs::File::open(snap)
        .map_err(|e| AnalyzeError::from(rdlv_format::FormatError::Io(e)))
        .with_context(context)?;
    let header = match rdlv_format::AgeHeader::read(&file) {
        Ok(Some(header)) => header,
        Ok(None) => return Ok(false),
        Err(e) => return Err(AnalyzeError::from(e)).with_context(context),
    };
    let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let recipients: Vec<Recipient> = header
        .stanzas
        .iter()
        .filter(|s| !s.kind.ends_with("-grease"))
        .map(|s| Recipient {
            kind: s.kind.clone(),
            key_tag: s
                .kind
                .starts_with("ssh-")
                .then(|| s.args.first().cloned())
                .flatten(),
        })
        .collect();
    match args.format {
        InfoFormat::Json => {
            let report = EncryptedReport {
                file: snap.display().to_string(),
                file_bytes,
                encrypted: true,
                encryption: "age-encryption.org/v1",
                recipients,
            };
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        InfoFormat::Text => {
            writeln!(
                out,
                "{}: encrypted rdlv snapshot (age-encryption.org/v1), {} bytes",
                snap.display(),
                file_bytes
            )?;
            writeln!(out, "  can be opened by: {}", header.describe_recipients())?;
            writeln!(
                out,
                "  everything else (process, memory, executable) is encrypted; to read it:\n    rdlv -i KEYFILE info {}   (or RDLV_IDENTITY=KEYFILE; KEYFILE: an age identity or SSH private key)\n    age -d -i KEYFILE {} > plain.snap",
                snap.display(),
                snap.display()
            )?;
        }
    }
    Ok(true)
}
