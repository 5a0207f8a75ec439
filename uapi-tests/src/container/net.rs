//! Network isolation through container_socket (uapi.md §3) the way a runtime uses it:
//! sockets made in a container's NEW_NET_NS serve on loopback ports of their own, and an
//! rtnetlink socket made there builds the container's link to the outside (a veth pair
//! with one end moved out) and carries traffic. No process runs in the containers: the
//! supervisor does it all through container_socket.
//!
//! Each test first moves into a network namespace of its own (`unshare(CLONE_NEWNET)`,
//! as `ns::net` does), so nothing it makes shows in the guest's namespace, and all of it
//! goes when the test process ends.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use libc::c_int;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{netdevice, netlink, AddressFamily, RecvFlags, SendFlags, SocketFlags};
use rustix::net::{SocketAddrAny, SocketType};

use super::calls::container_socket;
use super::helpers::{self as h, Call};
use crate::sys::{self, errno_name, expect_errno, ok, Errno};
use crate::uapi::*;

/// How long a test waits for a packet, a connection or a link state before it fails
/// (a bound for a failure, not a timing assumption).
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Namespaces and interfaces

/// Moves the test process into a new network namespace of its own.
fn enter_new_netns() -> Result<()> {
    // SAFETY: the test process is single-threaded, and CLONE_NEWNET touches no state
    // (fd table, memory) that other code of this process relies on.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .context("unshare(CLONE_NEWNET)")
}

/// An `ifreq` naming interface `name`, with `flags` in its union.
fn ifreq(name: &str, flags: c_int) -> Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ensure!(
        name.len() < ifr.ifr_name.len(),
        "interface name {name:?} too long"
    );
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // ifr_flags is a short: IFF_LOWER_UP and above do not fit and are not used here.
    ifr.ifr_ifru.ifru_flags = flags as i16;
    Ok(ifr)
}

/// `SIOCGIFFLAGS`: the flags of interface `name` in `sock`'s network namespace.
fn if_flags(sock: &OwnedFd, name: &str) -> Result<c_int> {
    let mut ifr = ifreq(name, 0)?;
    // SAFETY: SIOCGIFFLAGS reads and writes one ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        bail!("SIOCGIFFLAGS({name}): {}", errno_name(sys::last_errno()));
    }
    // SAFETY: SIOCGIFFLAGS filled in the flags member; widened without sign extension.
    Ok(c_int::from(unsafe { ifr.ifr_ifru.ifru_flags } as u16))
}

/// `SIOCSIFFLAGS`: brings interface `name` up in `sock`'s network namespace and checks
/// that `SIOCGIFFLAGS` then reports IFF_UP.
fn set_up(sock: &OwnedFd, name: &str) -> Result<()> {
    let mut ifr = ifreq(name, if_flags(sock, name)? | libc::IFF_UP)?;
    // SAFETY: SIOCSIFFLAGS reads one ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr) } < 0 {
        bail!(
            "SIOCSIFFLAGS({name}, IFF_UP): {}",
            errno_name(sys::last_errno())
        );
    }
    let flags = if_flags(sock, name)?;
    ensure!(
        flags & libc::IFF_UP != 0,
        "{name} still down after SIOCSIFFLAGS(IFF_UP): flags {flags:#x}"
    );
    Ok(())
}

/// Waits until interface `name` is IFF_RUNNING (up with its carrier: the kernel's link
/// watch has made it operational and can transmit on it).
fn wait_running(sock: &OwnedFd, name: &str) -> Result<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let flags = if_flags(sock, name)?;
        if flags & libc::IFF_RUNNING != 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name} not IFF_RUNNING within {} s: flags {flags:#x}",
            LIMIT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `SIOCGIFINDEX`: the index of interface `name` in `sock`'s network namespace.
fn if_index(sock: &OwnedFd, name: &str) -> Result<u32, Errno> {
    netdevice::name_to_index(sock, name)
}

/// Waits until `fd` is readable; fails after `limit`.
fn wait_readable(fd: &OwnedFd, what: &str, limit: Duration) -> Result<()> {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: 0,
    };
    let n =
        rustix::event::poll(&mut fds, Some(&timeout)).with_context(|| format!("poll {what}"))?;
    ensure!(
        n == 1 && fds[0].revents().contains(PollFlags::IN),
        "{what}: nothing to read within {} s (revents {:?})",
        limit.as_secs(),
        fds[0].revents()
    );
    Ok(())
}

/// `poll` with a zero timeout: the events pending on `fd` now.
fn pending(fd: &OwnedFd, what: &str) -> Result<PollFlags> {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).with_context(|| format!("poll {what}"))?;
    Ok(fds[0].revents())
}

/// The IPv4 address `sock` is bound to, or its peer's.
fn v4(addr: Option<SocketAddrAny>, what: &str) -> Result<SocketAddrV4> {
    let addr = addr.with_context(|| format!("{what}: no address"))?;
    SocketAddrV4::try_from(addr).map_err(|e| anyhow::anyhow!("{what}: {}", errno_name(e)))
}

/// The inode of `sock`'s network namespace (SIOCGSKNS), with context.
fn netns_of(sock: &OwnedFd, what: &str) -> Result<u64> {
    h::socket_netns_inode(sock).with_context(|| format!("the network namespace of {what}"))
}

// ---------------------------------------------------------------------------------------
// rtnetlink, encoded by hand
//
// A netlink message is a 16-byte `struct nlmsghdr` (total length, type, flags, sequence
// number, sender port id) followed by a fixed "family" header of the message type
// (`struct ifinfomsg` for links, `struct ifaddrmsg` for addresses) and then attributes.
// An attribute (`struct rtattr`) is a 2-byte length (header included, padding not), a
// 2-byte type and its payload, padded to 4 bytes; a nested attribute's payload is more
// attributes. Everything is in host byte order except IP addresses (network order).

/// `VETH_INFO_PEER` of `<linux/veth.h>`: in a veth's IFLA_INFO_DATA, the peer's
/// `struct ifinfomsg` followed by the peer's own IFLA_* attributes.
const VETH_INFO_PEER: u16 = 1;

/// Netlink's alignment (NLMSG_ALIGNTO, RTA_ALIGNTO).
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One rtnetlink request under construction.
struct NlMsg {
    buf: Vec<u8>,
    /// Offsets of the nested attributes still open.
    open: Vec<usize>,
}

impl NlMsg {
    /// A request of `ty` with `flags` (NLM_F_REQUEST and NLM_F_ACK are added); the
    /// length and sequence number are filled in when it is sent.
    fn new(ty: u16, flags: c_int) -> NlMsg {
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK | flags) as u16;
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len
        buf.extend_from_slice(&ty.to_ne_bytes()); // nlmsg_type
        buf.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: 0, the kernel fills it
        NlMsg {
            buf,
            open: Vec::new(),
        }
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Appends raw bytes (a family header) and pads them.
    fn raw(mut self, bytes: &[u8]) -> NlMsg {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends attribute `ty` with `payload`.
    fn attr(mut self, ty: u16, payload: &[u8]) -> NlMsg {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes()); // rta_len
        self.buf.extend_from_slice(&ty.to_ne_bytes()); // rta_type
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// Appends a string attribute, NUL-terminated as iproute2 sends it.
    fn attr_str(self, ty: u16, s: &str) -> NlMsg {
        let mut payload = s.as_bytes().to_vec();
        payload.push(0);
        self.attr(ty, &payload)
    }

    fn attr_u32(self, ty: u16, v: u32) -> NlMsg {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// Opens nested attribute `ty`; its length is set by the matching `end`.
    fn begin(mut self, ty: u16) -> NlMsg {
        self.open.push(self.buf.len());
        self = self.attr(ty, &[]);
        self
    }

    fn end(mut self) -> NlMsg {
        if let Some(at) = self.open.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished message with sequence number `seq`.
    fn finish(mut self, seq: u32) -> Result<Vec<u8>> {
        ensure!(self.open.is_empty(), "netlink message with an open nest");
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        Ok(self.buf)
    }
}

/// `struct ifinfomsg`: family AF_UNSPEC, pad, type 0 (ARPHRD, only reported), then
/// the index (0: none yet), the flags and the mask of flags to change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8; // ifi_family; b[1] ifi_pad, b[2..4] ifi_type: 0
    b[4..8].copy_from_slice(&index.to_ne_bytes()); // ifi_index
    b[8..12].copy_from_slice(&flags.to_ne_bytes()); // ifi_flags
    b[12..16].copy_from_slice(&change.to_ne_bytes()); // ifi_change
    b
}

/// `struct ifaddrmsg` for an IPv4 address `/prefix` of universe scope on `index`.
fn ifaddrmsg(prefix: u8, index: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = libc::AF_INET as u8; // ifa_family
    b[1] = prefix; // ifa_prefixlen
    b[2] = 0; // ifa_flags
    b[3] = libc::RT_SCOPE_UNIVERSE; // ifa_scope
    b[4..8].copy_from_slice(&index.to_ne_bytes()); // ifa_index
    b
}

/// RTM_NEWLINK creating veth `name` in the socket's network namespace, its peer `peer`
/// in the network namespace `peer_ns` (an fd of /proc/PID/ns/net): what
/// `ip link add NAME type veth peer name PEER netns NSFD` sends.
fn new_veth(name: &str, peer: &str, peer_ns: &OwnedFd) -> NlMsg {
    NlMsg::new(libc::RTM_NEWLINK, libc::NLM_F_CREATE | libc::NLM_F_EXCL)
        .raw(&ifinfomsg(0, 0, 0))
        .attr_str(libc::IFLA_IFNAME, name)
        .begin(libc::IFLA_LINKINFO)
        .attr_str(libc::IFLA_INFO_KIND, "veth")
        .begin(libc::IFLA_INFO_DATA)
        .begin(VETH_INFO_PEER)
        .raw(&ifinfomsg(0, 0, 0))
        .attr_str(libc::IFLA_IFNAME, peer)
        .attr_u32(libc::IFLA_NET_NS_FD, peer_ns.as_raw_fd() as u32)
        .end()
        .end()
        .end()
}

/// RTM_NEWADDR adding `addr/prefix` to interface `index` (`ip addr add`): IFA_LOCAL is
/// the interface's address, IFA_ADDRESS the same on a broadcast link.
fn new_addr(index: u32, addr: Ipv4Addr, prefix: u8) -> NlMsg {
    NlMsg::new(libc::RTM_NEWADDR, libc::NLM_F_CREATE | libc::NLM_F_EXCL)
        .raw(&ifaddrmsg(prefix, index))
        .attr(libc::IFA_LOCAL, &addr.octets())
        .attr(libc::IFA_ADDRESS, &addr.octets())
}

/// RTM_NEWLINK setting IFF_UP on interface `index` (`ip link set dev X up`).
fn link_up(index: u32) -> NlMsg {
    let up = libc::IFF_UP as u32;
    NlMsg::new(libc::RTM_NEWLINK, 0).raw(&ifinfomsg(index, up, up))
}

/// An rtnetlink socket and the sequence number of its next request.
struct Rtnl {
    sock: OwnedFd,
    seq: u32,
    what: &'static str,
}

impl Rtnl {
    fn new(sock: OwnedFd, what: &'static str) -> Rtnl {
        Rtnl { sock, seq: 1, what }
    }

    /// Sends `msg` to the kernel and returns the errno of its ACK (an NLMSG_ERROR whose
    /// `nlmsgerr.error` is 0 on success), after checking that the ACK answers it.
    fn request(&mut self, msg: NlMsg) -> Result<Option<Errno>> {
        let seq = self.seq;
        self.seq += 1;
        let req = msg.finish(seq)?;
        let kernel = netlink::SocketAddrNetlink::new(0, 0);
        let n = rustix::net::sendto(&self.sock, &req, SendFlags::empty(), &kernel)
            .with_context(|| format!("sendto on {}", self.what))?;
        ensure!(
            n == req.len(),
            "{}: sent {n} of {} bytes",
            self.what,
            req.len()
        );
        wait_readable(&self.sock, self.what, LIMIT)?;
        let mut buf = vec![0u8; 8192];
        let (n, _, _) = rustix::net::recvfrom(&self.sock, &mut buf[..], RecvFlags::empty())
            .with_context(|| format!("recvfrom on {}", self.what))?;
        parse_ack(&buf[..n], seq, &req[4..6])
            .with_context(|| format!("{}: the answer to request {seq}", self.what))
    }

    /// `request` that must be acknowledged with error 0.
    fn call(&mut self, what: &str, msg: NlMsg) -> Result<()> {
        match self.request(msg).with_context(|| what.to_string())? {
            None => Ok(()),
            Some(e) => bail!("{what} through {}: ACK error {}", self.what, errno_name(e)),
        }
    }
}

/// Reads an ACK: `struct nlmsghdr` of type NLMSG_ERROR with sequence number `seq`,
/// then `struct nlmsgerr` (an int error, 0 or -errno, and the request's own header,
/// whose type must be `req_type`). None for error 0.
fn parse_ack(b: &[u8], seq: u32, req_type: &[u8]) -> Result<Option<Errno>> {
    let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    ensure!(b.len() >= 36, "{} bytes, too short for an ACK", b.len());
    let len = u32_at(0) as usize;
    let ty = u16::from_ne_bytes([b[4], b[5]]);
    ensure!(
        len <= b.len() && len >= 36,
        "nlmsg_len {len} in a {}-byte datagram",
        b.len()
    );
    ensure!(
        c_int::from(ty) == libc::NLMSG_ERROR,
        "message type {ty}, expected NLMSG_ERROR ({})",
        libc::NLMSG_ERROR
    );
    ensure!(
        u32_at(8) == seq,
        "sequence number {}, expected {seq}",
        u32_at(8)
    );
    ensure!(
        &b[24..26] == req_type,
        "the ACK quotes a request of type {:?}, expected {req_type:?}",
        &b[24..26]
    );
    let error = u32_at(16) as i32;
    ensure!(error <= 0, "nlmsgerr.error {error}");
    Ok((error < 0).then(|| Errno::from_raw_os_error(-error)))
}

// ---------------------------------------------------------------------------------------
// Two containers, one port

/// The port both containers serve on.
const PORT: u16 = 7473;

/// A NEW_NET_NS container with `lo` up and a listener on 127.0.0.1:PORT.
struct Server {
    name: &'static str,
    cfd: OwnedFd,
    listener: OwnedFd,
    netns: u64,
}

fn localhost() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT)
}

impl Server {
    fn start(name: &'static str) -> Result<Server> {
        let cfd = h::create(&h::unique_name(name), CONTAINER_NEW_NET_NS)?;
        let fd = cfd.as_raw_fd();
        let sock = ok(
            &format!("container_socket({name}, AF_INET, SOCK_STREAM, 0)"),
            container_socket(fd, libc::AF_INET, libc::SOCK_STREAM, 0),
        )?;
        // A new namespace's lo is down and has no 127.0.0.1 yet.
        expect_errno(
            &format!("{name}: bind(127.0.0.1:{PORT}) while lo is down"),
            rustix::net::bind(&sock, &localhost()),
            Errno::ADDRNOTAVAIL,
        )?;
        set_up(&sock, "lo").with_context(|| format!("{name}: lo up through container_socket"))?;
        let listener = ok(
            &format!("container_socket({name}, AF_INET, SOCK_STREAM|SOCK_NONBLOCK, 0)"),
            container_socket(
                fd,
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            ),
        )?;
        rustix::net::bind(&listener, &localhost())
            .with_context(|| format!("{name}: bind(127.0.0.1:{PORT})"))?;
        rustix::net::listen(&listener, 8).with_context(|| format!("{name}: listen"))?;
        // The address is taken now: a second socket in the same namespace cannot have it
        // (neither sets SO_REUSEADDR).
        expect_errno(
            &format!("{name}: a second bind(127.0.0.1:{PORT}) in the same container"),
            rustix::net::bind(&sock, &localhost()),
            Errno::ADDRINUSE,
        )?;
        let netns = netns_of(&listener, name)?;
        Ok(Server {
            name,
            cfd,
            listener,
            netns,
        })
    }

    /// Requires that no connection waits on the listener (poll and a non-blocking
    /// accept both say so).
    fn expect_nothing_pending(&self, after: &str) -> Result<()> {
        let what = format!("{}'s listener", self.name);
        let revents = pending(&self.listener, &what)?;
        ensure!(
            revents.is_empty(),
            "{what} after {after}: poll says {revents:?}, expected nothing pending"
        );
        expect_errno(
            &format!("accept on {what} after {after}"),
            rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC),
            Errno::AGAIN,
        )
    }
}

/// A client made in `from` by container_socket connects to 127.0.0.1:PORT and sends
/// `payload`: `from`'s listener accepts it (peer address = the client's local address,
/// accepted socket in `from`'s namespace) and reads exactly `payload` and then EOF;
/// `other`'s listener has nothing pending, and nor has `from`'s afterwards.
fn connect_within(from: &Server, other: &Server, payload: &[u8]) -> Result<()> {
    let what = format!("{}'s client", from.name);
    let client = ok(
        &format!("container_socket({}, AF_INET, SOCK_STREAM, 0)", from.name),
        container_socket(from.cfd.as_raw_fd(), libc::AF_INET, libc::SOCK_STREAM, 0),
    )?;
    rustix::net::connect(&client, &localhost())
        .with_context(|| format!("{what}: connect(127.0.0.1:{PORT})"))?;
    let local = v4(
        Some(rustix::net::getsockname(&client).context("getsockname")?),
        &what,
    )?;
    sys::write_all(&client, payload).with_context(|| format!("{what}: send"))?;
    drop(client); // the accepted side then reads EOF after the payload

    let listener = format!("{}'s listener", from.name);
    wait_readable(&from.listener, &listener, LIMIT)?;
    let (conn, peer) = rustix::net::acceptfrom_with(&from.listener, SocketFlags::CLOEXEC)
        .with_context(|| format!("accept on {listener}"))?;
    let peer = v4(peer, &format!("the peer accepted by {listener}"))?;
    ensure!(
        peer == local,
        "{listener} accepted a connection from {peer}, {what} is {local}"
    );
    let conn_ns = netns_of(&conn, "the accepted socket")?;
    ensure!(
        conn_ns == from.netns,
        "the accepted socket is in netns {conn_ns}, {}'s is {}",
        from.name,
        from.netns
    );
    let got =
        sys::read_to_end(&conn).with_context(|| format!("read on {listener}'s connection"))?;
    ensure!(
        got == payload,
        "{listener}'s connection read {got:?}, {what} sent {payload:?}"
    );
    let after = format!("{what} connected");
    other.expect_nothing_pending(&after)?;
    from.expect_nothing_pending(&after)
}

/// Two NEW_NET_NS containers, lo brought up in each through container_socket (bind to
/// 127.0.0.1 is EADDRNOTAVAIL before): each binds 127.0.0.1:PORT and listens, and a
/// second bind of it in the same container is EADDRINUSE; the two listeners are in
/// different namespaces, neither ours. A container_socket client of A connecting to
/// 127.0.0.1:PORT reaches A's listener (exact bytes, peer address) and B's has nothing
/// pending (poll, accept EAGAIN); the same from B to B. In our own namespace (lo up)
/// nothing listens on the port: connect is ECONNREFUSED.
pub fn same_port() -> Result<()> {
    h::require(&[Call::Create, Call::Socket])?;
    enter_new_netns()?;
    let ours = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("socket(AF_INET, SOCK_STREAM)")?;
    set_up(&ours, "lo").context("lo up in our namespace")?;
    let our_ns = netns_of(&ours, "our socket")?;

    let a = Server::start("A")?;
    let b = Server::start("B")?;
    ensure!(
        a.netns != b.netns && a.netns != our_ns && b.netns != our_ns,
        "network namespaces: A's listener {}, B's {}, ours {our_ns}: expected three",
        a.netns,
        b.netns
    );
    connect_within(&a, &b, b"to A through A's own lo\n")?;
    connect_within(&b, &a, b"to B, same port, other namespace\n")?;
    expect_errno(
        &format!("connect(127.0.0.1:{PORT}) in our namespace"),
        rustix::net::connect(&ours, &localhost()),
        Errno::CONNREFUSED,
    )
}

// ---------------------------------------------------------------------------------------
// A veth pair between a container and us

/// The container's end of the pair and its address, and ours.
const INSIDE: &str = "kc-veth-in";
const OUTSIDE: &str = "kc-veth-out";
const INSIDE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 73, 4, 1);
const OUTSIDE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 73, 4, 2);
const PREFIX: u8 = 24;
const INSIDE_PORT: u16 = 4001;
const OUTSIDE_PORT: u16 = 4002;

/// Receives one datagram on `sock` within LIMIT: its bytes and source address.
fn recv_datagram(sock: &OwnedFd, what: &str) -> Result<(Vec<u8>, SocketAddrV4)> {
    wait_readable(sock, what, LIMIT)?;
    let mut buf = vec![0u8; 2048];
    let (n, full, from) = rustix::net::recvfrom(sock, &mut buf[..], RecvFlags::DONTWAIT)
        .with_context(|| format!("recvfrom on {what}"))?;
    ensure!(n == full, "{what}: a {full}-byte datagram, truncated");
    buf.truncate(n);
    Ok((buf, v4(from, &format!("the source of {what}'s datagram"))?))
}

/// An rtnetlink socket made by container_socket in a NEW_NET_NS container creates a veth
/// pair there (ACK 0; the same request again is EEXIST) whose peer IFLA_NET_NS_FD puts in
/// our namespace: SIOCGIFINDEX finds the inside end only through the container's sockets
/// and the outside end only through ours (ENODEV otherwise). RTM_NEWADDR 10.73.4.1/24 and
/// link up go through that socket for the inside end, 10.73.4.2/24 and link up through an
/// ordinary rtnetlink socket for ours (each ACK 0); the inside address is EADDRNOTAVAIL to
/// bind in our namespace and the outside one in the container's. A UDP datagram from a
/// container_socket bound to 10.73.4.1:4001 reaches our socket on 10.73.4.2:4002 with
/// exactly its bytes and source 10.73.4.1:4001, and our answer comes back with source
/// 10.73.4.2:4002. Once the container and its sockets are closed, its namespace goes and
/// takes the pair with it: our end disappears (ENODEV).
pub fn veth() -> Result<()> {
    h::require(&[Call::Create, Call::Socket])?;
    enter_new_netns()?;
    let cfd = h::create(&h::unique_name("veth"), CONTAINER_NEW_NET_NS)?;
    let fd = cfd.as_raw_fd();
    // UDP sockets: ours, and the container's through container_socket.
    let udp = || {
        rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .context("socket(AF_INET, SOCK_DGRAM)")
    };
    let c_udp = || {
        ok(
            "container_socket(cfd, AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, 0)",
            container_socket(fd, libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0),
        )
    };
    let ours = udp()?;
    let theirs = c_udp()?;

    let mut c_rtnl = Rtnl::new(
        ok(
            "container_socket(cfd, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)",
            container_socket(
                fd,
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            ),
        )?,
        "the container's rtnetlink socket",
    );
    let mut rtnl = Rtnl::new(
        rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE
        )
        .context("socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)")?,
        "our rtnetlink socket",
    );
    let our_ns = netns_of(&ours, "our socket")?;
    let their_ns = netns_of(&c_rtnl.sock, "the container's rtnetlink socket")?;
    ensure!(
        their_ns != our_ns && netns_of(&theirs, "the container's UDP socket")? == their_ns,
        "the container's sockets are not in one namespace apart from ours ({our_ns})"
    );

    let netns = rustix::fs::open(
        "/proc/self/ns/net",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("open /proc/self/ns/net")?;
    c_rtnl.call(
        &format!("RTM_NEWLINK veth {INSIDE}, peer {OUTSIDE} in our namespace"),
        new_veth(INSIDE, OUTSIDE, &netns),
    )?;
    // The same request again: the name is taken in the container's namespace now.
    let again = c_rtnl
        .request(new_veth(INSIDE, OUTSIDE, &netns))
        .context("RTM_NEWLINK of the same pair again")?;
    ensure!(
        again == Some(Errno::EXIST),
        "RTM_NEWLINK of the same pair again (NLM_F_EXCL): ACK error {}, expected EEXIST",
        again.map_or("0".to_string(), errno_name)
    );
    drop(netns);

    let inside = ok(
        &format!("SIOCGIFINDEX({INSIDE}) in the container"),
        if_index(&theirs, INSIDE),
    )?;
    let outside = ok(
        &format!("SIOCGIFINDEX({OUTSIDE}) in our namespace"),
        if_index(&ours, OUTSIDE),
    )?;
    expect_errno(
        &format!("SIOCGIFINDEX({OUTSIDE}) in the container"),
        if_index(&theirs, OUTSIDE),
        Errno::NODEV,
    )?;
    expect_errno(
        &format!("SIOCGIFINDEX({INSIDE}) in our namespace"),
        if_index(&ours, INSIDE),
        Errno::NODEV,
    )?;

    c_rtnl.call(
        &format!("RTM_NEWADDR {INSIDE_ADDR}/{PREFIX} on {INSIDE}"),
        new_addr(inside, INSIDE_ADDR, PREFIX),
    )?;
    c_rtnl.call(&format!("RTM_NEWLINK {INSIDE} up"), link_up(inside))?;
    rtnl.call(
        &format!("RTM_NEWADDR {OUTSIDE_ADDR}/{PREFIX} on {OUTSIDE}"),
        new_addr(outside, OUTSIDE_ADDR, PREFIX),
    )?;
    rtnl.call(&format!("RTM_NEWLINK {OUTSIDE} up"), link_up(outside))?;
    wait_running(&theirs, INSIDE)?;
    wait_running(&ours, OUTSIDE)?;

    let inside_at = SocketAddrV4::new(INSIDE_ADDR, INSIDE_PORT);
    let outside_at = SocketAddrV4::new(OUTSIDE_ADDR, OUTSIDE_PORT);
    // Each address exists only in its own namespace.
    let probe = udp()?;
    expect_errno(
        &format!("bind({inside_at}) in our namespace"),
        rustix::net::bind(&probe, &inside_at),
        Errno::ADDRNOTAVAIL,
    )?;
    let probe = c_udp()?;
    expect_errno(
        &format!("bind({outside_at}) in the container"),
        rustix::net::bind(&probe, &outside_at),
        Errno::ADDRNOTAVAIL,
    )?;
    drop(probe);
    rustix::net::bind(&theirs, &inside_at)
        .with_context(|| format!("bind the container's UDP socket to {inside_at}"))?;
    rustix::net::bind(&ours, &outside_at)
        .with_context(|| format!("bind our UDP socket to {outside_at}"))?;

    let ping = b"kcontainer veth: container -> host\n";
    let n = rustix::net::sendto(&theirs, ping, SendFlags::empty(), &outside_at)
        .with_context(|| format!("sendto({outside_at}) from the container"))?;
    ensure!(n == ping.len(), "sent {n} of {} bytes", ping.len());
    let (got, from) = recv_datagram(&ours, "our UDP socket")?;
    ensure!(
        got == ping && from == inside_at,
        "our socket received {got:?} from {from}, expected {ping:?} from {inside_at}"
    );

    let pong = b"kcontainer veth: host -> container\n";
    let n = rustix::net::sendto(&ours, pong, SendFlags::empty(), &inside_at)
        .with_context(|| format!("sendto({inside_at}) from our namespace"))?;
    ensure!(n == pong.len(), "sent {n} of {} bytes", pong.len());
    let (got, from) = recv_datagram(&theirs, "the container's UDP socket")?;
    ensure!(
        got == pong && from == outside_at,
        "the container's socket received {got:?} from {from}, expected {pong:?} from {outside_at}"
    );

    // Nothing else holds the container's namespace: no init ever ran.
    drop((theirs, c_rtnl, cfd));
    let deadline = Instant::now() + LIMIT;
    loop {
        match if_index(&ours, OUTSIDE) {
            Err(Errno::NODEV) => return Ok(()),
            Err(e) => bail!("SIOCGIFINDEX({OUTSIDE}) after close: {}", errno_name(e)),
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) => bail!(
                "{OUTSIDE} still in our namespace {} s after the container and its sockets \
                 were closed (its namespace was not freed)",
                LIMIT.as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_request_encoding() {
        let ns = crate::container::helpers::dev_null().unwrap();
        let fd = ns.as_raw_fd() as u32;
        let msg = new_veth("a", "bc", &ns).finish(7).unwrap();
        let mut want: Vec<u8> = Vec::new();
        let u16b = |v: u16| v.to_ne_bytes();
        let u32b = |v: u32| v.to_ne_bytes();
        let flags =
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        // nlmsghdr: length filled in below, RTM_NEWLINK, flags, seq 7, pid 0.
        want.extend(u32b(0));
        want.extend(u16b(libc::RTM_NEWLINK));
        want.extend(u16b(flags));
        want.extend(u32b(7));
        want.extend(u32b(0));
        want.extend(ifinfomsg(0, 0, 0));
        want.extend([6, 0, 3, 0, b'a', 0, 0, 0]); // IFLA_IFNAME "a\0", padded
        let linkinfo = want.len();
        want.extend([0, 0, 18, 0]); // IFLA_LINKINFO, length below
        want.extend([9, 0, 1, 0, b'v', b'e', b't', b'h', 0, 0, 0, 0]); // IFLA_INFO_KIND
        want.extend([0, 0, 2, 0]); // IFLA_INFO_DATA: 4 + 4 + 16 + 8 + 8 = 40
        want.extend([36, 0, 1, 0]); // VETH_INFO_PEER: 4 + 16 + 8 + 8
        want.extend(ifinfomsg(0, 0, 0));
        want.extend([7, 0, 3, 0, b'b', b'c', 0, 0]); // IFLA_IFNAME "bc\0", padded
        want.extend([8, 0, 28, 0]); // IFLA_NET_NS_FD
        want.extend(u32b(fd));
        let data = linkinfo + 4 + 12;
        want[data..data + 2].copy_from_slice(&u16b(40));
        let total = want.len() as u16;
        want[linkinfo..linkinfo + 2].copy_from_slice(&u16b(total - linkinfo as u16));
        let len = want.len() as u32;
        want[0..4].copy_from_slice(&u32b(len));
        assert_eq!(msg, want);
    }

    #[test]
    fn address_request_encoding() {
        let msg = new_addr(5, Ipv4Addr::new(10, 1, 2, 3), 24)
            .finish(1)
            .unwrap();
        assert_eq!(msg.len(), 16 + 8 + 8 + 8);
        assert_eq!(&msg[16..24], &[libc::AF_INET as u8, 24, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&msg[24..32], &[8, 0, 2, 0, 10, 1, 2, 3]); // IFA_LOCAL
        assert_eq!(&msg[32..40], &[8, 0, 1, 0, 10, 1, 2, 3]); // IFA_ADDRESS
    }

    #[test]
    fn acks() {
        let ack = |ty: u16, seq: u32, error: i32, quoted: u16| {
            let mut b = Vec::new();
            b.extend(36u32.to_ne_bytes());
            b.extend(ty.to_ne_bytes());
            b.extend(0u16.to_ne_bytes());
            b.extend(seq.to_ne_bytes());
            b.extend(0u32.to_ne_bytes());
            b.extend(error.to_ne_bytes());
            b.extend(36u32.to_ne_bytes());
            b.extend(quoted.to_ne_bytes());
            b.extend([0; 10]);
            b
        };
        let req = libc::RTM_NEWLINK.to_ne_bytes();
        let err = libc::NLMSG_ERROR as u16;
        let newlink = libc::RTM_NEWLINK;
        assert_eq!(parse_ack(&ack(err, 3, 0, newlink), 3, &req).unwrap(), None);
        assert_eq!(
            parse_ack(&ack(err, 3, -libc::EEXIST, newlink), 3, &req).unwrap(),
            Some(Errno::EXIST)
        );
        assert!(parse_ack(&ack(err, 4, 0, newlink), 3, &req).is_err());
        assert!(parse_ack(&ack(3, 3, 0, newlink), 3, &req).is_err());
        assert!(parse_ack(&ack(err, 3, 0, libc::RTM_NEWADDR), 3, &req).is_err());
        assert!(parse_ack(&ack(err, 3, 0, newlink)[..20], 3, &req).is_err());
    }
}
