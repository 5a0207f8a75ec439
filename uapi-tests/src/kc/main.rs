//! kc: a small front end to the container system calls (uapi.md), for the lab's guest.
//!
//! ```text
//! kc demo                                   create a container, start an init, list,
//!                                           signal, kill and wait, printing each step
//! kc run [--ns LIST] [--kill-on-close] [--rootfs DIR] NAME -- CMD [ARG...]
//!                                           run CMD as the init of a new container and
//!                                           wait for the container; exit with its status
//! kc ps                                     print /proc/containers
//! kc keyd [OPTIONS] --init PID CFD          answer a container's key requests inside it
//! kc demo-keys                              two containers resolve one name their own way
//! kc request-key create KEY UID GID T P S   the lab's /sbin/request-key (also by that name)
//! kc key request TYPE DESC [CALLOUT]        request_key(2) into the default keyring; print
//!                                           the payload
//! ```
//!
//! LIST is a comma-separated subset of fs, cgroup, uts, ipc, user, pid, net (default
//! uts,ipc,pid,net; "none" for none).
//!
//! `--rootfs DIR` assembles the container from outside before its init starts (uapi.md
//! §3, "Mounting from outside"): an empty mount namespace, a tmpfs made in the
//! container's namespaces and installed as its root, DIR copied in through the cfd
//! (directories, files, symlinks, device nodes), and a procfs of the container's PID
//! namespace mounted at /proc; CMD runs in that tree. `--keyd` also answers the
//! container's key requests while it runs, as `kc keyd` does (see keyd.rs).
//!
//! `kc keyd` options: `--type TYPE` (repeatable; default "*"), `--max-helpers N` (4),
//! `--backlog N` (64), `--helper-timeout SECS` (10), `-v`. CFD is an inherited container
//! fd and PID its init (a container cannot be opened by name, nor its init found from
//! the cfd, before part 4 of the series).

#[path = "../container/calls.rs"]
mod calls;
mod demo_keys;
mod keyd;
// kc uses only the calls a supervisor and a helper make.
#[allow(dead_code)]
#[path = "../container/keyctl.rs"]
mod keyctl;
// kc uses only the part it needs to assemble a root.
#[allow(dead_code)]
#[path = "../container/mount_calls.rs"]
mod mount_calls;
mod request_key;
#[path = "../uapi.rs"]
mod uapi;

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use libc::c_int;
use rustix::io::Errno;

use crate::uapi::*;

const USAGE: &str = "usage: kc demo\n       \
                     kc run [--ns LIST] [--kill-on-close] [--rootfs DIR] [--keyd] NAME -- CMD [ARG...]\n       \
                     kc ps\n       \
                     kc keyd [--type TYPE]... [--max-helpers N] [--backlog N] [--helper-timeout SECS] [-v] --init PID CFD\n       \
                     kc demo-keys\n       \
                     kc request-key create KEY UID GID THREAD PROCESS SESSION\n       \
                     kc key request TYPE DESC [CALLOUT]\n\
                     LIST: comma-separated fs,cgroup,uts,ipc,user,pid,net (default uts,ipc,pid,net) or none";

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Installed as /sbin/request-key: the kernel's (or kc keyd's) upcall.
    if Path::new(&argv0).file_name() == Some("request-key".as_ref()) {
        return finish("request-key", request_key::main(&args), 2);
    }
    let result = match args.first().map(String::as_str) {
        Some("demo") if args.len() == 1 => demo().map(|()| 0),
        Some("run") => run(&args[1..]),
        Some("ps") if args.len() == 1 => ps().map(|()| 0),
        Some("keyd") => keyd_main(&args[1..]),
        Some("demo-keys") if args.len() == 1 => demo_keys::demo(),
        Some("key") => key_main(&args[1..]),
        Some("request-key") => return finish("request-key", request_key::main(&args[1..]), 2),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(0)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(2)
        }
    };
    finish("kc", result, 1)
}

fn finish(who: &str, result: Result<u8>, failure: u8) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{who}: {e:#}");
            ExitCode::from(failure)
        }
    }
}

/// `kc key request TYPE DESC [CALLOUT]`: request_key(2) (an upcall if the key is
/// missing and CALLOUT is given) into the default keyring, and the payload.
fn key_main(args: &[String]) -> Result<u8> {
    let (ty, desc, callout) = match args {
        [op, ty, desc] if op == "request" => (ty, desc, None),
        [op, ty, desc, callout] if op == "request" => (ty, desc, Some(callout)),
        _ => bail!("usage: kc key request TYPE DESC [CALLOUT]"),
    };
    let c = |s: &str| CString::new(s).with_context(|| format!("{s:?}: contains NUL"));
    let (cty, cdesc) = (c(ty)?, c(desc)?);
    let callout = callout.map(|s| c(s)).transpose()?;
    let key = keyctl::request_key(&cty, &cdesc, callout.as_deref(), 0)
        .map_err(|e| errno_err(format!("request_key({ty}, {desc})"), e))?;
    let payload = keyctl::read(key).map_err(|e| errno_err(format!("KEYCTL_READ({key})"), e))?;
    println!("{}", String::from_utf8_lossy(&payload));
    Ok(0)
}

/// `kc keyd [OPTIONS] --init PID CFD`.
fn keyd_main(args: &[String]) -> Result<u8> {
    let mut limits = keyd::Limits::default();
    let (mut types, mut init, mut cfd, mut verbose) = (Vec::new(), None, None, false);
    let mut rest = args.iter();
    let number = |opt: &str, v: Option<&String>| -> Result<u64> {
        let v = v.with_context(|| format!("{opt} needs a number\n{USAGE}"))?;
        v.parse()
            .with_context(|| format!("{opt} {v:?}: not a number"))
    };
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--type" => types.push(rest.next().context("--type needs a key type")?.clone()),
            "--init" => init = Some(number("--init", rest.next())? as libc::pid_t),
            "--max-helpers" => {
                limits.max_helpers = number("--max-helpers", rest.next())?.max(1) as usize
            }
            "--backlog" => limits.backlog = number("--backlog", rest.next())? as usize,
            "--helper-timeout" => {
                limits.helper_timeout =
                    std::time::Duration::from_secs(number("--helper-timeout", rest.next())?)
            }
            "-v" => verbose = true,
            s if s.starts_with('-') => bail!("unknown option {s:?}\n{USAGE}"),
            s if cfd.is_none() => cfd = Some(s.to_string()),
            s => bail!("unexpected {s:?}\n{USAGE}"),
        }
    }
    let cfd = cfd.with_context(|| format!("no container fd\n{USAGE}"))?;
    let Ok(fd) = cfd.parse::<RawFd>() else {
        bail!(
            "{cfd:?}: not an fd number; a container cannot be opened by name (pass the fd of \
             one this process inherited)"
        );
    };
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).with_context(|| {
        format!("fd {fd}: not open in kc keyd (pass an inherited container fd)")
    })?;
    if link.as_os_str() != "anon_inode:[container]" {
        bail!("fd {fd}: not a container fd (it is {})", link.display());
    }
    let init = init.with_context(|| {
        format!("--init PID: the container's init is needed to enter it\n{USAGE}")
    })?;
    if types.is_empty() {
        types.push("*".to_string());
    }
    // SAFETY: fd is open (checked above) and stays open: kc keyd never closes it.
    let cfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut daemon = keyd::Keyd::new(cfd, &types, limits, verbose)?;
    let _ = writeln!(
        std::io::stderr(),
        "kc keyd: serving container fd {fd} (init {init}) for {}: queue keyring {}",
        types.join(","),
        daemon.queue()
    );
    let counts = daemon.serve(init)?;
    let _ = writeln!(
        std::io::stderr(),
        "kc keyd: container dead; {} answered, {} negated, {} rejected",
        counts.answered,
        counts.negated,
        counts.rejected
    );
    Ok(0)
}

fn errno_err(what: impl std::fmt::Display, e: Errno) -> anyhow::Error {
    anyhow::anyhow!("{what}: {e}")
}

fn last_errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// The NEW_*_NS flags by their short names.
const NAMESPACES: &[(&str, u32, &str)] = &[
    ("fs", CONTAINER_NEW_FS_NS, "NEW_FS_NS"),
    ("cgroup", CONTAINER_NEW_CGROUP_NS, "NEW_CGROUP_NS"),
    ("uts", CONTAINER_NEW_UTS_NS, "NEW_UTS_NS"),
    ("ipc", CONTAINER_NEW_IPC_NS, "NEW_IPC_NS"),
    ("user", CONTAINER_NEW_USER_NS, "NEW_USER_NS"),
    ("pid", CONTAINER_NEW_PID_NS, "NEW_PID_NS"),
    ("net", CONTAINER_NEW_NET_NS, "NEW_NET_NS"),
];

fn parse_ns(list: &str) -> Result<u32> {
    if list == "none" {
        return Ok(0);
    }
    list.split(',').try_fold(0, |flags, name| {
        match NAMESPACES.iter().find(|(n, _, _)| *n == name) {
            Some((_, flag, _)) => Ok(flags | flag),
            None => bail!("unknown namespace {name:?}\n{USAGE}"),
        }
    })
}

/// "NEW_UTS_NS|NEW_PID_NS|FD_CLOEXEC" for a flags word.
fn flag_names(flags: u32) -> String {
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

fn describe_status(status: c_int) -> String {
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

fn describe_rusage(ru: &libc::rusage) -> String {
    let t = |tv: &libc::timeval| format!("{}.{:06}s", tv.tv_sec, tv.tv_usec);
    format!(
        "user {}, system {}, max rss {} KiB, minor faults {}",
        t(&ru.ru_utime),
        t(&ru.ru_stime),
        ru.ru_maxrss,
        ru.ru_minflt
    )
}

fn ps() -> Result<()> {
    let text = std::fs::read_to_string("/proc/containers").context("read /proc/containers")?;
    print!("{text}");
    Ok(())
}

fn step(text: &str) {
    println!("kc: {text}");
    let _ = std::io::stdout().flush();
}

fn show_proc() -> Result<()> {
    step("cat /proc/containers");
    for line in std::fs::read_to_string("/proc/containers")
        .context("read /proc/containers")?
        .lines()
    {
        println!("    {line}");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// waitpid that retries on EINTR; the raw status.
fn reap(pid: libc::pid_t) -> Result<c_int> {
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

fn wait_container(cfd: &OwnedFd) -> Result<(c_int, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        match calls::container_wait(cfd.as_raw_fd(), Some(&mut status), 0, Some(&mut ru)) {
            Ok(_) => return Ok((status, ru)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(errno_err("container_wait", e)),
        }
    }
}

fn write_raw(fd: RawFd, bytes: &[u8]) {
    // SAFETY: bytes is valid for its length; write(2) is async-signal-safe.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Blocks until one byte arrives on `fd`.
fn read_byte(fd: RawFd) -> Result<()> {
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

static ACK_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigusr1(_: c_int) {
    write_raw(1, b"    [init] got SIGUSR1\n");
    write_raw(ACK_FD.load(std::sync::atomic::Ordering::Relaxed), b"a");
}

/// The demo's init: once `go` says so, names its host, starts one member, reports on
/// `ready`, then waits for signals.
fn demo_init(go: RawFd, ready: RawFd) -> ! {
    let name = b"demo";
    let _ = read_byte(go);
    // SAFETY: plain syscalls on local buffers; the handler only calls write(2).
    unsafe {
        libc::sethostname(name.as_ptr().cast(), name.len());
        let mut uts: libc::utsname = std::mem::zeroed();
        libc::uname(&mut uts);
        let host = CStr::from_ptr(uts.nodename.as_ptr()).to_string_lossy();
        println!(
            "    [init] pid {}, uid {}, hostname {host:?}",
            libc::getpid(),
            libc::getuid()
        );
        libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as libc::sighandler_t);
        match libc::fork() {
            0 => {
                println!("    [member] pid {}, child of the init", libc::getpid());
                write_raw(ready, b"m");
                loop {
                    libc::pause();
                }
            }
            -1 => println!("    [init] fork failed"),
            _ => {}
        }
        write_raw(ready, b"i");
        loop {
            libc::pause();
        }
    }
}

fn demo() -> Result<()> {
    let uts = rustix::system::uname();
    step(&format!(
        "Linux {}: container_create is system call {__NR_container_create}, container_wait {__NR_container_wait}",
        uts.release().to_string_lossy()
    ));
    let name = c"demo";
    let flags = CONTAINER_NEW_UTS_NS
        | CONTAINER_NEW_IPC_NS
        | CONTAINER_NEW_PID_NS
        | CONTAINER_NEW_NET_NS
        | CONTAINER_FD_CLOEXEC;
    let cfd = calls::container_create(name, flags).map_err(|e| errno_err("container_create", e))?;
    let fd = cfd.as_raw_fd();
    step(&format!(
        "container_create({name:?}, {}) = {fd}",
        flag_names(flags)
    ));
    show_proc()?;

    let sock = calls::container_socket(fd, libc::AF_UNIX, libc::SOCK_DGRAM, 0)
        .map_err(|e| errno_err("container_socket", e))?;
    step(&format!(
        "container_socket({fd}, AF_UNIX, SOCK_DGRAM) = {}: a socket in the container's network namespace",
        sock.as_raw_fd()
    ));
    drop(sock);

    let (ready_rx, ready_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    let (go_rx, go_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    let (ack_rx, ack_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    ACK_FD.store(ack_tx.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    let _ = std::io::stdout().flush();
    // SAFETY: kc is single-threaded; the child runs demo_init and never returns.
    let pid = match unsafe { calls::fork_into_container(fd) } {
        Ok(0) => demo_init(go_rx.as_raw_fd(), ready_tx.as_raw_fd()),
        Ok(pid) => pid,
        Err(e) => return Err(errno_err("fork_into_container", e)),
    };
    step(&format!(
        "fork_into_container({fd}) = {pid}: the init, pid {pid} here"
    ));
    write_raw(go_tx.as_raw_fd(), b"g");
    read_byte(ready_rx.as_raw_fd())?;
    read_byte(ready_rx.as_raw_fd())?;
    show_proc()?;

    calls::container_kill(fd, 1, libc::SIGUSR1).map_err(|e| errno_err("container_kill", e))?;
    read_byte(ack_rx.as_raw_fd())?;
    step(&format!(
        "container_kill({fd}, 1, SIGUSR1) = 0: the init alone"
    ));

    calls::container_kill(fd, 0, libc::SIGKILL).map_err(|e| errno_err("container_kill", e))?;
    step(&format!(
        "container_kill({fd}, 0, SIGKILL) = 0: every member"
    ));
    let (status, ru) = wait_container(&cfd)?;
    step(&format!(
        "container_wait({fd}) = 0: init {}; {}",
        describe_status(status),
        describe_rusage(&ru)
    ));
    reap(pid)?;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 0) };
    step(&format!(
        "poll({fd}) = {:#x} (POLLIN|POLLHUP: dead)",
        pfd.revents
    ));
    show_proc()?;
    drop(cfd);
    step(&format!("close({fd})"));
    show_proc()
}

fn run(args: &[String]) -> Result<u8> {
    let mut flags = CONTAINER_NEW_UTS_NS
        | CONTAINER_NEW_IPC_NS
        | CONTAINER_NEW_PID_NS
        | CONTAINER_NEW_NET_NS
        | CONTAINER_FD_CLOEXEC;
    let mut kill_on_close = false;
    let mut with_keyd = false;
    let mut rootfs: Option<PathBuf> = None;
    let mut name = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--ns" => {
                let list = rest.next().context("--ns needs a list")?;
                flags = parse_ns(list)? | CONTAINER_FD_CLOEXEC;
            }
            "--kill-on-close" => kill_on_close = true,
            "--keyd" => with_keyd = true,
            "--rootfs" => {
                rootfs = Some(rest.next().context("--rootfs needs a directory")?.into());
            }
            "--" => break,
            s if s.starts_with('-') => bail!("unknown option {s:?}\n{USAGE}"),
            s if name.is_none() => name = Some(s.to_string()),
            s => bail!("unexpected {s:?} (the command goes after --)\n{USAGE}"),
        }
    }
    let name = name.context(USAGE)?;
    let argv: Vec<CString> = rest
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("NUL in an argument")?;
    if argv.is_empty() {
        bail!("no command\n{USAGE}");
    }
    if kill_on_close {
        flags |= CONTAINER_KILL_ON_CLOSE;
    }
    if let Some(dir) = &rootfs {
        if flags & CONTAINER_NEW_FS_NS != 0 {
            bail!("--rootfs makes an empty mount namespace: drop \"fs\" from --ns");
        }
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("--rootfs {}: cannot use it", dir.display()))?;
        if !meta.is_dir() {
            bail!("--rootfs {}: not a directory", dir.display());
        }
        flags |= CONTAINER_NEW_EMPTY_FS_NS;
    }
    let cname = CString::new(name.as_str()).context("NUL in the name")?;
    let cfd = calls::container_create(&cname, flags).map_err(|e| {
        errno_err(
            format!("container_create({name:?}, {})", flag_names(flags)),
            e,
        )
    })?;

    if let Some(dir) = &rootfs {
        assemble_root(&cfd, dir)?;
    }
    // Before the init starts, so that its first request already goes to it.
    let mut daemon = if with_keyd {
        Some(keyd::spawn(
            cfd.as_fd(),
            &["*".to_string()],
            keyd::Limits::default(),
            true,
        )?)
    } else {
        None
    };

    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let _ = std::io::stdout().flush();
    // SAFETY: kc is single-threaded; the child only execs or exits.
    let pid = match unsafe { calls::fork_into_container(cfd.as_raw_fd()) } {
        Ok(0) => {
            // SAFETY: argv and ptrs are valid NUL-terminated strings and a NULL-ended array.
            unsafe {
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let msg = format!("kc: exec {}: {}\n", argv[0].to_string_lossy(), last_errno());
                write_raw(2, msg.as_bytes());
                libc::_exit(127)
            }
        }
        Ok(pid) => pid,
        Err(e) => return Err(errno_err("fork_into_container", e)),
    };
    // Like system(3): the terminal's signals are for the container.
    // SAFETY: ignoring SIGINT and SIGQUIT in this process only.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    if let Some(daemon) = &mut daemon {
        daemon.start(pid)?;
    }
    let (status, ru) = wait_container(&cfd)?;
    if let Some(daemon) = daemon {
        daemon.wait()?;
    }
    reap(pid)?;
    eprintln!(
        "kc: container {name:?}: init {}; {}",
        describe_status(status),
        describe_rusage(&ru)
    );
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    })
}

/// `--rootfs DIR`: a tmpfs root made in the container's namespaces and installed from
/// outside, DIR copied in through the cfd, procfs mounted at /proc from outside.
fn assemble_root(cfd: &OwnedFd, dir: &Path) -> Result<()> {
    let fd = cfd.as_raw_fd();
    let mount = |fstype: &CStr, params: &[(&CStr, &CStr)]| {
        mount_calls::new_mount(fstype, Some(fd), params)
            .map_err(|(step, e)| errno_err(format!("{step} ({})", fstype.to_string_lossy()), e))
    };
    let root = mount(c"tmpfs", &[(c"mode", c"0755")])?;
    mount_calls::mount_root(&root, fd)
        .map_err(|e| errno_err("move_mount(tmpfs, \"\", cfd, \"/\", T_CONTAINER_ROOT)", e))?;
    step("root: a tmpfs made in the container's namespaces (FSCONFIG_SET_CONTAINER), installed with MOVE_MOUNT_T_CONTAINER_ROOT");
    let copied = copy_in(cfd, dir, Path::new(""))?;
    step(&format!(
        "copied {copied} entries of {} in through the cfd (mkdirat, openat, symlinkat, mknodat)",
        dir.display()
    ));
    match rustix::fs::mkdirat(cfd, "proc", rustix::fs::Mode::from_raw_mode(0o555)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(errno_err("mkdirat(cfd, \"proc\")", e)),
    }
    let proc = mount(c"proc", &[])?;
    mount_calls::mount_at(&proc, fd, c"proc")
        .map_err(|e| errno_err("move_mount(proc, \"\", cfd, \"proc\")", e))?;
    step("proc: the container's PID namespace, mounted at /proc from outside");
    Ok(())
}

/// Copies the host tree `src`/`rel` into the container at `rel`, through the cfd; the
/// number of entries copied. Sockets are skipped.
fn copy_in(cfd: &OwnedFd, src: &Path, rel: &Path) -> Result<usize> {
    use rustix::fs::{FileType, Mode, OFlags};

    let from = src.join(rel);
    let mut count = 0;
    let entries = std::fs::read_dir(&from)
        .with_context(|| format!("--rootfs: reading {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("--rootfs: reading {}", from.display()))?;
        let rel = rel.join(entry.file_name());
        let host = src.join(&rel);
        let meta = std::fs::symlink_metadata(&host)
            .with_context(|| format!("--rootfs: stat {}", host.display()))?;
        let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
        let ft = meta.file_type();
        let what = |call: &str, e: Errno| {
            errno_err(
                format!("--rootfs: {call}(cfd, {:?}) for {}", rel, host.display()),
                e,
            )
        };
        if ft.is_dir() {
            rustix::fs::mkdirat(cfd, &rel, mode).map_err(|e| what("mkdirat", e))?;
            count += copy_in(cfd, src, &rel)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&host)
                .with_context(|| format!("--rootfs: readlink {}", host.display()))?;
            rustix::fs::symlinkat(&target, cfd, &rel).map_err(|e| what("symlinkat", e))?;
        } else if ft.is_file() {
            let out = rustix::fs::openat(
                cfd,
                &rel,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                mode,
            )
            .map_err(|e| what("openat", e))?;
            let mut input = std::fs::File::open(&host)
                .with_context(|| format!("--rootfs: open {}", host.display()))?;
            std::io::copy(&mut input, &mut std::fs::File::from(out))
                .with_context(|| format!("--rootfs: copying {} in", host.display()))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                FileType::CharacterDevice
            } else if ft.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            rustix::fs::mknodat(cfd, &rel, kind, mode, meta.rdev())
                .map_err(|e| what("mknodat", e))?;
        } else {
            eprintln!("kc: --rootfs: skipping the socket {}", host.display());
            continue;
        }
        count += 1;
    }
    Ok(count)
}
