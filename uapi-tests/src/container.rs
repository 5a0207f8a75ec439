//! The series' system calls (uapi.md §1–3). On a kernel without them every call is
//! ENOSYS and the tests SKIP; with them, they pin the contract's errors.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, ensure, Context, Result};
use libc::{c_int, c_long, c_ulong};

use crate::sys::{self, check, expect_errno, ok, owned_fd, skip, Errno};
use crate::uapi::*;

fn container_create(
    name: *const libc::c_char,
    flags: u32,
    spare: [c_ulong; 3],
) -> Result<OwnedFd, Errno> {
    // SAFETY: the kernel validates the name pointer (EFAULT); the rest are integers.
    owned_fd(check(unsafe {
        libc::syscall(
            __NR_container_create,
            name,
            flags,
            spare[0],
            spare[1],
            spare[2],
        )
    }))
}

fn create(name: &CStr, flags: u32) -> Result<OwnedFd, Errno> {
    container_create(name.as_ptr(), flags, [0; 3])
}

/// fork_into_container for calls expected to fail: if one wrongly succeeds, the child
/// leaves at once and the parent reaps it, so only the parent reports.
fn fork_into_container(cfd: RawFd) -> Result<libc::pid_t, Errno> {
    // SAFETY: integer argument; a child created by mistake only calls _exit.
    let r = check(unsafe { libc::syscall(__NR_fork_into_container, cfd) });
    match r {
        // SAFETY: leaves the wrongly created child without touching the test's state.
        Ok(0) => unsafe { libc::_exit(0) },
        Ok(pid) => {
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
            Ok(pid as libc::pid_t)
        }
        Err(e) => Err(e),
    }
}

fn container_socket(
    cfd: RawFd,
    domain: c_int,
    ty: c_int,
    protocol: c_int,
) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments.
    owned_fd(check(unsafe {
        libc::syscall(__NR_container_socket, cfd, domain, ty, protocol)
    }))
}

fn container_kill(cfd: RawFd, initonly: c_int, sig: c_int) -> Result<c_long, Errno> {
    // SAFETY: integer arguments.
    check(unsafe { libc::syscall(__NR_container_kill, cfd, initonly, sig) })
}

fn container_wait(cfd: RawFd, options: u32) -> Result<(c_long, c_int), Errno> {
    let mut status: c_int = -1;
    // SAFETY: status is a valid out pointer; NULL rusage is allowed.
    let r = check(unsafe {
        libc::syscall(
            __NR_container_wait,
            cfd,
            &mut status as *mut c_int,
            options,
            std::ptr::null_mut::<libc::rusage>(),
        )
    });
    r.map(|r| (r, status))
}

/// Calls `f`, the first use of syscall `call` in a test, and SKIPs when this kernel does
/// not implement it (ENOSYS), or when the number is only the contract's and the kernel is
/// not the 6.12 the contract numbers are for (6.13+ use 463.. for the *xattrat calls).
fn probe<T>(call: &str, f: impl FnOnce() -> Result<T, Errno>) -> Result<Result<T, Errno>> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let base_612 =
        release == "6.12" || release.starts_with("6.12.") || release.starts_with("6.12-");
    if !base_612 && !crate::uapi::from_headers(&format!("__NR_{call}")) {
        return Err(skip(format!(
            "{call}: number from uapi.md is for 6.12, kernel {release} may use it for another syscall"
        )));
    }
    match f() {
        Err(Errno::NOSYS) => Err(skip(format!(
            "{call}: ENOSYS (kernel without CONFIG_CONTAINERS)"
        ))),
        r => Ok(r),
    }
}

/// A new container with no NEW namespaces (needs no privilege) and no init.
fn fresh_container(name: &CStr) -> Result<OwnedFd> {
    let r = probe("container_create", || create(name, 0))?;
    ok(&format!("container_create({name:?}, 0)"), r)
}

fn dev_null() -> Result<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("open /dev/null")
}

/// container_create argument checks: NULL/empty/"a/b" names, unknown flags, non-zero
/// spares and NEW_FS_NS with NEW_EMPTY_FS_NS are EINVAL; a bad pointer EFAULT; 24 bytes
/// ENAMETOOLONG while 23 are fine.
pub fn create_bad_args() -> Result<()> {
    let r = probe("container_create", || {
        container_create(std::ptr::null(), 0, [0; 3])
    })?;
    expect_errno("container_create(NULL)", r, Errno::INVAL)?;

    expect_errno("container_create(\"\")", create(c"", 0), Errno::INVAL)?;
    expect_errno("container_create(\"a/b\")", create(c"a/b", 0), Errno::INVAL)?;
    let bad_ptr = 8 as *const libc::c_char; // in the never-mapped first page
    expect_errno(
        "container_create(bad pointer)",
        container_create(bad_ptr, 0, [0; 3]),
        Errno::FAULT,
    )?;

    for flags in [0x8000_0000, 0x400, !0x3ff] {
        expect_errno(
            &format!("container_create(flags={flags:#x})"),
            create(c"kc-flags", flags),
            Errno::INVAL,
        )?;
    }
    let both = CONTAINER_NEW_FS_NS | CONTAINER_NEW_EMPTY_FS_NS;
    expect_errno(
        "container_create(NEW_FS_NS|NEW_EMPTY_FS_NS)",
        create(c"kc-both", both),
        Errno::INVAL,
    )?;
    for i in 0..3 {
        let mut spare = [0; 3];
        spare[i] = 1;
        let what = format!("container_create(spare{}=1)", i + 3);
        expect_errno(
            &what,
            container_create(c"kc-spare".as_ptr(), 0, spare),
            Errno::INVAL,
        )?;
    }

    let name24 = c"abcdefghijklmnopqrstuvwx";
    let name23 = c"abcdefghijklmnopqrstuvw";
    expect_errno(
        "container_create(24-byte name)",
        create(name24, 0),
        Errno::NAMETOOLONG,
    )?;
    ok("container_create(23-byte name)", create(name23, 0))?;
    Ok(())
}

/// A valid container_create returns an anon inode fd `anon_inode:[container]`, not
/// close-on-exec unless CONTAINER_FD_CLOEXEC; poll shows nothing before the container runs.
pub fn create_anon_fd() -> Result<()> {
    let cfd = fresh_container(c"kc-anon")?;
    let link = rustix::fs::readlink(format!("/proc/self/fd/{}", cfd.as_raw_fd()), Vec::new())
        .context("readlink /proc/self/fd/<cfd>")?;
    let link = link.to_string_lossy();
    ensure!(
        link == "anon_inode:[container]",
        "container fd links to {link:?}"
    );
    let fd_flags = rustix::io::fcntl_getfd(&cfd).context("F_GETFD")?;
    ensure!(
        fd_flags.is_empty(),
        "container fd without CONTAINER_FD_CLOEXEC has flags {fd_flags:?}"
    );
    let revents = sys::poll_one(&cfd, libc::POLLIN, 0)?;
    ensure!(
        revents == 0,
        "poll on a container that never started: revents {revents:#x}, expected 0"
    );

    ensure!(
        CONTAINER_CLOSE_ON_EXEC == CONTAINER_FD_CLOEXEC,
        "CONTAINER_CLOSE_ON_EXEC is not an alias"
    );
    let cloexec = ok(
        "container_create(CONTAINER_FD_CLOEXEC)",
        create(c"kc-cloexec", CONTAINER_FD_CLOEXEC),
    )?;
    let fd_flags = rustix::io::fcntl_getfd(&cloexec).context("F_GETFD")?;
    ensure!(
        fd_flags.contains(rustix::io::FdFlags::CLOEXEC),
        "CONTAINER_FD_CLOEXEC fd has flags {fd_flags:?}"
    );
    Ok(())
}

/// fork_into_container: EBADF for a closed fd, EINVAL for a file that is not a container.
pub fn fork_into_container_bad_fd() -> Result<()> {
    let r = probe("fork_into_container", || fork_into_container(-1))?;
    expect_errno("fork_into_container(-1)", r, Errno::BADF)?;
    let null = dev_null()?;
    expect_errno(
        "fork_into_container(/dev/null)",
        fork_into_container(null.as_raw_fd()),
        Errno::INVAL,
    )
}

/// container_socket: EBADF for a closed fd, EINVAL for a non-container; on a container,
/// an AF_UNIX socket honouring SOCK_CLOEXEC, and socket(2)'s own error for a bad type.
pub fn socket_bad_fd() -> Result<()> {
    let r = probe("container_socket", || {
        container_socket(-1, libc::AF_UNIX, libc::SOCK_STREAM, 0)
    })?;
    expect_errno("container_socket(-1, AF_UNIX, SOCK_STREAM)", r, Errno::BADF)?;
    let null = dev_null()?;
    let r = container_socket(null.as_raw_fd(), libc::AF_UNIX, libc::SOCK_STREAM, 0);
    expect_errno("container_socket(/dev/null)", r, Errno::INVAL)?;

    let cfd = fresh_container(c"kc-socket")?;
    let ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    let sock = ok(
        "container_socket(cfd, AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC)",
        container_socket(cfd.as_raw_fd(), libc::AF_UNIX, ty, 0),
    )?;
    let domain = rustix::net::sockopt::socket_domain(&sock).context("getsockopt(SO_DOMAIN)")?;
    ensure!(
        domain == rustix::net::AddressFamily::UNIX,
        "socket domain is {domain:?}"
    );
    let fd_flags = rustix::io::fcntl_getfd(&sock).context("F_GETFD")?;
    ensure!(
        fd_flags.contains(rustix::io::FdFlags::CLOEXEC),
        "SOCK_CLOEXEC ignored: flags {fd_flags:?}"
    );

    // A bad type fails as socket(2) fails.
    // SAFETY: plain socket(2).
    let plain = check(unsafe { libc::socket(libc::AF_UNIX, 99, 0) } as c_long);
    // SAFETY: closes the fd socket(2) just returned, should it succeed.
    let Err(want) = plain.map(|fd| unsafe { libc::close(fd as c_int) }) else {
        bail!("socket(AF_UNIX, 99) succeeded");
    };
    let r = container_socket(cfd.as_raw_fd(), libc::AF_UNIX, 99, 0);
    expect_errno("container_socket(cfd, AF_UNIX, type 99)", r, want)
}

/// container_kill: EBADF/EINVAL for bad fds; initonly other than 0/1 and invalid signals
/// are EINVAL; any signal to a container with no init is ESRCH.
pub fn kill_bad_args() -> Result<()> {
    let r = probe("container_kill", || container_kill(-1, 0, 0))?;
    expect_errno("container_kill(-1, 0, 0)", r, Errno::BADF)?;
    let null = dev_null()?;
    expect_errno(
        "container_kill(/dev/null, 0, 0)",
        container_kill(null.as_raw_fd(), 0, 0),
        Errno::INVAL,
    )?;

    let cfd = fresh_container(c"kc-kill")?;
    let fd = cfd.as_raw_fd();
    expect_errno(
        "container_kill(cfd, initonly=2, 0)",
        container_kill(fd, 2, 0),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_kill(cfd, 0, sig=1000)",
        container_kill(fd, 0, 1000),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_kill(cfd, 0, sig=-1)",
        container_kill(fd, 0, -1),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_kill(no init, 0, 0)",
        container_kill(fd, 0, 0),
        Errno::SRCH,
    )?;
    expect_errno(
        "container_kill(no init, 1, SIGTERM)",
        container_kill(fd, 1, libc::SIGTERM),
        Errno::SRCH,
    )
}

/// container_wait: EBADF/EINVAL for bad fds; options beyond WNOHANG EINVAL; waiting on
/// a container whose init never started is ECHILD.
pub fn wait_bad_args() -> Result<()> {
    let r = probe("container_wait", || container_wait(-1, 0))?;
    expect_errno("container_wait(-1, 0)", r, Errno::BADF)?;
    // SAFETY: NULL wstatus and rusage are allowed.
    let null_ptrs = check(unsafe {
        libc::syscall(
            __NR_container_wait,
            -1,
            std::ptr::null_mut::<c_int>(),
            0,
            std::ptr::null_mut::<libc::rusage>(),
        )
    });
    expect_errno("container_wait(-1, NULL, 0, NULL)", null_ptrs, Errno::BADF)?;
    let null = dev_null()?;
    expect_errno(
        "container_wait(/dev/null)",
        container_wait(null.as_raw_fd(), 0),
        Errno::INVAL,
    )?;

    let cfd = fresh_container(c"kc-wait")?;
    let fd = cfd.as_raw_fd();
    expect_errno(
        "container_wait(options=0x80000000)",
        container_wait(fd, 0x8000_0000),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_wait(options=WUNTRACED)",
        container_wait(fd, libc::WUNTRACED as u32),
        Errno::INVAL,
    )?;
    expect_errno(
        "container_wait(no init ever started)",
        container_wait(fd, 0),
        Errno::CHILD,
    )
}
