//! The invariants checked after each batch and at the end of a run.
//!
//! - Every container the fuzzer holds a fd of answers CONTAINER_GET_ID and is listed in
//!   /proc/containers (the fuzzer is root in the initial namespaces: it sees its own
//!   children).
//! - container_wait() of a dead container answers the same twice.
//! - At the end, after container_kill(SIGKILL) of every member and container_wait(),
//!   no member is left; once every fd is closed and every other process killed and
//!   reaped, no container is listed but the fuzzer's own row: nothing is listed
//!   without a reference.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::uapi::*;
use crate::{calls, ioctl, reap, Pool};

/// The ids /proc/containers lists (the ID column, fifth from the end).
fn listed() -> Result<BTreeSet<u64>> {
    let text = std::fs::read_to_string("/proc/containers").context("read /proc/containers")?;
    let mut ids = BTreeSet::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        ensure!(f.len() >= 6, "/proc/containers row {line:?}");
        ids.insert(
            f[f.len() - 5]
                .parse()
                .with_context(|| format!("ID in {line:?}"))?,
        );
    }
    Ok(ids)
}

pub fn after_batch(pool: &mut Pool) -> Result<()> {
    let ids = listed()?;
    for h in &pool.containers {
        let id = ioctl::get_id(h.cfd.as_fd())
            .map_err(|e| anyhow::anyhow!("CONTAINER_GET_ID of a held cfd: {e:?}"))?;
        ensure!(
            ids.contains(&id),
            "container {id} is held but not in /proc/containers"
        );
        let info = ioctl::get_info(h.cfd.as_fd())
            .map_err(|e| anyhow::anyhow!("CONTAINER_GET_INFO of container {id}: {e:?}"))?;
        if info.state & CONTAINER_STATE_DEAD != 0 {
            let wait = |what: &str| -> Result<i32> {
                let mut status = 0;
                calls::container_wait(h.cfd.as_raw_fd(), Some(&mut status), 0, None)
                    .map_err(|e| anyhow::anyhow!("container_wait ({what}) of dead {id}: {e:?}"))?;
                Ok(status)
            };
            let (a, b) = (wait("first")?, wait("second")?);
            ensure!(a == b, "container_wait of dead {id}: {a:#x}, then {b:#x}");
            ensure!(
                info.nr_members == 0,
                "dead container {id} has {} members",
                info.nr_members
            );
        }
    }
    // Let dead containers go now and then, so that new ones are made.
    pool.containers.retain(|h| {
        ioctl::get_info(h.cfd.as_fd()).is_ok_and(|i| i.state & CONTAINER_STATE_DEAD == 0)
    });
    Ok(())
}

pub fn at_end(pool: &mut Pool) -> Result<()> {
    for h in &pool.containers {
        let _ = calls::container_kill(h.cfd.as_raw_fd(), 0, libc::SIGKILL);
    }
    for h in &pool.containers {
        let id = ioctl::get_id(h.cfd.as_fd()).unwrap_or(0);
        let info = ioctl::get_info(h.cfd.as_fd())
            .map_err(|e| anyhow::anyhow!("CONTAINER_GET_INFO of {id}: {e:?}"))?;
        if info.state & CONTAINER_STATE_STARTED == 0 {
            continue;
        }
        let mut status = 0;
        calls::container_wait(h.cfd.as_raw_fd(), Some(&mut status), 0, None)
            .map_err(|e| anyhow::anyhow!("container_wait of {id} after the kill: {e:?}"))?;
        let info = ioctl::get_info(h.cfd.as_fd())
            .map_err(|e| anyhow::anyhow!("CONTAINER_GET_INFO of {id}: {e:?}"))?;
        ensure!(
            info.nr_members == 0,
            "container {id}: {} members left after the kill and the wait",
            info.nr_members
        );
    }
    pool.containers.clear();
    // Members of containers closed earlier (stopped, sleeping, in nested containers)
    // still hold theirs: kill every other process (we are the subreaper of all we
    // made), reap them, and then nothing may be listed but our own row.
    // SAFETY: kill(-1) signals every process we may signal but ourselves and init.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        reap(pool);
        let ids = listed()?;
        if ids.len() <= 1 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("containers listed with no fd and no member left: {ids:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
