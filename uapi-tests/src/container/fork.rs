//! fork_into_container (uapi.md §3): the init it makes, what it shares, its errors.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, ensure, Context, Result};

use super::calls::container_wait;
use super::helpers::{self as h, fork_fails, Call, Pipe, Proc, NOBODY};
use crate::sys::{self, expect_errno, ok, Errno, TempDir};
use crate::uapi::*;

/// EBADF for -1 and a closed fd, EINVAL for /dev/null and a pipe.
pub fn bad_fd() -> Result<()> {
    h::require(&[Call::Fork])?;
    let bad = h::bad_fds()?;
    for &(what, fd, want) in &bad.cases {
        expect_errno(
            &format!("fork_into_container({what})"),
            fork_fails(fd),
            want,
        )?;
    }
    Ok(())
}

/// Returns the child's pid in the caller and 0 in the child (whose getpid() is that
/// pid); the child is a normal child of the caller (getppid, SIGCHLD, waitpid sees
/// exit(7)) and runs with the container's credentials (root's here: uid and gid 0).
pub fn basic() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let cfd = h::create(&h::unique_name("basic"), 0)?;
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    let mut chld: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers; blocks SIGCHLD so its arrival stays pending.
    unsafe {
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &chld, std::ptr::null_mut());
    }
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        report.send_i64s(&[
            i64::from(rustix::process::getpid().as_raw_nonzero().get()),
            i64::from(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())),
            i64::from(rustix::process::getuid().as_raw()),
            i64::from(rustix::process::getgid().as_raw()),
        ])?;
        Ok(7)
    })?;
    let got = report.recv_i64s(4, Some(&init))?;
    let want = [i64::from(init.pid()), i64::from(std::process::id()), 0, 0];
    ensure!(
        got == want,
        "init's [getpid, getppid, uid, gid]: expected {want:?}, got {got:?}"
    );
    init.wait_exit(7)?;
    // SAFETY: sigset_t is plain data; sigpending fills it in.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointer.
    unsafe { libc::sigpending(&mut pending) };
    // SAFETY: valid sigset pointer.
    let chld_pending = unsafe { libc::sigismember(&pending, libc::SIGCHLD) } == 1;
    ensure!(chld_pending, "no SIGCHLD after the init exited");
    Ok(())
}

/// Only one init ever: a second fork_into_container is EBUSY while it runs (from the
/// caller and from the init itself), and still EBUSY once the container is dead.
pub fn ebusy() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("busy"), 0)?;
    let gate = Pipe::new()?;
    let report = Pipe::new()?;
    let (ours, theirs) = h::socketpair()?;
    let mut init = Proc::init(&cfd, || {
        // The init has no fd for its own container: it is given one.
        let own = h::recv_fd(&theirs)?;
        let r = fork_fails(own.as_raw_fd());
        report.send_i64(r.map_or_else(|e| -i64::from(e.raw_os_error()), i64::from))?;
        gate.wait();
        Ok(0)
    })?;
    h::send_fd(&ours, &cfd)?;
    let from_init = report.recv_i64(Some(&init))?;
    ensure!(
        from_init == -i64::from(libc::EBUSY),
        "fork_into_container from the init itself: expected -EBUSY ({}), got {from_init}",
        -libc::EBUSY
    );
    expect_errno(
        "second fork_into_container (init running)",
        fork_fails(cfd.as_raw_fd()),
        Errno::BUSY,
    )?;
    gate.open(1)?;
    init.wait_exit(0)?;
    ok(
        "container_wait",
        container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    expect_errno(
        "fork_into_container on a dead container",
        fork_fails(cfd.as_raw_fd()),
        Errno::BUSY,
    )
}

/// NEW_EMPTY_FS_NS with no root mounted: fork_into_container is ENOENT and starts
/// nothing (container_wait stays ECHILD, a retry is ENOENT again, not EBUSY).
pub fn empty_fs_enoent() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("empty"), CONTAINER_NEW_EMPTY_FS_NS)?;
    for attempt in ["first", "second"] {
        expect_errno(
            &format!("{attempt} fork_into_container(NEW_EMPTY_FS_NS, no root)"),
            fork_fails(cfd.as_raw_fd()),
            Errno::NOENT,
        )?;
    }
    expect_errno(
        "container_wait after ENOENT",
        container_wait(cfd.as_raw_fd(), None, libc::WNOHANG as u32, None),
        Errno::CHILD,
    )
}

/// EPERM for a caller who is neither the owner nor privileged over the container's user
/// namespace (uid 65534 on root's containers, with and without NEW_USER_NS); the owner
/// 65534 may start its own container, whose init runs as 65534.
pub fn eperm_non_owner() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let plain = h::create(&h::unique_name("root"), 0)?;
    let userns = h::create(&h::unique_name("rootu"), CONTAINER_NEW_USER_NS)?;
    let mut child = Proc::fork("unprivileged child", || {
        h::become_user(NOBODY)?;
        expect_errno(
            "fork_into_container(root's container) as 65534",
            fork_fails(plain.as_raw_fd()),
            Errno::PERM,
        )?;
        expect_errno(
            "fork_into_container(root's NEW_USER_NS container) as 65534",
            fork_fails(userns.as_raw_fd()),
            Errno::PERM,
        )?;
        let own = h::create(&h::unique_name("own"), 0)?;
        let report = Pipe::new()?;
        let mut init = Proc::init(&own, || {
            report.send_i64s(&[
                i64::from(rustix::process::getuid().as_raw()),
                i64::from(rustix::process::geteuid().as_raw()),
            ])?;
            Ok(0)
        })?;
        let ids = report.recv_i64s(2, Some(&init))?;
        let want = i64::from(NOBODY);
        ensure!(
            ids == [want, want],
            "init of 65534's container: uid, euid {ids:?}"
        );
        init.wait_exit(0)?;
        Ok(0)
    })?;
    child.wait_exit(0)?;
    // Nothing started in root's containers.
    for cfd in [&plain, &userns] {
        expect_errno(
            "container_wait on root's container after the EPERM",
            container_wait(cfd.as_raw_fd(), None, libc::WNOHANG as u32, None),
            Errno::CHILD,
        )?;
    }
    Ok(())
}

static SHARED_WORD: AtomicU32 = AtomicU32::new(1);

extern "C" fn noop_handler(_: libc::c_int) {}

/// The init shares nothing with the caller: closing an fd, opening one, writing memory,
/// changing a signal disposition and the cwd in the init leave the caller unchanged.
pub fn shares_nothing() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let cfd = h::create(&h::unique_name("share"), 0)?;
    let null = h::dev_null()?;
    let null_raw = null.as_raw_fd();
    // SAFETY: installs a handler that does nothing.
    unsafe {
        libc::signal(
            libc::SIGUSR2,
            noop_handler as *const () as libc::sighandler_t,
        )
    };
    let cwd_before = std::env::current_dir().context("getcwd")?;
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        // SAFETY: opens and closes fds of the init's own table. The new fd goes above
        // every fd the caller has, so that its number tells.
        let opened = unsafe {
            libc::fcntl(
                libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY),
                libc::F_DUPFD,
                100,
            )
        };
        ensure!(
            opened >= 0,
            "open in init: {}",
            sys::errno_name(sys::last_errno())
        );
        // SAFETY: closes the init's copy of the fd.
        unsafe { libc::close(null_raw) };
        SHARED_WORD.store(2, Ordering::SeqCst);
        h::set_disposition(libc::SIGUSR2, libc::SIG_IGN)?;
        std::env::set_current_dir("/proc").context("chdir /proc in init")?;
        report.send_i64(i64::from(opened))?;
        Ok(0)
    })?;
    let opened = report.recv_i64(Some(&init))?;
    init.wait_exit(0)?;

    ensure!(
        rustix::io::fcntl_getfd(&null).is_ok(),
        "fd {null_raw} closed in the init is closed in the caller too"
    );
    // SAFETY: F_GETFD only queries the fd number.
    let r = unsafe { libc::fcntl(opened as libc::c_int, libc::F_GETFD) };
    ensure!(
        r == -1 && sys::last_errno() == Errno::BADF,
        "fd {opened} opened in the init is open in the caller"
    );
    let word = SHARED_WORD.load(Ordering::SeqCst);
    ensure!(
        word == 1,
        "memory written by the init changed the caller's: {word}"
    );
    // SAFETY: sigaction is plain data; the call only reads the current disposition.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: NULL new action: a query.
    unsafe { libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old) };
    ensure!(
        old.sa_sigaction == noop_handler as *const () as usize,
        "the init's SIG_IGN for SIGUSR2 replaced the caller's handler"
    );
    let cwd_after = std::env::current_dir().context("getcwd")?;
    ensure!(
        cwd_after == cwd_before,
        "the init's chdir moved the caller from {cwd_before:?} to {cwd_after:?}"
    );
    Ok(())
}

/// Root and cwd of the init are the container's root: the creator's root, whatever
/// the cwd of the caller of fork_into_container (chdir into a scratch directory, and
/// a creator that chroot()ed there: the init sees the scratch directory as "/").
pub fn root_and_cwd() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let dir = TempDir::new("root")?;
    std::fs::create_dir(dir.join("sub")).context("mkdir sub")?;
    std::fs::write(dir.join("kc-root-marker"), b"marker").context("write the marker")?;
    let dir_path = dir.path().to_path_buf();
    let mut child = Proc::fork("chroot child", move || {
        let init_cwd = |cfd: &OwnedFd| -> Result<(String, bool)> {
            let report = Pipe::new()?;
            let mut init = Proc::init(cfd, || {
                let cwd = std::env::current_dir().context("getcwd in init")?;
                report.send_str(&cwd.to_string_lossy())?;
                let marker = std::path::Path::new("/kc-root-marker").exists();
                report.send_i64(i64::from(marker))?;
                Ok(0)
            })?;
            let cwd = report.recv_str(Some(&init))?;
            let marker = report.recv_i64(Some(&init))? == 1;
            init.wait_exit(0)?;
            Ok((cwd, marker))
        };

        std::env::set_current_dir(&dir_path).context("chdir to the scratch dir")?;
        let cfd = h::create(&h::unique_name("cwd"), 0)?;
        let (cwd, marker) = init_cwd(&cfd)?;
        ensure!(cwd == "/", "init's cwd: expected \"/\", got {cwd:?}");
        ensure!(
            !marker,
            "init of an unchrooted creator sees /kc-root-marker"
        );

        rustix::process::chroot(&dir_path).context("chroot")?;
        std::env::set_current_dir("/sub").context("chdir /sub")?;
        let cfd = h::create(c"kc-chrooted", 0)?;
        let (cwd, marker) = init_cwd(&cfd)?;
        ensure!(
            cwd == "/",
            "init's cwd in a chroot: expected \"/\", got {cwd:?}"
        );
        ensure!(
            marker,
            "init of a chrooted creator does not see /kc-root-marker"
        );
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// setns() into the init's namespaces does not make a process a member: once the init
/// exits, the container is dead (container_wait returns) while that process still runs,
/// and it is not killed.
pub fn setns_not_member() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("setns"), CONTAINER_NEW_UTS_NS)?;
    let init_gate = Pipe::new()?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        ready.send(b"i")?;
        init_gate.wait();
        Ok(0)
    })?;
    ready.recv(1, Some(&init))?;
    let init_uts = h::ns_inode(Some(init.pid()), "uts")?;
    let init_pid = init.pid();

    let helper_gate = Pipe::new()?;
    let mut helper = Proc::fork("setns helper", || {
        let ns = rustix::fs::open(
            format!("/proc/{init_pid}/ns/uts"),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .context("open the init's uts ns")?;
        // SAFETY: setns on an fd we own.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWUTS) } != 0 {
            bail!("setns(uts): {}", sys::errno_name(sys::last_errno()));
        }
        ready.send(b"h")?;
        helper_gate.wait();
        Ok(0)
    })?;
    ready.recv(1, Some(&helper))?;
    let helper_uts = h::ns_inode(Some(helper.pid()), "uts")?;
    ensure!(
        helper_uts == init_uts,
        "setns helper in uts ns {helper_uts}, the init in {init_uts}"
    );

    init_gate.open(1)?;
    init.wait_exit(0)?;
    let mut status = -1;
    ok(
        "container_wait with a setns()ed non-member alive",
        container_wait(cfd.as_raw_fd(), Some(&mut status), 0, None),
    )?;
    ensure!(status == 0, "container_wait status {status:#x}, expected 0");
    let still = helper.try_wait()?;
    ensure!(
        still.is_none(),
        "setns helper ended with the container: {}",
        still.map(sys::describe_status).unwrap_or_default()
    );
    helper_gate.open(1)?;
    helper.wait_exit(0)
}

/// Sets the soft RLIMIT_NPROC (at most the hard one, `None` for the hard one).
pub fn set_nproc(soft: Option<libc::rlim_t>) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) } != 0 {
        bail!(
            "getrlimit(RLIMIT_NPROC): {}",
            sys::errno_name(sys::last_errno())
        );
    }
    lim.rlim_cur = soft.unwrap_or(lim.rlim_max);
    // SAFETY: lim is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) } != 0 {
        bail!(
            "setrlimit(RLIMIT_NPROC, {}): {}",
            lim.rlim_cur,
            sys::errno_name(sys::last_errno())
        );
    }
    Ok(())
}

/// The lowest RLIMIT_NPROC at which fork() succeeds, found by forking (and reaping) a
/// child that exits at once at limits 1, 2, ...: the caller's user's process count + 1.
/// The soft limit is left at what was found.
fn lowest_forkable_nproc() -> Result<libc::rlim_t> {
    for limit in 1..=256 {
        set_nproc(Some(limit))?;
        // SAFETY: the child only calls _exit(2).
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            -1 if sys::last_errno() == Errno::AGAIN => continue,
            -1 => bail!(
                "fork() at RLIMIT_NPROC {limit}: {}",
                sys::errno_name(sys::last_errno())
            ),
            pid => {
                h::waitpid_within(pid, h::DEATH_LIMIT)?;
                return Ok(limit);
            }
        }
    }
    bail!("fork() failed with EAGAIN at every RLIMIT_NPROC up to 256")
}

/// EAGAIN as fork(2) gives it: uid 65534 at RLIMIT_NPROC 1 can neither fork() nor
/// fork_into_container; the failure starts nothing (container_wait is ECHILD) and does
/// not use up the single init. Init is counted once, as fork() counts a child, when
/// the container's user is the caller's: at the lowest limit at which fork() succeeds,
/// fork_into_container is EAGAIN one below and succeeds at it, also for a container
/// with a user namespace of its own (whose owner, the caller's user, is counted once).
pub fn eagain_nproc() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let mut child = Proc::fork("unprivileged child", || {
        h::become_user(NOBODY)?;
        let cfd = h::create(&h::unique_name("nproc"), 0)?;
        set_nproc(Some(1))?;
        // SAFETY: a child made by mistake exits at once.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            -1 => ensure!(
                sys::last_errno() == Errno::AGAIN,
                "fork() at RLIMIT_NPROC 1: {}",
                sys::errno_name(sys::last_errno())
            ),
            pid => {
                h::waitpid_within(pid, h::DEATH_LIMIT)?;
                bail!("fork() succeeded at RLIMIT_NPROC 1 (is another 65534 process running?)");
            }
        }
        expect_errno(
            "fork_into_container at RLIMIT_NPROC 1",
            fork_fails(cfd.as_raw_fd()),
            Errno::AGAIN,
        )?;
        expect_errno(
            "container_wait(WNOHANG) after the EAGAIN",
            container_wait(cfd.as_raw_fd(), None, libc::WNOHANG as u32, None),
            Errno::CHILD,
        )?;
        let room = lowest_forkable_nproc()?;
        set_nproc(Some(room - 1))?;
        expect_errno(
            &format!(
                "fork_into_container at RLIMIT_NPROC {}, one below fork()'s",
                room - 1
            ),
            fork_fails(cfd.as_raw_fd()),
            Errno::AGAIN,
        )?;
        set_nproc(Some(room))?;
        let mut init = Proc::init(&cfd, || Ok(0))
            .with_context(|| format!("fork_into_container at RLIMIT_NPROC {room}, fork()'s"))?;
        set_nproc(None)?;
        init.wait_exit(0)?;
        // In a user namespace of its own, whose owner's count the fork is also
        // checked against (at the limit when it was made): counted once there too.
        let room = lowest_forkable_nproc()?;
        let userns = h::create(&h::unique_name("nprocns"), CONTAINER_NEW_USER_NS)?;
        let mut nested = Proc::init(&userns, || Ok(0)).with_context(|| {
            format!("fork_into_container(NEW_USER_NS) at RLIMIT_NPROC {room}, fork()'s")
        })?;
        set_nproc(None)?;
        nested.wait_exit(0)?;
        let mut status = -1;
        ok(
            "container_wait",
            container_wait(cfd.as_raw_fd(), Some(&mut status), 0, None),
        )?;
        ensure!(status == 0, "container_wait status {status:#x}");
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// A caller whose active PID namespace is neither the container's nor an ancestor of
/// it could not see its init's pid: EINVAL (as setns(2) into such a PID namespace),
/// for a NEW_PID_NS container and for one in the initial PID namespace, and nothing
/// starts.
pub fn pidns_not_visible() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let pidns = h::create(&h::unique_name("pidns"), CONTAINER_NEW_PID_NS)?;
    let plain = h::create(&h::unique_name("pidplain"), 0)?;
    let mut child = Proc::fork("child that unshares its PID namespace", || {
        // SAFETY: unshare(2) with a valid flag; it changes only this process.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            bail!(
                "unshare(CLONE_NEWPID): {}",
                sys::errno_name(sys::last_errno())
            );
        }
        let mut inner = Proc::fork("pid 1 of a sibling PID namespace", || {
            let pid = rustix::process::getpid().as_raw_nonzero().get();
            ensure!(
                pid == 1,
                "the process in the new PID namespace is pid {pid}, not 1"
            );
            for (what, cfd) in [
                ("a NEW_PID_NS container", &pidns),
                ("a container in the initial PID namespace", &plain),
            ] {
                expect_errno(
                    &format!("fork_into_container({what}) from a sibling PID namespace"),
                    fork_fails(cfd.as_raw_fd()),
                    Errno::INVAL,
                )?;
            }
            Ok(0)
        })?;
        inner.wait_exit(0)?;
        Ok(0)
    })?;
    child.wait_exit(0)?;
    for cfd in [&pidns, &plain] {
        expect_errno(
            "container_wait after the refused fork_into_container",
            container_wait(cfd.as_raw_fd(), None, libc::WNOHANG as u32, None),
            Errno::CHILD,
        )?;
    }
    Ok(())
}
