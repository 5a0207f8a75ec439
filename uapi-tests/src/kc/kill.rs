//! `kc kill [--fd N] [--init] [SIG]`: container_kill on the inherited container fd
//! (default $KC_FD): SIG (default TERM; a name with or without SIG, or a number, 0 only
//! checks) to every member, descendants' included, or with --init to the init alone.

use std::os::fd::{AsRawFd, RawFd};

use anyhow::Result;
use rustix::io::Errno;

use crate::calls;
use crate::util::{errno_err, inherited_cfd, parse_signal, signal_name};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container fd (default: $KC_FD, set by `kc create`).
    #[arg(long, value_name = "N")]
    pub fd: Option<RawFd>,
    /// Signal the init only.
    #[arg(long)]
    pub init: bool,
    /// The signal: TERM, SIGKILL, 9, ... (0 checks only).
    #[arg(value_name = "SIG", default_value = "TERM", value_parser = parse_signal)]
    pub sig: i32,
}

pub fn main(args: Args) -> Result<u8> {
    let cfd = inherited_cfd(args.fd)?;
    let initonly = i32::from(args.init);
    calls::container_kill(cfd.as_raw_fd(), initonly, args.sig).map_err(|e| {
        let sig = if args.sig == 0 {
            "0".to_string()
        } else {
            signal_name(args.sig)
        };
        errno_err(
            format!("container_kill(fd {}, {initonly}, {sig})", cfd.as_raw_fd()),
            e,
        )
        .context(match e {
            Errno::SRCH => "no init has started in the container yet, or it has exited",
            Errno::PERM => "kill(2)'s permission rules let kc signal no member",
            _ => "signalling the container",
        })
    })?;
    Ok(0)
}
