//! `kc demo`: create a container, start an init in it, list `/proc/containers`, signal,
//! kill and wait for it, printing each step (uapi.md §1–3 in one run).

use std::ffi::CStr;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};
use libc::c_int;

use crate::calls;
use crate::uapi::*;
use crate::util::{
    describe_rusage, describe_status, errno_err, flag_names, read_byte, reap, step, wait_container,
    write_raw,
};

/// `kc demo` takes no arguments.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn main(_: Args) -> Result<u8> {
    demo().map(|()| 0)
}

fn show_proc() -> Result<()> {
    step("cat /proc/containers");
    for line in std::fs::read_to_string("/proc/containers")
        .context("read /proc/containers")?
        .lines()
    {
        println!("    {line}");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

static ACK_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigusr1(_: c_int) {
    write_raw(1, b"    [init] got SIGUSR1\n");
    write_raw(ACK_FD.load(std::sync::atomic::Ordering::Relaxed), b"a");
}

/// The demo's init: once `go` says so, names its host, starts one member, reports on
/// `ready`, then waits for signals.
fn demo_init(go: RawFd, ready: RawFd) -> ! {
    let name = b"demo";
    let _ = read_byte(go);
    // SAFETY: plain syscalls on local buffers; the handler only calls write(2).
    unsafe {
        libc::sethostname(name.as_ptr().cast(), name.len());
        let mut uts: libc::utsname = std::mem::zeroed();
        libc::uname(&mut uts);
        let host = CStr::from_ptr(uts.nodename.as_ptr()).to_string_lossy();
        println!(
            "    [init] pid {}, uid {}, hostname {host:?}",
            libc::getpid(),
            libc::getuid()
        );
        libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as libc::sighandler_t);
        match libc::fork() {
            0 => {
                println!("    [member] pid {}, child of the init", libc::getpid());
                write_raw(ready, b"m");
                loop {
                    libc::pause();
                }
            }
            -1 => println!("    [init] fork failed"),
            _ => {}
        }
        write_raw(ready, b"i");
        loop {
            libc::pause();
        }
    }
}

fn demo() -> Result<()> {
    let uts = rustix::system::uname();
    step(&format!(
        "Linux {}: container_create is system call {__NR_container_create}, container_wait {__NR_container_wait}",
        uts.release().to_string_lossy()
    ));
    let name = c"demo";
    let flags = CONTAINER_NEW_UTS_NS
        | CONTAINER_NEW_IPC_NS
        | CONTAINER_NEW_PID_NS
        | CONTAINER_NEW_NET_NS
        | CONTAINER_FD_CLOEXEC;
    let cfd = calls::container_create(name, flags).map_err(|e| errno_err("container_create", e))?;
    let fd = cfd.as_raw_fd();
    step(&format!(
        "container_create({name:?}, {}) = {fd}",
        flag_names(flags)
    ));
    show_proc()?;

    let sock = calls::container_socket(fd, libc::AF_UNIX, libc::SOCK_DGRAM, 0)
        .map_err(|e| errno_err("container_socket", e))?;
    step(&format!(
        "container_socket({fd}, AF_UNIX, SOCK_DGRAM) = {}: a socket in the container's network namespace",
        sock.as_raw_fd()
    ));
    drop(sock);

    let (ready_rx, ready_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    let (go_rx, go_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    let (ack_rx, ack_tx) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    ACK_FD.store(ack_tx.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    let _ = std::io::stdout().flush();
    // SAFETY: kc is single-threaded; the child runs demo_init and never returns.
    let pid = match unsafe { calls::fork_into_container(fd) } {
        Ok(0) => demo_init(go_rx.as_raw_fd(), ready_tx.as_raw_fd()),
        Ok(pid) => pid,
        Err(e) => return Err(errno_err("fork_into_container", e)),
    };
    step(&format!(
        "fork_into_container({fd}) = {pid}: the init, pid {pid} here"
    ));
    write_raw(go_tx.as_raw_fd(), b"g");
    read_byte(ready_rx.as_raw_fd())?;
    read_byte(ready_rx.as_raw_fd())?;
    show_proc()?;

    calls::container_kill(fd, 1, libc::SIGUSR1).map_err(|e| errno_err("container_kill", e))?;
    read_byte(ack_rx.as_raw_fd())?;
    step(&format!(
        "container_kill({fd}, 1, SIGUSR1) = 0: the init alone"
    ));

    calls::container_kill(fd, 0, libc::SIGKILL).map_err(|e| errno_err("container_kill", e))?;
    step(&format!(
        "container_kill({fd}, 0, SIGKILL) = 0: every member"
    ));
    let (status, ru) = wait_container(&cfd)?;
    step(&format!(
        "container_wait({fd}) = 0: init {}; {}",
        describe_status(status),
        describe_rusage(&ru)
    ));
    reap(pid)?;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 0) };
    step(&format!(
        "poll({fd}) = {:#x} (POLLIN|POLLHUP: dead)",
        pfd.revents
    ));
    show_proc()?;
    drop(cfd);
    step(&format!("close({fd})"));
    show_proc()
}
