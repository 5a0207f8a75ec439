//! CONTAINER_SET_NAMESPACE and CONTAINER_SET_CGROUP (uapi.md §4): before init starts, a
//! container adopts an existing namespace (setns(2)'s check, for a process with the
//! container's credentials) and the cgroup its init is forked into (CLONE_INTO_CGROUP's
//! checks, for the starter, at the start). A kernel without them answers ENOTTY: the
//! tests SKIP there.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, ensure, Context, Result};
use libc::c_int;
use rustix::fs::OFlags as O;

use super::calls;
use super::handle::{self, Held};
use super::helpers::{self as h, Pipe, Proc, NOBODY};
use super::ioctl::{self, CloneArgs, Ns};
use crate::sys::{self, errno_name, expect_errno, ok, skip, Errno};
use crate::uapi::*;

/// `open(2)` with O_CLOEXEC, the error naming the path.
fn open(path: impl AsRef<std::path::Path>, flags: O) -> Result<OwnedFd> {
    let path = path.as_ref();
    rustix::fs::open(path, flags | O::CLOEXEC, rustix::fs::Mode::empty())
        .with_context(|| format!("open {}", path.display()))
}

/// CLONE_NEWTIME, which the libc crate does not name.
const CLONE_NEWTIME: c_int = 0x80;
/// CLONE_INTO_CGROUP of `<linux/sched.h>`.
const CLONE_INTO_CGROUP: u64 = 1 << 33;
/// The hostname a holder's new UTS namespace gets.
pub(super) const HOSTNAME: &str = "adopted";

/// SKIPs unless the kernel has CONTAINER_SET_NAMESPACE and CONTAINER_SET_CGROUP (an fd
/// number above INT_MAX is EBADF for both; a kernel without them says ENOTTY).
fn require_set(cfd: &OwnedFd) -> Result<()> {
    match ioctl::set_namespace(cfd.as_fd(), -1) {
        Err(Errno::NOTTY) => Err(skip(
            "CONTAINER_SET_NAMESPACE: ENOTTY (kernel without patches 33-34 of the series)",
        )),
        Err(Errno::BADF) => Ok(()),
        other => bail!("CONTAINER_SET_NAMESPACE(-1): {other:?}, expected EBADF"),
    }
}

/// A container made with `flags`, on a kernel with the SET ioctls.
fn create(tag: &str, flags: u32) -> Result<OwnedFd> {
    let (_name, cfd) = handle::create(tag, flags)?;
    require_set(&cfd)?;
    Ok(cfd)
}

/// A forked process holding namespaces it unshared, until released; with a new UTS
/// namespace its hostname is `HOSTNAME`.
pub(super) struct Holder {
    proc: Proc,
    gate: Pipe,
}

impl Holder {
    pub(super) fn new(flags: c_int) -> Result<Holder> {
        Self::new_in(flags, None)
    }

    /// A holder that first moves itself into the cgroup `cgroup` (a directory under
    /// /sys/fs/cgroup), so that a cgroup namespace it unshares is rooted there.
    fn new_in(flags: c_int, cgroup: Option<&str>) -> Result<Holder> {
        let ready = Pipe::new()?;
        let gate = Pipe::new()?;
        let proc = Proc::fork("a namespace holder", || {
            if let Some(dir) = cgroup {
                let procs = format!("{dir}/cgroup.procs");
                std::fs::write(&procs, std::process::id().to_string())
                    .with_context(|| format!("moving the holder into {procs}"))?;
            }
            handle::unshare(flags)?;
            if flags & libc::CLONE_NEWUTS != 0 {
                rustix::system::sethostname(HOSTNAME.as_bytes()).context("sethostname")?;
            }
            ready.send_i64(0)?;
            gate.wait();
            Ok(0)
        })?;
        ready.recv_i64(Some(&proc))?;
        Ok(Holder { proc, gate })
    }

    /// Its /proc/PID/ns/NAME (pid_for_children and time_for_children for what it
    /// unshared for its children), opened.
    fn open(&self, name: &str) -> Result<OwnedFd> {
        let path = format!("/proc/{}/ns/{name}", self.proc.pid());
        open(&path, O::RDONLY)
    }

    pub(super) fn inode(&self, name: &str) -> Result<u64> {
        h::ns_inode(Some(self.proc.pid()), name)
    }

    pub(super) fn pid(&self) -> libc::pid_t {
        self.proc.pid()
    }

    pub(super) fn release(mut self) -> Result<()> {
        self.gate.open(1)?;
        self.proc.wait_exit(0)
    }
}

/// Each settable type, as the holder's /proc/PID/ns/ names it and as init's.
const SETTABLE: [(Ns, &str); 6] = [
    (Ns::Uts, "uts"),
    (Ns::Ipc, "ipc"),
    (Ns::Net, "net"),
    (Ns::Cgroup, "cgroup"),
    (Ns::Pid, "pid_for_children"),
    (Ns::Time, "time_for_children"),
];

/// Every settable type set from a holder's namespaces (the PID and time ones from a
/// multi-threaded caller: setns(2)'s single-thread rule for time namespaces is about
/// the caller's own vDSO, and is not applied); a second set of a type is EBUSY; user and
/// mount namespaces, files that are not namespaces and bad fds are refused. Init then
/// runs in every adopted namespace (pid 1 of the adopted PID namespace, the holder's
/// hostname), CONTAINER_GET_NET_NAMESPACE gives the adopted one, the user and mount
/// namespaces are still the container's; after start every set is EBUSY, whatever its
/// argument.
pub fn namespaces() -> Result<()> {
    let cfd = create("adoptns", CONTAINER_NEW_UTS_NS | CONTAINER_NEW_NET_NS)?;
    // After the cfd, so that the closed number stays closed.
    let bad = h::bad_fds()?;
    for (what, fd, errno) in &bad.cases {
        expect_errno(
            &format!("CONTAINER_SET_NAMESPACE({what})"),
            ioctl::set_namespace(cfd.as_fd(), *fd),
            *errno,
        )?;
    }
    let holder = Holder::new(
        libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_NEWPID
            | CLONE_NEWTIME,
    )?;
    for name in ["mnt", "user"] {
        let fd = holder.open(name)?;
        expect_errno(
            &format!("CONTAINER_SET_NAMESPACE(a {name} namespace)"),
            ioctl::set_namespace(cfd.as_fd(), fd.as_raw_fd()),
            Errno::INVAL,
        )?;
    }
    let fds = SETTABLE
        .iter()
        .map(|(_, name)| holder.open(name))
        .collect::<Result<Vec<_>>>()?;
    for ((ns, _), fd) in SETTABLE.iter().zip(&fds).take(4) {
        ok(
            &format!("CONTAINER_SET_NAMESPACE({})", ns.name()),
            ioctl::set_namespace(cfd.as_fd(), fd.as_raw_fd()),
        )?;
    }
    // PID and time from a caller with a second thread.
    let (pid_fd, time_fd) = (fds[4].as_raw_fd(), fds[5].as_raw_fd());
    let mut threaded = Proc::fork("a multi-threaded caller", || {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || rx.recv());
        for (what, fd) in [("pid", pid_fd), ("time", time_fd)] {
            ok(
                &format!("CONTAINER_SET_NAMESPACE({what}) with two threads"),
                ioctl::set_namespace(cfd.as_fd(), fd),
            )?;
        }
        drop(tx);
        let _ = thread.join();
        Ok(0)
    })?;
    threaded.wait_exit(0)?;
    expect_errno(
        "CONTAINER_SET_NAMESPACE(uts) a second time",
        ioctl::set_namespace(cfd.as_fd(), fds[0].as_raw_fd()),
        Errno::BUSY,
    )?;

    let init = Held::start(&cfd, 0, || {
        let uts = rustix::system::uname();
        let host = uts.nodename().to_string_lossy();
        ensure!(
            host == HOSTNAME,
            "init's hostname {host:?}, expected {HOSTNAME:?}"
        );
        let pid = std::process::id();
        ensure!(
            pid == 1,
            "init is pid {pid} of the adopted PID namespace, expected 1"
        );
        Ok(())
    })?;
    for (ns, name) in SETTABLE {
        let got = h::ns_inode(Some(init.pid()), ns.name())?;
        let want = holder.inode(name)?;
        ensure!(
            got == want,
            "init's {} namespace: inode {got}, the adopted one (holder's {name}): {want}",
            ns.name()
        );
    }
    for name in ["mnt", "user"] {
        let (got, ours) = (
            h::ns_inode(Some(init.pid()), name)?,
            h::ns_inode(None, name)?,
        );
        ensure!(
            got == ours,
            "init's {name} namespace {got}, expected the container's (ours, {ours})"
        );
    }
    let net = ok(
        "CONTAINER_GET_NET_NAMESPACE",
        ioctl::get_namespace(cfd.as_fd(), Ns::Net),
    )?;
    ensure!(
        handle::fd_ino(&net)? == holder.inode("net")?,
        "CONTAINER_GET_NET_NAMESPACE is not the adopted namespace"
    );
    for (i, (ns, _)) in SETTABLE.iter().enumerate() {
        expect_errno(
            &format!("CONTAINER_SET_NAMESPACE({}) after start", ns.name()),
            ioctl::set_namespace(cfd.as_fd(), fds[i].as_raw_fd()),
            Errno::BUSY,
        )?;
    }
    // After start, EBUSY comes first, whatever the argument.
    let mnt = holder.open("mnt")?;
    expect_errno(
        "CONTAINER_SET_NAMESPACE(a mount namespace) after start",
        ioctl::set_namespace(cfd.as_fd(), mnt.as_raw_fd()),
        Errno::BUSY,
    )?;
    expect_errno(
        "CONTAINER_SET_NAMESPACE(-1) after start",
        ioctl::set_namespace(cfd.as_fd(), -1),
        Errno::BUSY,
    )?;
    expect_errno(
        "CONTAINER_SET_CGROUP(-1) after start",
        ioctl::set_cgroup(cfd.as_fd(), -1),
        Errno::BUSY,
    )?;
    init.release()?;
    ok(
        "container_wait",
        calls::container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    expect_errno(
        "CONTAINER_SET_NAMESPACE(ipc) after death",
        ioctl::set_namespace(cfd.as_fd(), fds[1].as_raw_fd()),
        Errno::BUSY,
    )?;
    holder.release()
}

/// Who may set: nobody, root without capabilities and a sandbox in its own user and
/// network namespaces, each holding root's cfd received over SCM_RIGHTS, get EPERM
/// (setns(2) would refuse them the namespace); root in a child PID namespace gets EINVAL
/// for a PID namespace above its own (setns(2)'s rule); the cfd's namespaces stay as
/// they were. An unprivileged owner of a container with its own user namespace may set
/// a network namespace of another user namespace it owns, not the host's, nor a cgroup
/// namespace (root-only, as CONTAINER_NEW_CGROUP_NS is), and its init starts there.
pub fn namespaces_permission() -> Result<()> {
    let cfd = create("adoptperm", CONTAINER_NEW_UTS_NS)?;
    let holder = Holder::new(libc::CLONE_NEWNET | libc::CLONE_NEWUTS)?;
    let net = holder.open("net")?;
    let uts = holder.open("uts")?;
    let host_pid = open("/proc/self/ns/pid", O::RDONLY)?;
    let (ours, theirs) = h::socketpair()?;
    let report = Pipe::new()?;
    let attackers: [(&str, handle::Become); 3] = [
        ("nobody", || h::become_user(NOBODY)),
        ("root without capabilities", handle::drop_caps),
        ("a sandbox in its own user and net namespaces", || {
            handle::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET)
        }),
    ];
    let errno_of = |r: Result<(), Errno>| r.err().map_or(0, |e| i64::from(e.raw_os_error()));
    for (who, enter) in attackers {
        let mut p = Proc::fork(who, || {
            enter()?;
            let got = h::recv_fd(&theirs)?;
            report.send_i64s(&[
                errno_of(ioctl::set_namespace(got.as_fd(), net.as_raw_fd())),
                errno_of(ioctl::set_namespace(got.as_fd(), uts.as_raw_fd())),
            ])?;
            Ok(0)
        })?;
        h::send_fd(&ours, &cfd)?;
        let got = report.recv_i64s(2, Some(&p))?;
        let want = vec![i64::from(libc::EPERM); 2];
        ensure!(
            got == want,
            "{who}: CONTAINER_SET_NAMESPACE(net, uts): {got:?}, expected EPERM each"
        );
        p.wait_exit(0)?;
    }
    // Root in a PID namespace below the one it adopts.
    let mut outer = Proc::fork("root that unshared a PID namespace", || {
        handle::unshare(libc::CLONE_NEWPID)?;
        let mut inner = Proc::fork("root in a child PID namespace", || {
            expect_errno(
                "CONTAINER_SET_NAMESPACE(a PID namespace above the caller's)",
                ioctl::set_namespace(cfd.as_fd(), host_pid.as_raw_fd()),
                Errno::INVAL,
            )?;
            Ok(0)
        })?;
        inner.wait_exit(0)?;
        Ok(0)
    })?;
    outer.wait_exit(0)?;
    // Nothing was set: both still work.
    ok(
        "CONTAINER_SET_NAMESPACE(net) by root",
        ioctl::set_namespace(cfd.as_fd(), net.as_raw_fd()),
    )?;
    ok(
        "CONTAINER_SET_NAMESPACE(uts) by root",
        ioctl::set_namespace(cfd.as_fd(), uts.as_raw_fd()),
    )?;
    holder.release()?;

    // An unprivileged owner.
    let mut owner = Proc::fork("an unprivileged owner", || {
        h::become_user(NOBODY)?;
        let own = h::create_as_owner(
            &h::unique_name("adoptu"),
            CONTAINER_NEW_USER_NS | CONTAINER_FD_CLOEXEC,
        )?;
        let host_net = open("/proc/self/ns/net", O::RDONLY)?;
        expect_errno(
            "CONTAINER_SET_NAMESPACE(the host's net) by an unprivileged owner",
            ioctl::set_namespace(own.as_fd(), host_net.as_raw_fd()),
            Errno::PERM,
        )?;
        let sibling =
            Holder::new(libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWCGROUP)?;
        // A cgroup namespace is root-only, as CONTAINER_NEW_CGROUP_NS is.
        let their_cgroup = sibling.open("cgroup")?;
        expect_errno(
            "CONTAINER_SET_NAMESPACE(a cgroup namespace) by an unprivileged owner",
            ioctl::set_namespace(own.as_fd(), their_cgroup.as_raw_fd()),
            Errno::PERM,
        )?;
        let their_net = sibling.open("net")?;
        ok(
            "CONTAINER_SET_NAMESPACE(a net namespace of the owner's other user namespace)",
            ioctl::set_namespace(own.as_fd(), their_net.as_raw_fd()),
        )?;
        let init = Held::start(&own, 0, || Ok(()))?;
        let got = h::ns_inode(Some(init.pid()), "net")?;
        let want = sibling.inode("net")?;
        ensure!(got == want, "init's net namespace {got}, adopted {want}");
        init.release()?;
        sibling.release()?;
        Ok(0)
    })?;
    owner.wait_exit(0)
}

/// A start racing a set: whichever wins, what the set returned is what init got (0:
/// init is in the adopted UTS namespace; EBUSY: in the container's own).
pub fn namespace_vs_start() -> Result<()> {
    const ROUNDS: usize = 40;
    let holder = Holder::new(libc::CLONE_NEWUTS)?;
    let uts = holder.open("uts")?;
    let adopted = holder.inode("uts")?;
    let mut wins = [0usize; 2];
    for round in 0..ROUNDS {
        let cfd = create("adoptrace", CONTAINER_NEW_UTS_NS)?;
        let go = Pipe::new()?;
        let report = Pipe::new()?;
        let mut setter = Proc::fork("the setter", || {
            go.wait();
            report.send_i64(
                ioctl::set_namespace(cfd.as_fd(), uts.as_raw_fd())
                    .err()
                    .map_or(0, |e| i64::from(e.raw_os_error())),
            )?;
            Ok(0)
        })?;
        go.open(1)?;
        let init = Held::start(&cfd, 0, || Ok(()))?;
        let set = report.recv_i64(Some(&setter))?;
        setter.wait_exit(0)?;
        let got = h::ns_inode(Some(init.pid()), "uts")?;
        match set {
            0 => ensure!(
                got == adopted,
                "round {round}: the set returned 0 but init is in UTS namespace {got}, \
                 not the adopted {adopted}"
            ),
            e if e == i64::from(libc::EBUSY) => ensure!(
                got != adopted,
                "round {round}: the set returned EBUSY but init is in the adopted namespace"
            ),
            e => bail!("round {round}: the set returned errno {e}"),
        }
        wins[usize::from(set != 0)] += 1;
        init.release()?;
    }
    println!(
        "# {} sets before the start, {} after, of {ROUNDS}",
        wins[0], wins[1]
    );
    holder.release()
}

/// The cgroup2 root, or SKIP.
pub(super) fn require_cgroup2() -> Result<()> {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let st = rustix::fs::statfs("/sys/fs/cgroup").context("statfs /sys/fs/cgroup")?;
    if st.f_type as i64 != CGROUP2_SUPER_MAGIC {
        return Err(skip("/sys/fs/cgroup is not cgroup2"));
    }
    Ok(())
}

/// A cgroup directory under the cgroup2 root, removed on drop.
pub(super) struct Cgroup(pub String);

impl Cgroup {
    pub(super) fn new(tag: &str) -> Result<Cgroup> {
        let path = format!("/sys/fs/cgroup/kc-{tag}-{}", std::process::id());
        std::fs::create_dir(&path).with_context(|| format!("mkdir {path}"))?;
        Ok(Cgroup(path))
    }

    fn open(&self) -> Result<OwnedFd> {
        open(&self.0, O::PATH | O::DIRECTORY)
    }

    /// "0::/kc-..." as /proc/PID/cgroup shows it.
    pub(super) fn line(&self) -> String {
        format!("0::{}", self.0.trim_start_matches("/sys/fs/cgroup"))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn init_cgroup(pid: libc::pid_t) -> Result<String> {
    Ok(sys::read_text(format!("/proc/{pid}/cgroup"))?
        .trim()
        .to_string())
}

fn expect_preparing(cfd: &OwnedFd, when: &str) -> Result<()> {
    let info = ok(
        &format!("CONTAINER_GET_INFO ({when})"),
        ioctl::get_info(cfd.as_fd()),
    )?;
    ensure!(
        info.state & CONTAINER_STATE_STARTED == 0,
        "{when}: state {:#x}, expected not started (the failed start is undone)",
        info.state
    );
    Ok(())
}

/// fork_into_container(`cfd`) fails with `want` (`what`: the start, for the message) and
/// leaves the container unstarted.
fn expect_start_refused(cfd: &OwnedFd, want: Errno, what: &str) -> Result<()> {
    match Proc::try_init(cfd, || Ok(0))? {
        Err(e) => ensure!(
            e == want,
            "fork_into_container {what}: {}, expected {}",
            errno_name(e),
            errno_name(want)
        ),
        Ok(mut p) => {
            let _ = p.wait();
            bail!("fork_into_container {what} started init");
        }
    }
    expect_preparing(cfd, &format!("after the start {what}"))
}

/// CONTAINER_SET_CGROUP: init starts in the cgroup (an O_PATH fd will do), through
/// fork_into_container() and clone3(); a second set and a set after start are EBUSY
/// (after start whatever the argument);
/// a clone3() start that names a cgroup of its own as well is EINVAL and leaves the
/// container startable; not a cgroup2 directory is EBADF, a removed cgroup ENOENT (when
/// set, and at the start if removed after). The cgroup namespace rule is
/// `cgroup_namespace`'s.
pub fn cgroup() -> Result<()> {
    let cfd = create("adoptcg", 0)?;
    require_cgroup2()?;
    let bad = h::bad_fds()?;
    for (what, fd, _) in &bad.cases {
        expect_errno(
            &format!("CONTAINER_SET_CGROUP({what})"),
            ioctl::set_cgroup(cfd.as_fd(), *fd),
            Errno::BADF,
        )?;
    }
    let tmp = open("/tmp", O::DIRECTORY)?;
    expect_errno(
        "CONTAINER_SET_CGROUP(/tmp)",
        ioctl::set_cgroup(cfd.as_fd(), tmp.as_raw_fd()),
        Errno::BADF,
    )?;
    let gone = Cgroup::new("adoptgone")?;
    let gone_fd = gone.open()?;
    drop(gone);
    expect_errno(
        "CONTAINER_SET_CGROUP(a removed cgroup)",
        ioctl::set_cgroup(cfd.as_fd(), gone_fd.as_raw_fd()),
        Errno::NOENT,
    )?;
    let cg = Cgroup::new("adopt")?;
    let cg_fd = cg.open()?;

    // fork_into_container().
    ok(
        "CONTAINER_SET_CGROUP(O_PATH fd)",
        ioctl::set_cgroup(cfd.as_fd(), cg_fd.as_raw_fd()),
    )?;
    expect_errno(
        "CONTAINER_SET_CGROUP a second time",
        ioctl::set_cgroup(cfd.as_fd(), cg_fd.as_raw_fd()),
        Errno::BUSY,
    )?;
    let init = Held::start(&cfd, 0, || Ok(()))?;
    let got = init_cgroup(init.pid())?;
    ensure!(
        got == cg.line(),
        "init's cgroup {got:?}, expected {:?}",
        cg.line()
    );
    init.release()?;

    // clone3(): with CLONE_INTO_CGROUP as well, EINVAL; without, the set cgroup.
    let cfd = create("adoptcg3", 0)?;
    ok(
        "CONTAINER_SET_CGROUP",
        ioctl::set_cgroup(cfd.as_fd(), cg_fd.as_raw_fd()),
    )?;
    let root = open("/sys/fs/cgroup", O::DIRECTORY)?;
    let both = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: root.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    expect_errno(
        "clone3(CLONE_INTO_CONTAINER | CLONE_INTO_CGROUP) with a cgroup set",
        clone3_child(&cfd, both),
        Errno::INVAL,
    )?;
    expect_preparing(&cfd, "after the refused clone3()")?;
    let plain = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    let pid = ok("clone3(CLONE_INTO_CONTAINER)", clone3_child(&cfd, plain))?;
    let got = init_cgroup(pid)?;
    // SAFETY: signals and reaps our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    h::waitpid_within(pid, std::time::Duration::from_secs(20))?;
    ensure!(
        got == cg.line(),
        "clone3 init's cgroup {got:?}, expected {:?}",
        cg.line()
    );

    // After start.
    let started = create("adoptcgs", 0)?;
    let init = Held::start(&started, 0, || Ok(()))?;
    expect_errno(
        "CONTAINER_SET_CGROUP after start",
        ioctl::set_cgroup(started.as_fd(), cg_fd.as_raw_fd()),
        Errno::BUSY,
    )?;
    expect_errno(
        "CONTAINER_SET_CGROUP(/tmp) after start",
        ioctl::set_cgroup(started.as_fd(), tmp.as_raw_fd()),
        Errno::BUSY,
    )?;
    init.release()?;

    // Removed between the set and the start.
    let cfd = create("adoptcgr", 0)?;
    let late = Cgroup::new("adoptlate")?;
    let late_fd = late.open()?;
    ok(
        "CONTAINER_SET_CGROUP",
        ioctl::set_cgroup(cfd.as_fd(), late_fd.as_raw_fd()),
    )?;
    drop(late);
    expect_start_refused(&cfd, Errno::NOENT, "into a removed cgroup")
}

/// A cgroup chosen for init must be inside the cgroup namespace it enters: a pod (a
/// cgroup namespace rooted at the pod's cgroup, adopted) starts its init in the pod's
/// cgroup, which init sees as "/", and in a sub-cgroup through clone3(); a cgroup
/// outside that namespace fails the start with EINVAL, through either call, and leaves
/// the container unstarted; without a chosen cgroup, init starts where its starter is.
pub fn cgroup_namespace() -> Result<()> {
    let probe = create("adoptcgn", 0)?;
    drop(probe);
    require_cgroup2()?;
    let pod = Cgroup::new("pod")?;
    let other = Cgroup::new("notpod")?;
    let sub = format!("{}/sub", pod.0);
    std::fs::create_dir(&sub).with_context(|| format!("mkdir {sub}"))?;
    let result = (|| -> Result<()> {
        let holder = Holder::new_in(libc::CLONE_NEWCGROUP, Some(&pod.0))?;
        let cgns = holder.open("cgroup")?;
        let (pod_fd, other_fd) = (pod.open()?, other.open()?);
        let sub_fd = open(&sub, O::PATH | O::DIRECTORY)?;
        let adopting = |tag: &str| -> Result<OwnedFd> {
            let cfd = create(tag, 0)?;
            ok(
                "CONTAINER_SET_NAMESPACE(the pod's cgroup namespace)",
                ioctl::set_namespace(cfd.as_fd(), cgns.as_raw_fd()),
            )?;
            Ok(cfd)
        };

        // The pod's cgroup, set: init is at its namespace's root.
        let cfd = adopting("adoptpod")?;
        ok(
            "CONTAINER_SET_CGROUP(the pod's cgroup)",
            ioctl::set_cgroup(cfd.as_fd(), pod_fd.as_raw_fd()),
        )?;
        let init = Held::start(&cfd, 0, || {
            let own = std::fs::read_to_string("/proc/self/cgroup").context("cgroup")?;
            ensure!(
                own.trim() == "0::/",
                "init sees its cgroup as {own:?}, expected 0::/"
            );
            Ok(())
        })?;
        let got = init_cgroup(init.pid())?;
        ensure!(
            got == pod.line(),
            "init's cgroup {got:?}, expected {:?}",
            pod.line()
        );
        init.release()?;

        // Outside the namespace: EINVAL at the start, both ways.
        let cfd = adopting("adoptout")?;
        ok(
            "CONTAINER_SET_CGROUP(a cgroup outside the pod) (checked at the start)",
            ioctl::set_cgroup(cfd.as_fd(), other_fd.as_raw_fd()),
        )?;
        expect_start_refused(
            &cfd,
            Errno::INVAL,
            "into a cgroup outside the container's cgroup namespace",
        )?;
        let cfd = adopting("adoptout3")?;
        let into = |fd: &OwnedFd| CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        expect_errno(
            "clone3(CLONE_INTO_CGROUP outside the container's cgroup namespace)",
            clone3_child(&cfd, into(&other_fd)),
            Errno::INVAL,
        )?;
        expect_preparing(&cfd, "after the refused clone3()")?;
        // Inside: a sub-cgroup of the pod, through clone3().
        let pid = ok(
            "clone3(CLONE_INTO_CGROUP a sub-cgroup of the pod)",
            clone3_child(&cfd, into(&sub_fd)),
        )?;
        let got = init_cgroup(pid)?;
        // SAFETY: signals and reaps our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        h::waitpid_within(pid, std::time::Duration::from_secs(20))?;
        let want = format!("{}/sub", pod.line());
        ensure!(
            got == want,
            "clone3 init's cgroup {got:?}, expected {want:?}"
        );

        // No chosen cgroup: where the starter is (outside the pod), as after setns().
        let cfd = adopting("adoptnone")?;
        let init = Held::start(&cfd, 0, || Ok(()))?;
        let (theirs, ours) = (
            init_cgroup(init.pid())?,
            init_cgroup(std::process::id() as libc::pid_t)?,
        );
        ensure!(
            theirs == ours,
            "init without a chosen cgroup is in {theirs:?}, its starter in {ours:?}"
        );
        init.release()?;
        holder.release()
    })();
    let _ = std::fs::remove_dir(&sub);
    result
}

/// Both sides are checked as clone3(CLONE_INTO_CGROUP) checks its caller. The one who
/// sets: an unprivileged owner gets EACCES for root's cgroup (so a cfd holder cannot
/// spend a starter's rights on a cgroup it may not use). The starter: root sets root's
/// cgroup on the owner's container (received over SCM_RIGHTS), and the owner's own
/// start then fails with EACCES, leaving the container unstarted, while root's start
/// succeeds. Delegation: an unprivileged user in a cgroup delegated to it sets a
/// sub-cgroup it made and starts its init there.
pub fn cgroup_permission() -> Result<()> {
    let probe = create("adoptcgp", 0)?;
    drop(probe);
    require_cgroup2()?;
    let cg = Cgroup::new("adoptp")?;
    let cg_fd = cg.open()?;
    let (a, b) = h::socketpair()?;
    let gate = Pipe::new()?;
    let mut owner = Proc::fork("an unprivileged owner", || {
        h::become_user(NOBODY)?;
        let own = h::create_as_owner(
            &h::unique_name("adoptcgu"),
            CONTAINER_NEW_USER_NS | CONTAINER_FD_CLOEXEC,
        )?;
        expect_errno(
            "CONTAINER_SET_CGROUP(root's cgroup) by an unprivileged owner",
            ioctl::set_cgroup(own.as_fd(), cg_fd.as_raw_fd()),
            Errno::ACCESS,
        )?;
        h::send_fd(&a, &own)?;
        // Root sets its cgroup meanwhile.
        gate.wait();
        expect_start_refused(&own, Errno::ACCESS, "into root's cgroup as nobody")?;
        Ok(0)
    })?;
    let own = h::recv_fd(&b)?;
    ok(
        "CONTAINER_SET_CGROUP(root's cgroup) by root, on nobody's container",
        ioctl::set_cgroup(own.as_fd(), cg_fd.as_raw_fd()),
    )?;
    gate.open(1)?;
    owner.wait_exit(0)?;
    let init = Held::start(&own, 0, || Ok(()))?;
    let got = init_cgroup(init.pid())?;
    ensure!(
        got == cg.line(),
        "init's cgroup {got:?}, expected {:?}",
        cg.line()
    );
    init.release()?;

    // A cgroup delegated to nobody (the directory and its cgroup.procs are nobody's):
    // nobody, moved there, makes a sub-cgroup, sets it and starts its init in it.
    let delegated = Cgroup::new("adoptdel")?;
    for path in [delegated.0.clone(), format!("{}/cgroup.procs", delegated.0)] {
        rustix::fs::chown(
            path.as_str(),
            Some(rustix::fs::Uid::from_raw(NOBODY)),
            Some(rustix::fs::Gid::from_raw(NOBODY)),
        )
        .with_context(|| format!("chown {path}"))?;
    }
    let sub = format!("{}/sub", delegated.0);
    let line = format!("{}/sub", delegated.line());
    let moved = Pipe::new()?;
    let mut user = Proc::fork("nobody in a delegated cgroup", || {
        moved.wait();
        h::become_user(NOBODY)?;
        std::fs::create_dir(&sub).with_context(|| format!("mkdir {sub} as nobody"))?;
        let own = h::create_as_owner(
            &h::unique_name("adoptdel"),
            CONTAINER_NEW_USER_NS | CONTAINER_FD_CLOEXEC,
        )?;
        let sub_fd = open(&sub, O::PATH | O::DIRECTORY)?;
        ok(
            "CONTAINER_SET_CGROUP(a delegated sub-cgroup) by nobody",
            ioctl::set_cgroup(own.as_fd(), sub_fd.as_raw_fd()),
        )?;
        let init = Held::start(&own, 0, || Ok(()))?;
        let got = init_cgroup(init.pid())?;
        ensure!(got == line, "init's cgroup {got:?}, expected {line:?}");
        init.release()?;
        Ok(0)
    })?;
    let procs = format!("{}/cgroup.procs", delegated.0);
    std::fs::write(&procs, user.pid().to_string())
        .with_context(|| format!("moving the helper into {procs}"))?;
    moved.open(1)?;
    let done = user.wait_exit(0);
    let _ = std::fs::remove_dir(format!("{}/sub", delegated.0));
    done
}

/// clone3(CLONE_INTO_CONTAINER) of a child that pauses until killed.
fn clone3_child(cfd: &OwnedFd, args: CloneArgs) -> Result<libc::pid_t, Errno> {
    // SAFETY: single-threaded test process; the child only pauses (async-signal-safe).
    match unsafe { ioctl::clone3_into(cfd.as_fd(), args) } {
        Ok(0) => loop {
            // SAFETY: pause() in the child, until SIGKILL.
            unsafe { libc::pause() };
        },
        r => r,
    }
}
