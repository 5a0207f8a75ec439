//! `kc supervise` and `kc run --supervise`: the seed's "monitor and override EPERM
//! returns for mount and other privileged operations within the container", built from
//! mainline mechanisms (seccomp_unotify(2), pidfds, setns(2), the new mount API,
//! openat2(2)). What is allowed is `policy.rs`; this module carries it out.
//!
//! **How.** kc starts the init with a socketpair. Before exec'ing CMD the init sets
//! no_new_privs and installs a seccomp filter with `SECCOMP_FILTER_FLAG_NEW_LISTENER`
//! that routes `mount`, `fsopen`, `fsmount`, `move_mount`, `mknod` and `mknodat`
//! (x86_64 ABI) to the listener, sends the listener to kc (`SCM_RIGHTS`) and closes its
//! copy. The filter is inherited by every member; kc serves the listener until the
//! container is dead. For each request kc opens a pidfd and `/proc/PID/{mem,root,cwd}`
//! of the member, checks `SECCOMP_IOCTL_NOTIF_ID_VALID` (the pid still is that member),
//! reads the string arguments once through `/proc/PID/mem` into its own memory, checks
//! ID_VALID again, and decides on that copy. Nothing is ever re-read from the member and
//! a routed mount is never answered with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`, so a member
//! thread that rewrites its buffers after the notification changes nothing: kc mounts
//! what it read and checked, or nothing. Only a mknod of a FIFO, socket or regular file
//! is continued (nothing privileged: the kernel re-checks it as the member).
//!
//! An allowed mount is made by a short-lived helper (a fork of kc) that `setns()`es
//! through the member's pidfd into its mount namespace, and its user namespace (so the
//! superblock belongs to the container), network namespace (sysfs) and PID namespace
//! (proc; the helper forks once more to be in it) where they differ from kc's, creates
//! the filesystem (`fsopen`/`fsconfig`/`fsmount`) and moves it onto the target, which kc
//! resolved beforehand in the member's root (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`
//! from `/proc/PID/root`; a relative path `RESOLVE_BENEATH` its cwd or dirfd). A bind
//! source is the host path from `--allow-bind`, opened by kc on the host
//! (`open_tree(OPEN_TREE_CLONE)`, not recursive). An allowed device node is made by a
//! helper that takes the member's fsuid, fsgid and umask, so the directory's permissions
//! apply as for the member. A helper that does not finish within [`HELPER_LIMIT`] is
//! killed and the request fails with EPERM. Helpers make themselves non-dumpable before
//! entering anything of the member's, so that a member, even root in its own user
//! namespace, can neither ptrace one nor reach the fds it inherited from kc (the
//! listener, the cfd, the member's pidfd) through `/proc`.
//!
//! **Who holds the listener and what it allows.** Only this kc process: the init closes
//! its copy before exec, and the fd is close-on-exec in kc, so no member and no program
//! kc runs inherits it. Holding it lets its holder answer the members' routed calls
//! with any result, and, with kc's privileges (root on the host), act for them: that is
//! why kc acts only on the policy's decisions and only inside the member's own root and
//! namespaces. The filter is not a sandbox: a call it does not route (another ABI,
//! `open_tree`, `fsconfig` on an fd obtained elsewhere) meets the kernel's own checks,
//! which a member that lacks the privilege fails. If the member dies or is interrupted
//! while its request is pending, ID_VALID or the answer fails with ENOENT and kc drops
//! the request; if kc dies, the kernel answers the members' routed calls with ENOSYS.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::policy::{Decision, Fs, Policy, Request};
use crate::seccomp::{self, Answer, Notif};
use crate::util::{
    errno_err, exit_code, inherited_cfd, last_errno, reap, shell_status, wait_container_opts, Argv,
    KC_FD,
};
use crate::{calls, mount_calls, rootfs};

/// How long a helper may take to carry out one request.
pub const HELPER_LIMIT: Duration = Duration::from_secs(5);

/// `kc supervise [--fd N] [--allow-bind HOSTPATH]... [--rootfs DIR] [-v] -- CMD...`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container fd (default: $KC_FD, set by `kc create`).
    #[arg(long, value_name = "N")]
    pub fd: Option<RawFd>,
    #[command(flatten)]
    pub opts: Opts,
    /// Assemble the container's root from DIR first (see `kc run --help`).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// The init's command.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// The supervisor's options, shared with `kc run --supervise`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Opts {
    /// A host path a member may bind mount (mount(HOSTPATH, TARGET, NULL, MS_BIND)); repeatable.
    #[arg(long = "allow-bind", value_name = "HOSTPATH")]
    pub allow_bind: Vec<PathBuf>,
    /// Print every request and its answer on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `kc supervise`: starts CMD as the init of the inherited container under supervision,
/// serves its members' requests until the container is dead, prints init's status as a
/// shell would and exits with it.
pub fn main(args: Args) -> Result<u8> {
    let cfd = inherited_cfd(args.fd)?;
    if let Some(dir) = &args.rootfs {
        rootfs::assemble_root(cfd, dir)?;
    }
    let argv = Argv::new(&args.cmd)?;
    let mut sup = Supervisor::start(cfd, &argv, &args.opts)?;
    ignore_terminal_signals();
    sup.serve(cfd)?;
    let (status, _) = wait_container_opts(cfd, 0)
        .map_err(|e| errno_err(format!("container_wait(fd {})", cfd.as_raw_fd()), e))?;
    reap(sup.init)?;
    eprintln!("kc supervise: {}", sup.counts.summary());
    println!("{}", shell_status(status));
    Ok(exit_code(status))
}

/// Like system(3): the terminal's signals are for the container.
pub fn ignore_terminal_signals() {
    // SAFETY: ignoring SIGINT and SIGQUIT in this process only.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

/// What the supervisor did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub allowed: u64,
    pub denied: u64,
    pub continued: u64,
    pub dropped: u64,
}

impl Counts {
    pub fn summary(&self) -> String {
        format!(
            "{} allowed, {} denied, {} continued, {} dropped",
            self.allowed, self.denied, self.continued, self.dropped
        )
    }
}

/// The listener and the policy of one container.
pub struct Supervisor {
    pub init: libc::pid_t,
    listener: OwnedFd,
    policy: Policy,
    verbose: bool,
    pub counts: Counts,
}

impl Supervisor {
    /// Forks the init of `cfd`: it installs the filter, passes the listener back and
    /// execs `argv`. kc must be single-threaded.
    pub fn start(cfd: BorrowedFd<'_>, argv: &Argv, opts: &Opts) -> Result<Self> {
        for p in &opts.allow_bind {
            std::fs::metadata(p)
                .with_context(|| format!("--allow-bind {}: cannot use it", p.display()))?;
        }
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| errno_err("socketpair(AF_UNIX) for the seccomp listener", e))?;
        let prog = seccomp::filter();
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // SAFETY: kc is single-threaded; the child installs the filter and execs or exits.
        let pid = match unsafe { calls::fork_into_container(cfd.as_raw_fd()) } {
            Ok(0) => {
                drop(ours);
                std::env::remove_var(KC_FD);
                match seccomp::install(&prog) {
                    Ok(listener) => {
                        if send_fd(&theirs, &listener).is_err() {
                            crate::util::write_raw(
                                2,
                                b"kc: the init could not pass its seccomp listener to kc\n",
                            );
                            // SAFETY: leaves the forked child.
                            unsafe { libc::_exit(127) }
                        }
                    }
                    Err((call, e)) => {
                        let msg = format!(
                            "kc: the init could not install its seccomp filter: {call}: {}\n",
                            crate::util::errno_text(e)
                        );
                        crate::util::write_raw(2, msg.as_bytes());
                        // SAFETY: leaves the forked child.
                        unsafe { libc::_exit(127) }
                    }
                }
                drop(theirs);
                argv.exec()
            }
            Ok(pid) => pid,
            Err(e) => {
                return Err(errno_err(
                    format!("fork_into_container(fd {})", cfd.as_raw_fd()),
                    e,
                ))
            }
        };
        drop(theirs);
        let listener = recv_fd(&ours).with_context(|| {
            format!(
                "receiving the seccomp listener from the init (pid {pid}); see its message above"
            )
        })?;
        Ok(Self {
            init: pid,
            listener,
            policy: Policy {
                allow_bind: opts.allow_bind.clone(),
            },
            verbose: opts.verbose,
            counts: Counts::default(),
        })
    }

    /// Serves requests until the container `cfd` is dead.
    pub fn serve(&mut self, cfd: BorrowedFd<'_>) -> Result<()> {
        loop {
            let mut fds = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&cfd, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(errno_err("poll(seccomp listener, cfd)", e)),
            }
            let (l, c) = (fds[0].revents(), fds[1].revents());
            if l.contains(PollFlags::IN) {
                match seccomp::recv(self.listener.as_fd()) {
                    Ok(n) => self.handle(n),
                    // The member went away before we read its request.
                    Err(Errno::NOENT) | Err(Errno::INTR) => {}
                    Err(e) => {
                        return Err(errno_err("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", e));
                    }
                }
                continue;
            }
            if !c.is_empty() {
                return Ok(());
            }
            if l.contains(PollFlags::HUP) {
                // No member is left that the filter applies to; wait for the death.
                let mut fds = [PollFd::new(&cfd, PollFlags::IN)];
                let _ = rustix::event::poll(&mut fds, None);
                return Ok(());
            }
        }
    }

    fn log(&self, msg: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("kc supervise: {}", msg());
        }
    }

    /// One request, from notification to answer.
    fn handle(&mut self, n: Notif) {
        let answer = match self.decide_and_act(&n) {
            Ok(Some(a)) => a,
            Ok(None) => {
                self.counts.dropped += 1;
                self.log(|| format!("pid {}: request {} gone, dropped", n.pid, n.id));
                return;
            }
            Err(e) => {
                self.log(|| format!("pid {}: {e:#}", n.pid));
                Answer::Error(Errno::PERM)
            }
        };
        // Counted by what the member got: a request whose member died (or was
        // interrupted) before the answer is dropped, whatever kc decided for it.
        if seccomp::send(self.listener.as_fd(), n.id, answer).is_err() {
            // ENOENT: the member died or was interrupted meanwhile.
            self.counts.dropped += 1;
            self.log(|| format!("pid {}: request {} gone before the answer", n.pid, n.id));
            return;
        }
        match answer {
            Answer::Value(_) => self.counts.allowed += 1,
            Answer::Continue => self.counts.continued += 1,
            Answer::Error(_) => self.counts.denied += 1,
        }
    }

    /// The answer for `n`, having carried it out; None when the request is gone.
    fn decide_and_act(&mut self, n: &Notif) -> Result<Option<Answer>> {
        let listener = self.listener.as_fd();
        let member = match Member::open(n.pid) {
            Ok(m) => m,
            Err(_) if !seccomp::id_valid(listener, n.id) => return Ok(None),
            Err(e) => return Err(e),
        };
        // The pid is the member that asked (not a recycled one) only if the request
        // is still pending now that everything is open.
        if !seccomp::id_valid(listener, n.id) {
            return Ok(None);
        }
        let req = match member.read_request(n) {
            Ok(r) => r,
            Err(_) if !seccomp::id_valid(listener, n.id) => return Ok(None),
            Err(e) => return Ok(Some(Answer::Error(e))),
        };
        // Decide on our copy, and only for a request that is still pending.
        if !seccomp::id_valid(listener, n.id) {
            return Ok(None);
        }
        let decision = self.policy.decide(&req);
        self.log(|| {
            format!(
                "pid {}: {} -> {}",
                n.pid,
                show(&req),
                show_decision(&decision)
            )
        });
        let answer = match decision {
            Decision::Deny(_) => Answer::Error(Errno::PERM),
            Decision::Continue => Answer::Continue,
            Decision::NewFs { .. } | Decision::Bind { .. } | Decision::Mknod { .. } => match member
                .carry_out(&decision)
            {
                Ok(()) => Answer::Value(0),
                Err(e) => {
                    self.log(|| format!("pid {}: failed: {}", n.pid, crate::util::errno_text(e)));
                    Answer::Error(e)
                }
            },
        };
        Ok(Some(answer))
    }
}

fn show(req: &Request) -> String {
    match req {
        Request::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => format!("mount({source:?}, {target:?}, {fstype:?}, {flags:#x}, {data:?})"),
        Request::Mknod {
            dirfd,
            path,
            mode,
            dev,
        } => format!("mknodat({dirfd:?}, {path:?}, {mode:#o}, {dev:#x})"),
        Request::Other(call) => format!("{call}()"),
    }
}

fn show_decision(d: &Decision) -> String {
    match d {
        Decision::Deny(why) => format!("EPERM ({why})"),
        Decision::Continue => "continue".to_string(),
        _ => "allowed".to_string(),
    }
}

/// What kc holds of a requesting member: opened, then validated with ID_VALID.
struct Member {
    pid: u32,
    pidfd: OwnedFd,
    mem: OwnedFd,
    root: OwnedFd,
    cwd: OwnedFd,
}

impl Member {
    fn open(pid: u32) -> Result<Self> {
        let p = rustix::process::Pid::from_raw(pid as i32).context("pid 0 in a notification")?;
        // PIDFD_THREAD (O_EXCL): the notification names the thread that made the call.
        let thread = rustix::process::PidfdFlags::from_bits_retain(libc::O_EXCL as _);
        let pidfd = rustix::process::pidfd_open(p, thread)
            .map_err(|e| errno_err(format!("pidfd_open({pid}, PIDFD_THREAD)"), e))?;
        let open = |what: &str, flags: OFlags| {
            rustix::fs::open(format!("/proc/{pid}/{what}"), flags, Mode::empty())
                .map_err(|e| errno_err(format!("open(/proc/{pid}/{what})"), e))
        };
        Ok(Self {
            pid,
            pidfd,
            mem: open("mem", OFlags::RDONLY | OFlags::CLOEXEC)?,
            root: open("root", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC)?,
            cwd: open("cwd", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC)?,
        })
    }

    /// The request, its strings copied out of the member's memory.
    fn read_request(&self, n: &Notif) -> Result<Request, Errno> {
        let s = |i: usize| seccomp::read_string(&self.mem, n.args[i]);
        let need = |v: Option<CString>| v.ok_or(Errno::FAULT);
        Ok(match n.nr {
            seccomp::SYS_MOUNT => Request::Mount {
                source: s(0)?,
                target: need(s(1)?)?,
                fstype: s(2)?,
                flags: n.args[3],
                data: s(4)?,
            },
            seccomp::SYS_MKNOD => Request::Mknod {
                dirfd: None,
                path: need(s(0)?)?,
                mode: n.args[1] as u32,
                dev: n.args[2] as u32,
            },
            seccomp::SYS_MKNODAT => Request::Mknod {
                dirfd: match n.args[0] as i32 {
                    libc::AT_FDCWD => None,
                    fd => Some(fd),
                },
                path: need(s(1)?)?,
                mode: n.args[2] as u32,
                dev: n.args[3] as u32,
            },
            seccomp::SYS_FSOPEN => Request::Other("fsopen"),
            seccomp::SYS_FSMOUNT => Request::Other("fsmount"),
            seccomp::SYS_MOVE_MOUNT => Request::Other("move_mount"),
            _ => Request::Other("an unexpected system call"),
        })
    }

    /// The directory a relative path of the member starts from: its cwd or, for
    /// mknodat, its dirfd (taken with pidfd_getfd).
    fn base(&self, dirfd: Option<i32>) -> Result<OwnedFd, Errno> {
        match dirfd {
            None => rustix::io::fcntl_dupfd_cloexec(&self.cwd, 0),
            Some(fd) => {
                // SAFETY: integer arguments; a new fd on success.
                let r =
                    unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.pidfd.as_raw_fd(), fd, 0) };
                if r < 0 {
                    return Err(last_errno());
                }
                // SAFETY: pidfd_getfd returned a new fd (O_CLOEXEC) nothing else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
            }
        }
    }

    /// Resolves `path` as the member would, without leaving what it can reach.
    fn resolve(&self, dirfd: Option<i32>, path: &CStr, flags: OFlags) -> Result<OwnedFd, Errno> {
        let bytes = path.to_bytes();
        let (base, rel, how) = if let Some(rel) = bytes.strip_prefix(b"/") {
            (
                rustix::io::fcntl_dupfd_cloexec(&self.root, 0)?,
                rel,
                ResolveFlags::IN_ROOT,
            )
        } else {
            (self.base(dirfd)?, bytes, ResolveFlags::BENEATH)
        };
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let rel = CString::new(rel).map_err(|_| Errno::INVAL)?;
        rustix::fs::openat2(
            &base,
            rel.as_c_str(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            how | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Carries out an allowed decision; the errno the member gets otherwise.
    fn carry_out(&self, d: &Decision) -> Result<(), Errno> {
        match d {
            Decision::NewFs {
                fs,
                options,
                attrs,
                target,
            } => {
                self.require_own_mount_ns()?;
                let target = self.resolve(None, target, OFlags::PATH)?;
                let mut flags = libc::CLONE_NEWNS | self.differing(libc::CLONE_NEWUSER, "user")?;
                if *fs == Fs::Sysfs {
                    flags |= self.differing(libc::CLONE_NEWNET, "net")?;
                }
                if *fs == Fs::Proc {
                    flags |= self.differing(libc::CLONE_NEWPID, "pid")?;
                }
                self.helper(|| {
                    setns(&self.pidfd, flags)?;
                    in_pid_ns(flags, || new_fs(*fs, options, *attrs, &target))
                })
            }
            Decision::Bind {
                host,
                attrs,
                target,
            } => {
                self.require_own_mount_ns()?;
                let target = self.resolve(None, target, OFlags::PATH)?;
                let hostc =
                    CString::new(host.as_os_str().as_encoded_bytes()).map_err(|_| Errno::INVAL)?;
                let tree =
                    mount_calls::open_tree(libc::AT_FDCWD, &hostc, mount_calls::OPEN_TREE_CLONE)?;
                if *attrs != 0 {
                    set_attrs(&tree, *attrs)?;
                }
                self.helper(|| {
                    setns(&self.pidfd, libc::CLONE_NEWNS)?;
                    move_onto(&tree, &target)
                })
            }
            Decision::Mknod {
                dirfd,
                path,
                perm,
                major,
                minor,
            } => {
                let (parent, name) = split_parent(path.to_bytes())?;
                let parent = self.resolve(
                    *dirfd,
                    &CString::new(parent).map_err(|_| Errno::INVAL)?,
                    OFlags::PATH | OFlags::DIRECTORY,
                )?;
                let name = CString::new(name).map_err(|_| Errno::INVAL)?;
                let (fsuid, fsgid, umask) = self.ids()?;
                let dev = rustix::fs::makedev(*major, *minor);
                self.helper(|| {
                    // As the member: its ids and umask decide, CAP_MKNOD makes the node.
                    // SAFETY: credential calls on this (forked, single-threaded) helper.
                    unsafe {
                        libc::setfsgid(fsgid);
                        libc::setfsuid(fsuid);
                    }
                    let mode = perm & !umask;
                    rustix::fs::mknodat(
                        &parent,
                        name.as_c_str(),
                        rustix::fs::FileType::CharacterDevice,
                        Mode::from_raw_mode(mode),
                        dev,
                    )
                })
            }
            Decision::Continue | Decision::Deny(_) => Err(Errno::PERM),
        }
    }

    /// EPERM when the member shares kc's mount namespace: its mounts would be the host's.
    fn require_own_mount_ns(&self) -> Result<(), Errno> {
        if self.differing(libc::CLONE_NEWNS, "mnt")? == 0 {
            return Err(Errno::PERM);
        }
        Ok(())
    }

    /// `flag` if the member's namespace `ns` is not kc's, else 0.
    fn differing(&self, flag: libc::c_int, ns: &str) -> Result<libc::c_int, Errno> {
        let ino = |path: String| -> Result<u64, Errno> {
            rustix::fs::stat(path.as_str()).map(|s| s.st_ino)
        };
        let mine = ino(format!("/proc/self/ns/{ns}"))?;
        let theirs = ino(format!("/proc/{}/ns/{ns}", self.pid))?;
        Ok(if mine == theirs { 0 } else { flag })
    }

    /// The member's fsuid, fsgid (as kc sees them) and umask.
    fn ids(&self) -> Result<(u32, u32, u32), Errno> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|_| Errno::SRCH)?;
        let field = |name: &str, nth: usize, radix: u32| -> Result<u32, Errno> {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or(Errno::SRCH)?;
            let v = line.split_whitespace().nth(nth).ok_or(Errno::SRCH)?;
            u32::from_str_radix(v, radix).map_err(|_| Errno::SRCH)
        };
        // "Uid:\treal\teffective\tsaved\tfs"
        Ok((
            field("Uid:", 4, 10)?,
            field("Gid:", 4, 10)?,
            field("Umask:", 1, 8)?,
        ))
    }

    /// Runs `work` in a forked helper, killed after [`HELPER_LIMIT`]; its errno.
    fn helper(&self, work: impl FnOnce() -> Result<(), Errno>) -> Result<(), Errno> {
        let pid = fork_run(work)?;
        wait_helper(pid)
    }
}

/// Forks a child that runs `work` and exits with 0 or its errno.
fn fork_run(work: impl FnOnce() -> Result<(), Errno>) -> Result<libc::pid_t, Errno> {
    // SAFETY: kc is single-threaded, so the child may run any code; it only _exits.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno()),
        0 => {
            // Before it enters any of the member's namespaces: a member (even root in
            // its own user namespace) may not ptrace the helper nor reach its fds (the
            // listener, the cfd, host mounts) through /proc.
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
                // SAFETY: leaves the helper without running kc's destructors.
                unsafe { libc::_exit(libc::EPERM) }
            }
            let code = match work() {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().clamp(1, 255),
            };
            // SAFETY: leaves the helper without running kc's destructors.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// Waits at most HELPER_LIMIT for a helper; Ok for exit 0, its errno otherwise.
fn wait_helper(pid: libc::pid_t) -> Result<(), Errno> {
    let deadline = Instant::now() + HELPER_LIMIT;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer; pid is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
                (true, 0) => Ok(()),
                (true, e) => Err(Errno::from_raw_os_error(e)),
                _ => Err(Errno::PERM),
            };
        }
        if r < 0 && last_errno() != Errno::INTR {
            return Err(Errno::PERM);
        }
        if Instant::now() >= deadline {
            // SAFETY: signals and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(Errno::PERM);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// In a helper: setns(pidfd, flags).
fn setns(pidfd: &OwnedFd, flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Runs `work` in a child when the helper entered another PID namespace (setns only
/// changes where its children go): proc shows the namespace of its creator.
fn in_pid_ns(flags: libc::c_int, work: impl FnOnce() -> Result<(), Errno>) -> Result<(), Errno> {
    if flags & libc::CLONE_NEWPID == 0 {
        return work();
    }
    let pid = fork_run(work)?;
    wait_helper(pid)
}

/// fsopen, the options, FSCONFIG_CMD_CREATE, fsmount with `attrs`, move onto `target`.
fn new_fs(
    fs: Fs,
    options: &[(CString, CString)],
    attrs: u64,
    target: &OwnedFd,
) -> Result<(), Errno> {
    let fsfd = mount_calls::fsopen(fs.name())?;
    for (k, v) in options {
        mount_calls::fsconfig(
            fsfd.as_raw_fd(),
            mount_calls::FSCONFIG_SET_STRING,
            Some(k),
            Some(v),
            0,
        )?;
    }
    mount_calls::fsconfig(
        fsfd.as_raw_fd(),
        mount_calls::FSCONFIG_CMD_CREATE,
        None,
        None,
        0,
    )?;
    // SAFETY: integer arguments; a new fd on success.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fsfd.as_raw_fd(),
            mount_calls::FSMOUNT_CLOEXEC,
            attrs,
        )
    };
    if m < 0 {
        return Err(last_errno());
    }
    // SAFETY: fsmount returned a new fd nothing else owns.
    let mfd = unsafe { OwnedFd::from_raw_fd(m as RawFd) };
    move_onto(&mfd, target)
}

/// move_mount(mfd, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH).
fn move_onto(mfd: &OwnedFd, target: &OwnedFd) -> Result<(), Errno> {
    mount_calls::move_mount(
        mfd.as_raw_fd(),
        c"",
        target.as_raw_fd(),
        c"",
        mount_calls::MOVE_MOUNT_F_EMPTY_PATH | mount_calls::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// mount_setattr(tree, "", AT_EMPTY_PATH, {attr_set: attrs}).
fn set_attrs(tree: &OwnedFd, attrs: u64) -> Result<(), Errno> {
    let attr = mount_calls::MountAttr {
        attr_set: attrs,
        ..Default::default()
    };
    // SAFETY: attr is a valid struct mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const mount_calls::MountAttr,
            std::mem::size_of::<mount_calls::MountAttr>(),
        )
    };
    if r != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// "a/b/c" into ("a/b", "c"); "/c" into ("/", "c"); "c" into (".", "c"). EINVAL for a
/// last component that is empty, "." or "..".
fn split_parent(path: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Errno> {
    let trimmed = path;
    let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/".to_vec(), trimmed[1..].to_vec()),
        Some(i) => (trimmed[..i].to_vec(), trimmed[i + 1..].to_vec()),
        None => (b".".to_vec(), trimmed.to_vec()),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Errno::INVAL);
    }
    Ok((parent, name))
}

/// Sends `fd` over `sock` (SCM_RIGHTS), one byte of data.
fn send_fd(sock: &OwnedFd, fd: &OwnedFd) -> Result<(), Errno> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Errno::NOBUFS);
    }
    sendmsg(
        sock,
        &[std::io::IoSlice::new(b"L")],
        &mut cmsg,
        SendFlags::empty(),
    )
    .map(drop)
}

/// Receives the fd [`send_fd`] sent.
fn recv_fd(sock: &OwnedFd) -> Result<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| errno_err("recvmsg(SCM_RIGHTS)", e))?;
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    if got.bytes == 0 {
        bail!("the init ended before passing it");
    }
    bail!("recvmsg: no SCM_RIGHTS fd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        let s = |p: &str| {
            split_parent(p.as_bytes())
                .map(|(a, b)| (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap()))
        };
        assert_eq!(s("/dev/null"), Ok(("/dev".into(), "null".into())));
        assert_eq!(s("/null"), Ok(("/".into(), "null".into())));
        assert_eq!(s("null"), Ok((".".into(), "null".into())));
        assert_eq!(s("a/b/null"), Ok(("a/b".into(), "null".into())));
        assert_eq!(s("/dev/"), Err(Errno::INVAL));
        assert_eq!(s("/dev/.."), Err(Errno::INVAL));
    }
}
