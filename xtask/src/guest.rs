//! One boot of the guest: pack the image for a job, run QEMU, collect the
//! console, the KTAP port and /init's report, and scan for splats.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use kcontainer_init::{ExitReport, Job, EXIT_MARKER, INIT_ERROR_MARKER};

use crate::image::{self, Extra};
use crate::kunit::{self, Kunit};
use crate::layout::{Layout, Profile};
use crate::qemu::{self, Console, Machine};
use crate::report::GuestEnd;
use crate::splat::{self, Splat};

pub struct Boot<'a> {
    pub job: Job,
    pub extras: &'a [Extra],
    pub timeout: Option<Duration>,
    pub gdb: bool,
    /// Guest memory instead of the profile's (512 MiB, 2 GiB with --debug).
    pub memory_mib: Option<u32>,
}

pub struct Outcome {
    pub run_dir: PathBuf,
    pub console_log: PathBuf,
    pub ktap_log: PathBuf,
    pub end: GuestEnd,
    pub splats: Vec<Splat>,
    /// The KUnit suites the kernel ran at boot, from the console.
    pub kunit: Kunit,
    pub ended: qemu::Ended,
    pub accel: &'static str,
}

/// Lines the host shows of a captured console for `cargo xtask run -- CMD`:
/// the command's output, not the kernel's boot messages or /init's marker.
pub fn is_user_line(line: &str) -> bool {
    let kernel = line.starts_with('[') && line.contains("] ");
    !kernel && !line.contains(EXIT_MARKER)
}

/// What a job's guest has besides the lab's image: more memory, more files.
#[derive(Default)]
pub struct JobSetup<'a> {
    /// The guest's memory instead of the lab's default.
    pub memory_mib: Option<u32>,
    /// Files put into the image.
    pub extras: &'a [crate::image::Extra],
}

/// Boots `argv` as a non-interactive job whose stdout is the second serial port
/// (`cargo xtask test`, `bench`, `fuzz`), printing the console and channel lines
/// that `show_console` and `show_channel` accept; returns the outcome and the text the
/// job wrote.
pub fn run_job(
    layout: &Layout,
    command: &str,
    argv: Vec<String>,
    timeout: Duration,
    setup: JobSetup<'_>,
    show_console: impl Fn(&str) -> bool,
    show_channel: impl Fn(&str) -> bool,
) -> Result<(Outcome, String)> {
    let mut on_console = |line: &str| {
        if show_console(line) {
            println!("{line}");
        }
    };
    let mut on_channel = |line: &str| {
        if show_channel(line) {
            println!("{line}");
        }
    };
    let outcome = boot(
        layout,
        command,
        Boot {
            job: Job {
                argv,
                interactive: false,
                stdout: Some("/dev/ttyS1".into()),
            },
            extras: setup.extras,
            timeout: Some(timeout),
            gdb: false,
            memory_mib: setup.memory_mib,
        },
        Console::Captured {
            console: &mut on_console,
            ktap: &mut on_channel,
        },
    )?;
    let text = std::fs::read_to_string(&outcome.ktap_log)
        .with_context(|| format!("reading {}", outcome.ktap_log.display()))?;
    Ok((outcome, text))
}

pub fn boot(layout: &Layout, command: &str, b: Boot<'_>, console: Console<'_>) -> Result<Outcome> {
    let run_dir = layout.new_run(command)?;
    let initrd = run_dir.join("initramfs.cpio");
    image::pack(layout, &b.job, b.extras, &initrd)?;
    let console_log = run_dir.join("console.log");
    let ktap_log = run_dir.join("ktap.log");
    let machine = Machine {
        kernel: layout.bzimage(),
        initrd,
        memory_mib: b.memory_mib.unwrap_or(match layout.profile {
            Profile::Default => 512,
            Profile::Debug => 2048,
        }),
        append: ["console=ttyS0", "panic=-1", "printk.devkmsg=on"]
            .map(String::from)
            .to_vec(),
        gdb: b.gdb,
    };
    let (accel, _) = qemu::accelerator();
    if b.gdb {
        eprintln!(
            "xtask: QEMU waits for gdb on :1234:\n  gdb {} -ex 'target remote :1234' -ex continue",
            layout.vmlinux().display()
        );
    }
    let ended = qemu::run(&machine, console, &console_log, &ktap_log, b.timeout)?;
    let text = std::fs::read(&console_log)
        .with_context(|| format!("reading {}", console_log.display()))?;
    let lines: Vec<String> = String::from_utf8_lossy(&text)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let report = lines.iter().rev().find_map(|l| ExitReport::parse(l));
    let init_error = lines.iter().find_map(|l| {
        l.find(INIT_ERROR_MARKER).map(|i| {
            l[i + INIT_ERROR_MARKER.len()..]
                .trim_start_matches(':')
                .trim()
                .to_string()
        })
    });
    let splats = splat::scan(&lines);
    let kunit = kunit::parse_console(&lines);
    Ok(Outcome {
        end: GuestEnd {
            qemu_status: ended.status,
            timed_out: ended.timed_out,
            timeout_seconds: b.timeout.map_or(0, |t| t.as_secs()),
            init_error,
            allowed_taint: kunit.allowed_taint(),
            report,
        },
        run_dir,
        console_log,
        ktap_log,
        splats,
        kunit,
        ended,
        accel,
    })
}

/// Prints each splat's excerpt, indented, to stderr.
pub fn quote_splats(splats: &[Splat], console_log: &Path) {
    for s in splats {
        eprintln!(
            "xtask: kernel {} at {}:{}:",
            s.kinds.join("+"),
            console_log.display(),
            s.line
        );
        for line in &s.excerpt {
            eprintln!("    {line}");
        }
    }
}
