//! request_key() interception (uapi.md §3 "Keys", part 3 of the series):
//! `keyctl(KEYCTL_CONTAINER_INTERCEPT, cfd, type, 0, queue)` sends the authorisation
//! keys of a container's key requests to a supervisor's queue keyring instead of
//! /sbin/request-key; the nearest intercepting container up the requester's ancestry
//! wins; an unanswered request fails as an unanswered upcall does. SKIPs on a kernel
//! whose headers lack KEYCTL_CONTAINER_INTERCEPT (a commit before the intercept patch).
//!
//! The supervisor here is the test itself, so that every step is asserted; `kc keyd`
//! (the supervisor that answers inside the container) is tested through `kc demo-keys`
//! here and under a flood in the stress module.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::helpers::{self as h, Call, Pipe, Proc};
use super::keyctl::{self as k, WatchPipe, KEY_SPEC_SESSION_KEYRING};
use crate::mainline::join_new_session_keyring;
use crate::sys::{expect_errno, ok, skip, Errno};
use crate::uapi::from_headers;

/// An unprivileged uid (not the overflow id 65534).
const USER: u32 = 1000;
/// Every permission, for the possessor only.
const KEY_POS_ALL: u32 = 0x3f00_0000;
/// View, read and search, not write, for the possessor.
const KEY_POS_VIEW_READ_SEARCH: u32 = 0x0b00_0000;
const SYSCTL: &str = "/proc/sys/kernel/keys/intercept_timeout";
const KEYCTL_CAPS1_CONTAINERS: u8 = 0x08;

pub fn require_intercept() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    if !from_headers("KEYCTL_CONTAINER_INTERCEPT") {
        return Err(skip(
            "KEYCTL_CONTAINER_INTERCEPT: not in this kernel's headers (a commit before the request_key() interception patch)",
        ));
    }
    Ok(())
}

/// A supervisor's queue: a possessor-only keyring in the session keyring, watched.
pub struct Queue {
    pub ring: i32,
    pub pipe: WatchPipe,
}

impl Queue {
    pub fn new(name: &CStr) -> Result<Self> {
        let ring = ok(
            "add_key(keyring) for the queue",
            k::add_key(c"keyring", name, &[], KEY_SPEC_SESSION_KEYRING),
        )?;
        ok(
            "KEYCTL_SETPERM(queue, possessor only)",
            k::setperm(ring, KEY_POS_ALL),
        )?;
        let pipe = ok("pipe2(O_NOTIFICATION_PIPE)", WatchPipe::new(64))?;
        ok("KEYCTL_WATCH_KEY(queue)", pipe.watch(ring, 1))?;
        Ok(Self { ring, pipe })
    }

    /// Waits for the next NOTIFY_KEY_LINKED on the queue: the new authorisation key,
    /// its description and the target key's serial.
    pub fn next(&self, from: &Proc) -> Result<(i32, i32)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            from.check()?;
            if Instant::now() > deadline {
                bail!("no request reached queue {} within 10 s", self.ring);
            }
            if crate::sys::poll_one(self.pipe.fd(), libc::POLLIN, 100)? == 0 {
                continue;
            }
            let notes = ok("read(watch pipe)", self.pipe.read())?;
            for n in notes {
                if n.ty == k::WATCH_TYPE_KEY_NOTIFY && n.subtype == k::NOTIFY_KEY_LINKED {
                    ensure!(
                        n.key == self.ring,
                        "a link notification for key {}, not the queue {}",
                        n.key,
                        self.ring
                    );
                    let d = ok("KEYCTL_DESCRIBE(the linked key)", k::describe(n.aux))?;
                    let target = d.auth_target().with_context(|| {
                        format!("the queue got {d:?}, not an authorisation key")
                    })?;
                    return Ok((n.aux, target));
                }
            }
        }
    }

    /// How many requests (NOTIFY_KEY_LINKED) the notifications waiting in the pipe
    /// announce, reading them all; unlink notifications do not count.
    pub fn linked_since(&self) -> Result<usize> {
        let mut linked = 0;
        while crate::sys::poll_one(self.pipe.fd(), libc::POLLIN, 0)? != 0 {
            let notes = ok("read(watch pipe)", self.pipe.read())?;
            linked += notes
                .iter()
                .filter(|n| n.ty == k::WATCH_TYPE_KEY_NOTIFY && n.subtype == k::NOTIFY_KEY_LINKED)
                .count();
        }
        Ok(linked)
    }

    /// `KEYCTL_CONTAINER_INTERCEPT(cfd, ty, 0, queue)`, which must succeed.
    pub fn intercept(&self, cfd: RawFd, ty: &CStr) -> Result<()> {
        ok(
            &format!("KEYCTL_CONTAINER_INTERCEPT({ty:?})"),
            k::container_intercept(cfd, ty, 0, self.ring),
        )
    }

    pub fn keys(&self) -> Result<Vec<i32>> {
        ok("KEYCTL_READ(queue)", k::keyring_keys(self.ring))
    }
}

/// Answers a request with the authority its key gives, and gives the authority up.
fn answer(target: i32, act: impl FnOnce() -> Result<()>) -> Result<()> {
    ok(
        "KEYCTL_ASSUME_AUTHORITY(target)",
        k::assume_authority(target),
    )?;
    let done = act();
    ok("KEYCTL_ASSUME_AUTHORITY(0)", k::assume_authority(0))?;
    done
}

/// Answers a request for the user key `desc` (checked) with `payload`.
fn instantiate_request(target: i32, desc: &str, payload: &[u8]) -> Result<()> {
    answer(target, || {
        let d = ok("KEYCTL_DESCRIBE(target)", k::describe(target))?;
        ensure!(
            d.ty == "user" && d.desc == desc,
            "the request is for {d:?}, not the user key {desc:?}"
        );
        ok("KEYCTL_INSTANTIATE", k::instantiate(target, payload))
    })
}

/// `request_key("user", desc, callout, session)` and the payload, from a member.
fn request_user(desc: &CStr, callout: &CStr) -> Result<Vec<u8>, Errno> {
    let key = k::request_key(c"user", desc, Some(callout), KEY_SPEC_SESSION_KEYRING)?;
    k::read(key)
}

/// Sets kernel.keys.intercept_timeout and puts the old value back on drop.
struct Timeout(String);

impl Timeout {
    fn set(secs: u32) -> Result<Self> {
        let old = std::fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
        std::fs::write(SYSCTL, secs.to_string())
            .with_context(|| format!("writing {secs} to {SYSCTL}"))?;
        Ok(Self(old.trim().to_string()))
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}

/// KEYCTL_CONTAINER_INTERCEPT: EINVAL (flags, not a cfd, the keyring type, an empty
/// type), EBADF, EPERM (a '.' type; a user who may not start the container's init),
/// ENOKEY (no such type or queue), ENOTDIR (a queue that is not a keyring), EACCES (a
/// queue the caller may not write), EBUSY (the type again), ENOENT (removing what is
/// not there); the sysctl's range.
pub fn intercept_errors() -> Result<()> {
    require_intercept()?;
    join_new_session_keyring()?;
    let q = Queue::new(c"kc-ierr")?;
    let user_key = ok("add_key(user)", k::add_key(c"user", c"kc:k", b"v", q.ring))?;
    let cfd = h::create(&h::unique_name("ierr"), 0)?;
    let c = cfd.as_raw_fd();
    let bad = h::bad_fds()?;
    for &(what, fd, errno) in &bad.cases {
        expect_errno(
            &format!("KEYCTL_CONTAINER_INTERCEPT on {what}"),
            k::container_intercept(fd, c"user", 0, q.ring),
            errno,
        )?;
    }
    drop(bad);
    let cases: [(&str, &CStr, u32, i32, Errno); 8] = [
        ("flags 1", c"user", 1, q.ring, Errno::INVAL),
        (
            "type .request_key_auth",
            c".request_key_auth",
            0,
            q.ring,
            Errno::PERM,
        ),
        (
            "an unknown type",
            c"kc_no_such_type",
            0,
            q.ring,
            Errno::NOKEY,
        ),
        ("type keyring", c"keyring", 0, q.ring, Errno::INVAL),
        ("an empty type", c"", 0, q.ring, Errno::INVAL),
        ("a user key as queue", c"user", 0, user_key, Errno::NOTDIR),
        ("no such queue", c"user", 0, 0x7fff_fff0, Errno::NOKEY),
        (
            "removing an intercept that is not there",
            c"user",
            0,
            0,
            Errno::NOENT,
        ),
    ];
    for (what, ty, flags, queue, errno) in cases {
        expect_errno(
            &format!("KEYCTL_CONTAINER_INTERCEPT with {what}"),
            k::container_intercept(c, ty, flags, queue),
            errno,
        )?;
    }
    q.intercept(c, c"user")?;
    expect_errno(
        "KEYCTL_CONTAINER_INTERCEPT(user) a second time",
        k::container_intercept(c, c"user", 0, q.ring),
        Errno::BUSY,
    )?;
    q.intercept(c, c"*")?;
    ok(
        "removing the user intercept",
        k::container_intercept(c, c"user", 0, 0),
    )?;
    expect_errno(
        "removing the user intercept again",
        k::container_intercept(c, c"user", 0, 0),
        Errno::NOENT,
    )?;
    let readonly = Queue::new(c"kc-ierr-ro")?;
    ok(
        "KEYCTL_SETPERM(queue, possessor view, read, search)",
        k::setperm(readonly.ring, KEY_POS_VIEW_READ_SEARCH),
    )?;
    expect_errno(
        "KEYCTL_CONTAINER_INTERCEPT with a queue the caller may not write",
        k::container_intercept(c, c"user", 0, readonly.ring),
        Errno::ACCESS,
    )?;
    for bad in ["0", "61"] {
        ensure!(
            std::fs::write(SYSCTL, bad).is_err(),
            "{SYSCTL} accepted {bad} (range 1..60)"
        );
    }
    let caps = ok("KEYCTL_CAPABILITIES", k::capabilities())?;
    ensure!(
        caps.get(1)
            .is_some_and(|b| b & KEYCTL_CAPS1_CONTAINERS != 0),
        "KEYCTL_CAPABILITIES gives {caps:02x?}: no KEYCTL_CAPS1_CONTAINERS (0x08) in byte 1"
    );

    let root_cfd = h::create(&h::unique_name("iperm"), 0)?;
    let mut user = Proc::fork("the unprivileged user", || {
        h::become_user(USER)?;
        join_new_session_keyring()?;
        let mine = Queue::new(c"kc-user-queue")?;
        expect_errno(
            "KEYCTL_CONTAINER_INTERCEPT on root's container",
            k::container_intercept(root_cfd.as_raw_fd(), c"user", 0, mine.ring),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    user.wait_exit(0)
}

/// A member's requests reach the queue (a NOTIFY_KEY_LINKED of an authorisation key
/// whose callout is the member's), and instantiate, negate and reject come back to it
/// as the key, ENOKEY and the chosen error; afterwards the queue is empty. A request
/// from outside the container goes to the host's /sbin/request-key, not the queue.
pub fn intercept_answer() -> Result<()> {
    require_intercept()?;
    join_new_session_keyring()?;
    let q = Queue::new(c"kc-answer")?;
    let cfd = h::create(&h::unique_name("answer"), 0)?;
    q.intercept(cfd.as_raw_fd(), c"user")?;

    let go = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        join_new_session_keyring()?;
        go.wait();
        let got = ok(
            "request_key(user, kc:answer)",
            request_user(c"kc:answer", c"from-member"),
        )?;
        ensure!(got == b"answered", "kc:answer reads {got:?}");
        expect_errno(
            "request_key(user, kc:negated)",
            request_user(c"kc:negated", c"x"),
            Errno::NOKEY,
        )?;
        expect_errno(
            "request_key(user, kc:rejected)",
            request_user(c"kc:rejected", c"x"),
            Errno::KEYREJECTED,
        )?;
        Ok(0)
    })?;
    go.open(1)?;

    let (auth, target) = q.next(&init)?;
    let callout = ok("KEYCTL_READ(the authorisation key)", k::read(auth))?;
    ensure!(callout == b"from-member", "the callout reads {callout:?}");
    instantiate_request(target, "kc:answer", b"answered")?;
    let (_, target) = q.next(&init)?;
    answer(target, || ok("KEYCTL_NEGATE", k::negate(target, 30)))?;
    let (_, target) = q.next(&init)?;
    answer(target, || {
        ok("KEYCTL_REJECT", k::reject(target, 30, Errno::KEYREJECTED))
    })?;
    init.wait_exit(0)?;
    let left = q.keys()?;
    ensure!(
        left.is_empty(),
        "the queue still holds {left:?} after every request ended"
    );
    expect_errno(
        "KEYCTL_DESCRIBE of an answered request's authorisation key",
        k::describe(auth),
        Errno::NOKEY,
    )?;

    q.linked_since()?;
    let mut outsider = Proc::fork("a process outside the container", || {
        join_new_session_keyring()?;
        // The host's /sbin/request-key (kc) negates user keys.
        expect_errno(
            "request_key(user, kc:outside)",
            request_user(c"kc:outside", c"x"),
            Errno::NOKEY,
        )?;
        Ok(0)
    })?;
    outsider.wait_exit(0)?;
    let left = q.keys()?;
    ensure!(
        left.is_empty(),
        "a request from outside the container reached the queue: {left:?}"
    );
    ensure!(
        q.linked_since()? == 0,
        "the queue was notified of a request from outside the container"
    );
    Ok(())
}

/// Nobody answers: a member killed while it waits dies at once and leaves the queue
/// empty; with kernel.keys.intercept_timeout 2 the member gets ENOKEY after about 2 s,
/// the authorisation key is gone, also when the supervisor that set the intercept died.
pub fn intercept_unanswered() -> Result<()> {
    require_intercept()?;
    join_new_session_keyring()?;
    let timeout = Timeout::set(30)?;
    let q = Queue::new(c"kc-unanswered")?;

    // Killed while waiting.
    let cfd = h::create(&h::unique_name("ikill"), 0)?;
    q.intercept(cfd.as_raw_fd(), c"user")?;
    let init = Proc::init(&cfd, || {
        join_new_session_keyring()?;
        let _ = request_user(c"kc:killed", c"x");
        bail!("request_key returned to a member that was killed while it waited")
    })?;
    q.next(&init)?;
    let pid = init.leak();
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let status = h::waitpid_within(pid, Duration::from_secs(2)).context("the killed member")?;
    h::expect_sigkilled(status, "the member killed while it waited")?;
    let left = q.keys()?;
    ensure!(
        left.is_empty(),
        "the queue still holds {left:?} after the requester died"
    );
    drop(timeout);

    // Unanswered, supervisor alive.
    let _timeout = Timeout::set(2)?;
    let cfd = h::create(&h::unique_name("iwait"), 0)?;
    q.intercept(cfd.as_raw_fd(), c"user")?;
    let mut init = Proc::init(&cfd, || {
        join_new_session_keyring()?;
        expect_unanswered(c"kc:unanswered")
    })?;
    let (auth, _) = q.next(&init)?;
    init.wait_exit(0)?;
    let left = q.keys()?;
    ensure!(
        left.is_empty(),
        "the queue still holds {left:?} after the timeout"
    );
    expect_errno(
        "KEYCTL_DESCRIBE of the timed-out authorisation key",
        k::describe(auth),
        Errno::NOKEY,
    )?;

    // The supervisor that set the intercept is gone; its queue lives on in the kernel.
    let cfd = h::create(&h::unique_name("idead"), 0)?;
    let c = cfd.as_raw_fd();
    let mut supervisor = Proc::fork("a supervisor that dies", || {
        join_new_session_keyring()?;
        let mine = Queue::new(c"kc-dead-queue")?;
        mine.intercept(c, c"*")?;
        Ok(0)
    })?;
    supervisor.wait_exit(0)?;
    let mut init = Proc::init(&cfd, || {
        join_new_session_keyring()?;
        expect_unanswered(c"kc:orphaned")
    })?;
    init.wait_exit(0)
}

/// In a member: request_key fails with ENOKEY after 1.5 to 10 s.
fn expect_unanswered(desc: &CStr) -> Result<i32> {
    let start = Instant::now();
    expect_errno(
        "request_key of an unanswered key",
        request_user(desc, c"x"),
        Errno::NOKEY,
    )?;
    let took = start.elapsed();
    ensure!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "an unanswered request failed after {took:?}, not after the 2 s timeout"
    );
    Ok(0)
}

/// Nested containers: B1 (no intercept) nested in A is served by A's supervisor; B2
/// with an intercept of "*" of its own by its own, even though A intercepts "user"
/// itself; A's queue sees exactly B1's request.
pub fn intercept_nested() -> Result<()> {
    require_intercept()?;
    join_new_session_keyring()?;
    let qa = Queue::new(c"kc-outer")?;
    let a = h::create(&h::unique_name("nest-a"), 0)?;
    qa.intercept(a.as_raw_fd(), c"user")?;
    let go = Pipe::new()?;
    let mut init = Proc::init(&a, || {
        join_new_session_keyring()?;
        let qb = Queue::new(c"kc-inner")?;
        let b1 = h::create(&h::unique_name("nest-b1"), 0)?;
        let b2 = h::create(&h::unique_name("nest-b2"), 0)?;
        qb.intercept(b2.as_raw_fd(), c"*")?;
        go.wait();
        let member = |desc: &'static CStr, want: &'static [u8]| {
            move || {
                join_new_session_keyring()?;
                let got = ok(
                    "request_key(user) in a nested container",
                    request_user(desc, c"x"),
                )?;
                ensure!(got == want, "{desc:?} reads {got:?}, not {want:?}");
                Ok(0)
            }
        };
        let mut in_b1 = Proc::init(&b1, member(c"kc:b1", b"outer"))?;
        let mut in_b2 = Proc::init(&b2, member(c"kc:b2", b"inner"))?;
        let (_, target) = qb.next(&in_b2)?;
        instantiate_request(target, "kc:b2", b"inner")?;
        in_b2.wait_exit(0)?;
        in_b1.wait_exit(0)?;
        let left = ok("KEYCTL_READ(B2's queue)", k::keyring_keys(qb.ring))?;
        ensure!(
            left.is_empty(),
            "B2's queue holds {left:?}: B1's request reached it"
        );
        Ok(0)
    })?;
    go.open(1)?;
    let (_, target) = qa.next(&init)?;
    instantiate_request(target, "kc:b1", b"outer")?;
    init.wait_exit(0)?;
    ensure!(
        qa.linked_since()? == 0,
        "A's queue was notified of a second request (B2's)"
    );
    Ok(())
}

/// `kc demo-keys`: two containers resolve kc-demo.example through their own `kc keyd`
/// and /etc/hosts; the host through its own upcall. The exact lines.
pub fn keyd_demo() -> Result<()> {
    require_intercept()?;
    if std::fs::metadata("/bin/kc").is_err() {
        return Err(skip("/bin/kc: not in this image"));
    }
    let out = std::process::Command::new("/bin/kc")
        .arg("demo-keys")
        .output()
        .context("running /bin/kc demo-keys")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "kc demo-keys: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "kc: host: /etc/hosts gives kc-demo.example = 192.0.2.1",
        "    [red] request_key(dns_resolver, kc-demo.example) = 198.51.100.10",
        "    [blue] request_key(dns_resolver, kc-demo.example) = 203.0.113.20",
        "kc: host: request_key(dns_resolver, kc-demo.example) = 192.0.2.1 (the usual upcall)",
    ] {
        ensure!(
            stdout.lines().any(|l| l == want),
            "kc demo-keys did not print {want:?}:\n{stdout}"
        );
    }
    Ok(())
}

/// The name the resolver tests ask for.
pub const NAME: &CStr = c"kc-demo.example";

/// A container with a network namespace of its own and a tmpfs root built from
/// outside holding an /etc/hosts that gives NAME `addr` and /bin/kc as
/// /sbin/request-key: what `kc keyd` runs in it.
pub fn resolver_container(tag: &str, addr: &str) -> Result<OwnedFd> {
    if std::fs::metadata("/bin/kc").is_err() {
        return Err(skip("/bin/kc: not in this image"));
    }
    let cfd = h::create(
        &h::unique_name(tag),
        crate::uapi::CONTAINER_NEW_EMPTY_FS_NS | crate::uapi::CONTAINER_NEW_NET_NS,
    )?;
    let kc = std::fs::read("/bin/kc").context("reading /bin/kc")?;
    let hosts = format!("127.0.0.1 localhost\n{addr} {}\n", NAME.to_string_lossy());
    super::mount_calls::tmpfs_root_with(
        &cfd,
        &[
            ("etc/hosts", hosts.as_bytes(), 0o644),
            ("sbin/request-key", &kc, 0o755),
        ],
    )
    .map_err(|(step, e)| anyhow::anyhow!("{step}: {e}"))?;
    Ok(cfd)
}

/// In a member: the payload of the dns_resolver key of `name` (an upcall if missing).
pub fn resolve(name: &CStr) -> Result<String, Errno> {
    let key = k::request_key(c"dns_resolver", name, Some(c""), KEY_SPEC_SESSION_KEYRING)?;
    Ok(String::from_utf8_lossy(&k::read(key)?).into_owned())
}

/// `kc keyd` for `cfd`, started once it serves: `/bin/kc keyd [ARGS] --init PID FD`;
/// its stderr stays open (and is shown if it fails).
pub struct Keyd(
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
);

impl Keyd {
    pub fn start(cfd: &OwnedFd, init: libc::pid_t, args: &[&str]) -> Result<Self> {
        use std::io::BufRead;
        // A duplicate without FD_CLOEXEC, so that kc keyd inherits it.
        let fd = rustix::io::fcntl_dupfd_cloexec(cfd, 10).context("F_DUPFD_CLOEXEC")?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).context("F_SETFD 0")?;
        let mut child = std::process::Command::new("/bin/kc")
            .arg("keyd")
            .args(args)
            .args(["--init", &init.to_string(), &fd.as_raw_fd().to_string()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("spawning /bin/kc keyd")?;
        drop(fd);
        let stderr = child.stderr.take().context("kc keyd's stderr")?;
        let mut stderr = std::io::BufReader::new(stderr);
        let mut line = String::new();
        stderr
            .read_line(&mut line)
            .context("reading kc keyd's first line")?;
        ensure!(
            line.starts_with("kc keyd: serving container fd"),
            "kc keyd did not start: {line:?}"
        );
        Ok(Self(child, stderr))
    }

    /// Waits (at most 10 s) for keyd to end with the container; fails unless it exits 0.
    pub fn wait(mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.0.try_wait().context("waiting for kc keyd")? {
                let mut rest = String::new();
                let _ = std::io::Read::read_to_string(&mut self.1, &mut rest);
                ensure!(
                    status.success(),
                    "kc keyd ended with {status}; it said:\n{rest}"
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                bail!("kc keyd did not end within 10 s of its container's death");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A member more privileged than its container (a set-user-ID-root copy of kc run by
/// a member of a container whose credentials are an unprivileged user's), or a
/// container it nests there, is not the supervisor's to answer: its request goes to
/// the host's /sbin/request-key (which negates user keys), while the same request
/// from the unprivileged member reaches the queue.
pub fn intercept_privileged_member() -> Result<()> {
    require_intercept()?;
    if std::fs::metadata("/bin/kc").is_err() {
        return Err(skip("/bin/kc: not in this image"));
    }
    let suid = format!("/tmp/kc-suid-{}", std::process::id());
    std::fs::copy("/bin/kc", &suid).with_context(|| format!("copying /bin/kc to {suid}"))?;
    let _gone = Remove(suid.clone());
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).with_context(|| format!("chown {suid}"))?;
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755))
        .with_context(|| format!("chmod 4755 {suid}"))?;
    let mut supervisor = Proc::fork("the unprivileged supervisor", || {
        h::become_user(USER)?;
        join_new_session_keyring()?;
        let q = Queue::new(c"kc-unpriv")?;
        let cfd = h::create(&h::unique_name("isuid"), 0)?;
        q.intercept(cfd.as_raw_fd(), c"user")?;
        let mut init = Proc::init(&cfd, || {
            join_new_session_keyring()?;
            let run = |prog: &str, desc: &str| {
                std::process::Command::new(prog)
                    .args(["key", "request", "user", desc, "x"])
                    .output()
                    .with_context(|| format!("running {prog} key request"))
            };
            let plain = run("/bin/kc", "kc:plain")?;
            ensure!(
                plain.status.success() && plain.stdout == b"plain\n",
                "kc key request from the member: {} {:?}",
                plain.status,
                String::from_utf8_lossy(&plain.stderr)
            );
            // The same, as the init of a container the set-user-ID member
            // nests in this one: the walk stops below the unprivileged
            // container.
            let nested = std::process::Command::new(&suid)
                .args(["run", "--ns", "none", "nested", "--", "/bin/kc"])
                .args(["key", "request", "user", "kc:nested", "x"])
                .output()
                .context("running the set-user-ID kc run")?;
            ensure!(
                nested.status.code() == Some(1)
                    && String::from_utf8_lossy(&nested.stderr)
                        .contains("Required key not available"),
                "the nested container's request: {} {:?} (want the host upcall's ENOKEY)",
                nested.status,
                String::from_utf8_lossy(&nested.stderr)
            );
            let privileged = run(&suid, "kc:suid")?;
            ensure!(
                privileged.status.code() == Some(1)
                    && String::from_utf8_lossy(&privileged.stderr)
                        .contains("Required key not available"),
                "the set-user-ID member's request: {} {:?} (want the host upcall's ENOKEY)",
                privileged.status,
                String::from_utf8_lossy(&privileged.stderr)
            );
            Ok(0)
        })?;
        let (_, target) = q.next(&init)?;
        instantiate_request(target, "kc:plain", b"plain")?;
        init.wait_exit(0)?;
        ensure!(
            q.linked_since()? == 0,
            "a request of the set-user-ID member or its nested container reached the unprivileged supervisor's queue"
        );
        Ok(0)
    })?;
    supervisor.wait_exit(0)
}

/// Removes a file on drop.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
