//! `cargo xtask run`: boot the built kernel to a busybox shell on this
//! terminal, or run one command in the guest and exit with its status.

use std::time::Duration;

use anyhow::{Context, Result};
use kcontainer_init::Job;

use crate::guest::{self, Boot};
use crate::image::{self, Extra};
use crate::qemu::Console;
use crate::report::{self, Untestable, Verdict};
use crate::{build, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Put a host file into the image (repeatable), e.g. --add ./repro:/bin/repro
    #[arg(long = "add", value_name = "HOST_PATH:GUEST_PATH")]
    pub add: Vec<Extra>,
    /// Start QEMU's gdb stub on tcp::1234 (kernel booted with nokaslr) and wait for gdb
    #[arg(long)]
    pub gdb: bool,
    /// Watchdog for a command: kill the guest after this many seconds [default: 300; none for the shell]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// The command to run in the guest; without one, an interactive shell
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let layout = build::kernel(opts)?;
    image::build_guest_binaries(&layout, opts.verbose).context(Untestable)?;

    if args.command.is_empty() {
        eprintln!("xtask: booting to a shell; `exit` (or Ctrl-A X) leaves QEMU");
        let job = Job {
            argv: vec!["/bin/sh".into()],
            interactive: true,
            stdout: None,
        };
        let timeout = args.timeout.map(Duration::from_secs);
        let outcome = guest::boot(
            &layout,
            "shell",
            Boot {
                job,
                extras: &args.add,
                timeout,
                gdb: args.gdb,
                memory_mib: None,
            },
            Console::Interactive,
        )?;
        guest::quote_splats(&outcome.splats, &outcome.console_log);
        eprintln!("xtask: console {}", outcome.console_log.display());
        let verdict = report::judge(&outcome.end, None, &[], &outcome.splats, false);
        return Ok(finish(&verdict, &outcome));
    }

    let job = Job {
        argv: args.command.clone(),
        interactive: false,
        stdout: None,
    };
    let timeout = Duration::from_secs(args.timeout.unwrap_or(300));
    let verbose = opts.verbose;
    let mut on_console = |line: &str| {
        if verbose || guest::is_user_line(line) {
            println!("{line}");
        }
    };
    let mut on_ktap = |line: &str| println!("{line}");
    let outcome = guest::boot(
        &layout,
        "run",
        Boot {
            job,
            extras: &args.add,
            timeout: Some(timeout),
            gdb: args.gdb,
            memory_mib: None,
        },
        Console::Captured {
            console: &mut on_console,
            ktap: &mut on_ktap,
        },
    )?;
    guest::quote_splats(&outcome.splats, &outcome.console_log);
    let verdict = report::judge(&outcome.end, None, &[], &outcome.splats, false);
    Ok(finish(&verdict, &outcome))
}

fn finish(verdict: &Verdict, outcome: &guest::Outcome) -> u8 {
    if verdict.print_failures() {
        eprintln!("xtask: console {}", outcome.console_log.display());
    }
    report::command_exit_code(verdict, outcome.end.report)
}
