//! container_wait and poll on the container fd (uapi.md §3).

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{ensure, Context, Result};
use libc::c_int;

use super::calls::{container_kill, container_wait};
use super::helpers::{self as h, Call, Pipe, Proc, Usage};
use crate::sys::{self, expect_errno, ok, Errno};
use crate::uapi::*;

const WNOHANG: u32 = libc::WNOHANG as u32;

/// Every field of a `struct rusage`, to compare two answers exactly.
fn rusage_fields(ru: &libc::rusage) -> [i64; 18] {
    [
        ru.ru_utime.tv_sec,
        ru.ru_utime.tv_usec,
        ru.ru_stime.tv_sec,
        ru.ru_stime.tv_usec,
        ru.ru_maxrss,
        ru.ru_ixrss,
        ru.ru_idrss,
        ru.ru_isrss,
        ru.ru_minflt,
        ru.ru_majflt,
        ru.ru_nswap,
        ru.ru_inblock,
        ru.ru_oublock,
        ru.ru_msgsnd,
        ru.ru_msgrcv,
        ru.ru_nsignals,
        ru.ru_nvcsw,
        ru.ru_nivcsw,
    ]
}

fn zero_rusage() -> libc::rusage {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// container_wait(cfd, &status, options, &ru) that must return 0: (status, rusage).
fn wait_ok(what: &str, cfd: &OwnedFd, options: u32) -> Result<(c_int, [i64; 18])> {
    let mut status = -1;
    let mut ru = zero_rusage();
    let r = ok(
        what,
        container_wait(cfd.as_raw_fd(), Some(&mut status), options, Some(&mut ru)),
    )?;
    ensure!(r == 0, "{what}: returned {r}, expected 0");
    Ok((status, rusage_fields(&ru)))
}

/// EBADF (-1, a closed fd), EINVAL (/dev/null, a pipe); options other than 0 and WNOHANG
/// are EINVAL; a container whose init never started is ECHILD, with and without WNOHANG
/// and with NULL pointers.
pub fn bad_args() -> Result<()> {
    h::require(&[Call::Wait, Call::Create])?;
    let bad = h::bad_fds()?;
    let mut status = 0;
    for &(what, fd, want) in &bad.cases {
        expect_errno(
            &format!("container_wait({what}, &status, 0, NULL)"),
            container_wait(fd, Some(&mut status), 0, None),
            want,
        )?;
        expect_errno(
            &format!("container_wait({what}, NULL, 0, NULL)"),
            container_wait(fd, None, 0, None),
            want,
        )?;
    }

    let cfd = h::create(&h::unique_name("waitargs"), 0)?;
    let fd = cfd.as_raw_fd();
    for options in [
        libc::WUNTRACED as u32,
        libc::WEXITED as u32,
        libc::WCONTINUED as u32,
        libc::__WALL as u32,
        WNOHANG | libc::WUNTRACED as u32,
        0x8000_0000,
        u32::MAX,
    ] {
        expect_errno(
            &format!("container_wait(options={options:#x})"),
            container_wait(fd, Some(&mut status), options, None),
            Errno::INVAL,
        )?;
    }
    for options in [0, WNOHANG] {
        expect_errno(
            &format!("container_wait(no init ever started, options={options})"),
            container_wait(fd, Some(&mut status), options, None),
            Errno::CHILD,
        )?;
        expect_errno(
            &format!("container_wait(no init, NULL, {options}, NULL)"),
            container_wait(fd, None, options, None),
            Errno::CHILD,
        )?;
    }
    Ok(())
}

/// The init's exit(42) is status 0x2a00, exactly what waitpid reported for it; the
/// call returns 0, also with NULL pointers and with WNOHANG once dead.
pub fn exit_status() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("exit"), 0)?;
    let mut init = Proc::init(&cfd, || Ok(42))?;
    let reaped = init.wait()?;
    ensure!(reaped == 0x2a00, "waitpid of the init: status {reaped:#x}");
    let (status, _) = wait_ok("container_wait", &cfd, 0)?;
    ensure!(
        status == 0x2a00,
        "container_wait status {status:#x}, expected 0x2a00 (exit 42)"
    );
    let r = ok(
        "container_wait(cfd, NULL, 0, NULL)",
        container_wait(cfd.as_raw_fd(), None, 0, None),
    )?;
    ensure!(r == 0, "container_wait(NULL, NULL) returned {r}");
    let (status, _) = wait_ok("container_wait(WNOHANG) when dead", &cfd, WNOHANG)?;
    ensure!(
        status == 0x2a00,
        "container_wait(WNOHANG) status {status:#x}"
    );
    Ok(())
}

/// An init killed by a signal: the status is the signal number as waitpid encodes it
/// (SIGKILL 9 with and without NEW_PID_NS, SIGTERM 15), the same as waitpid's.
pub fn signal_status() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    for (what, flags, sig) in [
        ("SIGKILL", 0, libc::SIGKILL),
        ("SIGTERM", 0, libc::SIGTERM),
        ("SIGKILL, NEW_PID_NS", CONTAINER_NEW_PID_NS, libc::SIGKILL),
    ] {
        let cfd = h::create(&h::unique_name("sig"), flags)?;
        let ready = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            let never = Pipe::new()?;
            ready.send(b"r")?;
            never.wait();
            Ok(0)
        })?;
        ready.recv(1, Some(&init))?;
        let r = ok(
            &format!("container_kill(cfd, 1, {what})"),
            container_kill(cfd.as_raw_fd(), 1, sig),
        )?;
        ensure!(r == 0, "container_kill returned {r}");
        let reaped = init.wait_within(h::DEATH_LIMIT)?;
        let (status, _) = wait_ok("container_wait", &cfd, 0)?;
        ensure!(
            status == sig && reaped == sig,
            "{what}: container_wait status {status:#x}, waitpid {reaped:#x}, expected {sig:#x}"
        );
    }
    Ok(())
}

/// Any number of waits give the same answer: status and every rusage field, blocking
/// or WNOHANG.
pub fn repeated() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("again"), 0)?;
    let mut init = Proc::init(&cfd, || {
        let mut member = Proc::fork("member", || {
            h::touch_pages(64)?;
            Ok(0)
        })?;
        member.wait_exit(0)?;
        Ok(5)
    })?;
    init.wait_exit(5)?;
    let first = wait_ok("container_wait #1", &cfd, 0)?;
    ensure!(first.0 == 5 << 8, "container_wait status {:#x}", first.0);
    for (i, options) in [0, WNOHANG, 0, WNOHANG].into_iter().enumerate() {
        let again = wait_ok(&format!("container_wait #{}", i + 2), &cfd, options)?;
        ensure!(
            again == first,
            "container_wait #{}: {again:?}, the first gave {first:?}",
            i + 2
        );
    }
    Ok(())
}

/// Three processes and two threads holding the fd all block in container_wait (seen in
/// /proc/PID/task/TID/syscall) and all wake with the same status and rusage once the
/// init exits.
pub fn many_waiters() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("many"), 0)?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        gate.wait();
        Ok(9)
    })?;
    // One pipe per waiter: three writers on one pipe would interleave.
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let results = Pipe::new()?;
        let waiter = Proc::fork("waiter", || {
            let (status, ru) = wait_ok("container_wait in a waiter", &cfd, 0)?;
            let mut v = vec![i64::from(status)];
            v.extend_from_slice(&ru);
            results.send_i64s(&v)?;
            Ok(0)
        })?;
        waiters.push((waiter, results));
    }
    let nr = __NR_container_wait;
    for (w, _) in &waiters {
        h::wait_blocked_in(w.pid(), w.pid(), nr)?;
    }
    let me = std::process::id() as libc::pid_t;
    let from_threads = std::thread::scope(|s| -> Result<Vec<(c_int, [i64; 18])>> {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let tid_tx = tid_tx.clone();
                let cfd = &cfd;
                s.spawn(move || {
                    let _ = tid_tx.send(h::gettid());
                    wait_ok("container_wait in a thread", cfd, 0)
                })
            })
            .collect();
        let blocked = (0..2).try_for_each(|_| {
            let tid = tid_rx.recv().context("a waiter thread's tid")?;
            h::wait_blocked_in(me, tid, nr)
        });
        // Open even on failure, or the threads never return.
        gate.open(1)?;
        let answers = handles
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
            })
            .collect();
        blocked?;
        answers
    })?;
    init.wait_exit(9)?;

    let mut answers = from_threads;
    for (w, results) in &mut waiters {
        let v = results.recv_i64s(19, Some(w))?;
        let ru: [i64; 18] = v[1..].try_into().context("19 values")?;
        answers.push((v[0] as c_int, ru));
    }
    for (w, _) in &mut waiters {
        w.wait_exit(0)?;
    }
    let last = wait_ok("container_wait after the others", &cfd, 0)?;
    ensure!(last.0 == 9 << 8, "container_wait status {:#x}", last.0);
    for (i, a) in answers.iter().enumerate() {
        ensure!(
            *a == last,
            "waiter {i} got {a:?}, a later container_wait {last:?}"
        );
    }
    Ok(())
}

/// WNOHANG: ECHILD before the init starts (like a blocking wait), EAGAIN while it runs
/// (also while a member of it runs), 0 once dead.
pub fn wnohang() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("nohang"), 0)?;
    expect_errno(
        "container_wait(WNOHANG) before start",
        container_wait(cfd.as_raw_fd(), None, WNOHANG, None),
        Errno::CHILD,
    )?;
    let gate = Pipe::new()?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        let mut member = Proc::fork("member", || {
            ready.send(b"m")?;
            gate.wait();
            Ok(0)
        })?;
        gate.wait();
        member.wait_exit(0)?;
        Ok(0)
    })?;
    ready.recv(1, Some(&init))?;
    let mut status = -1;
    for i in 0..3 {
        expect_errno(
            &format!("container_wait(WNOHANG) #{i} while running"),
            container_wait(cfd.as_raw_fd(), Some(&mut status), WNOHANG, None),
            Errno::AGAIN,
        )?;
    }
    ensure!(
        status == -1,
        "a failed container_wait wrote status {status:#x}"
    );
    gate.open(2)?;
    init.wait_exit(0)?;
    let (status, _) = wait_ok("container_wait(WNOHANG) once dead", &cfd, WNOHANG)?;
    ensure!(status == 0, "container_wait status {status:#x}, expected 0");
    Ok(())
}

/// The rusage is summed over every member that ran: the init, a child of it, a
/// grandchild reaped by that child and a member SIGKILLed at the init's death, each
/// burning 50 ms of CPU and faulting 256 pages. Each reported its own getrusage(SELF)
/// just before exiting (or before being killed), so the container's CPU time, minor
/// and major faults and context switches must be at least their sum, maxrss at least
/// their maximum.
pub fn rusage() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("rusage"), 0)?;
    let usage = Pipe::new()?;
    let work_and_report = |tag: i64| -> Result<()> {
        h::burn_cpu(50_000)?;
        h::touch_pages(256)?;
        let mut v = vec![tag];
        v.extend(h::self_usage()?.to_i64s());
        usage.send_i64s(&v)
    };
    let mut init = Proc::init(&cfd, || {
        let mut child = Proc::fork("member", || {
            let mut grandchild = Proc::fork("member's child", || {
                work_and_report(3)?;
                Ok(0)
            })?;
            grandchild.wait_exit(0)?;
            work_and_report(2)?;
            Ok(0)
        })?;
        let reported = Pipe::new()?;
        let never = Pipe::new()?;
        let killed = Proc::fork("member killed at the init's death", || {
            work_and_report(4)?;
            reported.send(b"k")?;
            never.wait(); // never returns: we hold the write end ourselves
            Ok(0)
        })?;
        killed.leak();
        child.wait_exit(0)?;
        reported.recv(1, None)?;
        work_and_report(1)?;
        Ok(0)
    })?;
    let mut sum = Usage::default();
    let mut tags = Vec::new();
    for _ in 0..4 {
        let v = usage.recv_i64s(7, Some(&init))?;
        tags.push(v[0]);
        sum = sum.add(Usage::from_i64s(&v[1..]));
    }
    tags.sort();
    ensure!(tags == [1, 2, 3, 4], "usage reports from {tags:?}");
    init.wait_exit(0)?;

    let mut status = -1;
    let mut ru = zero_rusage();
    ok(
        "container_wait",
        container_wait(cfd.as_raw_fd(), Some(&mut status), 0, Some(&mut ru)),
    )?;
    ensure!(status == 0, "container_wait status {status:#x}");
    let got = Usage::from_rusage(&ru);
    let checks = [
        ("utime+stime (µs)", got.cpu_us, sum.cpu_us),
        ("minflt", got.minflt, sum.minflt),
        ("majflt", got.majflt, sum.majflt),
        ("nvcsw", got.nvcsw, sum.nvcsw),
        ("nivcsw", got.nivcsw, sum.nivcsw),
        ("maxrss", got.maxrss, sum.maxrss),
    ];
    let short: Vec<String> = checks
        .iter()
        .filter(|(_, got, min)| got < min)
        .map(|(what, got, min)| format!("{what} {got} < {min}"))
        .collect();
    ensure!(
        short.is_empty(),
        "container rusage below what its members measured: {}\n(container {got:?}, members {sum:?})",
        short.join(", ")
    );
    Ok(())
}

/// A blocked container_wait interrupted by a handled signal: EINTR without SA_RESTART;
/// with SA_RESTART it resumes and returns 0 with the status once the init exits.
pub fn eintr() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let cfd = h::create(&h::unique_name("eintr"), 0)?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        gate.wait();
        Ok(6)
    })?;
    let records = Pipe::new()?;
    let results = Pipe::new()?;
    let nr = __NR_container_wait;
    let waiter = |restart: bool| {
        Proc::fork("waiter", || {
            h::record_signals(records.tx.as_raw_fd(), b'W', &[libc::SIGUSR1], restart)?;
            let mut status = -1;
            let r = container_wait(cfd.as_raw_fd(), Some(&mut status), 0, None);
            results.send_i64s(&[
                r.map_or_else(|e| -i64::from(e.raw_os_error()), i64::from),
                i64::from(status),
            ])?;
            Ok(0)
        })
    };

    let mut plain = waiter(false)?;
    h::wait_blocked_in(plain.pid(), plain.pid(), nr)?;
    // SAFETY: signals our own child.
    unsafe { libc::kill(plain.pid(), libc::SIGUSR1) };
    let got = results.recv_i64s(2, Some(&plain))?;
    ensure!(
        got[0] == -i64::from(libc::EINTR),
        "container_wait interrupted without SA_RESTART: expected -EINTR, got {}",
        got[0]
    );
    plain.wait_exit(0)?;
    records.recv(14, None)?;

    let mut restarting = waiter(true)?;
    h::wait_blocked_in(restarting.pid(), restarting.pid(), nr)?;
    // SAFETY: signals our own child.
    unsafe { libc::kill(restarting.pid(), libc::SIGUSR1) };
    records.recv(14, Some(&restarting))?; // the handler ran
    h::wait_blocked_in(restarting.pid(), restarting.pid(), nr)?;
    gate.open(1)?;
    init.wait_exit(6)?;
    let got = results.recv_i64s(2, Some(&restarting))?;
    ensure!(
        got == [0, 6 << 8],
        "restarted container_wait: [return, status] {got:?}, expected [0, 0x600]"
    );
    restarting.wait_exit(0)
}

/// poll: no events (0) before the init starts and while it runs, even when asking for
/// POLLIN|POLLOUT|POLLPRI; a poller blocked in poll(2) wakes when the container dies;
/// then exactly POLLIN|POLLHUP, every time.
pub fn poll() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let cfd = h::create(&h::unique_name("poll"), 0)?;
    let events = libc::POLLIN | libc::POLLOUT | libc::POLLPRI;
    let dead = libc::POLLIN | libc::POLLHUP;
    let revents = sys::poll_one(&cfd, events, 0)?;
    ensure!(revents == 0, "poll before start: {revents:#x}, expected 0");

    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        gate.wait();
        Ok(0)
    })?;
    let revents = sys::poll_one(&cfd, events, 0)?;
    ensure!(revents == 0, "poll while running: {revents:#x}, expected 0");

    let result = Pipe::new()?;
    let mut poller = Proc::fork("poller", || {
        let mut pfd = libc::pollfd {
            fd: cfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the raw syscall so its number is known.
        let r = unsafe { libc::syscall(libc::SYS_poll, &mut pfd as *mut libc::pollfd, 1, 20_000) };
        result.send_i64s(&[r, i64::from(pfd.revents)])?;
        Ok(0)
    })?;
    h::wait_blocked_in(poller.pid(), poller.pid(), libc::SYS_poll)?;
    gate.open(1)?;
    let got = result.recv_i64s(2, Some(&poller))?;
    ensure!(
        got == [1, i64::from(dead)],
        "blocked poll(POLLIN) at the container's death: [return, revents] {got:?}, \
         expected [1, {dead:#x}] (POLLIN|POLLHUP)"
    );
    poller.wait_exit(0)?;
    init.wait_exit(0)?;
    for i in 0..2 {
        let revents = sys::poll_one(&cfd, events, 0)?;
        ensure!(
            revents == dead,
            "poll #{i} when dead: {revents:#x}, expected POLLIN|POLLHUP {dead:#x}"
        );
    }
    Ok(())
}
