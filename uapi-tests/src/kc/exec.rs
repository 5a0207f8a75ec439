//! `kc exec [--fd N] -- CMD...`: run CMD in a running container's namespaces and root
//! without becoming a member (like `nsenter`): setns() on the namespace fds of
//! CONTAINER_GET_*_NAMESPACE (the user namespace first), the root and cwd of the init
//! (CONTAINER_GET_INIT_PIDFD, through /proc/PID/root), then a fork so that CMD is in
//! the container's PID namespace. Exits with CMD's status (N, or 128 + the signal).
//! Needs part 4 of the series: without it the first ioctl is ENOTTY and kc says so.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use anyhow::{Context, Result};

use crate::part4::{self, Ns, NEEDS_PART4};
use crate::util::{errno_err, exit_code, inherited_cfd, last_errno, reap, Argv, KC_FD};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container fd (default: $KC_FD, set by `kc create`).
    #[arg(long, value_name = "N")]
    pub fd: Option<RawFd>,
    /// The command to run in the container.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// The order of setns(): the user namespace first, so the rest are entered with the
/// privileges it gives.
const ORDER: &[(Ns, &str, libc::c_int)] = &[
    (Ns::User, "USER", libc::CLONE_NEWUSER),
    (Ns::Mnt, "MNT", libc::CLONE_NEWNS),
    (Ns::Pid, "PID", libc::CLONE_NEWPID),
    (Ns::Net, "NET", libc::CLONE_NEWNET),
    (Ns::Uts, "UTS", libc::CLONE_NEWUTS),
    (Ns::Ipc, "IPC", libc::CLONE_NEWIPC),
    (Ns::Cgroup, "CGROUP", libc::CLONE_NEWCGROUP),
];

pub fn main(args: Args) -> Result<u8> {
    let cfd = inherited_cfd(args.fd)?;
    let argv = Argv::new(&args.cmd)?;
    let pidfd = part4::get_init_pidfd(cfd)
        .map_err(|e| {
            errno_err(
                format!("ioctl(fd {}, CONTAINER_GET_INIT_PIDFD)", cfd.as_raw_fd()),
                e,
            )
        })
        .context(NEEDS_PART4)?;
    let init = part4::pidfd_pid(pidfd.as_fd())
        .context("the init's pid from its pidfd's fdinfo (has it exited?)")?;
    // The init's root, opened before the mount namespace changes under us.
    let root = std::fs::File::open(format!("/proc/{init}/root"))
        .with_context(|| format!("open /proc/{init}/root (the container's init)"))?;
    for &(ns, name, flag) in ORDER {
        let nsfd = part4::get_namespace(cfd, ns)
            .map_err(|e| errno_err(format!("ioctl(CONTAINER_GET_{name}_NAMESPACE)"), e))
            .context(NEEDS_PART4)?;
        let same = rustix::fs::fstat(&nsfd).ok().map(|s| s.st_ino)
            == rustix::fs::stat(format!("/proc/self/ns/{}", name.to_ascii_lowercase()).as_str())
                .ok()
                .map(|s| s.st_ino);
        if same {
            continue; // setns into one's own user namespace is EINVAL
        }
        // SAFETY: integer arguments.
        if unsafe { libc::setns(nsfd.as_raw_fd(), flag) } != 0 {
            return Err(errno_err(
                format!("setns(CONTAINER_GET_{name}_NAMESPACE fd)"),
                last_errno(),
            ));
        }
    }
    // SAFETY: fchdir/chroot/chdir on fds and strings this process owns.
    unsafe {
        if libc::fchdir(root.as_raw_fd()) != 0 {
            return Err(errno_err("fchdir(the init's root)", last_errno()));
        }
        if libc::chroot(c".".as_ptr()) != 0 {
            return Err(errno_err("chroot(the init's root)", last_errno()));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(errno_err("chdir(/)", last_errno()));
        }
    }
    drop(root);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: kc is single-threaded; the child only execs or exits.
    match unsafe { libc::fork() } {
        -1 => Err(errno_err(
            "fork (into the container's PID namespace)",
            last_errno(),
        )),
        0 => {
            std::env::remove_var(KC_FD);
            argv.exec()
        }
        pid => Ok(exit_code(reap(pid)?)),
    }
}
