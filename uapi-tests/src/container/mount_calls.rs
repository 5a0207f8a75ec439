//! Raw wrappers of the mount API calls with the series' part 2 extensions (uapi.md §3
//! "Mounting from outside"): `FSCONFIG_SET_CONTAINER`, `move_mount()` to a container fd
//! and `MOVE_MOUNT_T_CONTAINER_ROOT`, a container fd as an idmapped mount's user
//! namespace. Shared by the suite and by `kc` (through `#[path]`), like `calls.rs`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::c_int;
use rustix::io::Errno;

use super::calls::{check, owned};
use crate::uapi::{FSCONFIG_SET_CONTAINER, MOVE_MOUNT_T_CONTAINER_ROOT};

pub const FSOPEN_CLOEXEC: u32 = 0x1;
pub const FSMOUNT_CLOEXEC: u32 = 0x1;
pub const FSPICK_CLOEXEC: u32 = 0x1;
pub const FSPICK_EMPTY_PATH: u32 = 0x8;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_CMD_CREATE: u32 = 6;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const OPEN_TREE_CLONE: u32 = 0x1;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

fn ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)`.
pub fn fsopen(fstype: &CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: a NUL-terminated string and an integer.
    owned(check(unsafe {
        libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC)
    }))
}

/// `fspick(dfd, path, FSPICK_CLOEXEC | flags)`.
pub fn fspick(dfd: RawFd, path: &CStr, flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: a NUL-terminated string and integers.
    owned(check(unsafe {
        libc::syscall(libc::SYS_fspick, dfd, path.as_ptr(), FSPICK_CLOEXEC | flags)
    }))
}

/// `fsconfig(fd, cmd, key, value, aux)`; `None` passes NULL.
pub fn fsconfig(
    fd: RawFd,
    cmd: u32,
    key: Option<&CStr>,
    value: Option<&CStr>,
    aux: c_int,
) -> Result<(), Errno> {
    // SAFETY: NULL or NUL-terminated strings, and integers.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fd, cmd, ptr(key), ptr(value), aux) })
        .map(drop)
}

/// `fsconfig(fs, FSCONFIG_SET_CONTAINER, NULL, NULL, cfd)`.
pub fn set_container(fs: &OwnedFd, cfd: RawFd) -> Result<(), Errno> {
    fsconfig(fs.as_raw_fd(), FSCONFIG_SET_CONTAINER, None, None, cfd)
}

/// `fsmount(fs, FSMOUNT_CLOEXEC, 0)`.
pub fn fsmount(fs: &OwnedFd) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments.
    owned(check(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0)
    }))
}

/// A detached mount of `fstype`, its superblock made in the namespaces of the container
/// `cfd` if given (FSCONFIG_SET_CONTAINER first), with string parameters `params`.
/// The errno names the step that failed.
pub fn new_mount(
    fstype: &CStr,
    cfd: Option<RawFd>,
    params: &[(&CStr, &CStr)],
) -> Result<OwnedFd, (&'static str, Errno)> {
    let fs = fsopen(fstype).map_err(|e| ("fsopen", e))?;
    if let Some(cfd) = cfd {
        set_container(&fs, cfd).map_err(|e| ("fsconfig(FSCONFIG_SET_CONTAINER)", e))?;
    }
    for (key, value) in params {
        fsconfig(
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            Some(key),
            Some(value),
            0,
        )
        .map_err(|e| ("fsconfig(FSCONFIG_SET_STRING)", e))?;
    }
    fsconfig(fs.as_raw_fd(), FSCONFIG_CMD_CREATE, None, None, 0)
        .map_err(|e| ("fsconfig(FSCONFIG_CMD_CREATE)", e))?;
    fsmount(&fs).map_err(|e| ("fsmount", e))
}

/// `move_mount(from, from_path, to, to_path, flags)`.
pub fn move_mount(
    from: RawFd,
    from_path: &CStr,
    to: RawFd,
    to_path: &CStr,
    flags: u32,
) -> Result<(), Errno> {
    // SAFETY: NUL-terminated strings and integers.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            from_path.as_ptr(),
            to,
            to_path.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Installs the detached mount `mfd` as the root of the container `cfd`:
/// `move_mount(mfd, "", cfd, "/", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_CONTAINER_ROOT)`.
pub fn mount_root(mfd: &OwnedFd, cfd: RawFd) -> Result<(), Errno> {
    move_mount(
        mfd.as_raw_fd(),
        c"",
        cfd,
        c"/",
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_CONTAINER_ROOT,
    )
}

/// Mounts the detached mount `mfd` at `path`, relative to the root of the container
/// `cfd`: `move_mount(mfd, "", cfd, path, MOVE_MOUNT_F_EMPTY_PATH)`.
pub fn mount_at(mfd: &OwnedFd, cfd: RawFd, path: &CStr) -> Result<(), Errno> {
    move_mount(mfd.as_raw_fd(), c"", cfd, path, MOVE_MOUNT_F_EMPTY_PATH)
}

/// `open_tree(dfd, path, OPEN_TREE_CLOEXEC | flags)`.
pub fn open_tree(dfd: RawFd, path: &CStr, flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: a NUL-terminated string and integers.
    owned(check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dfd,
            path.as_ptr(),
            flags | libc::O_CLOEXEC as u32,
        )
    }))
}

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Default)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {MOUNT_ATTR_IDMAP, userns_fd})`: idmaps the
/// detached mount `fd` with the user namespace of `userns_fd`, which may be a cfd.
pub fn idmap(fd: &OwnedFd, userns_fd: RawFd) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns_fd as u64,
        ..MountAttr::default()
    };
    // SAFETY: `attr` is a valid struct mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Gives the container `cfd` (an empty mount namespace) a tmpfs root made in its
/// namespaces and writes `files` (path relative to the root, contents, mode) into it
/// through the cfd, making their parent directories. The step that failed and its
/// errno otherwise.
pub fn tmpfs_root_with(cfd: &OwnedFd, files: &[(&str, &[u8], u32)]) -> Result<(), (String, Errno)> {
    use rustix::fs::{Mode, OFlags};
    let root = new_mount(c"tmpfs", Some(cfd.as_raw_fd()), &[(c"mode", c"0755")])
        .map_err(|(step, e)| (format!("{step} (tmpfs root)"), e))?;
    mount_root(&root, cfd.as_raw_fd())
        .map_err(|e| ("move_mount(T_CONTAINER_ROOT)".to_string(), e))?;
    for &(path, data, mode) in files {
        if let Some((dir, _)) = path.rsplit_once('/') {
            match rustix::fs::mkdirat(cfd, dir, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err((format!("mkdirat(cfd, {dir:?})"), e)),
            }
        }
        let fd = rustix::fs::openat(
            cfd,
            path,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| (format!("openat(cfd, {path:?})"), e))?;
        let mut rest = data;
        while !rest.is_empty() {
            let n = rustix::io::write(&fd, rest).map_err(|e| (format!("write({path:?})"), e))?;
            rest = &rest[n..];
        }
    }
    Ok(())
}
