//! Killing N processes and waiting until they are gone: container_kill(SIGKILL) of
//! every member and container_wait(), against writing "1" to cgroup.kill and polling
//! cgroup.events until "populated 0", for the same number of paused processes. The
//! setup (forking them) is not timed; their reaping is not either.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, ensure, Context, Result};

use crate::calls;
use crate::ioctl::{self, CloneArgs};
use crate::timing::{self, Clock};
use crate::uapi::*;
use crate::{Figure, Plan};

const GOAL: f64 = 1.10;
const CLONE_INTO_CGROUP: u64 = 1 << 33;

fn errno(what: &str, e: rustix::io::Errno) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", crate::errno::errno_name(e))
}

/// Reaps every child that has exited (the killed processes are ours, or re-parented to
/// us as the subreaper).
fn reap_all() {
    // SAFETY: waitpid(-1) for our own children.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::__WALL) } > 0 {}
}

/// A paused child made by clone3 with `args` (a container's init, or a process in a
/// cgroup); with `forks`, the child first forks that many paused children of its own.
fn paused(args: CloneArgs, cfd: Option<&OwnedFd>, forks: usize, ready: &OwnedFd) -> Result<()> {
    // SAFETY: single-threaded; the child forks and pauses (async-signal-safe calls).
    let pid = match cfd {
        Some(cfd) => unsafe { ioctl::clone3_into(cfd.as_fd(), args) },
        None => unsafe { ioctl::clone3(&args, std::mem::size_of::<CloneArgs>(), 0) },
    }
    .map_err(|e| errno("clone3", e))?;
    if pid == 0 {
        for _ in 0..forks {
            // SAFETY: the grandchildren only pause.
            if unsafe { libc::fork() } == 0 {
                loop {
                    // SAFETY: waits for SIGKILL.
                    unsafe { libc::pause() };
                }
            }
        }
        let _ = rustix::io::write(ready, b"r");
        loop {
            // SAFETY: waits for SIGKILL.
            unsafe { libc::pause() };
        }
    }
    Ok(())
}

fn wait_ready(rx: &OwnedFd, n: usize) -> Result<()> {
    let mut got = 0;
    let mut buf = [0u8; 64];
    while got < n {
        let r = rustix::io::read(rx, &mut buf).context("read ready")?;
        ensure!(r > 0, "a helper died before it was ready");
        got += r;
    }
    Ok(())
}

/// Cycles from container_kill to the end of container_wait, for `members`.
fn container_round(members: usize) -> Result<f64> {
    let (rx, tx) = rustix::pipe::pipe().context("pipe")?;
    let cfd = calls::container_create(c"bench-kill", CONTAINER_FD_CLOEXEC)
        .map_err(|e| errno("container_create", e))?;
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    paused(args, Some(&cfd), members - 1, &tx)?;
    wait_ready(&rx, 1)?;
    let start = timing::cycles();
    calls::container_kill(cfd.as_raw_fd(), 0, libc::SIGKILL)
        .map_err(|e| errno("container_kill", e))?;
    calls::container_wait(cfd.as_raw_fd(), None, 0, None)
        .map_err(|e| errno("container_wait", e))?;
    let took = (timing::cycles() - start) as f64;
    reap_all();
    Ok(took)
}

/// Cycles from writing cgroup.kill to "populated 0", for `members` in `dir`.
fn cgroup_round(dir: &str, members: usize) -> Result<f64> {
    let (rx, tx) = rustix::pipe::pipe().context("pipe")?;
    let cg = rustix::fs::open(
        dir,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("open {dir}"))?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cg.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    for _ in 0..members {
        paused(args, None, 0, &tx)?;
    }
    wait_ready(&rx, members)?;
    let events = rustix::fs::open(
        format!("{dir}/cgroup.events"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("open cgroup.events")?;
    let start = timing::cycles();
    std::fs::write(format!("{dir}/cgroup.kill"), "1").context("write cgroup.kill")?;
    loop {
        let mut buf = [0u8; 256];
        let n = rustix::io::pread(&events, &mut buf, 0).context("read cgroup.events")?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        if text.lines().any(|l| l == "populated 0") {
            break;
        }
        let mut fds = [rustix::event::PollFd::new(
            &events,
            rustix::event::PollFlags::PRI,
        )];
        rustix::event::poll(&mut fds, None).context("poll cgroup.events")?;
    }
    let took = (timing::cycles() - start) as f64;
    reap_all();
    Ok(took)
}

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    // Orphaned members come to us, so that reap_all() finds them.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("PR_SET_CHILD_SUBREAPER")?;
    let dir = format!("/sys/fs/cgroup/kc-bench-kill-{}", std::process::id());
    std::fs::create_dir(&dir).with_context(|| format!("mkdir {dir}"))?;
    let result = (|| -> Result<()> {
        let sizes: &[usize] = if plan.quick {
            &[1, 10]
        } else {
            &[1, 100, 1_000]
        };
        for &m in sizes {
            let rounds = if m >= 1_000 { 3 } else { plan.rounds };
            let (mut best_c, mut best_g) = (f64::INFINITY, f64::INFINITY);
            for round in 0..rounds {
                if round % 2 == 0 {
                    best_c = best_c.min(container_round(m)?);
                    best_g = best_g.min(cgroup_round(&dir, m)?);
                } else {
                    best_g = best_g.min(cgroup_round(&dir, m)?);
                    best_c = best_c.min(container_round(m)?);
                }
            }
            let mut fig = Figure::compared(
                "kill",
                format!("{m}"),
                "us",
                clock.us(best_c),
                clock.us(best_g),
                GOAL,
                "container_kill(SIGKILL, every member) + container_wait, against \
                 cgroup.kill + poll(cgroup.events) until populated 0",
            );
            fig.x = Some(m as f64);
            fig.emit()?;
        }
        Ok(())
    })();
    reap_all();
    if let Err(e) = std::fs::remove_dir(&dir) {
        if result.is_ok() {
            bail!("rmdir {dir}: {e}");
        }
    }
    result
}
