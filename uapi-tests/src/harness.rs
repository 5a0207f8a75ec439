//! kselftest-style runner: every test in its own forked child and process group, with a
//! timeout; the child sends its result up a pipe; the parent prints KTAP.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::sys::{self, Skip};

/// One entry of the test table.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> Result<()>,
    /// Overrides the default timeout for a test that needs longer.
    pub timeout: Option<Duration>,
}

impl Test {
    pub const fn new(name: &'static str, run: fn() -> Result<()>) -> Self {
        Self {
            name,
            run,
            timeout: None,
        }
    }

    pub const fn timeout(self, secs: u64) -> Self {
        Self {
            timeout: Some(Duration::from_secs(secs)),
            ..self
        }
    }
}

/// A program that prints its own KTAP (a kselftest), run as one test: its output
/// (stdout and stderr merged, as kselftest's runner.sh merges them) is nested under
/// the test's result line, indented by four spaces, and its exit status decides the
/// result: 0 pass, 4 skip (KSFT_PASS and KSFT_SKIP of kselftest.h), anything else
/// fail.
pub struct Program {
    pub name: String,
    pub path: PathBuf,
    pub timeout: Duration,
}

/// What `run_all` runs: a test of the table, or a program.
pub enum Entry<'a> {
    Rust(&'a Test),
    Program(&'a Program),
}

impl Entry<'_> {
    pub fn name(&self) -> &str {
        match self {
            Entry::Rust(t) => t.name,
            Entry::Program(p) => &p.name,
        }
    }
}

/// How a test ended, as the parent saw it.
pub enum Outcome {
    Pass,
    Skip(String),
    /// Diagnostic lines explaining the failure.
    Fail(Vec<String>),
}

/// Prints one KTAP line and flushes, so output survives a crash or a guest reset.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints a diagnostic; every line of `text` becomes a `# ` line.
pub fn diag(text: &str) {
    for line in text.lines() {
        emit(format!("# {line}").trim_end());
    }
}

/// Runs `tests` and prints the KTAP document; returns true when none failed.
pub fn run_all(tests: &[Entry<'_>], default_timeout: Duration, preamble: &[String]) -> bool {
    // Orphaned grandchildren come back to us, so they can be reaped between tests.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    emit("KTAP version 1");
    emit(&format!("1..{}", tests.len()));
    for line in preamble {
        diag(line);
    }
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    for (i, test) in tests.iter().enumerate() {
        let n = i + 1;
        let outcome = match test {
            Entry::Rust(t) => run_one(t, t.timeout.unwrap_or(default_timeout)),
            Entry::Program(p) => run_program(p),
        };
        let name = test.name();
        match outcome {
            Outcome::Pass => {
                pass += 1;
                emit(&format!("ok {n} {name}"));
            }
            Outcome::Skip(reason) => {
                skip += 1;
                emit(&format!("ok {n} {name} # SKIP {}", one_line(&reason)));
            }
            Outcome::Fail(lines) => {
                fail += 1;
                for line in &lines {
                    diag(line);
                }
                emit(&format!("not ok {n} {name}"));
            }
        }
    }
    diag(&format!("Totals: pass:{pass} fail:{fail} skip:{skip}"));
    fail == 0
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Result record sent from the test child: a tag byte and the text.
const PASS: u8 = b'P';
const SKIP: u8 = b'S';
const FAIL: u8 = b'F';

fn run_one(test: &Test, timeout: Duration) -> Outcome {
    match spawn_and_wait(test, timeout) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Fail(vec![format!("harness: {e:#}")]),
    }
}

fn spawn_and_wait(test: &Test, timeout: Duration) -> Result<Outcome> {
    let (rx, tx) = sys::pipe()?;
    let _ = std::io::stdout().flush();
    let child = sys::fork_child(|| {
        // SAFETY: setpgid on ourselves; the parent kills the whole group afterwards.
        unsafe { libc::setpgid(0, 0) };
        report(&tx, test.run);
        0
    })?;
    // Both sides set the group, so it is in place whichever runs first.
    // SAFETY: plain syscall on our own child.
    unsafe { libc::setpgid(child.pid, child.pid) };
    drop(tx);
    let mut child = child;

    let status = wait_with_timeout(&child, timeout, || {})?;
    let message = drain(&rx);
    let status = match end_group(&mut child, status, timeout)? {
        Ok(status) => status,
        Err(timed_out) => return Ok(timed_out),
    };

    let text = String::from_utf8_lossy(message.get(1..).unwrap_or_default()).into_owned();
    if libc::WIFSIGNALED(status) {
        let mut lines = vec![format!(
            "test process killed by signal {}",
            sys::signal_name(libc::WTERMSIG(status))
        )];
        lines.extend(text.lines().map(str::to_string));
        return Ok(Outcome::Fail(lines));
    }
    Ok(match message.first() {
        Some(&PASS) => Outcome::Pass,
        Some(&SKIP) => Outcome::Skip(text),
        Some(&FAIL) => Outcome::Fail(text.lines().map(str::to_string).collect()),
        _ => Outcome::Fail(vec![format!(
            "test process ended with {} without reporting a result",
            sys::describe_status(status)
        )]),
    })
}

/// Exit status of a kselftest that skipped (tools/testing/selftests/kselftest.h).
const KSFT_SKIP: i32 = 4;

fn run_program(program: &Program) -> Outcome {
    match spawn_program(program) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Fail(vec![format!("harness: {e:#}")]),
    }
}

/// Runs `program` in its own process group from its own directory, printing its
/// output nested as it comes; kills the group on timeout and afterwards.
fn spawn_program(program: &Program) -> Result<Outcome> {
    use anyhow::Context;
    let path = CString::new(program.path.as_os_str().as_bytes())
        .with_context(|| format!("{}: NUL in the path", program.path.display()))?;
    let dir = CString::new(
        program
            .path
            .parent()
            .unwrap_or(std::path::Path::new("/"))
            .as_os_str()
            .as_bytes(),
    )
    .context("NUL in the directory")?;
    let (rx, tx) = sys::pipe()?;
    let _ = std::io::stdout().flush();
    let mut child = sys::fork_child(|| {
        let argv = [path.as_ptr(), std::ptr::null()];
        // SAFETY: plain syscalls on our own process and fds; argv is NULL-terminated
        // and its strings outlive execv, which only returns on failure.
        unsafe {
            libc::setpgid(0, 0);
            libc::dup2(tx.as_raw_fd(), 1);
            libc::dup2(tx.as_raw_fd(), 2);
            libc::chdir(dir.as_ptr());
            libc::execv(path.as_ptr(), argv.as_ptr());
        }
        let _ = writeln!(
            std::io::stderr(),
            "execv: {}",
            sys::errno_name(sys::last_errno())
        );
        127
    })?;
    // SAFETY: plain syscall on our own child.
    unsafe { libc::setpgid(child.pid, child.pid) };
    drop(tx);
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(rx.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };

    // Its output is nested as it comes, so that the pipe never fills; a last line
    // without a newline is printed at the end.
    let mut pending = Vec::new();
    let mut nest = |bytes: &[u8]| {
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            emit(format!("    {}", String::from_utf8_lossy(&line)).trim_end());
        }
    };
    let status = wait_with_timeout(&child, program.timeout, || nest(&drain(&rx)))?;
    nest(&drain(&rx));
    if !pending.is_empty() {
        emit(format!("    {}", String::from_utf8_lossy(&pending)).trim_end());
    }
    let status = match end_group(&mut child, status, program.timeout)? {
        Ok(status) => status,
        Err(timed_out) => return Ok(timed_out),
    };
    Ok(
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Outcome::Pass
        } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == KSFT_SKIP {
            Outcome::Skip(format!("{} skipped", program.name))
        } else {
            Outcome::Fail(vec![format!(
                "{} ended with {}",
                program.path.display(),
                sys::describe_status(status)
            )])
        },
    )
}

/// In the test child: run the test and write one result record.
fn report(tx: &OwnedFd, run: fn() -> Result<()>) {
    let record = match std::panic::catch_unwind(run) {
        Ok(Ok(())) => vec![PASS],
        Ok(Err(e)) => match e.chain().find_map(|c| c.downcast_ref::<Skip>()) {
            Some(skip) => [&[SKIP], skip.0.as_bytes()].concat(),
            None => [&[FAIL], format!("{e:#}").as_bytes()].concat(),
        },
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            [&[FAIL], format!("panicked: {msg}").as_bytes()].concat()
        }
    };
    // Keep it well below the pipe buffer, so the write never blocks.
    let _ = sys::write_all(tx, &record[..record.len().min(16 * 1024)]);
}

/// After the wait: kills whatever the test left behind in its process group and reaps
/// it all (we are the subreaper). The child's status, or the failure of a test that
/// timed out (`status` None).
fn end_group(
    child: &mut sys::Child,
    status: Option<libc::c_int>,
    timeout: Duration,
) -> Result<Result<libc::c_int, Outcome>> {
    // SAFETY: signals our own test's process group.
    unsafe { libc::kill(-child.pid, libc::SIGKILL) };
    let Some(status) = status else {
        child.kill();
        child.wait()?;
        reap_orphans();
        return Ok(Err(Outcome::Fail(vec![format!(
            "timeout after {}s",
            timeout.as_secs()
        )])));
    };
    child.reaped();
    reap_orphans();
    Ok(Ok(status))
}

/// Polls for the child's exit, calling `tick` between polls; None on timeout.
fn wait_with_timeout(
    child: &sys::Child,
    timeout: Duration,
    mut tick: impl FnMut(),
) -> Result<Option<libc::c_int>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(child.pid, &mut status, libc::WNOHANG) };
        if r == child.pid {
            return Ok(Some(status));
        }
        if r < 0 && sys::last_errno() != sys::Errno::INTR {
            anyhow::bail!(
                "waitpid({}): {}",
                child.pid,
                sys::errno_name(sys::last_errno())
            );
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tick();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whatever the child wrote, without blocking on write ends that grandchildren may hold.
fn drain(rx: &OwnedFd) -> Vec<u8> {
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(rx.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = rustix::io::read(rx, &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Reaps exited leftovers, waiting up to a second for SIGKILLed ones to die.
fn reap_orphans() {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        // SAFETY: no status wanted.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r > 0 {
            continue;
        }
        if r < 0 || Instant::now() >= deadline {
            return; // ECHILD: nothing left
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn run(f: fn() -> Result<()>, secs: u64) -> Outcome {
        run_one(&Test::new("t", f), Duration::from_secs(secs))
    }

    fn fail_lines(o: Outcome) -> Vec<String> {
        match o {
            Outcome::Fail(lines) => lines,
            Outcome::Pass => panic!("expected a failure, got a pass"),
            Outcome::Skip(r) => panic!("expected a failure, got a skip: {r}"),
        }
    }

    // One #[test]: the runner reaps every exited child of the process, so it must not
    // run next to other forking tests.
    #[test]
    fn outcomes_reach_the_parent() {
        assert!(matches!(run(|| Ok(()), 5), Outcome::Pass));

        let skipped = run(
            || Err(anyhow::Error::from(Skip("no feature".into())).context("probing")),
            5,
        );
        assert!(matches!(skipped, Outcome::Skip(r) if r == "no feature"));

        let failed = fail_lines(run(
            || Err(anyhow::anyhow!("inner")).context("outer\nsecond line"),
            5,
        ));
        assert_eq!(failed, ["outer", "second line: inner"]);

        let panicked = fail_lines(run(|| panic!("boom"), 5));
        assert_eq!(panicked, ["panicked: boom"]);

        let timed_out = fail_lines(run(
            || {
                // A grandchild in the same process group is killed and reaped with it.
                crate::sys::fork_child(|| loop {
                    std::thread::sleep(Duration::from_secs(1));
                })?;
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            },
            1,
        ));
        assert_eq!(timed_out, ["timeout after 1s"]);

        let signalled = fail_lines(run(|| std::process::abort(), 5));
        assert_eq!(signalled, ["test process killed by signal 6 (SIGABRT)"]);

        let exited = fail_lines(run(|| std::process::exit(3), 5));
        assert_eq!(
            exited,
            ["test process ended with exit status 3 without reporting a result"]
        );

        // Programs: kselftest's exit statuses, a timeout, a path that is not there.
        let dir = std::env::temp_dir().join(format!("uapi-tests-prog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = |body: &str, secs: u64| {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join("t");
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            run_program(&Program {
                name: "kselftest.c.t".into(),
                path,
                timeout: Duration::from_secs(secs),
            })
        };
        assert!(matches!(
            program("echo 'TAP version 13'; echo 1..0", 5),
            Outcome::Pass
        ));
        assert!(matches!(program("exit 4", 5), Outcome::Skip(r) if r == "kselftest.c.t skipped"));
        let failed = fail_lines(program("echo oops >&2; exit 1", 5));
        assert_eq!(
            failed,
            [format!("{}/t ended with exit status 1", dir.display())]
        );
        assert_eq!(fail_lines(program("sleep 30", 1)), ["timeout after 1s"]);
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = fail_lines(run_program(&Program {
            name: "kselftest.c.t".into(),
            path: dir.join("t"),
            timeout: Duration::from_secs(5),
        }));
        assert_eq!(
            missing,
            [format!("{}/t ended with exit status 127", dir.display())]
        );
    }
}
