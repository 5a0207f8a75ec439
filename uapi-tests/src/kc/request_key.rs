//! `kc request-key` (also run as `/sbin/request-key`, through a link named so): a
//! minimal request-key(8) for the lab, so that the host's upcall and each container's
//! own (run by `kc keyd`) answer with the configuration of the root they run in.
//!
//! ```text
//! request-key create KEY UID GID THREAD PROCESS SESSION
//! ```
//!
//! It assumes the authority to construct KEY, and for a `dns_resolver` key of a plain
//! host name instantiates it with the addresses `/etc/hosts` gives that name
//! (comma-separated, the text form key.dns_resolver uses); every other request it
//! negates. Exit status 0 instantiated, 1 negated, 2 error.

use anyhow::{bail, Context, Result};

use crate::keyctl;

/// How long a key this helper could not find stays negative.
const NEGATIVE_TIMEOUT: u32 = 60;

/// The hosts file of the root the helper runs in.
const HOSTS: &str = "/etc/hosts";

/// `kc request-key create KEY UID GID THREAD PROCESS SESSION`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The operation; only "create".
    #[arg(value_name = "OP")]
    pub op: String,
    /// The key to construct.
    pub key: String,
    pub uid: String,
    pub gid: String,
    /// The requester's thread, process and session keyrings.
    pub thread: String,
    pub process: String,
    pub session: String,
}

impl Args {
    /// The arguments as /sbin/request-key gets them.
    pub fn args(&self) -> Vec<String> {
        [
            &self.op,
            &self.key,
            &self.uid,
            &self.gid,
            &self.thread,
            &self.process,
            &self.session,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

pub fn main(args: &[String]) -> Result<u8> {
    let [op, key, _uid, _gid, _thread, _process, _session] = args else {
        bail!(
            "usage: request-key create KEY UID GID THREAD PROCESS SESSION (got {} arguments)",
            args.len()
        );
    };
    if op != "create" {
        bail!("operation {op:?}: only \"create\" is supported");
    }
    let key: i32 = key
        .parse()
        .with_context(|| format!("key {key:?}: not a key serial"))?;
    keyctl::assume_authority(key)
        .map_err(|e| anyhow::anyhow!("keyctl(KEYCTL_ASSUME_AUTHORITY, {key}): {e}"))?;
    let d = keyctl::describe(key)
        .map_err(|e| anyhow::anyhow!("keyctl(KEYCTL_DESCRIBE, {key}): {e}"))?;
    let answer = match d.ty.as_str() {
        // "name" is an address lookup; "type:name" (afsdb:, srv:, ...) is not ours.
        "dns_resolver" if !d.desc.contains(':') => {
            let hosts = std::fs::read_to_string(HOSTS).unwrap_or_default();
            let addrs = lookup(&hosts, &d.desc);
            (!addrs.is_empty()).then(|| addrs.join(","))
        }
        _ => None,
    };
    match answer {
        Some(payload) => {
            // dns_resolver's preparse wants the terminating NUL, as
            // key.dns_resolver passes it.
            let mut data = payload.clone().into_bytes();
            data.push(0);
            keyctl::instantiate(key, &data).map_err(|e| {
                anyhow::anyhow!("keyctl(KEYCTL_INSTANTIATE, {key}, {payload:?}): {e}")
            })?;
            Ok(0)
        }
        None => {
            keyctl::negate(key, NEGATIVE_TIMEOUT)
                .map_err(|e| anyhow::anyhow!("keyctl(KEYCTL_NEGATE, {key}): {e}"))?;
            Ok(1)
        }
    }
}

/// The addresses a hosts file gives `name` (case-insensitive, a trailing dot ignored),
/// in file order.
pub fn lookup(hosts: &str, name: &str) -> Vec<String> {
    let name = name.trim_end_matches('.');
    hosts
        .lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let addr = fields.next()?;
            fields
                .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(name))
                .then(|| addr.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn hosts() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.1 kc-demo.example\n192.0.2.7 kc-demo.example demo # x\n2001:db8::7 KC-demo.example.\n";
        assert_eq!(
            lookup(hosts, "kc-demo.example"),
            ["192.0.2.7", "2001:db8::7"]
        );
        assert_eq!(
            lookup(hosts, "kc-demo.example."),
            ["192.0.2.7", "2001:db8::7"]
        );
        assert_eq!(lookup(hosts, "demo"), ["192.0.2.7"]);
        assert!(lookup(hosts, "other").is_empty());
    }
}
