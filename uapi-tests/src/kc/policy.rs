//! What `kc supervise` lets a member do that the kernel would refuse it (the whole
//! policy; `supervise.rs` only carries out what [`Policy::decide`] returns).
//!
//! | request | answer |
//! | --- | --- |
//! | `mount(_, TARGET, "tmpfs" \| "proc" \| "sysfs", FLAGS, DATA)` | kc mounts a new filesystem of that type, made in the member's namespaces, at TARGET in the member's mount namespace: 0 |
//! | `mount(HOSTPATH, TARGET, _, MS_BIND \| FLAGS, _)`, HOSTPATH exactly an `--allow-bind` path | kc bind mounts the host's HOSTPATH (not recursively) at TARGET: 0 |
//! | `mknod`/`mknodat` of a character device null, zero, full, random, urandom or tty | kc makes the node as the member (its fsuid, fsgid, umask, permission to write the directory): 0 |
//! | `mknod`/`mknodat` of a FIFO, socket or regular file | the kernel does it with the member's own privileges (no privilege is needed) |
//! | anything else: other filesystem types, `MS_REC`, `MS_REMOUNT`, `MS_MOVE`, propagation changes, other mount options, other devices, `fsopen`, `fsmount`, `move_mount` | EPERM |
//!
//! FLAGS may only be `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC`, `MS_SILENT` (and
//! the historic `MS_MGC_VAL` magic); DATA only the options listed in [`FS_OPTIONS`].
//! TARGET (and a node's path) is resolved in the member's root: an absolute path with
//! `RESOLVE_IN_ROOT`, a relative one beneath the member's cwd (or its dirfd) with
//! `RESOLVE_BENEATH`, both with `RESOLVE_NO_MAGICLINKS`, so no symlink or `..` the member
//! controls leads out of what it can already reach. A member that shares kc's mount
//! namespace gets EPERM for every mount: its mounts would be the host's.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The filesystems a member may mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Tmpfs,
    Proc,
    Sysfs,
}

impl Fs {
    pub fn name(self) -> &'static CStr {
        match self {
            Fs::Tmpfs => c"tmpfs",
            Fs::Proc => c"proc",
            Fs::Sysfs => c"sysfs",
        }
    }
}

/// The mount options (`key=value`) a member may pass for each filesystem.
pub const FS_OPTIONS: &[(Fs, &[&str])] = &[
    (
        Fs::Tmpfs,
        &["size", "nr_blocks", "nr_inodes", "mode", "uid", "gid"],
    ),
    (Fs::Proc, &["hidepid", "subset", "gid"]),
    (Fs::Sysfs, &[]),
];

pub const MS_RDONLY: u64 = 1;
pub const MS_NOSUID: u64 = 2;
pub const MS_NODEV: u64 = 4;
pub const MS_NOEXEC: u64 = 8;
pub const MS_BIND: u64 = 4096;
pub const MS_SILENT: u64 = 32768;
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xc0ed_0000;
/// Flags that only restrict the new mount.
const HARMLESS: u64 = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SILENT;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// The harmless character devices, (major, minor).
pub const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// A request, its arguments read out of the member once (the copy is what kc acts on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: u64,
        data: Option<CString>,
    },
    Mknod {
        /// The dirfd of mknodat (None: AT_FDCWD or mknod).
        dirfd: Option<i32>,
        path: CString,
        mode: u32,
        dev: u32,
    },
    /// fsopen, fsmount, move_mount.
    Other(&'static str),
}

/// What kc does about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Mount a new filesystem at `target`.
    NewFs {
        fs: Fs,
        options: Vec<(CString, CString)>,
        attrs: u64,
        target: CString,
    },
    /// Bind the host's `host` at `target`.
    Bind {
        host: PathBuf,
        attrs: u64,
        target: CString,
    },
    /// Make the character device `major:minor` at `path`.
    Mknod {
        dirfd: Option<i32>,
        path: CString,
        perm: u32,
        major: u32,
        minor: u32,
    },
    /// Let the kernel run the call as the member (nothing privileged about it).
    Continue,
    /// EPERM, and why.
    Deny(String),
}

/// The policy of one `kc supervise`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Host paths a member may bind mount (`--allow-bind`).
    pub allow_bind: Vec<PathBuf>,
}

impl Policy {
    pub fn decide(&self, req: &Request) -> Decision {
        match req {
            Request::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => self.mount(source.as_deref(), target, fstype.as_deref(), *flags, data),
            Request::Mknod {
                dirfd,
                path,
                mode,
                dev,
            } => mknod(*dirfd, path, *mode, *dev),
            Request::Other(call) => Decision::Deny(format!(
                "{call}: the new mount API is not brokered (use mount(2))"
            )),
        }
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: &Option<CString>,
    ) -> Decision {
        let mut flags = flags;
        if flags & MS_MGC_MSK == MS_MGC_VAL {
            flags &= !MS_MGC_MSK;
        }
        let attrs = attrs(flags);
        if flags & MS_BIND != 0 {
            if flags & !(HARMLESS | MS_BIND) != 0 {
                return Decision::Deny(format!(
                    "bind mount flags {flags:#x}: only MS_BIND with MS_RDONLY, MS_NOSUID, \
                     MS_NODEV, MS_NOEXEC (no MS_REC)"
                ));
            }
            let Some(source) = source else {
                return Decision::Deny("bind mount without a source".to_string());
            };
            let host = Path::new(std::ffi::OsStr::from_bytes(source.to_bytes()));
            return match self.allow_bind.iter().find(|a| a.as_path() == host) {
                Some(allowed) => Decision::Bind {
                    host: allowed.clone(),
                    attrs,
                    target: target.to_owned(),
                },
                None => Decision::Deny(format!(
                    "bind of {}: not an --allow-bind path",
                    host.display()
                )),
            };
        }
        if flags & !HARMLESS != 0 {
            return Decision::Deny(format!(
                "mount flags {flags:#x}: only MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC"
            ));
        }
        let fs = match fstype.map(CStr::to_bytes) {
            Some(b"tmpfs") => Fs::Tmpfs,
            Some(b"proc") => Fs::Proc,
            Some(b"sysfs") => Fs::Sysfs,
            other => {
                return Decision::Deny(format!(
                    "filesystem type {:?}: only tmpfs, proc and sysfs",
                    other.map(String::from_utf8_lossy)
                ))
            }
        };
        let options = match parse_options(fs, data.as_deref()) {
            Ok(o) => o,
            Err(why) => return Decision::Deny(why),
        };
        Decision::NewFs {
            fs,
            options,
            attrs,
            target: target.to_owned(),
        }
    }
}

/// MS_* restrictions as MOUNT_ATTR_* bits.
fn attrs(flags: u64) -> u64 {
    [
        (MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MS_NODEV, MOUNT_ATTR_NODEV),
        (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(ms, _)| flags & ms != 0)
    .fold(0, |a, (_, attr)| a | attr)
}

/// "size=1m,mode=755" into checked key/value pairs.
fn parse_options(fs: Fs, data: Option<&CStr>) -> Result<Vec<(CString, CString)>, String> {
    let allowed = FS_OPTIONS
        .iter()
        .find(|(f, _)| *f == fs)
        .map_or(&[][..], |(_, o)| *o);
    let text = data.map(CStr::to_bytes).unwrap_or_default();
    let text = std::str::from_utf8(text).map_err(|_| "mount data: not UTF-8".to_string())?;
    let mut out = Vec::new();
    for opt in text.split(',').filter(|o| !o.is_empty()) {
        let Some((key, value)) = opt.split_once('=') else {
            return Err(format!("mount option {opt:?}: not key=value"));
        };
        if !allowed.contains(&key) {
            return Err(format!(
                "mount option {key:?} for {}: allowed are {allowed:?}",
                fs.name().to_string_lossy()
            ));
        }
        let c = |s: &str| CString::new(s).map_err(|_| "NUL in a mount option".to_string());
        out.push((c(key)?, c(value)?));
    }
    Ok(out)
}

fn mknod(dirfd: Option<i32>, path: &CStr, mode: u32, dev: u32) -> Decision {
    // The kernel's new_decode_dev() of mknod's 32-bit dev.
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    match mode & libc::S_IFMT {
        0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK => Decision::Continue,
        libc::S_IFCHR => match DEVICES
            .iter()
            .find(|(_, ma, mi)| (*ma, *mi) == (major, minor))
        {
            Some(_) => Decision::Mknod {
                dirfd,
                path: path.to_owned(),
                perm: mode & 0o777,
                major,
                minor,
            },
            None => Decision::Deny(format!(
                "character device {major}:{minor}: only null, zero, full, random, urandom, tty"
            )),
        },
        _ => Decision::Deny(format!(
            "mknod mode {mode:#o}: block devices and other types are refused"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(src: Option<&str>, tgt: &str, ty: Option<&str>, flags: u64, data: &str) -> Request {
        let c = |s: &str| CString::new(s).unwrap();
        Request::Mount {
            source: src.map(c),
            target: c(tgt),
            fstype: ty.map(c),
            flags,
            data: Some(c(data)),
        }
    }

    fn denied(d: &Decision) -> bool {
        matches!(d, Decision::Deny(_))
    }

    #[test]
    fn mounts() {
        let p = Policy {
            allow_bind: vec![PathBuf::from("/srv/share")],
        };
        let d = p.decide(&mount(
            Some("tmpfs"),
            "/mnt",
            Some("tmpfs"),
            MS_SILENT | MS_NOSUID | MS_MGC_VAL,
            "size=1m,mode=755",
        ));
        assert_eq!(
            d,
            Decision::NewFs {
                fs: Fs::Tmpfs,
                options: vec![
                    (c"size".into(), c"1m".into()),
                    (c"mode".into(), c"755".into())
                ],
                attrs: MOUNT_ATTR_NOSUID,
                target: c"/mnt".into(),
            }
        );
        assert!(matches!(
            p.decide(&mount(None, "proc", Some("proc"), 0, "")),
            Decision::NewFs { fs: Fs::Proc, .. }
        ));
        for bad in [
            mount(Some("/dev/sda"), "/mnt", Some("ext4"), 0, ""),
            mount(None, "/mnt", Some("ramfs"), 0, ""),
            mount(None, "/mnt", None, 0, ""),
            mount(None, "/mnt", Some("tmpfs"), 0, "huge=always"),
            mount(None, "/mnt", Some("tmpfs"), 0, "noswap"),
            mount(None, "/mnt", Some("tmpfs"), 32, ""), // MS_REMOUNT
            mount(None, "/mnt", Some("tmpfs"), 1 << 20, ""), // MS_PRIVATE
            mount(Some("/etc"), "/mnt", None, MS_BIND, ""),
            mount(Some("/srv/share/x"), "/mnt", None, MS_BIND, ""),
            mount(Some("/srv/share"), "/mnt", None, MS_BIND | 16384, ""), // MS_REC
            mount(Some("/srv"), "/mnt", None, 8192, ""),                  // MS_MOVE
        ] {
            assert!(denied(&p.decide(&bad)), "{bad:?}");
        }
        assert_eq!(
            p.decide(&mount(
                Some("/srv/share"),
                "/mnt",
                None,
                MS_BIND | MS_RDONLY,
                ""
            )),
            Decision::Bind {
                host: "/srv/share".into(),
                attrs: MOUNT_ATTR_RDONLY,
                target: c"/mnt".into()
            }
        );
    }

    #[test]
    fn nodes() {
        let p = Policy::default();
        let node = |mode: u32, dev: u32| Request::Mknod {
            dirfd: None,
            path: c"/dev/x".into(),
            mode,
            dev,
        };
        assert!(matches!(
            p.decide(&node(libc::S_IFCHR | 0o666, 0x103)),
            Decision::Mknod {
                major: 1,
                minor: 3,
                perm: 0o666,
                ..
            }
        ));
        assert!(matches!(
            p.decide(&node(libc::S_IFCHR | 0o600, 0x500)),
            Decision::Mknod {
                major: 5,
                minor: 0,
                ..
            }
        ));
        assert!(denied(&p.decide(&node(libc::S_IFCHR | 0o666, 0x101)))); // /dev/mem
        assert!(denied(&p.decide(&node(libc::S_IFBLK | 0o666, 0x800)))); // sda
        assert_eq!(
            p.decide(&node(libc::S_IFIFO | 0o644, 0)),
            Decision::Continue
        );
        assert!(denied(&p.decide(&Request::Other("fsopen"))));
    }
}
