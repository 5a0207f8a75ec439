//! Key requests. Lookup: request_key() of a key the member's container keyring holds
//! against one in the member's own session keyring, both found without an upcall, by
//! the same member. Upcall: a request the container's supervisor answers through
//! KEYCTL_CONTAINER_INTERCEPT (a watch_queue notification, the authority assumed, the
//! key negated) against the same request answered by the kernel's usermode helper,
//! /sbin/request-key (`kc request-key`, which negates it too), round trip each.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use anyhow::{bail, ensure, Context, Result};
use rustix::io::Errno;

use crate::keyctl::{self, KEY_SPEC_SESSION_KEYRING};
use crate::timing::{self, Clock};
use crate::uapi::*;
use crate::{calls, init};
use crate::{Figure, Plan};

const KEY_POS_ALL: u32 = 0x3f00_0000;
const KEY_USR_ALL: u32 = 0x003f_0000;
const KEYCTL_INVALIDATE: libc::c_long = 21;

fn errno(what: &str, e: Errno) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", crate::errno::errno_name(e))
}

pub fn run(plan: &Plan, clock: &Clock) -> Result<()> {
    keyctl::join_new_session_keyring().map_err(|e| errno("KEYCTL_JOIN_SESSION_KEYRING", e))?;
    lookup(plan, clock)?;
    upcall(plan, clock)
}

fn lookup(plan: &Plan, clock: &Clock) -> Result<()> {
    let ring = keyctl::add_key(c"keyring", c"bench-ring", &[], KEY_SPEC_SESSION_KEYRING)
        .map_err(|e| errno("add_key(keyring)", e))?;
    keyctl::add_key(c"user", c"bench:container", b"x", ring)
        .map_err(|e| errno("add_key(user) in the container keyring", e))?;
    keyctl::setperm(ring, KEY_POS_ALL | KEY_USR_ALL).map_err(|e| errno("KEYCTL_SETPERM", e))?;
    let cfd = calls::container_create(c"bench-keys", CONTAINER_FD_CLOEXEC)
        .map_err(|e| errno("container_create", e))?;
    keyctl::set_container_keyring(cfd.as_raw_fd(), ring)
        .map_err(|e| errno("KEYCTL_SET_CONTAINER_KEYRING", e))?;
    let (rounds, n) = (plan.rounds, plan.iterations);
    let init = init::start(Some(&cfd), |_cmd, res| {
        keyctl::add_key(c"user", c"bench:session", b"x", KEY_SPEC_SESSION_KEYRING)
            .map_err(|e| errno("add_key(user) in the member's session keyring", e))?;
        let find = |desc: &'static std::ffi::CStr| {
            move || -> Result<()> {
                keyctl::request_key(c"user", desc, None, 0)
                    .map(drop)
                    .map_err(|e| errno(&format!("request_key(user, {desc:?})"), e))
            }
        };
        let (container, session) = timing::interleaved(
            rounds,
            n,
            &mut find(c"bench:container"),
            &mut find(c"bench:session"),
        )?;
        init::send(res, container as u64)?;
        init::send(res, session as u64)
    })?;
    let container = init::recv(&init.res)?.context("the init ended")? as f64;
    let session = init::recv(&init.res)?.context("the init ended")? as f64;
    init.finish()?;
    Figure::compared(
        "keys",
        "lookup",
        "us",
        clock.us(container),
        clock.us(session),
        f64::NAN,
        "request_key() of a key in the member's container keyring, against one in its \
         session keyring (found, no upcall), by the same member",
    )
    .no_goal()
    .emit()
}

/// A request that /sbin/request-key negates: its round trip.
fn helper_request(i: u64) -> Result<()> {
    let desc = CString::new(format!("bench:helper:{i}"))?;
    match keyctl::request_key(c"user", &desc, Some(c""), KEY_SPEC_SESSION_KEYRING) {
        Err(Errno::NOKEY) => Ok(()),
        other => bail!("request_key(user, {desc:?}) through /sbin/request-key: {other:?}, expected ENOKEY (negated)"),
    }
}

fn upcall(plan: &Plan, clock: &Clock) -> Result<()> {
    let cfd = calls::container_create(c"bench-upcall", CONTAINER_FD_CLOEXEC)
        .map_err(|e| errno("container_create", e))?;
    let queue = keyctl::add_key(c"keyring", c"bench-queue", &[], KEY_SPEC_SESSION_KEYRING)
        .map_err(|e| errno("add_key(keyring) for the queue", e))?;
    keyctl::setperm(queue, KEY_POS_ALL).map_err(|e| errno("KEYCTL_SETPERM", e))?;
    let watch = keyctl::WatchPipe::new(256).map_err(|e| errno("watch_queue pipe", e))?;
    watch
        .watch(queue, 1)
        .map_err(|e| errno("KEYCTL_WATCH_KEY", e))?;
    keyctl::container_intercept(cfd.as_raw_fd(), c"user", 0, queue)
        .map_err(|e| errno("KEYCTL_CONTAINER_INTERCEPT", e))?;
    // The upcalls are slow (a process per request): fewer of them.
    let n = (plan.iterations / 20).max(5);
    let init = init::start(Some(&cfd), |cmd, res| {
        let mut i = 0u64;
        while let Some(count) = init::recv(cmd)? {
            let start = timing::cycles();
            for _ in 0..count {
                i += 1;
                let desc = CString::new(format!("bench:intercepted:{i}"))?;
                match keyctl::request_key(c"user", &desc, Some(c""), KEY_SPEC_SESSION_KEYRING) {
                    Err(Errno::NOKEY) => {}
                    other => bail!("intercepted request_key({desc:?}): {other:?}, expected ENOKEY"),
                }
            }
            init::send(res, (timing::cycles() - start) / count)?;
        }
        Ok(())
    })?;
    // One batch of the init's requests, answered here; its cycles per request.
    let mut answered = 0u64;
    let mut batch = |count: u64| -> Result<f64> {
        init::send(&init.cmd, count)?;
        loop {
            let mut fds = [
                rustix::event::PollFd::new(watch.fd(), rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&init.res, rustix::event::PollFlags::IN),
            ];
            rustix::event::poll(&mut fds, None).context("poll")?;
            if fds[0].revents().contains(rustix::event::PollFlags::IN) {
                for note in watch.read().map_err(|e| errno("read the watch pipe", e))? {
                    if note.subtype != keyctl::NOTIFY_KEY_LINKED || note.key != queue {
                        continue;
                    }
                    let Some(target) = keyctl::describe(note.aux)
                        .ok()
                        .and_then(|d| d.auth_target())
                    else {
                        continue;
                    };
                    keyctl::assume_authority(target)
                        .map_err(|e| errno("KEYCTL_ASSUME_AUTHORITY", e))?;
                    keyctl::negate(target, 60).map_err(|e| errno("KEYCTL_NEGATE", e))?;
                    keyctl::assume_authority(0)
                        .map_err(|e| errno("KEYCTL_ASSUME_AUTHORITY(0)", e))?;
                    answered += 1;
                }
                continue;
            }
            if !fds[1].revents().is_empty() {
                return init::recv(&init.res)?
                    .map(|c| c as f64)
                    .context("the init ended");
            }
        }
    };
    let mut i = 0u64;
    let mut helper = |count: u64| -> Result<f64> {
        let start = timing::cycles();
        for _ in 0..count {
            i += 1;
            helper_request(i)?;
        }
        Ok((timing::cycles() - start) as f64 / count as f64)
    };
    let (mut best_c, mut best_h) = (f64::INFINITY, f64::INFINITY);
    batch(1)?;
    helper(1)?;
    for round in 0..plan.rounds {
        if round % 2 == 0 {
            best_c = best_c.min(batch(n as u64)?);
            best_h = best_h.min(helper(n as u64)?);
        } else {
            best_h = best_h.min(helper(n as u64)?);
            best_c = best_c.min(batch(n as u64)?);
        }
    }
    init.finish()?;
    ensure!(answered > 0, "the supervisor answered no request");
    // Drop the negative keys the helper runs left in our session keyring.
    if let Ok(keys) = keyctl::keyring_keys(KEY_SPEC_SESSION_KEYRING) {
        for k in keys {
            // SAFETY: keyctl with integer arguments.
            unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, k as libc::c_long) };
        }
    }
    Figure::compared(
        "keys",
        "upcall",
        "us",
        clock.us(best_c),
        clock.us(best_h),
        f64::NAN,
        "a member's request_key() answered (negated) by the container's supervisor through \
         KEYCTL_CONTAINER_INTERCEPT, against the same request negated by /sbin/request-key, \
         round trip",
    )
    .no_goal()
    .emit()
}
