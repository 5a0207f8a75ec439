//! What each CONTAINER_NEW_*_NS flag isolates (uapi.md §2, §3): the init runs in the
//! flagged new namespaces and in the creator's for the rest.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use libc::c_int;

use super::calls::container_socket;
use super::helpers::{self as h, Call, Pipe, Proc, NAMESPACES, NOBODY};
use crate::sys::{self, ok, Errno, TempDir};
use crate::uapi::*;

/// `NS_GET_USERNS` of `<linux/nsfs.h>`: an fd for the owning user namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;

/// Starts an init that waits at `gate`, and returns it once it runs.
fn parked_init(cfd: &OwnedFd, gate: &Pipe) -> Result<Proc> {
    let ready = Pipe::new()?;
    let init = Proc::init(cfd, || {
        ready.send(b"r")?;
        gate.wait();
        Ok(0)
    })?;
    ready.recv(1, Some(&init))?;
    Ok(init)
}

/// The user namespace that owns `/proc/PID/ns/NS`, as an inode.
fn owner_inode(pid: libc::pid_t, ns: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/{ns}");
    let fd = rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("open {path}"))?;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd.
    let owner = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS) };
    if owner < 0 {
        bail!(
            "NS_GET_USERNS on {path}: {}",
            sys::errno_name(sys::last_errno())
        );
    }
    // SAFETY: the ioctl returned a new fd that we now own.
    let owner = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(owner) };
    Ok(rustix::fs::fstat(&owner)?.st_ino)
}

/// Each NEW flag alone gives the init a new namespace of exactly that kind and the
/// creator's for every other (/proc/PID/ns inodes); no flag, none new; all of them,
/// all new, the others owned by the new user namespace (NS_GET_USERNS).
pub fn inodes() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let ours: Vec<u64> = NAMESPACES
        .iter()
        .map(|ns| h::ns_inode(None, ns))
        .collect::<Result<_>>()?;
    let all = CONTAINER_NEW_FS_NS
        | CONTAINER_NEW_CGROUP_NS
        | CONTAINER_NEW_UTS_NS
        | CONTAINER_NEW_IPC_NS
        | CONTAINER_NEW_USER_NS
        | CONTAINER_NEW_PID_NS
        | CONTAINER_NEW_NET_NS;
    let cases: &[(&str, u32, &[&str])] = &[
        ("no flag", 0, &[]),
        ("NEW_FS_NS", CONTAINER_NEW_FS_NS, &["mnt"]),
        ("NEW_CGROUP_NS", CONTAINER_NEW_CGROUP_NS, &["cgroup"]),
        ("NEW_UTS_NS", CONTAINER_NEW_UTS_NS, &["uts"]),
        ("NEW_IPC_NS", CONTAINER_NEW_IPC_NS, &["ipc"]),
        ("NEW_USER_NS", CONTAINER_NEW_USER_NS, &["user"]),
        ("NEW_PID_NS", CONTAINER_NEW_PID_NS, &["pid"]),
        ("NEW_NET_NS", CONTAINER_NEW_NET_NS, &["net"]),
        ("every NEW flag", all, NAMESPACES),
    ];
    for &(what, flags, new) in cases {
        let cfd = h::create(&h::unique_name("ns"), flags)?;
        let gate = Pipe::new()?;
        let mut init = parked_init(&cfd, &gate)?;
        let mut wrong = Vec::new();
        for (ns, our) in NAMESPACES.iter().zip(&ours) {
            let theirs = h::ns_inode(Some(init.pid()), ns)?;
            if (theirs != *our) != new.contains(ns) {
                wrong.push(format!(
                    "{ns} {}",
                    if theirs == *our { "shared" } else { "new" }
                ));
            }
        }
        if flags == all && wrong.is_empty() {
            let user = h::ns_inode(Some(init.pid()), "user")?;
            for ns in NAMESPACES.iter().filter(|&&ns| ns != "user") {
                let owner = owner_inode(init.pid(), ns)?;
                if owner != user {
                    wrong.push(format!("{ns} owned by user ns {owner}, not the new {user}"));
                }
            }
        }
        gate.open(1)?;
        init.wait_exit(0)?;
        ensure!(
            wrong.is_empty(),
            "container_create({what}): init's namespaces: {}",
            wrong.join(", ")
        );
    }
    Ok(())
}

/// NEW_PID_NS: the init is pid 1 with parent 0, its first child pid 2 with parent 1,
/// and /proc/PID/status shows "NSpid:\tOUTER\t1"; without it the init's getpid() is the
/// pid fork_into_container returned.
pub fn pid() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    for flags in [CONTAINER_NEW_PID_NS, 0] {
        let cfd = h::create(&h::unique_name("pid"), flags)?;
        let report = Pipe::new()?;
        let gate = Pipe::new()?;
        let getpid = || i64::from(rustix::process::getpid().as_raw_nonzero().get());
        let getppid =
            || i64::from(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()));
        let mut init = Proc::init(&cfd, || {
            let mut child = Proc::fork("member", || {
                report.send_i64s(&[getpid(), getppid()])?;
                Ok(0)
            })?;
            child.wait_exit(0)?;
            report.send_i64s(&[getpid(), getppid()])?;
            gate.wait();
            Ok(0)
        })?;
        let member = report.recv_i64s(2, Some(&init))?;
        let ids = report.recv_i64s(2, Some(&init))?;
        let status = sys::read_text(format!("/proc/{}/status", init.pid()))?;
        gate.open(1)?;
        init.wait_exit(0)?;
        let outer = i64::from(init.pid());
        if flags == 0 {
            let me = i64::from(std::process::id());
            ensure!(
                ids == [outer, me],
                "init without NEW_PID_NS: [getpid, getppid] {ids:?}, expected [{outer}, {me}]"
            );
            continue;
        }
        ensure!(
            ids == [1, 0],
            "init with NEW_PID_NS: [getpid, getppid] {ids:?}, expected [1, 0]"
        );
        ensure!(
            member == [2, 1],
            "init's first child: [getpid, getppid] {member:?}, expected [2, 1]"
        );
        let want = format!("NSpid:\t{outer}\t1");
        ensure!(
            status.lines().any(|l| l == want),
            "/proc/{outer}/status lacks {want:?}:\n{status}"
        );
    }
    Ok(())
}

/// NEW_UTS_NS: the init starts with the creator's hostname, its sethostname() changes
/// its own and not ours.
pub fn uts() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    const NAME: &str = "kc-uts-inside";
    let before = sys::hostname()?;
    ensure!(before != NAME, "hostname is already {before:?}");
    let cfd = h::create(&h::unique_name("uts"), CONTAINER_NEW_UTS_NS)?;
    let report = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        report.send_str(&sys::hostname()?)?;
        rustix::system::sethostname(NAME.as_bytes()).context("sethostname")?;
        report.send_str(&sys::hostname()?)?;
        gate.wait();
        Ok(0)
    })?;
    let initial = report.recv_str(Some(&init))?;
    let set = report.recv_str(Some(&init))?;
    let ours = sys::hostname()?;
    gate.open(1)?;
    init.wait_exit(0)?;
    ensure!(
        initial == before,
        "init's first hostname {initial:?}, the creator's {before:?}"
    );
    ensure!(set == NAME, "init's hostname after sethostname: {set:?}");
    ensure!(
        ours == before,
        "our hostname changed from {before:?} to {ours:?}"
    );
    Ok(())
}

/// System V IPC objects made and removed by this test.
struct Ipc {
    shm: Vec<c_int>,
    msg: Vec<c_int>,
}

impl Drop for Ipc {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID on ids this test created.
        unsafe {
            for &id in &self.shm {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
            for &id in &self.msg {
                libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

fn shmget(key: libc::key_t, flags: c_int) -> Result<c_int, Errno> {
    // SAFETY: plain syscall.
    let id = unsafe { libc::shmget(key, 4096, flags) };
    if id < 0 {
        Err(sys::last_errno())
    } else {
        Ok(id)
    }
}

fn shm_stat(id: c_int) -> Result<(), Errno> {
    // SAFETY: shmid_ds is plain data; IPC_STAT fills it in.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid out pointer.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        Err(sys::last_errno())
    } else {
        Ok(())
    }
}

fn msg_stat(id: c_int) -> Result<(), Errno> {
    // SAFETY: msqid_ds is plain data; IPC_STAT fills it in.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid out pointer.
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        Err(sys::last_errno())
    } else {
        Ok(())
    }
}

fn errno_code(r: Result<c_int, Errno>) -> i64 {
    r.map_or_else(|e| -i64::from(e.raw_os_error()), i64::from)
}

/// NEW_IPC_NS: a shm segment and a message queue made outside are not visible inside
/// (IPC_STAT EINVAL, the key ENOENT), a keyed segment made inside is not visible
/// outside; without the flag the init sees ours.
pub fn ipc() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let base = 0x6b63_0000 | (std::process::id() as libc::key_t & 0xffff);
    let (key_out, key_in) = (base, base ^ 0x0100_0000);
    let mut ipc = Ipc {
        shm: Vec::new(),
        msg: Vec::new(),
    };
    let creat = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
    let shm = ok("shmget(IPC_PRIVATE)", shmget(libc::IPC_PRIVATE, creat))?;
    ipc.shm.push(shm);
    let keyed = ok("shmget(key)", shmget(key_out, creat))?;
    ipc.shm.push(keyed);
    // SAFETY: plain syscall.
    let msq = unsafe { libc::msgget(libc::IPC_PRIVATE, creat) };
    ensure!(msq >= 0, "msgget: {}", sys::errno_name(sys::last_errno()));
    ipc.msg.push(msq);

    for flags in [CONTAINER_NEW_IPC_NS, 0] {
        let cfd = h::create(&h::unique_name("ipc"), flags)?;
        let report = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            // Look before making anything: a new namespace numbers its first segment
            // like ours (id 0 in a fresh guest).
            let seen = [
                errno_code(shm_stat(shm).map(|()| 0)),
                errno_code(msg_stat(msq).map(|()| 0)),
                errno_code(shmget(key_out, 0)),
            ];
            let made = shmget(key_in, creat);
            report.send_i64s(&seen)?;
            report.send_i64(errno_code(made))?;
            if let Ok(id) = made {
                // SAFETY: removes the segment just made.
                unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            }
            Ok(0)
        })?;
        let got = report.recv_i64s(4, Some(&init))?;
        init.wait_exit(0)?;
        let einval = -i64::from(libc::EINVAL);
        let enoent = -i64::from(libc::ENOENT);
        if flags != 0 {
            ensure!(
                got[..3] == [einval, einval, enoent] && got[3] >= 0,
                "with NEW_IPC_NS, the init's [shm IPC_STAT, msg IPC_STAT, shmget(our key), \
                 shmget(new key)]: {got:?}, expected [-EINVAL, -EINVAL, -ENOENT, an id]"
            );
        } else {
            ensure!(
                got[..3] == [0, 0, i64::from(keyed)] && got[3] >= 0,
                "without NEW_IPC_NS, the init's [shm IPC_STAT, msg IPC_STAT, shmget(our key), \
                 shmget(new key)]: {got:?}, expected [0, 0, {keyed}, an id]"
            );
        }
        if flags != 0 {
            let outside = shmget(key_in, 0);
            ensure!(
                outside == Err(Errno::NOENT),
                "a segment the init made in its NEW_IPC_NS is visible outside: {outside:?}"
            );
        }
    }
    Ok(())
}

/// `ifreq` ioctls on a socket: (name of index 1, errno for index 2, flags of "lo").
fn netdevs(sock: &OwnedFd) -> Result<(String, Option<Errno>, i16)> {
    let name_of = |index: c_int| -> Result<String, Errno> {
        // SAFETY: ifreq is plain data; zeroed is valid.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        ifr.ifr_ifru.ifru_ifindex = index;
        // SAFETY: SIOCGIFNAME reads and writes one ifreq.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFNAME, &mut ifr) } < 0 {
            return Err(sys::last_errno());
        }
        // SAFETY: the kernel wrote a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(ifr.ifr_name.as_ptr()) };
        Ok(name.to_string_lossy().into_owned())
    };
    let first =
        name_of(1).map_err(|e| anyhow::anyhow!("SIOCGIFNAME(1): {}", sys::errno_name(e)))?;
    let second = name_of(2).err();
    Ok((first, second, lo_flags(sock)?))
}

fn lo_ifreq(flags: i16) -> libc::ifreq {
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = flags;
    ifr
}

fn lo_flags(sock: &OwnedFd) -> Result<i16> {
    let mut ifr = lo_ifreq(0);
    // SAFETY: SIOCGIFFLAGS reads and writes one ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        bail!("SIOCGIFFLAGS(lo): {}", sys::errno_name(sys::last_errno()));
    }
    // SAFETY: SIOCGIFFLAGS filled in the flags member.
    Ok(unsafe { ifr.ifr_ifru.ifru_flags })
}

fn unix_socket() -> Result<OwnedFd> {
    rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .context("socket(AF_UNIX)")
}

/// NEW_NET_NS, seen through container_socket (AF_UNIX, ifreq ioctls): the namespace has
/// only `lo` (index 1; index 2 is ENODEV) and it is down (flags exactly IFF_LOOPBACK),
/// while in ours (a fresh one with lo brought up) and in a container without the flag
/// lo is up; the init's own socket sees the same as container_socket.
pub fn net() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Socket])?;
    // SAFETY: a single-threaded test process may switch network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "unshare(CLONE_NEWNET): {}",
            sys::errno_name(sys::last_errno())
        );
    }
    let ours = unix_socket()?;
    let mut up = lo_ifreq(lo_flags(&ours)? | libc::IFF_UP as i16);
    // SAFETY: SIOCSIFFLAGS reads one ifreq.
    if unsafe { libc::ioctl(ours.as_raw_fd(), libc::SIOCSIFFLAGS, &mut up) } < 0 {
        bail!(
            "SIOCSIFFLAGS(lo, IFF_UP): {}",
            sys::errno_name(sys::last_errno())
        );
    }
    let iff_up = libc::IFF_UP as i16;
    let loopback = libc::IFF_LOOPBACK as i16;

    for flags in [CONTAINER_NEW_NET_NS, 0] {
        let cfd = h::create(&h::unique_name("net"), flags)?;
        let sock = ok(
            "container_socket(cfd, AF_UNIX, SOCK_DGRAM)",
            container_socket(cfd.as_raw_fd(), libc::AF_UNIX, libc::SOCK_DGRAM, 0),
        )?;
        let (first, second, lo) = netdevs(&sock)?;
        ensure!(first == "lo", "interface 1 is {first:?}, expected \"lo\"");
        ensure!(
            second == Some(Errno::NODEV),
            "SIOCGIFNAME(2): {second:?}, expected ENODEV (lo is the only interface)"
        );
        if flags != 0 {
            ensure!(
                lo == loopback,
                "lo in a NEW_NET_NS: flags {lo:#x}, expected IFF_LOOPBACK only (down)"
            );
        } else {
            ensure!(
                lo & iff_up != 0,
                "lo without NEW_NET_NS (ours, which is up): flags {lo:#x}"
            );
        }
        let report = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            let (_, _, lo) = netdevs(&unix_socket()?)?;
            report.send_i64(i64::from(lo))?;
            Ok(0)
        })?;
        let init_lo = report.recv_i64(Some(&init))?;
        init.wait_exit(0)?;
        ensure!(
            init_lo == i64::from(lo),
            "lo flags: {init_lo:#x} from the init's socket, {lo:#x} through container_socket"
        );
    }
    Ok(())
}

fn stat_ids(path: &std::path::Path) -> Result<[u32; 2]> {
    let m = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok([m.uid(), m.gid()])
}

/// NEW_USER_NS made by uid 65534: the init is uid/gid 0 inside, its uid_map and gid_map
/// are "0 65534 1", setgroups is "deny"; a file it creates is owned by 0:0 inside and
/// 65534:65534 outside. Made by root, the maps are "0 0 1" and setgroups "allow".
pub fn user() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let dir = TempDir::new("userns")?;
    rustix::fs::chmod(dir.path(), rustix::fs::Mode::from_raw_mode(0o777)).context("chmod")?;
    let file = dir.join("made-inside");
    let inside = |report: &Pipe, file: &PathBuf| -> Result<()> {
        let ids = [
            rustix::process::getuid().as_raw(),
            rustix::process::geteuid().as_raw(),
            rustix::process::getgid().as_raw(),
            rustix::process::getegid().as_raw(),
        ];
        ensure!(ids == [0; 4], "init's uid, euid, gid, egid: {ids:?}");
        for map in ["uid_map", "gid_map", "setgroups"] {
            let text = sys::read_text(format!("/proc/self/{map}"))?;
            report.send_str(&text.split_whitespace().collect::<Vec<_>>().join(" "))?;
        }
        std::fs::write(file, b"x").with_context(|| format!("create {}", file.display()))?;
        let ids = stat_ids(file)?;
        ensure!(
            ids == [0, 0],
            "inside, the init's new file is owned by {ids:?}"
        );
        Ok(())
    };

    let mut child = Proc::fork("unprivileged creator", || {
        h::become_user(NOBODY)?;
        let cfd = h::create(&h::unique_name("user"), CONTAINER_NEW_USER_NS)?;
        let report = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            inside(&report, &file)?;
            Ok(0)
        })?;
        let maps: Vec<String> = (0..3)
            .map(|_| report.recv_str(Some(&init)))
            .collect::<Result<_>>()?;
        init.wait_exit(0)?;
        ensure!(
            maps == ["0 65534 1", "0 65534 1", "deny"],
            "init's uid_map, gid_map, setgroups: {maps:?}"
        );
        let ids = stat_ids(&file)?;
        ensure!(
            ids == [NOBODY, NOBODY],
            "outside, the init's file is owned by {ids:?}, expected 65534:65534"
        );
        Ok(0)
    })?;
    child.wait_exit(0)?;
    let ids = stat_ids(&file)?;
    ensure!(
        ids == [NOBODY, NOBODY],
        "root sees the init's file owned by {ids:?}"
    );

    std::fs::remove_file(&file).context("remove the file")?;
    let cfd = h::create(&h::unique_name("userroot"), CONTAINER_NEW_USER_NS)?;
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        inside(&report, &file)?;
        Ok(0)
    })?;
    let maps: Vec<String> = (0..3)
        .map(|_| report.recv_str(Some(&init)))
        .collect::<Result<_>>()?;
    init.wait_exit(0)?;
    ensure!(
        maps == ["0 0 1", "0 0 1", "allow"],
        "root's container: init's uid_map, gid_map, setgroups: {maps:?}"
    );
    Ok(())
}

/// A cgroup v2 directory this test runs in, left (and removed) on drop.
struct CgroupDir(PathBuf);

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl CgroupDir {
    fn enter(name: &str) -> Result<CgroupDir> {
        let dir = PathBuf::from(CGROUP_ROOT).join(name);
        std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let me = std::process::id().to_string();
        std::fs::write(dir.join("cgroup.procs"), &me)
            .with_context(|| format!("move into {}", dir.display()))?;
        Ok(CgroupDir(dir))
    }
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        let me = std::process::id().to_string();
        let _ = std::fs::write(PathBuf::from(CGROUP_ROOT).join("cgroup.procs"), me);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// NEW_CGROUP_NS made in cgroup /kc-cg-PID: the init's /proc/self/cgroup reads "0::/"
/// (its namespace root), ours reads "0::/kc-cg-PID" for it; without the flag the init
/// reads "0::/kc-cg-PID" too.
pub fn cgroup() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let name = format!("kc-cg-{}", std::process::id());
    let dir = CgroupDir::enter(&name)?;
    let outside = format!("0::/{name}\n");
    for (flags, want) in [(CONTAINER_NEW_CGROUP_NS, "0::/\n"), (0, outside.as_str())] {
        let cfd = h::create(&h::unique_name("cgroup"), flags)?;
        let report = Pipe::new()?;
        let gate = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            report.send_str(&sys::read_text("/proc/self/cgroup")?)?;
            gate.wait();
            Ok(0)
        })?;
        let inside = report.recv_str(Some(&init))?;
        let seen = sys::read_text(format!("/proc/{}/cgroup", init.pid()))?;
        gate.open(1)?;
        init.wait_exit(0)?;
        ensure!(
            inside == want,
            "flags {flags:#x}: init's /proc/self/cgroup {inside:?}, expected {want:?}"
        );
        ensure!(
            seen == outside,
            "flags {flags:#x}: our view of the init's cgroup {seen:?}, expected {outside:?}"
        );
    }
    drop(dir);
    Ok(())
}

/// NEW_FS_NS: the init starts with a copy of our mounts (it sees our files); a tmpfs it
/// mounts (after making its mounts private) shows in its mountinfo, not in ours, and a
/// file in it is invisible to us.
pub fn mnt() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let dir = TempDir::new("mntns")?;
    std::fs::write(dir.join("before"), b"x").context("create the marker")?;
    let target = dir.path().to_path_buf();
    let cfd = h::create(&h::unique_name("mnt"), CONTAINER_NEW_FS_NS)?;
    let report = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        ensure!(
            target.join("before").exists(),
            "the init does not see {}/before",
            target.display()
        );
        rustix::mount::mount_change(
            "/",
            rustix::mount::MountPropagationFlags::PRIVATE
                | rustix::mount::MountPropagationFlags::REC,
        )
        .context("mount(/, MS_REC|MS_PRIVATE) in the init")?;
        rustix::mount::mount(
            "tmpfs",
            &target,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .context("mount tmpfs in the init")?;
        std::fs::write(target.join("inside"), b"x").context("create a file in the tmpfs")?;
        report.send(b"m")?;
        gate.wait();
        Ok(0)
    })?;
    report.recv(1, Some(&init))?;
    let here = dir.path().to_string_lossy().into_owned();
    let theirs = sys::mount_points(&sys::read_text(format!("/proc/{}/mountinfo", init.pid()))?);
    let ours = sys::mount_points(&sys::read_text("/proc/self/mountinfo")?);
    let inside_visible = dir.join("inside").exists();
    gate.open(1)?;
    init.wait_exit(0)?;
    ensure!(
        theirs.contains(&here),
        "the init's mountinfo lacks its tmpfs on {here}"
    );
    ensure!(
        !ours.contains(&here),
        "the init's tmpfs on {here} shows in our mountinfo"
    );
    ensure!(
        !inside_visible,
        "a file in the init's tmpfs is visible to us"
    );
    Ok(())
}
