//! What kc's subcommands share: errors that name the call and the errno, the inherited
//! container fd, wait statuses, namespace lists, exec.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use libc::c_int;
use rustix::io::Errno;

use crate::calls;
pub use crate::errno::{errno_name, last_errno};
use crate::uapi::*;

/// "what: ENAME (description)".
/// `container_create(name, flags)`, its error naming the call and the flags.
pub fn create_container(name: &str, flags: u32) -> Result<OwnedFd> {
    let cname = CString::new(name).context("NUL in the name")?;
    calls::container_create(&cname, flags).map_err(|e| {
        errno_err(
            format!("container_create({name:?}, {})", flag_names(flags)),
            e,
        )
    })
}

pub fn errno_err(what: impl std::fmt::Display, e: Errno) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", errno_text(e))
}

/// "EPERM (Operation not permitted)".
pub fn errno_text(e: Errno) -> String {
    let desc = std::io::Error::from_raw_os_error(e.raw_os_error()).to_string();
    let desc = desc.split(" (os error").next().unwrap_or("").to_string();
    format!("{} ({desc})", errno_name(e))
}

/// Prints "kc: TEXT" and flushes (the demos' steps).
pub fn step(text: &str) {
    println!("kc: {text}");
    let _ = std::io::stdout().flush();
}

pub fn write_raw(fd: RawFd, bytes: &[u8]) {
    // SAFETY: bytes is valid for its length; write(2) is async-signal-safe.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Blocks until one byte arrives on `fd`.
pub fn read_byte(fd: RawFd) -> Result<()> {
    let mut b = 0u8;
    loop {
        // SAFETY: reads one byte into a local.
        match unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } {
            1 => return Ok(()),
            0 => bail!("the container's processes ended early"),
            _ if last_errno() == Errno::INTR => continue,
            _ => return Err(errno_err("read", last_errno())),
        }
    }
}

/// waitpid that retries on EINTR; the raw status.
pub fn reap(pid: libc::pid_t) -> Result<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(status);
        }
        let e = last_errno();
        if e != Errno::INTR {
            return Err(errno_err(format!("waitpid({pid})"), e));
        }
    }
}

/// container_wait(cfd, &status, options, &ru), retried on EINTR.
pub fn wait_container_opts(
    cfd: BorrowedFd<'_>,
    options: u32,
) -> Result<(c_int, libc::rusage), Errno> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        match calls::container_wait(cfd.as_raw_fd(), Some(&mut status), options, Some(&mut ru)) {
            Ok(_) => return Ok((status, ru)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Blocks until the container is dead; init's wait status and the members' usage.
pub fn wait_container(cfd: &OwnedFd) -> Result<(c_int, libc::rusage)> {
    use std::os::fd::AsFd;
    wait_container_opts(cfd.as_fd(), 0)
        .map_err(|e| errno_err(format!("container_wait(fd {})", cfd.as_raw_fd()), e))
}

/// "exited with status 3", "killed by signal 9 (Killed)": kc run's and kc demo's words.
pub fn describe_status(status: c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a static or thread-local string for any number.
        let name = unsafe { CStr::from_ptr(libc::strsignal(sig)) };
        format!("killed by signal {sig} ({})", name.to_string_lossy())
    } else {
        format!("wait status {status:#x}")
    }
}

/// The status as a shell reports it: "exit 3", "killed by SIGKILL".
pub fn shell_status(status: c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let core = if libc::WCOREDUMP(status) {
            " (core dumped)"
        } else {
            ""
        };
        format!("killed by {}{core}", signal_name(libc::WTERMSIG(status)))
    } else {
        format!("wait status {status:#x}")
    }
}

/// The exit code a shell gives a status: N, or 128 + the signal.
pub fn exit_code(status: c_int) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    }
}

pub fn describe_rusage(ru: &libc::rusage) -> String {
    let t = |tv: &libc::timeval| format!("{}.{:06}s", tv.tv_sec, tv.tv_usec);
    format!(
        "user {}, system {}, max rss {} KiB, minor faults {}",
        t(&ru.ru_utime),
        t(&ru.ru_stime),
        ru.ru_maxrss,
        ru.ru_minflt
    )
}

/// The standard signals by name (without "SIG").
const SIGNALS: &[(&str, c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// "SIGKILL", or "signal 40" for one without a name here.
pub fn signal_name(sig: c_int) -> String {
    match SIGNALS.iter().find(|(_, n)| *n == sig) {
        Some((name, _)) => format!("SIG{name}"),
        None => format!("signal {sig}"),
    }
}

/// A signal given as "TERM", "SIGTERM", "term" or "15" (0 checks only).
pub fn parse_signal(s: &str) -> Result<c_int, String> {
    if let Ok(n) = s.parse::<c_int>() {
        return if (0..=64).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is not a signal number (0..64)"))
        };
    }
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(_, n)| *n)
        .ok_or_else(|| format!("{s:?} is not a signal name (TERM, KILL, USR1, ... or a number)"))
}

/// The NEW_*_NS flags by their short names.
pub const NAMESPACES: &[(&str, u32, &str)] = &[
    ("fs", CONTAINER_NEW_FS_NS, "NEW_FS_NS"),
    ("emptyfs", CONTAINER_NEW_EMPTY_FS_NS, "NEW_EMPTY_FS_NS"),
    ("cgroup", CONTAINER_NEW_CGROUP_NS, "NEW_CGROUP_NS"),
    ("uts", CONTAINER_NEW_UTS_NS, "NEW_UTS_NS"),
    ("ipc", CONTAINER_NEW_IPC_NS, "NEW_IPC_NS"),
    ("user", CONTAINER_NEW_USER_NS, "NEW_USER_NS"),
    ("pid", CONTAINER_NEW_PID_NS, "NEW_PID_NS"),
    ("net", CONTAINER_NEW_NET_NS, "NEW_NET_NS"),
];

/// The default of `--ns`.
pub const DEFAULT_NS: &str = "uts,ipc,pid,net";

/// A clap value parser for `--ns LIST`: the NEW_*_NS flags.
pub fn parse_ns(list: &str) -> Result<u32, String> {
    if list == "none" {
        return Ok(0);
    }
    list.split(',').try_fold(0, |flags, name| {
        match NAMESPACES.iter().find(|(n, _, _)| *n == name) {
            Some((_, flag, _)) => Ok(flags | flag),
            None => Err(format!(
                "unknown namespace {name:?} (use a comma-separated subset of {} or \"none\")",
                NAMESPACES
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        }
    })
}

/// "NEW_UTS_NS|NEW_PID_NS|FD_CLOEXEC" for a flags word.
pub fn flag_names(flags: u32) -> String {
    let mut names: Vec<&str> = NAMESPACES
        .iter()
        .filter(|(_, f, _)| flags & f != 0)
        .map(|(_, _, n)| *n)
        .collect();
    if flags & CONTAINER_KILL_ON_CLOSE != 0 {
        names.push("KILL_ON_CLOSE");
    }
    if flags & CONTAINER_FD_CLOEXEC != 0 {
        names.push("FD_CLOEXEC");
    }
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// The environment variable `kc create` sets to the container fd it passes on.
pub const KC_FD: &str = "KC_FD";

/// The container fd a subcommand works on: `--fd N`, else `$KC_FD`; checked to be an
/// open container fd.
pub fn inherited_cfd(fd: Option<RawFd>) -> Result<BorrowedFd<'static>> {
    let fd = match fd {
        Some(fd) => fd,
        None => {
            let v = std::env::var(KC_FD).map_err(|_| {
                anyhow::anyhow!(
                    "no container fd: pass --fd N or set {KC_FD} (run this under `kc create NAME -- CMD`, \
                     which sets it; a container cannot be opened by name)"
                )
            })?;
            v.parse()
                .with_context(|| format!("{KC_FD}={v:?}: not an fd number"))?
        }
    };
    check_cfd(fd)?;
    // SAFETY: fd is open (checked above) and kc never closes an inherited fd, so it
    // stays open for the rest of the process.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Fails unless `fd` is an open container fd of this process.
pub fn check_cfd(fd: RawFd) -> Result<()> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .with_context(|| format!("fd {fd}: not open in kc (pass an inherited container fd)"))?;
    if link.as_os_str() != "anon_inode:[container]" {
        bail!("fd {fd}: not a container fd (it is {})", link.display());
    }
    Ok(())
}

/// argv as C strings, with the NULL-terminated pointer array execvp needs.
pub struct Argv {
    strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl Argv {
    pub fn new(args: &[String]) -> Result<Self> {
        if args.is_empty() {
            bail!("no command (it goes after --)");
        }
        let strings: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).with_context(|| format!("{a:?}: contains NUL")))
            .collect::<Result<_>>()?;
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(Self { strings, ptrs })
    }

    /// execvp, or "kc: exec CMD: ENOENT (...)" on stderr and _exit(127), as a shell.
    pub fn exec(&self) -> ! {
        // SAFETY: the strings and the NULL-terminated array outlive the call.
        unsafe { libc::execvp(self.ptrs[0], self.ptrs.as_ptr()) };
        let msg = format!(
            "kc: exec {}: {}\n",
            self.strings[0].to_string_lossy(),
            errno_text(last_errno())
        );
        write_raw(2, msg.as_bytes());
        // SAFETY: leaves the process without running destructors (a forked child).
        unsafe { libc::_exit(127) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("sigterm"), Ok(15));
        assert_eq!(parse_signal("0"), Ok(0));
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(40), "signal 40");
    }

    #[test]
    fn statuses() {
        assert_eq!(shell_status(3 << 8), "exit 3");
        assert_eq!(shell_status(9), "killed by SIGKILL");
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(3 << 8), 3);
    }

    #[test]
    fn namespaces() {
        assert_eq!(parse_ns("none"), Ok(0));
        assert_eq!(
            parse_ns("pid,net"),
            Ok(CONTAINER_NEW_PID_NS | CONTAINER_NEW_NET_NS)
        );
        assert!(parse_ns("pid,bogus").unwrap_err().contains("\"bogus\""));
        assert_eq!(
            flag_names(CONTAINER_NEW_PID_NS | CONTAINER_FD_CLOEXEC),
            "NEW_PID_NS|FD_CLOEXEC"
        );
    }

    #[test]
    fn errno_words() {
        assert_eq!(errno_text(Errno::PERM), "EPERM (Operation not permitted)");
    }
}
