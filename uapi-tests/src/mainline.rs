//! Mainline 7.3 mechanisms the series builds on: clone3 namespaces, pidfds, setns,
//! openat2 scoping, the new mount API and keys.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, ensure, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, unmount, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};

use crate::container::mount_calls::{fsconfig, FSCONFIG_CMD_CREATE, FSCONFIG_SET_STRING};
use crate::sys::{
    self, check, expect_errno, ok, owned_fd, pipe, raw_wait_byte, raw_write, read_text,
    read_to_end, Errno, TempDir, Waited,
};

// ---------------------------------------------------------------------------------------
// clone3

/// clone3(CLONE_NEWPID | CLONE_PIDFD): the child is pid 1 of its namespace, and the pidfd
/// refers to it (fdinfo NSpid, waitid through it).
pub fn clone3_newpid_pidfd() -> Result<()> {
    let (rx, tx) = pipe()?;
    let (release_rx, release_tx) = pipe()?;
    let (tx_raw, release_raw) = (tx.as_raw_fd(), release_rx.as_raw_fd());
    let (mut child, pidfd) = ok(
        "clone3(CLONE_NEWPID|CLONE_PIDFD)",
        sys::clone3((libc::CLONE_NEWPID | libc::CLONE_PIDFD) as u64, || {
            // SAFETY: getpid is async-signal-safe.
            let pid = unsafe { libc::syscall(libc::SYS_getpid) } as i32;
            raw_write(tx_raw, &pid.to_ne_bytes());
            raw_wait_byte(release_raw);
            0
        }),
    )?;
    drop((tx, release_rx));
    let pidfd = pidfd.context("clone3 returned no pidfd with CLONE_PIDFD")?;

    let mut got = [0u8; 4];
    sys::read_exact(&rx, &mut got).context("read the child's getpid()")?;
    let inner = i32::from_ne_bytes(got);
    ensure!(
        inner == 1,
        "getpid() in the new pid namespace: expected 1, got {inner}"
    );
    ensure!(
        child.pid > 1,
        "clone3 returned pid {} to the parent",
        child.pid
    );

    let fdinfo = read_text(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    let want = format!("NSpid:\t{}\t1", child.pid);
    ensure!(
        fdinfo.lines().any(|l| l == want),
        "pidfd fdinfo lacks {want:?}:\n{fdinfo}"
    );

    sys::release(&release_tx)?;
    let waited = ok("waitid(P_PIDFD)", sys::waitid_pidfd(&pidfd, 0))?;
    child.reaped();
    let want = Waited {
        pid: child.pid,
        code: libc::CLD_EXITED,
        status: 0,
    };
    ensure!(waited == Some(want), "waitid(P_PIDFD): got {waited:?}");
    Ok(())
}

/// clone3(CLONE_NEWUTS): the child's sethostname() does not change the parent's hostname.
pub fn clone3_newuts() -> Result<()> {
    const NAME: &[u8] = b"kc-clone3-uts";
    let before = sys::hostname()?;
    ensure!(before.as_bytes() != NAME, "hostname is already {before:?}");
    let (rx, tx) = pipe()?;
    let tx_raw = tx.as_raw_fd();
    let (mut child, _) = ok(
        "clone3(CLONE_NEWUTS)",
        sys::clone3(libc::CLONE_NEWUTS as u64, || {
            // SAFETY: sethostname and uname are plain syscalls on local buffers.
            unsafe {
                if libc::sethostname(NAME.as_ptr().cast(), NAME.len()) != 0 {
                    raw_write(tx_raw, b"!sethostname failed");
                    return 1;
                }
                let mut uts: libc::utsname = std::mem::zeroed();
                libc::uname(&mut uts);
                let name = CStr::from_ptr(uts.nodename.as_ptr());
                raw_write(tx_raw, name.to_bytes());
            }
            0
        }),
    )?;
    drop(tx);
    let seen = String::from_utf8_lossy(&read_to_end(&rx)?).into_owned();
    child.wait_success()?;
    ensure!(
        seen.as_bytes() == NAME,
        "hostname in the child: expected {NAME:?}, got {seen:?}"
    );
    let after = sys::hostname()?;
    ensure!(
        after == before,
        "parent's hostname changed from {before:?} to {after:?}"
    );
    Ok(())
}

/// clone3(CLONE_NEWNS): a tmpfs the child mounts (after making / recursively private) is
/// in the child's mountinfo but not in the parent's, and a file in it is invisible here.
pub fn clone3_newns() -> Result<()> {
    let dir = TempDir::new("newns")?;
    let target = sys::path_cstr(dir.path())?;
    let marker = sys::path_cstr(&dir.join("marker"))?;
    let (rx, tx) = pipe()?;
    let (release_rx, release_tx) = pipe()?;
    let (tx_raw, release_raw) = (tx.as_raw_fd(), release_rx.as_raw_fd());
    let (mut child, _) = ok(
        "clone3(CLONE_NEWNS)",
        sys::clone3(libc::CLONE_NEWNS as u64, || {
            // Report the step that failed and its errno, or step 0 once ready.
            let fail = |step: u8| {
                let e = sys::last_errno().raw_os_error();
                let mut report = [step, 0, 0, 0, 0];
                report[1..].copy_from_slice(&e.to_ne_bytes());
                raw_write(tx_raw, &report);
                1
            };
            // SAFETY: mount/open/close are syscalls on pointers to live C strings.
            unsafe {
                let none = std::ptr::null();
                if libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    none.cast(),
                ) != 0
                {
                    return fail(1);
                }
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    none.cast(),
                ) != 0
                {
                    return fail(2);
                }
                let fd = libc::open(
                    marker.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd < 0 {
                    return fail(3);
                }
                libc::close(fd);
            }
            raw_write(tx_raw, &[0, 0, 0, 0, 0]);
            raw_wait_byte(release_raw);
            0
        }),
    )?;
    drop((tx, release_rx));

    let mut report = [0u8; 5];
    sys::read_exact(&rx, &mut report).context("read the child's report")?;
    if report[0] != 0 {
        let step = [
            "",
            "mount(/, MS_REC|MS_PRIVATE)",
            "mount tmpfs",
            "create marker",
        ][usize::from(report[0]).min(3)];
        let errno = Errno::from_raw_os_error(i32::from_ne_bytes(report[1..5].try_into()?));
        bail!("child: {step}: {}", sys::errno_name(errno));
    }

    let here = dir.path().to_string_lossy().into_owned();
    let theirs = sys::mount_points(&read_text(format!("/proc/{}/mountinfo", child.pid))?);
    ensure!(
        theirs.contains(&here),
        "child's mountinfo lacks its tmpfs on {here}"
    );
    let ours = sys::mount_points(&read_text("/proc/self/mountinfo")?);
    ensure!(
        !ours.contains(&here),
        "child's tmpfs on {here} is visible in the parent's mountinfo"
    );
    ensure!(
        !dir.join("marker").exists(),
        "file created in the child's tmpfs is visible in the parent"
    );

    sys::release(&release_tx)?;
    child.wait_success()
}

// ---------------------------------------------------------------------------------------
// pidfds

fn sys_pidfd_open(pid: libc::pid_t, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes integers only.
    owned_fd(check(unsafe {
        libc::syscall(libc::SYS_pidfd_open, pid, flags)
    }))
}

fn sys_pidfd_send_signal(
    pidfd: &OwnedFd,
    sig: libc::c_int,
    flags: libc::c_uint,
) -> Result<(), Errno> {
    // SAFETY: NULL siginfo is allowed (the kernel fills in SI_USER).
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    })
    .map(drop)
}

/// A child that exits with `code` once `sys::release` writes to the returned pipe.
fn child_exiting_on_release(code: i32) -> Result<(sys::Child, OwnedFd)> {
    let (release_rx, release_tx) = pipe()?;
    let child = sys::fork_child(move || {
        raw_wait_byte(release_rx.as_raw_fd());
        code
    })?;
    Ok((child, release_tx))
}

/// pidfd_open + poll: no POLLIN while the child runs, POLLIN once it exited; waitid
/// (P_PIDFD) gives its exit status.
pub fn pidfd_poll_waitid() -> Result<()> {
    let (mut child, release) = child_exiting_on_release(42)?;
    let pidfd = ok("pidfd_open", sys_pidfd_open(child.pid, 0))?;

    let revents = sys::poll_one(&pidfd, libc::POLLIN, 0)?;
    ensure!(
        revents == 0,
        "poll on a running child's pidfd: revents {revents:#x}, expected 0"
    );
    let early = ok(
        "waitid(P_PIDFD, WNOHANG)",
        sys::waitid_pidfd(&pidfd, libc::WNOHANG),
    )?;
    ensure!(
        early.is_none(),
        "waitid(WNOHANG) on a running child returned {early:?}"
    );

    sys::release(&release)?;
    let revents = sys::poll_one(&pidfd, libc::POLLIN, 5000)?;
    ensure!(
        revents & libc::POLLIN != 0,
        "no POLLIN on the pidfd 5 s after the child's exit (revents {revents:#x})"
    );

    let waited = ok("waitid(P_PIDFD)", sys::waitid_pidfd(&pidfd, 0))?;
    child.reaped();
    let want = Waited {
        pid: child.pid,
        code: libc::CLD_EXITED,
        status: 42,
    };
    ensure!(
        waited.as_ref() == Some(&want),
        "waitid(P_PIDFD): expected {want:?}, got {waited:?}"
    );
    expect_errno(
        "waitid(P_PIDFD) after reaping",
        sys::waitid_pidfd(&pidfd, 0),
        Errno::CHILD,
    )
}

/// pidfd_open errors: a reaped pid is ESRCH; unknown flags and pid <= 0 are EINVAL.
pub fn pidfd_open_errors() -> Result<()> {
    let mut child = sys::fork_child(|| 0)?;
    child.wait_success()?;
    expect_errno(
        "pidfd_open(reaped pid)",
        sys_pidfd_open(child.pid, 0),
        Errno::SRCH,
    )?;

    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    ok("pidfd_open(self)", sys_pidfd_open(me, 0))?;
    expect_errno(
        "pidfd_open(self, flags=0x1)",
        sys_pidfd_open(me, 0x1),
        Errno::INVAL,
    )?;
    expect_errno(
        "pidfd_open(self, flags=0x80000000)",
        sys_pidfd_open(me, 0x8000_0000),
        Errno::INVAL,
    )?;
    expect_errno("pidfd_open(0)", sys_pidfd_open(0, 0), Errno::INVAL)?;
    expect_errno("pidfd_open(-1)", sys_pidfd_open(-1, 0), Errno::INVAL)
}

/// pidfd_send_signal: SIGTERM kills a sleeping child (CLD_KILLED, SIGTERM); unknown flags
/// are EINVAL; after reaping, ESRCH.
pub fn pidfd_send_signal() -> Result<()> {
    let (mut child, _release) = child_exiting_on_release(0)?;
    let pidfd = ok("pidfd_open", sys_pidfd_open(child.pid, 0))?;

    expect_errno(
        "pidfd_send_signal(flags=0x10)",
        sys_pidfd_send_signal(&pidfd, libc::SIGTERM, 0x10),
        Errno::INVAL,
    )?;
    expect_errno(
        "pidfd_send_signal(sig=1000)",
        sys_pidfd_send_signal(&pidfd, 1000, 0),
        Errno::INVAL,
    )?;
    ok(
        "pidfd_send_signal(sig=0)",
        sys_pidfd_send_signal(&pidfd, 0, 0),
    )?;
    ok(
        "pidfd_send_signal(SIGTERM)",
        sys_pidfd_send_signal(&pidfd, libc::SIGTERM, 0),
    )?;

    let waited = ok("waitid(P_PIDFD)", sys::waitid_pidfd(&pidfd, 0))?;
    child.reaped();
    let want = Waited {
        pid: child.pid,
        code: libc::CLD_KILLED,
        status: libc::SIGTERM,
    };
    ensure!(
        waited.as_ref() == Some(&want),
        "waitid(P_PIDFD): expected {want:?}, got {waited:?}"
    );
    expect_errno(
        "pidfd_send_signal to a reaped child",
        sys_pidfd_send_signal(&pidfd, 0, 0),
        Errno::SRCH,
    )
}

/// setns(pidfd, CLONE_NEWUTS) from a helper joins the child's UTS namespace and sees its
/// hostname; the test process' own hostname is untouched.
pub fn setns_pidfd_uts() -> Result<()> {
    const NAME: &str = "kc-setns-uts";
    let before = sys::hostname()?;
    let (ready_rx, ready_tx) = pipe()?;
    let (release_rx, release_tx) = pipe()?;
    let mut holder = sys::fork_child(move || {
        // SAFETY: unshare/sethostname with valid arguments.
        let fine = unsafe {
            libc::unshare(libc::CLONE_NEWUTS) == 0
                && libc::sethostname(NAME.as_ptr().cast(), NAME.len()) == 0
        };
        let _ = sys::write_all(&ready_tx, if fine { b"y" } else { b"n" });
        raw_wait_byte(release_rx.as_raw_fd());
        0
    })?;
    let mut ready = [0u8; 1];
    sys::read_exact(&ready_rx, &mut ready).context("read the holder's status")?;
    ensure!(
        &ready == b"y",
        "holder could not unshare(CLONE_NEWUTS) and set its hostname"
    );
    let pidfd = ok("pidfd_open", sys_pidfd_open(holder.pid, 0))?;

    let (rx, tx) = pipe()?;
    let mut helper = sys::fork_child(|| {
        // SAFETY: setns on a valid pidfd.
        if unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWUTS) } != 0 {
            let _ = sys::write_all(
                &tx,
                format!("!setns: {}", sys::errno_name(sys::last_errno())).as_bytes(),
            );
            return 1;
        }
        let _ = sys::write_all(&tx, sys::hostname().unwrap_or_default().as_bytes());
        0
    })?;
    drop(tx);
    let seen = String::from_utf8_lossy(&read_to_end(&rx)?).into_owned();
    helper.wait()?;
    ensure!(
        seen == NAME,
        "hostname after setns(pidfd, CLONE_NEWUTS): expected {NAME:?}, got {seen:?}"
    );
    let after = sys::hostname()?;
    ensure!(
        after == before,
        "our hostname changed from {before:?} to {after:?}"
    );

    // A pidfd needs at least one known namespace flag.
    // SAFETY: setns with integer arguments.
    let bad = check(unsafe { libc::setns(pidfd.as_raw_fd(), 0x1) } as libc::c_long);
    expect_errno("setns(pidfd, 0x1)", bad, Errno::INVAL)?;

    sys::release(&release_tx)?;
    holder.wait_success()
}

// ---------------------------------------------------------------------------------------
// openat2

const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// `struct open_how` of `<linux/openat2.h>`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(dir: impl AsFd, path: &CStr, resolve: u64) -> Result<OwnedFd, Errno> {
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: path is a C string and how a valid open_how of the size passed.
    owned_fd(check(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            size_of::<OpenHow>(),
        )
    }))
}

/// tmp/root/etc/marker ("inside"), tmp/root/abs -> /etc, tmp/root/up -> ../../..,
/// tmp/outside ("outside"); returns the tree and an O_PATH fd of root.
fn openat2_tree() -> Result<(TempDir, OwnedFd)> {
    let dir = TempDir::new("openat2")?;
    std::fs::create_dir_all(dir.join("root/etc")).context("mkdir root/etc")?;
    std::fs::write(dir.join("root/etc/marker"), "inside\n").context("write root/etc/marker")?;
    std::fs::write(dir.join("outside"), "outside\n").context("write outside")?;
    std::os::unix::fs::symlink("/etc", dir.join("root/abs")).context("symlink abs")?;
    std::os::unix::fs::symlink("../../..", dir.join("root/up")).context("symlink up")?;
    let root = rustix::fs::open(
        dir.join("root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open root")?;
    Ok((dir, root))
}

fn same_file(a: &OwnedFd, b: &OwnedFd) -> Result<bool> {
    let (a, b) = (rustix::fs::fstat(a)?, rustix::fs::fstat(b)?);
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

/// RESOLVE_IN_ROOT: absolute symlinks, absolute paths and ".." past the root all stay
/// inside the root (the scoping a container fd as dirfd will have).
pub fn openat2_resolve_in_root() -> Result<()> {
    let (dir, root) = openat2_tree()?;
    let marker = ok("openat2(etc/marker)", openat2(&root, c"etc/marker", 0))?;
    // Without scoping, ".." does leave: the tree is what we think it is.
    ok(
        "openat2(../outside) without RESOLVE flags",
        openat2(&root, c"../outside", 0),
    )?;
    let escape = openat2(&root, c"abs/marker", 0);
    expect_errno(
        "openat2(abs/marker) without RESOLVE flags",
        escape,
        Errno::NOENT,
    )
    .context("the host's /etc/marker must not exist, or roots cannot be told apart")?;

    for path in [
        c"abs/marker",
        c"/etc/marker",
        c"../../../etc/marker",
        c"up/etc/marker",
        c"etc/../../etc/marker",
    ] {
        let what = format!("openat2({path:?}, RESOLVE_IN_ROOT)");
        let fd = ok(&what, openat2(&root, path, RESOLVE_IN_ROOT))?;
        ensure!(
            same_file(&fd, &marker)?,
            "{what} opened a file other than root/etc/marker"
        );
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&fd, &mut buf).with_context(|| format!("read {what}"))?;
        ensure!(
            &buf[..n] == b"inside\n",
            "{what} read {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    expect_errno(
        "openat2(../outside, RESOLVE_IN_ROOT)",
        openat2(&root, c"../outside", RESOLVE_IN_ROOT),
        Errno::NOENT,
    )?;
    drop(dir);
    Ok(())
}

/// RESOLVE_BENEATH: any escape ("..", absolute path or symlink) is EXDEV; unknown resolve
/// bits and BENEATH together with IN_ROOT are EINVAL.
pub fn openat2_resolve_beneath() -> Result<()> {
    let (_dir, root) = openat2_tree()?;
    ok(
        "openat2(etc/marker, RESOLVE_BENEATH)",
        openat2(&root, c"etc/marker", RESOLVE_BENEATH),
    )?;
    ok(
        "openat2(etc/../etc/marker, RESOLVE_BENEATH)",
        openat2(&root, c"etc/../etc/marker", RESOLVE_BENEATH),
    )?;
    for path in [
        c"../outside",
        c"etc/../../outside",
        c"abs/marker",
        c"/etc",
        c"up",
    ] {
        let what = format!("openat2({path:?}, RESOLVE_BENEATH)");
        expect_errno(&what, openat2(&root, path, RESOLVE_BENEATH), Errno::XDEV)?;
    }
    expect_errno(
        "openat2(resolve=1<<63)",
        openat2(&root, c"etc/marker", 1 << 63),
        Errno::INVAL,
    )?;
    expect_errno(
        "openat2(resolve=0x40)",
        openat2(&root, c"etc/marker", 0x40),
        Errno::INVAL,
    )?;
    expect_errno(
        "openat2(RESOLVE_BENEATH|RESOLVE_IN_ROOT)",
        openat2(&root, c"etc/marker", RESOLVE_BENEATH | RESOLVE_IN_ROOT),
        Errno::INVAL,
    )
}

// ---------------------------------------------------------------------------------------
// New mount API

/// fsopen/fsconfig/fsmount/move_mount of a tmpfs: a file created through the detached
/// mount fd appears at the mount point only after move_mount, on a new device.
pub fn fsmount_tmpfs() -> Result<()> {
    let dir = TempDir::new("fsmount")?;
    sys::private_mount_ns()?;
    let target = dir.join("mnt");
    std::fs::create_dir(&target).context("mkdir mnt")?;

    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(tmpfs)")?;
    fsconfig_set_string(&fs, "mode", "0755").context("fsconfig(mode=0755)")?;
    fsconfig_create(&fs).context("fsconfig(FSCONFIG_CMD_CREATE)")?;
    let mnt =
        fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).context("fsmount")?;

    let file = rustix::fs::openat(
        &mnt,
        "hello",
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .context("create hello through the mount fd")?;
    sys::write_all(&file, b"through the mount fd\n")?;
    drop(file);
    ensure!(
        !target.join("hello").exists(),
        "file visible at the mount point before move_mount"
    );

    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        &target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .context("move_mount onto mnt")?;
    let result = (|| -> Result<()> {
        let text = std::fs::read_to_string(target.join("hello")).context("read mnt/hello")?;
        ensure!(
            text == "through the mount fd\n",
            "mnt/hello contains {text:?}"
        );
        let (outer, inner) = (rustix::fs::stat(dir.path())?, rustix::fs::stat(&target)?);
        ensure!(
            outer.st_dev != inner.st_dev,
            "mnt is on the same device as its parent"
        );
        let here = target.to_string_lossy();
        let info = read_text("/proc/self/mountinfo")?;
        let line = info.lines().find(|l| l.split(' ').nth(4) == Some(&here));
        ensure!(
            line.is_some_and(|l| l.contains(" - tmpfs ")),
            "mountinfo has no tmpfs on {here}: {line:?}"
        );
        Ok(())
    })();
    unmount(&target, UnmountFlags::DETACH).context("umount mnt")?;
    result
}

/// fsopen/fsconfig errors: unknown fs type ENODEV, bad flags EINVAL, unknown key EINVAL
/// with the reason in the fs context log, parameters after CMD_CREATE EBUSY.
pub fn fsconfig_errors() -> Result<()> {
    expect_errno(
        "fsopen(kc_no_such_fs)",
        fsopen("kc_no_such_fs", FsOpenFlags::FSOPEN_CLOEXEC),
        Errno::NODEV,
    )?;
    expect_errno(
        "fsopen(tmpfs, flags=0x2)",
        fsopen("tmpfs", FsOpenFlags::from_bits_retain(0x2)),
        Errno::INVAL,
    )?;

    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(tmpfs)")?;
    let unknown = fsconfig(
        fs.as_raw_fd(),
        FSCONFIG_SET_STRING,
        Some(c"kc_no_such_key"),
        Some(c"1"),
        0,
    );
    expect_errno("fsconfig(kc_no_such_key=1)", unknown, Errno::INVAL)?;
    let mut log = [0u8; 512];
    let n = rustix::io::read(&fs, &mut log).context("read the fs context log")?;
    let log = String::from_utf8_lossy(&log[..n]);
    ensure!(
        log.starts_with("e ") && log.contains("Unknown parameter 'kc_no_such_key'"),
        "fs context log: {log:?}"
    );
    expect_errno(
        "fsconfig(cmd=100)",
        fsconfig(fs.as_raw_fd(), 100, None, None, 0),
        Errno::OPNOTSUPP,
    )?;
    expect_errno(
        "fsconfig(FSCONFIG_SET_STRING, NULL key)",
        fsconfig(fs.as_raw_fd(), FSCONFIG_SET_STRING, None, Some(c"1"), 0),
        Errno::INVAL,
    )?;

    ok(
        "fsconfig(FSCONFIG_CMD_CREATE)",
        fsconfig(fs.as_raw_fd(), FSCONFIG_CMD_CREATE, None, None, 0),
    )?;
    expect_errno(
        "fsconfig(size=1m) after create",
        fsconfig(
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            Some(c"size"),
            Some(c"1m"),
            0,
        ),
        Errno::BUSY,
    )?;
    expect_errno(
        "second FSCONFIG_CMD_CREATE",
        fsconfig(fs.as_raw_fd(), FSCONFIG_CMD_CREATE, None, None, 0),
        Errno::BUSY,
    )
}

// ---------------------------------------------------------------------------------------
// Keys

pub use crate::container::keyctl::{add_key, read as read_key, KEY_SPEC_SESSION_KEYRING};

/// `request_key(type, desc, NULL, 0)`: a search, no upcall.
pub fn request_key(ty: &CStr, desc: &CStr) -> Result<i32, Errno> {
    crate::container::keyctl::request_key(ty, desc, None, 0)
}

/// A fresh anonymous session keyring, so tests never see each other's keys.
pub fn join_new_session_keyring() -> Result<i32> {
    ok(
        "keyctl(KEYCTL_JOIN_SESSION_KEYRING)",
        crate::container::keyctl::join_new_session_keyring(),
    )
}

/// add_key("user") to the session keyring; request_key finds the same serial by
/// description; KEYCTL_READ returns the payload.
pub fn keys_request_key() -> Result<()> {
    join_new_session_keyring()?;
    let payload = b"kcontainer payload";
    let serial = ok(
        "add_key(user)",
        add_key(
            c"user",
            c"kcontainer:test",
            payload,
            KEY_SPEC_SESSION_KEYRING,
        ),
    )?;
    ensure!(serial > 0, "add_key returned serial {serial}");
    let found = ok(
        "request_key(user, kcontainer:test)",
        request_key(c"user", c"kcontainer:test"),
    )?;
    ensure!(
        found == serial,
        "request_key found serial {found}, add_key made {serial}"
    );

    let got = ok("keyctl(KEYCTL_READ)", read_key(serial))?;
    let n = got.len();
    ensure!(
        n == payload.len(),
        "KEYCTL_READ returned length {n}, expected {}",
        payload.len()
    );
    ensure!(
        got == payload,
        "KEYCTL_READ returned {:?}",
        String::from_utf8_lossy(&got)
    );

    // Updating through add_key keeps the serial and replaces the payload.
    let again = ok(
        "add_key(user) again",
        add_key(c"user", c"kcontainer:test", b"v2", KEY_SPEC_SESSION_KEYRING),
    )?;
    ensure!(
        again == serial,
        "add_key of an existing description made serial {again}, not {serial}"
    );
    Ok(())
}

/// request_key of a missing key without callout info is ENOKEY; add_key of an unknown
/// type is ENODEV (request_key of one: ENOKEY); an empty description is EINVAL.
pub fn keys_errors() -> Result<()> {
    join_new_session_keyring()?;
    expect_errno(
        "request_key(user, kcontainer:missing)",
        request_key(c"user", c"kcontainer:missing"),
        Errno::NOKEY,
    )?;
    expect_errno(
        "add_key(kc_no_such_type)",
        add_key(c"kc_no_such_type", c"x", b"x", KEY_SPEC_SESSION_KEYRING),
        Errno::NODEV,
    )?;
    // request_key reports key_type_lookup()'s own error for an unknown type.
    expect_errno(
        "request_key(kc_no_such_type)",
        request_key(c"kc_no_such_type", c"x"),
        Errno::NOKEY,
    )?;
    expect_errno(
        "add_key(user, empty description)",
        add_key(c"user", c"", b"x", KEY_SPEC_SESSION_KEYRING),
        Errno::INVAL,
    )
}
