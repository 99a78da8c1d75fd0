//! Containers (issue 12, items 2 and 5): a Go service in a Docker container,
//! captured the ways people capture in production, and analyzed as if it
//! were a host process.
//!
//! The target is `corpus/cmd/parked` (static, CGO_ENABLED=0) in an image
//! built FROM scratch, run with `--network none` under (i) Docker's default
//! seccomp profile and (ii) a profile that kills the process on
//! `userfaultfd` (`SCMP_ACT_KILL_PROCESS`), the syscall the pre-copy would
//! inject. It is captured
//! (a) from the host by its host PID (`docker inspect -f '{{.State.Pid}}'`),
//! (b) from a sidecar, `docker run --pid=container:APP --cap-add SYS_PTRACE`
//!     with the rdlv-snap image of `capture/Dockerfile` (what `kubectl debug
//!     --target=APP --profile=general` gives), and
//! (c) streamed with `-o -` through `docker exec` into an idle sidecar
//!     (`kubectl exec POD -c DEBUGGER -- rdlv-snap 1 -o - > x.snap`).
//!
//! After every capture: the container still runs with the same PID, no
//! thread is stopped or traced, rdlv-snap's `--json` says which method it
//! used and why it fell back, and `rdlv goroutines --format go` equals the
//! program's own `runtime.Stack` (the oracle protocol's rules,
//! [`compare_goroutines`]).
//!
//! Invariants of the harness: every container has a name unique to this
//! test process and is removed (`docker rm -f`) by a guard's `Drop`, also
//! when an assertion fails; every docker command has a timeout. Docker must
//! answer on its socket (`.ci/start-docker` starts it): without it the tests
//! fail, they never skip. No registry is contacted: images are built FROM
//! scratch from binaries built here.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdlv_e2e::target::{ORACLE_TIMEOUT, READY_TIMEOUT};
use rdlv_e2e::{
    build_corpus, compare_goroutines, describe_output, go_toolchain, parse_stacks,
    rdlv_snap_unwrapped_path, run_rdlv, workspace_root, CompareOptions, GoroutineBlock, Variant,
    DEFAULT_GO,
};
use tempfile::TempDir;

/// Longest a docker command other than a build may take (a loaded 2-core
/// machine, a capture of a small process included).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(180);

/// Longest an image build may take: the rdlv-snap image starts with a static
/// release build of rdlv-snap (LTO) when none is cached.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);

/// Tag of the target's image (parked, static, FROM scratch).
const APP_IMAGE: &str = "rdlv-e2e-parked:latest";

/// Tag of the rdlv-snap image built from capture/Dockerfile.
const SNAP_IMAGE: &str = "rdlv-e2e-snap:latest";

/// `CAP_SYS_ADMIN`'s number (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

/// A seccomp profile that allows everything but kills the whole process on
/// `userfaultfd`: injecting the pre-copy's syscall into a target under it
/// would kill the target.
const KILL_USERFAULTFD_PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["userfaultfd"], "action": "SCMP_ACT_KILL_PROCESS"}
  ]
}
"#;

/// A program that makes the one syscall the pre-copy injects,
/// `userfaultfd(UFFD_USER_MODE_ONLY | O_CLOEXEC)`, and prints its result:
/// it shows what each profile does with it.
const UFFD_PROBE_GO: &str = r#"package main

import (
	"fmt"
	"syscall"
)

// sysUserfaultfd is userfaultfd's number on x86-64 (the syscall package has no name for it).
const sysUserfaultfd = 323

func main() {
	fd, _, errno := syscall.Syscall(sysUserfaultfd, 1|syscall.O_CLOEXEC, 0, 0)
	if errno != 0 {
		fmt.Printf("userfaultfd: errno %d\n", int(errno))
		return
	}
	fmt.Printf("userfaultfd: fd %d\n", int(fd))
}
"#;

/// The `docker` command: `$DOCKER`, else `docker` from PATH.
fn docker_bin() -> PathBuf {
    std::env::var_os("DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker"))
}

/// Runs `cmd` to completion, killing it and panicking after `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: still running after {timeout:?}; killed");
            }
            Err(e) => panic!("{what}: wait: {e}"),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs `docker ARGS` with [`DOCKER_TIMEOUT`].
fn docker(args: &[&str]) -> Output {
    require_docker();
    run_with_timeout(
        Command::new(docker_bin()).args(args),
        DOCKER_TIMEOUT,
        &format!("docker {}", args.join(" ")),
    )
}

/// Runs `docker ARGS`, asserts success and returns stdout, trimmed.
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "{}",
        describe_output(&format!("docker {}", args.join(" ")), &out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Panics, saying how to start it, when no Docker daemon answers.
fn require_docker() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = run_with_timeout(
            Command::new(docker_bin()).args(["version", "--format", "{{.Server.Version}}"]),
            Duration::from_secs(60),
            "docker version",
        );
        assert!(
            out.status.success(),
            "no Docker daemon answers: run `.ci/start-docker` (installs Debian's docker.io and \
             starts dockerd)\n{}",
            describe_output("docker version", &out)
        );
    });
}

/// A name no other container of this or a concurrent test process has.
fn unique_name(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rdlv-e2e-{}-{}-{label}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container that is removed (`docker rm -f`) when this guard drops,
/// whether the test passed or panicked.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d --name NAME ARGS...`: returns the guard once the
    /// container was created (the guard exists before `docker run` is
    /// started, so even a timed-out run is cleaned up).
    fn run_detached(label: &str, args: &[&str]) -> Container {
        let container = Container {
            name: unique_name(label),
        };
        let mut full = vec!["run", "-d", "--name", &container.name];
        full.extend_from_slice(args);
        docker_ok(&full);
        container
    }

    /// `docker inspect -f FORMAT NAME`.
    fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "-f", format, &self.name])
    }

    /// Its main process's PID as the host sees it.
    fn host_pid(&self) -> u32 {
        let pid = self.inspect("{{.State.Pid}}");
        pid.parse()
            .unwrap_or_else(|_| panic!("docker inspect gave pid {pid:?} for {}", self.name))
    }

    /// Everything the container wrote to stdout and stderr so far.
    fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Never panic in drop (it may run while a test is unwinding).
        let _ = run_with_timeout_quiet(
            Command::new(docker_bin()).args(["rm", "-f", &self.name]),
            DOCKER_TIMEOUT,
        );
    }
}

/// [`run_with_timeout`] that reports failure instead of panicking.
fn run_with_timeout_quiet(cmd: &mut Command, timeout: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Some(Output {
                    status,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                })
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Builds an image tagged `tag` from a context holding `files` (name,
/// source path) and `dockerfile`, with the legacy builder (it needs no
/// registry and no BuildKit frontend image).
fn build_image(tag: &str, dockerfile: &str, files: &[(&str, &Path)]) {
    require_docker();
    let ctx = tempfile::Builder::new()
        .prefix("rdlv-e2e-image-")
        .tempdir()
        .expect("image context dir");
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    for (name, src) in files {
        std::fs::copy(src, ctx.path().join(name))
            .unwrap_or_else(|e| panic!("copy {} into the image context: {e}", src.display()));
    }
    let out = run_with_timeout(
        Command::new(docker_bin())
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--quiet", "-t", tag])
            .arg(ctx.path()),
        BUILD_TIMEOUT,
        &format!("docker build -t {tag}"),
    );
    assert!(
        out.status.success(),
        "{}",
        describe_output(&format!("docker build -t {tag}"), &out)
    );
}

/// The target's image: the static `parked` at `/parked`, nothing else.
fn app_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let parked = build_corpus("parked", DEFAULT_GO, Variant::NoCgo);
        build_image(
            APP_IMAGE,
            "FROM scratch\nCOPY parked /parked\nENTRYPOINT [\"/parked\"]\n",
            &[("parked", &parked)],
        );
    });
    APP_IMAGE
}

/// The rdlv-snap image, built by `capture/build-image.sh` (the static
/// binary of `capture/build-static.sh` and `capture/Dockerfile`), exactly as
/// the README tells users to build it.
fn snap_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_docker();
        let root = workspace_root();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = run_with_timeout(
            Command::new("sh")
                .arg(root.join("capture/build-image.sh"))
                .arg(SNAP_IMAGE)
                .env("DOCKER", docker_bin())
                // build-static.sh runs `cargo`: the one running these tests.
                .env("PATH", path_with_cargo(Path::new(&cargo))),
            BUILD_TIMEOUT,
            "capture/build-image.sh",
        );
        assert!(
            out.status.success(),
            "{}",
            describe_output("capture/build-image.sh", &out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            SNAP_IMAGE,
            "build-image.sh prints the tag it built"
        );
    });
    SNAP_IMAGE
}

/// PATH with the directory of `cargo` first (when it is a path).
fn path_with_cargo(cargo: &Path) -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = cargo.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// The seccomp profile a target container runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Docker's default profile (no `--security-opt`).
    DockerDefault,
    /// [`KILL_USERFAULTFD_PROFILE`].
    KillUserfaultfd,
}

impl Profile {
    const BOTH: [Profile; 2] = [Profile::DockerDefault, Profile::KillUserfaultfd];

    /// `docker run` arguments that apply the profile; `dir` holds the JSON file.
    fn run_args(self, dir: &Path) -> Vec<String> {
        match self {
            Profile::DockerDefault => Vec::new(),
            Profile::KillUserfaultfd => {
                let path = dir.join("kill-userfaultfd.json");
                std::fs::write(&path, KILL_USERFAULTFD_PROFILE).expect("write seccomp profile");
                vec![
                    "--security-opt".into(),
                    format!("seccomp={}", path.display()),
                ]
            }
        }
    }
}

/// `parked` running in a container, its oracle directory bind-mounted.
struct App {
    container: Container,
    pid: u32,
    profile: Profile,
    oracle_dir: TempDir,
    _profile_dir: TempDir,
}

impl App {
    /// Starts the target under `profile` and waits for `READY 1` (it is
    /// PID 1 of its own PID namespace).
    fn start(profile: Profile) -> App {
        let image = app_image();
        let oracle_dir = tempfile::Builder::new()
            .prefix("rdlv-e2e-oracle-")
            .tempdir()
            .expect("oracle dir");
        let profile_dir = tempfile::Builder::new()
            .prefix("rdlv-e2e-seccomp-")
            .tempdir()
            .expect("profile dir");
        let volume = format!("{}:/oracle", oracle_dir.path().display());
        let profile_args = profile.run_args(profile_dir.path());
        let mut args: Vec<&str> = vec![
            "--network",
            "none",
            "-v",
            &volume,
            "-e",
            "ORACLE_DIR=/oracle",
        ];
        args.extend(profile_args.iter().map(String::as_str));
        args.push(image);
        let container = Container::run_detached("app", &args);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let logs = container.logs();
            if logs.lines().any(|l| l == "READY 1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} printed no `READY 1` within {READY_TIMEOUT:?}; logs:\n{logs}",
                container.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let pid = container.host_pid();
        let app = App {
            container,
            pid,
            profile,
            oracle_dir,
            _profile_dir: profile_dir,
        };
        // The premise of every test here: the target runs under a filter.
        let status = app.proc_status();
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["Seccomp:", "2"])),
            "the target container ({profile:?}) runs under no seccomp filter:\n{status}"
        );
        app
    }

    fn name(&self) -> &str {
        &self.container.name
    }

    fn proc_status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default()
    }

    /// Asserts the container still runs the same process and none of its
    /// threads is stopped or traced (threads resume a moment after the
    /// tracer detaches, so this retries for two seconds).
    fn assert_running(&self, after: &str) {
        let state = self.container.inspect("{{.State.Running}} {{.State.Pid}}");
        assert_eq!(
            state,
            format!("true {}", self.pid),
            "after {after}: the target container {} ({:?}) no longer runs pid {}; logs:\n{}",
            self.name(),
            self.profile,
            self.pid,
            self.container.logs()
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let bad = stopped_or_traced_threads(self.pid);
            if bad.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after {after}: threads of {} left stopped or traced: {bad:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes `done`, sends SIGUSR1 and returns the parsed `stacks.txt`.
    fn oracle(&self) -> Vec<GoroutineBlock> {
        let dir = self.oracle_dir.path();
        let done = dir.join("done");
        match std::fs::remove_file(&done) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", done.display()),
        }
        // SAFETY: kill(2) on the container's main process, checked above to
        // be the container's current PID.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGUSR1) };
        assert_eq!(
            rc,
            0,
            "kill -USR1 {}: {}",
            self.pid,
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + ORACLE_TIMEOUT;
        while !done.exists() {
            assert!(
                Instant::now() < deadline,
                "the oracle of {} did not answer SIGUSR1; logs:\n{}",
                self.name(),
                self.container.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(dir.join("stacks.txt")).expect("read stacks.txt");
        parse_stacks(&text).unwrap_or_else(|e| panic!("stacks.txt: {e}\n{text}"))
    }

    /// The oracle protocol after a capture: the container still runs, then
    /// `rdlv goroutines SNAP --format go` equals `runtime.Stack` of the
    /// process, taken now.
    fn check_capture(&self, capture: &Captured, how: &str) {
        self.assert_running(how);
        let oracle = self.oracle();
        let out = run_rdlv(&[
            "goroutines".as_ref(),
            capture.snap.as_os_str(),
            "--format".as_ref(),
            "go".as_ref(),
        ]);
        assert!(
            out.status.success(),
            "{how}: {}",
            describe_output("rdlv goroutines --format go", &out)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let ours =
            parse_stacks(&text).unwrap_or_else(|e| panic!("{how}: rdlv output: {e}\n{text}"));
        let compared = oracle.iter().filter(|g| !g.is_oracle_machinery()).count();
        assert!(
            compared >= 20,
            "{how}: the oracle has only {compared} goroutines"
        );
        if let Err(diffs) = compare_goroutines(&oracle, &ours, CompareOptions::default()) {
            panic!(
                "{how} ({:?}): rdlv goroutines --format go differs from runtime.Stack:\n{}",
                self.profile,
                diffs.join("\n")
            );
        }
        // And the target still answers after the oracle, too.
        self.assert_running(&format!("{how}, oracle"));
    }
}

/// Threads of `pid` that are stopped (`t`/`T`) or have a tracer.
fn stopped_or_traced_threads(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![format!("/proc/{pid}/task is gone")];
    };
    let mut bad = Vec::new();
    for entry in dir.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let state = field("State:");
        let tracer = field("TracerPid:");
        if state.starts_with('t') || state.starts_with('T') || tracer != "0" {
            bad.push(format!(
                "tid {} state {state} tracer {tracer}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    bad
}

/// One finished capture: the snapshot on the host and rdlv-snap's `--json`.
struct Captured {
    snap: PathBuf,
    json: serde_json::Value,
    _dir: TempDir,
}

impl Captured {
    /// Asserts rdlv-snap's method, and that the fallback reason names the
    /// seccomp filter for a plain copy (or that there is none for a pre-copy).
    fn assert_method(&self, method: &str, how: &str) {
        assert_eq!(
            self.json["method"], method,
            "{how}: rdlv-snap --json: {}",
            self.json
        );
        let fallback = &self.json["precopy_fallback"];
        match method {
            "plain" => assert!(
                fallback.as_str().is_some_and(|r| r.contains("seccomp")),
                "{how}: the plain copy's reason should name the seccomp filter: {}",
                self.json
            ),
            _ => assert!(
                fallback.is_null(),
                "{how}: a {method} capture with a fallback reason: {}",
                self.json
            ),
        }
    }
}

fn snapshot_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("rdlv-e2e-csnap-")
        .tempdir()
        .expect("snapshot dir")
}

/// The one JSON object line rdlv-snap printed to `text`.
fn json_line(text: &[u8], what: &str) -> serde_json::Value {
    String::from_utf8_lossy(text)
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v.is_object())
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: no JSON object in {}",
                String::from_utf8_lossy(text)
            )
        })
}

/// (a) `rdlv-snap HOSTPID -o FILE --json` on the host, as root, without
/// `CAP_SYS_ADMIN` when `sys_admin` is false (dropped from the bounding set
/// before exec, so the exec'd rdlv-snap cannot have it).
fn capture_from_host(app: &App, sys_admin: bool) -> Captured {
    let dir = snapshot_dir();
    let snap = dir.path().join("host.snap");
    let mut cmd = Command::new(rdlv_snap_unwrapped_path());
    cmd.arg(app.pid.to_string())
        .arg("-o")
        .arg(&snap)
        .arg("--json");
    if !sys_admin {
        drop_sys_admin_on_exec(&mut cmd);
    }
    let out = run_with_timeout(&mut cmd, DOCKER_TIMEOUT, "rdlv-snap on the host");
    assert!(
        out.status.success(),
        "{}",
        describe_output("rdlv-snap HOSTPID on the host", &out)
    );
    Captured {
        snap,
        json: json_line(&out.stdout, "rdlv-snap on the host"),
        _dir: dir,
    }
}

/// Makes `cmd` exec without CAP_SYS_ADMIN: removed from the bounding set in
/// the child, so root's execve does not grant it.
fn drop_sys_admin_on_exec(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the closure touches no memory of
    // the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_CAPBSET_DROP,
                CAP_SYS_ADMIN as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The premise: a process started this way really lacks the capability.
    let mut probe = Command::new("cat");
    probe.arg("/proc/self/status");
    // SAFETY: as above.
    unsafe {
        probe.pre_exec(|| {
            if libc::prctl(
                libc::PR_CAPBSET_DROP,
                CAP_SYS_ADMIN as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_timeout(&mut probe, Duration::from_secs(30), "cat /proc/self/status");
    let status = String::from_utf8_lossy(&out.stdout);
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no CapEff in {status}"));
    assert_eq!(
        eff & (1 << CAP_SYS_ADMIN),
        0,
        "CAP_SYS_ADMIN was not dropped: {status}"
    );
}

/// `--cap-add`/`--security-opt` of a sidecar.
#[derive(Debug, Clone, Copy)]
enum Sidecar {
    /// `--cap-add SYS_PTRACE` (kubectl debug `--profile=general`).
    Ptrace,
    /// `--cap-add SYS_PTRACE --cap-add SYS_ADMIN`, still under Docker's
    /// default seccomp profile: the kernel refuses to show a seccomp filter
    /// to a tracer that runs under one (PTRACE_SECCOMP_GET_FILTER: EACCES).
    PtraceSysAdmin,
    /// `--cap-add SYS_PTRACE --cap-add SYS_ADMIN --security-opt
    /// seccomp=unconfined`: what kubectl debug `--profile=sysadmin` gives
    /// (a privileged container, unconfined; `--privileged` itself cannot
    /// start where the host lacks some capability, as on this CI machine).
    SysAdminUnconfined,
}

impl Sidecar {
    fn args(self) -> &'static [&'static str] {
        match self {
            Sidecar::Ptrace => &["--cap-add", "SYS_PTRACE"],
            Sidecar::PtraceSysAdmin => &["--cap-add", "SYS_PTRACE", "--cap-add", "SYS_ADMIN"],
            Sidecar::SysAdminUnconfined => &[
                "--cap-add",
                "SYS_PTRACE",
                "--cap-add",
                "SYS_ADMIN",
                "--security-opt",
                "seccomp=unconfined",
            ],
        }
    }
}

/// (b) `docker run --rm --pid=container:APP CAPS -v DIR:/out rdlv-snap
/// rdlv-snap 1 -o /out/sidecar.snap --json`: the target is PID 1 of the
/// shared namespace.
fn capture_from_sidecar(app: &App, sidecar: Sidecar) -> Captured {
    let image = snap_image();
    let dir = snapshot_dir();
    let guard = Container {
        name: unique_name("sidecar"),
    };
    let pid_ns = format!("container:{}", app.name());
    let volume = format!("{}:/out", dir.path().display());
    let mut args = vec![
        "run",
        "--rm",
        "--name",
        &guard.name,
        "--network",
        "none",
        "--pid",
        &pid_ns,
        "-v",
        &volume,
    ];
    args.extend_from_slice(sidecar.args());
    args.extend_from_slice(&[image, "rdlv-snap", "1", "-o", "/out/sidecar.snap", "--json"]);
    let out = docker(&args);
    let how = format!("sidecar {sidecar:?}");
    assert!(out.status.success(), "{}", describe_output(&how, &out));
    let snap = dir.path().join("sidecar.snap");
    assert!(
        snap.is_file(),
        "{how}: exited 0 but wrote no {}",
        snap.display()
    );
    Captured {
        snap,
        json: json_line(&out.stdout, &how),
        _dir: dir,
    }
}

/// An idle rdlv-snap sidecar sharing the target's PID namespace: the image
/// run without a command, as `kubectl debug --image=... --target=APP` runs
/// it (its default command is `rdlv-snap idle`).
fn start_idle_sidecar(app: &App, sidecar: Sidecar) -> Container {
    let image = snap_image();
    let pid_ns = format!("container:{}", app.name());
    let mut args = vec!["--network", "none", "--pid", &pid_ns];
    args.extend_from_slice(sidecar.args());
    args.push(image);
    let debugger = Container::run_detached("debugger", &args);
    // Running, and idle says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !debugger.logs().contains("rdlv-snap idle: waiting") {
        assert!(
            Instant::now() < deadline,
            "the idle sidecar printed nothing; state {}; logs:\n{}",
            debugger.inspect("{{.State.Status}}"),
            debugger.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    debugger
}

/// (c) `docker exec DEBUGGER rdlv-snap 1 -o - --json > FILE`: the snapshot
/// streams through docker's stdout onto the host; `--json` goes to stderr.
fn capture_through_exec(debugger: &Container) -> Captured {
    stream_snapshot(
        &[
            "exec",
            &debugger.name,
            "rdlv-snap",
            "1",
            "-o",
            "-",
            "--json",
        ],
        "docker exec rdlv-snap 1 -o -",
    )
}

/// `docker run --rm --pid=container:APP CAPS rdlv-snap rdlv-snap 1 -o -
/// --json > FILE`: a one-shot sidecar streaming to the host.
fn capture_from_sidecar_streamed(app: &App, sidecar: Sidecar) -> Captured {
    let image = snap_image();
    let guard = Container {
        name: unique_name("sidecar-stream"),
    };
    let pid_ns = format!("container:{}", app.name());
    let mut args = vec![
        "run",
        "--rm",
        "--name",
        &guard.name,
        "--network",
        "none",
        "--pid",
        &pid_ns,
    ];
    args.extend_from_slice(sidecar.args());
    args.extend_from_slice(&[image, "rdlv-snap", "1", "-o", "-", "--json"]);
    stream_snapshot(&args, &format!("docker run {sidecar:?} rdlv-snap 1 -o -"))
}

/// Runs `docker ARGS` with stdout into a host file (the snapshot) and
/// stderr kept (rdlv-snap's `--json` line with `-o -`); checks that the file
/// has the size rdlv-snap reports.
fn stream_snapshot(args: &[&str], how: &str) -> Captured {
    require_docker();
    let dir = snapshot_dir();
    let snap = dir.path().join("streamed.snap");
    let file = std::fs::File::create(&snap).expect("create the streamed snapshot file");
    let mut child = Command::new(docker_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + DOCKER_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for docker") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{how}: still running after {DOCKER_TIMEOUT:?}; killed");
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "{how}: {status}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    let len = std::fs::metadata(&snap).map(|m| m.len()).unwrap_or(0);
    let json = json_line(&stderr, &format!("{how} (stderr)"));
    assert_eq!(
        json["file_bytes"].as_u64(),
        Some(len),
        "{how}: the streamed file has {len} bytes, rdlv-snap says it wrote {}",
        json["file_bytes"]
    );
    Captured {
        snap,
        json,
        _dir: dir,
    }
}

/// The premises, shown rather than assumed: under Docker's default profile
/// the pre-copy's `userfaultfd` fails with EPERM (the filter's default
/// action, so a pre-copy there needs the filter suspended, not just
/// evaluated), and the custom profile really kills a process that calls it.
#[test]
fn profiles_treat_userfaultfd_as_the_tests_assume() {
    let src = tempfile::Builder::new()
        .prefix("rdlv-e2e-uffd-probe-")
        .tempdir()
        .expect("probe dir");
    std::fs::write(src.path().join("go.mod"), "module probe\n\ngo 1.21\n").expect("go.mod");
    std::fs::write(src.path().join("main.go"), UFFD_PROBE_GO).expect("main.go");
    let bin = src.path().join("uffd-probe");
    let out = run_with_timeout(
        Command::new(go_toolchain(DEFAULT_GO))
            .current_dir(src.path())
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .env("CGO_ENABLED", "0")
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", ""),
        Duration::from_secs(300),
        "go build uffd-probe",
    );
    assert!(
        out.status.success(),
        "{}",
        describe_output("go build", &out)
    );
    let tag = "rdlv-e2e-uffd-probe:latest";
    build_image(
        tag,
        "FROM scratch\nCOPY uffd-probe /uffd-probe\nENTRYPOINT [\"/uffd-probe\"]\n",
        &[("uffd-probe", &bin)],
    );
    let profiles = tempfile::tempdir().expect("profile dir");
    let run = |profile: Profile| {
        let guard = Container {
            name: unique_name("uffd-probe"),
        };
        let mut args: Vec<String> = vec![
            "run".into(),
            "--rm".into(),
            "--name".into(),
            guard.name.clone(),
            "--network".into(),
            "none".into(),
        ];
        args.extend(profile.run_args(profiles.path()));
        args.push(tag.into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args)
    };
    let out = run(Profile::DockerDefault);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim()
                == format!("userfaultfd: errno {}", libc::EPERM),
        "{}",
        describe_output("userfaultfd under Docker's default profile", &out)
    );
    let out = run(Profile::KillUserfaultfd);
    // SIGSYS: the shell convention docker run follows is 128 + signal.
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        describe_output("userfaultfd under the kill profile", &out)
    );
}

/// (a) From the host by host PID, for both profiles, without CAP_SYS_ADMIN:
/// a plain copy that names the seccomp filter. Under the kill profile also
/// as full root: its filter kills on userfaultfd, so nothing may be
/// injected whatever rdlv-snap may do, and the target must survive.
#[test]
fn host_capture_by_host_pid_matches_the_oracle() {
    for profile in Profile::BOTH {
        let app = App::start(profile);
        let capture = capture_from_host(&app, false);
        capture.assert_method("plain", &format!("host, no CAP_SYS_ADMIN, {profile:?}"));
        app.check_capture(&capture, "host capture without CAP_SYS_ADMIN");
        if profile == Profile::KillUserfaultfd {
            let capture = capture_from_host(&app, true);
            capture.assert_method("plain", "host as root, kill profile");
            app.check_capture(&capture, "host capture as root");
        }
    }
}

/// (b) From a sidecar sharing the target's PID namespace with SYS_PTRACE
/// (kubectl debug `--profile=general`), for both profiles: plain, the seccomp
/// reason, the oracle. Adding SYS_ADMIN while the sidecar itself stays under
/// Docker's default profile cannot show rdlv-snap the target's filter, so
/// that is plain with the reason too; under the kill profile not even an
/// unconfined SYS_ADMIN sidecar may inject. The one-shot sidecar also
/// streams with `-o -` through `docker run`'s stdout.
#[test]
fn sidecar_capture_matches_the_oracle() {
    for profile in Profile::BOTH {
        let app = App::start(profile);
        let mut sidecars = vec![Sidecar::Ptrace, Sidecar::PtraceSysAdmin];
        if profile == Profile::KillUserfaultfd {
            sidecars.push(Sidecar::SysAdminUnconfined);
        }
        for sidecar in sidecars {
            let how = format!("sidecar {sidecar:?}, target {profile:?}");
            let capture = capture_from_sidecar(&app, sidecar);
            capture.assert_method("plain", &how);
            app.check_capture(&capture, &how);
        }
        let how = format!("sidecar streaming with docker run, target {profile:?}");
        let capture = capture_from_sidecar_streamed(&app, Sidecar::Ptrace);
        capture.assert_method("plain", &how);
        app.check_capture(&capture, &how);
    }
}

/// (c) and the Kubernetes recipe as far as Docker shows it: the rdlv-snap
/// image run without a command next to the target (the ephemeral container
/// of `kubectl debug --target=APP --profile=general`) idles; `docker exec
/// DEBUGGER rdlv-snap 1 -o -` (`kubectl exec POD -c DEBUGGER -- ...`)
/// streams a snapshot to the host, twice; then `docker stop` ends the idle
/// process at once with exit code 0, in the shared namespace and as PID 1 of
/// its own.
#[test]
fn streamed_through_docker_exec_into_an_idle_sidecar() {
    let app = App::start(Profile::DockerDefault);
    let debugger = start_idle_sidecar(&app, Sidecar::Ptrace);
    for round in 1..=2 {
        let how = format!("docker exec rdlv-snap -o -, round {round}");
        let capture = capture_through_exec(&debugger);
        capture.assert_method("plain", &how);
        app.check_capture(&capture, &how);
    }
    assert_stops_promptly(&debugger, "the idle sidecar in the target's PID namespace");
    app.assert_running("the sidecar stopped");

    let alone = Container::run_detached("idle-alone", &["--network", "none", snap_image()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alone.logs().contains("rdlv-snap idle: waiting") {
        assert!(
            Instant::now() < deadline,
            "idle printed nothing: {}",
            alone.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_stops_promptly(&alone, "idle as PID 1 of its own container");
}

/// `docker stop -t 20 NAME` returns well before its 20 s grace period ends
/// (SIGTERM was honoured, no SIGKILL needed) and the exit code is 0.
fn assert_stops_promptly(container: &Container, what: &str) {
    let start = Instant::now();
    docker_ok(&["stop", "-t", "20", &container.name]);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{what}: docker stop took {took:?} (SIGTERM ignored?)"
    );
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "{what}: exit code after SIGTERM"
    );
}

/// The fast path (issue 12 item 1): with CAP_SYS_ADMIN and not itself under
/// seccomp (root on the host; a sidecar with SYS_ADMIN and
/// `seccomp=unconfined`, what kubectl debug `--profile=sysadmin` gives),
/// rdlv-snap pre-copies a target under Docker's default profile, and the
/// snapshot still equals the oracle. Under that profile `userfaultfd` is
/// EPERM (see `profiles_treat_userfaultfd_as_the_tests_assume`), so this
/// needs the target's filter suspended for the injected userfaultfd()
/// (PTRACE_O_SUSPEND_SECCOMP), not only evaluated; the close() after it is
/// allowed by the profile and made as it is.
#[test]
fn fast_path_precopy_with_sys_admin_under_docker_default_profile() {
    let app = App::start(Profile::DockerDefault);
    let capture = capture_from_host(&app, true);
    capture.assert_method("precopy", "host as root, default profile");
    app.check_capture(&capture, "host pre-copy");
    let capture = capture_from_sidecar(&app, Sidecar::SysAdminUnconfined);
    capture.assert_method("precopy", "sidecar SYS_ADMIN unconfined, default profile");
    app.check_capture(&capture, "sidecar pre-copy");
    let debugger = start_idle_sidecar(&app, Sidecar::SysAdminUnconfined);
    let capture = capture_through_exec(&debugger);
    capture.assert_method("precopy", "docker exec in a SYS_ADMIN unconfined sidecar");
    app.check_capture(&capture, "streamed pre-copy");
}
