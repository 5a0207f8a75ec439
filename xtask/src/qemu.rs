//! QEMU: the one place that starts the guest, watches it and decides how it
//! ended. QEMU is killed when the xtask returns, panics or dies (drop guard
//! and PR_SET_PDEATHSIG), and by the watchdog when the guest hangs.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub struct Machine {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory_mib: u32,
    pub append: Vec<String>,
    /// Start the gdb stub on tcp::1234 and wait for the debugger.
    pub gdb: bool,
}

/// How the guest's console is connected.
pub enum Console<'a> {
    /// The terminal drives the console (a shell). Ctrl-A X quits QEMU.
    Interactive,
    /// The xtask reads the console and the KTAP port line by line and hands
    /// each line to these (to show progress or the command's output).
    Captured {
        console: &'a mut dyn FnMut(&str),
        ktap: &'a mut dyn FnMut(&str),
    },
}

#[derive(Debug)]
pub struct Ended {
    /// QEMU's exit status, `None` if it was killed.
    pub status: Option<i32>,
    /// The watchdog killed QEMU.
    pub timed_out: bool,
    /// Time from QEMU's start to the first KTAP line on the second serial port.
    pub first_ktap: Option<Duration>,
}

/// KVM only where it is real hardware virtualisation: /dev/kvm usable *and*
/// vmx/svm in /proc/cpuinfo. Nested software KVM (kvm_pvm) runs a stock guest
/// far slower than TCG (lab-notes.md).
pub fn accelerator() -> (&'static str, Vec<&'static str>) {
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let hw_virt = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| {
            c.lines().any(|l| {
                l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx" || f == "svm")
            })
        })
        .unwrap_or(false);
    if kvm_usable && hw_virt {
        (
            "kvm",
            vec!["-accel", "kvm", "-cpu", "host,-arch-capabilities"],
        )
    } else {
        ("tcg", vec!["-accel", "tcg"])
    }
}

fn args(
    m: &Machine,
    accel: &[&str],
    console_log: &Path,
    ktap_log: &Path,
    interactive: bool,
) -> Vec<String> {
    let mut a: Vec<String> = accel.iter().map(|s| s.to_string()).collect();
    let mut append = m.append.clone();
    if m.gdb {
        append.push("nokaslr".into());
    }
    a.extend(
        [
            "-m",
            &m.memory_mib.to_string(),
            "-smp",
            "2",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
            &m.kernel.display().to_string(),
            "-initrd",
            &m.initrd.display().to_string(),
            "-append",
            &append.join(" "),
        ]
        .map(String::from),
    );
    if interactive {
        // The terminal is the console (ttyS0) and the monitor (Ctrl-A C);
        // signal=off hands Ctrl-C to the guest. QEMU logs the console itself.
        a.extend([
            "-chardev".into(),
            format!(
                "stdio,id=con,mux=on,signal=off,logfile={}",
                console_log.display()
            ),
            "-serial".into(),
            "chardev:con".into(),
            "-mon".into(),
            "chardev=con,mode=readline".into(),
        ]);
    } else {
        a.extend(["-monitor", "none", "-serial", "stdio"].map(String::from));
    }
    // ttyS1 carries the KTAP stream, apart from kernel messages.
    a.push("-serial".into());
    a.push(format!("file:{}", ktap_log.display()));
    if m.gdb {
        a.extend(["-s", "-S"].map(String::from));
    }
    a
}

/// Kills QEMU when dropped, unless it has already exited.
struct Guard(duct::Handle);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
    }
}

fn qemu_expr(argv: Vec<String>) -> duct::Expression {
    duct::cmd("qemu-system-x86_64", argv).before_spawn(|cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and only
        // affects the child being spawned.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Ok(())
    })
}

/// Boots `m` and waits for it to end, at most `timeout` (the watchdog).
pub fn run(
    m: &Machine,
    console: Console<'_>,
    console_log: &Path,
    ktap_log: &Path,
    timeout: Option<Duration>,
) -> Result<Ended> {
    let (_, accel) = accelerator();
    File::create(ktap_log).with_context(|| format!("creating {}", ktap_log.display()))?;
    let interactive = matches!(console, Console::Interactive);
    let argv = args(m, &accel, console_log, ktap_log, interactive);
    let start = Instant::now();
    let mut first_ktap = None;
    let deadline = timeout.map(|t| start + t);

    match console {
        Console::Interactive => {
            let guard = Guard(
                qemu_expr(argv)
                    .unchecked()
                    .start()
                    .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
            );
            loop {
                if let Some(output) = guard.0.try_wait().context("waiting for QEMU")? {
                    return Ok(Ended {
                        status: output.status.code(),
                        timed_out: false,
                        first_ktap,
                    });
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    guard.0.kill().context("killing QEMU")?;
                    return Ok(Ended {
                        status: None,
                        timed_out: true,
                        first_ktap,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Console::Captured {
            console: on_console,
            ktap: on_ktap,
        } => {
            let mut log = File::create(console_log)
                .with_context(|| format!("creating {}", console_log.display()))?;
            let reader = qemu_expr(argv)
                .stdin_null()
                .stderr_to_stdout()
                .unchecked()
                .reader()
                .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
            let reader = KillOnDrop(std::sync::Arc::new(reader));
            let (tx, rx) = mpsc::channel::<String>();
            let thread_reader = reader.0.clone();
            std::thread::spawn(move || {
                let mut buffered = BufReader::new(&*thread_reader);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match buffered.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&raw)
                                .trim_end_matches(['\r', '\n'])
                                .to_string();
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            let mut ktap_tail = Tail::new(ktap_log);
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(line) => {
                        writeln!(log, "{line}")
                            .with_context(|| format!("writing {}", console_log.display()))?;
                        on_console(&line);
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                for line in ktap_tail.poll()? {
                    if first_ktap.is_none() && line.contains("KTAP version") {
                        first_ktap = Some(start.elapsed());
                    }
                    on_ktap(&line);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    reader.0.kill().context("killing QEMU")?;
                    return Ok(Ended {
                        status: None,
                        timed_out: true,
                        first_ktap,
                    });
                }
            }
            for line in ktap_tail.poll()? {
                on_ktap(&line);
            }
            let output = reader
                .0
                .try_wait()
                .context("waiting for QEMU")?
                .context("QEMU still running after its console closed")?;
            Ok(Ended {
                status: output.status.code(),
                timed_out: false,
                first_ktap,
            })
        }
    }
}

/// Kills the captured QEMU when the xtask leaves `run` early (an error).
struct KillOnDrop(std::sync::Arc<duct::ReaderHandle>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Complete lines appended to a file since the last poll.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    fn poll(&mut self) -> Result<Vec<String>> {
        use std::io::{Seek, SeekFrom};
        let mut file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        file.seek(SeekFrom::Start(self.offset))
            .with_context(|| format!("reading {}", self.path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", self.path.display()))?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut lines = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            lines.push(line.trim_end_matches(['\r', '\n']).to_string());
        }
        Ok(lines)
    }
}
