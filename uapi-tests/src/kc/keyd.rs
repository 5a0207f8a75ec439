//! `kc keyd`: the supervisor that answers a container's key requests inside the
//! container (uapi.md §3 "Keys", KEYCTL_CONTAINER_INTERCEPT).
//!
//! It makes a queue keyring in a session keyring of its own, asks the kernel to link the
//! authorisation keys of the container's requests there (for the key types given, "*"
//! by default), watches the queue on a watch_queue pipe, and services each request in a
//! child that enters the container through its init (setns() on a pidfd: user, mount,
//! network, UTS, IPC and cgroup namespaces, so also the container's root), takes the
//! init's uid and gid, and execs the container's own `/sbin/request-key` with the
//! arguments the kernel gives it (`create KEY UID GID 0 0 0`: the requester's thread,
//! process and session keyrings are not known outside the kernel). A request the helper
//! leaves unanswered, or that outlives `--helper-timeout`, is negated, as the kernel does
//! after /sbin/request-key; at most `--max-helpers` run at once and `--backlog` wait,
//! and a request beyond those is rejected at once with EAGAIN. It never answers a
//! request itself, so it cannot answer one container's request with another's data: a
//! queue is one container's (and its descendants' without an intercept of their own).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

use crate::keyctl::{self, KEY_SPEC_SESSION_KEYRING};
use crate::part4;
use crate::util::{check_cfd, errno_err, last_errno, reap};

/// `eprintln!` that never panics: keyd must outlive a closed stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `kc keyd [--type TYPE]... [--max-helpers N] [--backlog N] [--helper-timeout SECS] [-v]
/// [--init PID] CFD`: serve the container whose fd this process inherited as CFD until
/// it is dead. Its first stderr line is "kc keyd: serving container fd ...".
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A key type to intercept (repeatable; default "*", every type).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// How many helpers run at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_helpers: u64,
    /// How many requests may wait for a helper; more are rejected with EAGAIN.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub backlog: u64,
    /// Kill a helper and negate its request after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub helper_timeout: u64,
    /// Log every request.
    #[arg(short, long)]
    pub verbose: bool,
    /// The container's init, through which helpers enter it (default: from
    /// CONTAINER_GET_INIT_PIDFD, part 4 of the series).
    #[arg(long, value_name = "PID")]
    pub init: Option<libc::pid_t>,
    /// The inherited container fd.
    #[arg(value_name = "CFD")]
    pub cfd: RawFd,
}

pub fn main(args: Args) -> Result<u8> {
    let fd = args.cfd;
    check_cfd(fd)?;
    // SAFETY: fd is open (checked above) and stays open: kc keyd never closes it.
    let cfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let init = match args.init {
        Some(pid) => pid,
        None => {
            let pidfd = part4::get_init_pidfd(cfd)
                .map_err(|e| errno_err(format!("ioctl(fd {fd}, CONTAINER_GET_INIT_PIDFD)"), e))
                .with_context(|| format!("{}; or pass --init PID", part4::NEEDS_PART4))?;
            part4::pidfd_pid(pidfd.as_fd())
                .context("the init's pid from its pidfd's fdinfo (has it exited?)")?
        }
    };
    let mut types = args.types;
    if types.is_empty() {
        types.push("*".to_string());
    }
    let limits = Limits {
        max_helpers: args.max_helpers as usize,
        backlog: args.backlog as usize,
        helper_timeout: Duration::from_secs(args.helper_timeout),
    };
    let mut daemon = Keyd::new(cfd, &types, limits, args.verbose)?;
    say!(
        "kc keyd: serving container fd {fd} (init {init}) for {}: queue keyring {}",
        types.join(","),
        daemon.queue()
    );
    let counts = daemon.serve(init)?;
    say!(
        "kc keyd: container dead; {} answered, {} negated, {} rejected",
        counts.answered,
        counts.negated,
        counts.rejected
    );
    Ok(0)
}

/// Every permission, for the possessor only: nobody else may see the queue.
const KEY_POS_ALL: u32 = 0x3f00_0000;
/// The owner may view and search (join by name) a helper's session keyring.
const KEY_USR_VIEW: u32 = 0x0001_0000;
const KEY_USR_SEARCH: u32 = 0x0008_0000;
const KEY_SPEC_THREAD_KEYRING: i32 = -1;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
const KEYCTL_SETPERM: libc::c_int = 5;
const KEYCTL_LINK: libc::c_int = 8;
/// How long a negated (unanswered) key stays negative, as the kernel's default
/// `key_negative_timeout`.
const NEGATIVE_TIMEOUT: u32 = 60;
/// How long a key rejected for lack of room stays rejected.
const BUSY_TIMEOUT: u32 = 1;

/// How many requests keyd serves at once and how many may wait.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_helpers: usize,
    pub backlog: usize,
    pub helper_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_helpers: 4,
            backlog: 64,
            helper_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to the requests keyd saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub answered: u64,
    pub negated: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    auth: i32,
    target: i32,
    /// The requester's fsuid and fsgid, as keyd sees them.
    uid: u32,
    gid: u32,
}

struct Running {
    req: Request,
    started: Instant,
    killed: bool,
}

/// A supervisor for one container.
pub struct Keyd<'a> {
    cfd: BorrowedFd<'a>,
    types: Vec<CString>,
    limits: Limits,
    queue: i32,
    pipe: keyctl::WatchPipe,
    seen: BTreeSet<i32>,
    waiting: VecDeque<Request>,
    running: HashMap<i32, Running>,
    counts: Counts,
    verbose: bool,
}

impl<'a> Keyd<'a> {
    /// Sets up the queue and the intercepts; the container's requests for `types`
    /// come to this keyd from now on.
    pub fn new(
        cfd: BorrowedFd<'a>,
        types: &[String],
        limits: Limits,
        verbose: bool,
    ) -> Result<Self> {
        // The helpers run in the container: they must not inherit its cfd.
        rustix::io::fcntl_setfd(cfd, rustix::io::FdFlags::CLOEXEC).map_err(|e| {
            errno_err(
                format!("fcntl(F_SETFD, FD_CLOEXEC) on cfd {}", cfd.as_raw_fd()),
                e,
            )
        })?;
        keyctl::join_new_session_keyring()
            .map_err(|e| errno_err("keyctl(KEYCTL_JOIN_SESSION_KEYRING) for the queue", e))?;
        let queue = keyctl::add_key(c"keyring", c"kc-keyd", &[], KEY_SPEC_SESSION_KEYRING)
            .map_err(|e| errno_err("add_key(keyring, \"kc-keyd\") in the session keyring", e))?;
        keyctl::setperm(queue, KEY_POS_ALL)
            .map_err(|e| errno_err(format!("KEYCTL_SETPERM on the queue keyring {queue}"), e))?;
        let pipe = keyctl::WatchPipe::new(256)
            .map_err(|e| errno_err("pipe2(O_NOTIFICATION_PIPE) and IOC_WATCH_QUEUE_SET_SIZE (needs CONFIG_WATCH_QUEUE)", e))?;
        pipe.watch(queue, 1).map_err(|e| {
            errno_err(
                format!("KEYCTL_WATCH_KEY on the queue keyring {queue} (needs CONFIG_KEY_NOTIFICATIONS)"),
                e,
            )
        })?;
        let types: Vec<CString> = types
            .iter()
            .map(|t| {
                CString::new(t.as_str()).with_context(|| format!("key type {t:?}: contains NUL"))
            })
            .collect::<Result<_>>()?;
        for ty in &types {
            keyctl::container_intercept(cfd.as_raw_fd(), ty, 0, queue).map_err(|e| {
                errno_err(
                    format!(
                        "keyctl(KEYCTL_CONTAINER_INTERCEPT, cfd {}, {ty:?}, 0, {queue})",
                        cfd.as_raw_fd()
                    ),
                    e,
                )
            })?;
        }
        Ok(Self {
            cfd,
            types,
            limits,
            queue,
            pipe,
            seen: BTreeSet::new(),
            waiting: VecDeque::new(),
            running: HashMap::new(),
            counts: Counts::default(),
            verbose,
        })
    }

    /// The queue keyring's serial.
    pub fn queue(&self) -> i32 {
        self.queue
    }

    fn log(&self, msg: &str) {
        if self.verbose {
            say!("kc keyd: {msg}");
        }
    }

    /// Serves requests until the container is dead (its cfd polls POLLHUP) and no
    /// helper runs; `init` is the container's init, through which helpers enter it.
    pub fn serve(&mut self, init: libc::pid_t) -> Result<Counts> {
        let pid = Pid::from_raw(init).with_context(|| format!("init pid {init}: not a pid"))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| errno_err(format!("pidfd_open({init}), the container's init"), e))?;
        let result = self.serve_with(init, &pidfd);
        // The container is dead or keyd failed: nothing more comes to this queue.
        for ty in &self.types {
            let _ = keyctl::container_intercept(self.cfd.as_raw_fd(), ty, 0, 0);
        }
        result
    }

    fn serve_with(&mut self, init: libc::pid_t, pidfd: &OwnedFd) -> Result<Counts> {
        let mut dead = false;
        loop {
            let timeout = rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: if self.running.is_empty() {
                    500_000_000
                } else {
                    50_000_000
                },
            };
            let mut fds = [
                PollFd::new(self.pipe.fd(), PollFlags::IN),
                PollFd::new(&self.cfd, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(errno_err("poll(watch pipe, cfd)", e)),
            }
            let notified = fds[0].revents().contains(PollFlags::IN);
            dead |= !fds[1].revents().is_empty();
            if notified {
                // The notifications only say "look": the queue itself is the truth
                // (and after a lost notification, the only one).
                let _ = self
                    .pipe
                    .read()
                    .map_err(|e| errno_err("read(watch pipe)", e))?;
            }
            self.scan()?;
            self.reap()?;
            self.start(init, pidfd)?;
            if dead && self.running.is_empty() && self.waiting.is_empty() {
                return Ok(self.counts);
            }
        }
    }

    /// Takes the new authorisation keys in the queue.
    fn scan(&mut self) -> Result<()> {
        let keys = keyctl::keyring_keys(self.queue).map_err(|e| {
            errno_err(
                format!("KEYCTL_READ of the queue keyring {}", self.queue),
                e,
            )
        })?;
        // The kernel unlinks a request's key when the request is over.
        self.seen.retain(|k| keys.contains(k));
        for auth in keys {
            if !self.seen.insert(auth) {
                continue;
            }
            // Gone already (answered or timed out), or not a request: skip it.
            let Ok(d) = keyctl::describe(auth) else {
                continue;
            };
            let Some(target) = d.auth_target() else {
                continue;
            };
            let req = Request {
                auth,
                target,
                uid: d.uid,
                gid: d.gid,
            };
            if self.waiting.len() >= self.limits.backlog {
                self.finish(req, Finish::Busy);
            } else {
                self.waiting.push_back(req);
            }
        }
        Ok(())
    }

    /// Starts helpers for waiting requests while there is room.
    fn start(&mut self, init: libc::pid_t, pidfd: &OwnedFd) -> Result<()> {
        while self.running.len() < self.limits.max_helpers {
            let Some(req) = self.waiting.pop_front() else {
                break;
            };
            match Helper::prepare(init, &req) {
                Ok(helper) => match helper.spawn(pidfd.as_raw_fd()) {
                    Ok(pid) => {
                        self.log(&format!("key {}: helper {pid} started", req.target));
                        self.running.insert(
                            pid,
                            Running {
                                req,
                                started: Instant::now(),
                                killed: false,
                            },
                        );
                    }
                    Err(e) => {
                        say!("kc keyd: key {}: {e:#}", req.target);
                        self.finish(req, Finish::Unanswered);
                    }
                },
                Err(e) => {
                    say!("kc keyd: key {}: {e:#}", req.target);
                    self.finish(req, Finish::Unanswered);
                }
            }
        }
        Ok(())
    }

    /// Reaps helpers that ended and kills those that overran.
    fn reap(&mut self) -> Result<()> {
        let pids: Vec<i32> = self.running.keys().copied().collect();
        for pid in pids {
            let p = Pid::from_raw(pid).context("a helper's pid")?;
            let status = rustix::process::waitpid(Some(p), WaitOptions::NOHANG)
                .map_err(|e| errno_err(format!("waitpid(helper {pid})"), e))?;
            match status {
                Some((_, status)) => {
                    let Some(run) = self.running.remove(&pid) else {
                        continue;
                    };
                    if status.exit_status() != Some(0) || run.killed {
                        self.log(&format!(
                            "key {}: helper {pid} ended with {status:?}{}",
                            run.req.target,
                            if run.killed { " (timed out)" } else { "" }
                        ));
                    }
                    self.finish(run.req, Finish::Unanswered);
                }
                None => {
                    let Some(run) = self.running.get_mut(&pid) else {
                        continue;
                    };
                    if !run.killed && run.started.elapsed() > self.limits.helper_timeout {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                        run.killed = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends a request: if it is still open (the helper did not answer, or there was
    /// no room), negate or reject it, with the authority its key gives.
    fn finish(&mut self, req: Request, how: Finish) {
        match keyctl::assume_authority(req.target) {
            Ok(()) => {
                let done = match how {
                    Finish::Unanswered => keyctl::negate(req.target, NEGATIVE_TIMEOUT),
                    Finish::Busy => keyctl::reject(req.target, BUSY_TIMEOUT, Errno::AGAIN),
                };
                let _ = keyctl::assume_authority(0);
                match (done, how) {
                    (Ok(()), Finish::Unanswered) => {
                        self.counts.negated += 1;
                        self.log(&format!("key {}: unanswered, negated", req.target));
                    }
                    (Ok(()), Finish::Busy) => {
                        self.counts.rejected += 1;
                        self.log(&format!(
                            "key {}: no room, rejected with EAGAIN",
                            req.target
                        ));
                    }
                    // Answered (or timed out in the kernel) in the meantime.
                    (Err(_), _) => self.counts.answered += 1,
                }
            }
            // The helper answered: the kernel invalidated the authorisation key.
            Err(_) => {
                self.counts.answered += 1;
                self.log(&format!(
                    "key {}: answered (auth key {})",
                    req.target, req.auth
                ));
            }
        }
    }
}

/// A keyd in a process of its own: its session keyring, with the queue in it, must
/// not be the one a container's init inherits from the process that starts it.
pub struct Spawned {
    pub pid: libc::pid_t,
    init_tx: Option<OwnedFd>,
}

/// Forks a keyd for `cfd` and waits until its intercepts are in place; then
/// [`Spawned::start`] tells it the init to serve through.
pub fn spawn(
    cfd: BorrowedFd<'_>,
    types: &[String],
    limits: Limits,
    verbose: bool,
) -> Result<Spawned> {
    let (ready_rx, ready_tx) = rustix::pipe::pipe().map_err(|e| errno_err("pipe", e))?;
    let (init_rx, init_tx) = rustix::pipe::pipe().map_err(|e| errno_err("pipe", e))?;
    // SAFETY: the caller is single-threaded; the child runs keyd and exits.
    match unsafe { libc::fork() } {
        -1 => Err(errno_err("fork (kc keyd)", last_errno())),
        0 => {
            drop((ready_rx, init_tx));
            let code = match run_spawned(cfd, types, limits, verbose, ready_tx, init_rx) {
                Ok(()) => 0,
                Err(e) => {
                    say!("kc keyd: {e:#}");
                    1
                }
            };
            std::process::exit(code)
        }
        pid => {
            drop((ready_tx, init_rx));
            let mut b = [0u8; 1];
            let n = rustix::io::read(&ready_rx, &mut b)
                .map_err(|e| errno_err("read (kc keyd ready)", e))?;
            if n != 1 {
                let status = reap(pid)?;
                bail!("kc keyd (pid {pid}) failed to set up (status {status:#x}); see its message above");
            }
            Ok(Spawned {
                pid,
                init_tx: Some(init_tx),
            })
        }
    }
}

fn run_spawned(
    cfd: BorrowedFd<'_>,
    types: &[String],
    limits: Limits,
    verbose: bool,
    ready_tx: OwnedFd,
    init_rx: OwnedFd,
) -> Result<()> {
    let mut daemon = Keyd::new(cfd, types, limits, verbose)?;
    rustix::io::write(&ready_tx, b"r").map_err(|e| errno_err("write (ready)", e))?;
    drop(ready_tx);
    let mut pid = [0u8; 4];
    match rustix::io::read(&init_rx, &mut pid) {
        Ok(4) => {}
        // No init was started: nothing to serve.
        Ok(_) => return Ok(()),
        Err(e) => return Err(errno_err("read (the init's pid)", e)),
    }
    let counts = daemon.serve(i32::from_ne_bytes(pid))?;
    if verbose {
        say!(
            "kc keyd: container dead; {} answered, {} negated, {} rejected",
            counts.answered,
            counts.negated,
            counts.rejected
        );
    }
    Ok(())
}

impl Spawned {
    /// Tells keyd the container's init, through which its helpers enter.
    pub fn start(&mut self, init: libc::pid_t) -> Result<()> {
        let tx = self.init_tx.take().context("kc keyd was started already")?;
        rustix::io::write(&tx, &init.to_ne_bytes())
            .map_err(|e| errno_err("write (the init's pid to kc keyd)", e))?;
        Ok(())
    }

    /// Waits for keyd to end (once the container is dead); its exit status.
    pub fn wait(mut self) -> Result<i32> {
        drop(self.init_tx.take());
        reap(self.pid)
    }
}

#[derive(Debug, Clone, Copy)]
enum Finish {
    Unanswered,
    Busy,
}

/// A helper ready to be forked: everything it needs, computed before the fork.
struct Helper {
    auth: i32,
    /// The name of the session keyring the helper gets, with only its request's
    /// authorisation key in it: not keyd's queue with every other request.
    session: CString,
    flags: libc::c_int,
    uid: u32,
    gid: u32,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// The namespaces a helper enters when the init's differ from keyd's.
const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("net", libc::CLONE_NEWNET),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// The helper the kernel would run, at the same path, in the container.
pub const REQUEST_KEY: &str = "/sbin/request-key";

impl Helper {
    fn prepare(init: libc::pid_t, req: &Request) -> Result<Self> {
        let mut flags = 0;
        for (ns, flag) in NAMESPACES {
            let mine = std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .with_context(|| format!("readlink /proc/self/ns/{ns}"))?;
            let theirs = std::fs::read_link(format!("/proc/{init}/ns/{ns}"))
                .with_context(|| format!("readlink /proc/{init}/ns/{ns} (the container's init)"))?;
            if mine != theirs {
                flags |= flag;
            }
        }
        let status = std::fs::read_to_string(format!("/proc/{init}/status"))
            .with_context(|| format!("reading /proc/{init}/status"))?;
        let (uid, gid) = (status_id(&status, "Uid:")?, status_id(&status, "Gid:")?);
        let (uid_map, gid_map) = if flags & libc::CLONE_NEWUSER != 0 {
            let read = |f: &str| {
                std::fs::read_to_string(format!("/proc/{init}/{f}"))
                    .with_context(|| format!("reading /proc/{init}/{f}"))
            };
            (Some(read("uid_map")?), Some(read("gid_map")?))
        } else {
            (None, None)
        };
        let inner = |map: &Option<String>, id: u32| match map {
            Some(m) => map_in(m, id),
            None => Some(id),
        };
        let uid_in =
            inner(&uid_map, uid).with_context(|| format!("init's uid {uid} is not mapped"))?;
        let gid_in =
            inner(&gid_map, gid).with_context(|| format!("init's gid {gid} is not mapped"))?;
        let overflow = 65534;
        let args = [
            REQUEST_KEY.to_string(),
            "create".to_string(),
            req.target.to_string(),
            inner(&uid_map, req.uid).unwrap_or(overflow).to_string(),
            inner(&gid_map, req.gid).unwrap_or(overflow).to_string(),
            "0".to_string(),
            "0".to_string(),
            "0".to_string(),
        ];
        let cstrings = |v: &[String]| -> Result<Vec<CString>> {
            v.iter()
                .map(|s| CString::new(s.as_str()).context("NUL in a helper argument"))
                .collect()
        };
        Ok(Self {
            auth: req.auth,
            session: CString::new(format!("_req.{}", req.target))
                .context("session keyring name")?,
            flags,
            uid: uid_in,
            gid: gid_in,
            argv: cstrings(&args)?,
            envp: cstrings(&[
                "HOME=/".to_string(),
                "PATH=/sbin:/bin:/usr/sbin:/usr/bin".to_string(),
            ])?,
        })
    }

    /// Forks the helper; its pid.
    fn spawn(&self, pidfd: RawFd) -> Result<i32> {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: keyd is single-threaded; the child only makes raw system calls on
        // memory prepared before the fork, then execs or exits.
        match unsafe { libc::fork() } {
            -1 => Err(errno_err("fork (a helper)", last_errno())),
            0 => unsafe { self.child(pidfd, &argv, &envp) },
            pid => Ok(pid),
        }
    }

    /// In the forked child: enter the container, become its init's ids, exec.
    ///
    /// # Safety
    ///
    /// Only in the child of a fork of a single-threaded process; `argv` and `envp`
    /// are NULL-terminated arrays of the strings in `self`.
    unsafe fn child(
        &self,
        pidfd: RawFd,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
    ) -> ! {
        // Raw libc calls only: nothing here may allocate or lock.
        unsafe {
            // A session keyring with only this request's authorisation key in it,
            // made in the thread keyring (which exec discards) and joined by name.
            let keyring = libc::syscall(
                libc::SYS_add_key,
                c"keyring".as_ptr(),
                self.session.as_ptr(),
                std::ptr::null::<u8>(),
                0,
                KEY_SPEC_THREAD_KEYRING,
            );
            if keyring < 0
                || libc::syscall(libc::SYS_keyctl, KEYCTL_LINK, self.auth, keyring) != 0
                || libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_SETPERM,
                    keyring,
                    KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_SEARCH,
                ) != 0
                || libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_JOIN_SESSION_KEYRING,
                    self.session.as_ptr(),
                ) != keyring
            {
                die(b"kc keyd: helper: making its session keyring failed\n");
            }
            if self.flags != 0 && libc::setns(pidfd, self.flags) != 0 {
                die(b"kc keyd: helper: setns() into the container's init failed\n");
            }
            // Refused where the container's user namespace denies setgroups: then
            // the helper keeps keyd's (already mapped) supplementary groups.
            let _ = libc::setgroups(0, std::ptr::null());
            if libc::setresgid(self.gid, self.gid, self.gid) != 0 {
                die(b"kc keyd: helper: setresgid() to the init's gid failed\n");
            }
            if libc::setresuid(self.uid, self.uid, self.uid) != 0 {
                die(b"kc keyd: helper: setresuid() to the init's uid failed\n");
            }
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            die(b"kc keyd: helper: exec /sbin/request-key in the container failed\n")
        }
    }
}

/// Writes `msg` to stderr and exits 127 (a helper that could not run).
unsafe fn die(msg: &[u8]) -> ! {
    // SAFETY: a valid buffer; _exit never returns.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// The real id on a "Uid:" or "Gid:" line of /proc/PID/status.
fn status_id(status: &str, field: &str) -> Result<u32> {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} line in /proc/PID/status"))?;
    let Some(id) = line.split_whitespace().nth(1) else {
        bail!("malformed {field} line in /proc/PID/status: {line:?}");
    };
    id.parse()
        .with_context(|| format!("malformed {field} line: {line:?}"))
}

/// An id as seen from keyd's user namespace, mapped into the namespace whose
/// `uid_map`/`gid_map` (read from keyd's) is `map`; None if unmapped.
fn map_in(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut f = line.split_whitespace().map(str::parse::<u64>);
        let (inside, outside, count) = (f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?);
        let id = u64::from(id);
        (id >= outside && id < outside + count).then(|| (inside + id - outside) as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps() {
        let map = "         0     100000      65536\n";
        assert_eq!(map_in(map, 100000), Some(0));
        assert_eq!(map_in(map, 101000), Some(1000));
        assert_eq!(map_in(map, 99999), None);
        assert_eq!(map_in("0 0 4294967295\n", 7), Some(7));
    }

    #[test]
    fn status_ids() {
        let s = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n";
        assert_eq!(status_id(s, "Uid:").unwrap(), 1000);
        assert_eq!(status_id(s, "Gid:").unwrap(), 100);
        assert!(status_id("Name:\tx\n", "Uid:").is_err());
    }
}
