//! `kc wait [--fd N] [--nohang]`: container_wait on the inherited container fd (default
//! $KC_FD): blocks until the container is dead, then prints init's wait status as a
//! shell would ("exit 3", "killed by SIGKILL"). Exit status 0 when it printed a status,
//! 1 for an error, 3 with --nohang while the container still runs (it prints "running").

use std::os::fd::{AsRawFd, RawFd};

use anyhow::Result;
use rustix::io::Errno;

use crate::util::{errno_err, inherited_cfd, shell_status, wait_container_opts};

/// kc wait's exit status with --nohang on a live container.
pub const RUNNING: u8 = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container fd (default: $KC_FD, set by `kc create`).
    #[arg(long, value_name = "N")]
    pub fd: Option<RawFd>,
    /// Do not block: print "running" and exit 3 if the container is alive.
    #[arg(long)]
    pub nohang: bool,
}

pub fn main(args: Args) -> Result<u8> {
    let cfd = inherited_cfd(args.fd)?;
    let options = if args.nohang { libc::WNOHANG as u32 } else { 0 };
    match wait_container_opts(cfd, options) {
        Ok((status, _)) => {
            println!("{}", shell_status(status));
            Ok(0)
        }
        Err(Errno::AGAIN) if args.nohang => {
            println!("running");
            Ok(RUNNING)
        }
        Err(e) => Err(errno_err(
            format!(
                "container_wait(fd {}, {})",
                cfd.as_raw_fd(),
                if args.nohang { "WNOHANG" } else { "0" }
            ),
            e,
        )
        .context(match e {
            Errno::CHILD => "no init was ever started in the container (kc start)",
            _ => "waiting for the container",
        })),
    }
}
