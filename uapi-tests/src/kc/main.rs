//! kc: a command-line front end to the container system calls (uapi.md), for the lab's
//! guest. One module per subcommand; `kc help SUBCOMMAND` or `kc SUBCOMMAND --help`
//! for each one's options. A container cannot be opened by name and its fd cannot
//! outlive its holder, so the tools that act on an existing container (`start`,
//! `supervise`, `kill`, `wait`, `exec`, `keyd`) take an inherited fd: `--fd N`, or
//! `$KC_FD`, which `kc create NAME -- CMD` sets for CMD (fd 3).
//!
//! ```text
//! kc demo                                     demo.rs
//! kc run [--ns LIST] [--kill-on-close] [--rootfs DIR] [--keyd]
//!        [--supervise [--allow-bind HOSTPATH]...] NAME -- CMD...   run.rs
//! kc create [--ns LIST] [--kill-on-close] NAME -- CMD...            create.rs
//! kc start [--fd N] [--rootfs DIR] -- CMD...                        start.rs
//! kc supervise [--fd N] [--allow-bind HOSTPATH]... [--rootfs DIR] -- CMD...
//!                                             supervise.rs (policy.rs, seccomp.rs)
//! kc kill [--fd N] [--init] [SIG]                                   kill.rs
//! kc wait [--fd N] [--nohang]                                       wait.rs
//! kc ps [--json]                                                    ps.rs
//! kc exec [--fd N] -- CMD...                                        exec.rs
//! kc keyd [OPTIONS] [--init PID] CFD                                keyd.rs
//! kc demo-keys                                                      demo_keys.rs
//! kc request-key create KEY UID GID THREAD PROCESS SESSION         request_key.rs
//!   (also as /sbin/request-key, by argv[0])
//! kc key request TYPE DESC [CALLOUT]                                key.rs
//! ```
//!
//! Exit status: a subcommand's own (documented in its help), 1 for an error (the message
//! names the call and the errno), 2 for a usage error.

#[path = "../container/calls.rs"]
mod calls;
mod create;
mod demo;
mod demo_keys;
#[path = "../errno.rs"]
mod errno;
mod exec;
// kc uses the ioctls, not clone3().
#[allow(dead_code)]
#[path = "../container/ioctl.rs"]
mod ioctl;
mod keyd;
// kc uses only the calls a supervisor and a helper make.
mod key;
#[allow(dead_code)]
#[path = "../container/keyctl.rs"]
mod keyctl;
mod kill;
// kc uses only the part it needs to assemble a root and broker mounts.
#[allow(dead_code)]
#[path = "../container/mount_calls.rs"]
mod mount_calls;
mod part4;
mod policy;
mod ps;
mod request_key;
mod rootfs;
mod run;
mod seccomp;
mod start;
mod supervise;
#[path = "../uapi.rs"]
mod uapi;
mod util;
mod wait;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// A front end to the container system calls (container_create, fork_into_container,
/// container_socket, container_kill, container_wait).
#[derive(Parser, Debug)]
#[command(name = "kc", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container, start an init, list, signal, kill and wait, printing each step.
    Demo(demo::Args),
    /// Run CMD as the init of a new container, wait for the container, exit with its status.
    Run(run::Args),
    /// Create a container and run CMD (not in it) holding its fd as fd 3, with KC_FD=3.
    Create(create::Args),
    /// Start CMD as the init of the inherited container; print the init's pid.
    Start(start::Args),
    /// Start CMD as the init under a supervisor that performs allowed mounts and mknods.
    Supervise(supervise::Args),
    /// Send a signal to every member of the inherited container, or to its init.
    Kill(kill::Args),
    /// Wait for the inherited container to die; print init's status as a shell would.
    Wait(wait::Args),
    /// Print /proc/containers.
    Ps(ps::Args),
    /// Run CMD in a running container's namespaces and root (not as a member).
    Exec(exec::Args),
    /// Answer a container's key requests inside it (KEYCTL_CONTAINER_INTERCEPT).
    Keyd(keyd::Args),
    /// Two containers resolve one name, each through its own kc keyd.
    DemoKeys(demo_keys::Args),
    /// The lab's /sbin/request-key: instantiate a dns_resolver key from /etc/hosts.
    RequestKey(request_key::Args),
    /// Key calls.
    Key(key::Args),
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    // Installed as /sbin/request-key: the kernel's (or kc keyd's) upcall.
    if Path::new(&argv0).file_name() == Some("request-key".as_ref()) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return finish("request-key", request_key::main(&args), 2);
    }
    let cli = Cli::parse();
    let result: Result<u8> = match cli.command {
        Command::Demo(a) => demo::main(a),
        Command::Run(a) => run::main(a),
        Command::Create(a) => create::main(a),
        Command::Start(a) => start::main(a),
        Command::Supervise(a) => supervise::main(a),
        Command::Kill(a) => kill::main(a),
        Command::Wait(a) => wait::main(a),
        Command::Ps(a) => ps::main(a),
        Command::Exec(a) => exec::main(a),
        Command::Keyd(a) => keyd::main(a),
        Command::DemoKeys(a) => demo_keys::main(a),
        Command::RequestKey(a) => return finish("request-key", request_key::main(&a.args()), 2),
        Command::Key(a) => key::main(a),
    };
    finish("kc", result, 1)
}

fn finish(who: &str, result: Result<u8>, failure: u8) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{who}: {e:#}");
            ExitCode::from(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kc").chain(args.iter().copied()))
    }

    #[test]
    fn spellings_in_use_parse() {
        for ok in [
            &["demo"][..],
            &["ps"],
            &["ps", "--json"],
            &[
                "run", "--ns", "none", "nested", "--", "/bin/kc", "key", "request", "user", "d",
                "x",
            ],
            &[
                "run",
                "--rootfs",
                "/bin-minimal",
                "demo",
                "--",
                "/bin/sh",
                "-c",
                "ls /",
            ],
            &["run", "--keyd", "--kill-on-close", "n", "--", "sh"],
            &[
                "run",
                "--supervise",
                "--allow-bind",
                "/srv",
                "n",
                "--",
                "sh",
            ],
            &[
                "keyd",
                "--type",
                "dns_resolver",
                "--max-helpers",
                "1",
                "--backlog",
                "2",
                "--init",
                "7",
                "10",
            ],
            &["keyd", "-v", "--helper-timeout", "3", "--init", "7", "10"],
            &["demo-keys"],
            &["request-key", "create", "5", "0", "0", "0", "0", "0"],
            &["key", "request", "user", "kc:x", "callout"],
            &["key", "request", "user", "kc:x"],
            &[
                "create",
                "--ns",
                "pid,emptyfs",
                "c",
                "--",
                "sh",
                "-c",
                "kc start -- sleep 1",
            ],
            &["start", "--fd", "3", "--", "sleep", "1"],
            &["supervise", "--", "sh"],
            &["kill", "--init", "USR1"],
            &["kill", "9"],
            &["kill"],
            &["wait", "--nohang"],
            &["exec", "--", "sh"],
        ] {
            if let Err(e) = parse(ok) {
                panic!("{ok:?}: {e}");
            }
        }
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["run", "n"][..],
            &["run", "--ns", "bogus", "n", "--", "sh"],
            &["kill", "NOPE"],
            &["start", "--fd", "x", "--", "sh"],
            &["wait", "--bogus"],
            &["key", "request", "user"],
            &["demo", "extra"],
            &["allow-bind", "/x"],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?} parsed"));
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }
}
