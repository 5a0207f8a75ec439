//! The container fd as a handle (uapi.md §4): the ioctls on a cfd and clone3() with
//! `CLONE_INTO_CONTAINER`, with the numbers of `crate::uapi`. Shared by the suite and by
//! `kc` (through `#[path]`), so it needs only `libc`, `rustix` and a `uapi` module at the
//! crate root. A kernel without part 4 of the series answers the ioctls with ENOTTY and
//! clone3() with EINVAL.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_long, pid_t};
use rustix::io::Errno;

use crate::uapi::*;

fn check(ret: c_long) -> Result<c_long, Errno> {
    if ret == -1 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, cmd, arg)` for an integer or pointer `arg`.
///
/// # Safety
///
/// If `cmd` reads or writes through `arg`, `arg` must be valid for that.
pub unsafe fn ioctl(fd: BorrowedFd<'_>, cmd: libc::Ioctl, arg: usize) -> Result<c_long, Errno> {
    // SAFETY: the caller vouches for `arg` (see above); `fd` is open.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), cmd, arg) }.into())
}

/// `struct container_info` of `<linux/container.h>`, as CONTAINER_GET_INFO fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub mask: u64,
    pub id: u64,
    pub parent_id: u64,
    pub state: u32,
    pub flags: u32,
    pub owner_uid: u32,
    pub owner_gid: u32,
    pub nr_members: u32,
    pub init_pid: u32,
    pub exit_status: i32,
    pub spare: u32,
    pub supported_mask: u64,
}

const _: () = assert!(std::mem::size_of::<Info>() == CONTAINER_INFO_SIZE_VER0);

/// CONTAINER_GET_ID.
pub fn get_id(cfd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut id = 0u64;
    // SAFETY: CONTAINER_GET_ID writes one u64 to a valid pointer.
    unsafe { ioctl(cfd, CONTAINER_GET_ID, &mut id as *mut u64 as usize) }?;
    Ok(id)
}

/// CONTAINER_GET_INFO asking for every field this suite knows (the optional ones:
/// init's pid, the exit status, the supported mask).
pub fn get_info(cfd: BorrowedFd<'_>) -> Result<Info, Errno> {
    let mut info = Info {
        mask: CONTAINER_INFO_ID
            | CONTAINER_INFO_STATE
            | CONTAINER_INFO_OWNER
            | CONTAINER_INFO_INIT_PID
            | CONTAINER_INFO_EXIT
            | CONTAINER_INFO_SUPPORTED_MASK,
        ..Info::default()
    };
    // SAFETY: CONTAINER_GET_INFO reads and writes one `struct container_info`, whose
    // size its number encodes, through a valid pointer.
    unsafe { ioctl(cfd, CONTAINER_GET_INFO, &mut info as *mut Info as usize) }?;
    Ok(info)
}

/// CONTAINER_GET_INFO with a buffer of `size` bytes (the size goes into the ioctl number,
/// as for PIDFD_GET_INFO), `mask` in its first 8 bytes; the buffer afterwards.
pub fn get_info_sized(cfd: BorrowedFd<'_>, size: usize, mask: u64) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; size.max(8)];
    buf[..8].copy_from_slice(&mask.to_ne_bytes());
    // Replace the size field (bits 16..30) of the number.
    let cmd = (CONTAINER_GET_INFO & !(0x3fff << 16)) | (((size as libc::Ioctl) & 0x3fff) << 16);
    // SAFETY: the buffer holds at least `size` bytes (8 when `size` is smaller, for the
    // mask), and the kernel accesses at most `size`.
    unsafe { ioctl(cfd, cmd, buf.as_mut_ptr() as usize) }?;
    buf.truncate(size);
    Ok(buf)
}

/// CONTAINER_GET_INIT_PIDFD: a pidfd for the container's init.
pub fn get_init_pidfd(cfd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    get_init_pidfd_flags(cfd, 0)
}

/// CONTAINER_GET_INIT_PIDFD with pidfd_open()'s `flags` (0 or PIDFD_NONBLOCK).
pub fn get_init_pidfd_flags(cfd: BorrowedFd<'_>, flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: an integer argument.
    let fd = unsafe { ioctl(cfd, CONTAINER_GET_INIT_PIDFD, flags as usize) }?;
    // SAFETY: the ioctl returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A namespace of a container, for CONTAINER_GET_*_NAMESPACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    Cgroup,
    Ipc,
    Mnt,
    Net,
    Pid,
    User,
    Uts,
    Time,
}

impl Ns {
    pub const ALL: [Ns; 8] = [
        Ns::Cgroup,
        Ns::Ipc,
        Ns::Mnt,
        Ns::Net,
        Ns::Pid,
        Ns::User,
        Ns::Uts,
        Ns::Time,
    ];

    /// Its ioctl.
    pub fn ioctl(self) -> libc::Ioctl {
        match self {
            Ns::Cgroup => CONTAINER_GET_CGROUP_NAMESPACE,
            Ns::Ipc => CONTAINER_GET_IPC_NAMESPACE,
            Ns::Mnt => CONTAINER_GET_MNT_NAMESPACE,
            Ns::Net => CONTAINER_GET_NET_NAMESPACE,
            Ns::Pid => CONTAINER_GET_PID_NAMESPACE,
            Ns::User => CONTAINER_GET_USER_NAMESPACE,
            Ns::Uts => CONTAINER_GET_UTS_NAMESPACE,
            Ns::Time => CONTAINER_GET_TIME_NAMESPACE,
        }
    }

    /// Its name in /proc/PID/ns/.
    pub fn name(self) -> &'static str {
        match self {
            Ns::Cgroup => "cgroup",
            Ns::Ipc => "ipc",
            Ns::Mnt => "mnt",
            Ns::Net => "net",
            Ns::Pid => "pid",
            Ns::User => "user",
            Ns::Uts => "uts",
            Ns::Time => "time",
        }
    }

    /// Its CLONE_NEW* flag, as setns(2) takes it.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            Ns::Cgroup => libc::CLONE_NEWCGROUP,
            Ns::Ipc => libc::CLONE_NEWIPC,
            Ns::Mnt => libc::CLONE_NEWNS,
            Ns::Net => libc::CLONE_NEWNET,
            Ns::Pid => libc::CLONE_NEWPID,
            Ns::User => libc::CLONE_NEWUSER,
            Ns::Uts => libc::CLONE_NEWUTS,
            Ns::Time => 0x80, // CLONE_NEWTIME
        }
    }
}

/// CONTAINER_GET_*_NAMESPACE: an O_CLOEXEC nsfs fd of the container's namespace.
pub fn get_namespace(cfd: BorrowedFd<'_>, ns: Ns) -> Result<OwnedFd, Errno> {
    // SAFETY: an integer argument.
    let fd = unsafe { ioctl(cfd, ns.ioctl(), 0) }?;
    // SAFETY: the ioctl returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// CONTAINER_SET_NAMESPACE: before start, the namespace of `nsfd` replaces the
/// container's of its type.
pub fn set_namespace(cfd: BorrowedFd<'_>, nsfd: RawFd) -> Result<(), Errno> {
    // SAFETY: an integer argument (an fd number, which the kernel looks up).
    unsafe { ioctl(cfd, CONTAINER_SET_NAMESPACE, nsfd as usize) }.map(drop)
}

/// CONTAINER_SET_CGROUP: before start, the cgroup2 directory `dirfd` is where init
/// will be forked.
pub fn set_cgroup(cfd: BorrowedFd<'_>, dirfd: RawFd) -> Result<(), Errno> {
    // SAFETY: an integer argument (an fd number, which the kernel looks up).
    unsafe { ioctl(cfd, CONTAINER_SET_CGROUP, dirfd as usize) }.map(drop)
}

/// `struct clone_args` of `<linux/sched.h>` up to CLONE_ARGS_SIZE_VER3.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
    pub container_fd: u64,
}

const _: () = assert!(std::mem::size_of::<CloneArgs>() == CLONE_ARGS_SIZE_VER3);

/// `clone3(args, size)` for a fork (no CLONE_VM): the child's pid in the caller, 0 in
/// the child. `size` may be smaller or larger than `CloneArgs` (a larger one is padded
/// with `tail`), to test the size rules.
///
/// # Safety
///
/// Like `fork()` without libc's fork handlers: the child of a multi-threaded caller may
/// only make async-signal-safe calls. Pointers in `args` must be valid as clone3()
/// uses them, and `args.flags` must not share the address space (no CLONE_VM).
pub unsafe fn clone3(args: &CloneArgs, size: usize, tail: u8) -> Result<pid_t, Errno> {
    let mut buf = vec![tail; size.max(std::mem::size_of::<CloneArgs>())];
    // SAFETY: `buf` has room for a `CloneArgs`; unaligned write since a Vec<u8> is.
    unsafe { (buf.as_mut_ptr() as *mut CloneArgs).write_unaligned(*args) };
    // The kernel requires 8-byte alignment of nothing here: it copies the bytes.
    // SAFETY: clone3 reads `size` bytes of `buf` and what the flags point it to (the
    // caller's promise); the child is a fork (the caller's promise).
    check(unsafe { libc::syscall(libc::SYS_clone3, buf.as_ptr(), size) }).map(|p| p as pid_t)
}

/// `clone3()` of the init of `cfd` with CLONE_INTO_CONTAINER plus `flags`.
///
/// # Safety
///
/// As [`clone3`].
pub unsafe fn clone3_into(cfd: BorrowedFd<'_>, mut args: CloneArgs) -> Result<pid_t, Errno> {
    args.flags |= CLONE_INTO_CONTAINER;
    args.container_fd = cfd.as_raw_fd() as u64;
    // SAFETY: the caller's promises (see above).
    unsafe { clone3(&args, std::mem::size_of::<CloneArgs>(), 0) }
}
