//! Part 4 of the series (uapi.md §4) as kc uses it (`kc ps --json`, `kc exec`, `kc keyd`
//! without `--init`): the cfd's ioctls are the suite's shared `container/ioctl.rs`
//! (`get_info`, `get_init_pidfd`, `get_namespace`); here are what kc adds: the cfd's
//! fdinfo lines, a pidfd's pid, and what an ENOTTY means.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;

pub use crate::ioctl::{get_info, get_init_pidfd, get_namespace, Ns};

/// What a failed part-4 call means on a kernel without it.
pub const NEEDS_PART4: &str =
    "needs part 4 of the series (CONTAINER_GET_INFO and the cfd ioctls); \
                               ENOTTY means this kernel does not have it";

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
