//! Building a container from outside (uapi.md §3, "The cfd as dirfd" and "Mounting from
//! outside"): an empty mount namespace, superblocks made in the container's namespaces
//! (`FSCONFIG_SET_CONTAINER`), mounts into it from outside (`move_mount()` to a cfd,
//! `MOVE_MOUNT_T_CONTAINER_ROOT`), lookups through the cfd scoped to its root, and an
//! idmapped host directory with the container's user namespace (seed 002: hpa's "alien
//! metadata problem", Biederman's "Mapping the metadata on the file into different
//! contexts"). SKIPs on a kernel whose headers lack `FSCONFIG_SET_CONTAINER` and
//! `MOVE_MOUNT_T_CONTAINER_ROOT` (a commit of the series before part 2).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, ensure, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};

use super::helpers::{self as h, fork_fails, recv_fd, send_fd, socketpair, Call, Pipe, Proc};
use super::mount_calls::{
    fsconfig, fsopen, fspick, idmap, mount_at, mount_root, move_mount, new_mount, open_tree,
    set_container, FSPICK_EMPTY_PATH, MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH,
    OPEN_TREE_CLONE,
};
use super::security::{capset, map_root_to, unshare};
use crate::sys::{self, errno_name, expect_errno, ok, skip, Errno, TempDir};
use crate::uapi::*;

/// An unprivileged uid (not the overflow id 65534).
const USER: u32 = 1000;

/// SKIPs unless the kernel has the container calls and part 2 of the series.
fn require_fs() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    for name in ["FSCONFIG_SET_CONTAINER", "MOVE_MOUNT_T_CONTAINER_ROOT"] {
        if !from_headers(name) {
            return Err(skip(format!(
                "{name}: not in this kernel's headers (a commit before the series' part 2)"
            )));
        }
    }
    Ok(())
}

/// [`new_mount`] with the failing step in the error.
fn mount_new(fstype: &CStr, cfd: Option<RawFd>, params: &[(&CStr, &CStr)]) -> Result<OwnedFd> {
    new_mount(fstype, cfd, params).map_err(|(step, e)| {
        anyhow::anyhow!("{step} for {}: {}", fstype.to_string_lossy(), errno_name(e))
    })
}

/// A container made with `CONTAINER_NEW_EMPTY_FS_NS | extra` and a tmpfs root created in
/// its namespaces and installed from outside.
fn with_tmpfs_root(tag: &str, extra: u32) -> Result<OwnedFd> {
    let cfd = h::create(&h::unique_name(tag), CONTAINER_NEW_EMPTY_FS_NS | extra)?;
    let root = mount_new(c"tmpfs", Some(cfd.as_raw_fd()), &[(c"mode", c"0755")])?;
    ok(
        "move_mount(tmpfs, \"\", cfd, \"/\", F_EMPTY_PATH|T_CONTAINER_ROOT)",
        mount_root(&root, cfd.as_raw_fd()),
    )?;
    Ok(cfd)
}

/// `mkdirat(cfd, path, mode)`, which must succeed.
fn mkdir_at(cfd: &OwnedFd, path: &str, mode: u32) -> Result<()> {
    ok(
        &format!("mkdirat(cfd, {path:?})"),
        rustix::fs::mkdirat(cfd, path, Mode::from_raw_mode(mode)),
    )
}

/// (st_dev, st_ino) of what `path` names relative to `dirfd`.
fn id_at(dirfd: impl AsFd, path: &str) -> Result<(u64, u64), Errno> {
    let st = rustix::fs::statat(dirfd, path, AtFlags::empty())?;
    Ok((st.st_dev, st.st_ino))
}

fn read_at(dirfd: impl AsFd, path: &str) -> Result<String> {
    let fd = ok(
        &format!("openat(cfd, {path:?})"),
        rustix::fs::openat(dirfd, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()),
    )?;
    Ok(String::from_utf8_lossy(&sys::read_to_end(&fd)?).into_owned())
}

fn write_at(dirfd: impl AsFd, path: &str, mode: u32, text: &[u8]) -> Result<()> {
    let fd = ok(
        &format!("openat(cfd, {path:?}, O_CREAT|O_EXCL)"),
        rustix::fs::openat(
            dirfd,
            path,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        ),
    )?;
    sys::write_all(&fd, text)
}

/// The sorted names in a directory.
fn names(dir: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("read_dir {dir}"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("read_dir {dir}"))?;
    names.sort();
    Ok(names)
}

/// A root built entirely from outside: an empty mount namespace, a tmpfs root and a procfs
/// made in the container's namespaces and mounted from outside, directories, a device node
/// and a copy of this static binary created through the cfd. The init sees exactly that
/// tree, is pid 1 in the /proc mounted from outside and sees no host process; the
/// caller's own mounts never change; once init runs, mounting from outside is EBUSY.
pub fn build_root_from_outside() -> Result<()> {
    require_fs()?;
    let before = sys::read_text("/proc/self/mountinfo")?;
    let cfd = h::create(
        &h::unique_name("fsroot"),
        CONTAINER_NEW_EMPTY_FS_NS | CONTAINER_NEW_PID_NS,
    )?;
    let c = cfd.as_raw_fd();
    expect_errno(
        "openat(cfd, \"bin\") with no root yet",
        rustix::fs::openat(&cfd, "bin", OFlags::PATH, Mode::empty()),
        Errno::NOENT,
    )?;
    expect_errno(
        "fork_into_container() with no root yet",
        fork_fails(c),
        Errno::NOENT,
    )?;

    let root = mount_new(c"tmpfs", Some(c), &[(c"mode", c"0755")])?;
    ok("move_mount(T_CONTAINER_ROOT)", mount_root(&root, c))?;
    let second = mount_new(c"tmpfs", Some(c), &[])?;
    expect_errno(
        "a second move_mount(T_CONTAINER_ROOT)",
        mount_root(&second, c),
        Errno::BUSY,
    )?;

    for (dir, mode) in [("bin", 0o755), ("dev", 0o755), ("proc", 0o555)] {
        mkdir_at(&cfd, dir, mode)?;
    }
    ok(
        "mknodat(cfd, \"dev/null\", S_IFCHR, 1:3)",
        rustix::fs::mknodat(
            &cfd,
            "dev/null",
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        ),
    )?;
    let exe = std::fs::read("/proc/self/exe").context("read /proc/self/exe")?;
    write_at(&cfd, "bin/probe", 0o755, &exe)?;
    let proc = mount_new(c"proc", Some(c), &[])?;
    ok(
        "move_mount(proc, \"\", cfd, \"proc\", F_EMPTY_PATH)",
        mount_at(&proc, c, c"proc"),
    )?;
    let during = sys::read_text("/proc/self/mountinfo")?;
    ensure!(
        during == before,
        "the caller's mounts changed:\nbefore:\n{before}\nafter:\n{during}"
    );

    let go = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        go.wait();
        let top = names("/")?;
        ensure!(top == ["bin", "dev", "proc"], "init's / holds {top:?}");
        let dev = names("/dev")?;
        ensure!(dev == ["null"], "init's /dev holds {dev:?}");
        let me = std::fs::read_link("/proc/self").context("readlink /proc/self")?;
        ensure!(me.as_os_str() == "1", "/proc/self is {me:?}, not 1");
        let pids: Vec<String> = names("/proc")?
            .into_iter()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        ensure!(pids == ["1"], "init's /proc shows the processes {pids:?}");
        let mounts = sys::mount_points(&sys::read_text("/proc/self/mountinfo")?);
        ensure!(mounts == ["/", "/proc"], "init's mounts are {mounts:?}");
        let status = std::process::Command::new("/bin/probe")
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .status()
            .context("exec /bin/probe --list")?;
        ensure!(status.success(), "/bin/probe --list: {status}");
        Ok(0)
    })?;

    let late = mount_new(c"tmpfs", Some(c), &[])?;
    expect_errno(
        "move_mount(tmpfs, \"\", cfd, \"proc\") once init started",
        mount_at(&late, c, c"proc"),
        Errno::BUSY,
    )?;
    expect_errno(
        "move_mount(T_CONTAINER_ROOT) once init started",
        mount_root(&late, c),
        Errno::BUSY,
    )?;
    go.open(1)?;
    init.wait_exit(0)?;
    let after = sys::read_text("/proc/self/mountinfo")?;
    ensure!(after == before, "the caller's mounts changed after the run");
    Ok(())
}

/// fsconfig(FSCONFIG_SET_CONTAINER): a key or value is EINVAL, a bad fd EBADF, an fd that
/// is not a cfd EINVAL; after any parameter, twice, or on a context from fspick() EBUSY;
/// a file system that cannot follow the container's namespaces (cgroup2 keeps the caller's
/// cgroup namespace, devpts its mount namespace's instance) EOPNOTSUPP.
pub fn fsconfig_errors() -> Result<()> {
    require_fs()?;
    let cfd = h::create(&h::unique_name("fscfg"), CONTAINER_NEW_EMPTY_FS_NS)?;
    let c = cfd.as_raw_fd();
    let fs = ok("fsopen(tmpfs)", fsopen(c"tmpfs"))?;
    let f = fs.as_raw_fd();
    // Last, so that the closed number stays closed while it is used.
    let bad = h::bad_fds()?;
    let cmd = FSCONFIG_SET_CONTAINER;
    expect_errno(
        "SET_CONTAINER with a key",
        fsconfig(f, cmd, Some(c"mode"), None, c),
        Errno::INVAL,
    )?;
    expect_errno(
        "SET_CONTAINER with a value",
        fsconfig(f, cmd, None, Some(c"x"), c),
        Errno::INVAL,
    )?;
    for &(what, fd, errno) in &bad.cases {
        // fsconfig() refuses a negative aux before looking at it, as for FSCONFIG_SET_FD.
        let want = if fd < 0 { Errno::INVAL } else { errno };
        expect_errno(
            &format!("SET_CONTAINER with {what}"),
            set_container(&fs, fd),
            want,
        )?;
    }
    drop(bad);
    ok("SET_CONTAINER", set_container(&fs, c))?;
    expect_errno("SET_CONTAINER twice", set_container(&fs, c), Errno::BUSY)?;

    let late = ok("fsopen(tmpfs)", fsopen(c"tmpfs"))?;
    ok(
        "fsconfig(mode=0700)",
        fsconfig(
            late.as_raw_fd(),
            super::mount_calls::FSCONFIG_SET_STRING,
            Some(c"mode"),
            Some(c"0700"),
            0,
        ),
    )?;
    expect_errno(
        "SET_CONTAINER after a parameter",
        set_container(&late, c),
        Errno::BUSY,
    )?;

    for fstype in [c"cgroup2", c"devpts"] {
        let other = ok(
            &format!("fsopen({})", fstype.to_string_lossy()),
            fsopen(fstype),
        )?;
        expect_errno(
            &format!(
                "SET_CONTAINER on {}, which keeps the caller's namespace",
                fstype.to_string_lossy()
            ),
            set_container(&other, c),
            Errno::NOTSUP,
        )?;
    }

    let mnt = mount_new(c"tmpfs", None, &[])?;
    let picked = ok(
        "fspick(mfd, \"\", FSPICK_EMPTY_PATH)",
        fspick(mnt.as_raw_fd(), c"", FSPICK_EMPTY_PATH),
    )?;
    expect_errno(
        "SET_CONTAINER on an fspick() context",
        set_container(&picked, c),
        Errno::BUSY,
    )?;
    Ok(())
}

/// move_mount() to a cfd: T_CONTAINER_ROOT only for "/" of a container with an empty
/// mount namespace and a cfd (EINVAL otherwise; an empty path ENOENT, NULL EFAULT, as
/// getname() says); a container without a mount namespace of its own is no target
/// (EINVAL); an empty or absolute target path with a cfd is EINVAL; a mount of the caller's own namespace, or one already in the
/// container's, is not moved in (EINVAL); relative targets land inside.
pub fn move_mount_errors() -> Result<()> {
    require_fs()?;
    sys::private_mount_ns()?;
    let copy = h::create(&h::unique_name("mmcopy"), CONTAINER_NEW_FS_NS)?;
    let mfd = mount_new(c"tmpfs", None, &[])?;
    expect_errno(
        "T_CONTAINER_ROOT on a NEW_FS_NS container",
        mount_root(&mfd, copy.as_raw_fd()),
        Errno::INVAL,
    )?;
    let shared = h::create(&h::unique_name("mmshared"), 0)?;
    expect_errno(
        "move_mount to a container without a mount namespace of its own",
        mount_at(&mfd, shared.as_raw_fd(), c"tmp"),
        Errno::INVAL,
    )?;
    let cfd = h::create(&h::unique_name("mmempty"), CONTAINER_NEW_EMPTY_FS_NS)?;
    let c = cfd.as_raw_fd();
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_CONTAINER_ROOT;
    expect_errno(
        "T_CONTAINER_ROOT with the path \"x\"",
        move_mount(mfd.as_raw_fd(), c"", c, c"x", flags),
        Errno::INVAL,
    )?;
    expect_errno(
        "T_CONTAINER_ROOT with the path \"\" (no T_EMPTY_PATH)",
        move_mount(mfd.as_raw_fd(), c"", c, c"", flags),
        Errno::NOENT,
    )?;
    // SAFETY: NULL as the target path, which the kernel must refuse (EFAULT).
    let null_path = super::calls::check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mfd.as_raw_fd(),
            c"".as_ptr(),
            c,
            std::ptr::null::<libc::c_char>(),
            flags,
        )
    });
    expect_errno("T_CONTAINER_ROOT with a NULL path", null_path, Errno::FAULT)?;
    expect_errno(
        "T_CONTAINER_ROOT with AT_FDCWD",
        move_mount(mfd.as_raw_fd(), c"", libc::AT_FDCWD, c"/", flags),
        Errno::INVAL,
    )?;
    expect_errno(
        "move_mount to a cfd with no root",
        mount_at(&mfd, c, c"x"),
        Errno::NOENT,
    )?;
    let root = mount_new(c"tmpfs", Some(c), &[])?;
    ok("T_CONTAINER_ROOT", mount_root(&root, c))?;
    mkdir_at(&cfd, "a", 0o755)?;
    mkdir_at(&cfd, "b", 0o755)?;
    expect_errno(
        "move_mount to a cfd with an empty path",
        move_mount(
            mfd.as_raw_fd(),
            c"",
            c,
            c"",
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ),
        Errno::INVAL,
    )?;
    expect_errno(
        "move_mount to a cfd with the absolute path \"/a\"",
        mount_at(&mfd, c, c"/a"),
        Errno::INVAL,
    )?;
    for root in [".", "a/..", "../.."] {
        expect_errno(
            &format!("move_mount over the container's root ({root:?})"),
            mount_at(&mfd, c, &std::ffi::CString::new(root)?),
            Errno::BUSY,
        )?;
    }

    // A mount in the caller's own namespace stays there.
    let dir = TempDir::new("mmown")?;
    let own = sys::path_cstr(dir.path())?;
    let own_mnt = mount_new(c"tmpfs", None, &[])?;
    ok(
        "move_mount(tmpfs onto the test's own dir)",
        move_mount(
            own_mnt.as_raw_fd(),
            c"",
            libc::AT_FDCWD,
            &own,
            MOVE_MOUNT_F_EMPTY_PATH,
        ),
    )?;
    expect_errno(
        "move_mount(own mount, cfd, \"a\")",
        move_mount(libc::AT_FDCWD, &own, c, c"a", 0),
        Errno::INVAL,
    )?;
    rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::DETACH)
        .context("umount the test's own tmpfs")?;

    write_at(&mfd, "mark", 0o644, b"moved in\n")?;
    ok("move_mount(tmpfs, cfd, \"a\")", mount_at(&mfd, c, c"a"))?;
    let text = read_at(&cfd, "a/mark")?;
    ensure!(text == "moved in\n", "cfd a/mark holds {text:?}");
    expect_errno(
        "move_mount(cfd \"a\", cfd \"b\"): a mount already in the container",
        move_mount(c, c"a", c, c"b", 0),
        Errno::INVAL,
    )?;
    Ok(())
}

/// The cfd as dirfd: absolute paths and empty paths are EINVAL for every kind of call;
/// the *at() calls work relative to the container's root.
pub fn dirfd_calls() -> Result<()> {
    require_fs()?;
    let cfd = with_tmpfs_root("dirfd", 0)?;
    expect_errno(
        "openat(cfd, \"/etc\")",
        rustix::fs::openat(&cfd, "/etc", OFlags::PATH, Mode::empty()),
        Errno::INVAL,
    )?;
    expect_errno(
        "openat2(cfd, \"/etc\", RESOLVE_IN_ROOT)",
        rustix::fs::openat2(
            &cfd,
            "/etc",
            OFlags::PATH,
            Mode::empty(),
            rustix::fs::ResolveFlags::IN_ROOT,
        ),
        Errno::INVAL,
    )?;
    expect_errno(
        "mkdirat(cfd, \"/x\")",
        rustix::fs::mkdirat(&cfd, "/x", Mode::from_raw_mode(0o755)),
        Errno::INVAL,
    )?;
    expect_errno(
        "fchownat(cfd, \"\", AT_EMPTY_PATH)",
        rustix::fs::chownat(&cfd, "", None, None, AtFlags::EMPTY_PATH),
        Errno::INVAL,
    )?;
    expect_errno(
        "linkat(cfd, \"\", AT_FDCWD, \"/tmp/x\", AT_EMPTY_PATH)",
        rustix::fs::linkat(&cfd, "", rustix::fs::CWD, "/tmp/x", AtFlags::EMPTY_PATH),
        Errno::INVAL,
    )?;

    mkdir_at(&cfd, "d", 0o755)?;
    write_at(&cfd, "d/f", 0o600, b"hello\n")?;
    ok(
        "symlinkat(\"d/f\", cfd, \"s\")",
        rustix::fs::symlinkat("d/f", &cfd, "s"),
    )?;
    let target = ok(
        "readlinkat(cfd, \"s\")",
        rustix::fs::readlinkat(&cfd, "s", vec![]),
    )?;
    ensure!(target.as_bytes() == b"d/f", "readlinkat gave {target:?}");
    ok(
        "linkat(cfd, \"d/f\", cfd, \"g\")",
        rustix::fs::linkat(&cfd, "d/f", &cfd, "g", AtFlags::empty()),
    )?;
    ok(
        "renameat(cfd, \"g\", cfd, \"d/h\")",
        rustix::fs::renameat(&cfd, "g", &cfd, "d/h"),
    )?;
    ok(
        "fchmodat(cfd, \"d/h\", 0640)",
        rustix::fs::chmodat(&cfd, "d/h", Mode::from_raw_mode(0o640), AtFlags::empty()),
    )?;
    let st = ok(
        "fstatat(cfd, \"s\")",
        rustix::fs::statat(&cfd, "s", AtFlags::empty()),
    )?;
    ensure!(
        st.st_mode & 0o7777 == 0o640 && st.st_nlink == 2 && st.st_size == 6,
        "fstatat(cfd, \"s\"): mode {:o}, {} links, {} bytes; expected 640, 2, 6",
        st.st_mode & 0o7777,
        st.st_nlink,
        st.st_size
    );
    ok(
        "faccessat(cfd, \"d/f\", R_OK)",
        rustix::fs::accessat(&cfd, "d/f", rustix::fs::Access::READ_OK, AtFlags::empty()),
    )?;
    ok(
        "unlinkat(cfd, \"d/h\")",
        rustix::fs::unlinkat(&cfd, "d/h", AtFlags::empty()),
    )?;
    expect_errno(
        "fstatat(cfd, \"d/h\") after unlinkat",
        rustix::fs::statat(&cfd, "d/h", AtFlags::empty()),
        Errno::NOENT,
    )?;
    Ok(())
}

/// Lookups through the cfd are scoped like RESOLVE_IN_ROOT: "..", "../../..", absolute
/// symlinks and symlinks full of ".." all stay at the container's root; a symlink loop
/// is ELOOP; a name that exists only on the host is not found.
pub fn dirfd_scoped() -> Result<()> {
    require_fs()?;
    let cfd = with_tmpfs_root("scoped", 0)?;
    let root = ok("stat(cfd \".\")", id_at(&cfd, "."))?;
    mkdir_at(&cfd, "a", 0o755)?;
    mkdir_at(&cfd, "a/b", 0o755)?;
    write_at(&cfd, "marker", 0o644, b"inside\n")?;
    let host_only = format!("uapi-tests-host-only-{}", std::process::id());
    std::fs::write(format!("/{host_only}"), "host\n").context("write the host-only file")?;
    let result = (|| -> Result<()> {
        for (name, target) in [
            ("abs", "/".to_string()),
            ("up", "../../../..".to_string()),
            ("abs-marker", "/marker".to_string()),
            ("up-marker", "a/b/../../../../marker".to_string()),
            ("host", format!("/{host_only}")),
            ("host-up", format!("../../{host_only}")),
            ("loop1", "loop2".to_string()),
            ("loop2", "loop1".to_string()),
        ] {
            ok(
                &format!("symlinkat({target:?}, cfd, {name:?})"),
                rustix::fs::symlinkat(target.as_str(), &cfd, name),
            )?;
        }
        for path in [
            ".",
            "..",
            "../..",
            "../../..",
            "a/b/../../../..",
            "abs",
            "up",
            "a/../up/..",
        ] {
            let got = ok(&format!("stat(cfd, {path:?})"), id_at(&cfd, path))?;
            ensure!(
                got == root,
                "cfd {path:?} is {got:?}, not the root {root:?}"
            );
        }
        for path in ["abs-marker", "up-marker", "../marker", "abs/../../marker"] {
            let text = read_at(&cfd, path)?;
            ensure!(text == "inside\n", "cfd {path:?} holds {text:?}");
        }
        for path in [host_only.as_str(), "host", "host-up", "../../../host"] {
            expect_errno(
                &format!("stat(cfd, {path:?}) of a host-only name"),
                id_at(&cfd, path),
                Errno::NOENT,
            )?;
        }
        expect_errno("stat(cfd, \"loop1\")", id_at(&cfd, "loop1"), Errno::LOOP)?;
        Ok(())
    })();
    let _ = std::fs::remove_file(format!("/{host_only}"));
    result
}

/// How long lookups race with the renames, and how many at least.
const RACE_TIME: std::time::Duration = std::time::Duration::from_secs(5);
const RACE_ROUNDS: usize = 5000;

/// A directory renamed out of the container's root and back, over and over, while
/// lookups of "a/b/../../../.." go through the cfd: none ever ends above the root (only
/// the root itself, ENOENT, or EAGAIN/EXDEV as RESOLVE_IN_ROOT reports a race).
pub fn rename_race() -> Result<()> {
    require_fs()?;
    let dir = TempDir::new("rename-race")?;
    std::fs::create_dir_all(dir.join("root/a/b")).context("mkdir root/a/b")?;
    std::fs::create_dir(dir.join("out")).context("mkdir out")?;
    let cfd = h::create(&h::unique_name("race"), CONTAINER_NEW_EMPTY_FS_NS)?;
    let tree = ok(
        "open_tree(root, OPEN_TREE_CLONE)",
        open_tree(
            libc::AT_FDCWD,
            &sys::path_cstr(&dir.join("root"))?,
            OPEN_TREE_CLONE,
        ),
    )?;
    ok("T_CONTAINER_ROOT", mount_root(&tree, cfd.as_raw_fd()))?;
    let root = ok("stat(cfd \".\")", id_at(&cfd, "."))?;
    let above = [dir.path().to_path_buf(), "/".into(), "/tmp".into()]
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| (m.dev(), m.ino())))
        .collect::<std::io::Result<Vec<_>>>()
        .context("stat the directories above the root")?;

    let (inside, outside) = (dir.join("root/a"), dir.join("out/a"));
    let renamer = Proc::fork("the renamer", move || loop {
        std::fs::rename(&inside, &outside).context("rename root/a out")?;
        std::fs::rename(&outside, &inside).context("rename out/a back")?;
    })?;
    let (mut at_root, mut raced) = (0usize, 0usize);
    let start = std::time::Instant::now();
    while at_root + raced < RACE_ROUNDS || start.elapsed() < RACE_TIME {
        match id_at(&cfd, "a/b/../../../..") {
            Ok(id) if id == root => at_root += 1,
            Ok(id) if above.contains(&id) => bail!("a lookup through the cfd escaped to {id:?}"),
            Ok(id) => bail!("a lookup through the cfd ended at {id:?}, not the root {root:?}"),
            Err(Errno::NOENT | Errno::AGAIN | Errno::XDEV) => raced += 1,
            Err(e) => bail!("stat(cfd, \"a/b/../../../..\"): {}", errno_name(e)),
        }
    }
    renamer.check()?;
    drop(renamer);
    println!(
        "# {} lookups: {at_root} at the root, {raced} refused during a rename",
        at_root + raced
    );
    ensure!(at_root > 0, "no lookup succeeded in {raced} tries");
    Ok(())
}

/// Who may not build a container from outside: a user without CAP_SYS_ADMIN (mainline's
/// may_mount() already refuses), and a sandbox in its own user, mount and network
/// namespaces holding a cfd received over SCM_RIGHTS: FSCONFIG_SET_CONTAINER, move_mount
/// into it, T_CONTAINER_ROOT and an idmapping with it are EPERM. Its lookups through the
/// cfd work with its own credentials until init starts, then are EPERM.
pub fn sandbox_eperm() -> Result<()> {
    require_fs()?;
    let cfd = with_tmpfs_root("sandbox", 0)?;
    mkdir_at(&cfd, "pub", 0o755)?;
    let empty = h::create(&h::unique_name("sbempty"), CONTAINER_NEW_EMPTY_FS_NS)?;

    let user = Proc::fork("the unprivileged user", || {
        h::become_user(USER)?;
        expect_errno("fsopen(tmpfs) as a user", fsopen(c"tmpfs"), Errno::PERM)?;
        expect_errno(
            "move_mount(AT_FDCWD \"/tmp\", cfd, \"pub\") as a user",
            move_mount(libc::AT_FDCWD, c"/tmp", cfd.as_raw_fd(), c"pub", 0),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    let mut user = user;
    user.wait_exit(0)?;

    let (mine, theirs) = socketpair()?;
    let (checked, started, go) = (Pipe::new()?, Pipe::new()?, Pipe::new()?);
    let mut sandbox = Proc::fork("the sandbox", || {
        h::become_user(USER)?;
        unshare(
            libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET,
            "USER|NS|NET",
        )?;
        map_root_to(USER, USER)?;
        let cfd = recv_fd(&theirs)?;
        let empty = recv_fd(&theirs)?;
        let c = cfd.as_raw_fd();
        let fs = ok("fsopen(tmpfs) in the sandbox", fsopen(c"tmpfs"))?;
        expect_errno("FSCONFIG_SET_CONTAINER", set_container(&fs, c), Errno::PERM)?;
        let mfd = mount_new(c"tmpfs", None, &[])?;
        expect_errno(
            "move_mount(own tmpfs, cfd, \"pub\")",
            mount_at(&mfd, c, c"pub"),
            Errno::PERM,
        )?;
        expect_errno(
            "T_CONTAINER_ROOT",
            mount_root(&mfd, empty.as_raw_fd()),
            Errno::PERM,
        )?;
        expect_errno("mount_setattr(IDMAP, cfd)", idmap(&mfd, c), Errno::PERM)?;
        ok("stat(cfd, \"pub\") before init starts", id_at(&cfd, "pub"))?;
        checked.send(b"c")?;
        started.wait();
        expect_errno(
            "stat(cfd, \"pub\") once init started",
            id_at(&cfd, "pub"),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    drop(theirs);
    send_fd(&mine, &cfd)?;
    send_fd(&mine, &empty)?;
    checked.recv(1, Some(&sandbox))?;
    let mut init = Proc::init(&cfd, || {
        go.wait();
        Ok(0)
    })?;
    started.open(1)?;
    sandbox.wait_exit(0)?;
    ok(
        "stat(cfd, \"pub\") by the creator once init started",
        id_at(&cfd, "pub"),
    )?;
    go.open(1)?;
    init.wait_exit(0)?;
    Ok(())
}

/// SECBIT_NO_SETUID_FIXUP: keep the capabilities across a change of effective ids.
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;

/// A NEW_USER_NS container assembled by a supervisor running as USER (keeping its
/// capabilities), so the container's root is USER on the host: the tmpfs root made with
/// FSCONFIG_SET_CONTAINER and the files created through the cfd belong to the container's
/// root. The "alien metadata problem" (seed 002): a host directory whose files carry the host's ids
/// (root's here, as an unpacked image's would) shows them as nobody's when bind-mounted
/// in as it is, and as the container root's when idmapped with the container's user
/// namespace (named by the cfd: no process needed) and moved in; what the init creates
/// there lands on disk with the host's ids.
pub fn userns_idmapped() -> Result<()> {
    require_fs()?;
    sys::private_mount_ns()?;
    let dir = TempDir::new("idmap")?;
    let tmpfs = mount_new(c"tmpfs", None, &[(c"mode", c"0755")])?;
    ok(
        "move_mount(tmpfs onto the test's dir)",
        move_mount(
            tmpfs.as_raw_fd(),
            c"",
            libc::AT_FDCWD,
            &sys::path_cstr(dir.path())?,
            MOVE_MOUNT_F_EMPTY_PATH,
        ),
    )?;
    let data = dir.join("data");
    std::fs::create_dir(&data).context("mkdir data")?;
    std::fs::write(data.join("hostfile"), "host\n").context("write data/hostfile")?;
    let data_c = sys::path_cstr(&data)?;
    let mut supervisor = Proc::fork("the supervisor", || {
        // SAFETY: prctl and credential calls on this single-threaded process.
        unsafe {
            if libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0
                || libc::setegid(USER) != 0
                || libc::seteuid(USER) != 0
            {
                bail!(
                    "becoming euid {USER} with capabilities: {}",
                    errno_name(sys::last_errno())
                );
            }
        }
        let cfd = with_tmpfs_root("idmap", CONTAINER_NEW_USER_NS | CONTAINER_NEW_PID_NS)?;
        let c = cfd.as_raw_fd();
        for d in ["data", "plain"] {
            mkdir_at(&cfd, d, 0o755)?;
        }
        write_at(&cfd, "made-outside", 0o644, b"outside\n")?;
        let plain = ok(
            "open_tree(data, OPEN_TREE_CLONE)",
            open_tree(libc::AT_FDCWD, &data_c, OPEN_TREE_CLONE),
        )?;
        ok(
            "move_mount(plain, cfd, \"plain\")",
            mount_at(&plain, c, c"plain"),
        )?;
        let tree = ok(
            "open_tree(data, OPEN_TREE_CLONE)",
            open_tree(libc::AT_FDCWD, &data_c, OPEN_TREE_CLONE),
        )?;
        ok(
            "mount_setattr(MOUNT_ATTR_IDMAP, userns_fd = cfd)",
            idmap(&tree, c),
        )?;
        ok(
            "move_mount(idmapped, cfd, \"data\")",
            mount_at(&tree, c, c"data"),
        )?;
        let mut init = Proc::init(&cfd, || {
            let owner = |path: &str| -> Result<(u32, u32)> {
                let m = std::fs::metadata(path).with_context(|| format!("stat {path}"))?;
                Ok((m.uid(), m.gid()))
            };
            for (path, want) in [
                ("/", (0, 0)),
                ("/made-outside", (0, 0)),
                ("/data", (0, 0)),
                ("/data/hostfile", (0, 0)),
                ("/plain", (h::NOBODY, h::NOBODY)),
                ("/plain/hostfile", (h::NOBODY, h::NOBODY)),
            ] {
                let got = owner(path)?;
                ensure!(
                    got == want,
                    "in the container {path} is owned by {got:?}, not {want:?}"
                );
            }
            std::fs::write("/data/made-inside", "inside\n").context("write /data/made-inside")?;
            Ok(0)
        })?;
        init.wait_exit(0)?;
        Ok(0)
    })?;
    supervisor.wait_exit(0)?;
    let m = std::fs::metadata(data.join("made-inside")).context("stat data/made-inside")?;
    ensure!(
        (m.uid(), m.gid()) == (0, 0),
        "on the host data/made-inside is owned by {}:{}, not the directory's 0:0",
        m.uid(),
        m.gid()
    );
    rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::DETACH)
        .context("umount the test's tmpfs")?;
    Ok(())
}

/// A rootless supervisor: an unprivileged user in user and mount namespaces of its own
/// builds a container with a new user namespace from outside (tmpfs root and procfs made
/// in the container's namespaces), and its init sees its own pid 1 and a root owned by
/// its root. Once init runs, the supervisor still looks through the cfd; a helper with
/// its uid but no capabilities does not (setns()'s rule, EPERM). The same user gets EOPNOTSUPP for cgroup2, which v3's draft let it
/// reconfigure host-wide (its context keeps the caller's cgroup namespace).
pub fn rootless_supervisor() -> Result<()> {
    require_fs()?;
    let mut supervisor = Proc::fork("the rootless supervisor", || {
        h::become_user(USER)?;
        unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS, "USER|NS")?;
        map_root_to(USER, USER)?;
        let cfd = with_tmpfs_root("rootless", CONTAINER_NEW_USER_NS | CONTAINER_NEW_PID_NS)?;
        let c = cfd.as_raw_fd();
        let cgroup = ok("fsopen(cgroup2)", fsopen(c"cgroup2"))?;
        expect_errno(
            "SET_CONTAINER on cgroup2",
            set_container(&cgroup, c),
            Errno::NOTSUP,
        )?;
        mkdir_at(&cfd, "proc", 0o555)?;
        let proc = mount_new(c"proc", Some(c), &[])?;
        ok(
            "move_mount(proc, cfd, \"proc\")",
            mount_at(&proc, c, c"proc"),
        )?;
        let go = Pipe::new()?;
        let mut init = Proc::init(&cfd, || {
            go.wait();
            let me = std::fs::read_link("/proc/self").context("readlink /proc/self")?;
            ensure!(me.as_os_str() == "1", "/proc/self is {me:?}, not 1");
            let m = std::fs::metadata("/").context("stat /")?;
            ensure!(
                (m.uid(), m.gid()) == (0, 0),
                "the root is owned by {}:{}, not the container's root",
                m.uid(),
                m.gid()
            );
            Ok(0)
        })?;
        // Once init runs: the supervisor (capable in its user namespace) still
        // looks through the cfd, a helper with its uid and no capabilities does not.
        ok("stat(cfd, \"proc\") by the supervisor", id_at(&cfd, "proc"))?;
        let mut helper = Proc::fork("the capability-less helper", || {
            capset(0, 0, 0)?;
            expect_errno(
                "stat(cfd, \"proc\") without capabilities once init started",
                id_at(&cfd, "proc"),
                Errno::PERM,
            )?;
            Ok(0)
        })?;
        helper.wait_exit(0)?;
        go.open(1)?;
        init.wait_exit(0)?;
        Ok(0)
    })?;
    supervisor.wait_exit(0)
}
