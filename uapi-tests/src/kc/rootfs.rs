//! `--rootfs DIR` of `kc run`, `kc start` and `kc supervise`: assemble a container's root
//! from outside before its init starts (uapi.md §3 "Mounting from outside"): a tmpfs
//! made in the container's namespaces installed as its root, DIR copied in through the
//! cfd (directories, files, symlinks, device nodes), a procfs of the container's PID
//! namespace at /proc. The container needs an empty mount namespace (`--ns emptyfs,...`;
//! `kc run --rootfs` adds it).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::io::Errno;

use crate::mount_calls;
use crate::util::{errno_err, step};

/// Fails unless `dir` is a directory kc can copy from.
pub fn check_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("--rootfs {}: cannot use it", dir.display()))?;
    if !meta.is_dir() {
        bail!("--rootfs {}: not a directory", dir.display());
    }
    Ok(())
}

/// `--rootfs DIR`: a tmpfs root made in the container's namespaces and installed from
/// outside, DIR copied in through the cfd, procfs mounted at /proc from outside.
pub fn assemble_root(cfd: BorrowedFd<'_>, dir: &Path) -> Result<()> {
    check_dir(dir)?;
    let fd = cfd.as_raw_fd();
    let mount = |fstype: &CStr, params: &[(&CStr, &CStr)]| {
        mount_calls::new_mount(fstype, Some(fd), params)
            .map_err(|(step, e)| errno_err(format!("{step} ({})", fstype.to_string_lossy()), e))
    };
    let root = mount(c"tmpfs", &[(c"mode", c"0755")])?;
    mount_calls::mount_root(&root, fd).map_err(|e| {
        errno_err("move_mount(tmpfs, \"\", cfd, \"/\", T_CONTAINER_ROOT)", e).context(
            "--rootfs needs a container with an empty mount namespace whose init has not \
                 started (kc create --ns emptyfs,...)",
        )
    })?;
    step("root: a tmpfs made in the container's namespaces (FSCONFIG_SET_CONTAINER), installed with MOVE_MOUNT_T_CONTAINER_ROOT");
    let copied = copy_in(cfd, dir, Path::new(""))?;
    step(&format!(
        "copied {copied} entries of {} in through the cfd (mkdirat, openat, symlinkat, mknodat)",
        dir.display()
    ));
    match rustix::fs::mkdirat(cfd, "proc", rustix::fs::Mode::from_raw_mode(0o555)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(errno_err("mkdirat(cfd, \"proc\")", e)),
    }
    let proc = mount(c"proc", &[])?;
    mount_calls::mount_at(&proc, fd, c"proc")
        .map_err(|e| errno_err("move_mount(proc, \"\", cfd, \"proc\")", e))?;
    step("proc: the container's PID namespace, mounted at /proc from outside");
    Ok(())
}

/// Copies the host tree `src`/`rel` into the container at `rel`, through the cfd; the
/// number of entries copied. Sockets are skipped.
fn copy_in(cfd: BorrowedFd<'_>, src: &Path, rel: &Path) -> Result<usize> {
    use rustix::fs::{FileType, Mode, OFlags};

    let from = src.join(rel);
    let mut count = 0;
    let entries = std::fs::read_dir(&from)
        .with_context(|| format!("--rootfs: reading {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("--rootfs: reading {}", from.display()))?;
        let rel = rel.join(entry.file_name());
        let host = src.join(&rel);
        let meta = std::fs::symlink_metadata(&host)
            .with_context(|| format!("--rootfs: stat {}", host.display()))?;
        let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
        let ft = meta.file_type();
        let what = |call: &str, e: Errno| {
            errno_err(
                format!("--rootfs: {call}(cfd, {:?}) for {}", rel, host.display()),
                e,
            )
        };
        if ft.is_dir() {
            rustix::fs::mkdirat(cfd, &rel, mode).map_err(|e| what("mkdirat", e))?;
            count += copy_in(cfd, src, &rel)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&host)
                .with_context(|| format!("--rootfs: readlink {}", host.display()))?;
            rustix::fs::symlinkat(&target, cfd, &rel).map_err(|e| what("symlinkat", e))?;
        } else if ft.is_file() {
            let out = rustix::fs::openat(
                cfd,
                &rel,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                mode,
            )
            .map_err(|e| what("openat", e))?;
            let mut input = std::fs::File::open(&host)
                .with_context(|| format!("--rootfs: open {}", host.display()))?;
            std::io::copy(&mut input, &mut std::fs::File::from(out))
                .with_context(|| format!("--rootfs: copying {} in", host.display()))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                FileType::CharacterDevice
            } else if ft.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            rustix::fs::mknodat(cfd, &rel, kind, mode, meta.rdev())
                .map_err(|e| what("mknodat", e))?;
        } else {
            eprintln!("kc: --rootfs: skipping the socket {}", host.display());
            continue;
        }
        count += 1;
    }
    Ok(count)
}
