//! container_create (uapi.md §3): arguments, the returned fd, privilege rules.

use std::os::fd::AsRawFd;

use anyhow::{ensure, Context, Result};

use super::calls::{container_create, container_create_raw};
use super::helpers::{self as h, Call, Proc, NOBODY};
use crate::sys::{self, expect_errno, ok, Errno};
use crate::uapi::*;

/// Every flag that asks for a new namespace, with the clone flag unshare(2) uses for it.
const NEW_NS_FLAGS: &[(&str, u32, libc::c_int)] = &[
    ("NEW_FS_NS", CONTAINER_NEW_FS_NS, libc::CLONE_NEWNS),
    (
        "NEW_EMPTY_FS_NS",
        CONTAINER_NEW_EMPTY_FS_NS,
        libc::CLONE_NEWNS,
    ),
    (
        "NEW_CGROUP_NS",
        CONTAINER_NEW_CGROUP_NS,
        libc::CLONE_NEWCGROUP,
    ),
    ("NEW_UTS_NS", CONTAINER_NEW_UTS_NS, libc::CLONE_NEWUTS),
    ("NEW_IPC_NS", CONTAINER_NEW_IPC_NS, libc::CLONE_NEWIPC),
    ("NEW_USER_NS", CONTAINER_NEW_USER_NS, libc::CLONE_NEWUSER),
    ("NEW_PID_NS", CONTAINER_NEW_PID_NS, libc::CLONE_NEWPID),
    ("NEW_NET_NS", CONTAINER_NEW_NET_NS, libc::CLONE_NEWNET),
];

/// Every defined flag bit.
const ALL_FLAGS: u32 = CONTAINER_NEW_FS_NS
    | CONTAINER_NEW_EMPTY_FS_NS
    | CONTAINER_NEW_CGROUP_NS
    | CONTAINER_NEW_UTS_NS
    | CONTAINER_NEW_IPC_NS
    | CONTAINER_NEW_USER_NS
    | CONTAINER_NEW_PID_NS
    | CONTAINER_NEW_NET_NS
    | CONTAINER_KILL_ON_CLOSE
    | CONTAINER_FD_CLOEXEC;

/// "abc" without a NUL, at the very end of a mapped page followed by an unmapped one.
struct Unterminated(*mut libc::c_void);

impl Unterminated {
    fn as_ptr(&self) -> *const libc::c_char {
        // SAFETY: stays inside the first (mapped) page of the mapping.
        unsafe { self.0.cast::<libc::c_char>().add(4096 - 3) }
    }
}

impl Drop for Unterminated {
    fn drop(&mut self) {
        // SAFETY: unmaps the page this value mapped.
        unsafe { libc::munmap(self.0, 4096) };
    }
}

fn unterminated_name() -> Result<Unterminated> {
    // SAFETY: a new anonymous mapping of two pages; the second is unmapped again and
    // only the last three bytes of the first are written.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            2 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            anyhow::bail!("mmap: {}", sys::errno_name(sys::last_errno()));
        }
        libc::munmap(p.cast::<u8>().add(4096).cast(), 4096);
        let name = Unterminated(p);
        std::ptr::copy_nonoverlapping(b"abc".as_ptr(), name.as_ptr() as *mut u8, 3);
        Ok(name)
    }
}

/// NULL, empty and "a/b" names, unknown flag bits, non-zero spares and NEW_FS_NS with
/// NEW_EMPTY_FS_NS are EINVAL; an unmapped name pointer, or a name running into an
/// unmapped page, EFAULT; a 24-byte name
/// ENAMETOOLONG while 23 bytes and 1 byte are fine.
pub fn bad_args() -> Result<()> {
    h::require(&[Call::Create])?;
    expect_errno(
        "container_create(NULL)",
        container_create_raw(std::ptr::null(), 0, [0; 3]),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_create(\"\")",
        container_create(c"", 0),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_create(\"a/b\")",
        container_create(c"a/b", 0),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_create(\"/\")",
        container_create(c"/", 0),
        Errno::INVAL,
    )?;
    let bad_ptr = 8 as *const libc::c_char; // in the never-mapped first page
    expect_errno(
        "container_create(bad pointer)",
        container_create_raw(bad_ptr, 0, [0; 3]),
        Errno::FAULT,
    )?;

    expect_errno(
        "container_create(name running into an unmapped page)",
        container_create_raw(unterminated_name()?.as_ptr(), 0, [0; 3]),
        Errno::FAULT,
    )?;

    ensure!(
        ALL_FLAGS == 0x3ff,
        "flag bits are {ALL_FLAGS:#x}, uapi.md has 0x3ff"
    );
    for flags in [0x400, 0x800, 0x8000_0000, !ALL_FLAGS, u32::MAX] {
        expect_errno(
            &format!("container_create(flags={flags:#x})"),
            container_create(c"kc-flags", flags),
            Errno::INVAL,
        )?;
    }
    expect_errno(
        "container_create(NEW_FS_NS|NEW_EMPTY_FS_NS)",
        container_create(c"kc-both", CONTAINER_NEW_FS_NS | CONTAINER_NEW_EMPTY_FS_NS),
        Errno::INVAL,
    )?;
    for i in 0..3 {
        for value in [1, libc::c_ulong::MAX] {
            let mut spare = [0; 3];
            spare[i] = value;
            expect_errno(
                &format!("container_create(spare{}={value:#x})", i + 3),
                container_create_raw(c"kc-spare".as_ptr(), 0, spare),
                Errno::INVAL,
            )?;
        }
    }

    expect_errno(
        "container_create(24-byte name)",
        container_create(c"abcdefghijklmnopqrstuvwx", 0),
        Errno::NAMETOOLONG,
    )?;
    expect_errno(
        "container_create(4096-byte name)",
        container_create(&std::ffi::CString::new("n".repeat(4096))?, 0),
        Errno::NAMETOOLONG,
    )?;
    ok(
        "container_create(23-byte name)",
        container_create(c"abcdefghijklmnopqrstuvw", 0),
    )?;
    ok("container_create(\"x\")", container_create(c"x", 0))?;
    Ok(())
}

/// The fd is an anon inode `anon_inode:[container]`, not close-on-exec by default;
/// CONTAINER_FD_CLOEXEC sets FD_CLOEXEC and CONTAINER_CLOSE_ON_EXEC is the same bit;
/// names need not be unique (two "kc-same" containers get distinct ids).
pub fn anon_fd() -> Result<()> {
    h::require(&[Call::Create])?;
    let cfd = h::create(c"kc-anon", 0)?;
    let link = rustix::fs::readlink(format!("/proc/self/fd/{}", cfd.as_raw_fd()), Vec::new())
        .context("readlink /proc/self/fd/<cfd>")?;
    let link = link.to_string_lossy();
    ensure!(
        link == "anon_inode:[container]",
        "container fd links to {link:?}, expected \"anon_inode:[container]\""
    );
    let fd_flags = rustix::io::fcntl_getfd(&cfd).context("F_GETFD")?;
    ensure!(
        fd_flags.is_empty(),
        "container fd without CONTAINER_FD_CLOEXEC has fd flags {fd_flags:?}"
    );

    ensure!(
        CONTAINER_CLOSE_ON_EXEC == CONTAINER_FD_CLOEXEC && CONTAINER_FD_CLOEXEC == 0x200,
        "CONTAINER_CLOSE_ON_EXEC {CONTAINER_CLOSE_ON_EXEC:#x}, CONTAINER_FD_CLOEXEC \
         {CONTAINER_FD_CLOEXEC:#x}: expected both 0x200"
    );
    for (what, flag) in [
        ("CONTAINER_FD_CLOEXEC", CONTAINER_FD_CLOEXEC),
        ("CONTAINER_CLOSE_ON_EXEC", CONTAINER_CLOSE_ON_EXEC),
    ] {
        let fd = h::create(c"kc-cloexec", flag)?;
        let fd_flags = rustix::io::fcntl_getfd(&fd).context("F_GETFD")?;
        ensure!(
            fd_flags == rustix::io::FdFlags::CLOEXEC,
            "container_create({what}): fd flags {fd_flags:?}, expected CLOEXEC"
        );
    }

    let a = h::create(c"kc-same", 0)?;
    let b = h::create(c"kc-same", 0)?;
    let rows = h::proc_rows()?;
    let same: Vec<u64> = rows
        .iter()
        .filter(|r| r.name == "kc-same")
        .map(|r| r.id)
        .collect();
    ensure!(
        same.len() == 2 && same[0] != same[1],
        "two containers named \"kc-same\": expected two rows with distinct ids, got {same:?}:\n{}",
        h::render_all(&rows)
    );
    drop((a, b));
    Ok(())
}

/// As root, every valid flag combination is accepted: each flag alone, and all of them
/// but NEW_EMPTY_FS_NS together.
pub fn all_flags() -> Result<()> {
    h::require(&[Call::Create])?;
    for &(what, flag, _) in NEW_NS_FLAGS {
        ok(
            &format!("container_create(CONTAINER_{what})"),
            container_create(c"kc-flag", flag),
        )?;
    }
    for (what, flag) in [
        ("KILL_ON_CLOSE", CONTAINER_KILL_ON_CLOSE),
        ("FD_CLOEXEC", CONTAINER_FD_CLOEXEC),
    ] {
        ok(
            &format!("container_create(CONTAINER_{what})"),
            container_create(c"kc-flag", flag),
        )?;
    }
    let all = ALL_FLAGS & !CONTAINER_NEW_EMPTY_FS_NS;
    ok(
        &format!("container_create({all:#x})"),
        container_create(c"kc-all", all),
    )?;
    Ok(())
}

/// unshare(flags) in a throwaway child: its errno, or None when it succeeded.
fn unshare_result(flags: libc::c_int) -> Result<Option<Errno>> {
    let mut child = Proc::fork("unshare probe", move || {
        // SAFETY: unshare in a child that exits right after.
        let r = unsafe { libc::unshare(flags) };
        Ok(if r == 0 {
            0
        } else {
            sys::last_errno().raw_os_error()
        })
    })?;
    let status = child.wait()?;
    ensure!(
        libc::WIFEXITED(status),
        "unshare probe: {}",
        sys::describe_status(status)
    );
    Ok(match libc::WEXITSTATUS(status) {
        0 => None,
        e => Some(Errno::from_raw_os_error(e)),
    })
}

/// As uid 65534 without capabilities, every NEW_*_NS flag alone is EPERM exactly where
/// unshare(2) of the same namespace is EPERM; flags 0, KILL_ON_CLOSE and FD_CLOEXEC
/// need no privilege.
pub fn unprivileged_eperm() -> Result<()> {
    h::require(&[Call::Create])?;
    let mut child = Proc::fork("unprivileged child", || {
        h::become_user(NOBODY)?;
        for &(what, flag, clone) in NEW_NS_FLAGS {
            if flag == CONTAINER_NEW_USER_NS {
                continue;
            }
            let unshared = unshare_result(clone)?;
            ensure!(
                unshared == Some(Errno::PERM),
                "unprivileged unshare for {what}: expected EPERM, got {unshared:?}"
            );
            expect_errno(
                &format!("unprivileged container_create(CONTAINER_{what})"),
                container_create(c"kc-unpriv", flag),
                Errno::PERM,
            )?;
        }
        for (what, flags) in [
            ("0", 0),
            ("KILL_ON_CLOSE", CONTAINER_KILL_ON_CLOSE),
            ("FD_CLOEXEC", CONTAINER_FD_CLOEXEC),
        ] {
            ok(
                &format!("unprivileged container_create({what})"),
                container_create(c"kc-unpriv", flags),
            )?;
        }
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// As uid 65534 without capabilities, NEW_USER_NS is allowed alone and with every other
/// NEW flag (alone and all together) wherever unshare(CLONE_NEWUSER|...) is, but
/// NEW_CGROUP_NS stays EPERM even with it; the init of such a container is uid 0 with
/// CAP_SYS_ADMIN in its namespaces (sethostname in its NEW_UTS_NS works).
pub fn unprivileged_userns() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let mut child = Proc::fork("unprivileged child", || {
        h::become_user(NOBODY)?;
        let user = CONTAINER_NEW_USER_NS;
        let mut together = user;
        for &(what, flag, clone) in NEW_NS_FLAGS {
            let (flag, clone) = (flag | user, clone | libc::CLONE_NEWUSER);
            let unshared = unshare_result(clone)?;
            ensure!(
                unshared.is_none(),
                "unprivileged unshare(CLONE_NEWUSER|...) for {what}: {unshared:?}"
            );
            let what = format!("unprivileged container_create(NEW_USER_NS|{what})");
            if flag & CONTAINER_NEW_CGROUP_NS != 0 {
                expect_errno(&what, container_create(c"kc-unpriv", flag), Errno::PERM)?;
            } else {
                ok(&what, container_create(c"kc-unpriv", flag))?;
                if flag & CONTAINER_NEW_EMPTY_FS_NS == 0 {
                    together |= flag;
                }
            }
        }
        let cfd = ok(
            &format!("unprivileged container_create({together:#x})"),
            container_create(c"kc-unpriv-all", together),
        )?;

        let report = h::Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            let ids = [
                rustix::process::getuid().as_raw(),
                rustix::process::geteuid().as_raw(),
                rustix::process::getgid().as_raw(),
            ];
            ensure!(ids == [0, 0, 0], "init's uid, euid, gid: {ids:?}");
            rustix::system::sethostname(b"kc-unpriv").context("sethostname in the container")?;
            report.send_str(&sys::hostname()?)?;
            Ok(0)
        })?;
        let name = report.recv_str(Some(&init))?;
        ensure!(
            name == "kc-unpriv",
            "init's hostname after sethostname: {name:?}"
        );
        init.wait_exit(0)?;
        Ok(0)
    })?;
    child.wait_exit(0)
}
