//! `kc demo-keys`: two containers resolve the same name, each through its own
//! supervisor and its own configuration, and the host is unaffected (uapi.md §3 "Keys").
//!
//! Each container gets an empty mount namespace with a tmpfs root built from outside
//! holding its own `/etc/hosts` and `/sbin/request-key` (this binary), and a network
//! namespace of its own; a `kc keyd` intercepts its `dns_resolver` requests. Each init
//! asks for the `dns_resolver` key of `kc-demo.example`; so does the host, whose request
//! goes to the host's `/sbin/request-key` through the usual upcall.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use crate::keyctl::{self, KEY_SPEC_SESSION_KEYRING};
use crate::util::{describe_status, errno_err, reap, step, wait_container, write_raw};
use crate::{calls, keyd, mount_calls, uapi::*};

/// The name every party resolves.
pub const NAME: &str = "kc-demo.example";
/// The two containers and the address their own /etc/hosts gives NAME.
pub const CONTAINERS: [(&str, &str); 2] = [("red", "198.51.100.10"), ("blue", "203.0.113.20")];

const FLAGS: u32 = CONTAINER_NEW_EMPTY_FS_NS
    | CONTAINER_NEW_NET_NS
    | CONTAINER_NEW_UTS_NS
    | CONTAINER_NEW_IPC_NS
    | CONTAINER_NEW_PID_NS
    | CONTAINER_FD_CLOEXEC;

/// `request_key("dns_resolver", NAME, "", session)` and the key's payload.
pub fn resolve() -> Result<String, String> {
    let name = std::ffi::CString::new(NAME).map_err(|e| e.to_string())?;
    let key = keyctl::request_key(c"dns_resolver", &name, Some(c""), KEY_SPEC_SESSION_KEYRING)
        .map_err(|e| format!("request_key(dns_resolver, {NAME}): {e}"))?;
    let payload = keyctl::read(key).map_err(|e| format!("KEYCTL_READ({key}): {e}"))?;
    Ok(String::from_utf8_lossy(&payload).into_owned())
}

/// A container whose root holds its own /etc/hosts (NAME is `addr`) and this binary as
/// /sbin/request-key.
pub fn build(name: &str, addr: &str) -> Result<OwnedFd> {
    let cname = std::ffi::CString::new(name).context("NUL in the name")?;
    let cfd = calls::container_create(&cname, FLAGS)
        .map_err(|e| errno_err(format!("container_create({name:?})"), e))?;
    let hosts = format!("127.0.0.1 localhost\n{addr} {NAME}\n");
    let me = std::fs::read("/proc/self/exe").context("reading /proc/self/exe (kc)")?;
    mount_calls::tmpfs_root_with(
        &cfd,
        &[
            ("etc/hosts", hosts.as_bytes(), 0o644),
            ("sbin/request-key", &me, 0o755),
        ],
    )
    .map_err(|(step, e)| errno_err(format!("{step} in {name}'s root"), e))?;
    Ok(cfd)
}

/// Starts an init in `cfd` that waits for a byte on `go`, resolves NAME and prints
/// what it got; its pid.
fn start_init(cfd: &OwnedFd, name: &'static str, go: &OwnedFd) -> Result<libc::pid_t> {
    let _ = std::io::stdout().flush();
    // SAFETY: kc is single-threaded; the child only resolves, prints and exits.
    match unsafe { calls::fork_into_container(cfd.as_raw_fd()) } {
        Ok(0) => {
            let mut b = [0u8; 1];
            let _ = rustix::io::read(go, &mut b);
            // Not the host's session keyring it inherited.
            let code = match keyctl::join_new_session_keyring()
                .map_err(|e| format!("KEYCTL_JOIN_SESSION_KEYRING: {e}"))
                .and_then(|_| resolve())
            {
                Ok(addr) => {
                    println!("    [{name}] request_key(dns_resolver, {NAME}) = {addr}");
                    0
                }
                Err(e) => {
                    println!("    [{name}] {e}");
                    1
                }
            };
            let _ = std::io::stdout().flush();
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(pid) => Ok(pid),
        Err(e) => Err(errno_err("fork_into_container", e)),
    }
}

/// `kc demo-keys` takes no arguments.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn main(_: Args) -> Result<u8> {
    if std::fs::metadata(keyd::REQUEST_KEY).is_err() {
        bail!(
            "{}: missing; the host's upcall needs it (the lab's /init links it to kc)",
            keyd::REQUEST_KEY
        );
    }
    let hosts = std::fs::read_to_string("/etc/hosts").context("reading the host's /etc/hosts")?;
    step(&format!(
        "host: /etc/hosts gives {NAME} = {}",
        crate::request_key::lookup(&hosts, NAME).join(",")
    ));
    let (go_rx, go_tx) = rustix::pipe::pipe().map_err(|e| errno_err("pipe", e))?;
    let mut started = Vec::new();
    for (name, addr) in CONTAINERS {
        let cfd = build(name, addr)?;
        step(&format!(
            "{name}: container with its own net namespace and a root built from outside; its /etc/hosts gives {NAME} = {addr}"
        ));
        let mut daemon = keyd::spawn(
            cfd.as_fd(),
            &["dns_resolver".to_string()],
            keyd::Limits::default(),
            false,
        )?;
        let init = start_init(&cfd, name, &go_rx)?;
        daemon.start(init)?;
        step(&format!(
            "{name}: kc keyd (pid {}) intercepts its dns_resolver requests (KEYCTL_CONTAINER_INTERCEPT) and runs its /sbin/request-key inside it",
            daemon.pid
        ));
        started.push((name, cfd, init, daemon));
    }
    step("the inits ask for the dns_resolver key of the same name");
    write_raw(go_tx.as_raw_fd(), b"go");
    drop(go_tx);
    let mut failed = false;
    for (name, cfd, init, daemon) in started {
        let status = reap(init)?;
        wait_container(&cfd)?;
        daemon.wait()?;
        failed |= status != 0;
        if status != 0 {
            step(&format!(
                "{name}: init ended with {}",
                describe_status(status)
            ));
        }
    }
    match resolve() {
        Ok(addr) => step(&format!(
            "host: request_key(dns_resolver, {NAME}) = {addr} (the usual upcall)"
        )),
        Err(e) => {
            failed = true;
            step(&format!("host: {e}"));
        }
    }
    Ok(u8::from(failed))
}
