//! A container's whole life (create, start an init that exits at once, reap it, close
//! the cfd) against what a runtime does without the series: clone3() of a child with
//! the same new namespaces and CLONE_PIDFD, then waitid(P_PIDFD). Both start the child
//! with clone3() and reap it the same way; the difference is the container object.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

use crate::calls;
use crate::ioctl::{self, CloneArgs};
use crate::timing::{self, Clock};
use crate::uapi::*;
use crate::{Figure, Plan};

/// The goal for every case: at most 10% more than mainline.
const GOAL: f64 = 1.10;

/// (name, the container's flags, clone3's namespace flags)
const CASES: &[(&str, u32, u64)] = &[
    ("none", 0, 0),
    (
        "uts+ipc+pid",
        CONTAINER_NEW_UTS_NS | CONTAINER_NEW_IPC_NS | CONTAINER_NEW_PID_NS,
        (libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWPID) as u64,
    ),
    (
        "all",
        CONTAINER_NEW_FS_NS
            | CONTAINER_NEW_CGROUP_NS
            | CONTAINER_NEW_UTS_NS
            | CONTAINER_NEW_IPC_NS
            | CONTAINER_NEW_USER_NS
            | CONTAINER_NEW_PID_NS
            | CONTAINER_NEW_NET_NS,
        (libc::CLONE_NEWNS
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET) as u64,
    ),
];

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    for &(name, cflags, nsflags) in CASES {
        // A new network namespace costs milliseconds: fewer iterations.
        let n = if nsflags & libc::CLONE_NEWNET as u64 != 0 {
            (plan.iterations / 8).max(5)
        } else {
            plan.iterations
        };
        let (container, mainline) =
            timing::interleaved(plan.rounds, n, &mut || container_life(cflags), &mut || {
                clone3_life(nsflags)
            })
            .with_context(|| format!("lifecycle {name}"))?;
        Figure::compared(
            "lifecycle",
            name,
            "us",
            clock.us(container),
            clock.us(mainline),
            GOAL,
            "container_create + clone3(CLONE_INTO_CONTAINER|CLONE_PIDFD) + waitid + close, \
             against clone3(namespaces|CLONE_PIDFD) + waitid",
        )
        .emit()?;
    }
    Ok(())
}

/// clone3() of a child that exits at once, reaped through its pidfd.
fn spawn_and_reap(args: CloneArgs, cfd: Option<&OwnedFd>) -> Result<()> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: args.flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: 0,
        ..args
    };
    // SAFETY: the benchmark is single-threaded; the child only calls _exit(); `pidfd`
    // outlives the call.
    let pid = match cfd {
        Some(cfd) => unsafe { ioctl::clone3_into(cfd.as_fd(), args) },
        None => unsafe { ioctl::clone3(&args, std::mem::size_of::<CloneArgs>(), 0) },
    }
    .map_err(|e| anyhow::anyhow!("clone3: {}", crate::errno::errno_name(e)))?;
    if pid == 0 {
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: clone3 returned a new pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes one siginfo_t.
    let r = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd) as libc::id_t,
            &mut info,
            // A child whose exit signal is not SIGCHLD is only waited for with __WALL.
            libc::WEXITED | libc::__WALL,
        )
    };
    anyhow::ensure!(
        r == 0,
        "waitid(P_PIDFD): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

fn clone3_life(nsflags: u64) -> Result<()> {
    spawn_and_reap(
        CloneArgs {
            flags: nsflags,
            ..CloneArgs::default()
        },
        None,
    )
}

fn container_life(cflags: u32) -> Result<()> {
    let cfd = calls::container_create(c"bench", cflags | CONTAINER_FD_CLOEXEC)
        .map_err(|e| anyhow::anyhow!("container_create: {}", crate::errno::errno_name(e)))?;
    spawn_and_reap(CloneArgs::default(), Some(&cfd))
}
