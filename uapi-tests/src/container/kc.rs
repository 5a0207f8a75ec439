//! `kc` as a user runs it (uapi-tests/src/kc/): its subcommands end to end, with the
//! exact lines they print, and its usage errors. `Kc` is the runner the supervisor
//! tests (`supervise.rs`) share. SKIPs without /bin/kc or the series' calls.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

use super::helpers::{self as h, Call};
use crate::sys::skip;

pub const KC: &str = "/bin/kc";

/// SKIPs unless the kernel has the calls and the image has /bin/kc.
pub fn require_kc() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    if std::fs::metadata(KC).is_err() {
        return Err(skip("/bin/kc: not in this image"));
    }
    Ok(())
}

/// A running kc: its stdout line by line (a reader thread), its stderr collected.
pub struct Kc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    args: String,
}

impl Kc {
    pub fn spawn(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(KC)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning kc {args:?}"))?;
        let stdout = child.stdout.take().context("kc's stdout")?;
        let stderr = child.stderr.take().context("kc's stderr")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr_rx) = channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut all);
            let _ = etx.send(all);
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: stderr_rx,
            args: format!("{args:?}"),
        })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// The next stdout line, within `limit`.
    pub fn line(&self, limit: Duration) -> Result<String> {
        self.lines.recv_timeout(limit).map_err(|e| {
            // Failing anyway: kc's stderr says why.
            let err = self
                .stderr
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            anyhow::anyhow!(
                "kc {}: no line on stdout within {limit:?} ({e}); stderr:\n{err}",
                self.args
            )
        })
    }

    /// Writes a line to kc's stdin (which the container's init inherits).
    pub fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("kc's stdin is closed")?;
        writeln!(stdin, "{line}").context("writing to kc's stdin")
    }

    /// Closes stdin, waits at most `limit`; exit code, the rest of stdout, stderr.
    pub fn finish(mut self, limit: Duration) -> Result<(i32, Vec<String>, String)> {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().context("waiting for kc")? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self
                    .stderr
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default();
                bail!(
                    "kc {} still running after {limit:?}; stderr:\n{err}",
                    self.args
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = self
            .stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        // kc has exited, but its output may still be in the reader thread: take lines
        // until the thread sees end of file (or 5 s pass, should a process kc left
        // behind hold its stdout open).
        let mut rest = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            rest.push(line);
        }
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => -1,
        };
        Ok((code, rest, err))
    }
}

/// Runs kc to the end (at most `limit`): exit code, stdout lines, stderr.
pub fn run(args: &[&str], limit: Duration) -> Result<(i32, Vec<String>, String)> {
    Kc::spawn(args)?.finish(limit)
}

/// Requires `got` to be exactly `want`.
pub fn expect_lines(what: &str, got: &[String], want: &[&str], stderr: &str) -> Result<()> {
    ensure!(
        got == want,
        "{what}: stdout\n{}\nexpected\n{}\nstderr:\n{stderr}",
        got.join("\n"),
        want.join("\n")
    );
    Ok(())
}

/// `kc create NAME -- sh -c 'kc start ...; kc wait --nohang; kc wait'`: start prints
/// the init's pid, wait prints "running" (exit 3) while it runs, then "exit 3" (exit 0),
/// every time; a second start is EBUSY.
pub fn create_start_wait() -> Result<()> {
    require_kc()?;
    let dir = crate::sys::TempDir::new("kc-csw")?;
    let d = dir.path().display().to_string();
    let name = h::unique_name("csw").to_string_lossy().into_owned();
    let script = format!(
        "kc start -- /bin/sh -c 'while [ ! -e {d}/go ]; do sleep 0.05; done; exit 3' > {d}/pid; \
         echo \"start $?\"; \
         kc wait --nohang; echo \"nohang $?\"; \
         kc start -- /bin/true; echo \"again $?\"; \
         touch {d}/go; \
         kc wait; echo \"wait $?\"; \
         kc wait --nohang; echo \"after $?\""
    );
    let (code, out, err) = run(
        &[
            "create", "--ns", "pid,uts", &name, "--", "/bin/sh", "-c", &script,
        ],
        Duration::from_secs(30),
    )?;
    expect_lines(
        "kc create + start + wait",
        &out,
        &[
            "start 0", "running", "nohang 3", "again 1", "exit 3", "wait 0", "exit 3", "after 0",
        ],
        &err,
    )?;
    ensure!(code == 0, "kc create exited {code}; stderr:\n{err}");
    ensure!(
        err.contains("fork_into_container(fd 3): EBUSY") && err.contains("there is only ever one"),
        "the second kc start did not report EBUSY with its meaning:\n{err}"
    );
    let pid = std::fs::read_to_string(dir.join("pid")).context("reading kc start's output")?;
    let pid: i32 = pid
        .trim()
        .parse()
        .with_context(|| format!("kc start printed {pid:?}, not a pid"))?;
    ensure!(pid > 1, "kc start printed pid {pid}");
    h::expect_unlisted(
        &std::ffi::CString::new(name)?,
        "after kc create's command ended",
    )
}

/// `kc kill`: sig 0 checks, KILL kills every member, the status is "killed by
/// SIGKILL", and a dead container is ESRCH (exit 1, the message naming the call).
pub fn kill() -> Result<()> {
    require_kc()?;
    let name = h::unique_name("kill").to_string_lossy().into_owned();
    let script = "kc start -- /bin/sleep 1000 > /dev/null; \
                  kc kill --init 0; echo \"check $?\"; \
                  kc kill KILL; echo \"kill $?\"; \
                  kc wait; \
                  kc kill TERM; echo \"dead $?\"";
    let (code, out, err) = run(
        &[
            "create", "--ns", "pid", &name, "--", "/bin/sh", "-c", script,
        ],
        Duration::from_secs(30),
    )?;
    expect_lines(
        "kc kill",
        &out,
        &["check 0", "kill 0", "killed by SIGKILL", "dead 1"],
        &err,
    )?;
    ensure!(code == 0, "kc create exited {code}");
    ensure!(
        err.trim_end()
            == "kc: no init has started in the container yet, or it has exited: \
                container_kill(fd 3, 0, SIGTERM): ESRCH (No such process)",
        "kc kill on a dead container said:\n{err}"
    );
    Ok(())
}

/// One row of `kc ps --json`.
#[derive(Debug, Deserialize)]
struct JsonRow {
    name: String,
    id: u64,
    refs: u32,
    flags: u64,
    flag_names: Vec<String>,
    owner: u32,
    group: u32,
    /// Part 4 of the series only.
    state: Option<String>,
    members: Option<u32>,
    init_pid: Option<u32>,
}

/// Whether the kernel has the cfd ioctls (part 4 of the series).
fn has_part4() -> Result<bool> {
    use std::os::fd::AsFd;
    let cfd = h::create(&h::unique_name("p4"), 0)?;
    Ok(super::ioctl::get_id(cfd.as_fd()) != Err(crate::sys::Errno::NOTTY))
}

/// `kc ps --json` parses as the rows of /proc/containers, before and after the init
/// starts; with part 4 of the series it adds the state, the member count and init's
/// pid of the container whose fd kc inherited (and nothing without it); plain `kc ps`
/// is the file itself.
pub fn ps_json() -> Result<()> {
    require_kc()?;
    let dir = crate::sys::TempDir::new("kc-ps")?;
    let d = dir.path().display().to_string();
    let name = h::unique_name("ps").to_string_lossy().into_owned();
    let script = format!(
        "kc ps --json > {d}/before.json; kc ps > {d}/plain; \
         kc start -- /bin/sleep 1000 > {d}/pid; kc ps --json > {d}/after.json; \
         kc kill KILL; kc wait > /dev/null"
    );
    let (code, out, err) = run(
        &[
            "create",
            "--ns",
            "none",
            "--kill-on-close",
            &name,
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
        Duration::from_secs(30),
    )?;
    ensure!(
        code == 0 && out.is_empty(),
        "kc create: exit {code}, stdout {out:?}, stderr:\n{err}"
    );
    let load = |f: &str| -> Result<Vec<JsonRow>> {
        let text = std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {f}"))?;
        serde_json::from_str(&text)
            .with_context(|| format!("kc ps --json ({f}) is not the rows:\n{text}"))
    };
    let (before, after) = (load("before.json")?, load("after.json")?);
    let pid: u32 = std::fs::read_to_string(dir.join("pid"))
        .context("reading kc start's output")?
        .trim()
        .parse()
        .context("kc start printed no pid")?;
    let part4 = has_part4()?;
    let extra = |state: &str, members: u32, init: Option<u32>| {
        if part4 {
            (Some(state.to_string()), Some(members), init)
        } else {
            (None, None, None)
        }
    };
    for (when, rows, flags, names, (state, members, init_pid)) in [
        (
            "before start",
            &before,
            0x04u64,
            vec!["kill-on-close"],
            extra("preparing", 0, None),
        ),
        (
            "after start",
            &after,
            0x05,
            vec!["started", "kill-on-close"],
            extra("running", 1, Some(pid)),
        ),
    ] {
        ensure!(
            rows.first()
                .is_some_and(|r| r.name == "<current>" && r.id == 1),
            "{when}: the first row is not <current> with id 1: {rows:?}"
        );
        let mine: Vec<&JsonRow> = rows.iter().filter(|r| r.name == name).collect();
        let [row] = mine[..] else {
            bail!("{when}: {} rows named {name:?}: {rows:?}", mine.len());
        };
        ensure!(
            row.id > 1
                && row.refs >= 1
                && row.flags == flags
                && row.flag_names == names
                && row.owner == 0
                && row.group == 0,
            "{when}: {row:?}, want flags {flags:#x} {names:?} owned by 0:0"
        );
        ensure!(
            (&row.state, row.members, row.init_pid) == (&state, members, init_pid),
            "{when} (part 4: {part4}): state {:?}, members {:?}, init pid {:?}; want {state:?}, \
             {members:?}, {init_pid:?}",
            row.state,
            row.members,
            row.init_pid
        );
    }
    let plain = std::fs::read_to_string(dir.join("plain")).context("reading plain kc ps")?;
    let parsed = h::parse_proc(&plain).context("plain kc ps is not /proc/containers")?;
    let row = h::row(&parsed, &std::ffi::CString::new(name.clone())?)?;
    ensure!(
        Some(row.id) == before.iter().find(|r| r.name == name).map(|r| r.id),
        "kc ps and kc ps --json disagree on the id: {plain}"
    );
    Ok(())
}

/// `--help` on kc and every subcommand exits 0 with a usage line; a bad argument exits
/// 2 with a usage error naming it; a missing container fd exits 1 saying what to do.
pub fn usage() -> Result<()> {
    if std::fs::metadata(KC).is_err() {
        return Err(skip("/bin/kc: not in this image"));
    }
    let subs = [
        "demo",
        "run",
        "create",
        "start",
        "supervise",
        "kill",
        "wait",
        "ps",
        "exec",
        "keyd",
        "demo-keys",
        "request-key",
        "key",
    ];
    let (code, out, err) = run(&["--help"], Duration::from_secs(10))?;
    ensure!(
        code == 0 && out.iter().any(|l| l == "Usage: kc <COMMAND>"),
        "kc --help: exit {code}, {out:?} {err}"
    );
    for sub in subs {
        ensure!(
            out.iter()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "kc --help does not list {sub}: {out:?}"
        );
        let (code, out, err) = run(&[sub, "--help"], Duration::from_secs(10))?;
        ensure!(
            code == 0
                && out
                    .iter()
                    .any(|l| l.starts_with(&format!("Usage: kc {sub}"))),
            "kc {sub} --help: exit {code}, stdout {out:?}, stderr {err}"
        );
    }
    for (args, names) in [
        (&["kill", "NOPE"][..], "invalid value 'NOPE' for '[SIG]'"),
        (
            &["run", "--ns", "bogus", "n", "--", "sh"],
            "invalid value 'bogus' for '--ns <LIST>'",
        ),
        (
            &["start", "--fd", "x", "--", "sh"],
            "invalid value 'x' for '--fd <N>'",
        ),
        (&["wait", "--bogus"], "unexpected argument '--bogus'"),
        (&["run", "name"], "<CMD>"),
    ] {
        let (code, _, err) = run(args, Duration::from_secs(10))?;
        ensure!(
            code == 2 && err.starts_with("error: ") && err.contains(names),
            "kc {args:?}: exit {code} (want 2), stderr naming {names:?}:\n{err}"
        );
    }
    let (code, _, err) = Command::new(KC)
        .arg("wait")
        .env_remove("KC_FD")
        .output()
        .map(|o| {
            (
                o.status.code(),
                o.stdout,
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .context("running kc wait")?;
    ensure!(
        code == Some(1) && err.starts_with("kc: no container fd: pass --fd N or set KC_FD"),
        "kc wait without a container: exit {code:?}, stderr {err}"
    );
    Ok(())
}

/// `kc exec` runs a command in a running container's namespaces (not as a member):
/// with part 4 of the series it prints the container's hostname; without it (ENOTTY)
/// it fails saying that it needs part 4, naming the ioctl.
pub fn exec() -> Result<()> {
    require_kc()?;
    let name = h::unique_name("exec").to_string_lossy().into_owned();
    let script = "kc start -- /bin/sh -c 'hostname inside; exec sleep 1000' > /dev/null; \
                  sleep 0.5; kc exec -- /bin/hostname; echo \"exec $?\"; \
                  kc kill KILL; kc wait > /dev/null";
    let (code, out, err) = run(
        &[
            "create", "--ns", "uts,pid", &name, "--", "/bin/sh", "-c", script,
        ],
        Duration::from_secs(30),
    )?;
    ensure!(code == 0, "kc create exited {code}; stderr:\n{err}");
    if err.contains("ENOTTY") {
        expect_lines("kc exec without part 4", &out, &["exec 1"], &err)?;
        ensure!(
            err.contains("ioctl(fd 3, CONTAINER_GET_INIT_PIDFD): ENOTTY")
                && err.contains("needs part 4 of the series"),
            "kc exec's error does not say what is missing:\n{err}"
        );
    } else {
        expect_lines("kc exec", &out, &["inside", "exec 0"], &err)?;
    }
    Ok(())
}

/// `kc run --join NSFILE... --cgroup DIR`: the init runs in the joined UTS and network
/// namespaces (the holder's hostname and net inode) and in the cgroup; joining a user
/// namespace fails before anything starts, naming the ioctl, the file and the errno,
/// with what to do.
pub fn join() -> Result<()> {
    use super::adopt::{self, Cgroup, Holder};
    require_kc()?;
    adopt::require_cgroup2()?;
    let holder = Holder::new(libc::CLONE_NEWUTS | libc::CLONE_NEWNET)?;
    let cg = Cgroup::new("kcjoin")?;
    let uts = format!("/proc/{}/ns/uts", holder.pid());
    let net = format!("/proc/{}/ns/net", holder.pid());
    let name = h::unique_name("kcjoin").to_string_lossy().into_owned();
    let (code, out, err) = run(
        &[
            "run",
            "--ns",
            "uts,net",
            "--join",
            &uts,
            "--join",
            &net,
            "--cgroup",
            &cg.0,
            &name,
            "--",
            "/bin/sh",
            "-c",
            "hostname; cat /proc/self/cgroup; stat -L -c %i /proc/self/ns/net",
        ],
        Duration::from_secs(30),
    )?;
    let net_ino = holder.inode("net")?.to_string();
    let cg_line = cg.line();
    expect_lines(
        "kc run --join --cgroup",
        &out,
        &[adopt::HOSTNAME, &cg_line, &net_ino],
        &err,
    )?;
    ensure!(code == 0, "kc run exited {code}; stderr:\n{err}");
    let (code, out, err) = run(
        &[
            "run",
            "--join",
            "/proc/self/ns/user",
            &name,
            "--",
            "/bin/true",
        ],
        Duration::from_secs(30),
    )?;
    ensure!(
        code == 1
            && out.is_empty()
            && err.contains("CONTAINER_SET_NAMESPACE(/proc/self/ns/user): EINVAL")
            && err.contains("user and mount namespaces cannot be joined"),
        "kc run --join a user namespace: exit {code}, stdout {out:?}, stderr:\n{err}"
    );
    holder.release()
}
