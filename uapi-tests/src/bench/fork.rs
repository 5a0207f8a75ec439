//! fork() + _exit() + waitpid() by a member of a container (its init) against the same
//! loop outside: what membership adds to every fork and exit (the member list, the
//! container's counts). Rounds alternate between the two; the init runs its loop when
//! told and reports its cycles through a pipe.

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

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    let cfd = calls::container_create(c"bench-fork", CONTAINER_FD_CLOEXEC)
        .map_err(|e| anyhow::anyhow!("container_create: {}", crate::errno::errno_name(e)))?;
    // The init: for each count it is sent, fork that many times and report.
    let init = init::start(&cfd, |cmd, res| {
        while let Some(n) = init::recv(cmd)? {
            init::send(res, fork_loop(n as usize)? as u64)?;
        }
        Ok(())
    })?;
    let n = plan.iterations;
    let inside = || -> Result<f64> {
        init::send(&init.cmd, n as u64)?;
        init::recv(&init.res)?
            .map(|c| c as f64)
            .context("the container's init ended")
    };
    let (mut best_in, mut best_out) = (f64::INFINITY, f64::INFINITY);
    inside()?;
    fork_loop(n)?;
    for round in 0..plan.rounds {
        if round % 2 == 0 {
            best_in = best_in.min(inside()?);
            best_out = best_out.min(fork_loop(n)?);
        } else {
            best_out = best_out.min(fork_loop(n)?);
            best_in = best_in.min(inside()?);
        }
    }
    init.finish()?;
    Figure::compared(
        "fork",
        "fork+exit+wait",
        "us",
        clock.us(best_in),
        clock.us(best_out),
        GOAL,
        "by a member (the container's init), against the same loop outside any container",
    )
    .emit()
}
