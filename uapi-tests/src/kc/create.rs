//! `kc create [--ns LIST] [--join NSFILE]... [--cgroup DIR] [--kill-on-close] NAME --
//! CMD...`: create a container (adopting the namespaces and cgroup given) and exec
//! CMD (on the host, not in the container) holding its fd as fd 3 with `KC_FD=3` in the
//! environment, so that `kc start`, `kc supervise`, `kc kill`, `kc wait` and `kc exec`
//! run by CMD (a shell script, say) act on it. A container cannot be opened by name and
//! lives as long as a holder of its fd or a member: when CMD and its children are gone,
//! so is the fd (and, with --kill-on-close, every member). kc's own fd 3, if any, is
//! replaced. Exit status: CMD's (kc execs it).

use std::os::fd::{AsFd, AsRawFd};

use anyhow::Result;

use crate::uapi::*;
use crate::util::{errno_err, last_errno, parse_ns, Argv, DEFAULT_NS, KC_FD};

/// The fd CMD finds the container at.
pub const FD: i32 = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Namespaces the container gets new, a comma-separated subset of fs, emptyfs,
    /// cgroup, uts, ipc, user, pid, net, or "none".
    #[arg(long, value_name = "LIST", default_value = DEFAULT_NS, value_parser = parse_ns)]
    pub ns: u32,
    /// SIGKILL every member when the last holder of the fd closes it.
    #[arg(long)]
    pub kill_on_close: bool,
    #[command(flatten)]
    pub adopt: crate::part4::Adopt,
    /// The container's name (at most 23 bytes, no '/').
    pub name: String,
    /// The command that holds the container fd.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

pub fn main(args: Args) -> Result<u8> {
    let mut flags = args.ns | CONTAINER_FD_CLOEXEC;
    if args.kill_on_close {
        flags |= CONTAINER_KILL_ON_CLOSE;
    }
    let argv = Argv::new(&args.cmd)?;
    let cfd = crate::util::create_container(&args.name, flags)?;
    args.adopt.apply(cfd.as_fd())?;
    // dup2 onto 3 clears FD_CLOEXEC on the copy; if the cfd is 3 already, clear it.
    if cfd.as_raw_fd() == FD {
        rustix::io::fcntl_setfd(&cfd, rustix::io::FdFlags::empty())
            .map_err(|e| errno_err("fcntl(3, F_SETFD, 0)", e))?;
        std::mem::forget(cfd);
    } else {
        // SAFETY: dup2 onto fd 3, which kc does not otherwise use; the copy is left
        // open (without FD_CLOEXEC) for CMD, and nothing in kc closes it.
        let r = unsafe { libc::dup2(cfd.as_raw_fd(), FD) };
        if r != FD {
            return Err(errno_err(
                format!("dup2({}, {FD})", cfd.as_raw_fd()),
                last_errno(),
            ));
        }
    }
    std::env::set_var(KC_FD, FD.to_string());
    argv.exec()
}
