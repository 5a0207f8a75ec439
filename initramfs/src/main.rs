//! The guest's `/init`.
//!
//! Mounts proc, sysfs, devtmpfs, tmpfs and cgroup2, installs the busybox
//! applets, makes [`BIN_MINIMAL`] (a tiny root file system for `kc run
//! --rootfs`), runs the job in [`JOB_PATH`], prints the [`ExitReport`] marker on
//! the console and leaves QEMU through the isa-debug-exit port. Anything that
//! goes wrong is printed with [`INIT_ERROR_MARKER`] so the host can quote it.

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use kcontainer_init::{ExitReport, Job, DEBUG_EXIT_PORT, INIT_ERROR_MARKER, JOB_PATH};

fn main() {
    let status = match run() {
        Ok(status) => status,
        Err(err) => {
            println!("{INIT_ERROR_MARKER}: {err:#}");
            125
        }
    };
    kmemleak_scan();
    let report = ExitReport {
        status,
        tainted: tainted().unwrap_or(u64::MAX),
    };
    println!("{}", report.line());
    power_off(report.port_byte());
}

fn run() -> Result<i32> {
    mount_pseudo_filesystems()?;
    install_busybox()?;
    make_bin_minimal()?;
    install_request_key()?;
    let job: Job =
        serde_json::from_slice(&fs::read(JOB_PATH).with_context(|| format!("reading {JOB_PATH}"))?)
            .with_context(|| format!("parsing {JOB_PATH}"))?;
    let Some((program, args)) = job.argv.split_first() else {
        bail!("{JOB_PATH}: empty argv");
    };

    let mut cmd = if job.interactive {
        // cttyhack makes the real console (ttyS0) the controlling terminal
        // of the new session (see pre_exec below), so job control and Ctrl-C
        // work. Not busybox's setsid: it forks when already a session leader.
        let mut cmd = Command::new("/bin/busybox");
        cmd.args(["cttyhack", program]).args(args);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    };
    cmd.env_clear()
        .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
        .env("HOME", "/root")
        .env("TERM", "linux")
        .current_dir("/");
    if let Some(path) = &job.stdout {
        let out = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        cmd.stdout(Stdio::from(out));
    }
    // SAFETY: setsid() is async-signal-safe; the closure touches nothing else.
    // A new session keeps the job apart from /init (pid 1 ignores signals it
    // has no handler for, its children must not).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", job.argv.join(" ")))?;
    let pid = child.id() as libc::pid_t;
    // As pid 1 we inherit every orphan: reap them until our own child ends.
    loop {
        let mut wstatus = 0;
        // SAFETY: plain waitpid on any child with a valid out pointer.
        let reaped = unsafe { libc::waitpid(-1, &mut wstatus, 0) };
        if reaped == pid {
            // Keep std's view consistent (the child is gone; ignore its answer).
            let _ = child.try_wait();
            let status = std::process::ExitStatus::from_raw(wstatus);
            return Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        if reaped < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err).context("waitpid");
            }
        }
    }
}

fn mount_pseudo_filesystems() -> Result<()> {
    let mounts: [(&str, &str, &str); 5] = [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2"),
    ];
    for (source, target, fstype) in mounts {
        fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
        mount(source, target, fstype).with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    // debugfs is optional (the debug kernel has it, for kmemleak).
    if fs::metadata("/sys/kernel/debug").is_ok() {
        let _ = mount("debugfs", "/sys/kernel/debug", "debugfs");
    }
    Ok(())
}

fn mount(source: &str, target: &str, fstype: &str) -> Result<()> {
    let c = |s: &str| std::ffi::CString::new(s).context("NUL in mount argument");
    let (source, target, fstype) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn install_busybox() -> Result<()> {
    if fs::metadata("/bin/busybox").is_err() {
        return Ok(());
    }
    let status = Command::new("/bin/busybox")
        .args(["--install", "-s"])
        .status()
        .context("running busybox --install -s")?;
    if !status.success() {
        bail!("busybox --install -s: {status}");
    }
    Ok(())
}

/// A tree to assemble a container's root from (`kc run --rootfs /bin-minimal`):
/// busybox and a few of its applets, nothing else.
const BIN_MINIMAL: &str = "/bin-minimal";

fn make_bin_minimal() -> Result<()> {
    if fs::metadata("/bin/busybox").is_err() {
        return Ok(());
    }
    let bin = format!("{BIN_MINIMAL}/bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {bin}"))?;
    fs::hard_link("/bin/busybox", format!("{bin}/busybox"))
        .with_context(|| format!("linking /bin/busybox into {bin}"))?;
    for applet in ["sh", "ls", "cat", "head", "ps", "mount", "id", "echo"] {
        std::os::unix::fs::symlink("busybox", format!("{bin}/{applet}"))
            .with_context(|| format!("creating {bin}/{applet}"))?;
    }
    Ok(())
}

/// The host's key upcall (`kc request-key`, run by the kernel as /sbin/request-key)
/// and the host's answer to the name `kc demo-keys` and the keys tests resolve.
fn install_request_key() -> Result<()> {
    const REQUEST_KEY: &str = "/sbin/request-key";
    const HOSTS: &str = "/etc/hosts";
    if fs::metadata("/bin/kc").is_ok() && fs::symlink_metadata(REQUEST_KEY).is_err() {
        std::os::unix::fs::symlink("/bin/kc", REQUEST_KEY)
            .with_context(|| format!("linking {REQUEST_KEY} to /bin/kc"))?;
    }
    if fs::metadata(HOSTS).is_err() {
        fs::write(HOSTS, "127.0.0.1 localhost\n192.0.2.1 kc-demo.example\n")
            .with_context(|| format!("writing {HOSTS}"))?;
    }
    Ok(())
}

fn tainted() -> Result<u64> {
    let text = fs::read_to_string("/proc/sys/kernel/tainted")
        .context("reading /proc/sys/kernel/tainted")?;
    text.trim()
        .parse()
        .context("parsing /proc/sys/kernel/tainted")
}

/// On a kernel with kmemleak, scan now and print what it found on the console,
/// where the host's splat scanner sees it.
fn kmemleak_scan() {
    const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";
    if fs::write(KMEMLEAK, "scan").is_ok() {
        if let Ok(report) = fs::read_to_string(KMEMLEAK) {
            for line in report.lines() {
                println!("kmemleak: {line}");
            }
        }
    }
}

fn power_off(byte: u8) -> ! {
    // SAFETY: ioperm() only changes this process's I/O permission bitmap.
    if unsafe { libc::ioperm(DEBUG_EXIT_PORT.into(), 1, 1) } == 0 {
        // SAFETY: the port was granted above; writing to isa-debug-exit makes
        // QEMU exit with (byte << 1) | 1 and touches no guest memory.
        unsafe { std::arch::asm!("out dx, al", in("dx") DEBUG_EXIT_PORT, in("al") byte) };
    }
    // Without isa-debug-exit: reboot, which `-no-reboot` turns into an exit.
    // (RB_POWER_OFF only halts this minimal kernel, see lab-notes.md.)
    // SAFETY: reboot(2) does not return on success.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    loop {
        // SAFETY: pause() has no preconditions.
        unsafe { libc::pause() };
    }
}
