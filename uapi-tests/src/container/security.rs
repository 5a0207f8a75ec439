//! The v2 rules, tried from the attacker's side (uapi.md §3): starting an init grants no
//! privilege, init is a process, death and kill reach descendant containers, nesting and
//! count limits, container_socket() needs setns()'s privilege, /proc/containers is scoped
//! by user namespace. Each test is one of the scenarios the v1 series failed; it runs as
//! the unprivileged, capability-less or sandboxed caller it describes.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, ensure, Context, Result};
use libc::c_int;

use super::calls::{container_kill, container_socket, container_wait};
use super::helpers::{
    self as h, fork_fails, recv_fd, send_fd, socketpair, Call, Pipe, Proc, NOBODY,
};
use crate::sys::{self, errno_name, expect_errno, ok, Errno, TempDir};
use crate::uapi::*;

/// An unprivileged uid that is not 65534 (65534 is the overflow id).
const USER: u32 = 1000;

/// How deep containers nest below `.init` (uapi.md §3).
const MAX_DEPTH: usize = 32;

/// Writes "deny" to setgroups and maps 0 to `uid`/`gid` in a user namespace the caller
/// has just unshared, as an unprivileged user would.
pub fn map_root_to(uid: u32, gid: u32) -> Result<()> {
    std::fs::write("/proc/self/setgroups", "deny").context("write /proc/self/setgroups")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).context("write uid_map")?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).context("write gid_map")?;
    Ok(())
}

pub fn unshare(flags: c_int, what: &str) -> Result<()> {
    // SAFETY: unshare(2) changes only this (single-threaded) process.
    if unsafe { libc::unshare(flags) } != 0 {
        bail!("unshare({what}): {}", errno_name(sys::last_errno()));
    }
    Ok(())
}

/// capset(2) with the three sets given as 64-bit masks.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let half = |m: u64, i: u32| (m >> (32 * i)) as u32;
    let data = [0, 1].map(|i| Data {
        effective: half(effective, i),
        permitted: half(permitted, i),
        inheritable: half(inheritable, i),
    });
    // SAFETY: a valid version 3 header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        bail!("capset: {}", errno_name(sys::last_errno()));
    }
    Ok(())
}

/// The value of a `/proc/self/status` field (`CapEff`, `NoNewPrivs`, ...).
fn status_field(field: &str) -> Result<String> {
    let status = sys::read_text("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("/proc/self/status has no {field}"))
}

/// exit(2), not exit_group(2): ends the calling (main) thread only, without unwinding
/// through Rust frames as pthread_exit() would; the process goes on in its other
/// threads.
fn exit_main_thread() -> ! {
    // SAFETY: SYS_exit ends this thread and never returns.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("exit(2) returned")
}

fn dumpable() -> i64 {
    // SAFETY: PR_GET_DUMPABLE takes no pointer.
    i64::from(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) })
}

/// Requires container_wait(cfd) to report the wait status `want`.
fn expect_container_status(cfd: &OwnedFd, want: c_int) -> Result<()> {
    let status = ok("container_wait", wait_status(cfd, 0))?;
    ensure!(
        status == want,
        "container_wait status {status:#x}, expected {want:#x}"
    );
    Ok(())
}

fn wait_status(cfd: &OwnedFd, options: u32) -> Result<c_int, Errno> {
    let mut status = -1;
    container_wait(cfd.as_raw_fd(), Some(&mut status), options, None).map(|_| status)
}

/// Scenario 2. uid 1000 in a user namespace of its own where it is root ("0 1000 1")
/// makes a NEW_USER_NS container: the init's uid 0 is uid 1000 on the host, not host
/// root. Setting uid 0 inside works; opening a file only host root may write is EACCES;
/// a file the init makes belongs to 1000:1000.
pub fn userns_nested_root() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let dir = TempDir::new("nestedroot")?;
    rustix::fs::chmod(dir.path(), rustix::fs::Mode::from_raw_mode(0o777)).context("chmod")?;
    let secret = dir.join("root-only");
    std::fs::write(&secret, "host root's\n").context("write root-only")?;
    rustix::fs::chmod(&secret, rustix::fs::Mode::from_raw_mode(0o600)).context("chmod 600")?;
    let made = dir.join("made-by-init");
    let mut child = Proc::fork("uid 1000 in its own user namespace", || {
        h::become_user(USER)?;
        unshare(libc::CLONE_NEWUSER, "CLONE_NEWUSER")?;
        map_root_to(USER, USER)?;
        let cfd = h::create(&h::unique_name("nested"), CONTAINER_NEW_USER_NS)?;
        let report = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            // SAFETY: plain credential syscalls in a single-threaded init.
            if unsafe { libc::setresuid(0, 0, 0) } != 0 {
                bail!(
                    "setresuid(0, 0, 0) in the init: {}",
                    errno_name(sys::last_errno())
                );
            }
            let opened = rustix::fs::open(
                &secret,
                rustix::fs::OFlags::WRONLY,
                rustix::fs::Mode::empty(),
            );
            report.send_i64(match opened {
                Ok(_) => 0,
                Err(e) => i64::from(e.raw_os_error()),
            })?;
            std::fs::write(&made, "init\n").context("write made-by-init")?;
            Ok(0)
        })?;
        let errno = report.recv_i64(Some(&init))?;
        init.wait_exit(0)?;
        ensure!(
            errno == i64::from(libc::EACCES),
            "the init (uid 0 in a user namespace of uid 1000) opened root's 0600 file for \
             writing: {}",
            if errno == 0 {
                "it succeeded: it is host root".to_string()
            } else {
                errno_name(Errno::from_raw_os_error(errno as i32))
            }
        );
        Ok(0)
    })?;
    child.wait_exit(0)?;
    let m = std::fs::metadata(&made).context("stat made-by-init")?;
    ensure!(
        (m.uid(), m.gid()) == (USER, USER),
        "the init's file is owned by {}:{}, expected {USER}:{USER}",
        m.uid(),
        m.gid()
    );
    Ok(())
}

/// Scenario 3. Root that dropped every capability (capset to empty, no_new_privs) gets
/// EPERM from fork_into_container() on the container it made before, not a child with
/// a full effective set. A container it makes afterwards carries no capabilities, and
/// its init starts with none and keeps no_new_privs.
pub fn no_caps_back() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let mut child = Proc::fork("root without capabilities", || {
        let before = h::create(&h::unique_name("capsbefore"), 0)?;
        // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointer.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            bail!("PR_SET_NO_NEW_PRIVS: {}", errno_name(sys::last_errno()));
        }
        capset(0, 0, 0)?;
        ensure!(
            status_field("CapEff")? == "0000000000000000",
            "capset left capabilities"
        );
        expect_errno(
            "fork_into_container(a container made with every capability) without any",
            fork_fails(before.as_raw_fd()),
            Errno::PERM,
        )?;
        expect_errno(
            "container_wait after the EPERM",
            wait_status(&before, libc::WNOHANG as u32),
            Errno::CHILD,
        )?;
        let after = h::create(&h::unique_name("capsafter"), 0)?;
        let report = Pipe::new()?;
        let mut init = Proc::init(&after, || {
            report.send_str(&status_field("CapEff")?)?;
            report.send_str(&status_field("CapPrm")?)?;
            report.send_str(&status_field("NoNewPrivs")?)?;
            Ok(0)
        })?;
        let got = [
            report.recv_str(Some(&init))?,
            report.recv_str(Some(&init))?,
            report.recv_str(Some(&init))?,
        ];
        init.wait_exit(0)?;
        ensure!(
            got == ["0000000000000000", "0000000000000000", "1"],
            "init of a container made without capabilities: CapEff, CapPrm, NoNewPrivs {got:?}"
        );
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// Scenario 4. uid 1000 makes a container and passes the cfd to root over SCM_RIGHTS;
/// root starts its init. The init runs as 1000 and, like after commit_creds() with other
/// ids, is not dumpable (so uid 1000 cannot ptrace a copy of root's memory and fds). An
/// init whose ids and capabilities are its parent's stays dumpable.
pub fn not_dumpable() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let (ours, theirs) = socketpair()?;
    let mut maker = Proc::fork("uid 1000 passing a cfd", || {
        h::become_user(USER)?;
        let cfd = h::create(&h::unique_name("passed"), 0)?;
        send_fd(&theirs, &cfd)?;
        Ok(0)
    })?;
    let cfd = recv_fd(&ours)?;
    maker.wait_exit(0)?;
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        report.send_i64s(&[i64::from(rustix::process::geteuid().as_raw()), dumpable()])?;
        Ok(0)
    })?;
    let got = report.recv_i64s(2, Some(&init))?;
    init.wait_exit(0)?;
    ensure!(
        got == [i64::from(USER), 0],
        "init of uid 1000's container started by root: euid, PR_GET_DUMPABLE {got:?}, \
         expected [1000, 0]"
    );

    let own = h::create(&h::unique_name("samecreds"), 0)?;
    let mut init = Proc::init(&own, || {
        report.send_i64(dumpable())?;
        Ok(0)
    })?;
    let same = report.recv_i64(Some(&init))?;
    init.wait_exit(0)?;
    ensure!(
        same == 1,
        "init with its parent's credentials: PR_GET_DUMPABLE {same}"
    );
    Ok(())
}

/// Scenario 5. Init is a process: its main thread calls pthread_exit() while another
/// thread goes on and later calls exit(7). The container lives until then (WNOHANG is
/// EAGAIN), its status is exit 7, and the supervisor's waitpid() reports exit 7, not
/// SIGKILL. The same for an execve() from a non-main thread.
pub fn init_thread_group() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("threads"), 0)?;
    let gate = Pipe::new()?;
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        let gate_fd = gate.rx.as_raw_fd();
        let report_fd = report.tx.as_raw_fd();
        std::thread::spawn(move || {
            sys::raw_write(report_fd, &[1]);
            sys::raw_wait_byte(gate_fd);
            // SAFETY: ends the whole process with status 7.
            unsafe { libc::_exit(7) }
        });
        exit_main_thread()
    })?;
    report.recv(1, Some(&init))?;
    // The main thread has exited (or will): the process has not.
    std::thread::sleep(std::time::Duration::from_millis(300));
    expect_errno(
        "container_wait(WNOHANG) after init's main thread exited",
        wait_status(&cfd, libc::WNOHANG as u32),
        Errno::AGAIN,
    )?;
    gate.open(1)?;
    init.wait_exit(7)?;
    expect_container_status(&cfd, 7 << 8)?;

    // An execve() from a non-main thread: the exec'd program is still init.
    let cfd = h::create(&h::unique_name("threadexec"), 0)?;
    let mut init = Proc::init(&cfd, || {
        let t = std::thread::spawn(|| -> Result<()> {
            let argv: Vec<CString> = ["busybox", "sh", "-c", "sleep 0.3; exit 5"]
                .iter()
                .map(|a| CString::new(*a))
                .collect::<Result<_, _>>()?;
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            let env: [*const libc::c_char; 1] = [std::ptr::null()];
            // SAFETY: NUL-terminated argv and envp arrays of valid strings.
            unsafe { libc::execve(c"/bin/busybox".as_ptr(), ptrs.as_ptr(), env.as_ptr()) };
            bail!("execve(/bin/busybox): {}", errno_name(sys::last_errno()))
        });
        match t.join() {
            Ok(r) => r.map(|()| 0),
            Err(_) => bail!("exec thread panicked"),
        }
    })?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    expect_errno(
        "container_wait(WNOHANG) right after init's non-main thread exec'd",
        wait_status(&cfd, libc::WNOHANG as u32),
        Errno::AGAIN,
    )?;
    init.wait_exit(5)?;
    expect_container_status(&cfd, 5 << 8)?;
    Ok(())
}

/// Starts, as the init of a new container made in `outer`'s init, a grandchild that
/// sleeps; returns its pid (in the test's pid namespace) once it runs.
fn nested_sleeper(report: &Pipe) -> Result<()> {
    let inner = h::create(&h::unique_name("inner"), 0)?;
    let ready = Pipe::new()?;
    let grandchild = Proc::init(&inner, || {
        ready.send_i64(i64::from(std::process::id()))?;
        loop {
            // SAFETY: pause(2) waits for the signal that ends it.
            unsafe { libc::pause() };
        }
    })?;
    let pid = ready.recv_i64(Some(&grandchild))?;
    report.send_i64(pid)?;
    // The grandchild stays; this init goes on without reaping it.
    grandchild.leak();
    drop(inner);
    Ok(())
}

fn reap_grandchild(pid: i64, what: &str) -> Result<()> {
    let status = h::waitpid_within(pid as libc::pid_t, h::DEATH_LIMIT)
        .with_context(|| format!("{what}: the grandchild (pid {pid}) did not die"))?;
    h::expect_sigkilled(status, &format!("{what}: the grandchild"))
}

/// Scenario 6. Init makes a container of its own, starts its init (which sleeps) and
/// exits: the grandchild is killed, and only then is the outer container dead, with
/// init's status. KILL_ON_CLOSE and container_kill(cfd, 0, SIGKILL) reach it too.
pub fn descendants_die() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait, Call::Kill])?;
    h::become_subreaper()?;

    // Init's exit.
    let cfd = h::create(&h::unique_name("outer"), 0)?;
    let report = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        nested_sleeper(&report)?;
        Ok(3)
    })?;
    let pid = report.recv_i64(Some(&init))?;
    init.wait_exit(3)?;
    reap_grandchild(pid, "after the outer init exited")?;
    expect_container_status(&cfd, 3 << 8)?;

    // container_kill(outer, 0, SIGKILL) while both run.
    let cfd = h::create(&h::unique_name("outerkill"), 0)?;
    let mut init = Proc::init(&cfd, || {
        nested_sleeper(&report)?;
        loop {
            // SAFETY: pause(2) waits for the signal that ends it.
            unsafe { libc::pause() };
        }
    })?;
    let pid = report.recv_i64(Some(&init))?;
    ok(
        "container_kill(outer, 0, SIGKILL)",
        container_kill(cfd.as_raw_fd(), 0, libc::SIGKILL),
    )?;
    // The grandchild is the subreaper's once the outer init is gone.
    h::expect_sigkilled(init.wait()?, "the outer init")?;
    reap_grandchild(pid, "after container_kill(outer, 0, SIGKILL)")?;
    expect_container_status(&cfd, libc::SIGKILL)?;

    // KILL_ON_CLOSE on the outer container.
    let cfd = h::create(&h::unique_name("outerclose"), CONTAINER_KILL_ON_CLOSE)?;
    let mut init = Proc::init(&cfd, || {
        nested_sleeper(&report)?;
        loop {
            // SAFETY: pause(2) waits for the signal that ends it.
            unsafe { libc::pause() };
        }
    })?;
    let pid = report.recv_i64(Some(&init))?;
    drop(cfd);
    h::expect_sigkilled(init.wait()?, "the outer init")?;
    reap_grandchild(pid, "after closing the outer KILL_ON_CLOSE cfd")
}

/// Scenario 7. Root makes a container with flags 0 (the host's network namespace) and
/// passes the cfd to a process that becomes uid 1000 in its own user and network
/// namespaces: container_socket() is EPERM there, as setns() into the host's network
/// namespace would be. Root gets its socket; uid 1000 gets one in the network namespace
/// of a NEW_USER_NS|NEW_NET_NS container it made.
pub fn socket_sandbox() -> Result<()> {
    h::require(&[Call::Create, Call::Socket])?;
    let cfd = h::create(&h::unique_name("hostnet"), 0)?;
    let netlink =
        |fd: RawFd| container_socket(fd, libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
    ok(
        "container_socket(host netns) as root",
        netlink(cfd.as_raw_fd()),
    )?;
    let (ours, theirs) = socketpair()?;
    let mut sandbox = Proc::fork("sandboxed uid 1000", || {
        h::become_user(USER)?;
        unshare(
            libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
            "CLONE_NEWUSER|CLONE_NEWNET",
        )?;
        map_root_to(USER, USER)?;
        let passed = recv_fd(&theirs)?;
        expect_errno(
            "container_socket(root's container, AF_NETLINK) from a sandbox",
            netlink(passed.as_raw_fd()),
            Errno::PERM,
        )?;
        expect_errno(
            "container_socket(root's container, AF_INET) from a sandbox",
            container_socket(passed.as_raw_fd(), libc::AF_INET, libc::SOCK_DGRAM, 0),
            Errno::PERM,
        )?;
        let own = h::create(
            &h::unique_name("sandboxnet"),
            CONTAINER_NEW_USER_NS | CONTAINER_NEW_NET_NS,
        )?;
        ok(
            "container_socket(own NEW_NET_NS container)",
            netlink(own.as_raw_fd()),
        )?;
        Ok(0)
    })?;
    send_fd(&ours, &cfd)?;
    sandbox.wait_exit(0)?;
    // Without the sandbox: uid 1000 in the initial namespaces is no better off.
    let mut plain = Proc::fork("uid 1000", || {
        h::become_user(USER)?;
        expect_errno(
            "container_socket(root's container) as uid 1000",
            netlink(cfd.as_raw_fd()),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    plain.wait_exit(0)
}

/// Scenario 8. A process in an unrelated, unprivileged user namespace sees only its own
/// `<current>` row in /proc/containers, not root's containers; root sees them. The view
/// is the opener's: a file opened by root and read in the sandbox still lists them, and
/// one opened in the sandbox and read by root does not. Owners print as `%5u`.
pub fn proc_scoped() -> Result<()> {
    h::require(&[Call::Create])?;
    let name = h::unique_name("hostonly");
    let _cfd = h::create(&name, 0)?;
    ensure!(
        h::listed(&h::proc_rows()?, &name),
        "root does not see its own container {name:?}"
    );
    let opened_by_root = std::fs::File::open(h::PROC_CONTAINERS).context("open as root")?;
    let (ours, theirs) = socketpair()?;
    let report = Pipe::new()?;
    let mut sandbox = Proc::fork("sandbox", || {
        h::become_user(USER)?;
        unshare(libc::CLONE_NEWUSER, "CLONE_NEWUSER")?;
        map_root_to(USER, USER)?;
        let text = sys::read_text(h::PROC_CONTAINERS)?;
        let rows = h::parse_proc(&text)?;
        report.send_i64(i64::from(rows.len() as u32))?;
        report.send_i64(i64::from(h::listed(&rows, &name)))?;
        let inherited = sys::read_to_end(&OwnedFd::from(opened_by_root.try_clone()?))?;
        let inherited = h::parse_proc(&String::from_utf8_lossy(&inherited))?;
        report.send_i64(i64::from(h::listed(&inherited, &name)))?;
        let mine = std::fs::File::open(h::PROC_CONTAINERS).context("open in the sandbox")?;
        send_fd(&theirs, &OwnedFd::from(mine))?;
        Ok(0)
    })?;
    let theirs_file = recv_fd(&ours)?;
    let got = report.recv_i64s(3, Some(&sandbox))?;
    sandbox.wait_exit(0)?;
    ensure!(
        got == [1, 0, 1],
        "in the sandbox: rows {}, lists root's container {}, and through root's open file {} \
         (expected 1 row, no, yes)",
        got[0],
        got[1],
        got[2]
    );
    let through = sys::read_to_end(&theirs_file)?;
    let through = h::parse_proc(&String::from_utf8_lossy(&through))?;
    ensure!(
        !h::listed(&through, &name) && through.len() == 1,
        "root reading a file the sandbox opened sees {}",
        h::render_all(&through)
    );

    // An owner above 2^31 prints as an unsigned number.
    let big: u32 = 3_000_000_000;
    let bigname = h::unique_name("bigowner");
    let mut maker = Proc::fork("uid 3000000000", || {
        h::become_user(big)?;
        let _c = h::create(&bigname, 0)?;
        let rows = h::proc_rows()?;
        let row = h::row(&rows, &bigname)?;
        ensure!(
            row.owner == i64::from(big) && row.group == i64::from(big),
            "owner columns of uid {big}'s container: {}",
            row.render()
        );
        Ok(0)
    })?;
    maker.wait_exit(0)
}

/// Scenario 1. An unprivileged user nests containers, each level's init making the
/// next: 32 levels below `.init` work, the 33rd container_create() is ENOSPC. With
/// every init waiting for its child, the chain unwinds from the leaf; with every init
/// exiting at once, its death kills the levels below. Neither may splat.
pub fn deep_nesting() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let mut child = Proc::fork("uid 65534 nesting", || {
        h::become_user(NOBODY)?;
        for exit_early in [false, true] {
            let report = Pipe::new()?;
            let release = Pipe::new()?;
            let mut top = Proc::fork("level 0", || nest(1, &report, &release, exit_early))?;
            let deepest = report.recv_i64(Some(&top))?;
            ensure!(
                deepest == MAX_DEPTH as i64,
                "containers nested {deepest} deep, expected {MAX_DEPTH}"
            );
            let errno = report.recv_i64(Some(&top))?;
            ensure!(
                errno == i64::from(libc::ENOSPC),
                "container_create at depth {}: {}, expected ENOSPC",
                MAX_DEPTH + 1,
                if errno == 0 {
                    "it succeeded".to_string()
                } else {
                    errno_name(Errno::from_raw_os_error(errno as i32))
                }
            );
            release.open(MAX_DEPTH + 1)?;
            top.wait_exit(0)?;
        }
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// Level `depth` of [`deep_nesting`]: makes container `depth`, starts its init (which
/// goes one level deeper) and, unless `exit_early`, waits for it.
fn nest(depth: usize, report: &Pipe, release: &Pipe, exit_early: bool) -> Result<i32> {
    match calls_create(depth) {
        Err(e) => {
            // One level too deep: report how deep it got and why it stopped.
            report.send_i64s(&[(depth - 1) as i64, i64::from(e.raw_os_error())])?;
            release.wait();
            Ok(0)
        }
        Ok(cfd) if depth > MAX_DEPTH => {
            drop(cfd);
            report.send_i64s(&[depth as i64, 0])?;
            release.wait();
            Ok(0)
        }
        Ok(cfd) => {
            let mut init = Proc::init(&cfd, || nest(depth + 1, report, release, exit_early))?;
            drop(cfd);
            if exit_early {
                // Leave at once: this container's death must take the rest.
                release.wait();
                init.leak();
                return Ok(0);
            }
            init.wait_exit(0)?;
            Ok(0)
        }
    }
}

fn calls_create(depth: usize) -> Result<OwnedFd, Errno> {
    let name = CString::new(format!("deep{depth}")).unwrap_or_default();
    super::calls::container_create(&name, 0)
}

/// user.max_containers counts containers per user like max_user_namespaces: with the
/// limit at 4, uid 65534 makes 4, the fifth is ENOSPC, and closing one makes room.
pub fn max_containers() -> Result<()> {
    h::require(&[Call::Create])?;
    with_sysctl("/proc/sys/user/max_containers", "4", || {
        let mut child = Proc::fork("uid 65534", || {
            h::become_user(NOBODY)?;
            let mut fds = (0..4)
                .map(|_| h::create(&h::unique_name("max"), 0))
                .collect::<Result<Vec<_>>>()?;
            expect_errno(
                "the fifth container_create at user.max_containers 4",
                super::calls::container_create(&h::unique_name("max"), 0),
                Errno::NOSPC,
            )?;
            fds.pop();
            h::create(&h::unique_name("max"), 0).map(|_| 0)
        })?;
        child.wait_exit(0)
    })
}

/// Runs `f` with the sysctl file `path` set to `value`, and restores it whatever `f`
/// returns.
fn with_sysctl(path: &str, value: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let old = sys::read_text(path)?;
    std::fs::write(path, value).with_context(|| format!("write {value} to {path}"))?;
    let result = f();
    std::fs::write(path, old.trim()).with_context(|| format!("restore {path}"))?;
    result
}

/// Debian's kernel.unprivileged_userns_clone=0 refuses unshare(CLONE_NEWUSER) to an
/// unprivileged user, and so CONTAINER_NEW_USER_NS: EPERM for both. (SKIP on a kernel
/// without the sysctl.)
pub fn userns_gate() -> Result<()> {
    h::require(&[Call::Create])?;
    const SYSCTL: &str = "/proc/sys/kernel/unprivileged_userns_clone";
    if !std::path::Path::new(SYSCTL).exists() {
        return Err(sys::skip(format!("{SYSCTL} does not exist on this kernel")));
    }
    with_sysctl(SYSCTL, "0", || {
        let mut child = Proc::fork("uid 65534", || {
            h::become_user(NOBODY)?;
            // SAFETY: unshare changes only this process, and fails here.
            let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            ensure!(
                r == -1 && sys::last_errno() == Errno::PERM,
                "unshare(CLONE_NEWUSER) with the gate closed: {r}"
            );
            expect_errno(
                "container_create(NEW_USER_NS) with the gate closed",
                super::calls::container_create(&h::unique_name("gate"), CONTAINER_NEW_USER_NS),
                Errno::PERM,
            )?;
            Ok(0)
        })?;
        child.wait_exit(0)
    })
}

/// map_write()'s CAP_SETFCAP rule: root without CAP_SETFCAP may not map root into a new
/// user namespace (so writing `0 0 1` to uid_map fails), and so a NEW_USER_NS container
/// is EPERM for it too.
pub fn setfcap_root_map() -> Result<()> {
    h::require(&[Call::Create])?;
    let mut child = Proc::fork("root without CAP_SETFCAP", || {
        let all: u64 = (1 << 41) - 1;
        let no_setfcap = all & !(1 << 31); // CAP_SETFCAP
        capset(no_setfcap, no_setfcap, 0)?;
        expect_errno(
            "container_create(NEW_USER_NS) without CAP_SETFCAP",
            super::calls::container_create(&h::unique_name("nosetfcap"), CONTAINER_NEW_USER_NS),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// The init's fd table holds no descriptor for its own container, whatever fd numbers
/// the supervisor had it under; other fds are inherited as by fork(). So a plain close
/// by the supervisor is the last one, and KILL_ON_CLOSE kills the init.
pub fn init_has_no_cfd() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let cfd = h::create(&h::unique_name("nocfd"), CONTAINER_KILL_ON_CLOSE)?;
    let dup = rustix::io::dup(&cfd).context("dup")?;
    let other = h::create(&h::unique_name("othercfd"), 0)?;
    let report = Pipe::new()?;
    let fds = [cfd.as_raw_fd(), dup.as_raw_fd(), other.as_raw_fd()];
    let mut init = Proc::init(&cfd, || {
        let open: Vec<i64> = fds
            .iter()
            // SAFETY: F_GETFD only queries the fd.
            .map(|&fd| i64::from(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0))
            .collect();
        report.send_i64s(&open)?;
        loop {
            // SAFETY: pause(2) waits for the signal that ends it.
            unsafe { libc::pause() };
        }
    })?;
    let open = report.recv_i64s(3, Some(&init))?;
    ensure!(
        open == [0, 0, 1],
        "in the init, fds (its cfd, a dup of it, another container's cfd) open: {open:?}, \
         expected [0, 0, 1]"
    );
    drop(cfd);
    drop(dup);
    let status = init.wait_within(h::DEATH_LIMIT)?;
    h::expect_sigkilled(
        status,
        "the init after the supervisor closed the KILL_ON_CLOSE cfd",
    )
}

/// container_kill(cfd, 0, sig) after init has exited is ESRCH, as documented, even while
/// members are still being killed; before that a process whose leader has exited gets a
/// queued signal once, not once per remaining thread.
pub fn kill_once_and_esrch() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    let cfd = h::create(&h::unique_name("once"), 0)?;
    let report = Pipe::new()?;
    let sig = libc::SIGRTMIN();
    let mut init = Proc::init(&cfd, || {
        // Count deliveries of the queued signal in a pipe, from any thread.
        let (rx, tx) = sys::pipe()?;
        h::record_signals(tx.as_raw_fd(), b'r', &[sig], true)?;
        std::mem::forget(tx);
        let report_fd = report.tx.as_raw_fd();
        let rx_fd = rx.as_raw_fd();
        std::mem::forget(rx);
        for _ in 0..3 {
            std::thread::spawn(|| loop {
                // SAFETY: pause(2) waits for signals.
                unsafe { libc::pause() };
            });
        }
        std::thread::spawn(move || {
            sys::raw_write(report_fd, &[1]);
            // After the kill: wait for deliveries, then report how many came.
            std::thread::sleep(std::time::Duration::from_millis(800));
            let mut buf = [0u8; 4096];
            // SAFETY: non-blocking read into a local buffer.
            unsafe { libc::fcntl(rx_fd, libc::F_SETFL, libc::O_NONBLOCK) };
            // SAFETY: as above.
            let n = unsafe { libc::read(rx_fd, buf.as_mut_ptr().cast(), buf.len()) };
            let count = h::parse_records(&buf[..n.max(0) as usize]).map_or(-1, |r| r.len() as i64);
            sys::raw_write(report_fd, &count.to_ne_bytes());
            // SAFETY: ends the process.
            unsafe { libc::_exit(0) }
        });
        exit_main_thread()
    })?;
    report.recv(1, Some(&init))?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    ok(
        "container_kill(cfd, 0, SIGRTMIN) with init's leader gone",
        container_kill(cfd.as_raw_fd(), 0, sig),
    )?;
    let count = report.recv_i64(Some(&init))?;
    init.wait_exit(0)?;
    ensure!(
        count == 1,
        "a process with 4 threads left (leader exited) got SIGRTMIN {count} times, expected once"
    );
    expect_errno(
        "container_kill(cfd, 0, 0) after init exited",
        container_kill(cfd.as_raw_fd(), 0, 0),
        Errno::SRCH,
    )?;
    // While a member outlives init (it is being killed), still ESRCH.
    let cfd = h::create(&h::unique_name("dying"), 0)?;
    let mut init = Proc::init(&cfd, || {
        let member = Proc::fork("member", || loop {
            // SAFETY: pause(2) waits for the SIGKILL.
            unsafe { libc::pause() };
        })?;
        member.leak();
        Ok(0)
    })?;
    init.wait_exit(0)?;
    expect_errno(
        "container_kill(cfd, 0, SIGTERM) once init has exited",
        container_kill(cfd.as_raw_fd(), 0, libc::SIGTERM),
        Errno::SRCH,
    )?;
    expect_container_status(&cfd, 0)
}

/// A sandbox cannot leave through a cfd made outside it: uid 1000 makes a container in
/// the initial namespaces, then enters a user namespace of its own (alone, or with a
/// network namespace, where container_socket() is EPERM) or a chroot:
/// fork_into_container() is EPERM too, as setns() into the initial namespaces or out of
/// the chroot would be. Outside the sandbox the same uid starts it.
pub fn fork_sandbox_escape() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let dir = TempDir::new("jail")?;
    let mut child = Proc::fork("uid 1000", || {
        h::become_user(USER)?;
        let cfd = h::create(&h::unique_name("outside"), 0)?;
        let mut userns = Proc::fork("uid 1000 in a user namespace of its own", || {
            unshare(libc::CLONE_NEWUSER, "CLONE_NEWUSER")?;
            map_root_to(USER, USER)?;
            expect_errno(
                "fork_into_container(a cfd made outside) from a user namespace",
                fork_fails(cfd.as_raw_fd()),
                Errno::PERM,
            )?;
            Ok(0)
        })?;
        userns.wait_exit(0)?;
        let mut netns = Proc::fork("uid 1000 in its own user and network namespaces", || {
            unshare(
                libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
                "CLONE_NEWUSER|CLONE_NEWNET",
            )?;
            map_root_to(USER, USER)?;
            expect_errno(
                "fork_into_container(a cfd made outside) from a network sandbox",
                fork_fails(cfd.as_raw_fd()),
                Errno::PERM,
            )?;
            Ok(0)
        })?;
        netns.wait_exit(0)?;
        let mut jail = Proc::fork("uid 1000 chrooted in its own user namespace", || {
            unshare(libc::CLONE_NEWUSER, "CLONE_NEWUSER")?;
            map_root_to(USER, USER)?;
            rustix::process::chroot(dir.path()).context("chroot")?;
            expect_errno(
                "fork_into_container(a cfd made outside) from a chroot",
                fork_fails(cfd.as_raw_fd()),
                Errno::PERM,
            )?;
            Ok(0)
        })?;
        jail.wait_exit(0)?;
        let mut init = Proc::init(&cfd, || Ok(4))?;
        init.wait_exit(4)?;
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// Supplementary groups are privileges too: uid 1000 in group 4242 makes a container and
/// passes the cfd to a uid 1000 without the group, which gets EPERM, and to one in groups
/// 4242 and 4243, which gets EPERM too (dropping a group takes CAP_SETGID, as a group can
/// deny access); in group 4242 alone, the init starts and has exactly the container's
/// groups.
pub fn groups_not_gained() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    const GROUP: u32 = 4242;
    let in_groups = |groups: &[u32]| h::set_ids(groups, USER, USER);
    let with_group = || in_groups(&[GROUP]);
    let (ours, theirs) = socketpair()?;
    let mut maker = Proc::fork("uid 1000 in group 4242", || {
        with_group()?;
        let cfd = h::create(&h::unique_name("grouped"), 0)?;
        send_fd(&theirs, &cfd)?;
        send_fd(&theirs, &cfd)?;
        send_fd(&theirs, &cfd)?;
        Ok(0)
    })?;
    let cfd_a = recv_fd(&ours)?;
    let cfd_b = recv_fd(&ours)?;
    let cfd_c = recv_fd(&ours)?;
    maker.wait_exit(0)?;
    let mut more = Proc::fork("uid 1000 in groups 4242 and 4243", || {
        in_groups(&[GROUP, GROUP + 1])?;
        expect_errno(
            "fork_into_container(a container of group 4242) dropping group 4243",
            fork_fails(cfd_c.as_raw_fd()),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    more.wait_exit(0)?;
    let mut without = Proc::fork("uid 1000 without group 4242", || {
        h::become_user(USER)?;
        expect_errno(
            "fork_into_container(a container of group 4242) without the group",
            fork_fails(cfd_a.as_raw_fd()),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    without.wait_exit(0)?;
    let report = Pipe::new()?;
    let mut with = Proc::fork("uid 1000 in group 4242", || {
        with_group()?;
        let mut init = Proc::init(&cfd_b, || {
            let groups = rustix::process::getgroups().context("getgroups")?;
            report.send_i64(groups.len() as i64)?;
            report.send_i64s(
                &groups
                    .iter()
                    .map(|g| i64::from(g.as_raw()))
                    .collect::<Vec<_>>(),
            )?;
            Ok(0)
        })?;
        init.wait_exit(0)?;
        Ok(0)
    })?;
    let n = report.recv_i64(Some(&with))?;
    ensure!((0..=64).contains(&n), "the init reports {n} groups");
    let groups = report.recv_i64s(n as usize, Some(&with))?;
    with.wait_exit(0)?;
    ensure!(
        groups == [i64::from(GROUP)],
        "the init's groups: {groups:?}, expected [{GROUP}]"
    );
    Ok(())
}

/// Starts the init of `cfd`, which exits 5 if its real and effective uids are `want`,
/// and waits for that.
fn init_has_uids(cfd: &OwnedFd, want: (u32, u32)) -> Result<()> {
    let mut init = Proc::init(cfd, || {
        // SAFETY: getuid(2) and geteuid(2) cannot fail.
        let ids = unsafe { (libc::getuid(), libc::geteuid()) };
        Ok(if ids == want { 5 } else { 6 })
    })?;
    init.wait_exit(5)
}

/// Every id is a privilege, the real uid too: root that became uid 1000 in its effective
/// and saved uids only, and dropped every capability, makes a container whose credentials
/// keep real uid 0, which execve() would make root again (and which RLIMIT_NPROC exempts).
/// A process that is uid 1000 in all its ids gets EPERM from fork_into_container(); the
/// maker starts it, and its init has real uid 0 and effective uid 1000.
pub fn real_uid_not_gained() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let mut maker = Proc::fork("real uid 0, effective uid 1000, no capabilities", || {
        h::set_ids(&[], 0, USER)?;
        capset(0, 0, 0)?;
        let cfd = h::create(&h::unique_name("ruid0"), 0)?;
        let mut starter = Proc::fork("uid 1000 in all its ids", || {
            // SAFETY: as above; 1000 is one of this process's uids.
            if unsafe { libc::setresuid(USER, USER, USER) } != 0 {
                bail!("setresuid({USER}): {}", errno_name(sys::last_errno()));
            }
            expect_errno(
                "fork_into_container(a container with real uid 0) as uid 1000",
                fork_fails(cfd.as_raw_fd()),
                Errno::PERM,
            )?;
            Ok(0)
        })?;
        starter.wait_exit(0)?;
        init_has_uids(&cfd, (0, USER))?;
        Ok(0)
    })?;
    maker.wait_exit(0)
}

/// The bounding set limits what execve() of a file with capabilities gives, and only
/// CAP_SETPCAP makes it smaller (a setuid program may count on it): a uid 1000 whose
/// bounding set lacks CAP_NET_RAW gets EPERM from fork_into_container() on a container
/// uid 1000 made with the full set, and a uid 1000 with the full set gets EPERM on one
/// made without CAP_NET_RAW; with the same set as the maker's, uid 1000 starts it.
pub fn bounding_set_not_gained() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    const CAP_NET_RAW: libc::c_ulong = 13;
    let drop_net_raw = || -> Result<()> {
        // SAFETY: prctl with integer arguments, as root.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0) } != 0 {
            bail!("PR_CAPBSET_DROP: {}", errno_name(sys::last_errno()));
        }
        Ok(())
    };
    let (ours, theirs) = socketpair()?;
    let mut maker = Proc::fork("uid 1000 with the full bounding set", || {
        h::become_user(USER)?;
        let cfd = h::create(&h::unique_name("bset"), 0)?;
        send_fd(&theirs, &cfd)?;
        Ok(0)
    })?;
    let full = recv_fd(&ours)?;
    maker.wait_exit(0)?;
    let mut maker = Proc::fork("uid 1000 without CAP_NET_RAW in its bounding set", || {
        drop_net_raw()?;
        h::become_user(USER)?;
        let cfd = h::create(&h::unique_name("bset-small"), 0)?;
        send_fd(&theirs, &cfd)?;
        Ok(0)
    })?;
    let small = recv_fd(&ours)?;
    maker.wait_exit(0)?;
    let mut smaller = Proc::fork("uid 1000 without CAP_NET_RAW in its bounding set", || {
        drop_net_raw()?;
        h::become_user(USER)?;
        expect_errno(
            "fork_into_container(a full bounding set) from a smaller one",
            fork_fails(full.as_raw_fd()),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    smaller.wait_exit(0)?;
    let mut whole = Proc::fork("uid 1000 with the full bounding set", || {
        h::become_user(USER)?;
        expect_errno(
            "fork_into_container(a smaller bounding set) without CAP_SETPCAP",
            fork_fails(small.as_raw_fd()),
            Errno::PERM,
        )?;
        let mut init = Proc::init(&full, || Ok(4))?;
        init.wait_exit(4)?;
        Ok(0)
    })?;
    whole.wait_exit(0)
}

/// Root may start the init of a container that uid 1000 in group 4242 made with a user
/// namespace of its own, though root is in neither that namespace nor the group: it
/// could set uid 1000's ids and groups and then setns() into the namespace uid 1000
/// owns. The init is root there, uid 1000 outside.
pub fn root_starts_rootless() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    const GROUP: u32 = 4242;
    let (ours, theirs) = socketpair()?;
    let mut maker = Proc::fork("uid 1000 in group 4242", || {
        h::set_ids(&[GROUP], USER, USER)?;
        let cfd = h::create(&h::unique_name("rootless"), CONTAINER_NEW_USER_NS)?;
        send_fd(&theirs, &cfd)?;
        Ok(0)
    })?;
    let cfd = recv_fd(&ours)?;
    maker.wait_exit(0)?;
    let mut root = Proc::fork("root", || {
        init_has_uids(&cfd, (0, 0))?;
        Ok(0)
    })?;
    root.wait_exit(0)
}

/// Locked securebits stay: root that set and locked SECBIT_NOROOT (so that execve() gives
/// it no capabilities for being root) gets EPERM from fork_into_container() on root's
/// container, whose credentials lack the bit; root without it starts the init.
pub fn securebits_not_shed() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    const SECBIT_NOROOT_AND_LOCKED: libc::c_ulong = 0b11;
    let cfd = h::create(&h::unique_name("secbits"), 0)?;
    let mut locked = Proc::fork("root with SECBIT_NOROOT set and locked", || {
        // SAFETY: prctl with integer arguments, as root with CAP_SETPCAP.
        if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NOROOT_AND_LOCKED, 0, 0, 0) } != 0 {
            bail!("PR_SET_SECUREBITS: {}", errno_name(sys::last_errno()));
        }
        expect_errno(
            "fork_into_container(root's container) with SECBIT_NOROOT locked",
            fork_fails(cfd.as_raw_fd()),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    locked.wait_exit(0)?;
    let mut root = Proc::fork("root", || {
        let mut init = Proc::init(&cfd, || Ok(4))?;
        init.wait_exit(4)?;
        Ok(0)
    })?;
    root.wait_exit(0)
}

/// A cfd holder that may not signal the members (uid 1000 against root's container)
/// gets EPERM from container_kill() however often it tries, and that never reaches a
/// thread or process the init creates meanwhile: the daemon survives two seconds of
/// SIGKILL attempts while it creates threads and processes as fast as it can.
pub fn kill_eperm_never_lands() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    let cfd = h::create(&h::unique_name("daemon"), 0)?;
    let mut init = Proc::init(&cfd, || loop {
        let t = std::thread::spawn(|| {});
        let _ = t.join();
        // SAFETY: the child exits at once.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            -1 => {}
            // SAFETY: reaps our own child.
            pid => unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            },
        }
    })?;
    let mut monitor = Proc::fork("uid 1000 monitor", || {
        h::become_user(USER)?;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut tries = 0u64;
        while std::time::Instant::now() < until {
            expect_errno(
                "container_kill(root's container, 0, SIGKILL) as uid 1000",
                container_kill(cfd.as_raw_fd(), 0, libc::SIGKILL),
                Errno::PERM,
            )?;
            tries += 1;
        }
        ensure!(tries > 0, "no container_kill attempt");
        Ok(0)
    })?;
    monitor.wait_exit(0)?;
    expect_errno(
        "container_wait(WNOHANG) after the monitor's attempts",
        wait_status(&cfd, libc::WNOHANG as u32),
        Errno::AGAIN,
    )?;
    ok(
        "container_kill(cfd, 0, SIGKILL) as root",
        container_kill(cfd.as_raw_fd(), 0, libc::SIGKILL),
    )?;
    h::expect_sigkilled(init.wait()?, "the daemon after root's kill")
}

/// CLOCK_MONOTONIC through the vDSO (libc) and through the system call, in seconds.
fn monotonic_pair() -> (i64, i64) {
    // SAFETY: timespec is plain data; both calls fill it in.
    let mut vdso: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut sys: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointers.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut vdso);
        libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut sys);
    }
    (vdso.tv_sec, sys.tv_sec)
}

/// The time namespace is switched as setns() would: a caller that unshared
/// CLONE_NEWTIME (its children go to a namespace whose CLOCK_MONOTONIC is a day ahead)
/// starts the init of a container made then; the init is in the container's time
/// namespace (the caller's own, as /proc/self/ns/time shows) and its vDSO agrees with
/// the system call, where a plain fork() child is a day ahead in both.
pub fn time_namespace() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let report = Pipe::new()?;
    let mut child = Proc::fork("root with a time namespace for its children", || {
        unshare(libc::CLONE_NEWTIME, "CLONE_NEWTIME")?;
        std::fs::write("/proc/self/timens_offsets", "monotonic 86400 0")
            .context("write /proc/self/timens_offsets")?;
        let mine = h::ns_inode(None, "time")?;
        let cfd = h::create(&h::unique_name("timens"), 0)?;
        let mut plain = Proc::fork("plain fork", || {
            let (vdso, sys) = monotonic_pair();
            report.send_i64s(&[vdso, sys])?;
            Ok(0)
        })?;
        let forked = report.recv_i64s(2, Some(&plain))?;
        plain.wait_exit(0)?;
        let mut init = Proc::init(&cfd, || {
            let (vdso, sys) = monotonic_pair();
            report.send_i64s(&[vdso, sys, h::ns_inode(None, "time")? as i64])?;
            Ok(0)
        })?;
        let got = report.recv_i64s(3, Some(&init))?;
        init.wait_exit(0)?;
        let (here, _) = monotonic_pair();
        ensure!(
            forked[0] - here >= 86_000 && forked[1] - here >= 86_000,
            "a plain fork() child is not a day ahead: vDSO {}, syscall {}, caller {here}",
            forked[0],
            forked[1]
        );
        ensure!(
            (got[0] - got[1]).abs() <= 2,
            "the init's vDSO says {} s, the system call {} s: the vDSO is in another time \
             namespace",
            got[0],
            got[1]
        );
        ensure!(
            got[2] as u64 == mine && (got[1] - here).abs() <= 2,
            "the init's time namespace: inode {} (caller's {mine}), CLOCK_MONOTONIC {} s \
             (caller's {here} s)",
            got[2],
            got[1]
        );
        Ok(0)
    })?;
    child.wait_exit(0)
}

/// RLIMIT_NPROC is checked against the container's user, not only the caller's, and
/// the exemption for CAP_SYS_RESOURCE and CAP_SYS_ADMIN is the container credentials',
/// not the starter's: root with every capability, then root without those two but with
/// CAP_SETUID and CAP_SETGID, start the init of uid 65534's container. At RLIMIT_NPROC
/// 1, with one 65534 process running, both get EAGAIN (as setuid() + execve() would;
/// root's own count is exempt); with the limit lifted the init runs as 65534.
pub fn nproc_of_container_user() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let (ours, theirs) = socketpair()?;
    let gate = Pipe::new()?;
    let mut maker = Proc::fork("uid 65534, one running process", || {
        h::become_user(NOBODY)?;
        let cfd = h::create(&h::unique_name("nproc65534"), 0)?;
        send_fd(&theirs, &cfd)?;
        drop(cfd);
        gate.wait();
        Ok(0)
    })?;
    let cfd = recv_fd(&ours)?;
    let report = Pipe::new()?;
    let mut root = Proc::fork(
        "root, then without CAP_SYS_ADMIN and CAP_SYS_RESOURCE",
        || {
            let all: u64 = (1 << 41) - 1;
            // CAP_SYS_RESOURCE is 24, CAP_SYS_ADMIN 21.
            let some = all & !(1 << 24) & !(1 << 21);
            for (who, caps) in [
                ("root with every capability", None),
                (
                    "root without CAP_SYS_ADMIN and CAP_SYS_RESOURCE",
                    Some(some),
                ),
            ] {
                if let Some(caps) = caps {
                    capset(caps, caps, 0)?;
                }
                super::fork::set_nproc(Some(1))?;
                expect_errno(
                    &format!(
                        "fork_into_container(uid 65534's container) at RLIMIT_NPROC 1 by {who}"
                    ),
                    fork_fails(cfd.as_raw_fd()),
                    Errno::AGAIN,
                )?;
                super::fork::set_nproc(None)?;
            }
            let mut init = Proc::init(&cfd, || {
                report.send_i64(i64::from(rustix::process::geteuid().as_raw()))?;
                Ok(0)
            })?;
            let euid = report.recv_i64(Some(&init))?;
            init.wait_exit(0)?;
            ensure!(euid == i64::from(NOBODY), "the init's euid {euid}");
            Ok(0)
        },
    )?;
    let result = root.wait_exit(0);
    gate.open(1)?;
    maker.wait_exit(0)?;
    result
}
