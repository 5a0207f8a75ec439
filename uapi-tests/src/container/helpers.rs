//! What the container tests share: gating on the running kernel, forked processes (a
//! container's init, its members, helpers) that send their errors back, pipes,
//! `/proc/containers` rows, dropping privileges, recording signals and resource usage.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use libc::{c_int, c_long, pid_t};

use super::calls;
use crate::sys::{self, errno_name, skip, Errno, Skip};

// ---------------------------------------------------------------------------------------
// Gating

/// One of the series' system calls.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    Create,
    Fork,
    Socket,
    Kill,
    Wait,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Create => "container_create",
            Call::Fork => "fork_into_container",
            Call::Socket => "container_socket",
            Call::Kill => "container_kill",
            Call::Wait => "container_wait",
        }
    }

    /// Calls it with arguments that change nothing (NULL name, fd -1).
    fn probe(self) -> Option<Errno> {
        match self {
            Call::Create => calls::container_create_raw(std::ptr::null(), 0, [0; 3]).err(),
            Call::Fork => fork_fails(-1).err(),
            Call::Socket => calls::container_socket(-1, libc::AF_UNIX, libc::SOCK_DGRAM, 0).err(),
            Call::Kill => calls::container_kill(-1, 0, 0).err(),
            Call::Wait => calls::container_wait(-1, None, 0, None).err(),
        }
    }
}

/// SKIPs the test unless the running kernel has every one of `calls`: the number must be
/// the headers', or the kernel must be the 7.3 the uapi.md numbers are for (a later kernel
/// may give 473.. to calls of its own), and the call must not be ENOSYS (a kernel without
/// CONFIG_CONTAINERS, or a commit of the series before the call exists).
pub fn require(calls: &[Call]) -> Result<()> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let base = release == "7.3" || release.starts_with("7.3.") || release.starts_with("7.3-");
    for &call in calls {
        let name = call.name();
        if !base && !crate::uapi::from_headers(&format!("__NR_{name}")) {
            return Err(skip(format!(
                "{name}: number from uapi.md is for 7.3, kernel {release} may use it for another syscall"
            )));
        }
        if call.probe() == Some(Errno::NOSYS) {
            return Err(skip(format!(
                "{name}: ENOSYS (kernel without CONFIG_CONTAINERS)"
            )));
        }
    }
    Ok(())
}

/// fork_into_container for calls expected to fail: should one wrongly succeed, the child
/// leaves at once and the parent reaps it, so only the parent reports.
pub fn fork_fails(cfd: RawFd) -> Result<pid_t, Errno> {
    // SAFETY: the child only calls _exit.
    match unsafe { calls::fork_into_container(cfd) } {
        // SAFETY: leaves the wrongly created child without touching the test's state.
        Ok(0) => unsafe { libc::_exit(0) },
        Ok(pid) => {
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Ok(pid)
        }
        Err(e) => Err(e),
    }
}

pub fn dev_null() -> Result<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("open /dev/null")
}

/// File descriptors every call must refuse, with the errno: -1 and a closed fd (EBADF),
/// /dev/null and a pipe (EINVAL: open, but not a container). Use them before opening
/// anything else, so the closed number stays closed.
pub struct BadFds {
    pub cases: Vec<(&'static str, RawFd, Errno)>,
    _null: OwnedFd,
    _pipe: Pipe,
}

pub fn bad_fds() -> Result<BadFds> {
    let null = dev_null()?;
    let pipe = Pipe::new()?;
    let closed = dev_null()?.as_raw_fd(); // closed at the end of this statement
    Ok(BadFds {
        cases: vec![
            ("-1", -1, Errno::BADF),
            ("a closed fd", closed, Errno::BADF),
            ("/dev/null", null.as_raw_fd(), Errno::INVAL),
            ("a pipe", pipe.rx.as_raw_fd(), Errno::INVAL),
        ],
        _null: null,
        _pipe: pipe,
    })
}

/// A container name unique to this test process: `kc-TAG-PID` (at most 23 bytes).
pub fn unique_name(tag: &str) -> CString {
    let mut name = format!("kc-{tag}-{}", std::process::id());
    name.truncate(23);
    CString::new(name).unwrap_or_default()
}

/// `container_create(name, flags)` that must succeed.
pub fn create(name: &std::ffi::CStr, flags: u32) -> Result<OwnedFd> {
    calls::container_create(name, flags)
        .map_err(|e| anyhow::anyhow!("container_create({name:?}, {flags:#x}): {}", errno_name(e)))
}

/// `container_create(name, flags)` by an unprivileged user, with `CONTAINER_NEW_USER_NS`
/// among `flags`: SKIP where user namespaces are restricted (EPERM, ENOSPC).
pub fn create_as_owner(name: &std::ffi::CStr, flags: u32) -> Result<OwnedFd> {
    match calls::container_create(name, flags) {
        Err(e @ (Errno::PERM | Errno::NOSPC)) => Err(crate::sys::skip(format!(
            "container_create(NEW_USER_NS) as an unprivileged user: {} (user namespaces \
             restricted)",
            errno_name(e)
        ))),
        r => crate::sys::ok("container_create(NEW_USER_NS) as an unprivileged user", r),
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// Exit code of a process whose body returned an error (the text is in its error pipe).
pub const FAILED: i32 = 125;
const REPORT_FAIL: u8 = b'F';
const REPORT_SKIP: u8 = b'S';
/// Below PIPE_BUF, so a report is one atomic write.
const REPORT_MAX: usize = 4000;

/// A forked process running a body that returns its exit code or an error; an error
/// comes back through a pipe and fails (or skips) the test when the parent waits.
/// SIGKILLed and reaped on drop unless waited for.
pub struct Proc {
    child: sys::Child,
    err: OwnedFd,
    what: String,
}

/// In the child: runs `body`, reports an error, `_exit`s.
fn run_body(err_tx: RawFd, body: impl FnOnce() -> Result<i32>) -> ! {
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let (tag, text) = match e.chain().find_map(|c| c.downcast_ref::<Skip>()) {
                Some(s) => (REPORT_SKIP, s.0.clone()),
                None => (REPORT_FAIL, format!("{e:#}")),
            };
            let mut msg = vec![tag];
            msg.extend_from_slice(text.as_bytes());
            msg.truncate(REPORT_MAX);
            sys::raw_write(err_tx, &msg);
            FAILED
        }
        Err(_) => FAILED + 1,
    };
    // SAFETY: ends the child without unwinding into the caller's frames.
    unsafe { libc::_exit(code) }
}

impl Proc {
    /// `fork()`s a helper that runs `body`.
    pub fn fork(what: &str, body: impl FnOnce() -> Result<i32>) -> Result<Proc> {
        let (rx, tx) = sys::pipe()?;
        // SAFETY: test processes fork only while single-threaded; the child runs `body`
        // and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(sys::last_errno()).context("fork"),
            0 => run_body(tx.as_raw_fd(), body),
            pid => Ok(Proc {
                child: sys::Child::adopt(pid),
                err: rx,
                what: what.to_string(),
            }),
        }
    }

    /// `fork_into_container(cfd)`: the child is the container's init and runs `body`.
    pub fn init(cfd: &OwnedFd, body: impl FnOnce() -> Result<i32>) -> Result<Proc> {
        Self::try_init(cfd, body)?.map_err(|e| {
            anyhow::anyhow!(
                "fork_into_container({}): {}",
                cfd.as_raw_fd(),
                errno_name(e)
            )
        })
    }

    /// `fork_into_container(cfd)`, with its errno when it fails.
    pub fn try_init(
        cfd: &OwnedFd,
        body: impl FnOnce() -> Result<i32>,
    ) -> Result<Result<Proc, Errno>> {
        let (rx, tx) = sys::pipe()?;
        // SAFETY: test processes start inits only while single-threaded.
        match unsafe { calls::fork_into_container(cfd.as_raw_fd()) } {
            Err(e) => Ok(Err(e)),
            Ok(0) => run_body(tx.as_raw_fd(), body),
            Ok(pid) => Ok(Ok(Proc {
                child: sys::Child::adopt(pid),
                err: rx,
                what: "the container's init".to_string(),
            })),
        }
    }

    pub fn pid(&self) -> pid_t {
        self.child.pid
    }

    /// Fails (or skips) with what the body reported, if it reported anything yet.
    pub fn check(&self) -> Result<()> {
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(self.err.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut buf = vec![0u8; REPORT_MAX];
        let n = rustix::io::read(&self.err, &mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(buf.get(1..n).unwrap_or_default()).into_owned();
        match buf[..n].first() {
            Some(&REPORT_SKIP) => Err(skip(text)),
            Some(_) => bail!("{}: {text}", self.what),
            None => Ok(()),
        }
    }

    /// How the process ended, without reaping it: "exit status 2", "signal 9
    /// (SIGKILL)", or why that is not known.
    fn peek_end(&self) -> String {
        // SAFETY: siginfo_t is plain data; zeroed is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid out pointer; WNOWAIT leaves
        // it to be reaped by `wait()`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            )
        };
        if r != 0 {
            return format!("waitid: {}", errno_name(sys::last_errno()));
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        match info.si_code {
            _ if pid == 0 => "still running (closed its report pipe)".to_string(),
            libc::CLD_EXITED if status == FAILED + 1 => format!("exit status {status} (panicked)"),
            libc::CLD_EXITED => format!("exit status {status}"),
            _ => format!("signal {}", sys::signal_name(status)),
        }
    }

    /// Waits for the process; its raw wait status, or what its body reported.
    pub fn wait(&mut self) -> Result<c_int> {
        let status = self.child.wait()?;
        self.check()?;
        Ok(status)
    }

    /// Reaps the process if it has ended.
    pub fn try_wait(&mut self) -> Result<Option<c_int>> {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(self.child.pid, &mut status, libc::WNOHANG) };
        match r {
            0 => Ok(None),
            r if r == self.child.pid => {
                self.child.reaped();
                self.check()?;
                Ok(Some(status))
            }
            _ => bail!(
                "waitpid({}, WNOHANG): {}",
                self.child.pid,
                errno_name(sys::last_errno())
            ),
        }
    }

    /// Waits and requires `exit(code)`.
    pub fn wait_exit(&mut self, code: c_int) -> Result<()> {
        let status = self.wait()?;
        ensure!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == code,
            "{} (pid {}): expected exit status {code}, got {}",
            self.what,
            self.child.pid,
            sys::describe_status(status)
        );
        Ok(())
    }

    /// Waits at most `limit` (a bound for a failure, not a timing assumption).
    pub fn wait_within(&mut self, limit: Duration) -> Result<c_int> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            ensure!(
                Instant::now() < deadline,
                "{} (pid {}) still running after {} s",
                self.what,
                self.child.pid,
                limit.as_secs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Lets the process go without killing it (someone else reaps it, or a container's
    /// death kills it); its pid.
    pub fn leak(mut self) -> pid_t {
        self.child.reaped();
        self.child.pid
    }
}

/// `waitpid(pid)` for at most `limit`; the raw status.
pub fn waitpid_within(pid: pid_t, limit: Duration) -> Result<c_int> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(status);
        }
        if r < 0 && sys::last_errno() != Errno::INTR {
            bail!("waitpid({pid}): {}", errno_name(sys::last_errno()));
        }
        ensure!(
            Instant::now() < deadline,
            "process {pid} still running after {} s",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How long a process that should be dying may take before the test fails.
pub const DEATH_LIMIT: Duration = Duration::from_secs(10);

/// Makes this process the reaper of its orphaned descendants.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!("PR_SET_CHILD_SUBREAPER: {}", errno_name(sys::last_errno()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pipes

/// How long a receiver waits for a message before it fails the test.
const RECV_TIMEOUT: Duration = Duration::from_secs(20);

/// A close-on-exec pipe used between the test and its processes, for messages one way
/// or as a gate (`wait` blocks until `open`).
pub struct Pipe {
    pub rx: OwnedFd,
    pub tx: OwnedFd,
}

impl Pipe {
    pub fn new() -> Result<Pipe> {
        let (rx, tx) = sys::pipe()?;
        Ok(Pipe { rx, tx })
    }

    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        sys::write_all(&self.tx, bytes)
    }

    pub fn send_i64s(&self, values: &[i64]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.send(&bytes)
    }

    pub fn send_i64(&self, value: i64) -> Result<()> {
        self.send_i64s(&[value])
    }

    pub fn send_str(&self, s: &str) -> Result<()> {
        self.send_i64(s.len() as i64)?;
        self.send(s.as_bytes())
    }

    /// Receives `n` bytes; fails early when `from` reports an error or ends first.
    pub fn recv(&self, n: usize, from: Option<&Proc>) -> Result<Vec<u8>> {
        let deadline = Instant::now() + RECV_TIMEOUT;
        let mut out = vec![0u8; n];
        let mut done = 0;
        while done < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if let Some(p) = from {
                    p.check()?;
                }
                bail!(
                    "no message within {} s ({done} of {n} bytes)",
                    RECV_TIMEOUT.as_secs()
                );
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.rx.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: from.map_or(-1, |p| p.err.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, left.as_millis() as c_int) };
            if r < 0 {
                let e = sys::last_errno();
                if e == Errno::INTR {
                    continue;
                }
                bail!("poll: {}", errno_name(e));
            }
            if fds[0].revents != 0 {
                match rustix::io::read(&self.rx, &mut out[done..]) {
                    Ok(0) => bail!("EOF after {done} of {n} bytes"),
                    Ok(k) => done += k,
                    Err(Errno::INTR) => {}
                    Err(e) => bail!("read: {}", errno_name(e)),
                }
            } else if fds[1].revents != 0 {
                if let Some(p) = from {
                    p.check()?;
                    // It may have sent and ended between poll()'s looks at the two fds.
                    let mut again = [libc::pollfd {
                        fd: self.rx.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    // SAFETY: one valid pollfd; no waiting.
                    if unsafe { libc::poll(again.as_mut_ptr(), 1, 0) } > 0 {
                        continue;
                    }
                    bail!(
                        "{} (pid {}) ended without sending ({done} of {n} bytes): {}",
                        p.what,
                        p.pid(),
                        p.peek_end()
                    );
                }
            }
        }
        Ok(out)
    }

    pub fn recv_i64s(&self, n: usize, from: Option<&Proc>) -> Result<Vec<i64>> {
        let bytes = self.recv(n * 8, from)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }

    pub fn recv_i64(&self, from: Option<&Proc>) -> Result<i64> {
        Ok(self.recv_i64s(1, from)?[0])
    }

    pub fn recv_str(&self, from: Option<&Proc>) -> Result<String> {
        let len = self.recv_i64(from)?;
        let len = usize::try_from(len).with_context(|| format!("string length {len}"))?;
        Ok(String::from_utf8_lossy(&self.recv(len, from)?).into_owned())
    }

    /// Gate, waiting side: blocks until a byte arrives (or EOF).
    pub fn wait(&self) {
        loop {
            let mut b = [0u8];
            match rustix::io::read(&self.rx, &mut b) {
                Err(Errno::INTR) => continue,
                _ => return,
            }
        }
    }

    /// Gate, opening side: lets `n` waiters through.
    pub fn open(&self, n: usize) -> Result<()> {
        self.send(&vec![b'x'; n]).context("open the gate")
    }
}

/// Reads `rx` until every write end is closed.
pub fn read_all(rx: &OwnedFd) -> Result<Vec<u8>> {
    sys::read_to_end(rx)
}

// ---------------------------------------------------------------------------------------
// /proc/containers

pub const PROC_CONTAINERS: &str = "/proc/containers";
pub const HEADER: &str = "NAME                               ID USE FL OWNER GROUP";
/// FL column bits.
pub const FL_STARTED: u64 = 0x01;
pub const FL_DEAD: u64 = 0x02;
pub const FL_KILL_ON_CLOSE: u64 = 0x04;
pub const CURRENT: &str = "<current>";

/// One row of /proc/containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub id: u64,
    pub refs: u32,
    pub flags: u64,
    pub owner: i64,
    pub group: i64,
}

impl Row {
    /// The row as the kernel prints it: `"%-24s %12llu %3u %02lx %5u %5u"`.
    pub fn render(&self) -> String {
        format!(
            "{:<24} {:>12} {:>3} {:02x} {:>5} {:>5}",
            self.name, self.id, self.refs, self.flags, self.owner, self.group
        )
    }

    fn parse(line: &str) -> Result<Row> {
        let (name, rest) = match (line.get(..24), line.get(24..)) {
            (Some(n), Some(r)) if r.starts_with(' ') => (n.trim_end(), r),
            _ => bail!("row {line:?}: no 24-column name field"),
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let [id, refs, flags, owner, group] = fields[..] else {
            bail!("row {line:?}: expected 5 fields after the name");
        };
        let row = Row {
            name: name.to_string(),
            id: id.parse().with_context(|| format!("row {line:?}: ID"))?,
            refs: refs.parse().with_context(|| format!("row {line:?}: USE"))?,
            flags: u64::from_str_radix(flags, 16).with_context(|| format!("row {line:?}: FL"))?,
            owner: owner
                .parse()
                .with_context(|| format!("row {line:?}: OWNER"))?,
            group: group
                .parse()
                .with_context(|| format!("row {line:?}: GROUP"))?,
        };
        ensure!(
            row.render() == line,
            "row {line:?} is not in the format \"%-24s %12llu %3u %02lx %5d %5d\" \
             (its fields print as {:?})",
            row.render()
        );
        Ok(row)
    }
}

/// Parses the whole file: the exact header, then rows in the exact format.
pub fn parse_proc(text: &str) -> Result<Vec<Row>> {
    let Some(body) = text.strip_suffix('\n') else {
        bail!("{PROC_CONTAINERS} does not end in a newline: {text:?}");
    };
    let mut lines = body.split('\n');
    let header = lines.next().unwrap_or_default();
    ensure!(
        header == HEADER,
        "{PROC_CONTAINERS} header: expected {HEADER:?}, got {header:?}"
    );
    lines.map(Row::parse).collect()
}

/// This process's view of /proc/containers.
pub fn proc_rows() -> Result<Vec<Row>> {
    parse_proc(&sys::read_text(PROC_CONTAINERS)?)
}

/// The one row named `name`.
pub fn row<'a>(rows: &'a [Row], name: &std::ffi::CStr) -> Result<&'a Row> {
    let name = name.to_string_lossy();
    let found: Vec<&Row> = rows.iter().filter(|r| r.name == name).collect();
    match found[..] {
        [row] => Ok(row),
        _ => bail!(
            "{PROC_CONTAINERS}: expected one row named {name:?}, found {}:\n{}",
            found.len(),
            render_all(rows)
        ),
    }
}

/// Whether a row is named `name`.
pub fn listed(rows: &[Row], name: &std::ffi::CStr) -> bool {
    let name = name.to_string_lossy();
    rows.iter().any(|r| r.name == name)
}

/// Requires `/proc/containers` not to list `name` any more; `when` says why it
/// should be gone.
pub fn expect_unlisted(name: &std::ffi::CStr, when: &str) -> Result<()> {
    let rows = proc_rows()?;
    ensure!(
        !listed(&rows, name),
        "container still listed {when}:\n{}",
        render_all(&rows)
    );
    Ok(())
}

/// Requires a wait status to say "killed by SIGKILL"; `who` names the process.
pub fn expect_sigkilled(status: c_int, who: &str) -> Result<()> {
    ensure!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "{who}: expected SIGKILL, got {}",
        sys::describe_status(status)
    );
    Ok(())
}

pub fn render_all(rows: &[Row]) -> String {
    let lines: Vec<String> = rows.iter().map(Row::render).collect();
    lines.join("\n")
}

/// Requires `row` to show `refs`, `flags`, `owner` and `group`.
pub fn expect_row(row: &Row, refs: u32, flags: u64, owner: i64, group: i64) -> Result<()> {
    let want = Row {
        refs,
        flags,
        owner,
        group,
        ..row.clone()
    };
    ensure!(
        *row == want,
        "{PROC_CONTAINERS}: expected {:?}, got {:?}",
        want.render(),
        row.render()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Credentials

/// The overflow ("nobody") id an unprivileged test runs as.
pub const NOBODY: u32 = 65534;

/// The supplementary groups `groups`, gid `uid` and uids `ruid`, `uid`, `uid` (real,
/// effective, saved), staying dumpable so that /proc/self stays readable.
pub fn set_ids(groups: &[u32], ruid: u32, uid: u32) -> Result<()> {
    // SAFETY: plain credential syscalls; glibc applies them to the whole process. prctl
    // with integer arguments.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            bail!("setgroups({groups:?}): {}", errno_name(sys::last_errno()));
        }
        if libc::setresgid(uid, uid, uid) != 0 {
            bail!("setresgid({uid}): {}", errno_name(sys::last_errno()));
        }
        if libc::setresuid(ruid, uid, uid) != 0 {
            bail!(
                "setresuid({ruid}, {uid}, {uid}): {}",
                errno_name(sys::last_errno())
            );
        }
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    Ok(())
}

/// Drops every group and becomes `uid`:`uid` with no capabilities (as setuid(2) from
/// root does), staying dumpable so /proc/self stays readable.
pub fn become_user(uid: u32) -> Result<()> {
    set_ids(&[], uid, uid)?;
    let status = sys::read_text("/proc/self/status")?;
    for field in ["CapEff:", "CapPrm:"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .with_context(|| format!("/proc/self/status has no {field}"))?;
        ensure!(
            line.ends_with("\t0000000000000000"),
            "after setresuid({uid}): {line:?}, expected no capabilities"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Namespaces and /proc

/// The inode of `/proc/PID/ns/NS` (or `/proc/self/ns/NS`): the namespace's identity.
pub fn ns_inode(pid: Option<pid_t>, ns: &str) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/ns/{ns}"),
        None => format!("/proc/self/ns/{ns}"),
    };
    Ok(std::fs::metadata(&path)
        .with_context(|| format!("stat {path}"))?
        .ino())
}

/// `SIOCGSKNS` of `<linux/sockios.h>`: an fd for the socket's network namespace.
const SIOCGSKNS: libc::c_ulong = 0x894c;

/// The inode of the network namespace `sock` belongs to.
pub fn socket_netns_inode(sock: &OwnedFd) -> Result<u64> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd.
    let ns = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS) };
    if ns < 0 {
        bail!("ioctl(SIOCGSKNS): {}", errno_name(sys::last_errno()));
    }
    // SAFETY: the ioctl returned a new fd that we now own.
    let ns = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ns) };
    Ok(rustix::fs::fstat(&ns).context("fstat the netns fd")?.st_ino)
}

/// The namespaces a container can have, as /proc/PID/ns names them.
pub const NAMESPACES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// Waits until thread `tid` of `pid` sleeps in system call `nr` (per
/// /proc/PID/task/TID/syscall), so a signal or wake-up reaches it there rather than
/// racing its entry. The deadline only bounds a failure.
pub fn wait_blocked_in(pid: pid_t, tid: pid_t, nr: c_long) -> Result<()> {
    let path = format!("/proc/{pid}/task/{tid}/syscall");
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let text = sys::read_text(&path)?;
        if text.split(' ').next() == Some(nr.to_string().as_str()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{path}: never blocked in syscall {nr} within {} s (last: {:?})",
                RECV_TIMEOUT.as_secs(),
                text.trim_end()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn gettid() -> pid_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

// ---------------------------------------------------------------------------------------
// Signals

static SIG_FD: AtomicI32 = AtomicI32::new(-1);
static SIG_TAG: AtomicU8 = AtomicU8::new(0);
const RECORD_LEN: usize = 14;

/// One signal a process received, as its SA_SIGINFO handler saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigRecord {
    /// Which process (the tag passed to `record_signals`).
    pub tag: char,
    pub sig: c_int,
    pub code: c_int,
    pub pid: pid_t,
    pub uid: u32,
}

extern "C" fn record_signal(sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local; saved and restored around the write.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; si_pid and
    // si_uid are the kill(2) fields (SI_USER), read as such.
    let (code, pid, uid) = unsafe { ((*info).si_code, (*info).si_pid(), (*info).si_uid()) };
    let mut rec = [0u8; RECORD_LEN];
    rec[0] = SIG_TAG.load(Ordering::Relaxed);
    rec[1] = sig as u8;
    rec[2..6].copy_from_slice(&code.to_ne_bytes());
    rec[6..10].copy_from_slice(&pid.to_ne_bytes());
    rec[10..14].copy_from_slice(&uid.to_ne_bytes());
    sys::raw_write(SIG_FD.load(Ordering::Relaxed), &rec);
    // SAFETY: see above.
    unsafe { *libc::__errno_location() = saved };
}

/// Installs a handler for each of `sigs` that writes a `SigRecord` tagged `tag` to `fd`
/// (one atomic write per signal).
pub fn record_signals(fd: RawFd, tag: u8, sigs: &[c_int], restart: bool) -> Result<()> {
    SIG_FD.store(fd, Ordering::Relaxed);
    SIG_TAG.store(tag, Ordering::Relaxed);
    for &sig in sigs {
        // SAFETY: sigaction is plain data; zeroed is valid and filled in below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = record_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | if restart { libc::SA_RESTART } else { 0 };
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            bail!("sigaction({sig}): {}", errno_name(sys::last_errno()));
        }
    }
    Ok(())
}

pub fn parse_records(bytes: &[u8]) -> Result<Vec<SigRecord>> {
    ensure!(
        bytes.len().is_multiple_of(RECORD_LEN),
        "{} bytes of signal records",
        bytes.len()
    );
    let int = |b: &[u8]| i32::from_ne_bytes(b.try_into().unwrap_or_default());
    Ok(bytes
        .chunks_exact(RECORD_LEN)
        .map(|r| SigRecord {
            tag: char::from(r[0]),
            sig: c_int::from(r[1]),
            code: int(&r[2..6]),
            pid: int(&r[6..10]),
            uid: int(&r[10..14]) as u32,
        })
        .collect())
}

/// Sets `sig` to SIG_IGN or SIG_DFL.
pub fn set_disposition(sig: c_int, handler: libc::sighandler_t) -> Result<()> {
    // SAFETY: installs SIG_IGN or SIG_DFL.
    if unsafe { libc::signal(sig, handler) } == libc::SIG_ERR {
        bail!("signal({sig}): {}", errno_name(sys::last_errno()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Resource usage

/// The fields of `struct rusage` the container sums (cpu as utime + stime in µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_us: i64,
    pub minflt: i64,
    pub majflt: i64,
    pub nvcsw: i64,
    pub nivcsw: i64,
    pub maxrss: i64,
}

impl Usage {
    pub fn from_rusage(ru: &libc::rusage) -> Usage {
        let us = |t: &libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
        Usage {
            cpu_us: us(&ru.ru_utime) + us(&ru.ru_stime),
            minflt: ru.ru_minflt,
            majflt: ru.ru_majflt,
            nvcsw: ru.ru_nvcsw,
            nivcsw: ru.ru_nivcsw,
            maxrss: ru.ru_maxrss,
        }
    }

    pub fn to_i64s(self) -> [i64; 6] {
        [
            self.cpu_us,
            self.minflt,
            self.majflt,
            self.nvcsw,
            self.nivcsw,
            self.maxrss,
        ]
    }

    pub fn from_i64s(v: &[i64]) -> Usage {
        let at = |i: usize| v.get(i).copied().unwrap_or_default();
        Usage {
            cpu_us: at(0),
            minflt: at(1),
            majflt: at(2),
            nvcsw: at(3),
            nivcsw: at(4),
            maxrss: at(5),
        }
    }

    /// Sums, with maxrss as the maximum (how the container combines its members).
    pub fn add(self, o: Usage) -> Usage {
        Usage {
            cpu_us: self.cpu_us + o.cpu_us,
            minflt: self.minflt + o.minflt,
            majflt: self.majflt + o.majflt,
            nvcsw: self.nvcsw + o.nvcsw,
            nivcsw: self.nivcsw + o.nivcsw,
            maxrss: self.maxrss.max(o.maxrss),
        }
    }
}

pub fn getrusage(who: c_int) -> Result<libc::rusage> {
    // SAFETY: rusage is plain data; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid out pointer.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        bail!("getrusage({who}): {}", errno_name(sys::last_errno()));
    }
    Ok(ru)
}

pub fn self_usage() -> Result<Usage> {
    Ok(Usage::from_rusage(&getrusage(libc::RUSAGE_SELF)?))
}

/// Spins until this process has used `us` more microseconds of CPU (measured, not timed).
pub fn burn_cpu(us: i64) -> Result<()> {
    let until = self_usage()?.cpu_us + us;
    let mut x = 0u64;
    while self_usage()?.cpu_us < until {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    Ok(())
}

/// Maps `pages` fresh anonymous pages and writes to each (one minor fault apiece).
pub fn touch_pages(pages: usize) -> Result<()> {
    let len = pages * 4096;
    // SAFETY: a new private anonymous mapping, written within its length, then unmapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            bail!("mmap({len}): {}", errno_name(sys::last_errno()));
        }
        for i in 0..pages {
            std::ptr::write_volatile(p.cast::<u8>().add(i * 4096), 1);
        }
        libc::munmap(p, len);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Passing fds

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS.
pub fn send_fd(sock: &OwnedFd, fd: &OwnedFd) -> Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    ensure!(
        cmsg.push(SendAncillaryMessage::ScmRights(&fds)),
        "SCM_RIGHTS does not fit"
    );
    let n = sendmsg(
        sock,
        &[std::io::IoSlice::new(b"f")],
        &mut cmsg,
        SendFlags::empty(),
    )
    .context("sendmsg(SCM_RIGHTS)")?;
    ensure!(n == 1, "sendmsg sent {n} bytes");
    Ok(())
}

/// Receives one fd sent with [`send_fd`].
pub fn recv_fd(sock: &OwnedFd) -> Result<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("recvmsg(SCM_RIGHTS)")?;
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    bail!("recvmsg: no SCM_RIGHTS fd")
}

pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .context("socketpair")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_rows_round_trip() {
        let text = format!(
            "{HEADER}\n\
             <current>                           1   7 01     0     0\n\
             fred                               42   2 01  1000   100\n"
        );
        let rows = parse_proc(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, CURRENT);
        assert_eq!(rows[1].id, 42);
        assert_eq!(rows[1].flags, FL_STARTED);
        assert_eq!(rows[1].owner, 1000);
        assert_eq!(rows[1].group, 100);
        // Wrong widths, a missing newline, a wrong header.
        assert!(parse_proc(&format!("{HEADER}\nfred 42 2 01 0 0\n")).is_err());
        assert!(parse_proc(&format!(
            "{HEADER}\nfred                               42   2 1     0     0\n"
        ))
        .is_err());
        assert!(parse_proc(HEADER).is_err());
        assert!(parse_proc("NAME ID\n").is_err());
        assert_eq!(parse_proc(&format!("{HEADER}\n")).unwrap(), []);
    }

    #[test]
    fn usage_adds_and_keeps_max_rss() {
        let a = Usage::from_i64s(&[10, 1, 0, 2, 3, 500]);
        let b = Usage::from_i64s(&[5, 1, 1, 1, 1, 700]);
        assert_eq!(a.add(b).to_i64s(), [15, 2, 1, 3, 4, 700]);
    }

    #[test]
    fn names_fit() {
        assert!(unique_name("a-rather-long-tag").as_bytes().len() <= 23);
    }
}
