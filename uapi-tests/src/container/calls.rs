//! Raw wrappers of the series' five system calls (uapi.md §1), with the numbers of
//! `crate::uapi`. Shared by the suite and by `kc` (through `#[path]`), so it needs only
//! `libc`, `rustix` and a `uapi` module at the crate root.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::{c_char, c_int, c_long, c_ulong, pid_t};
use rustix::io::Errno;

use crate::uapi::{
    __NR_container_create, __NR_container_kill, __NR_container_socket, __NR_container_wait,
    __NR_fork_into_container,
};

pub fn check(ret: c_long) -> Result<c_long, Errno> {
    if ret == -1 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(ret)
    }
}

pub fn owned(ret: Result<c_long, Errno>) -> Result<OwnedFd, Errno> {
    // SAFETY: a successful fd-returning syscall gives a new fd that nothing else owns.
    ret.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `container_create(name, flags, spare3, spare4, spare5)` with a raw name pointer, so
/// tests can pass NULL or an unmapped address (the kernel validates it: EINVAL, EFAULT).
pub fn container_create_raw(
    name: *const c_char,
    flags: u32,
    spare: [c_ulong; 3],
) -> Result<OwnedFd, Errno> {
    // SAFETY: the kernel only reads the name through copy_from_user; the rest are integers.
    owned(check(unsafe {
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

/// `container_create(name, flags, 0, 0, 0)`.
pub fn container_create(name: &CStr, flags: u32) -> Result<OwnedFd, Errno> {
    container_create_raw(name.as_ptr(), flags, [0; 3])
}

/// `fork_into_container(cfd)`: the child's pid in the caller, 0 in the child.
///
/// # Safety
///
/// Like `fork()` without libc's fork handlers: the child of a multi-threaded caller may
/// only make async-signal-safe calls. In a single-threaded caller any code is fine.
pub unsafe fn fork_into_container(cfd: RawFd) -> Result<pid_t, Errno> {
    // SAFETY: an integer argument; the caller accepts a forked child (see above).
    check(unsafe { libc::syscall(__NR_fork_into_container, cfd) }).map(|pid| pid as pid_t)
}

/// `container_socket(cfd, domain, type, protocol)`.
pub fn container_socket(
    cfd: RawFd,
    domain: c_int,
    ty: c_int,
    protocol: c_int,
) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments.
    owned(check(unsafe {
        libc::syscall(__NR_container_socket, cfd, domain, ty, protocol)
    }))
}

/// `container_kill(cfd, initonly, sig)`; the raw return value (0) on success.
pub fn container_kill(cfd: RawFd, initonly: c_int, sig: c_int) -> Result<c_long, Errno> {
    // SAFETY: integer arguments.
    check(unsafe { libc::syscall(__NR_container_kill, cfd, initonly, sig) })
}

/// `container_wait(cfd, wstatus, options, ru)`; `None` passes NULL. The raw return value
/// (0) on success.
pub fn container_wait(
    cfd: RawFd,
    wstatus: Option<&mut c_int>,
    options: u32,
    ru: Option<&mut libc::rusage>,
) -> Result<c_long, Errno> {
    let wstatus = wstatus.map_or(std::ptr::null_mut(), |w| w as *mut c_int);
    let ru = ru.map_or(std::ptr::null_mut(), |r| r as *mut libc::rusage);
    // SAFETY: both pointers are NULL or valid for writes of their type.
    check(unsafe { libc::syscall(__NR_container_wait, cfd, wstatus, options, ru) })
}
