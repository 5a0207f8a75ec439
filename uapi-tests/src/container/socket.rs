//! container_socket (uapi.md §3): socket(2) in the container's network namespace.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{ensure, Context, Result};
use libc::{c_int, c_long};
use rustix::io::FdFlags;

use super::calls::container_socket;
use super::helpers::{self as h, Call, Pipe, Proc};
use crate::sys::{self, check, expect_errno, ok, Errno};
use crate::uapi::*;

/// What socket(2) says to the same arguments in the caller's namespace.
fn plain_socket(domain: c_int, ty: c_int, protocol: c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: plain socket(2).
    sys::owned_fd(check(
        unsafe { libc::socket(domain, ty, protocol) } as c_long
    ))
}

/// EBADF for -1 and a closed fd, EINVAL for /dev/null and a pipe.
pub fn bad_fd() -> Result<()> {
    h::require(&[Call::Socket])?;
    let bad = h::bad_fds()?;
    for &(what, fd, want) in &bad.cases {
        expect_errno(
            &format!("container_socket({what}, AF_UNIX, SOCK_STREAM)"),
            container_socket(fd, libc::AF_UNIX, libc::SOCK_STREAM, 0),
            want,
        )?;
    }
    Ok(())
}

/// SOCK_CLOEXEC sets FD_CLOEXEC, SOCK_NONBLOCK sets O_NONBLOCK, neither sets neither; the
/// socket has the requested domain and type; any other bit above the type is EINVAL
/// (as socket(2) says), and type 99 fails as socket(2) fails.
pub fn flags() -> Result<()> {
    h::require(&[Call::Create, Call::Socket])?;
    let cfd = h::create(&h::unique_name("sockflags"), 0)?;
    let fd = cfd.as_raw_fd();
    for (what, extra, cloexec, nonblock) in [
        ("", 0, false, false),
        ("|SOCK_CLOEXEC", libc::SOCK_CLOEXEC, true, false),
        ("|SOCK_NONBLOCK", libc::SOCK_NONBLOCK, false, true),
        (
            "|SOCK_CLOEXEC|SOCK_NONBLOCK",
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            true,
            true,
        ),
    ] {
        for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
            let what = format!("container_socket(cfd, AF_UNIX, {ty}{what})");
            let sock = ok(&what, container_socket(fd, libc::AF_UNIX, ty | extra, 0))?;
            let fd_flags = rustix::io::fcntl_getfd(&sock).context("F_GETFD")?;
            ensure!(
                fd_flags.contains(FdFlags::CLOEXEC) == cloexec,
                "{what}: fd flags {fd_flags:?}"
            );
            let fl = rustix::fs::fcntl_getfl(&sock).context("F_GETFL")?;
            ensure!(
                fl.contains(rustix::fs::OFlags::NONBLOCK) == nonblock,
                "{what}: file status flags {fl:?}"
            );
            let domain = rustix::net::sockopt::socket_domain(&sock).context("SO_DOMAIN")?;
            ensure!(
                domain == rustix::net::AddressFamily::UNIX,
                "{what}: domain {domain:?}"
            );
            let got = rustix::net::sockopt::socket_type(&sock).context("SO_TYPE")?;
            ensure!(
                got.as_raw() as c_int == ty,
                "{what}: SO_TYPE {got:?}, expected {ty}"
            );
        }
    }

    for junk in [0x10, 0x20, 0x40, 0x100, 0x1000, 0x10_0000, 0x4000_0000] {
        let ty = libc::SOCK_STREAM | junk;
        let want = plain_socket(libc::AF_UNIX, ty, 0);
        expect_errno(&format!("socket(AF_UNIX, {ty:#x})"), want, Errno::INVAL)?;
        expect_errno(
            &format!("container_socket(cfd, AF_UNIX, SOCK_STREAM|{junk:#x})"),
            container_socket(fd, libc::AF_UNIX, ty, 0),
            Errno::INVAL,
        )?;
    }
    let Err(want) = plain_socket(libc::AF_UNIX, 99, 0) else {
        anyhow::bail!("socket(AF_UNIX, 99) succeeded");
    };
    expect_errno(
        "container_socket(cfd, AF_UNIX, type 99)",
        container_socket(fd, libc::AF_UNIX, 99, 0),
        want,
    )
}

/// socket(2)'s errors: EAFNOSUPPORT for a bad domain (1000, -1, AF_MAX), EPROTONOSUPPORT
/// for AF_UNIX protocol 7, and whatever socket(2) says for a bad type (SOCK_PACKET 10).
pub fn errors() -> Result<()> {
    h::require(&[Call::Create, Call::Socket])?;
    let cfd = h::create(&h::unique_name("sockerr"), 0)?;
    let fd = cfd.as_raw_fd();
    for domain in [1000, -1, 46 /* AF_MAX in 7.3 */] {
        expect_errno(
            &format!("socket({domain}, SOCK_DGRAM)"),
            plain_socket(domain, libc::SOCK_DGRAM, 0),
            Errno::AFNOSUPPORT,
        )?;
        expect_errno(
            &format!("container_socket(cfd, {domain}, SOCK_DGRAM)"),
            container_socket(fd, domain, libc::SOCK_DGRAM, 0),
            Errno::AFNOSUPPORT,
        )?;
    }
    expect_errno(
        "container_socket(cfd, AF_UNIX, SOCK_DGRAM, 7)",
        container_socket(fd, libc::AF_UNIX, libc::SOCK_DGRAM, 7),
        Errno::PROTONOSUPPORT,
    )?;
    let Err(want) = plain_socket(libc::AF_UNIX, 10, 0) else {
        anyhow::bail!("socket(AF_UNIX, SOCK_PACKET) succeeded");
    };
    expect_errno(
        "container_socket(cfd, AF_UNIX, SOCK_PACKET)",
        container_socket(fd, libc::AF_UNIX, 10, 0),
        want,
    )
}

/// Works before and after the init starts; the socket is in the container's network
/// namespace (SIOCGSKNS): with NEW_NET_NS the init's, not ours, both times; without it,
/// ours.
pub fn lifecycle() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Socket])?;
    let ours = h::ns_inode(None, "net")?;
    for (what, flags) in [("NEW_NET_NS", CONTAINER_NEW_NET_NS), ("no NEW_NET_NS", 0)] {
        let cfd = h::create(&h::unique_name("socklife"), flags)?;
        let socket = |stage: &str| -> Result<u64> {
            let sock = ok(
                &format!("container_socket({what}, {stage})"),
                container_socket(cfd.as_raw_fd(), libc::AF_UNIX, libc::SOCK_DGRAM, 0),
            )?;
            h::socket_netns_inode(&sock)
        };
        let before = socket("before start")?;
        let gate = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            gate.wait();
            Ok(0)
        })?;
        let init_net = h::ns_inode(Some(init.pid()), "net")?;
        let after = socket("running")?;
        gate.open(1)?;
        init.wait_exit(0)?;
        let want_same = flags == 0;
        ensure!(
            before == init_net && after == init_net && (init_net == ours) == want_same,
            "{what}: socket netns before start {before}, running {after}, init's {init_net}, ours {ours}"
        );
    }
    Ok(())
}
