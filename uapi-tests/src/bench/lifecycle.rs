//! A container's whole life (create, start an init that exits at once, reap it, close
//! the cfd) against what a runtime does without the series: clone3() of a child with
//! the same new namespaces and CLONE_PIDFD, then waitid(P_PIDFD). Both start the child
//! with clone3() and reap it the same way; the difference is the container object.
//!
//! For each case it also reports where the time goes, step by step (`lifecycle_steps`:
//! create, clone3 until it returns in the parent, waitid, close; the mean over every
//! call), and the same life against a clone3() child that joins a new session keyring
//! (`lifecycle_keyring`), as runc's and crun's init do: a container's init starts with
//! a session keyring of its own, which the plain child lacks.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

use crate::ioctl::{self, CloneArgs};
use crate::timing::{self, Clock};
use crate::uapi::*;
use crate::{calls, keyctl};
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
        let (mut cph, mut mph) = (Phases::default(), Phases::default());
        let (container, mainline) = timing::interleaved(
            plan.rounds,
            n,
            &mut || container_life(cflags, &mut cph),
            &mut || clone3_life(nsflags, false, &mut mph),
        )
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
        // Where the difference goes: each step's mean over every call of every round.
        let count = (n * plan.rounds + 1) as f64;
        for (i, step) in PHASE_NAMES.iter().enumerate() {
            Figure {
                group: "lifecycle_steps",
                name: format!("{name}: {step}"),
                unit: "us",
                container: clock.us(cph.0[i] / count),
                baseline: Some(clock.us(mph.0[i] / count)),
                ratio: (mph.0[i] > 0.0).then(|| cph.0[i] / mph.0[i]),
                note: "the mean time of one step of the life, over all rounds".into(),
                ..Figure::default()
            }
            .emit()?;
        }
        // A container's init starts with a session keyring of its own, which the plain
        // clone3() child lacks; runc's and crun's init make one by joining a new session
        // keyring. The same life against that.
        let (container, keyring) = timing::interleaved(
            plan.rounds,
            n,
            &mut || container_life(cflags, &mut Phases::default()),
            &mut || clone3_life(nsflags, true, &mut Phases::default()),
        )
        .with_context(|| format!("lifecycle {name} against a child with a session keyring"))?;
        Figure::compared(
            "lifecycle_keyring",
            name,
            "us",
            clock.us(container),
            clock.us(keyring),
            GOAL,
            "the same life against clone3() whose child joins a new session keyring \
             (keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)), as runc's and crun's init do",
        )
        .no_goal()
        .emit()?;
    }
    Ok(())
}

/// Where a life's time goes: create, clone3 (until it returns in the parent), waitid,
/// close; cycles, summed over calls.
#[derive(Default, Clone, Copy)]
struct Phases([f64; 4]);

const PHASE_NAMES: [&str; 4] = ["create", "clone3", "waitid", "close"];

impl Phases {
    fn add(&mut self, i: usize, from: u64) -> u64 {
        let now = timing::cycles();
        self.0[i] += (now - from) as f64;
        now
    }
}

/// clone3() of a child that exits at once, reaped through its pidfd.
/// With `join_keyring`, the child first joins a new session keyring.
fn spawn_and_reap(
    args: CloneArgs,
    cfd: Option<&OwnedFd>,
    join_keyring: bool,
    ph: &mut Phases,
    t: u64,
) -> Result<u64> {
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
        let code = if join_keyring {
            i32::from(keyctl::join_new_session_keyring().is_err())
        } else {
            0
        };
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
    let t = ph.add(1, t);
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
    // SAFETY: waitid filled in a CLD_EXITED siginfo.
    let status = unsafe { info.si_status() };
    anyhow::ensure!(status == 0, "the child exited {status}");
    let t = ph.add(2, t);
    drop(pidfd);
    Ok(t)
}

fn clone3_life(nsflags: u64, join_keyring: bool, ph: &mut Phases) -> Result<()> {
    let t = timing::cycles();
    let t = spawn_and_reap(
        CloneArgs {
            flags: nsflags,
            ..CloneArgs::default()
        },
        None,
        join_keyring,
        ph,
        t,
    )?;
    ph.add(3, t);
    Ok(())
}

fn container_life(cflags: u32, ph: &mut Phases) -> Result<()> {
    let t = timing::cycles();
    let cfd = calls::container_create(c"bench", cflags | CONTAINER_FD_CLOEXEC)
        .map_err(|e| anyhow::anyhow!("container_create: {}", crate::errno::errno_name(e)))?;
    let t = ph.add(0, t);
    let t = spawn_and_reap(CloneArgs::default(), Some(&cfd), false, ph, t)?;
    drop(cfd);
    ph.add(3, t);
    Ok(())
}
