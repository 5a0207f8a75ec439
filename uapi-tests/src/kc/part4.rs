//! Part 4 of the series (uapi.md §4): the cfd's ioctls and its fdinfo lines, as kc
//! uses them (`kc ps --json`, `kc exec`, `kc keyd` without `--init`).
//!
//! The ioctls are a stand-in with the API of the suite's shared
//! `container/ioctl.rs` (`Info`, `get_id`, `get_info`, `get_init_pidfd`, `Ns`,
//! `get_namespace`), which is not on this branch yet: every call answers ENOTTY, as a
//! kernel without part 4 does. When `container/ioctl.rs` is merged, replace the
//! stand-in with `#[path = "../container/ioctl.rs"] mod ioctl;` and `pub use ioctl::*`.
//! The fdinfo lines are read for real (a kernel without part 4 has none).

#![allow(dead_code)]

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;

/// What a failed part-4 call means on a kernel without it.
pub const NEEDS_PART4: &str =
    "needs part 4 of the series (CONTAINER_GET_INFO and the cfd ioctls); \
                               ENOTTY means this kernel (or this kc) does not have it";

/// CONTAINER_GET_INFO's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
}

/// The namespaces CONTAINER_GET_*_NAMESPACE hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// CONTAINER_GET_ID.
pub fn get_id(_cfd: BorrowedFd<'_>) -> Result<u64, Errno> {
    Err(Errno::NOTTY)
}

/// CONTAINER_GET_INFO.
pub fn get_info(_cfd: BorrowedFd<'_>) -> Result<Info, Errno> {
    Err(Errno::NOTTY)
}

/// CONTAINER_GET_INIT_PIDFD.
pub fn get_init_pidfd(_cfd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    Err(Errno::NOTTY)
}

/// CONTAINER_GET_*_NAMESPACE.
pub fn get_namespace(_cfd: BorrowedFd<'_>, _ns: Ns) -> Result<OwnedFd, Errno> {
    Err(Errno::NOTTY)
}

/// The `container-*` lines of a cfd's `/proc/PID/fdinfo/FD`, keys without the prefix
/// ("id", "name", "state", "members", "flags"); empty without part 4.
pub fn fdinfo(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.strip_prefix("container-")?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The pid on the "Pid:" line of a pidfd's fdinfo.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_lines() {
        let t = "pos:\t0\nflags:\t02000002\ncontainer-id:\t42\ncontainer-name:\tfred\n\
                 container-state:\trunning\ncontainer-members:\t3\ncontainer-flags:\t0x1\n";
        let m = fdinfo(t);
        assert_eq!(m["id"], "42");
        assert_eq!(m["state"], "running");
        assert_eq!(m["members"], "3");
        assert_eq!(m["flags"], "0x1");
        assert!(fdinfo("pos:\t0\n").is_empty());
    }
}
