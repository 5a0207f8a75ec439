//! Part 4 of the series (uapi.md §4) as kc uses it (`kc ps --json`, `kc exec`, `kc keyd`
//! without `--init`): the cfd's ioctls are the suite's shared `container/ioctl.rs`
//! (`get_info`, `get_init_pidfd`, `get_namespace`); here are what kc adds: the cfd's
//! fdinfo lines, a pidfd's pid, and what an ENOTTY means.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use anyhow::Result;
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

pub use crate::ioctl::{get_info, get_init_pidfd, get_namespace, Ns};
use crate::ioctl::{set_cgroup, set_namespace};
use crate::util::errno_err;

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

/// `--join PATH` and `--cgroup DIR` of `kc create` and `kc run`: what the container
/// adopts before its init starts (CONTAINER_SET_NAMESPACE, CONTAINER_SET_CGROUP).
#[derive(clap::Args, Debug, Default)]
pub struct Adopt {
    /// Adopt this namespace (a /proc/PID/ns/TYPE file, any of uts, ipc, net, pid,
    /// pid_for_children, cgroup, time, time_for_children) instead of a new or the
    /// host's one; repeatable, once per type.
    #[arg(long = "join", value_name = "NSFILE")]
    pub join: Vec<PathBuf>,
    /// Start the init in this cgroup2 directory (as clone3's CLONE_INTO_CGROUP).
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
}

impl Adopt {
    /// Applies them to the container `cfd`, before its start.
    pub fn apply(&self, cfd: BorrowedFd<'_>) -> Result<()> {
        use std::os::fd::AsRawFd;
        use OFlags as O;
        for path in &self.join {
            let ns = open(path, O::RDONLY | O::CLOEXEC, Mode::empty())
                .map_err(|e| errno_err(format!("open {}", path.display()), e))?;
            set_namespace(cfd, ns.as_raw_fd())
                .map_err(|e| hinted(format!("CONTAINER_SET_NAMESPACE({})", path.display()), e))?;
        }
        if let Some(dir) = &self.cgroup {
            let cg = open(dir, O::PATH | O::DIRECTORY | O::CLOEXEC, Mode::empty())
                .map_err(|e| errno_err(format!("open {}", dir.display()), e))?;
            set_cgroup(cfd, cg.as_raw_fd())
                .map_err(|e| hinted(format!("CONTAINER_SET_CGROUP({})", dir.display()), e))?;
        }
        Ok(())
    }
}

/// "CALL: EINVAL (Invalid argument); what to do" for a failed CONTAINER_SET_*.
fn hinted(call: String, e: Errno) -> anyhow::Error {
    let hint = match e {
        Errno::NOTTY => "this kernel lacks CONTAINER_SET_NAMESPACE/CONTAINER_SET_CGROUP (patches 33-34 of the series)",
        Errno::INVAL => "user and mount namespaces cannot be joined, nor a cgroup with --ns cgroup; a pid namespace must be below yours",
        Errno::BUSY => "each namespace type can be joined once",
        Errno::PERM => "joining needs CAP_SYS_ADMIN over the namespace's owner and over the container's user namespace (as setns(2))",
        Errno::BADF => "not a namespace file / not a cgroup2 directory",
        _ => "see Documentation/userspace-api/container.rst, \"Adopting a namespace and a cgroup\"",
    };
    anyhow::anyhow!("{}; {hint}", errno_err(call, e))
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
