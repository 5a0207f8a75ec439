//! The container fd as a handle (uapi.md §4): CONTAINER_GET_ID, CONTAINER_GET_INFO, the
//! cfd's fdinfo, CONTAINER_GET_INIT_PIDFD, CONTAINER_GET_*_NAMESPACE and clone3() with
//! CLONE_INTO_CONTAINER. A kernel without part 4 of the series answers the ioctls with
//! ENOTTY: the tests SKIP there.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, ensure, Context, Result};
use libc::{c_int, pid_t};

use super::helpers::{self as h, Call, Pipe, Proc, NOBODY};
use super::ioctl::{self, CloneArgs, Info, Ns};
use crate::sys::{self, errno_name, expect_errno, ok, skip, Errno};
use crate::uapi::*;

/// SKIPs unless the kernel has the cfd ioctls (part 4 of the series).
pub(super) fn require_ioctls(cfd: &OwnedFd) -> Result<()> {
    match ioctl::get_id(cfd.as_fd()) {
        Err(Errno::NOTTY) => Err(skip(
            "CONTAINER_GET_ID: ENOTTY (kernel without the cfd ioctls, part 4 of the series)",
        )),
        _ => Ok(()),
    }
}

/// A new container, with the suite SKIPping on a kernel without the ioctls.
pub(super) fn create(tag: &str, flags: u32) -> Result<(CString, OwnedFd)> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let name = h::unique_name(tag);
    let cfd = h::create(&name, flags)?;
    require_ioctls(&cfd)?;
    Ok((name, cfd))
}

fn info(cfd: &OwnedFd, when: &str) -> Result<Info> {
    ok(
        &format!("CONTAINER_GET_INFO ({when})"),
        ioctl::get_info(cfd.as_fd()),
    )
}

/// An init that runs `setup`, says it is ready and waits for the gate, then exits with
/// `code`.
pub(super) struct Held {
    init: Proc,
    gate: Pipe,
    code: c_int,
}

impl Held {
    pub(super) fn start(
        cfd: &OwnedFd,
        code: c_int,
        setup: impl FnOnce() -> Result<()>,
    ) -> Result<Held> {
        let ready = Pipe::new()?;
        let gate = Pipe::new()?;
        let init = Proc::init(cfd, || {
            setup()?;
            ready.send_i64(0)?;
            gate.wait();
            Ok(code)
        })?;
        ready.recv_i64(Some(&init))?;
        Ok(Held { init, gate, code })
    }

    pub(super) fn pid(&self) -> pid_t {
        self.init.pid()
    }

    /// Opens the gate and reaps init.
    pub(super) fn release(mut self) -> Result<()> {
        self.gate.open(1)?;
        self.init.wait_exit(self.code)
    }
}

/// What CONTAINER_GET_INFO always fills, plus the supported mask ioctl::get_info asks for.
const ALWAYS: u64 =
    CONTAINER_INFO_ID | CONTAINER_INFO_STATE | CONTAINER_INFO_OWNER | CONTAINER_INFO_SUPPORTED_MASK;
/// Every bit of this version.
const SUPPORTED: u64 = ALWAYS | CONTAINER_INFO_INIT_PID | CONTAINER_INFO_EXIT;

/// CONTAINER_GET_ID is the id of the container's /proc/containers row, different for
/// two containers; EFAULT for a bad pointer; ENOTTY for an unknown number on a cfd and
/// for the container ioctls on other files.
pub fn get_id() -> Result<()> {
    let (name, cfd) = create("getid", 0)?;
    let (name2, cfd2) = create("getid2", 0)?;
    let id = ok("CONTAINER_GET_ID", ioctl::get_id(cfd.as_fd()))?;
    let id2 = ok("CONTAINER_GET_ID", ioctl::get_id(cfd2.as_fd()))?;
    let rows = h::proc_rows()?;
    let want = (h::row(&rows, &name)?.id, h::row(&rows, &name2)?.id);
    ensure!(
        (id, id2) == want,
        "CONTAINER_GET_ID: {:?}, /proc/containers: {want:?}",
        (id, id2)
    );
    // SAFETY: the kernel checks the pointer (copy_to_user to an unmapped page).
    let bad = unsafe { ioctl::ioctl(cfd.as_fd(), CONTAINER_GET_ID, 8) };
    expect_errno("CONTAINER_GET_ID(cfd, 8)", bad, Errno::FAULT)?;
    for nr in [0, 14, 31, 0xff] {
        let cmd = ((CONTAINER_IOCTL_MAGIC as libc::Ioctl) << 8) | nr;
        // SAFETY: an unknown ioctl with an integer argument.
        let r = unsafe { ioctl::ioctl(cfd.as_fd(), cmd, 0) };
        expect_errno(&format!("ioctl(cfd, _IO(0xC7, {nr}))"), r, Errno::NOTTY)?;
    }
    // A FIONREAD of another subsystem: not a container's either.
    // SAFETY: FIONREAD writes an int; the buffer is one.
    let mut n: c_int = 0;
    let r = unsafe { ioctl::ioctl(cfd.as_fd(), libc::FIONREAD, &mut n as *mut c_int as usize) };
    expect_errno("ioctl(cfd, FIONREAD)", r, Errno::NOTTY)?;
    let null = h::dev_null()?;
    let mut id = 0u64;
    // SAFETY: the buffer is a u64, should the wrong file accept the number.
    let r = unsafe { ioctl::ioctl(null.as_fd(), CONTAINER_GET_ID, &mut id as *mut u64 as usize) };
    expect_errno("CONTAINER_GET_ID(/dev/null)", r, Errno::NOTTY)?;
    Ok(())
}

/// CONTAINER_GET_INFO through a container's life: before start (state 0, no member,
/// no init pid, no exit status, parent `.init`), while init and a child of it run
/// (STARTED, 2 members, init's pid), once dead (STARTED|INIT_EXITED|DEAD, init's wait
/// status, 0 members); flags as created but CONTAINER_FD_CLOEXEC, KILL_ON_CLOSE among
/// the state bits, the owner root, the supported mask every bit of this version.
pub fn info_lifecycle() -> Result<()> {
    let flags = CONTAINER_NEW_UTS_NS | CONTAINER_KILL_ON_CLOSE;
    let (_name, cfd) = create("info", flags | CONTAINER_FD_CLOEXEC)?;
    let id = ok("CONTAINER_GET_ID", ioctl::get_id(cfd.as_fd()))?;
    let want = Info {
        mask: ALWAYS,
        id,
        parent_id: 1,
        state: CONTAINER_STATE_KILL_ON_CLOSE,
        flags,
        supported_mask: SUPPORTED,
        ..Info::default()
    };
    let got = info(&cfd, "before start")?;
    ensure!(got == want, "before start: expected {want:?}, got {got:?}");

    let gate = Pipe::new()?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        let child = sys::fork_child(|| {
            sys::raw_wait_byte(gate.rx.as_raw_fd());
            0
        })?;
        ready.send_i64(i64::from(child.pid))?;
        gate.wait();
        let mut child = child;
        child.wait_success()?;
        Ok(7)
    })?;
    ready.recv_i64(Some(&init))?;
    let got = info(&cfd, "running")?;
    let want = Info {
        mask: ALWAYS | CONTAINER_INFO_INIT_PID,
        state: CONTAINER_STATE_STARTED | CONTAINER_STATE_KILL_ON_CLOSE,
        nr_members: 2,
        init_pid: init.pid() as u32,
        ..want
    };
    ensure!(got == want, "running: expected {want:?}, got {got:?}");
    gate.open(2)?;
    init.wait_exit(7)?;
    ok(
        "container_wait",
        super::calls::container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    let got = info(&cfd, "dead")?;
    let want = Info {
        mask: ALWAYS | CONTAINER_INFO_EXIT,
        state: CONTAINER_STATE_STARTED
            | CONTAINER_STATE_INIT_EXITED
            | CONTAINER_STATE_DEAD
            | CONTAINER_STATE_KILL_ON_CLOSE,
        nr_members: 0,
        init_pid: 0,
        exit_status: 7 << 8,
        ..want
    };
    ensure!(got == want, "dead: expected {want:?}, got {got:?}");
    Ok(())
}

/// What CONTAINER_GET_INFO reports depends on who asks: init's pid in the caller's pid
/// namespace (1 for the init itself, in a new pid namespace), the owner mapped into
/// the caller's user namespace (the overflow uid 65534 where root is unmapped), and the
/// parent id of a container made by a member is that member's container's.
pub fn info_per_caller() -> Result<()> {
    let (_name, cfd) = create("infons", CONTAINER_NEW_PID_NS)?;
    let outer = ok("CONTAINER_GET_ID", ioctl::get_id(cfd.as_fd()))?;
    let (ours, theirs) = h::socketpair()?;
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        let own = h::recv_fd(&theirs)?;
        let me = ok("CONTAINER_GET_INFO (init)", ioctl::get_info(own.as_fd()))?;
        let inner = h::create(&h::unique_name("infochild"), 0)?;
        let child = ok("CONTAINER_GET_INFO (child)", ioctl::get_info(inner.as_fd()))?;
        report.send_i64s(&[
            i64::from(me.init_pid),
            i64::from(me.mask & CONTAINER_INFO_INIT_PID != 0),
            child.parent_id as i64,
        ])?;
        Ok(0)
    })?;
    h::send_fd(&ours, &cfd)?;
    let got = report.recv_i64s(3, Some(&init))?;
    ensure!(
        got == [1, 1, outer as i64],
        "in the init: [init_pid, INIT_PID set, child's parent_id] = {got:?}, expected [1, 1, {outer}]"
    );
    init.wait_exit(0)?;

    // A process in a user namespace of its own, where root is unmapped.
    let (_name, cfd) = create("infouserns", 0)?;
    let report = Pipe::new()?;
    let mut child = Proc::fork("a process in its own user namespace", || {
        unshare(libc::CLONE_NEWUSER)?;
        let got = ok("CONTAINER_GET_INFO", ioctl::get_info(cfd.as_fd()))?;
        report.send_i64s(&[i64::from(got.owner_uid), i64::from(got.owner_gid)])?;
        Ok(0)
    })?;
    let got = report.recv_i64s(2, Some(&child))?;
    ensure!(
        got == [65534, 65534],
        "owner seen from an unmapped user namespace: {got:?}, expected the overflow ids"
    );
    child.wait_exit(0)
}

/// The struct is extensible by size, as PIDFD_GET_INFO's: below
/// CONTAINER_INFO_SIZE_VER0 the number is not this ioctl (ENOTTY); a larger buffer gets
/// the known fields and zeroes after them; unknown request bits are ignored; the
/// optional fields come only when asked for (init's pid, here with a request mask of
/// 0); a bad pointer is EFAULT.
pub fn info_sizes() -> Result<()> {
    let (_name, cfd) = create("infosize", 0)?;
    let base = info(&cfd, "plain")?;
    for size in [0, 8, 56, CONTAINER_INFO_SIZE_VER0 - 1] {
        expect_errno(
            &format!("CONTAINER_GET_INFO of {size} bytes"),
            ioctl::get_info_sized(cfd.as_fd(), size, u64::MAX),
            Errno::NOTTY,
        )?;
    }
    let big = ok(
        "CONTAINER_GET_INFO of 80 bytes",
        ioctl::get_info_sized(cfd.as_fd(), 80, u64::MAX),
    )?;
    let word = |at: usize| -> Result<u64> {
        Ok(u64::from_ne_bytes(
            big[at..at + 8].try_into().context("8 bytes")?,
        ))
    };
    let (mask, id, supported) = (word(0)?, word(8)?, word(56)?);
    ensure!(
        (mask, id, supported) == (base.mask, base.id, SUPPORTED),
        "80-byte buffer, every request bit: mask {mask:#x} id {id} supported {supported:#x}, \
         expected {:#x} {} {SUPPORTED:#x}",
        base.mask,
        base.id
    );
    ensure!(
        big[CONTAINER_INFO_SIZE_VER0..].iter().all(|&b| b == 0),
        "bytes past the known struct not zeroed: {:?}",
        &big[CONTAINER_INFO_SIZE_VER0..]
    );
    // SAFETY: the kernel checks the pointer.
    let bad = unsafe { ioctl::ioctl(cfd.as_fd(), CONTAINER_GET_INFO, 8) };
    expect_errno("CONTAINER_GET_INFO(cfd, 8)", bad, Errno::FAULT)?;

    // Optional fields only on request.
    let init = Held::start(&cfd, 0, || Ok(()))?;
    let bare = ok(
        "CONTAINER_GET_INFO with request mask 0",
        ioctl::get_info_sized(cfd.as_fd(), CONTAINER_INFO_SIZE_VER0, 0),
    )?;
    let mask = u64::from_ne_bytes(bare[..8].try_into().context("mask")?);
    let init_pid = u32::from_ne_bytes(bare[44..48].try_into().context("init_pid")?);
    ensure!(
        mask == CONTAINER_INFO_ID | CONTAINER_INFO_STATE | CONTAINER_INFO_OWNER && init_pid == 0,
        "request mask 0 while init runs: mask {mask:#x} init_pid {init_pid}, expected the \
         three fields always filled and no init pid"
    );
    let full = info(&cfd, "running")?;
    ensure!(
        full.mask & CONTAINER_INFO_INIT_PID != 0 && full.init_pid == init.pid() as u32,
        "asked for init's pid: {full:?}"
    );
    init.release()
}

/// The fdinfo lines of `fd` in this process that start with "container-".
fn fdinfo(fd: RawFd) -> Result<Vec<String>> {
    Ok(sys::read_text(format!("/proc/self/fdinfo/{fd}"))?
        .lines()
        .filter(|l| l.starts_with("container-"))
        .map(str::to_string)
        .collect())
}

/// /proc/PID/fdinfo/FD of a cfd: id, name (escaped as in /proc/containers: control
/// characters and backslashes as \xNN), state, members and flags, before, during and
/// after.
pub fn fdinfo_lines() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let name = CString::new("fd info\n\\x").context("name")?;
    let flags = CONTAINER_NEW_IPC_NS;
    // CONTAINER_FD_CLOEXEC concerns the creator's fd: not among the flags shown.
    let cfd = h::create(&name, flags | CONTAINER_FD_CLOEXEC)?;
    require_ioctls(&cfd)?;
    let id = ok("CONTAINER_GET_ID", ioctl::get_id(cfd.as_fd()))?;
    let want = |state: &str, members: u32| {
        vec![
            format!("container-id:\t{id}"),
            "container-name:\tfd info\\x0a\\x5cx".to_string(),
            format!("container-state:\t{state}"),
            format!("container-members:\t{members}"),
            format!("container-flags:\t{flags:#x}"),
        ]
    };
    let got = fdinfo(cfd.as_raw_fd())?;
    ensure!(got == want("preparing", 0), "before start: {got:#?}");
    let init = Held::start(&cfd, 3, || Ok(()))?;
    let got = fdinfo(cfd.as_raw_fd())?;
    ensure!(got == want("running", 1), "running: {got:#?}");
    init.release()?;
    ok(
        "container_wait",
        super::calls::container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    let got = fdinfo(cfd.as_raw_fd())?;
    ensure!(got == want("dead", 0), "dead: {got:#?}");
    Ok(())
}

/// The Pid: line of a pidfd's fdinfo.
fn pidfd_pid(pidfd: &OwnedFd) -> Result<i64> {
    let text = sys::read_text(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:\t"))
        .context("pidfd fdinfo has no Pid: line")?
        .parse()
        .context("pidfd fdinfo Pid:")
}

/// CONTAINER_GET_INIT_PIDFD: ESRCH before start; while init runs a pidfd for it (its
/// fdinfo Pid: is init's, pidfd_send_signal() reaches it, O_CLOEXEC); EINVAL for a
/// non-zero argument; ESRCH once init has exited, and after death.
pub fn init_pidfd() -> Result<()> {
    let (_name, cfd) = create("pidfd", 0)?;
    expect_errno(
        "CONTAINER_GET_INIT_PIDFD before start",
        ioctl::get_init_pidfd(cfd.as_fd()),
        Errno::SRCH,
    )?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        ready.send_i64(0)?;
        // SAFETY: pause() just sleeps until a signal.
        unsafe { libc::pause() };
        Ok(0)
    })?;
    ready.recv_i64(Some(&init))?;
    // SAFETY: an integer argument.
    let r = unsafe { ioctl::ioctl(cfd.as_fd(), CONTAINER_GET_INIT_PIDFD, 1) };
    expect_errno("CONTAINER_GET_INIT_PIDFD(cfd, 1)", r, Errno::INVAL)?;
    let nonblock = ok(
        "CONTAINER_GET_INIT_PIDFD(PIDFD_NONBLOCK)",
        ioctl::get_init_pidfd_flags(cfd.as_fd(), libc::O_NONBLOCK as u32),
    )?;
    // SAFETY: F_GETFL on an fd we own.
    let flflags = unsafe { libc::fcntl(nonblock.as_raw_fd(), libc::F_GETFL) };
    ensure!(
        flflags & libc::O_NONBLOCK != 0,
        "PIDFD_NONBLOCK pidfd is blocking"
    );
    let pidfd = ok(
        "CONTAINER_GET_INIT_PIDFD",
        ioctl::get_init_pidfd(cfd.as_fd()),
    )?;
    let pid = pidfd_pid(&pidfd)?;
    ensure!(
        pid == i64::from(init.pid()),
        "the pidfd's Pid: {pid}, init is {}",
        init.pid()
    );
    // SAFETY: F_GETFD on an fd we own.
    let fdflags = unsafe { libc::fcntl(pidfd.as_raw_fd(), libc::F_GETFD) };
    ensure!(
        fdflags & libc::FD_CLOEXEC != 0,
        "the init pidfd is not O_CLOEXEC"
    );
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGTERM,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    ok("pidfd_send_signal(init pidfd, SIGTERM)", sys::check(r))?;
    let status = init.wait()?;
    ensure!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGTERM,
        "init after SIGTERM through its pidfd: {}",
        sys::describe_status(status)
    );
    ok(
        "container_wait",
        super::calls::container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    expect_errno(
        "CONTAINER_GET_INIT_PIDFD after death",
        ioctl::get_init_pidfd(cfd.as_fd()),
        Errno::SRCH,
    )
}

pub(super) fn fd_ino(fd: &OwnedFd) -> Result<u64> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(std::fs::metadata(&path)
        .with_context(|| format!("stat {path}"))?
        .ino())
}

/// CONTAINER_GET_*_NAMESPACE: ESRCH before init starts; while it runs, each is init's
/// /proc/INIT/ns/NAME (the same inode; the container's new UTS and net namespaces, not
/// ours), O_CLOEXEC; setns() on the UTS one shows the hostname init set, without making
/// the caller a member; EINVAL for a non-zero argument; ESRCH once init has exited.
pub fn namespaces() -> Result<()> {
    let (_name, cfd) = create("nsfds", CONTAINER_NEW_UTS_NS | CONTAINER_NEW_NET_NS)?;
    for ns in Ns::ALL {
        expect_errno(
            &format!("CONTAINER_GET_{}_NAMESPACE before start", ns.name()),
            ioctl::get_namespace(cfd.as_fd(), ns),
            Errno::SRCH,
        )?;
    }
    let init = Held::start(&cfd, 0, || {
        rustix::system::sethostname(b"handle-uts").context("sethostname")
    })?;
    for ns in Ns::ALL {
        let fd = ok(
            &format!("CONTAINER_GET_{}_NAMESPACE", ns.name()),
            ioctl::get_namespace(cfd.as_fd(), ns),
        )?;
        let want = h::ns_inode(Some(init.pid()), ns.name())?;
        let got = fd_ino(&fd)?;
        ensure!(
            got == want,
            "{} namespace fd: inode {got}, init's /proc/{}/ns/{}: {want}",
            ns.name(),
            init.pid(),
            ns.name()
        );
        let ours = h::ns_inode(None, ns.name())?;
        let new = matches!(ns, Ns::Uts | Ns::Net);
        ensure!(
            (got != ours) == new,
            "{} namespace: inode {got}, ours {ours} (new: {new})",
            ns.name()
        );
        // SAFETY: F_GETFD on an fd we own.
        let fdflags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        ensure!(
            fdflags & libc::FD_CLOEXEC != 0,
            "{} nsfd not O_CLOEXEC",
            ns.name()
        );
        // SAFETY: an integer argument.
        let r = unsafe { ioctl::ioctl(cfd.as_fd(), ns.ioctl(), 1) };
        expect_errno(
            &format!("CONTAINER_GET_{}_NAMESPACE(cfd, 1)", ns.name()),
            r,
            Errno::INVAL,
        )?;
    }
    let uts = ok(
        "CONTAINER_GET_UTS_NAMESPACE",
        ioctl::get_namespace(cfd.as_fd(), Ns::Uts),
    )?;
    let report = Pipe::new()?;
    let mut visitor = Proc::fork("a process entering the UTS namespace", || {
        // SAFETY: setns on an nsfs fd we hold.
        let r = unsafe { libc::setns(uts.as_raw_fd(), Ns::Uts.clone_flag()) };
        ok("setns(uts nsfd)", sys::check(r.into()))?;
        report.send_str(&sys::hostname()?)?;
        Ok(0)
    })?;
    let host = report.recv_str(Some(&visitor))?;
    ensure!(host == "handle-uts", "hostname after setns: {host:?}");
    visitor.wait_exit(0)?;
    let info = info(&cfd, "after a setns() visitor")?;
    ensure!(
        info.nr_members == 1,
        "members after a setns() visitor: {}, expected init alone",
        info.nr_members
    );
    init.release()?;
    ok(
        "container_wait",
        super::calls::container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    for ns in Ns::ALL {
        expect_errno(
            &format!("CONTAINER_GET_{}_NAMESPACE after death", ns.name()),
            ioctl::get_namespace(cfd.as_fd(), ns),
            Errno::SRCH,
        )?;
    }
    Ok(())
}

/// Waits until `pid` runs the program named `comm` (it has exec'd).
fn wait_comm(pid: pid_t, comm: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = sys::read_text(format!("/proc/{pid}/comm"))?;
        if got.trim() == comm {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "pid {pid} still runs {got:?}, not {comm}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Execs busybox's sleep (in a forked init).
fn exec_sleep() -> Result<i32> {
    let argv = [c"sleep".as_ptr(), c"30".as_ptr(), std::ptr::null()];
    // SAFETY: NUL-terminated strings and a NULL-terminated argv.
    unsafe { libc::execv(c"/bin/busybox".as_ptr(), argv.as_ptr()) };
    bail!(
        "execv(/bin/busybox sleep): {}",
        errno_name(sys::last_errno())
    )
}

/// From the attacker's side, the namespace ioctls check what /proc/INIT/ns/ checks: a
/// cfd of root's running container held by an unprivileged user (received over
/// SCM_RIGHTS), by root without capabilities, and by a sandbox in a user namespace of
/// its own gives no namespace fd (EACCES), though the id and the info, which any holder
/// may read, still come; root gets them. An unprivileged user's own container, once its
/// init has exec'd (before, it is not dumpable, as for /proc), gives its owner its
/// namespaces and another unprivileged user none.
pub fn namespaces_permission() -> Result<()> {
    let (_name, cfd) = create("nsperm", CONTAINER_NEW_UTS_NS)?;
    let init = Held::start(&cfd, 0, || Ok(()))?;
    ok(
        "CONTAINER_GET_UTS_NAMESPACE as root",
        ioctl::get_namespace(cfd.as_fd(), Ns::Uts),
    )?;
    let (ours, theirs) = h::socketpair()?;
    let report = Pipe::new()?;
    let attackers: [(&str, Become); 3] = [
        ("nobody", || h::become_user(NOBODY)),
        ("root without capabilities", drop_caps),
        ("a sandbox in its own user and net namespaces", || {
            unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET)
        }),
    ];
    for (who, enter) in attackers {
        let mut p = Proc::fork(who, || {
            enter()?;
            let got = h::recv_fd(&theirs)?;
            let mut errs = Vec::new();
            for ns in Ns::ALL {
                let e = ioctl::get_namespace(got.as_fd(), ns).err();
                errs.push(e.map_or(0, |e| i64::from(e.raw_os_error())));
            }
            ok("CONTAINER_GET_ID", ioctl::get_id(got.as_fd()))?;
            ok("CONTAINER_GET_INFO", ioctl::get_info(got.as_fd()))?;
            report.send_i64s(&errs)?;
            Ok(0)
        })?;
        h::send_fd(&ours, &cfd)?;
        let got = report.recv_i64s(Ns::ALL.len(), Some(&p))?;
        let want = vec![i64::from(libc::EACCES); Ns::ALL.len()];
        ensure!(
            got == want,
            "{who}: errnos of the 8 namespace ioctls {got:?}, expected EACCES each"
        );
        p.wait_exit(0)?;
    }
    init.release()?;

    // An unprivileged user's container; its init execs sleep.
    let (a, b) = h::socketpair()?;
    let report = Pipe::new()?;
    let done = Pipe::new()?;
    let mut owner = Proc::fork("an unprivileged owner", || {
        h::become_user(NOBODY)?;
        let own = h::create_as_owner(
            &h::unique_name("nspermu"),
            CONTAINER_NEW_USER_NS | CONTAINER_NEW_UTS_NS | CONTAINER_FD_CLOEXEC,
        )?;
        let init = Proc::init(&own, exec_sleep)?;
        // busybox's applets keep busybox's name.
        wait_comm(init.pid(), "busybox")?;
        let uts = ioctl::get_namespace(own.as_fd(), Ns::Uts);
        let user = ioctl::get_namespace(own.as_fd(), Ns::User);
        report.send_i64s(&[i64::from(uts.is_ok()), i64::from(user.is_ok())])?;
        h::send_fd(&a, &own)?;
        // Keep init, and so the namespaces, until the other user has tried.
        done.wait();
        drop(init);
        Ok(0)
    })?;
    let got = report.recv_i64s(2, Some(&owner))?;
    ensure!(
        got == [1, 1],
        "the owner's own namespaces (uts, user) opened: {got:?}, expected both"
    );
    let mut other = Proc::fork("another unprivileged user", || {
        h::become_user(NOBODY - 1)?;
        let got = h::recv_fd(&b)?;
        expect_errno(
            "CONTAINER_GET_UTS_NAMESPACE by another user",
            ioctl::get_namespace(got.as_fd(), Ns::Uts),
            Errno::ACCESS,
        )?;
        Ok(0)
    })?;
    other.wait_exit(0)?;
    done.open(1)?;
    owner.wait_exit(0)
}

/// Turns a forked helper into an attacker.
pub(super) type Become = fn() -> Result<()>;

/// unshare(2) in a forked helper.
pub(super) fn unshare(flags: c_int) -> Result<()> {
    // SAFETY: the helper is single-threaded; unshare changes only its own namespaces.
    let r = unsafe { libc::unshare(flags) };
    ok(&format!("unshare({flags:#x})"), sys::check(r.into())).map(drop)
}

/// Drops every capability, staying uid 0 (capset with empty sets).
pub(super) fn drop_caps() -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data::default(); 2];
    // SAFETY: capset reads a valid header and two data structs.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    ok("capset(empty)", sys::check(r))?;
    Ok(())
}

/// clone3(CLONE_INTO_CONTAINER | CLONE_PIDFD) of the init of `cfd` with `args`; the child
/// sends its getpid() through `report` and exits with `code`.
fn clone3_init(
    cfd: &OwnedFd,
    mut args: CloneArgs,
    report: &Pipe,
    code: c_int,
) -> Result<Result<(sys::Child, OwnedFd), Errno>> {
    let mut pidfd: c_int = -1;
    args.flags |= libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut c_int as u64;
    // SAFETY: the test process is single-threaded; args point at live locals.
    match unsafe { ioctl::clone3_into(cfd.as_fd(), args) } {
        Err(e) => Ok(Err(e)),
        Ok(0) => {
            let me = rustix::process::getpid().as_raw_nonzero().get();
            report.send_i64(i64::from(me)).ok();
            // SAFETY: ends the child without unwinding into the test.
            unsafe { libc::_exit(code) }
        }
        // SAFETY: with CLONE_PIDFD the kernel stored a new fd that we now own.
        Ok(pid) => Ok(Ok((sys::Child::adopt(pid), unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd)
        }))),
    }
}

/// A plain fork's clone3() arguments: exit signal SIGCHLD, nothing else.
fn fork_args() -> CloneArgs {
    CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    }
}

/// clone3(CLONE_INTO_CONTAINER) of `cfd` expected to fail: its errno, or the pid of an
/// init that started anyway (killed and reaped).
fn init_fails(cfd: &OwnedFd, args: CloneArgs) -> Result<Result<pid_t, Errno>> {
    let none = Pipe::new()?;
    Ok(clone3_init(cfd, args, &none, 0)?.map(|(child, _)| child.pid))
}

/// clone3() with `size` bytes of `args` (then `tail` bytes) expected to fail: should it
/// fork, the child exits at once and is reaped.
fn clone3_fails(args: &CloneArgs, size: usize, tail: u8) -> Result<pid_t, Errno> {
    // SAFETY: the test process is single-threaded, and a child exits at once.
    match unsafe { ioctl::clone3(args, size, tail) } {
        // SAFETY: ends the child without unwinding into the test.
        Ok(0) => unsafe { libc::_exit(0) },
        Ok(pid) => {
            let _ = sys::Child::adopt(pid).wait();
            Ok(pid)
        }
        Err(e) => Err(e),
    }
}

/// clone3() with CLONE_INTO_CONTAINER starts the init: with CLONE_PIDFD (the pidfd is
/// the init's: waitid(P_PIDFD) reaps it with its status), with exit_signal 0 (no
/// SIGCHLD: waitid needs __WALL), with set_tid (its pid is the one asked for), with
/// CLONE_INTO_CGROUP (it starts in that cgroup); the container records its status.
pub fn clone3_start() -> Result<()> {
    let (_name, cfd) = create("clone3", 0)?;
    let report = Pipe::new()?;
    let args = CloneArgs {
        exit_signal: 0,
        ..CloneArgs::default()
    };
    let (mut child, pidfd) = ok(
        "clone3(CLONE_INTO_CONTAINER | CLONE_PIDFD, exit_signal 0)",
        clone3_init(&cfd, args, &report, 9)?,
    )?;
    let pid = report.recv_i64(None)?;
    ensure!(
        pid == i64::from(child.pid),
        "child says pid {pid}, clone3 said {}",
        child.pid
    );
    ensure!(
        pidfd_pid(&pidfd)? == pid || pidfd_pid(&pidfd)? == -1,
        "pidfd is not the init's"
    );
    let waited = ok(
        "waitid(P_PIDFD, __WALL)",
        sys::waitid_pidfd(&pidfd, libc::__WALL),
    )?
    .context("waitid: nothing")?;
    child.reaped();
    ensure!(
        waited.code == libc::CLD_EXITED && waited.status == 9,
        "init's waitid: code {} status {}",
        waited.code,
        waited.status
    );
    let mut status = 0;
    ok(
        "container_wait",
        super::calls::container_wait(cfd.as_raw_fd(), Some(&mut status), 0, None),
    )?;
    ensure!(
        status == 9 << 8,
        "container_wait status {status:#x}, expected exit 9"
    );

    // set_tid: a pid of our choosing in our pid namespace.
    let (_name, cfd) = create("clone3tid", 0)?;
    let want: pid_t = 31_000 + (std::process::id() as pid_t % 1000);
    let tids = [want];
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: tids.as_ptr() as u64,
        set_tid_size: 1,
        ..CloneArgs::default()
    };
    match clone3_init(&cfd, args, &report, 0)? {
        Ok((mut child, _pidfd)) => {
            ensure!(
                child.pid == want,
                "set_tid {want}: the init is {}",
                child.pid
            );
            report.recv_i64(None)?;
            child.wait_success()?;
        }
        Err(Errno::EXIST) => bail!("set_tid {want}: EEXIST (pid taken; rerun)"),
        Err(e) => bail!("clone3(set_tid {want}): {}", errno_name(e)),
    }

    // CLONE_INTO_CGROUP.
    let dir = format!("/sys/fs/cgroup/kc-clone3-{}", std::process::id());
    std::fs::create_dir(&dir).with_context(|| format!("mkdir {dir}"))?;
    let result = (|| -> Result<()> {
        let cg = rustix::fs::open(
            &dir,
            rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("open {dir}"))?;
        let (_name, cfd) = create("clone3cg", 0)?;
        let gate = Pipe::new()?;
        let args = CloneArgs {
            flags: 1 << 33, // CLONE_INTO_CGROUP
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        let mut pidfd: c_int = -1;
        let args = CloneArgs {
            flags: args.flags | libc::CLONE_PIDFD as u64,
            pidfd: &mut pidfd as *mut c_int as u64,
            ..args
        };
        // SAFETY: single-threaded test process; args point at live locals.
        let pid = match unsafe { ioctl::clone3_into(cfd.as_fd(), args) } {
            Err(e) => bail!(
                "clone3(CLONE_INTO_CONTAINER | CLONE_INTO_CGROUP): {}",
                errno_name(e)
            ),
            Ok(0) => {
                sys::raw_wait_byte(gate.rx.as_raw_fd());
                // SAFETY: ends the child.
                unsafe { libc::_exit(0) }
            }
            Ok(pid) => pid,
        };
        let mut child = sys::Child::adopt(pid);
        // SAFETY: the kernel stored a new pidfd we now own.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) });
        let cgroup = sys::read_text(format!("/proc/{pid}/cgroup"))?;
        let leaf = dir.trim_start_matches("/sys/fs/cgroup");
        ensure!(
            cgroup.trim() == format!("0::{leaf}"),
            "the init's /proc/{pid}/cgroup: {cgroup:?}, expected 0::{leaf}"
        );
        gate.open(1)?;
        child.wait_success()
    })();
    let _ = std::fs::remove_dir(&dir);
    result
}

/// clone3() with CLONE_INTO_CONTAINER keeps fork_into_container()'s rules: EINVAL for
/// every flag that shares something with the caller or makes a namespace, for a
/// struct smaller than CLONE_ARGS_SIZE_VER3, and for a container_fd above INT_MAX;
/// EBADF for a closed fd; EINVAL for an fd that is not a container's; EBUSY once an
/// init ran; EPERM for an unprivileged caller and root's container. As 7.3's clone3
/// selftests do for the sizes: a larger struct with zeroes after it works, with a
/// non-zero byte there E2BIG.
pub fn clone3_errors() -> Result<()> {
    let (_name, cfd) = create("clone3err", 0)?;
    let forbidden: &[(&str, u64)] = &[
        ("CLONE_VM", libc::CLONE_VM as u64),
        ("CLONE_FS", libc::CLONE_FS as u64),
        ("CLONE_FILES", libc::CLONE_FILES as u64),
        (
            "CLONE_SIGHAND|CLONE_VM",
            (libc::CLONE_SIGHAND | libc::CLONE_VM) as u64,
        ),
        ("CLONE_PARENT", libc::CLONE_PARENT as u64),
        ("CLONE_SYSVSEM", libc::CLONE_SYSVSEM as u64),
        ("CLONE_IO", libc::CLONE_IO as u64),
        ("CLONE_PTRACE", libc::CLONE_PTRACE as u64),
        ("CLONE_NEWNS", libc::CLONE_NEWNS as u64),
        ("CLONE_NEWUTS", libc::CLONE_NEWUTS as u64),
        ("CLONE_NEWPID", libc::CLONE_NEWPID as u64),
        ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
        ("CLONE_NEWNET", libc::CLONE_NEWNET as u64),
        ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
    ];
    for &(what, flag) in forbidden {
        let r = init_fails(
            &cfd,
            CloneArgs {
                flags: flag,
                ..fork_args()
            },
        )?;
        expect_errno(
            &format!("clone3(CLONE_INTO_CONTAINER | {what})"),
            r,
            Errno::INVAL,
        )?;
    }
    let args = CloneArgs {
        flags: CLONE_INTO_CONTAINER,
        exit_signal: libc::SIGCHLD as u64,
        container_fd: cfd.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    for size in [64, 80, 88] {
        let r = clone3_fails(&args, size, 0);
        expect_errno(
            &format!("clone3 of {size} bytes with CLONE_INTO_CONTAINER"),
            r,
            Errno::INVAL,
        )?;
    }
    let r = clone3_fails(&args, 104, 1);
    expect_errno("clone3 of 104 bytes, non-zero tail", r, Errno::TOOBIG)?;
    for (what, fd, want) in [
        ("container_fd above INT_MAX", 1u64 << 31, Errno::INVAL),
        ("container_fd -1", u64::MAX, Errno::INVAL),
        ("a closed container_fd", 999, Errno::BADF),
    ] {
        let a = CloneArgs {
            container_fd: fd,
            ..args
        };
        let r = clone3_fails(&a, std::mem::size_of::<CloneArgs>(), 0);
        expect_errno(&format!("clone3 with {what}"), r, want)?;
    }
    let null = h::dev_null()?;
    let a = CloneArgs {
        container_fd: null.as_raw_fd() as u64,
        ..args
    };
    let r = clone3_fails(&a, std::mem::size_of::<CloneArgs>(), 0);
    expect_errno("clone3 with /dev/null as container_fd", r, Errno::INVAL)?;

    // A larger struct with zeroes after it: the init starts.
    let report = Pipe::new()?;
    // SAFETY: single-threaded; no pointers in args.
    let pid = match unsafe { ioctl::clone3(&args, 104, 0) } {
        Err(e) => bail!("clone3 of 104 bytes, zero tail: {}", errno_name(e)),
        Ok(0) => {
            report.send_i64(0).ok();
            // SAFETY: ends the child.
            unsafe { libc::_exit(0) }
        }
        Ok(pid) => pid,
    };
    let mut child = sys::Child::adopt(pid);
    report.recv_i64(None)?;
    child.wait_success()?;
    let r = init_fails(&cfd, fork_args())?;
    expect_errno("clone3(CLONE_INTO_CONTAINER) a second time", r, Errno::BUSY)?;

    // CLONE_INTO_CGROUP outside the container's cgroup namespace: adopt.rs
    // (container_adopt_cgroup_namespace).

    // An unprivileged caller, root's container.
    let (_name, cfd) = create("clone3perm", 0)?;
    let mut p = Proc::fork("nobody", || {
        h::become_user(NOBODY)?;
        let r = init_fails(&cfd, fork_args())?;
        expect_errno("clone3(CLONE_INTO_CONTAINER) as nobody", r, Errno::PERM)?;
        Ok(0)
    })?;
    p.wait_exit(0)
}

/// A tracer following the caller's forks (PTRACE_O_TRACEFORK, _VFORK, _CLONE) does not
/// follow into the container: fork_into_container() and clone3(CLONE_INTO_CONTAINER)
/// start init untraced, so the tracer sees no fork event and no stop of init, and the
/// caller reaps init's exit(0) as usual.
pub fn init_untraced() -> Result<()> {
    for via_clone3 in [false, true] {
        let how = if via_clone3 {
            "clone3(CLONE_INTO_CONTAINER)"
        } else {
            "fork_into_container()"
        };
        let (_name, cfd) = create("untraced", 0)?;
        let mut tracee = sys::fork_child(|| {
            // SAFETY: a fresh single-threaded child asks to be traced and stops.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::raise(libc::SIGSTOP);
            }
            let started = if via_clone3 {
                // SAFETY: single-threaded child; no pointers in the arguments.
                unsafe { ioctl::clone3_into(cfd.as_fd(), fork_args()) }
            } else {
                // SAFETY: single-threaded child.
                unsafe { super::calls::fork_into_container(cfd.as_raw_fd()) }
            };
            match started {
                // SAFETY: init ends at once.
                Ok(0) => unsafe { libc::_exit(0) },
                Ok(pid) => {
                    let mut status = 0;
                    // SAFETY: waiting for our own child.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                        0
                    } else {
                        2
                    }
                }
                Err(_) => 3,
            }
        })?;
        let pid = tracee.pid;
        let mut status = 0;
        // SAFETY: waiting for our own child's stop.
        unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        ensure!(
            libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSTOP,
            "tracee: {}",
            sys::describe_status(status)
        );
        let options =
            libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK | libc::PTRACE_O_TRACECLONE;
        // SAFETY: ptrace requests on our stopped tracee.
        unsafe {
            libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options);
            libc::ptrace(libc::PTRACE_CONT, pid, 0, 0);
        }
        let mut seen = Vec::new();
        let code = loop {
            // SAFETY: waiting for any child of ours, traced ones included.
            let who = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
            ensure!(who > 0, "waitpid: {}", errno_name(sys::last_errno()));
            if who == pid && libc::WIFEXITED(status) {
                break libc::WEXITSTATUS(status);
            }
            ensure!(
                who == pid || libc::WIFSTOPPED(status),
                "pid {who}: {}",
                sys::describe_status(status)
            );
            if libc::WIFSTOPPED(status) {
                let (sig, event) = (libc::WSTOPSIG(status), status >> 16);
                if who == pid && event == 0 {
                    // A signal for the tracee (SIGCHLD from init): deliver it.
                    // SAFETY: resumes our stopped tracee with its signal.
                    unsafe { libc::ptrace(libc::PTRACE_CONT, who, 0, sig) };
                    continue;
                }
                seen.push(format!("pid {who} stopped (signal {sig}, event {event})"));
                let request = if who == pid {
                    libc::PTRACE_CONT
                } else {
                    libc::PTRACE_DETACH
                };
                // SAFETY: resumes (or lets go of) a tracee stopped for us.
                unsafe { libc::ptrace(request, who, 0, 0) };
            }
        };
        tracee.reaped();
        ensure!(
            code == 0 && seen.is_empty(),
            "{how} under a fork-following tracer: exit {code}, tracer saw {seen:?}"
        );
    }
    Ok(())
}

/// Init is a process, not its main thread: after the main thread's pthread_exit() the
/// namespace ioctls still answer from a live thread of init (the container still runs),
/// and the container dies with the status of the last thread's exit.
pub fn namespaces_leader_gone() -> Result<()> {
    let (_name, cfd) = create("nsleader", CONTAINER_NEW_UTS_NS)?;
    let ready = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        let gate_rx = gate.rx.as_raw_fd();
        std::thread::spawn(move || {
            sys::raw_wait_byte(gate_rx);
            // SAFETY: ends the whole process from its last thread.
            unsafe { libc::_exit(5) }
        });
        ready.send_i64(0)?;
        // SAFETY: exit(2) ends only the main thread (pthread_exit() without its
        // unwinding); the other thread goes on.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        bail!("exit(2) returned")
    })?;
    ready.recv_i64(Some(&init))?;
    // Until the leader has gone, the ioctl could answer from it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sys::read_text(format!("/proc/{}/status", init.pid()))?.contains("State:\tZ") {
        ensure!(
            std::time::Instant::now() < deadline,
            "init's main thread did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let info = info(&cfd, "main thread gone")?;
    ensure!(
        info.state == CONTAINER_STATE_STARTED && info.nr_members == 1,
        "after pthread_exit() of the main thread: {info:?}"
    );
    ok(
        "CONTAINER_GET_UTS_NAMESPACE after the main thread's pthread_exit()",
        ioctl::get_namespace(cfd.as_fd(), Ns::Uts),
    )?;
    ok(
        "CONTAINER_GET_INIT_PIDFD after the main thread's pthread_exit()",
        ioctl::get_init_pidfd(cfd.as_fd()),
    )?;
    gate.open(1)?;
    init.wait_exit(5)
}

/// A holder of the cfd to whom init is not visible (a process in a pid namespace of its
/// own, which init is outside) gets neither init's pidfd nor its namespaces: ESRCH, as
/// pidfd_open() of a pid it cannot name; CONTAINER_GET_INFO has no init pid for it.
pub fn init_invisible() -> Result<()> {
    let (_name, cfd) = create("invisible", 0)?;
    let init = Held::start(&cfd, 0, || Ok(()))?;
    let (ours, theirs) = h::socketpair()?;
    let report = Pipe::new()?;
    let mut outer = Proc::fork("a process with a pid namespace of its own", || {
        unshare(libc::CLONE_NEWPID)?;
        let mut inner = Proc::fork("pid 1 of that namespace", || {
            let got = h::recv_fd(&theirs)?;
            let pidfd = ioctl::get_init_pidfd(got.as_fd()).err();
            let uts = ioctl::get_namespace(got.as_fd(), Ns::Uts).err();
            let info = ok("CONTAINER_GET_INFO", ioctl::get_info(got.as_fd()))?;
            report.send_i64s(&[
                pidfd.map_or(0, |e| i64::from(e.raw_os_error())),
                uts.map_or(0, |e| i64::from(e.raw_os_error())),
                i64::from(info.mask & CONTAINER_INFO_INIT_PID != 0),
            ])?;
            Ok(0)
        })?;
        inner.wait_exit(0)?;
        Ok(0)
    })?;
    h::send_fd(&ours, &cfd)?;
    let got = report.recv_i64s(3, Some(&outer))?;
    let want = [i64::from(libc::ESRCH), i64::from(libc::ESRCH), 0];
    ensure!(
        got == want,
        "[GET_INIT_PIDFD, GET_UTS_NAMESPACE errno, INIT_PID given] for an invisible init: \
         {got:?}, expected {want:?}"
    );
    outer.wait_exit(0)?;
    init.release()
}

/// CONTAINER_GET_INIT_PIDFD racing the reaping of init (the pid is the container's, so
/// a reaped init is ESRCH, never a crash): 200 rounds of an init that exits at once,
/// reaped while another thread asks for its pidfd in a loop.
pub fn init_pidfd_vs_reap() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let probe = h::create(&h::unique_name("reapprobe"), 0)?;
    require_ioctls(&probe)?;
    for round in 0..200 {
        let cfd = h::create(&h::unique_name("reap"), 0)?;
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        let pid = match unsafe { super::calls::fork_into_container(cfd.as_raw_fd()) } {
            Ok(0) => unsafe { libc::_exit(0) },
            Ok(pid) => pid,
            Err(e) => bail!("round {round}: fork_into_container: {}", errno_name(e)),
        };
        let raw = cfd.as_raw_fd();
        let asker = std::thread::spawn(move || -> std::result::Result<u32, Errno> {
            // SAFETY: the cfd outlives the thread (joined below).
            let cfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
            let mut pidfds = 0;
            for _ in 0..50 {
                match ioctl::get_init_pidfd(cfd) {
                    Ok(_) => pidfds += 1,
                    Err(Errno::SRCH) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(pidfds)
        });
        let mut child = sys::Child::adopt(pid);
        child.wait_success()?;
        match asker.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("round {round}: CONTAINER_GET_INIT_PIDFD: {}", errno_name(e)),
            Err(_) => bail!("round {round}: the asking thread panicked"),
        }
    }
    Ok(())
}
