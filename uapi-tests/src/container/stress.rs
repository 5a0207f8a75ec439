//! Races on the container object (uapi.md §3 "Semantics"): container_kill and
//! KILL_ON_CLOSE against an init that forks as fast as it can, waiters across the init's
//! exit, two threads starting an init on one fd, threads creating and closing containers
//! while /proc/containers is read, and the teardown of a chain of nested containers from
//! the top.
//!
//! Each test repeats its race a fixed number of times (the consts below, sized for a
//! 2-CPU TCG guest), with a fresh container per round. Every wait is bounded
//! (`h::DEATH_LIMIT` for what a death must finish, the pipes' own limit for messages),
//! every process a round started is reaped (with the exact way it ended checked) before
//! the next round, and no container of the test is left in /proc/containers.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use libc::{c_int, c_long, pid_t};

use super::calls::{self, container_kill, container_wait};
use super::helpers::{self as h, Call, Pipe, Proc};
use crate::sys::{self, errno_name, Errno};
use crate::uapi::*;

/// Rounds of `kill_vs_forker` and of `kill_on_close_vs_forker` (a new container each).
const FORKER_ROUNDS: usize = 100;
/// Forks the init has made when it tells the test it runs; the kill races the rest.
const FORKER_READY: usize = 4;
/// Forks after which the init stops and sleeps: bounds what a kill that never comes
/// leaves running (every other fork makes one sleeper).
const FORKER_CAP: usize = 400;
/// Exit status of a child of the forking init whose own fork failed.
const FORK_FAILED: c_int = 3;

/// Rounds of `waiters_across_init_exit`, and its waiters per round.
const WAIT_ROUNDS: usize = 150;
const WAITER_PROCS: usize = 2;
const WAITER_THREADS: usize = 2;

/// Rounds of `racing_inits`, and the exit status of the init that won.
const RACE_ROUNDS: usize = 300;
const RACE_EXIT: c_int = 7;

/// Threads of `create_close_threads`, and the containers each creates and closes.
const CREATE_CLOSE_THREADS: usize = 4;
const CREATE_CLOSE_EACH: usize = 2000;

/// Levels (containers, one init each) of `nested_teardown_from_top`, and its rounds.
const NEST_DEPTH: usize = 8;
const NEST_ROUNDS: usize = 10;

const WNOHANG: u32 = libc::WNOHANG as u32;

// ---------------------------------------------------------------------------------------
// Shared steps

/// container_kill that must return 0; should it fail, what the init reported comes first
/// (an init that failed on its own is the better explanation).
fn expect_kill(what: &str, cfd: &OwnedFd, initonly: c_int, init: &Proc) -> Result<()> {
    match container_kill(cfd.as_raw_fd(), initonly, libc::SIGKILL) {
        Ok(0) => Ok(()),
        Ok(r) => bail!("{what}: returned {r}, expected 0"),
        Err(e) => {
            init.check()?;
            bail!("{what}: {}", errno_name(e))
        }
    }
}

/// Polls container_wait(WNOHANG) until the container is dead (EAGAIN while it lives),
/// for at most `limit`: the init's wait status it reports.
fn dead_within(cfd: &OwnedFd, limit: Duration) -> Result<c_int> {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = -1;
        match container_wait(cfd.as_raw_fd(), Some(&mut status), WNOHANG, None) {
            Ok(0) => return Ok(status),
            Ok(r) => bail!("container_wait(WNOHANG): returned {r}, expected 0"),
            Err(Errno::AGAIN) => {}
            Err(e) => bail!(
                "container_wait(WNOHANG): expected 0 or EAGAIN, got {}",
                errno_name(e)
            ),
        }
        ensure!(
            Instant::now() < deadline,
            "container_wait(WNOHANG) still EAGAIN {} s later: the container is not dead",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reaps every child until there is none (ECHILD), for at most `limit`: each one's pid
/// and wait status. We are the subreaper, so every orphaned descendant comes back to us
/// (no test here uses a pid namespace, whose init would reap them): once this returns
/// nothing the round started remains. Call it only once every `Proc` has been waited for.
fn reap_all(limit: Duration) -> Result<Vec<(pid_t, c_int)>> {
    let deadline = Instant::now() + limit;
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r > 0 {
            reaped.push((r, status));
            continue;
        }
        if r < 0 {
            match sys::last_errno() {
                Errno::CHILD => return Ok(reaped),
                Errno::INTR => continue,
                e => bail!("waitpid(-1, WNOHANG): {}", errno_name(e)),
            }
        }
        ensure!(
            Instant::now() < deadline,
            "processes still running {} s after their container died ({} reaped)",
            limit.as_secs(),
            reaped.len()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn expect_listed(name: &CStr, when: &str) -> Result<()> {
    let rows = h::proc_rows()?;
    ensure!(
        h::listed(&rows, name),
        "{name:?} not listed in {} {when}:\n{}",
        h::PROC_CONTAINERS,
        h::render_all(&rows)
    );
    Ok(())
}

/// A syscall's result as one number: the return value, or minus the errno.
fn ret_code(r: Result<c_long, Errno>) -> i64 {
    r.map_or_else(|e| -i64::from(e.raw_os_error()), i64::from)
}

/// Joins a scoped thread that may have failed to start or may have panicked.
fn joined<T>(spawned: std::io::Result<ScopedJoinHandle<'_, Result<T>>>, what: &str) -> Result<T> {
    spawned
        .with_context(|| format!("spawn {what}"))?
        .join()
        .map_err(|_| anyhow!("{what} panicked"))?
}

fn sleep_until_killed() -> ! {
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

// ---------------------------------------------------------------------------------------
// Kill against a forking init

/// The init of the forker tests: forks as fast as it can and reaps the children that
/// left; an even child forks a sleeper (which only a kill ends) and exits, an odd one
/// exits at once. Says so on `ready` after FORKER_READY forks; after FORKER_CAP forks it
/// stops and sleeps.
fn forker(ready: &Pipe) -> Result<i32> {
    for i in 0..FORKER_CAP {
        // SAFETY: the init is single-threaded; the child only forks, pauses and _exits.
        match unsafe { libc::fork() } {
            -1 => bail!("fork #{i} in the init: {}", errno_name(sys::last_errno())),
            0 => child_of_forker(i % 2 == 0),
            _ => {}
        }
        // SAFETY: reaps the children that already left; no status wanted.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if i + 1 == FORKER_READY {
            ready.send(b"r")?;
        }
    }
    sleep_until_killed()
}

fn child_of_forker(fork_sleeper: bool) -> ! {
    if fork_sleeper {
        // SAFETY: a single-threaded process forks; the child only pauses.
        match unsafe { libc::fork() } {
            0 => sleep_until_killed(),
            // SAFETY: leaves at once.
            -1 => unsafe { libc::_exit(FORK_FAILED) },
            _ => {}
        }
    }
    // SAFETY: leaves at once, without running the test's exit handlers.
    unsafe { libc::_exit(0) }
}

/// One round of the forker tests: a container whose init runs `forker`, ended by
/// container_kill(cfd, initonly, SIGKILL) or, with `on_close`, by closing its only fd.
fn forker_round(name: &CStr, round: usize, on_close: bool) -> Result<()> {
    let flags = if on_close { CONTAINER_KILL_ON_CLOSE } else { 0 };
    let cfd = h::create(name, flags)?;
    let raw = cfd.as_raw_fd();
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        if on_close {
            // SAFETY: F_GETFD only looks the number up; the init opened nothing since
            // the fork, so only a copy of the container fd could be there.
            let held = unsafe { libc::fcntl(raw, libc::F_GETFD) } != -1;
            ensure!(
                !held,
                "the init has fd {raw}, a copy of its own container's fd (so closing \
                 the supervisor's could never be the last close)"
            );
        }
        forker(&ready)
    })?;
    ready.recv(1, Some(&init))?;
    if round == 0 {
        expect_listed(name, "while its init forks")?;
    }

    if on_close {
        drop(cfd);
        let status = init.wait_within(h::DEATH_LIMIT)?;
        h::expect_sigkilled(
            status,
            "the forking init, after its KILL_ON_CLOSE fd was closed",
        )?;
    } else {
        // Odd rounds signal the init alone: its death's sweep must catch the children.
        let initonly = (round % 2) as c_int;
        let what = format!("container_kill(cfd, {initonly}, SIGKILL)");
        expect_kill(&what, &cfd, initonly, &init)?;
        let status = dead_within(&cfd, h::DEATH_LIMIT).with_context(|| format!("after {what}"))?;
        let reaped = init.wait_within(h::DEATH_LIMIT)?;
        h::expect_sigkilled(reaped, &format!("the forking init, after {what}"))?;
        ensure!(
            status == reaped,
            "after {what}: container_wait status {status:#x}, waitpid of the init {reaped:#x}"
        );
        drop(cfd);
    }

    let mut killed = 0;
    for (pid, status) in reap_all(h::DEATH_LIMIT)? {
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
            killed += 1;
            continue;
        }
        ensure!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "descendant {pid} of the init: {}, expected exit status 0 (it left by \
             itself) or SIGKILL{}",
            sys::describe_status(status),
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == FORK_FAILED {
                " (a child of the init could not fork)"
            } else {
                ""
            }
        );
    }
    // The first child was forked before the init said it runs: either it or the sleeper
    // it forked was still there to be killed.
    ensure!(
        killed > 0,
        "no descendant of the init was SIGKILLed (its first child or that child's \
         sleeper should have been)"
    );
    h::expect_unlisted(name, "after its processes were reaped and its fd closed")
}

/// An init forks as fast as it can (children fork a sleeper or exit at once) when the
/// test sends container_kill(cfd, 0, SIGKILL) (in odd rounds container_kill(cfd, 1,
/// SIGKILL), so the init's death kills the rest). Each round: the call returns 0, the
/// container is dead within DEATH_LIMIT with status SIGKILL, the same that waitpid
/// reports for the init; every other process of the round comes back to us (the
/// subreaper) and is reaped within DEATH_LIMIT, each having exited 0 or been SIGKILLed,
/// at least one SIGKILLed; then the container is no longer listed.
pub fn kill_vs_forker() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    h::become_subreaper()?;
    let name = h::unique_name("stkill");
    for round in 0..FORKER_ROUNDS {
        forker_round(&name, round, false)
            .with_context(|| format!("round {round} of {FORKER_ROUNDS}"))?;
    }
    h::expect_unlisted(&name, "after every round")
}

/// The same forking init in a CONTAINER_KILL_ON_CLOSE container, ended by closing the
/// supervisor's fd, the only one (the init checks it has no copy). Each round: the init
/// is SIGKILLed within DEATH_LIMIT; every other process is reaped as in
/// `kill_vs_forker`; then the container is no longer listed.
pub fn kill_on_close_vs_forker() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    h::become_subreaper()?;
    let name = h::unique_name("stkoc");
    for round in 0..FORKER_ROUNDS {
        forker_round(&name, round, true)
            .with_context(|| format!("round {round} of {FORKER_ROUNDS}"))?;
    }
    h::expect_unlisted(&name, "after every round")
}

// ---------------------------------------------------------------------------------------
// Waiters across the init's exit

fn waiters_round(name: &CStr, round: usize) -> Result<()> {
    // Never 0, and different from the rounds just before, so a stale answer shows.
    let code = (round % 250 + 1) as c_int;
    let want = [0, i64::from(code << 8)];
    let cfd = h::create(name, 0)?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        gate.wait();
        Ok(code)
    })?;
    if round == 0 {
        expect_listed(name, "while its init runs")?;
    }
    let mut waiters = Vec::new();
    for _ in 0..WAITER_PROCS {
        let results = Pipe::new()?;
        let waiter = Proc::fork("waiter", || {
            let mut status = -1;
            let r = container_wait(cfd.as_raw_fd(), Some(&mut status), 0, None);
            results.send_i64s(&[ret_code(r), i64::from(status)])?;
            Ok(0)
        })?;
        waiters.push((waiter, results));
    }
    // Detached threads (each with its own dup of the fd), so a container_wait that never
    // returns fails the test after DEATH_LIMIT instead of hanging a join. No fork happens
    // while they run: each is joined once it has answered.
    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for _ in 0..WAITER_THREADS {
        let fd = cfd.try_clone().context("dup the container fd")?;
        let (tid_tx, res_tx) = (tid_tx.clone(), res_tx.clone());
        let thread = std::thread::Builder::new()
            .spawn(move || {
                let _ = tid_tx.send(h::gettid());
                let mut status = -1;
                let r = container_wait(fd.as_raw_fd(), Some(&mut status), 0, None);
                let _ = res_tx.send([ret_code(r), i64::from(status)]);
            })
            .context("spawn a waiter thread")?;
        threads.push(thread);
    }
    drop((tid_tx, res_tx));

    // Even rounds: everyone is asleep in container_wait when the init exits. Odd
    // rounds: the exit races the waiters' entry.
    if round.is_multiple_of(2) {
        let nr = __NR_container_wait;
        for (w, _) in &waiters {
            h::wait_blocked_in(w.pid(), w.pid(), nr)?;
        }
        let me = std::process::id() as pid_t;
        for _ in 0..WAITER_THREADS {
            let tid = tid_rx
                .recv_timeout(h::DEATH_LIMIT)
                .context("a waiter thread's tid")?;
            h::wait_blocked_in(me, tid, nr)?;
        }
    }
    gate.open(1)?;
    let status = dead_within(&cfd, h::DEATH_LIMIT)?;
    ensure!(
        i64::from(status) == want[1],
        "container_wait status {status:#x}, expected {:#x} (the init's exit({code}))",
        want[1]
    );
    for i in 0..WAITER_THREADS {
        let got = res_rx.recv_timeout(h::DEATH_LIMIT).map_err(|e| {
            anyhow!(
                "waiter thread {i}: no answer {} s after the container died ({e})",
                h::DEATH_LIMIT.as_secs()
            )
        })?;
        ensure!(
            got == want,
            "container_wait in waiter thread {i}: [return, status] {got:?}, expected \
             [0, {:#x}]",
            want[1]
        );
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow!("a waiter thread panicked"))?;
    }
    for (i, (w, results)) in waiters.iter_mut().enumerate() {
        let got = results.recv_i64s(2, Some(w))?;
        ensure!(
            got == want,
            "container_wait in waiter process {i}: [return, status] {got:?}, expected \
             [0, {:#x}]",
            want[1]
        );
        w.wait_exit(0)?;
    }
    init.wait_exit(code)?;
    drop(cfd);
    h::expect_unlisted(name, "after its init and waiters ended and its fd closed")
}

/// Two forked waiters and two threads block in container_wait (even rounds: all seen
/// asleep in it first; odd rounds: racing their entry) while the init exits with a
/// status of its round (1..=250). Each round: our WNOHANG poll finds the container dead
/// within DEATH_LIMIT with that status, every waiter returns 0 with exactly it, the
/// waiters exit 0, waitpid reports the same exit for the init, and once the fd is closed
/// the container is no longer listed.
pub fn waiters_across_init_exit() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let name = h::unique_name("stwait");
    for round in 0..WAIT_ROUNDS {
        waiters_round(&name, round).with_context(|| format!("round {round} of {WAIT_ROUNDS}"))?;
    }
    h::expect_unlisted(&name, "after every round")
}

// ---------------------------------------------------------------------------------------
// Two threads starting one init

/// One racer: waits (spinning, at most a second) until the other racer is there too,
/// then calls fork_into_container. Its child is a fork of a multi-threaded process, so
/// it makes one async-signal-safe call: `_exit`.
fn race_to_init(fd: RawFd, arrived: &AtomicUsize) -> Result<pid_t, Errno> {
    arrived.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(1);
    while arrived.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::hint::spin_loop();
    }
    // SAFETY: the child only calls _exit (see above).
    match unsafe { calls::fork_into_container(fd) } {
        // SAFETY: leaves at once, touching nothing another thread may have held.
        Ok(0) => unsafe { libc::_exit(RACE_EXIT) },
        r => r,
    }
}

fn race_round(name: &CStr, round: usize) -> Result<()> {
    let cfd = h::create(name, 0)?;
    if round == 0 {
        expect_listed(name, "before its init starts")?;
    }
    let fd = cfd.as_raw_fd();
    let arrived = AtomicUsize::new(0);
    let outcome: Vec<Result<Result<pid_t, Errno>>> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..2)
            .map(|_| std::thread::Builder::new().spawn_scoped(s, || Ok(race_to_init(fd, &arrived))))
            .collect();
        racers
            .into_iter()
            .map(|racer| joined(racer, "a racing thread"))
            .collect()
    });
    // Reap whatever started before judging, so no round leaves a process behind.
    let mut started = Vec::new();
    for r in &outcome {
        if let Ok(Ok(pid)) = r {
            started.push((*pid, h::waitpid_within(*pid, h::DEATH_LIMIT)?));
        }
    }
    let outcome = outcome.into_iter().collect::<Result<Vec<_>>>()?;
    let busy = outcome.iter().filter(|r| **r == Err(Errno::BUSY)).count();
    let shown: Vec<String> = outcome
        .iter()
        .map(|r| match r {
            Ok(pid) => format!("pid {pid}"),
            Err(e) => errno_name(*e),
        })
        .collect();
    ensure!(
        started.len() == 1 && busy == 1,
        "two threads' fork_into_container on one fresh fd: {shown:?}, expected one pid \
         and one EBUSY"
    );
    let (pid, status) = started[0];
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == RACE_EXIT,
        "the init (pid {pid}): {}, expected exit status {RACE_EXIT}",
        sys::describe_status(status)
    );
    let wstatus = dead_within(&cfd, h::DEATH_LIMIT)?;
    ensure!(
        wstatus == RACE_EXIT << 8,
        "container_wait status {wstatus:#x}, expected {:#x} (the init's exit({RACE_EXIT}))",
        RACE_EXIT << 8
    );
    drop(cfd);
    h::expect_unlisted(name, "after its init exited and its fd closed")
}

/// Two threads call fork_into_container on the same fresh fd at once (released together
/// by a spin barrier). Each round: exactly one gets a pid and the other EBUSY; the child
/// (which only `_exit(7)`s) is reaped within DEATH_LIMIT with exit status 7, the
/// container's wait status is 0x700, and once the fd is closed it is no longer listed.
pub fn racing_inits() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Wait])?;
    let name = h::unique_name("strace");
    for round in 0..RACE_ROUNDS {
        race_round(&name, round).with_context(|| format!("round {round} of {RACE_ROUNDS}"))?;
    }
    h::expect_unlisted(&name, "after every round")
}

// ---------------------------------------------------------------------------------------
// Creating and closing from threads

/// One thread's loop: create and close containers, cycling through flags that change
/// what the free releases (nothing extra, KILL_ON_CLOSE, CLOEXEC, a UTS namespace).
fn create_close_loop(name: &CStr, thread: usize) -> Result<()> {
    const FLAGS: [u32; 4] = [
        0,
        CONTAINER_KILL_ON_CLOSE,
        CONTAINER_FD_CLOEXEC,
        CONTAINER_NEW_UTS_NS,
    ];
    for i in 0..CREATE_CLOSE_EACH {
        let flags = FLAGS[(i + thread) % FLAGS.len()];
        let cfd =
            h::create(name, flags).with_context(|| format!("thread {thread}, container {i}"))?;
        drop(cfd);
    }
    Ok(())
}

/// Reads /proc/containers until `done`: every read must parse (exact header and row
/// format), and our rows, containers with one fd and no init, show at most one
/// reference and no flag but KILL_ON_CLOSE. The number of reads.
fn read_while(name: &CStr, done: &AtomicBool) -> Result<usize> {
    let mine = name.to_string_lossy();
    let mut reads = 0;
    while !done.load(Ordering::SeqCst) {
        let rows = h::proc_rows().with_context(|| format!("read #{reads}"))?;
        for row in rows.iter().filter(|r| r.name == mine) {
            ensure!(
                row.refs <= 1 && row.flags & !h::FL_KILL_ON_CLOSE == 0,
                "read #{reads}: {:?}: a container with one fd and no init, expected USE \
                 at most 1 and FL 00 or 04",
                row.render()
            );
        }
        reads += 1;
    }
    Ok(reads)
}

/// Four threads each create and close containers (one name) in a loop, cycling through
/// flags, while a fifth reads /proc/containers. Every create succeeds, every read
/// parses with our rows showing USE <= 1 and FL 00/04, and at the end none is listed.
pub fn create_close_threads() -> Result<()> {
    h::require(&[Call::Create])?;
    let name = h::unique_name("stcc");
    let probe = h::create(&name, 0)?;
    expect_listed(&name, "while its fd is open")?;
    drop(probe);
    h::expect_unlisted(&name, "after its only fd was closed")?;

    let done = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..CREATE_CLOSE_THREADS)
            .map(|t| {
                let name = &name;
                std::thread::Builder::new().spawn_scoped(s, move || create_close_loop(name, t))
            })
            .collect();
        let reader = std::thread::Builder::new().spawn_scoped(s, || read_while(&name, &done));
        // Join every worker before stopping the reader, and report the first failure.
        let worked: Vec<Result<()>> = workers
            .into_iter()
            .map(|w| joined(w, "a create/close thread"))
            .collect();
        done.store(true, Ordering::SeqCst);
        let read = joined(reader, "the /proc/containers reader");
        worked.into_iter().collect::<Result<Vec<()>>>()?;
        read.context("reading /proc/containers during the creates")?;
        Ok(())
    })?;
    h::expect_unlisted(
        &name,
        &format!(
            "after {CREATE_CLOSE_THREADS} threads created and closed {CREATE_CLOSE_EACH} \
             containers each"
        ),
    )
}

// ---------------------------------------------------------------------------------------
// A chain of nested containers, torn down from the top

/// Runs as the init of level `level` of the chain (1 is the top): makes the container of
/// the next level and starts its init, then sends its own pid and those of the levels
/// below (top first) up `up`, and sleeps until killed, holding the next level's fd. An
/// error below comes up the chain through each level's `Proc`.
fn chain_level(level: usize, name: &CStr, up: &Pipe) -> Result<i32> {
    let me = i64::from(std::process::id());
    let _next = if level < NEST_DEPTH {
        let cfd = h::create(name, 0).with_context(|| format!("level {level}"))?;
        let below = Pipe::new()?;
        let next = Proc::init(&cfd, || chain_level(level + 1, name, &below))
            .with_context(|| format!("level {level}"))?;
        let pids = below
            .recv_i64s(NEST_DEPTH - level, Some(&next))
            .with_context(|| format!("level {level}: the pids of the levels below"))?;
        ensure!(
            pids[0] == i64::from(next.pid()),
            "level {level}: level {} says it is pid {}, fork_into_container said {}",
            level + 1,
            pids[0],
            next.pid()
        );
        // Lives on until the kill; dropping it would kill it.
        next.leak();
        up.send_i64s(&[&[me], &pids[..]].concat())?;
        Some(cfd)
    } else {
        up.send_i64(me)?;
        None
    };
    sleep_until_killed()
}

fn nest_round(name: &CStr, round: usize) -> Result<()> {
    // Odd rounds kill the top init alone: its death must reach the levels below.
    let initonly = (round % 2) as c_int;
    let what = format!("container_kill(top, {initonly}, SIGKILL)");
    let top = h::create(name, 0)?;
    let up = Pipe::new()?;
    let mut init = Proc::init(&top, || chain_level(1, name, &up))?;
    let pids: Vec<pid_t> = up
        .recv_i64s(NEST_DEPTH, Some(&init))?
        .into_iter()
        .map(|p| p as pid_t)
        .collect();
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    ensure!(
        pids[0] == init.pid() && distinct.len() == NEST_DEPTH,
        "the chain's pids {pids:?}: expected {NEST_DEPTH} distinct, the top init {} first",
        init.pid()
    );
    if round == 0 {
        expect_listed(name, "while its chain runs")?;
    }

    expect_kill(&what, &top, initonly, &init)?;
    let status = dead_within(&top, h::DEATH_LIMIT).with_context(|| format!("after {what}"))?;
    ensure!(
        status == libc::SIGKILL,
        "after {what}: container_wait status {status:#x}, expected {:#x} (SIGKILL)",
        libc::SIGKILL
    );
    let reaped = init.wait_within(h::DEATH_LIMIT)?;
    h::expect_sigkilled(reaped, &format!("level 1 (pid {}) after {what}", pids[0]))?;
    let mut rest = reap_all(h::DEATH_LIMIT).with_context(|| format!("after {what}"))?;
    rest.sort_unstable();
    let got: Vec<pid_t> = rest.iter().map(|&(pid, _)| pid).collect();
    let mut below = pids[1..].to_vec();
    below.sort_unstable();
    ensure!(
        got == below,
        "after {what}: reaped {got:?}, expected exactly levels 2..={NEST_DEPTH} {below:?}"
    );
    for (pid, status) in rest {
        let level = pids.iter().position(|&p| p == pid).unwrap_or_default() + 1;
        h::expect_sigkilled(status, &format!("level {level} (pid {pid}) after {what}"))?;
    }
    drop(top);
    h::expect_unlisted(name, "after its chain was reaped and its fd closed")
}

/// A chain of NEST_DEPTH nested containers, each level's init creating the next one and
/// starting its init, all reporting ready up a pipe; then container_kill(top, 0,
/// SIGKILL) (odd rounds: container_kill(top, 1, SIGKILL), the top init's death doing the
/// rest). Each round: the call returns 0; the top container is dead within DEATH_LIMIT
/// with status SIGKILL; the top init and then exactly the other NEST_DEPTH - 1 inits
/// (come back to us, the subreaper) are reaped within DEATH_LIMIT, each SIGKILLed; once
/// the fd is closed the top container is no longer listed.
pub fn nested_teardown_from_top() -> Result<()> {
    h::require(&[Call::Create, Call::Fork, Call::Kill, Call::Wait])?;
    h::become_subreaper()?;
    let name = h::unique_name("stnest");
    for round in 0..NEST_ROUNDS {
        nest_round(&name, round).with_context(|| format!("round {round} of {NEST_ROUNDS}"))?;
    }
    h::expect_unlisted(&name, "after every round")
}

// ---------------------------------------------------------------------------------------
// Registration
//
// (A plain comment: a doc comment must precede an item.) The lines for TESTS in main.rs,
// after the other container tests; then delete the line `#![expect(dead_code, ...)]` at
// the top of this file, which fails the build (an unfulfilled expectation) once they
// are used:
//
//     Test::new(
//         "container_stress_kill_vs_forker",
//         container::stress::kill_vs_forker,
//     )
//     .timeout(60),
//     Test::new(
//         "container_stress_kill_on_close_vs_forker",
//         container::stress::kill_on_close_vs_forker,
//     )
//     .timeout(60),
//     Test::new(
//         "container_stress_waiters_across_init_exit",
//         container::stress::waiters_across_init_exit,
//     )
//     .timeout(60),
//     Test::new(
//         "container_stress_racing_inits",
//         container::stress::racing_inits,
//     )
//     .timeout(60),
//     Test::new(
//         "container_stress_create_close_threads",
//         container::stress::create_close_threads,
//     )
//     .timeout(60),
//     Test::new(
//         "container_stress_nested_teardown_from_top",
//         container::stress::nested_teardown_from_top,
//     )
//     .timeout(60),

/// `kc keyd` under a flood: a container's 40 members each ask for a dns_resolver key
/// nobody has, through a keyd allowed one helper and a backlog of two; every request
/// ends (ENOKEY from the helper, or EAGAIN for want of room), none hangs, and the same
/// keyd still answers the container's next request right. Meanwhile another
/// container's request, through its own keyd, is answered within 5 s with its own data.
pub fn keyd_flood() -> Result<()> {
    use super::upcall::{self, Keyd, NAME};
    upcall::require_intercept()?;
    const FLOODERS: usize = 40;
    /// A flooding member's exit status when keyd had no room for its request.
    const REJECTED: i32 = 3;
    let flood = upcall::resolver_container("flood", "198.51.100.10")?;
    let calm = upcall::resolver_container("calm", "203.0.113.20")?;
    let (go_flood, go_calm) = (Pipe::new()?, Pipe::new()?);
    let mut flood_init = Proc::init(&flood, || {
        crate::mainline::join_new_session_keyring()?;
        go_flood.wait();
        let mut members = Vec::new();
        for i in 0..FLOODERS {
            members.push(Proc::fork("a flooding member", move || {
                let name = std::ffi::CString::new(format!("flood-{i}.example"))?;
                match upcall::resolve(&name) {
                    Err(Errno::NOKEY) => Ok(0),
                    Err(Errno::AGAIN) => Ok(REJECTED),
                    other => bail!("request_key(dns_resolver, {name:?}) under a flood: {other:?}, not ENOKEY or EAGAIN"),
                }
            })?);
        }
        let mut rejected = 0;
        for mut m in members {
            let status = m.wait_within(Duration::from_secs(60))?;
            match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
                (true, 0) => {}
                (true, REJECTED) => rejected += 1,
                _ => bail!(
                    "a flooding member ended with {}",
                    sys::describe_status(status)
                ),
            }
        }
        // One helper and a backlog of two cannot take 40 requests at once.
        ensure!(
            rejected > 0 && rejected < FLOODERS,
            "{rejected} of {FLOODERS} requests were rejected with EAGAIN: keyd's bounds did not act"
        );
        let got = upcall::resolve(NAME)
            .map_err(|e| anyhow!("request_key(dns_resolver, {NAME:?}) after the flood: {e}"))?;
        ensure!(
            got == "198.51.100.10",
            "after the flood {NAME:?} resolved to {got:?}"
        );
        Ok(0)
    })?;
    let mut calm_init = Proc::init(&calm, || {
        crate::mainline::join_new_session_keyring()?;
        go_calm.wait();
        let start = Instant::now();
        let got = upcall::resolve(NAME)
            .map_err(|e| anyhow!("request_key(dns_resolver, {NAME:?}) beside the flood: {e}"))?;
        let took = start.elapsed();
        ensure!(
            got == "203.0.113.20",
            "beside the flood {NAME:?} resolved to {got:?}"
        );
        ensure!(
            took < Duration::from_secs(5),
            "beside the flood the request took {took:?}"
        );
        Ok(0)
    })?;
    let flood_keyd = Keyd::start(
        &flood,
        flood_init.pid(),
        &[
            "--type",
            "dns_resolver",
            "--max-helpers",
            "1",
            "--backlog",
            "2",
        ],
    )?;
    let calm_keyd = Keyd::start(&calm, calm_init.pid(), &["--type", "dns_resolver"])?;
    go_flood.open(1)?;
    std::thread::sleep(Duration::from_millis(300));
    go_calm.open(1)?;
    calm_init.wait_exit(0)?;
    flood_init.wait_exit(0)?;
    drop((flood, calm));
    calm_keyd.wait()?;
    flood_keyd.wait()
}
