//! The real server the benchmarks run against: Caddy, built once with `go
//! install` from the module proxy, serving a directory with keep-alive
//! connections held open; and reading Delve's coloured output.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::common::root;

/// Caddy release the default run builds.
pub const CADDY: &str = "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9";
/// Idle keep-alive connections held open during the capture.
pub const IDLE_CONNS: usize = 8;

/// The server under test; killed and reaped on drop.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// The local port it serves on.
    pub port: u16,
    /// Connections held open so the capture sees serving goroutines.
    _conns: Vec<TcpStream>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds Caddy once into target/bench-bin.
pub fn caddy() -> Result<PathBuf> {
    let bin_dir = root().join("target/bench-bin");
    let bin = bin_dir.join("caddy");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("building {CADDY} (once, into {})", bin_dir.display());
    let status = Command::new("go")
        .args(["install", CADDY])
        .env("GOBIN", &bin_dir)
        .env("GOFLAGS", "-mod=mod")
        .status()
        .context("go install (is Go on PATH?)")?;
    if !status.success() {
        bail!("go install {CADDY} failed: {status}");
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One HTTP/1.1 keep-alive request on `conn`; returns the status line.
pub fn request(conn: &mut TcpStream, path: &str) -> Result<String> {
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = conn.read(&mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Starts `exe ARGS` (`{port}` and `{dir}` in ARGS are replaced), or Caddy
/// serving a small site, and holds [`IDLE_CONNS`] keep-alive connections
/// open; returns the server and its executable.
pub fn start_server(exe: Option<&Path>, args: &[String], work: &Path) -> Result<(Server, PathBuf)> {
    let port = free_port()?;
    let site = work.join("site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), "<h1>rdlv bench</h1>\n".repeat(100))?;
    let (bin, args) = match exe {
        Some(exe) => (exe.to_path_buf(), args.to_vec()),
        None => (
            caddy()?,
            [
                "file-server",
                "--listen",
                "127.0.0.1:{port}",
                "--root",
                "{dir}",
            ]
            .map(String::from)
            .to_vec(),
        ),
    };
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{dir}", &site.display().to_string())
        })
        .collect();
    let child = Command::new(&bin)
        .args(&args)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(File::create(work.join("server.out"))?)
        .stderr(File::create(work.join("server.err"))?)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let mut server = Server {
        child,
        port,
        _conns: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conns = Vec::new();
    while conns.len() < IDLE_CONNS {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut c) => {
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                let status = request(&mut c, "/")?;
                if !status.contains("200") {
                    bail!("{} answered {status:?}", bin.display());
                }
                conns.push(c);
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => bail!(
                "{} is not listening on port {port}: {e} (see {})",
                bin.display(),
                work.join("server.err").display()
            ),
        }
    }
    server._conns = conns;
    Ok((server, bin))
}

/// `text` without terminal colour sequences (`ESC [ ... m`; Delve colours
/// even into a pipe).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
