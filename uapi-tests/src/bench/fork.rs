//! fork() + _exit() + waitpid() by a member of a container (its init) against the same
//! loop in a child outside any container: what membership adds to every fork and exit
//! (the member list, the container's counts). Both children are forked from the
//! benchmark, so only membership differs; rounds alternate between them, and each runs
//! its loop when told and reports its cycles through a pipe.

use std::os::fd::OwnedFd;

use anyhow::{bail, ensure, Context, Result};

use crate::timing::{self, Clock};
use crate::uapi::*;
use crate::{calls, init};
use crate::{Figure, Plan};

const GOAL: f64 = 1.03;

/// Cycles per fork + exit + wait, over `n`.
fn fork_loop(n: usize) -> Result<f64> {
    timing::per_call(n, &mut || {
        // SAFETY: single-threaded; the child only calls _exit().
        match unsafe { libc::fork() } {
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            0 => unsafe { libc::_exit(0) },
            pid => {
                let mut status = 0;
                // SAFETY: reaps our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, 0) };
                ensure!(r == pid, "waitpid: {}", std::io::Error::last_os_error());
                Ok(())
            }
        }
    })
}

/// A child that runs the fork loop when told and reports its cycles: the init of `cfd`,
/// or, without one, a child forked the same way outside any container.
fn looper(cfd: Option<&OwnedFd>) -> Result<init::Init> {
    init::start(cfd, |cmd, res| {
        while let Some(n) = init::recv(cmd)? {
            init::send(res, fork_loop(n as usize)? as u64)?;
        }
        Ok(())
    })
}

/// Cycles per fork of `n` by `child`.
fn measure(child: &init::Init, n: usize) -> Result<f64> {
    init::send(&child.cmd, n as u64)?;
    init::recv(&child.res)?
        .map(|c| c as f64)
        .context("the looping child ended")
}

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    let cfd = calls::container_create(c"bench-fork", CONTAINER_FD_CLOEXEC)
        .map_err(|e| anyhow::anyhow!("container_create: {}", crate::errno::errno_name(e)))?;
    // Both loops run in a child of this process, forked from the same image, so that
    // only membership differs.
    let inside = looper(Some(&cfd))?;
    let outside = looper(None)?;
    let n = plan.iterations;
    let (best_in, best_out) =
        timing::interleaved_values(plan.rounds, &mut || measure(&inside, n), &mut || {
            measure(&outside, n)
        })?;
    // `outside` was forked with copies of `inside`'s pipe ends: it goes first, so that
    // closing `inside`'s command pipe is an end of file for it.
    outside.finish()?;
    inside.finish()?;
    Figure::compared(
        "fork",
        "fork+exit+wait",
        "us",
        clock.us(best_in),
        clock.us(best_out),
        GOAL,
        "by a member (the container's init), against the same loop in a child outside any \
         container, both forked from the benchmark",
    )
    .emit()
}
