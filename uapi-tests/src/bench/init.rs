//! A container's init that a benchmark drives: it runs a body with a command pipe
//! (u64s in) and a result pipe (u64s out), and is reaped when the benchmark is done.
//! Used where a figure has to be measured by a member (fork.rs, keys.rs), and, forked
//! the same way outside any container, for the same figure measured by a non-member.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, ensure, Context, Result};

use crate::calls;

/// The benchmark's side: the init's pid and the two pipe ends.
pub struct Init {
    pub pid: libc::pid_t,
    pub cmd: OwnedFd,
    pub res: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe().context("pipe")
}

pub fn send(fd: &OwnedFd, v: u64) -> Result<()> {
    ensure!(
        rustix::io::write(fd, &v.to_ne_bytes()).context("write")? == 8,
        "short write"
    );
    Ok(())
}

/// The next u64, or None at the end of the pipe.
pub fn recv(fd: &OwnedFd) -> Result<Option<u64>> {
    let mut b = [0u8; 8];
    match rustix::io::read(fd, &mut b).context("read")? {
        0 => Ok(None),
        8 => Ok(Some(u64::from_ne_bytes(b))),
        n => bail!("short read of {n}"),
    }
}

/// Forks the init of `cfd` or, without one, a child outside any container; it runs
/// `body(cmd, res)` and exits 0, or 1 with the error on stderr. The child holds only its
/// own ends, so that closing `Init::cmd` is an end of file for it.
pub fn start(
    cfd: Option<&OwnedFd>,
    body: impl FnOnce(&OwnedFd, &OwnedFd) -> Result<()>,
) -> Result<Init> {
    let (cmd_rx, cmd_tx) = pipe()?;
    let (res_rx, res_tx) = pipe()?;
    let pid = match cfd {
        // SAFETY: single-threaded; the child runs `body` and _exits.
        Some(cfd) => unsafe { calls::fork_into_container(cfd.as_raw_fd()) }
            .map_err(|e| anyhow::anyhow!("fork_into_container: {}", crate::errno::errno_name(e)))?,
        // SAFETY: as above.
        None => match unsafe { libc::fork() } {
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            pid => pid,
        },
    };
    if pid == 0 {
        drop((cmd_tx, res_rx));
        let code = match body(&cmd_rx, &res_tx) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("kc-bench: the init: {e:#}");
                1
            }
        };
        // SAFETY: ends the init.
        unsafe { libc::_exit(code) };
    }
    Ok(Init {
        pid,
        cmd: cmd_tx,
        res: res_rx,
    })
}

impl Init {
    /// Closes the command pipe and reaps the init, which must have exited 0.
    pub fn finish(self) -> Result<()> {
        drop(self.cmd);
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        ensure!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the init failed (status {status:#x})"
        );
        Ok(())
    }
}
