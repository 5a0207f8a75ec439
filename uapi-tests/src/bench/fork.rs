//! fork() + _exit() + waitpid() by a member of a container (its init) against the same
//! loop outside: what membership adds to every fork and exit (the member list, the
//! container's counts). Rounds alternate between the two; the init runs its loop when
//! told and reports its cycles through a pipe.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, ensure, Context, Result};

use crate::calls;
use crate::timing::{self, Clock};
use crate::uapi::*;
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

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe().context("pipe")
}

fn write_u64(fd: &OwnedFd, v: u64) -> Result<()> {
    let n = rustix::io::write(fd, &v.to_ne_bytes()).context("write")?;
    ensure!(n == 8, "short write");
    Ok(())
}

fn read_u64(fd: &OwnedFd) -> Result<Option<u64>> {
    let mut b = [0u8; 8];
    match rustix::io::read(fd, &mut b).context("read")? {
        0 => Ok(None),
        8 => Ok(Some(u64::from_ne_bytes(b))),
        n => bail!("short read of {n}"),
    }
}

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    let (cmd_rx, cmd_tx) = pipe()?;
    let (res_rx, res_tx) = pipe()?;
    let cfd = calls::container_create(c"bench-fork", CONTAINER_FD_CLOEXEC)
        .map_err(|e| anyhow::anyhow!("container_create: {}", crate::errno::errno_name(e)))?;
    // SAFETY: single-threaded; the child runs the loop below and _exits.
    let init = unsafe { calls::fork_into_container(cfd.as_raw_fd()) }
        .map_err(|e| anyhow::anyhow!("fork_into_container: {}", crate::errno::errno_name(e)))?;
    if init == 0 {
        // The init: for each count it is sent, fork that many times and report; the
        // other ends go, so that the parent's close is an end of file here.
        drop((cmd_tx, res_rx));
        let code = (|| -> Result<()> {
            while let Some(n) = read_u64(&cmd_rx)? {
                write_u64(&res_tx, fork_loop(n as usize)? as u64)?;
            }
            Ok(())
        })()
        .map_or(1, |()| 0);
        // SAFETY: ends the init.
        unsafe { libc::_exit(code) };
    }
    drop((cmd_rx, res_tx));
    let n = plan.iterations;
    let inside = || -> Result<f64> {
        write_u64(&cmd_tx, n as u64)?;
        read_u64(&res_rx)?
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
    drop(cmd_tx);
    let mut status = 0;
    // SAFETY: reaps the init, our child.
    unsafe { libc::waitpid(init, &mut status, 0) };
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the init's loop failed (status {status:#x})"
    );
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
