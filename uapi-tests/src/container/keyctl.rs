//! Raw wrappers of the key calls (add_key, request_key, keyctl) with the series' part 3
//! commands (uapi.md §3 "Keys"), and the watch_queue pipe a supervisor reads key
//! notifications from. Shared by the suite and by `kc` (through `#[path]`), like
//! `calls.rs`: it needs only `libc`, `rustix` and a `uapi` module at the crate root.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::{c_int, c_long};
use rustix::io::Errno;

use super::calls::check;
use crate::uapi::{KEYCTL_CONTAINER_INTERCEPT, KEYCTL_SET_CONTAINER_KEYRING};

pub const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
pub const KEY_SPEC_SESSION_KEYRING: i32 = -3;

const KEYCTL_GET_KEYRING_ID: c_int = 0;
const KEYCTL_JOIN_SESSION_KEYRING: c_int = 1;
const KEYCTL_DESCRIBE: c_int = 6;
const KEYCTL_SETPERM: c_int = 5;
const KEYCTL_READ: c_int = 11;
const KEYCTL_INSTANTIATE: c_int = 12;
const KEYCTL_NEGATE: c_int = 13;
const KEYCTL_ASSUME_AUTHORITY: c_int = 16;
const KEYCTL_REJECT: c_int = 19;
const KEYCTL_CAPABILITIES: c_int = 31;
const KEYCTL_WATCH_KEY: c_int = 32;

/// The type of the authorisation key of a request (`key_type_request_key_auth`).
pub const AUTH_KEY_TYPE: &str = ".request_key_auth";

fn keyctl(op: c_int, a2: c_long, a3: c_long, a4: c_long, a5: c_long) -> Result<c_long, Errno> {
    // SAFETY: every pointer argument a caller passes is valid for the length it passes.
    check(unsafe { libc::syscall(libc::SYS_keyctl, op, a2, a3, a4, a5) })
}

/// `add_key(type, desc, payload, keyring)`: the new key's serial.
pub fn add_key(ty: &CStr, desc: &CStr, payload: &[u8], keyring: i32) -> Result<i32, Errno> {
    // SAFETY: C strings and a payload buffer of the length passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            keyring,
        )
    })
    .map(|s| s as i32)
}

/// `request_key(type, desc, callout, dest)`: with a callout (even an empty one) the
/// kernel constructs a missing key (the upcall); without one it only searches.
pub fn request_key(
    ty: &CStr,
    desc: &CStr,
    callout: Option<&CStr>,
    dest: i32,
) -> Result<i32, Errno> {
    let callout = callout.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: C strings or NULL, and an integer.
    check(unsafe {
        libc::syscall(
            libc::SYS_request_key,
            ty.as_ptr(),
            desc.as_ptr(),
            callout,
            dest,
        )
    })
    .map(|s| s as i32)
}

/// A keyctl command that fills a buffer (`KEYCTL_READ`, `KEYCTL_DESCRIBE`): all of it.
fn read_op(op: c_int, key: i32) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = keyctl(
            op,
            key as c_long,
            buf.as_mut_ptr() as c_long,
            buf.len() as c_long,
            0,
        )? as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(n, 0);
    }
}

/// `keyctl(KEYCTL_READ, key)`: the whole payload (a keyring reads as its keys' serials).
pub fn read(key: i32) -> Result<Vec<u8>, Errno> {
    read_op(KEYCTL_READ, key)
}

/// The keys linked in a keyring, in order.
pub fn keyring_keys(keyring: i32) -> Result<Vec<i32>, Errno> {
    let raw = read(keyring)?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// A key's description as `keyctl(KEYCTL_DESCRIBE)` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub ty: String,
    pub uid: u32,
    pub gid: u32,
    pub perm: u32,
    pub desc: String,
}

impl Description {
    /// Parses "type;uid;gid;perm;description" (the description may contain ';').
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(5, ';');
        let ty = parts.next()?.to_string();
        let uid = parts.next()?.parse().ok()?;
        let gid = parts.next()?.parse().ok()?;
        let perm = u32::from_str_radix(parts.next()?, 16).ok()?;
        let desc = parts.next()?.to_string();
        Some(Self {
            ty,
            uid,
            gid,
            perm,
            desc,
        })
    }

    /// For an authorisation key: the serial of the key it lets its holder construct.
    pub fn auth_target(&self) -> Option<i32> {
        if self.ty != AUTH_KEY_TYPE {
            return None;
        }
        i32::from_str_radix(&self.desc, 16).ok()
    }
}

/// `keyctl(KEYCTL_DESCRIBE, key)`, parsed.
pub fn describe(key: i32) -> Result<Description, Errno> {
    let mut buf = read_op(KEYCTL_DESCRIBE, key)?;
    // The kernel NUL-terminates it.
    if buf.last() == Some(&0) {
        buf.pop();
    }
    Description::parse(&String::from_utf8_lossy(&buf)).ok_or(Errno::INVAL)
}

/// `keyctl(KEYCTL_CAPABILITIES)`: the capability bytes.
pub fn capabilities() -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 2];
    let n = keyctl(
        KEYCTL_CAPABILITIES,
        buf.as_mut_ptr() as c_long,
        buf.len() as c_long,
        0,
        0,
    )?;
    buf.truncate((n as usize).min(2));
    Ok(buf)
}

/// `keyctl(KEYCTL_GET_KEYRING_ID, special, 0)`: the serial of a special keyring.
pub fn keyring_id(special: i32) -> Result<i32, Errno> {
    keyctl(KEYCTL_GET_KEYRING_ID, special as c_long, 0, 0, 0).map(|s| s as i32)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a fresh anonymous session keyring.
pub fn join_new_session_keyring() -> Result<i32, Errno> {
    keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0).map(|s| s as i32)
}

pub fn setperm(key: i32, perm: u32) -> Result<(), Errno> {
    keyctl(KEYCTL_SETPERM, key as c_long, perm as c_long, 0, 0).map(drop)
}

/// `keyctl(KEYCTL_ASSUME_AUTHORITY, key)`; 0 gives the authority up.
pub fn assume_authority(key: i32) -> Result<(), Errno> {
    keyctl(KEYCTL_ASSUME_AUTHORITY, key as c_long, 0, 0, 0).map(drop)
}

/// `keyctl(KEYCTL_INSTANTIATE, key, payload, 0)`: into the requester's keyring.
pub fn instantiate(key: i32, payload: &[u8]) -> Result<(), Errno> {
    keyctl(
        KEYCTL_INSTANTIATE,
        key as c_long,
        payload.as_ptr() as c_long,
        payload.len() as c_long,
        0,
    )
    .map(drop)
}

/// `keyctl(KEYCTL_NEGATE, key, timeout, 0)`: the requester gets ENOKEY.
pub fn negate(key: i32, timeout: u32) -> Result<(), Errno> {
    keyctl(KEYCTL_NEGATE, key as c_long, timeout as c_long, 0, 0).map(drop)
}

/// `keyctl(KEYCTL_REJECT, key, timeout, error, 0)`: the requester gets `error`.
pub fn reject(key: i32, timeout: u32, error: Errno) -> Result<(), Errno> {
    keyctl(
        KEYCTL_REJECT,
        key as c_long,
        timeout as c_long,
        error.raw_os_error() as c_long,
        0,
    )
    .map(drop)
}

/// `keyctl(KEYCTL_SET_CONTAINER_KEYRING, cfd, keyring)`.
pub fn set_container_keyring(cfd: c_int, keyring: i32) -> Result<(), Errno> {
    keyctl(
        KEYCTL_SET_CONTAINER_KEYRING,
        cfd as c_long,
        keyring as c_long,
        0,
        0,
    )
    .map(drop)
}

/// `keyctl(KEYCTL_CONTAINER_INTERCEPT, cfd, type, flags, queue)`; queue 0 removes.
pub fn container_intercept(cfd: c_int, ty: &CStr, flags: u32, queue: i32) -> Result<(), Errno> {
    keyctl(
        KEYCTL_CONTAINER_INTERCEPT,
        cfd as c_long,
        ty.as_ptr() as c_long,
        flags as c_long,
        queue as c_long,
    )
    .map(drop)
}

// ---------------------------------------------------------------------------------------
// watch_queue: key notifications on a pipe (KEYCTL_WATCH_KEY).

const O_NOTIFICATION_PIPE: c_int = libc::O_EXCL;
/// `_IO('W', 0x60)`: the pipe's size in notification slots.
const IOC_WATCH_QUEUE_SET_SIZE: libc::c_ulong = 0x5760;
const WATCH_INFO_LENGTH: u32 = 0x7f;
pub const WATCH_TYPE_KEY_NOTIFY: u32 = 1;
pub const NOTIFY_KEY_LINKED: u32 = 2;

/// One notification read from a watch pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub ty: u32,
    pub subtype: u32,
    /// The key or keyring the notification is about (key notifications only).
    pub key: i32,
    /// For NOTIFY_KEY_LINKED: the key linked into `key`.
    pub aux: i32,
}

/// The read end of a notification pipe that watches keys.
pub struct WatchPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl WatchPipe {
    /// A notification pipe with room for `slots` notifications (the kernel rounds up).
    pub fn new(slots: u32) -> Result<Self, Errno> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: fds has room for two descriptors.
        check(
            unsafe { libc::pipe2(fds.as_mut_ptr(), O_NOTIFICATION_PIPE | libc::O_CLOEXEC) }
                as c_long,
        )?;
        // SAFETY: pipe2 returned two new descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: an integer argument.
        check(unsafe { libc::ioctl(read.as_raw_fd(), IOC_WATCH_QUEUE_SET_SIZE, slots) } as c_long)?;
        Ok(Self {
            read,
            _write: write,
        })
    }

    /// `keyctl(KEYCTL_WATCH_KEY, key, pipe, id)`.
    pub fn watch(&self, key: i32, id: u8) -> Result<(), Errno> {
        keyctl(
            KEYCTL_WATCH_KEY,
            key as c_long,
            self.read.as_raw_fd() as c_long,
            id as c_long,
            0,
        )
        .map(drop)
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.read
    }

    /// Reads what is there (blocks if nothing is): one read returns whole records.
    pub fn read(&self) -> Result<Vec<Notification>, Errno> {
        let mut buf = [0u8; 4096];
        let n = rustix::io::read(&self.read, &mut buf)?;
        Ok(parse_notifications(&buf[..n]))
    }
}

/// Splits a watch pipe's bytes into notifications; a malformed length ends the parse.
pub fn parse_notifications(mut buf: &[u8]) -> Vec<Notification> {
    let word = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut out = Vec::new();
    while buf.len() >= 8 {
        let head = word(buf, 0);
        let info = word(buf, 4);
        let len = (info & WATCH_INFO_LENGTH) as usize;
        if len < 8 || len > buf.len() {
            break;
        }
        // Little-endian bit-fields: type:24 then subtype:8.
        let (ty, subtype) = (head & 0x00ff_ffff, head >> 24);
        let (key, aux) = if len >= 16 {
            (word(buf, 8) as i32, word(buf, 12) as i32)
        } else {
            (0, 0)
        };
        out.push(Notification {
            ty,
            subtype,
            key,
            aux,
        });
        buf = &buf[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        let d = Description::parse(".request_key_auth;0;0;3f010000;1a2b").unwrap();
        assert_eq!(d.auth_target(), Some(0x1a2b));
        let d = Description::parse("user;1000;100;3f010000;a;b").unwrap();
        assert_eq!((d.uid, d.gid, d.desc.as_str()), (1000, 100, "a;b"));
        assert_eq!(d.auth_target(), None);
        assert!(Description::parse("user;x;0;0;d").is_none());
    }

    #[test]
    fn notifications() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&((NOTIFY_KEY_LINKED << 24) | WATCH_TYPE_KEY_NOTIFY).to_ne_bytes());
        raw.extend_from_slice(&16u32.to_ne_bytes());
        raw.extend_from_slice(&7i32.to_ne_bytes());
        raw.extend_from_slice(&9i32.to_ne_bytes());
        raw.extend_from_slice(&(1u32 << 24).to_ne_bytes());
        raw.extend_from_slice(&8u32.to_ne_bytes());
        let n = parse_notifications(&raw);
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].ty, n[0].subtype, n[0].key, n[0].aux), (1, 2, 7, 9));
        assert_eq!((n[1].ty, n[1].subtype), (0, 1));
        assert!(parse_notifications(&[1, 0, 0, 0, 3, 0, 0, 0]).is_empty());
    }
}
