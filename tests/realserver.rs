//! Real Go servers the value comparison and the benchmarks run against,
//! built once with `go install` from the module proxy: Caddy serving a
//! directory, and the NATS server with JetStream; each with client
//! connections held open, so a capture sees serving goroutines; one unit
//! of client load per kind; one instant frozen under that load for both
//! `rdlv-snap` and `gcore` ([`freeze_under_load`]); and reading Delve's
//! coloured output.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_root as root;

/// What these helpers return: I/O errors, and failures said in words.
pub type Result<T> = std::io::Result<T>;

/// A failure said in words.
fn fail<T>(msg: impl Into<String>) -> Result<T> {
    Err(std::io::Error::other(msg.into()))
}

/// Caddy release the default run builds.
pub const CADDY: &str = "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9";
/// NATS server release `--server nats` builds.
pub const NATS: &str = "github.com/nats-io/nats-server/v2@v2.15.3";
/// Idle client connections held open during the capture.
pub const IDLE_CONNS: usize = 8;

/// Which real server to run, and so which protocol its clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Caddy's `file-server`: HTTP/1.1 keep-alive requests for `/`.
    Caddy,
    /// `nats-server -js`: subscribers held open, publishers on fresh
    /// connections (the NATS text protocol).
    Nats,
    /// `--exe BIN --args ..`: a server speaking HTTP on `{port}`.
    Other,
}

impl Kind {
    /// The `--server` value: `caddy` or `nats`.
    pub fn parse(name: &str) -> Result<Kind> {
        match name {
            "caddy" => Ok(Kind::Caddy),
            "nats" => Ok(Kind::Nats),
            other => fail(format!("--server {other}: caddy or nats")),
        }
    }

    /// A function on the stack of every goroutine serving a held connection.
    pub fn serving_func(self) -> &'static str {
        match self {
            Kind::Nats => "nats-server/v2/server.(*client).readLoop",
            Kind::Caddy | Kind::Other => "net/http.(*conn).serve",
        }
    }
}

/// The server under test; killed and reaped on drop.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// The local port it serves on.
    pub port: u16,
    /// The protocol its clients speak.
    pub kind: Kind,
    /// Connections held open so the capture sees serving goroutines.
    _conns: Vec<TcpStream>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds `package@version` once into target/bench-bin/VERSION as `name`
/// (a version of its own directory, so that a bump builds anew).
fn go_install(package: &str, name: &str) -> Result<PathBuf> {
    let version = package.rsplit_once('@').map_or("latest", |(_, v)| v);
    let bin_dir = root().join("target/bench-bin").join(version);
    let bin = bin_dir.join(name);
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("building {package} (once, into {})", bin_dir.display());
    let status = Command::new(crate::go_toolchain(crate::DEFAULT_GO))
        .args(["install", package])
        .env("GOBIN", &bin_dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .status()
        .map_err(|e| std::io::Error::other(format!("go install {package}: {e}")))?;
    if !status.success() {
        return fail(format!("go install {package} failed: {status}"));
    }
    Ok(bin)
}

/// Builds Caddy once into target/bench-bin.
pub fn caddy() -> Result<PathBuf> {
    go_install(CADDY, "caddy")
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

/// Opens a NATS client connection: reads the server's `INFO`, sends
/// `CONNECT` and then `extra` (protocol lines), and waits for the `PONG`
/// of a final `PING`, so everything sent has been processed.
fn nats_connect(port: u16, extra: &str) -> Result<TcpStream> {
    let conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("INFO ") {
        return fail(format!("NATS server greeted with {line:?}"));
    }
    (&conn).write_all(
        format!("CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"rdlv-bench\"}}\r\n{extra}PING\r\n")
            .as_bytes(),
    )?;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return fail("NATS server closed the connection");
        }
        if line.starts_with("-ERR") {
            return fail(format!("NATS server answered {}", line.trim_end()));
        }
        if line.starts_with("PONG") {
            return Ok(conn);
        }
    }
}

/// One unit of client load on a fresh connection: an HTTP request for `/`,
/// or a NATS connection publishing a few messages to the held subscribers
/// and to a JetStream-free subject.
pub fn load_once(kind: Kind, port: u16) -> Result<()> {
    match kind {
        Kind::Caddy | Kind::Other => {
            let mut c = TcpStream::connect(("127.0.0.1", port))?;
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            let status = request(&mut c, "/")?;
            if !status.contains("200") {
                return fail(format!("answered {status:?}"));
            }
            Ok(())
        }
        Kind::Nats => {
            let mut publish = String::new();
            for i in 0..4 {
                let body = format!("order {i} from rdlv-bench");
                publish.push_str(&format!(
                    "PUB bench.orders.{i} {}\r\n{body}\r\n",
                    body.len()
                ));
            }
            nats_connect(port, &publish).map(drop)
        }
    }
}

/// Starts `exe ARGS` (`{port}` and `{dir}` in ARGS are replaced; it must
/// speak HTTP), or the server of `kind`, and holds [`IDLE_CONNS`] client
/// connections open; returns the server and its executable.
pub fn start_server(
    kind: Kind,
    exe: Option<&Path>,
    args: &[String],
    work: &Path,
) -> Result<(Server, PathBuf)> {
    let port = free_port()?;
    let site = work.join("site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), "<h1>rdlv bench</h1>\n".repeat(100))?;
    let (kind, bin, args) = match (exe, kind) {
        (Some(exe), _) => (Kind::Other, exe.to_path_buf(), args.to_vec()),
        (None, Kind::Nats) => (
            Kind::Nats,
            go_install(NATS, "nats-server")?,
            ["-a", "127.0.0.1", "-p", "{port}", "-js", "-sd", "{dir}"]
                .map(String::from)
                .to_vec(),
        ),
        (None, _) => (
            Kind::Caddy,
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
        .map_err(|e| std::io::Error::other(format!("start {}: {e}", bin.display())))?;
    let mut server = Server {
        child,
        port,
        kind,
        _conns: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conns = Vec::new();
    while conns.len() < IDLE_CONNS {
        let opened = match kind {
            Kind::Nats => {
                // Subscribers: a wildcard, a queue group, a plain subject.
                let sub = match conns.len() % 3 {
                    0 => "SUB bench.> 1\r\n".to_string(),
                    1 => format!("SUB bench.orders.* workers {}\r\n", conns.len()),
                    _ => "SUB bench.orders.1 7\r\n".to_string(),
                };
                nats_connect(port, &sub)
            }
            Kind::Caddy | Kind::Other => {
                TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| {
                    c.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let status = request(&mut c, "/")?;
                    if !status.contains("200") {
                        return fail(format!("{} answered {status:?}", bin.display()));
                    }
                    Ok(c)
                })
            }
        };
        match opened {
            Ok(c) => {
                if kind == Kind::Nats {
                    // Drain what the subscribers are sent, so the server
                    // never drops them as slow consumers.
                    c.set_read_timeout(None)?;
                    let mut reader = c.try_clone()?;
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
                    });
                }
                conns.push(c)
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                return fail(format!(
                    "{} is not serving on port {port}: {e} (see {})",
                    bin.display(),
                    work.join("server.err").display()
                ))
            }
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

/// One instant of a server under load, frozen for both readers: the
/// snapshot `rdlv-snap` wrote and the core `gcore` wrote of the same
/// stopped process (SIGSTOP between the two), and the executable.
pub struct Frozen {
    /// The server's executable.
    pub exe: PathBuf,
    /// `rdlv-snap`'s snapshot.
    pub snap: PathBuf,
    /// `gcore`'s core of the same instant.
    pub core: PathBuf,
    /// Units of client load served while the server ran.
    pub served: u64,
    /// The protocol its clients spoke.
    pub kind: Kind,
}

/// Starts the server of `kind` (or `exe ARGS`, see [`start_server`]) in
/// `work`, loads it from a client thread (fresh connections, one
/// [`load_once`] after another) for half a second, stops it with SIGSTOP,
/// captures it with `snap_tool` and with `gcore`, resumes it, and stops it
/// for good once the load has run on a little.
pub fn freeze_under_load(
    kind: Kind,
    exe: Option<&Path>,
    args: &[String],
    work: &Path,
    snap_tool: &Path,
) -> Result<Frozen> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let (server, bin) = start_server(kind, exe, args, work)?;
    let pid = server.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let (port, kind) = (server.port, server.kind);
    let client = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if load_once(kind, port).is_ok() {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let snap = work.join("server.snap");
    let core_prefix = work.join("core");
    let quiet = |cmd: &mut Command, what: &str| -> Result<()> {
        let out = cmd.stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return fail(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    };
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let captured = quiet(
        Command::new(snap_tool)
            .arg(pid.to_string())
            .arg("-o")
            .arg(&snap)
            .arg("-q"),
        "rdlv-snap",
    )
    .and_then(|()| {
        quiet(
            Command::new("gcore")
                .arg("-o")
                .arg(&core_prefix)
                .arg(pid.to_string()),
            "gcore",
        )
    });
    // SAFETY: as above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = client.join();
    drop(server);
    captured?;
    Ok(Frozen {
        exe: bin,
        snap,
        core: work.join(format!("core.{pid}")),
        served: served.load(Ordering::Relaxed),
        kind,
    })
}
