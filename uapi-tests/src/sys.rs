//! Small helpers shared by the tests: errno assertions, skips, raw syscalls, forked
//! children, pipes and scratch directories.

use std::ffi::CString;
use std::fmt::{self, Debug};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

pub use crate::errno::{errno_name, last_errno};
use anyhow::{bail, Context, Result};
pub use rustix::io::Errno;

/// Why a test did not run; returned as an error so `?` carries it up from any helper.
#[derive(Debug)]
pub struct Skip(pub String);

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

pub fn skip(reason: impl Into<String>) -> anyhow::Error {
    Skip(reason.into()).into()
}

/// Turns a raw syscall return value (-1 and errno on failure) into a Result.
pub fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a file descriptor returned by a raw syscall.
pub fn owned_fd(ret: Result<libc::c_long, Errno>) -> Result<OwnedFd, Errno> {
    // SAFETY: a successful fd-returning syscall gives us a new fd that nothing else owns.
    ret.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Fails unless `got` is exactly the error `want`.
pub fn expect_errno<T: Debug>(what: &str, got: Result<T, Errno>, want: Errno) -> Result<()> {
    match got {
        Err(e) if e == want => Ok(()),
        Err(e) => bail!(
            "{what}: expected {}, got {}",
            errno_name(want),
            errno_name(e)
        ),
        Ok(v) => bail!("{what}: expected {}, got Ok({v:?})", errno_name(want)),
    }
}

/// Turns a failure into an anyhow error naming the call and the errno.
pub fn ok<T>(what: &str, got: Result<T, Errno>) -> Result<T> {
    got.map_err(|e| anyhow::anyhow!("{what}: {}", errno_name(e)))
}

pub fn path_cstr(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("{p:?} contains a NUL byte"))
}

// ---------------------------------------------------------------------------------------
// Pipes

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe2")
}

/// `write(2)` of a whole small buffer; async-signal-safe, for raw clone children.
pub fn raw_write(fd: RawFd, buf: &[u8]) -> bool {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    n == buf.len() as isize
}

/// Blocks in `read(2)` until one byte arrives (see `release`) or EOF; async-signal-safe.
/// A forked child holds copies of every pipe end, so EOF alone would never come: the
/// parent writes a byte instead.
pub fn raw_wait_byte(fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: reads at most one byte into a local.
    unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
}

/// Reads until EOF (every write end must be closed, in this process too).
pub fn read_to_end(fd: &OwnedFd) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e).context("read from pipe"),
        }
    }
}

/// Lets a child blocked in `raw_wait_byte` go on.
pub fn release(tx: &OwnedFd) -> Result<()> {
    write_all(tx, b"x").context("release the child")
}

/// Reads exactly `buf.len()` bytes.
pub fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::read(fd, &mut buf[done..]) {
            Ok(0) => bail!("EOF after {done} of {} bytes", buf.len()),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => bail!("read: {}", errno_name(e)),
        }
    }
    Ok(())
}

pub fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        let n = rustix::io::write(fd, buf).context("write")?;
        buf = &buf[n..];
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Children

/// A child process of the test, SIGKILLed and reaped on drop unless waited for.
pub struct Child {
    pub pid: libc::pid_t,
    reaped: bool,
}

impl Child {
    /// Takes charge of a child forked by other means (e.g. `fork_into_container`).
    pub fn adopt(pid: libc::pid_t) -> Self {
        Self { pid, reaped: false }
    }

    /// Waits for the child with `waitpid` and returns the raw wait status.
    pub fn wait(&mut self) -> Result<libc::c_int> {
        let mut status = 0;
        loop {
            // SAFETY: status is a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return Ok(status);
            }
            let e = last_errno();
            if e != Errno::INTR {
                bail!("waitpid({}): {}", self.pid, errno_name(e));
            }
        }
    }

    /// Waits and requires a normal exit with status 0.
    pub fn wait_success(&mut self) -> Result<()> {
        let status = self.wait()?;
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            bail!("child {} ended with {}", self.pid, describe_status(status))
        }
    }

    /// Marks the child as reaped by other means (waitid through a pidfd).
    pub fn reaped(&mut self) {
        self.reaped = true;
    }

    pub fn kill(&self) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.wait();
        }
    }
}

/// "exit status 3" / "signal 9 (SIGKILL)" for a waitpid status.
pub fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", signal_name(libc::WTERMSIG(status)))
    } else {
        format!("wait status {status:#x}")
    }
}

pub fn signal_name(sig: libc::c_int) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGSYS => "SIGSYS",
        _ => return sig.to_string(),
    };
    format!("{sig} ({name})")
}

/// Forks; the child runs `f` and `_exit`s with its return value, without running
/// destructors or returning into the caller. The test processes are single-threaded,
/// so ordinary Rust code is fine in the child.
pub fn fork_child(f: impl FnOnce() -> i32) -> Result<Child> {
    // SAFETY: the test process is single-threaded; the child never returns from here.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno()).context("fork"),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: ends the child without unwinding into the caller's frames.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Child { pid, reaped: false }),
    }
}

/// `struct clone_args` of `<linux/sched.h>` (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Raw `clone3` without CLONE_VM (a fork with `flags`), exit signal SIGCHLD. The child
/// runs `child` and `_exit`s with its result; it may only make async-signal-safe calls
/// (libc's fork handlers did not run). Returns the child and, with CLONE_PIDFD, its pidfd.
pub fn clone3(flags: u64, child: impl FnOnce() -> i32) -> Result<(Child, Option<OwnedFd>), Errno> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: args is a valid clone_args of the size passed; without CLONE_VM the child
    // gets its own copy of memory and continues on a copy of this stack.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            size_of::<CloneArgs>(),
        )
    })?;
    if ret == 0 {
        let code = child();
        // SAFETY: ends the child without unwinding or running libc atexit handlers.
        unsafe { libc::_exit(code) }
    }
    let pidfd = (flags & libc::CLONE_PIDFD as u64 != 0)
        // SAFETY: with CLONE_PIDFD the kernel stored a new fd that we now own.
        .then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok((
        Child {
            pid: ret as libc::pid_t,
            reaped: false,
        },
        pidfd,
    ))
}

/// What `waitid` reports about a child.
#[derive(PartialEq, Eq)]
pub struct Waited {
    pub pid: libc::pid_t,
    /// CLD_EXITED, CLD_KILLED, ...
    pub code: libc::c_int,
    /// Exit status or signal number.
    pub status: libc::c_int,
}

/// `waitid(P_PIDFD, pidfd, WEXITED | extra)`; `None` when WNOHANG found nothing.
pub fn waitid_pidfd(pidfd: &OwnedFd, extra: libc::c_int) -> Result<Option<Waited>, Errno> {
    // SAFETY: siginfo_t is plain data; zeroed is a valid value, and waitid fills it in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: info is a valid out pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | extra,
            )
        };
        if r == 0 {
            break;
        }
        let e = last_errno();
        if e != Errno::INTR {
            return Err(e);
        }
    }
    // SAFETY: waitid filled in a SIGCHLD siginfo, for which si_pid and si_status are valid.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((pid != 0).then_some(Waited {
        pid,
        code: info.si_code,
        status,
    }))
}

impl Debug for Waited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.code {
            libc::CLD_KILLED | libc::CLD_DUMPED => signal_name(self.status),
            _ => self.status.to_string(),
        };
        write!(
            f,
            "{{pid {}, {}, status {status}}}",
            self.pid,
            cld_name(self.code)
        )
    }
}

fn cld_name(code: libc::c_int) -> &'static str {
    match code {
        libc::CLD_EXITED => "CLD_EXITED",
        libc::CLD_KILLED => "CLD_KILLED",
        libc::CLD_DUMPED => "CLD_DUMPED",
        libc::CLD_STOPPED => "CLD_STOPPED",
        libc::CLD_TRAPPED => "CLD_TRAPPED",
        libc::CLD_CONTINUED => "CLD_CONTINUED",
        _ => "CLD_?",
    }
}

/// `poll(2)` on one fd; returns revents.
pub fn poll_one(
    fd: &OwnedFd,
    events: libc::c_short,
    timeout_ms: libc::c_int,
) -> Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if r < 0 {
        return Err(last_errno()).context("poll");
    }
    Ok(pfd.revents)
}

pub fn hostname() -> Result<String> {
    Ok(rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned())
}

/// Reads a /proc file (or any small text file) with context.
pub fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

/// Mount points (field 5) of a mountinfo file.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Scratch directories

/// A fresh directory under /tmp, removed (best effort) on drop. Unmount anything mounted
/// inside it before it drops.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        let path = PathBuf::from(format!("/tmp/uapi-tests-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `unshare(CLONE_NEWNS)` and make every mount private, so the test's mounts vanish with
/// its process and never propagate out.
pub fn private_mount_ns() -> Result<()> {
    // SAFETY: a single-threaded process may switch mount namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        bail!("unshare(CLONE_NEWNS): {}", errno_name(last_errno()));
    }
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .context("mount(/, MS_REC|MS_PRIVATE)")
}
