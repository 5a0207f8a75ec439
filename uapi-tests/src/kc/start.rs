//! `kc start [--fd N] [--rootfs DIR] -- CMD...`: fork_into_container on the inherited
//! container fd (default $KC_FD) and exec CMD as its init; print the init's pid (in
//! kc's pid namespace) and exit 0. The init inherits kc's stdin, stdout and stderr
//! (so `$(kc start ...)` waits for the init); `kc wait` waits for the container.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;

use anyhow::Result;

use crate::util::{errno_err, inherited_cfd, Argv, KC_FD};
use crate::{calls, rootfs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container fd (default: $KC_FD, set by `kc create`).
    #[arg(long, value_name = "N")]
    pub fd: Option<RawFd>,
    /// Assemble the root from DIR first; the container needs an empty mount namespace
    /// (`kc create --ns emptyfs,...`).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// The init's command.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

pub fn main(args: Args) -> Result<u8> {
    let cfd = inherited_cfd(args.fd)?;
    if let Some(dir) = &args.rootfs {
        rootfs::assemble_root(cfd, dir)?;
    }
    let argv = Argv::new(&args.cmd)?;
    let pid = fork_exec(cfd, &argv)?;
    println!("{pid}");
    Ok(0)
}

/// Forks the init of `cfd`, which execs `argv` (without KC_FD: the init holds no
/// container fd); its pid. kc must be single-threaded.
pub fn fork_exec(cfd: BorrowedFd<'_>, argv: &Argv) -> Result<libc::pid_t> {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: kc is single-threaded; the child only execs or exits.
    match unsafe { calls::fork_into_container(cfd.as_raw_fd()) } {
        Ok(0) => {
            std::env::remove_var(KC_FD);
            argv.exec()
        }
        Ok(pid) => Ok(pid),
        Err(e) => Err(
            errno_err(format!("fork_into_container(fd {})", cfd.as_raw_fd()), e).context(match e {
                rustix::io::Errno::BUSY => {
                    "the container's init has started already (there is only ever one)"
                }
                rustix::io::Errno::NOENT => {
                    "the container has an empty mount namespace and no root yet (use --rootfs DIR)"
                }
                rustix::io::Errno::PERM => {
                    "starting an init needs every privilege of the container's credentials"
                }
                _ => "starting the init",
            }),
        ),
    }
}
