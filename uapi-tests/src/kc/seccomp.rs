//! The seccomp user-notification mechanism `kc supervise` is built on (mainline,
//! seccomp_unotify(2)): the filter the init installs, the listener's ioctls, and
//! reading a member's arguments through `/proc/PID/mem`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

use crate::util::last_errno;

/// The system calls routed to the supervisor (x86_64 numbers).
pub const SYS_MOUNT: i32 = libc::SYS_mount as i32;
pub const SYS_FSOPEN: i32 = libc::SYS_fsopen as i32;
pub const SYS_FSMOUNT: i32 = libc::SYS_fsmount as i32;
pub const SYS_MOVE_MOUNT: i32 = libc::SYS_move_mount as i32;
pub const SYS_MKNOD: i32 = libc::SYS_mknod as i32;
pub const SYS_MKNODAT: i32 = libc::SYS_mknodat as i32;
pub const ROUTED: [i32; 6] = [
    SYS_MOUNT,
    SYS_FSOPEN,
    SYS_FSMOUNT,
    SYS_MOVE_MOUNT,
    SYS_MKNOD,
    SYS_MKNODAT,
];

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: x86_64 calls in [`ROUTED`] go to the listener, everything else (other
/// calls, other ABIs) is allowed and meets the kernel's own checks.
pub fn filter() -> Vec<libc::sock_filter> {
    let n = ROUTED.len() as u8;
    // 0: arch, 1: arch check, 2: nr, 3..3+n: the calls, then ALLOW, then USER_NOTIF.
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, 4), // offsetof(struct seccomp_data, arch)
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, n + 1),
        stmt(BPF_LD_W_ABS, 0), // offsetof(struct seccomp_data, nr)
    ];
    for (i, nr) in ROUTED.iter().enumerate() {
        // From instruction 3 + i, USER_NOTIF is at 3 + n + 1.
        prog.push(jump(BPF_JEQ_K, *nr as u32, n - i as u8, 0));
    }
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
    prog
}

/// In the init, before exec: no_new_privs, then the filter with a new listener; the
/// listener fd (O_CLOEXEC).
pub fn install(prog: &[libc::sock_filter]) -> Result<OwnedFd, (&'static str, Errno)> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(("prctl(PR_SET_NO_NEW_PRIVS)", last_errno()));
    }
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points at `prog`, valid for its length during the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err((
            "seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER)",
            last_errno(),
        ));
    }
    // SAFETY: seccomp returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One notification: the member's pid (in kc's pid namespace), the call and its
/// arguments, as the kernel captured them (registers, not memory).
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    pub pid: u32,
    pub nr: i32,
    pub args: [u64; 6],
}

/// SECCOMP_IOCTL_NOTIF_RECV; ENOENT when the request went away before it was read.
pub fn recv(listener: BorrowedFd<'_>) -> Result<Notif, Errno> {
    // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: n is a valid seccomp_notif for the kernel to fill.
    if unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) } != 0 {
        return Err(last_errno());
    }
    Ok(Notif {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        args: n.data.args,
    })
}

/// SECCOMP_IOCTL_NOTIF_ID_VALID: whether the request is still pending (its member has
/// not died or been interrupted, and the pid it named still is that member).
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: a valid u64 for the kernel to read.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id,
        ) == 0
    }
}

/// The answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The call returns this value (the supervisor did the work).
    Value(i64),
    /// The call fails with this errno.
    Error(Errno),
    /// The kernel runs the call itself, with the member's own privileges.
    Continue,
}

/// SECCOMP_IOCTL_NOTIF_SEND; ENOENT when the member is gone.
pub fn send(listener: BorrowedFd<'_>, id: u64, answer: Answer) -> Result<(), Errno> {
    let (val, error, flags) = match answer {
        Answer::Value(v) => (v, 0, 0),
        Answer::Error(e) => (0, -e.raw_os_error(), 0),
        Answer::Continue => (0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: resp is a valid seccomp_notif_resp for the kernel to read.
    if unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    } != 0
    {
        return Err(last_errno());
    }
    Ok(())
}

/// The longest string read from a member (PATH_MAX with its NUL).
pub const MAX_STRING: usize = 4096;

/// Reads the NUL-terminated string at `addr` in the member whose memory `mem`
/// (`/proc/PID/mem`) is; None for a NULL pointer. EFAULT for an unreadable address,
/// ENAMETOOLONG past [`MAX_STRING`].
pub fn read_string(mem: &OwnedFd, addr: u64) -> Result<Option<CString>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < MAX_STRING {
        // Never read across a page boundary in one go: the next page may be unmapped.
        let page_left = 4096 - (at % 4096) as usize;
        let mut buf = vec![0u8; page_left.min(MAX_STRING - out.len())];
        let n = match rustix::io::pread(mem, &mut buf, at) {
            Ok(0) | Err(Errno::IO) => return Err(Errno::FAULT),
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(Some(CString::new(out).map_err(|_| Errno::FAULT)?));
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Err(Errno::NAMETOOLONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_land_on_the_returns() {
        let prog = filter();
        let notif = prog.len() - 1;
        let allow = prog.len() - 2;
        assert_eq!(prog[notif].k, libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(prog[allow].k, SECCOMP_RET_ALLOW);
        // The arch check falls through to ALLOW for another ABI.
        assert_eq!(1 + 1 + prog[1].jf as usize, allow);
        for (i, ins) in prog.iter().enumerate().skip(3).take(ROUTED.len()) {
            assert_eq!(i + 1 + ins.jt as usize, notif, "instruction {i}");
            assert_eq!(ins.jf, 0);
        }
    }
}
