//! `kc run [--ns LIST] [--join NSFILE]... [--cgroup DIR] [--kill-on-close] [--rootfs DIR]
//! [--keyd] [--supervise [--allow-bind HOSTPATH]...] NAME -- CMD...`: create a container,
//! run CMD as its init, wait for the container to die, print init's status on stderr and
//! exit with it (N, or 128 + the signal).

use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::uapi::*;
use crate::util::{
    describe_rusage, describe_status, exit_code, parse_ns, reap, wait_container, Argv, DEFAULT_NS,
};
use crate::{keyd, rootfs, start, supervise};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Namespaces the container gets new, a comma-separated subset of fs, emptyfs,
    /// cgroup, uts, ipc, user, pid, net, or "none".
    #[arg(long, value_name = "LIST", default_value = DEFAULT_NS, value_parser = parse_ns)]
    pub ns: u32,
    /// SIGKILL every member when kc's container fd is closed (CONTAINER_KILL_ON_CLOSE).
    #[arg(long)]
    pub kill_on_close: bool,
    #[command(flatten)]
    pub adopt: crate::part4::Adopt,
    /// Assemble the root from outside: an empty mount namespace, a tmpfs root made in
    /// the container's namespaces, DIR copied in through the cfd, procfs at /proc.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Answer the container's key requests inside it while it runs (as `kc keyd`).
    #[arg(long)]
    pub keyd: bool,
    /// Serve the members' mount and mknod requests by policy (as `kc supervise`).
    #[arg(long)]
    pub supervise: bool,
    #[command(flatten)]
    pub supervise_opts: supervise::Opts,
    /// The container's name (at most 23 bytes, no '/').
    pub name: String,
    /// The init's command.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

pub fn main(args: Args) -> Result<u8> {
    if !args.supervise
        && (!args.supervise_opts.allow_bind.is_empty() || args.supervise_opts.verbose)
    {
        bail!("--allow-bind and --verbose are options of --supervise");
    }
    let mut flags = args.ns | CONTAINER_FD_CLOEXEC;
    if args.kill_on_close {
        flags |= CONTAINER_KILL_ON_CLOSE;
    }
    if let Some(dir) = &args.rootfs {
        if flags & CONTAINER_NEW_FS_NS != 0 {
            bail!("--rootfs makes an empty mount namespace: drop \"fs\" from --ns");
        }
        rootfs::check_dir(dir)?;
        flags |= CONTAINER_NEW_EMPTY_FS_NS;
    }
    let argv = Argv::new(&args.cmd)?;
    let name = &args.name;
    let cfd = crate::util::create_container(name, flags)?;
    args.adopt.apply(cfd.as_fd())?;
    if let Some(dir) = &args.rootfs {
        rootfs::assemble_root(cfd.as_fd(), dir)?;
    }
    // Before the init starts, so that its first request already goes to it.
    let mut daemon = if args.keyd {
        Some(keyd::spawn(
            cfd.as_fd(),
            &["*".to_string()],
            keyd::Limits::default(),
            true,
        )?)
    } else {
        None
    };
    let mut sup = None;
    let pid = if args.supervise {
        let s = supervise::Supervisor::start(cfd.as_fd(), &argv, &args.supervise_opts)?;
        let pid = s.init;
        sup = Some(s);
        pid
    } else {
        start::fork_exec(cfd.as_fd(), &argv)?
    };
    supervise::ignore_terminal_signals();
    if let Some(daemon) = &mut daemon {
        daemon.start(pid)?;
    }
    if let Some(s) = &mut sup {
        s.serve(cfd.as_fd())?;
    }
    let (status, ru) = wait_container(&cfd)?;
    if let Some(daemon) = daemon {
        daemon.wait()?;
    }
    reap(pid)?;
    if let Some(s) = &sup {
        eprintln!("kc: container {name:?}: supervisor: {}", s.counts.summary());
    }
    eprintln!(
        "kc: container {name:?}: init {}; {}",
        describe_status(status),
        describe_rusage(&ru)
    );
    Ok(exit_code(status))
}
