//! container_kill, and what a container's death does to its members (uapi.md §3
//! "Death"): init's death kills every member, KILL_ON_CLOSE against a plain close.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{ensure, Result};
use libc::c_int;

use super::calls::{container_kill, container_wait};
use super::helpers::{self as h, Call, Pipe, Proc, SigRecord, NOBODY};
use crate::sys::{expect_errno, ok, Errno};
use crate::uapi::*;

/// si_code of a signal sent with kill(2).
const SI_USER: c_int = 0;

fn expect_kill(what: &str, cfd: &OwnedFd, initonly: c_int, sig: c_int) -> Result<()> {
    let r = ok(what, container_kill(cfd.as_raw_fd(), initonly, sig))?;
    ensure!(r == 0, "{what}: returned {r}, expected 0");
    Ok(())
}

/// EBADF (-1, a closed fd) and EINVAL (/dev/null, a pipe) for the fd; initonly other
/// than 0/1 and signals outside 0..=64 are EINVAL, before the init starts (where valid
/// arguments are ESRCH) and while it runs (where signal 64 is fine).
pub fn bad_args() -> Result<()> {
    h::require(&[Call::Kill, Call::Create, Call::Fork])?;
    let bad = h::bad_fds()?;
    for &(what, fd, want) in &bad.cases {
        expect_errno(
            &format!("container_kill({what}, 0, 0)"),
            container_kill(fd, 0, 0),
            want,
        )?;
    }

    let cfd = h::create(&h::unique_name("killargs"), 0)?;
    let fd = cfd.as_raw_fd();
    let invalid = |stage: &str| -> Result<()> {
        for (initonly, sig) in [
            (2, 0),
            (-1, 0),
            (2, libc::SIGTERM),
            (0, 65),
            (1, 65),
            (0, 1000),
            (0, -1),
        ] {
            expect_errno(
                &format!("container_kill({stage}, initonly={initonly}, sig={sig})"),
                container_kill(fd, initonly, sig),
                Errno::INVAL,
            )?;
        }
        Ok(())
    };
    invalid("no init")?;
    for (initonly, sig) in [(0, 0), (1, libc::SIGTERM), (0, 64)] {
        expect_errno(
            &format!("container_kill(no init, {initonly}, {sig})"),
            container_kill(fd, initonly, sig),
            Errno::SRCH,
        )?;
    }

    let gate = Pipe::new()?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        h::set_disposition(64, libc::SIG_IGN)?;
        ready.send(b"r")?;
        gate.wait();
        Ok(0)
    })?;
    ready.recv(1, Some(&init))?;
    invalid("running")?;
    expect_kill("container_kill(running, 1, 64)", &cfd, 1, 64)?;
    expect_kill("container_kill(running, 0, 64)", &cfd, 0, 64)?;
    gate.open(1)?;
    init.wait_exit(0)
}

/// initonly=1 signals the init alone, initonly=0 the init and every member (a child of
/// the init), each once, with si_code SI_USER and the sender's pid and uid.
pub fn initonly_vs_all() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill])?;
    let cfd = h::create(&h::unique_name("initonly"), 0)?;
    let records = Pipe::new()?;
    let ready = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        h::record_signals(records.tx.as_raw_fd(), b'I', &[libc::SIGUSR1], true)?;
        let mut member = Proc::fork("member", || {
            h::record_signals(records.tx.as_raw_fd(), b'M', &[libc::SIGUSR1], true)?;
            ready.send(b"m")?;
            gate.wait();
            Ok(0)
        })?;
        ready.send(b"i")?;
        gate.wait();
        member.wait_exit(0)?;
        Ok(0)
    })?;
    ready.recv(2, Some(&init))?;

    let me = std::process::id() as libc::pid_t;
    let from_us = |tag| SigRecord {
        tag,
        sig: libc::SIGUSR1,
        code: SI_USER,
        pid: me,
        uid: 0,
    };
    expect_kill("container_kill(cfd, 1, SIGUSR1)", &cfd, 1, libc::SIGUSR1)?;
    let got = h::parse_records(&records.recv(14, Some(&init))?)?;
    ensure!(
        got == [from_us('I')],
        "after container_kill(initonly=1): expected {:?}, got {got:?}",
        [from_us('I')]
    );
    expect_kill("container_kill(cfd, 0, SIGUSR1)", &cfd, 0, libc::SIGUSR1)?;
    let mut got = h::parse_records(&records.recv(28, Some(&init))?)?;
    got.sort_by_key(|r| r.tag);
    let want = [from_us('I'), from_us('M')];
    ensure!(
        got == want,
        "after container_kill(initonly=0): expected {want:?}, got {got:?}"
    );

    gate.open(2)?;
    init.wait_exit(0)?;
    let Pipe { rx, tx } = records;
    drop(tx);
    let rest = h::parse_records(&h::read_all(&rx)?)?;
    ensure!(rest.is_empty(), "more signals than sent: {rest:?}");
    Ok(())
}

/// Signal 0 only checks: 0 for a running container (init-only and all), nothing is
/// delivered (the init exits normally afterwards).
pub fn sig0() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill])?;
    let cfd = h::create(&h::unique_name("sig0"), 0)?;
    let gate = Pipe::new()?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        ready.send(b"r")?;
        gate.wait();
        Ok(4)
    })?;
    ready.recv(1, Some(&init))?;
    expect_kill("container_kill(cfd, 0, 0)", &cfd, 0, 0)?;
    expect_kill("container_kill(cfd, 1, 0)", &cfd, 1, 0)?;
    gate.open(1)?;
    init.wait_exit(4)
}

/// ESRCH before the init starts and once the container is dead, for signal 0 and real
/// signals, init-only and all.
pub fn esrch() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    let cfd = h::create(&h::unique_name("esrch"), 0)?;
    let all = [(0, 0), (1, 0), (0, libc::SIGKILL), (1, libc::SIGTERM)];
    for (initonly, sig) in all {
        expect_errno(
            &format!("container_kill(before start, {initonly}, {sig})"),
            container_kill(cfd.as_raw_fd(), initonly, sig),
            Errno::SRCH,
        )?;
    }
    let mut init = Proc::init(&cfd, || Ok(0))?;
    init.wait_exit(0)?;
    ok(
        "container_wait",
        container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    for (initonly, sig) in all {
        expect_errno(
            &format!("container_kill(dead, {initonly}, {sig})"),
            container_kill(cfd.as_raw_fd(), initonly, sig),
            Errno::SRCH,
        )?;
    }
    Ok(())
}

/// kill(2)'s permission rules per target: uid 65534 holding root's cfd may signal a
/// member running as 65534 (initonly=0 returns 0, only that member gets it, si_uid 65534)
/// but not the root init (initonly=1 is EPERM, also for signal 0).
pub fn permission() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill])?;
    let cfd = h::create(&h::unique_name("perm"), 0)?;
    let records = Pipe::new()?;
    let ready = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        h::record_signals(records.tx.as_raw_fd(), b'I', &[libc::SIGUSR1], true)?;
        let mut member = Proc::fork("member", || {
            h::become_user(NOBODY)?;
            h::record_signals(records.tx.as_raw_fd(), b'M', &[libc::SIGUSR1], true)?;
            ready.send(b"m")?;
            gate.wait();
            Ok(0)
        })?;
        ready.send(b"i")?;
        gate.wait();
        member.wait_exit(0)?;
        Ok(0)
    })?;
    ready.recv(2, Some(&init))?;

    let mut sender = Proc::fork("unprivileged sender", || {
        h::become_user(NOBODY)?;
        for sig in [libc::SIGUSR1, 0] {
            expect_errno(
                &format!("container_kill(root's init only, {sig}) as 65534"),
                container_kill(cfd.as_raw_fd(), 1, sig),
                Errno::PERM,
            )?;
        }
        expect_kill("container_kill(all, 0) as 65534", &cfd, 0, 0)?;
        expect_kill(
            "container_kill(all, SIGUSR1) as 65534",
            &cfd,
            0,
            libc::SIGUSR1,
        )?;
        Ok(0)
    })?;
    let sender_pid = sender.pid();
    sender.wait_exit(0)?;
    let got = h::parse_records(&records.recv(14, Some(&init))?)?;
    let want = [SigRecord {
        tag: 'M',
        sig: libc::SIGUSR1,
        code: SI_USER,
        pid: sender_pid,
        uid: NOBODY,
    }];
    ensure!(
        got == want,
        "signals from 65534: expected {want:?}, got {got:?}"
    );
    gate.open(2)?;
    init.wait_exit(0)?;
    let Pipe { rx, tx } = records;
    drop(tx);
    let rest = h::parse_records(&h::read_all(&rx)?)?;
    ensure!(
        rest.is_empty(),
        "signals that should not have been sent: {rest:?}"
    );
    Ok(())
}

/// Without a pid namespace, the init's death SIGKILLs a member that would otherwise run
/// forever (it is reparented to us, the subreaper, and reaped with SIGKILL), and the
/// container's wait status is the init's exit(3).
pub fn death_kills_members() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    h::become_subreaper()?;
    let cfd = h::create(&h::unique_name("death"), 0)?;
    let report = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        let never = Pipe::new()?;
        let member = Proc::fork("member", || {
            never.wait();
            Ok(0)
        })?;
        report.send_i64(i64::from(member.leak()))?;
        gate.wait();
        Ok(3)
    })?;
    let member = report.recv_i64(Some(&init))? as libc::pid_t;
    gate.open(1)?;
    init.wait_exit(3)?;
    let status = h::waitpid_within(member, h::DEATH_LIMIT)?;
    h::expect_sigkilled(status, &format!("member {member} after the init's death"))?;
    let mut wstatus = -1;
    ok(
        "container_wait",
        container_wait(cfd.as_raw_fd(), Some(&mut wstatus), 0, None),
    )?;
    ensure!(
        wstatus == 3 << 8,
        "container_wait status {wstatus:#x}, expected 0x300"
    );
    Ok(())
}

/// With NEW_PID_NS, the init's death kills a member that would run forever (the pipe
/// end only it holds reaches EOF), and the container's wait status is the init's
/// exit(3); the member was pid 2 of the namespace.
pub fn death_kills_members_pidns() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("deathpid"), CONTAINER_NEW_PID_NS)?;
    let report = Pipe::new()?;
    let gate = Pipe::new()?;
    let Pipe {
        rx: alive_rx,
        tx: alive_tx,
    } = Pipe::new()?;
    let (report_ref, gate_ref) = (&report, &gate);
    // Our `alive_tx` moves into the body and is dropped unrun here; the init drops its
    // copy once the member has one.
    let mut init = Proc::init(&cfd, move || {
        let never = Pipe::new()?;
        let member = Proc::fork("member", || {
            never.wait();
            Ok(0)
        })?;
        drop(alive_tx);
        report_ref.send_i64(i64::from(member.leak()))?;
        gate_ref.wait();
        Ok(3)
    })?;
    let member = report.recv_i64(Some(&init))?;
    ensure!(member == 2, "the member's pid in the namespace: {member}");
    gate.open(1)?;
    init.wait_exit(3)?;
    let rest = h::read_all(&alive_rx)?;
    ensure!(rest.is_empty(), "unexpected data from the member: {rest:?}");
    let mut wstatus = -1;
    ok(
        "container_wait",
        container_wait(cfd.as_raw_fd(), Some(&mut wstatus), 0, None),
    )?;
    ensure!(
        wstatus == 3 << 8,
        "container_wait status {wstatus:#x}, expected 0x300"
    );
    Ok(())
}

/// Starts an init that closes its copy of `cfd` and forks a member; both block until
/// `gate` opens, then the member exits 0 and the init reaps it and exits 0.
fn init_and_member(cfd: &OwnedFd, gate: &Pipe) -> Result<(Proc, libc::pid_t)> {
    let report = Pipe::new()?;
    let raw = cfd.as_raw_fd();
    let init = Proc::init(cfd, || {
        // SAFETY: closes the init's copy of the container fd; nothing else uses it.
        unsafe { libc::close(raw) };
        let mut member = Proc::fork("member", || {
            gate.wait();
            Ok(0)
        })?;
        report.send_i64(i64::from(member.pid()))?;
        gate.wait();
        member.wait_exit(0)?;
        Ok(0)
    })?;
    let member = report.recv_i64(Some(&init))? as libc::pid_t;
    Ok((init, member))
}

/// CONTAINER_KILL_ON_CLOSE: closing the last fd SIGKILLs the init and the member
/// (listed before as USE 3 FL 05: fd, init, member; kill-on-close, started), and the
/// container is freed (its row is gone).
pub fn kill_on_close() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    h::become_subreaper()?;
    let name = h::unique_name("koc");
    let cfd = h::create(&name, CONTAINER_KILL_ON_CLOSE)?;
    let gate = Pipe::new()?;
    let (mut init, member) = init_and_member(&cfd, &gate)?;
    h::expect_row(
        h::row(&h::proc_rows()?, &name)?,
        3,
        h::FL_KILL_ON_CLOSE | h::FL_STARTED,
        0,
        0,
    )?;
    drop(cfd);
    let status = init.wait_within(h::DEATH_LIMIT)?;
    h::expect_sigkilled(status, "init after the close of a KILL_ON_CLOSE fd")?;
    let status = h::waitpid_within(member, h::DEATH_LIMIT)?;
    h::expect_sigkilled(status, "member after the close of a KILL_ON_CLOSE fd")?;
    h::expect_unlisted(&name, "after it died with no fd")?;
    Ok(())
}

/// Without KILL_ON_CLOSE, closing the only fd stops nothing: the container stays listed
/// (USE 2 FL 01: init and member), both run on and exit normally, then it is freed.
pub fn plain_close() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let name = h::unique_name("close");
    let cfd = h::create(&name, 0)?;
    let gate = Pipe::new()?;
    let (mut init, _member) = init_and_member(&cfd, &gate)?;
    drop(cfd);
    h::expect_row(h::row(&h::proc_rows()?, &name)?, 2, h::FL_STARTED, 0, 0)?;
    ensure!(
        init.try_wait()?.is_none(),
        "init ended when its container's fd was closed"
    );
    gate.open(2)?;
    init.wait_exit(0)?;
    h::expect_unlisted(&name, "after its init exited with no fd")?;
    Ok(())
}

/// Threads are part of their process: with a queued real-time signal, initonly=0
/// reaches a member running three threads exactly once (signals go to thread-group
/// leaders, not to each thread), and the init once.
pub fn threads_once() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill])?;
    let cfd = h::create(&h::unique_name("threads"), 0)?;
    let rt = libc::SIGRTMIN() + 5;
    let records = Pipe::new()?;
    let ready = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        h::record_signals(records.tx.as_raw_fd(), b'I', &[rt], true)?;
        let mut member = Proc::fork("member with threads", || {
            h::record_signals(records.tx.as_raw_fd(), b'M', &[rt], true)?;
            std::thread::scope(|s| -> Result<()> {
                for _ in 0..2 {
                    s.spawn(|| gate.wait());
                }
                ready.send(b"m")?;
                gate.wait();
                Ok(())
            })?;
            Ok(0)
        })?;
        ready.send(b"i")?;
        gate.wait();
        member.wait_exit(0)?;
        Ok(0)
    })?;
    ready.recv(2, Some(&init))?;
    expect_kill("container_kill(cfd, 0, SIGRTMIN+5)", &cfd, 0, rt)?;
    let mut got = h::parse_records(&records.recv(28, Some(&init))?)?;
    got.sort_by_key(|r| r.tag);
    let me = std::process::id() as libc::pid_t;
    let want: Vec<SigRecord> = ['I', 'M']
        .into_iter()
        .map(|tag| SigRecord {
            tag,
            sig: rt,
            code: SI_USER,
            pid: me,
            uid: 0,
        })
        .collect();
    ensure!(got == want, "expected {want:?}, got {got:?}");
    gate.open(4)?;
    init.wait_exit(0)?;
    let Pipe { rx, tx } = records;
    drop(tx);
    let rest = h::parse_records(&h::read_all(&rx)?)?;
    ensure!(
        rest.is_empty(),
        "the signal reached a process more than once: {rest:?}"
    );
    Ok(())
}
