//! One random operation per call: the five system calls, the cfd ioctls, the keyctl and
//! mount additions, with boundary arguments and mixed fds. Pointers given to the kernel
//! are either our own scratch buffer (big enough for any size the call may use) or
//! addresses that are never mapped, so a bad argument cannot corrupt the fuzzer.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::ioctl::{self, CloneArgs};
use crate::uapi::*;
use crate::{calls, keyctl, Held, Pool, Rng};

/// Most containers held at once (more are closed first).
const MAX_HELD: usize = 48;
/// Addresses that are never mapped in the guest's user space.
const BAD_POINTERS: &[u64] = &[8, 0xffff_ffff_ffff_f000, 0x8000_0000_0000_0000, 0xdead_0000];

/// Fds of other kinds to mix in: /dev/null, a pipe, namespace fds, a cgroup directory.
pub fn other_fds() -> Vec<OwnedFd> {
    let mut out = Vec::new();
    let o = |p: &str, f: rustix::fs::OFlags| {
        rustix::fs::open(
            p,
            f | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok()
    };
    use rustix::fs::OFlags as F;
    out.extend(o("/dev/null", F::RDWR));
    for ns in ["uts", "ipc", "net", "pid", "cgroup", "time", "mnt", "user"] {
        out.extend(o(&format!("/proc/self/ns/{ns}"), F::RDONLY));
    }
    out.extend(o("/sys/fs/cgroup", F::DIRECTORY));
    out.extend(o("/", F::PATH));
    if let Ok((r, w)) = rustix::pipe::pipe() {
        out.push(r);
        out.push(w);
    }
    out
}

/// A name: valid ones mostly, and the boundaries (empty, 23 and 24 bytes, '/').
fn name(rng: &mut Rng) -> CString {
    let s: String = match rng.below(6) {
        0 => String::new(),
        1 => "x".repeat(23),
        2 => "x".repeat(24 + rng.below(8) as usize),
        3 => "a/b".into(),
        _ => format!("fz{}", rng.below(1000)),
    };
    CString::new(s).unwrap_or_default()
}

fn flags(rng: &mut Rng) -> u32 {
    const VALID: &[u32] = &[
        CONTAINER_NEW_FS_NS,
        CONTAINER_NEW_EMPTY_FS_NS,
        CONTAINER_NEW_CGROUP_NS,
        CONTAINER_NEW_UTS_NS,
        CONTAINER_NEW_IPC_NS,
        CONTAINER_NEW_USER_NS,
        CONTAINER_NEW_PID_NS,
        CONTAINER_NEW_NET_NS,
        CONTAINER_KILL_ON_CLOSE,
    ];
    if rng.one_in(8) {
        return rng.boundary() as u32;
    }
    let mut f = CONTAINER_FD_CLOEXEC;
    for _ in 0..rng.below(4) {
        // A network namespace is slow to make and to tear down: rarely.
        let v = *rng.pick(VALID);
        if v != CONTAINER_NEW_NET_NS || rng.one_in(8) {
            f |= v;
        }
    }
    f
}

/// What an init (or a member it forks) does before it exits; bounded in time.
fn member_life(seed: u64, depth: u32) -> ! {
    let mut rng = Rng::new(seed);
    match rng.below(6) {
        0 => {}
        1 | 2 => {
            for i in 0..rng.below(4) {
                // SAFETY: the fuzzer's children are single-threaded; the grandchild
                // runs member_life and never returns.
                if unsafe { libc::fork() } == 0 {
                    member_life(seed.wrapping_add(i + 1) ^ 0x55, depth + 1);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(rng.below(20)));
        }
        3 => {
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            // SAFETY: a NUL-terminated argv of C strings; returns only on failure.
            unsafe { libc::execv(c"/bin/true".as_ptr(), argv.as_ptr()) };
        }
        4 if depth < 3 => {
            // A nested container, started by this member.
            if let Ok(cfd) = calls::container_create(c"nested", flags(&mut rng)) {
                // SAFETY: as above; the nested init runs member_life.
                if let Ok(0) = unsafe { calls::fork_into_container(cfd.as_raw_fd()) } {
                    member_life(seed ^ 0xa5a5, depth + 1);
                }
            }
        }
        _ => std::thread::sleep(std::time::Duration::from_millis(rng.below(10))),
    }
    // SAFETY: ends the member without unwinding into the fuzzer's frames.
    unsafe { libc::_exit((seed & 0x7f) as i32) }
}

/// One random call.
pub fn one(rng: &mut Rng, pool: &mut Pool) {
    match rng.below(20) {
        0..=2 => create(rng, pool),
        3..=4 => start(rng, pool),
        5 => {
            let fd = pool.any_fd(rng);
            let sig = *rng.pick(&[
                0,
                libc::SIGKILL,
                libc::SIGTERM,
                libc::SIGCONT,
                libc::SIGSTOP,
                65,
                -1,
            ]);
            let _ = calls::container_kill(fd, rng.below(3) as i32, sig);
        }
        6 => {
            let fd = pool.any_fd(rng);
            let mut status = 0;
            let opts = if rng.one_in(5) {
                rng.boundary() as u32
            } else {
                libc::WNOHANG as u32
            };
            // Blocking waits only with WNOHANG or invalid options.
            let opts = if opts & libc::WNOHANG as u32 == 0 && opts != 0 {
                opts
            } else {
                opts | libc::WNOHANG as u32
            };
            let _ = calls::container_wait(fd, Some(&mut status), opts, None);
        }
        7 => {
            let fd = pool.any_fd(rng);
            let domain = *rng.pick(&[
                libc::AF_UNIX,
                libc::AF_INET,
                libc::AF_INET6,
                libc::AF_NETLINK,
                0,
                200,
            ]);
            let ty = *rng.pick(&[
                libc::SOCK_STREAM,
                libc::SOCK_DGRAM,
                libc::SOCK_RAW,
                libc::SOCK_CLOEXEC | libc::SOCK_DGRAM,
                -1,
            ]);
            // The socket, if any, is an OwnedFd and closed here.
            let _ = calls::container_socket(fd, domain, ty, rng.below(3) as i32);
        }
        8..=11 => ioctls(rng, pool),
        12 => close(rng, pool),
        13 => {
            // A second fd of a container (as if passed over SCM_RIGHTS).
            if let Some(h) = pool
                .containers
                .get(rng.below(pool.containers.len() as u64) as usize)
            {
                if let Ok(dup) = h.cfd.try_clone() {
                    if pool.containers.len() < MAX_HELD {
                        pool.containers.push(Held {
                            cfd: dup,
                            init: None,
                        });
                    }
                }
            }
        }
        14 => keys(rng, pool),
        15 => dirfd(rng, pool),
        16 => mount(rng, pool),
        _ => {
            let fd = pool.any_fd(rng);
            let mut info = ioctl::Info {
                mask: rng.boundary(),
                ..ioctl::Info::default()
            };
            // SAFETY: our own buffer of the struct's size.
            let _ = unsafe {
                ioctl::ioctl(borrow(fd), CONTAINER_GET_INFO, &mut info as *mut _ as usize)
            };
        }
    }
}

/// A borrowed fd for a raw number that may be closed or invalid: the kernel checks it.
fn borrow<'a>(fd: RawFd) -> std::os::fd::BorrowedFd<'a> {
    // SAFETY: only handed to system calls, which check the number themselves; -1 is
    // not a valid BorrowedFd, so it becomes a number that is never open.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(if fd < 0 { i32::MAX } else { fd }) }
}

fn create(rng: &mut Rng, pool: &mut Pool) {
    if pool.containers.len() >= MAX_HELD {
        close(rng, pool);
        return;
    }
    let n = name(rng);
    let r = if rng.one_in(10) {
        // Non-zero spares (EINVAL), or a name pointer that is NULL or never mapped.
        let ptr = if rng.one_in(2) {
            n.as_ptr()
        } else {
            *rng.pick(&[0u64, 8, 0xffff_ffff_ffff_f000]) as *const libc::c_char
        };
        let spare = [
            rng.boundary() as libc::c_ulong,
            0,
            rng.below(2) as libc::c_ulong,
        ];
        calls::container_create_raw(ptr, flags(rng), spare)
    } else {
        calls::container_create(&n, flags(rng))
    };
    if let Ok(cfd) = r {
        pool.containers.push(Held { cfd, init: None });
    }
}

fn start(rng: &mut Rng, pool: &mut Pool) {
    if pool.containers.is_empty() {
        return;
    }
    let i = rng.below(pool.containers.len() as u64) as usize;
    let seed = rng.word();
    let cfd = pool.containers[i].cfd.as_raw_fd();
    let pid = if rng.one_in(2) {
        // SAFETY: the fuzzer is single-threaded; the child runs member_life.
        unsafe { calls::fork_into_container(cfd) }
    } else {
        let mut args = CloneArgs {
            exit_signal: *rng.pick(&[libc::SIGCHLD as u64, 0, 65]),
            ..CloneArgs::default()
        };
        if rng.one_in(6) {
            args.flags |= *rng.pick(&[
                libc::CLONE_FILES as u64,
                libc::CLONE_NEWPID as u64,
                1 << 33,
                libc::CLONE_PTRACE as u64,
            ]);
        }
        // SAFETY: as above; no pointers in `args`.
        unsafe { ioctl::clone3_into(pool.containers[i].cfd.as_fd(), args) }
    };
    match pid {
        Ok(0) => member_life(seed, 0),
        Ok(pid) => pool.containers[i].init = Some(pid),
        Err(_) => {}
    }
}

fn close(rng: &mut Rng, pool: &mut Pool) {
    if pool.containers.is_empty() {
        return;
    }
    let i = rng.below(pool.containers.len() as u64) as usize;
    let h = pool.containers.swap_remove(i);
    pool.stale.push(h.cfd.as_raw_fd());
    if pool.stale.len() > 16 {
        pool.stale.remove(0);
    }
    // An init still running is reaped by reap() once it exits (we are its parent).
}

fn ioctls(rng: &mut Rng, pool: &mut Pool) {
    const CMDS: &[libc::Ioctl] = &[
        CONTAINER_GET_ID,
        CONTAINER_GET_INFO,
        CONTAINER_GET_INIT_PIDFD,
        CONTAINER_GET_CGROUP_NAMESPACE,
        CONTAINER_GET_IPC_NAMESPACE,
        CONTAINER_GET_MNT_NAMESPACE,
        CONTAINER_GET_NET_NAMESPACE,
        CONTAINER_GET_PID_NAMESPACE,
        CONTAINER_GET_USER_NAMESPACE,
        CONTAINER_GET_UTS_NAMESPACE,
        CONTAINER_GET_TIME_NAMESPACE,
        CONTAINER_SET_NAMESPACE,
        CONTAINER_SET_CGROUP,
    ];
    let fd = pool.any_fd(rng);
    let mut cmd = *rng.pick(CMDS);
    if rng.one_in(8) {
        // Another size in an _IOC number, or another number.
        cmd = (cmd & !(0x3fff << 16)) | ((rng.below(300) as libc::Ioctl) << 16);
    } else if rng.one_in(12) {
        cmd = (CONTAINER_IOCTL_MAGIC as libc::Ioctl) << 8 | rng.below(256) as libc::Ioctl;
    }
    let mut scratch = [0u8; 1024];
    let arg = match cmd {
        CONTAINER_SET_NAMESPACE | CONTAINER_SET_CGROUP => {
            if rng.one_in(4) {
                rng.boundary() as usize
            } else {
                pool.any_fd(rng) as usize
            }
        }
        CONTAINER_GET_INIT_PIDFD => *rng.pick(&[0, libc::O_NONBLOCK as usize, 1, usize::MAX]),
        _ if rng.one_in(6) => *rng.pick(BAD_POINTERS) as usize,
        _ if rng.one_in(8) => rng.below(4) as usize,
        _ => {
            scratch[..8].copy_from_slice(&rng.boundary().to_ne_bytes());
            scratch.as_mut_ptr() as usize
        }
    };
    // SAFETY: `arg` is an integer, our scratch buffer (1024 bytes, more than any size an
    // _IOC number can encode that these ioctls accept), or a never-mapped address.
    if let Ok(ret) = unsafe { ioctl::ioctl(borrow(fd), cmd, arg) } {
        // The GET ioctls that return an fd.
        if ret > 2 && (_IOC_NR(cmd) == 3 || (4..=11).contains(&_IOC_NR(cmd))) {
            // SAFETY: a new fd we own.
            drop(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
    }
}

#[allow(non_snake_case)]
fn _IOC_NR(cmd: libc::Ioctl) -> libc::Ioctl {
    cmd & 0xff
}

fn keys(rng: &mut Rng, pool: &mut Pool) {
    let fd = pool.any_fd(rng);
    let ring = *rng.pick(&[
        keyctl::KEY_SPEC_SESSION_KEYRING,
        keyctl::KEY_SPEC_PROCESS_KEYRING,
        0,
        -100,
    ]);
    if rng.one_in(2) {
        let _ = keyctl::set_container_keyring(fd, ring);
    } else {
        let ty = *rng.pick(&[
            c"*",
            c"user",
            c"keyring",
            c"",
            c".request_key_auth",
            c"dns_resolver",
        ]);
        let _ = keyctl::container_intercept(fd, ty, rng.below(2) as u32, ring);
    }
}

fn dirfd(rng: &mut Rng, pool: &mut Pool) {
    let fd = pool.any_fd(rng);
    let path = *rng.pick(&[c".", c"..", c"/", c"proc", c"kc-fuzz", c"kc-fuzz/a", c""]);
    if rng.one_in(3) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::mkdirat(fd, c"kc-fuzz".as_ptr(), 0o755) };
        let _ = path;
        return;
    }
    let flags = *rng.pick(&[
        libc::O_RDONLY,
        libc::O_DIRECTORY,
        libc::O_PATH,
        libc::O_RDONLY | libc::O_NOFOLLOW,
    ]);
    // SAFETY: a NUL-terminated path.
    let r = unsafe { libc::openat(fd, path.as_ptr(), flags | libc::O_CLOEXEC) };
    if r >= 0 {
        // SAFETY: a new fd we own.
        drop(unsafe { OwnedFd::from_raw_fd(r) });
    }
}

/// A tmpfs moved to a container from outside, or made in its namespaces.
fn mount(rng: &mut Rng, pool: &mut Pool) {
    // Only containers (or closed numbers): another directory fd would mount into the
    // fuzzer's own namespace.
    let fd = match pool
        .containers
        .get(rng.below(pool.containers.len() as u64 + 1) as usize)
    {
        Some(h) => h.cfd.as_raw_fd(),
        None => *rng.pick(&[-1, 9999]),
    };
    // SAFETY: fsopen with a NUL-terminated name.
    let fs = unsafe {
        libc::syscall(
            libc::SYS_fsopen,
            c"tmpfs".as_ptr(),
            1, /* FSOPEN_CLOEXEC */
        )
    };
    if fs < 0 {
        return;
    }
    // SAFETY: the new fd is ours.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    if rng.one_in(2) {
        // FSCONFIG_SET_CONTAINER (9) with the cfd as aux.
        // SAFETY: integer arguments and NULL pointers.
        unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), 9, 0usize, 0usize, fd) };
    }
    // FSCONFIG_CMD_CREATE (6), then fsmount.
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), 6, 0usize, 0usize, 0) };
    // SAFETY: fsmount with integer arguments.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            1, /* FSMOUNT_CLOEXEC */
            0,
        )
    };
    if mnt < 0 {
        return;
    }
    // SAFETY: the new fd is ours.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    let (target, flags) = if rng.one_in(2) {
        // MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | MOVE_MOUNT_T_CONTAINER_ROOT
        (c"", 0x4 | 0x40 | 0x80)
    } else {
        (c"kc-fuzz", 0x4)
    };
    // SAFETY: NUL-terminated paths and integers.
    unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            fd,
            target.as_ptr(),
            flags,
        )
    };
}
