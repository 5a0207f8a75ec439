//! `cargo xtask`: the kcontainer lab. One module per command; the rest are
//! the pieces they share.

mod am;
mod base;
mod bench;
mod bisect;
mod build;
mod check;
mod cpio;
mod fuzz;
mod guest;
mod image;
mod kcidb;
mod kconfig;
mod kselftest;
mod ktap;
mod kunit;
mod layout;
mod linux;
mod man;
mod patches;
mod progress;
mod qemu;
mod report;
mod run;
mod send;
mod splat;
mod test;
mod toolchain;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, boot and test the kcontainer patch series on Linux 7.3"
)]
struct Cli {
    #[command(flatten)]
    opts: Options,
    #[command(subcommand)]
    command: Command,
}

/// Options every command understands.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Build directory (kernel tree, output, tools, runs) [default: ~/.cache/kcontainer]
    #[arg(long, global = true, env = "KCONTAINER_BUILD_DIR", value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
    /// Use this Linux 7.3 tarball as the base instead of Debian's linux-source-7.3
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "linux_tree"
    )]
    pub linux_tarball: Option<PathBuf>,
    /// Use this unpacked Linux 7.3 source tree as the base (it is copied, not modified)
    #[arg(long, global = true, value_name = "PATH")]
    pub linux_tree: Option<PathBuf>,
    /// Build the series in DIR (its *.patch files, in name order) instead of patches/
    #[arg(long, global = true, value_name = "DIR")]
    pub series: Option<PathBuf>,
    /// Use the debug kernel (KASAN, lockdep, kmemleak, UBSAN, ...) in its own output directory
    #[arg(long, global = true)]
    pub debug: bool,
    /// Show full build output and the guest console
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare the kernel tree, configure and build the kernel and its headers
    Build,
    /// Build, boot and run the uAPI suite (and the host unit tests); exit 0/1/125 for `git bisect run`
    Test(test::Args),
    /// Boot to a busybox shell, or run one command in the guest (`cargo xtask run -- CMD ARGS...`)
    Run(run::Args),
    /// The review gate: checkpatch, rustfmt, kernel-doc, and every patch built with the feature on and off (and, from the first keys patch, with CONFIG_KEYS off)
    Check(check::Args),
    /// Run the benchmarks in the guest: the container's costs as ratios against mainline's, measured in one run
    Bench(bench::Args),
    /// Run the seeded fuzzer in the guest, on the debug kernel: random calls of the uAPI, invariants after each batch, stop on a splat
    Fuzz(fuzz::Args),
    /// Find the first patch of the series that breaks the tests (`git bisect run` over the series' commits in the kernel tree)
    Bisect(bisect::Args),
    /// Take a posted version of the series back from mail (b4 am) and run the tests on it
    Am(am::Args),
    /// Prepare the series as mail with b4 (cover letter, recipients, checks) and write the mails to runs/<stamp>-send/; nothing is sent
    Send(send::Args),
    /// Move the series between patches/ and the kernel tree
    Patches {
        #[command(subcommand)]
        command: patches::Command,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build => build::run(&cli.opts).map(|_| 0),
        Command::Test(args) => test::run(&cli.opts, &args),
        Command::Run(args) => run::run(&cli.opts, &args),
        Command::Check(args) => check::run(&cli.opts, &args),
        Command::Bench(args) => bench::run(&cli.opts, &args),
        Command::Fuzz(args) => fuzz::run(&cli.opts, &args),
        Command::Bisect(args) => bisect::run(&cli.opts, &args),
        Command::Send(args) => send::run(&cli.opts, &args),
        Command::Am(args) => am::run(&cli.opts, &args),
        Command::Patches { command } => patches::run(&cli.opts, &command).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            let code = report::error_exit_code(&err);
            if code == report::EXIT_UNTESTABLE {
                eprintln!(
                    "xtask: exit {code}: this commit cannot be tested (`git bisect run` skips it)"
                );
            }
            ExitCode::from(code)
        }
    }
}
