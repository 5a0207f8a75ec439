//! `kc supervise` / `kc run --supervise` (uapi-tests/src/kc/supervise.rs, policy.rs):
//! a member's mount and mknod requests are carried out by kc from outside when the
//! policy allows them and answered EPERM otherwise; a member that rewrites its
//! arguments after the notification cannot change what is mounted; a member killed
//! while its request is pending does not hang kc.
//!
//! Each test runs `kc run --supervise --ns fs,uts NAME -- /bin/uapi-tests --member
//! SCENARIO DIR...`: the member is this binary (`member()`), in a copy of the host's
//! mount namespace (so the test's scratch directory is there), printing one line per
//! step; the test reads them, and the mount tables, while the member holds on (it waits
//! for its stdin, kc's, to close).

use std::ffi::{CStr, CString};
use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::kc::{expect_lines, require_kc, Kc};
use crate::sys::{self, errno_name, last_errno, TempDir};

const TMPFS_MAGIC: i64 = 0x0102_1994;
const MS_BIND: libc::c_ulong = 4096;
const MS_REC: libc::c_ulong = 16384;
const MS_REMOUNT: libc::c_ulong = 32;
const MS_NOSUID: libc::c_ulong = 2;
/// Rounds of each race in `toctou`.
const ROUNDS: usize = 400;
/// How long a step of a member may take (a bound for a failure).
const STEP: Duration = Duration::from_secs(20);

/// `kc run --supervise` with a member scenario; `extra` go before the name.
fn start(tag: &str, extra: &[&str], scenario: &str, args: &[&str]) -> Result<Kc> {
    let name = super::helpers::unique_name(tag)
        .to_string_lossy()
        .into_owned();
    let mut argv = vec!["run", "--supervise", "--ns", "fs,uts"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&[&name, "--", "/bin/uapi-tests", "--member", scenario]);
    argv.extend_from_slice(args);
    Kc::spawn(&argv)
}

/// Mount points of a mountinfo under `dir`, with their filesystem type.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<(String, String)> {
    let dir = dir.display().to_string();
    mountinfo
        .lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let fstype = l.split(" - ").nth(1)?.split(' ').next()?;
            (point.starts_with(&dir)).then(|| (point.to_string(), fstype.to_string()))
        })
        .collect()
}

/// Requires the host (this test's mount namespace) to have nothing mounted under `dir`.
fn expect_host_clean(dir: &Path) -> Result<()> {
    let host = sys::read_text("/proc/self/mountinfo")?;
    let found = mounts_under(&host, dir);
    ensure!(
        found.is_empty(),
        "a member's mount is visible on the host: {found:?}"
    );
    Ok(())
}

/// An allowed tmpfs mount and a null device node: the member gets 0, the tmpfs is in
/// the container's mount namespace (not the host's), the node is a real 1:3 owned by
/// the member; kc counts both as allowed.
pub fn allowed() -> Result<()> {
    require_kc()?;
    let dir = TempDir::new("sup-ok")?;
    std::fs::create_dir(dir.join("mnt")).context("mkdir mnt")?;
    let d = dir.path().display().to_string();
    let kc = start("supok", &[], "allowed", &[&d])?;
    let pid: libc::pid_t = kc
        .line(STEP)?
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .context("the member's first line is not its pid")?;
    for want in [
        "mount tmpfs: OK",
        "statfs: tmpfs",
        "mknod null: OK",
        "ready",
    ] {
        let got = kc.line(STEP)?;
        ensure!(got == want, "member printed {got:?}, expected {want:?}");
    }
    let theirs = sys::read_text(format!("/proc/{pid}/mountinfo"))?;
    let found = mounts_under(&theirs, dir.path());
    ensure!(
        found == [(format!("{d}/mnt"), "tmpfs".to_string())],
        "the container's mounts under {d}: {found:?}, want one tmpfs at {d}/mnt"
    );
    expect_host_clean(dir.path())?;
    let meta = std::fs::symlink_metadata(dir.join("null")).context("stat the node")?;
    ensure!(
        meta.file_type().is_char_device()
            && std::os::unix::fs::MetadataExt::rdev(&meta) == rustix::fs::makedev(1, 3),
        "{d}/null is not the null device: {meta:?}"
    );
    let (code, rest, err) = kc.finish(STEP)?;
    ensure!(
        code == 0 && rest.is_empty(),
        "kc run --supervise: exit {code}, stdout {rest:?}, stderr:\n{err}"
    );
    ensure!(
        err.lines()
            .any(|l| l.ends_with("supervisor: 2 allowed, 0 denied, 0 continued, 0 dropped")),
        "kc's summary: {err}"
    );
    expect_host_clean(dir.path())
}

/// What the policy does not allow is EPERM and leaves no trace: other filesystem types,
/// a bind of a host path not allowed, a recursive bind, a remount, an unknown option,
/// the new mount API, a block device, a character device not on the list; the allowed
/// bind works and shows the allowed directory.
pub fn forbidden() -> Result<()> {
    require_kc()?;
    let dir = TempDir::new("sup-no")?;
    for sub in ["mnt", "allowed", "secret"] {
        std::fs::create_dir(dir.join(sub)).with_context(|| format!("mkdir {sub}"))?;
    }
    std::fs::write(dir.join("allowed/marker"), "allowed").context("marker")?;
    std::fs::write(dir.join("secret/marker"), "secret").context("marker")?;
    let d = dir.path().display().to_string();
    let allow = format!("{d}/allowed");
    let kc = start("supno", &["--allow-bind", &allow], "forbidden", &[&d])?;
    let pid: libc::pid_t = kc
        .line(STEP)?
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .context("the member's first line is not its pid")?;
    let mut got = Vec::new();
    loop {
        let line = kc.line(STEP)?;
        if line == "ready" {
            break;
        }
        got.push(line);
    }
    expect_lines(
        "the forbidden requests",
        &got,
        &[
            "ext4: EPERM",
            "ramfs: EPERM",
            "bind secret: EPERM",
            "bind allowed recursive: EPERM",
            "remount: EPERM",
            "tmpfs huge=always: EPERM",
            "fsopen: EPERM",
            "mknod sda: EPERM",
            "mknod mem: EPERM",
            "mount /: EPERM",
            "bind allowed: OK",
            "marker: allowed",
        ],
        "",
    )?;
    let theirs = sys::read_text(format!("/proc/{pid}/mountinfo"))?;
    let found = mounts_under(&theirs, dir.path());
    ensure!(
        found.len() == 1 && found[0].0 == format!("{d}/mnt"),
        "the container's mounts under {d}: {found:?}, want only the bind at {d}/mnt"
    );
    for node in ["sda", "mem"] {
        ensure!(
            std::fs::symlink_metadata(dir.join(node)).is_err(),
            "{d}/{node} exists"
        );
    }
    expect_host_clean(dir.path())?;
    let (code, _, err) = kc.finish(STEP)?;
    ensure!(code == 0, "kc run --supervise: exit {code}, stderr:\n{err}");
    ensure!(
        err.lines()
            .any(|l| l.ends_with("supervisor: 1 allowed, 10 denied, 0 continued, 0 dropped")),
        "kc's summary: {err}"
    );
    Ok(())
}

/// The seccomp-unotify TOCTOU: one member thread flips the fstype between "tmpfs" and
/// "ramfs", and the bind source between an allowed and a forbidden directory, while
/// another mounts in a loop. Every mount that succeeds is a tmpfs or shows the allowed
/// directory (checked by the member after each one, and the table afterwards); both
/// answers happened, so the race ran.
pub fn toctou() -> Result<()> {
    require_kc()?;
    let dir = TempDir::new("sup-race")?;
    for sub in ["mnt", "okdir", "nodir"] {
        std::fs::create_dir(dir.join(sub)).with_context(|| format!("mkdir {sub}"))?;
    }
    std::fs::write(dir.join("okdir/marker"), "ok").context("marker")?;
    std::fs::write(dir.join("nodir/marker"), "no").context("marker")?;
    let d = dir.path().display().to_string();
    let allow = format!("{d}/okdir");
    let kc = start("suprace", &["--allow-bind", &allow], "toctou", &[&d])?;
    let pid: libc::pid_t = kc
        .line(STEP)?
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .context("the member's first line is not its pid")?;
    let mut results = Vec::new();
    for _ in 0..2 {
        let line = kc.line(Duration::from_secs(120))?;
        results.push(line);
    }
    for line in &results {
        // "fstype: A allowed, R refused, F forbidden"
        let nums: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect();
        let [a, r, f] = nums[..] else {
            bail!("member printed {line:?}");
        };
        ensure!(
            f == 0,
            "{line}: the supervisor mounted what the policy forbids"
        );
        ensure!(
            a + r == ROUNDS && a > 0 && r > 0,
            "{line}: want {ROUNDS} rounds with both answers (the race did not run)"
        );
    }
    ensure!(kc.line(STEP)? == "ready", "member did not finish");
    let theirs = sys::read_text(format!("/proc/{pid}/mountinfo"))?;
    ensure!(
        mounts_under(&theirs, dir.path()).is_empty() && !theirs.contains(" - ramfs "),
        "left in the container's mount table: {:?}",
        mounts_under(&theirs, dir.path())
    );
    expect_host_clean(dir.path())?;
    let (code, _, err) = kc.finish(STEP)?;
    ensure!(code == 0, "kc run --supervise: exit {code}, stderr:\n{err}");
    Ok(())
}

/// A member killed while its mount request is pending (kc stopped with SIGSTOP
/// meanwhile): kc drops the request and serves the next one.
pub fn member_killed() -> Result<()> {
    require_kc()?;
    let dir = TempDir::new("sup-kill")?;
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.join(sub)).with_context(|| format!("mkdir {sub}"))?;
    }
    let d = dir.path().display().to_string();
    let mut kc = start("supkill", &[], "pending", &[&d])?;
    let child: libc::pid_t = kc
        .line(STEP)?
        .strip_prefix("child ")
        .and_then(|p| p.parse().ok())
        .context("the member's first line is not its child's pid")?;
    let kc_pid = kc.pid();
    // SAFETY: signals our own child process.
    unsafe { libc::kill(kc_pid, libc::SIGSTOP) };
    let stopped = Cont(kc_pid);
    kc.send("mount")?;
    // The child sits in mount(2), waiting for the (stopped) supervisor.
    let deadline = Instant::now() + STEP;
    loop {
        let text = sys::read_text(format!("/proc/{child}/syscall")).unwrap_or_default();
        if text.split(' ').next() == Some(&libc::SYS_mount.to_string()) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the member's child never blocked in mount(2): {text:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: signals a process this test started (through kc).
    unsafe { libc::kill(child, libc::SIGKILL) };
    drop(stopped);
    ensure!(
        kc.line(STEP)? == "child: killed by SIGKILL",
        "the member's child did not die"
    );
    kc.send("again")?;
    let got = kc.line(STEP)?;
    ensure!(
        got == "second: OK",
        "after a dropped request the next one got {got:?}"
    );
    let (code, _, err) = kc.finish(STEP)?;
    ensure!(code == 0, "kc run --supervise: exit {code}, stderr:\n{err}");
    // The killed child's request is dropped (or never received) when the kill wins,
    // and allowed when kc's answer reached the kernel first; it is never denied.
    let counts = summary_counts(&err)?;
    ensure!(
        counts[1] == 0 && counts[2] == 0 && (1..=2).contains(&counts[0]),
        "kc's summary (allowed, denied, continued, dropped) = {counts:?}: {err}"
    );
    Ok(())
}

/// The four numbers of kc's "supervisor: A allowed, D denied, C continued, X dropped".
fn summary_counts(stderr: &str) -> Result<[u64; 4]> {
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("supervisor: ").map(|(_, rest)| rest))
        .with_context(|| format!("no supervisor summary in kc's stderr:\n{stderr}"))?;
    let mut counts = [0; 4];
    let mut words = line.split([' ', ',']).filter(|w| !w.is_empty());
    for (count, label) in counts
        .iter_mut()
        .zip(["allowed", "denied", "continued", "dropped"])
    {
        let (n, l) = (words.next(), words.next());
        ensure!(l == Some(label), "kc's summary {line:?}: expected {label}");
        *count = n
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("kc's summary {line:?}: no number before {label}"))?;
    }
    Ok(counts)
}

/// SIGCONTs a stopped process on drop, whatever happens to the test.
struct Cont(libc::pid_t);

impl Drop for Cont {
    fn drop(&mut self) {
        // SAFETY: signals a process the test stopped.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

// ---------------------------------------------------------------------------------------
// The members (run as `uapi-tests --member SCENARIO DIR`, in the container)

/// `mount(2)` with raw pointers (NULL for None); "OK" or the errno's name.
fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> String {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: NULL or NUL-terminated strings.
    let r = unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) };
    if r == 0 {
        "OK".to_string()
    } else {
        errno_name(last_errno())
    }
}

fn mknod(path: &str, mode: u32, major: u32, minor: u32) -> Result<String> {
    let c = CString::new(path)?;
    // SAFETY: a NUL-terminated path and integers.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    Ok(if r == 0 {
        "OK".to_string()
    } else {
        errno_name(last_errno())
    })
}

fn say(line: &str) {
    crate::harness::emit(line);
}

/// Blocks until stdin (kc's, which the member inherits) closes.
fn hold() {
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
}

fn c(s: &str) -> Result<CString> {
    CString::new(s).context("NUL in a path")
}

/// `uapi-tests --member SCENARIO ARGS...`: the member side of the tests above; its
/// exit status.
pub fn member(args: &[String]) -> i32 {
    let run = || -> Result<()> {
        let [scenario, dir, ..] = args else {
            bail!("usage: uapi-tests --member SCENARIO DIR");
        };
        match scenario.as_str() {
            "allowed" => member_allowed(dir),
            "forbidden" => member_forbidden(dir),
            "toctou" => member_toctou(dir),
            "pending" => member_pending(dir),
            other => bail!("no member scenario {other:?}"),
        }
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("member: {e:#}");
            1
        }
    }
}

fn member_allowed(d: &str) -> Result<()> {
    say(&format!("pid {}", std::process::id()));
    let mnt = c(&format!("{d}/mnt"))?;
    say(&format!(
        "mount tmpfs: {}",
        mount(
            Some(c"tmpfs"),
            &mnt,
            Some(c"tmpfs"),
            MS_NOSUID,
            Some(c"size=1m,mode=755")
        )
    ));
    let st = rustix::fs::statfs(mnt.as_c_str()).context("statfs")?;
    say(if st.f_type == TMPFS_MAGIC {
        "statfs: tmpfs"
    } else {
        "statfs: not tmpfs"
    });
    say(&format!(
        "mknod null: {}",
        mknod(&format!("{d}/null"), libc::S_IFCHR | 0o666, 1, 3)?
    ));
    say("ready");
    hold();
    Ok(())
}

fn member_forbidden(d: &str) -> Result<()> {
    say(&format!("pid {}", std::process::id()));
    let mnt = c(&format!("{d}/mnt"))?;
    let secret = c(&format!("{d}/secret"))?;
    let allowed = c(&format!("{d}/allowed"))?;
    say(&format!(
        "ext4: {}",
        mount(Some(c"/dev/vda"), &mnt, Some(c"ext4"), 0, None)
    ));
    say(&format!(
        "ramfs: {}",
        mount(Some(c"none"), &mnt, Some(c"ramfs"), 0, None)
    ));
    say(&format!(
        "bind secret: {}",
        mount(Some(&secret), &mnt, None, MS_BIND, None)
    ));
    say(&format!(
        "bind allowed recursive: {}",
        mount(Some(&allowed), &mnt, None, MS_BIND | MS_REC, None)
    ));
    say(&format!(
        "remount: {}",
        mount(None, c"/", None, MS_REMOUNT, None)
    ));
    say(&format!(
        "tmpfs huge=always: {}",
        mount(
            Some(c"tmpfs"),
            &mnt,
            Some(c"tmpfs"),
            0,
            Some(c"huge=always")
        )
    ));
    // SAFETY: a NUL-terminated string and an integer.
    let r = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 0) };
    say(&format!(
        "fsopen: {}",
        if r >= 0 {
            "OK".to_string()
        } else {
            errno_name(last_errno())
        }
    ));
    say(&format!(
        "mknod sda: {}",
        mknod(&format!("{d}/sda"), libc::S_IFBLK | 0o600, 8, 0)?
    ));
    say(&format!(
        "mknod mem: {}",
        mknod(&format!("{d}/mem"), libc::S_IFCHR | 0o600, 1, 1)?
    ));
    say(&format!(
        "mount /: {}",
        mount(
            Some(c"tmpfs"),
            c"/",
            Some(c"tmpfs"),
            0x2000, /* MS_MOVE */
            None
        )
    ));
    say(&format!(
        "bind allowed: {}",
        mount(Some(&allowed), &mnt, None, MS_BIND, None)
    ));
    let marker = std::fs::read_to_string(format!("{d}/mnt/marker")).unwrap_or_default();
    say(&format!("marker: {marker}"));
    say("ready");
    hold();
    Ok(())
}

/// A buffer another thread rewrites: two NUL-terminated values of equal length.
struct Flip {
    buf: Box<[u8]>,
}

fn member_toctou(d: &str) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    say(&format!("pid {}", std::process::id()));
    let mnt = c(&format!("{d}/mnt"))?;
    let (ok, no) = (format!("{d}/okdir\0"), format!("{d}/nodir\0"));
    let mut fstype = Flip {
        buf: b"tmpfs\0".to_vec().into_boxed_slice(),
    };
    let mut source = Flip {
        buf: ok.as_bytes().to_vec().into_boxed_slice(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (fs_addr, src_addr) = (
        fstype.buf.as_mut_ptr() as usize,
        source.buf.as_mut_ptr() as usize,
    );
    let flipper = {
        let stop = stop.clone();
        let (ok, no) = (ok.clone().into_bytes(), no.clone().into_bytes());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (ty, src): (&[u8], &[u8]) = if i.is_multiple_of(2) {
                    (b"ramfs\0", &no)
                } else {
                    (b"tmpfs\0", &ok)
                };
                // SAFETY: both buffers outlive the thread (joined below) and have these
                // lengths; the racing reads are the point of the test (the kernel and
                // kc read them through /proc/PID/mem and copy_from_user, bytewise).
                unsafe {
                    std::ptr::copy_nonoverlapping(ty.as_ptr(), fs_addr as *mut u8, ty.len());
                    std::ptr::copy_nonoverlapping(src.as_ptr(), src_addr as *mut u8, src.len());
                }
                i += 1;
                // One flip each time the flipper runs (the lab's kernel is
                // uniprocessor): a read after a context switch, such as the kernel's
                // second read of a continued call, sees the other value half the time.
                std::thread::yield_now();
            }
        })
    };
    let mut lines = Vec::new();
    for bind in [false, true] {
        let (mut allowed, mut refused, mut forbidden) = (0, 0, 0);
        for _ in 0..ROUNDS {
            // SAFETY: the buffers are live and NUL-terminated; see the flipper.
            let r = unsafe {
                if bind {
                    libc::mount(
                        src_addr as *const libc::c_char,
                        mnt.as_ptr(),
                        std::ptr::null(),
                        MS_BIND,
                        std::ptr::null(),
                    )
                } else {
                    libc::mount(
                        c"none".as_ptr(),
                        mnt.as_ptr(),
                        fs_addr as *const libc::c_char,
                        0,
                        std::ptr::null(),
                    )
                }
            };
            if r != 0 {
                let e = last_errno();
                ensure!(
                    e == sys::Errno::PERM,
                    "mount: {} (want 0 or EPERM)",
                    errno_name(e)
                );
                refused += 1;
                continue;
            }
            let good = if bind {
                std::fs::read_to_string(format!("{d}/mnt/marker")).unwrap_or_default() == "ok"
            } else {
                rustix::fs::statfs(mnt.as_c_str()).is_ok_and(|s| s.f_type == TMPFS_MAGIC)
            };
            if good {
                allowed += 1;
            } else {
                forbidden += 1;
            }
            rustix::mount::unmount(mnt.as_c_str(), rustix::mount::UnmountFlags::empty())
                .context("umount")?;
        }
        lines.push(format!(
            "{}: {allowed} allowed, {refused} refused, {forbidden} forbidden",
            if bind { "bind" } else { "fstype" }
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    drop((fstype, source));
    for l in &lines {
        say(l);
    }
    say("ready");
    hold();
    Ok(())
}

fn member_pending(d: &str) -> Result<()> {
    let go = sys::pipe()?;
    let a = c(&format!("{d}/a"))?;
    let b = c(&format!("{d}/b"))?;
    let child = sys::fork_child(|| {
        sys::raw_wait_byte(go.0.as_raw_fd());
        let _ = mount(Some(c"tmpfs"), &a, Some(c"tmpfs"), 0, None);
        0
    })?;
    say(&format!("child {}", child.pid));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("stdin")?;
    sys::raw_write(go.1.as_raw_fd(), b"g");
    let mut child = child;
    let status = child.wait()?;
    say(&format!(
        "child: {}",
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
            "killed by SIGKILL".to_string()
        } else {
            sys::describe_status(status)
        }
    ));
    line.clear();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("stdin")?;
    say(&format!(
        "second: {}",
        mount(Some(c"tmpfs"), &b, Some(c"tmpfs"), 0, None)
    ));
    hold();
    Ok(())
}
