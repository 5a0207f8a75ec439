//! /proc/containers with 10 to 100,000 rows: the time to read it all (per read and per
//! row; it must grow linearly), and what a container costs in kernel memory against an
//! eventfd (an fd's file and dentry), so that the object is seen apart from its fd.

use std::io::Read;
use std::os::fd::OwnedFd;

use anyhow::{ensure, Context, Result};

use crate::calls;
use crate::timing::{self, Clock};
use crate::uapi::*;
use crate::{Figure, Plan};

/// The goal for 10,000 rows, in milliseconds per read.
const GOAL_10K_MS: f64 = 50.0;

/// Reads /proc/containers to the end; its rows (the header excluded).
fn read_all(buf: &mut Vec<u8>) -> Result<usize> {
    buf.clear();
    std::fs::File::open("/proc/containers")
        .context("open /proc/containers")?
        .read_to_end(buf)
        .context("read /proc/containers")?;
    Ok(buf
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1))
}

/// Raises the per-user container limit and the fd limit to hold `n` containers.
fn make_room(n: usize) -> Result<()> {
    let want = (n + 1000) as u64;
    let path = "/proc/sys/user/max_containers";
    let cur: u64 = std::fs::read_to_string(path)
        .with_context(|| format!("read {path}"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {path}"))?;
    if cur < want {
        std::fs::write(path, want.to_string()).with_context(|| format!("write {path}"))?;
    }
    let lim = rustix::process::Rlimit {
        current: Some(want + 64),
        maximum: Some(want + 64),
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim)
        .with_context(|| format!("setrlimit(RLIMIT_NOFILE, {})", want + 64))?;
    Ok(())
}

/// The kernel's slab memory in bytes (/proc/meminfo's Slab: every cache; the lab's
/// kernel has no /proc/slabinfo).
fn slab_bytes() -> Result<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("read /proc/meminfo")?;
    let kb: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("/proc/meminfo has no Slab: line")?;
    Ok(kb * 1024)
}

/// Slab growth per object for `n` objects `make` makes and holds until the end.
fn slab_per_object<T>(n: usize, mut make: impl FnMut() -> Result<T>) -> Result<f64> {
    let mut held = Vec::with_capacity(n);
    // Settle what earlier steps freed (RCU-delayed files and dentries).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = slab_bytes()?;
    for _ in 0..n {
        held.push(make()?);
    }
    let grew = (slab_bytes()? - before) as f64 / n as f64;
    drop(held);
    Ok(grew)
}

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    let counts: &[usize] = if plan.quick {
        &[10, 100]
    } else {
        &[10, 1_000, 10_000, 100_000]
    };
    let max = counts.iter().copied().max().unwrap_or(0);
    make_room(max)?;
    let mut held: Vec<OwnedFd> = Vec::with_capacity(max);
    let mut buf = Vec::with_capacity(1 << 20);
    let base_rows = read_all(&mut buf)?;
    for &n in counts {
        while held.len() < n {
            held.push(
                calls::container_create(c"bench-proc", CONTAINER_FD_CLOEXEC).map_err(|e| {
                    anyhow::anyhow!(
                        "container_create #{}: {}",
                        held.len() + 1,
                        crate::errno::errno_name(e)
                    )
                })?,
            );
        }
        let rounds = if n >= 100_000 { 3 } else { plan.rounds };
        let mut best = f64::INFINITY;
        let mut rows = 0;
        for _ in 0..rounds {
            let start = timing::cycles();
            rows = read_all(&mut buf)?;
            best = best.min((timing::cycles() - start) as f64);
        }
        // Containers of earlier benchmarks may still be on their way out: at least ours.
        ensure!(
            rows >= n && rows <= base_rows + n,
            "/proc/containers shows {rows} rows with {n} containers held (and {base_rows} before)"
        );
        let ms = clock.us(best) / 1000.0;
        Figure {
            group: "proc_containers",
            name: format!("{n}"),
            x: Some(n as f64),
            unit: "ms",
            container: ms,
            goal: (n == 10_000).then_some(GOAL_10K_MS),
            note: format!(
                "one read of all {rows} rows: {:.2} us per row",
                ms * 1000.0 / rows as f64
            ),
            ..Figure::default()
        }
        .emit()?;
    }
    unseen(clock, max)?;
    drop(held);
    memory(if plan.quick { 1_000 } else { 10_000 })
}

/// A read by a reader that sees none of the `n` containers held: a process in a user
/// namespace of its own (a sandbox) sees only its `<current>` row, and the look-up skips
/// the others in batches. Timed in a child, which reports its best of 3 through a pipe.
fn unseen(clock: &Clock, n: usize) -> Result<()> {
    let (rx, tx) = rustix::pipe::pipe().context("pipe")?;
    // SAFETY: single-threaded; the child only reads the file and writes a pipe.
    let pid = unsafe { libc::fork() };
    ensure!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let best = (|| -> Result<u64> {
            // SAFETY: a new user namespace only; the child is single-threaded.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }
                .context("unshare(CLONE_NEWUSER)")?;
            let mut buf = Vec::new();
            let mut best = u64::MAX;
            for _ in 0..3 {
                let start = timing::cycles();
                let rows = read_all(&mut buf)?;
                best = best.min(timing::cycles() - start);
                // Its own `<current>` row only.
                ensure!(
                    rows == 1,
                    "a sandbox sees {rows} rows, expected only <current>"
                );
            }
            Ok(best)
        })();
        let code = match best.and_then(|b| {
            rustix::io::write(&tx, &b.to_ne_bytes()).context("write")?;
            Ok(())
        }) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("kc-bench: the sandboxed reader: {e:#}");
                1
            }
        };
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
    drop(tx);
    let mut b = [0u8; 8];
    let got = rustix::io::read(&rx, &mut b).context("read")?;
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure!(
        got == 8 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the sandboxed reader failed (status {status:#x})"
    );
    let ms = clock.us(u64::from_ne_bytes(b) as f64) / 1000.0;
    Figure {
        group: "proc_containers",
        name: format!("{n}, unseen"),
        unit: "ms",
        container: ms,
        note: format!(
            "one read by a reader in a user namespace of its own, which sees none of the \
             {n} containers (only its <current> row)"
        ),
        ..Figure::default()
    }
    .emit()
}

/// Slab memory per container (with its cfd) against an eventfd, the smallest object
/// behind an fd of its own (file, dentry and a 48-byte context), with `n` of each held;
/// from /proc/meminfo, so the figure is the whole slab's growth over `n`.
fn memory(n: usize) -> Result<()> {
    let container = slab_per_object(n, || {
        calls::container_create(c"bench-mem", CONTAINER_FD_CLOEXEC)
            .map_err(|e| anyhow::anyhow!("container_create: {}", crate::errno::errno_name(e)))
    })?;
    let eventfd = slab_per_object(n, || {
        rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).context("eventfd")
    })?;
    Figure {
        group: "memory",
        name: "per container".into(),
        unit: "bytes",
        container,
        baseline: Some(eventfd),
        ratio: Some(container / eventfd),
        note: format!(
            "slab growth per object with {n} held (/proc/meminfo Slab), a container with its \
             cfd against an eventfd (file, dentry, context): the object costs about {:.0} \
             bytes more than an fd",
            container - eventfd
        ),
        ..Figure::default()
    }
    .emit()
}
