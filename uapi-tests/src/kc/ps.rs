//! `kc ps [--json]`: the rows of `/proc/containers` (uapi.md §3), as the kernel prints
//! them or, with --json, as a JSON array of objects (name, id, refs, flags, flag_names,
//! owner, group; and state, members, init_pid for containers whose fd kc can reach:
//! its own inherited ones, or another process's through `/proc/*/fdinfo` and
//! pidfd_getfd(2), where part 4 of the series gives them).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::part4;

pub const PROC_CONTAINERS: &str = "/proc/containers";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON array instead of the kernel's table.
    #[arg(long)]
    pub json: bool,
}

/// One row of /proc/containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub name: String,
    pub id: u64,
    pub refs: u32,
    pub flags: u64,
    pub flag_names: Vec<&'static str>,
    pub owner: u32,
    pub group: u32,
    /// From part 4 (fdinfo or CONTAINER_GET_INFO), when kc can reach the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<u32>,
}

const FLAGS: &[(u64, &str)] = &[(0x01, "started"), (0x02, "dead"), (0x04, "kill-on-close")];

/// Parses the file: a header line, then `"%-24s %12llu %3u %02lx %5u %5u"` rows.
pub fn parse(text: &str) -> Result<Vec<Row>> {
    let mut lines = text.lines();
    let header = lines.next().context("/proc/containers is empty")?;
    if !header.starts_with("NAME") {
        bail!("/proc/containers: unexpected header {header:?}");
    }
    lines
        .map(|line| {
            let bad = || format!("/proc/containers: malformed row {line:?}");
            let (name, rest) = (line.get(..24).with_context(bad)?, &line[24..]);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let [id, refs, flags, owner, group] = f[..] else {
                bail!(bad());
            };
            let flags = u64::from_str_radix(flags, 16).with_context(bad)?;
            Ok(Row {
                name: name.trim_end().to_string(),
                id: id.parse().with_context(bad)?,
                refs: refs.parse().with_context(bad)?,
                flags,
                flag_names: FLAGS
                    .iter()
                    .filter(|(b, _)| flags & b != 0)
                    .map(|(_, n)| *n)
                    .collect(),
                owner: owner.parse().with_context(bad)?,
                group: group.parse().with_context(bad)?,
                state: None,
                members: None,
                init_pid: None,
            })
        })
        .collect()
}

pub fn main(args: Args) -> Result<u8> {
    let text = std::fs::read(PROC_CONTAINERS).with_context(|| {
        format!("read {PROC_CONTAINERS} (a kernel without the series has none)")
    })?;
    let text = String::from_utf8_lossy(&text);
    if !args.json {
        print!("{text}");
        return Ok(0);
    }
    let mut rows = parse(&text)?;
    let reach = reachable();
    for row in &mut rows {
        if let Some(r) = reach.get(&row.id) {
            row.state = r.state.clone();
            row.members = r.members;
            row.init_pid = r.init_pid;
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&rows).context("encoding the rows as JSON")?
    );
    Ok(0)
}

#[derive(Debug, Default, Clone)]
struct Reached {
    state: Option<String>,
    members: Option<u32>,
    init_pid: Option<u32>,
}

/// Containers kc can reach, by id: every container fd in /proc/*/fd whose fdinfo has
/// part 4's lines; the init pid from CONTAINER_GET_INFO on kc's own fd or on a copy
/// taken with pidfd_getfd (which needs ptrace access to the holder). Errors skip the fd.
fn reachable() -> HashMap<u64, Reached> {
    let mut out = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    let me = std::process::id();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Some(n) = fd.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let is_cfd = std::fs::read_link(fd.path())
                .is_ok_and(|l| l.as_os_str() == "anon_inode:[container]");
            if !is_cfd {
                continue;
            }
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{n}"))
                .map(|t| part4::fdinfo(&t))
                .unwrap_or_default();
            let Some(id) = info.get("id").and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let entry: &mut Reached = out.entry(id).or_default();
            entry.state = info.get("state").cloned().or(entry.state.take());
            entry.members = info
                .get("members")
                .and_then(|v| v.parse().ok())
                .or(entry.members);
            if entry.init_pid.is_none() {
                entry.init_pid = init_pid(me, pid, n);
            }
        }
    }
    out
}

/// CONTAINER_GET_INFO's init pid for fd `n` of process `pid` (kc's own or a copy).
fn init_pid(me: u32, pid: u32, n: i32) -> Option<u32> {
    let copy;
    let cfd: BorrowedFd<'_> = if pid == me {
        // SAFETY: fd n is open in this process (just listed) and not closed meanwhile.
        unsafe { BorrowedFd::borrow_raw(n) }
    } else {
        let p = rustix::process::Pid::from_raw(pid as i32)?;
        let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()?;
        // SAFETY: integer arguments; a new fd on success.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                n,
                0,
            )
        };
        if r < 0 {
            return None;
        }
        // SAFETY: pidfd_getfd returned a new fd nothing else owns.
        copy = unsafe { OwnedFd::from_raw_fd(r as i32) };
        copy.as_fd()
    };
    let info = part4::get_info(cfd).ok()?;
    (info.init_pid != 0).then_some(info.init_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let text = "NAME                               ID USE FL OWNER GROUP\n\
                    <current>                           1   7 01     0     0\n\
                    fred bloggs                        42   2 05  1000   100\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "<current>");
        assert_eq!(rows[1].name, "fred bloggs");
        assert_eq!(rows[1].id, 42);
        assert_eq!(rows[1].flags, 5);
        assert_eq!(rows[1].flag_names, ["started", "kill-on-close"]);
        assert_eq!((rows[1].owner, rows[1].group), (1000, 100));
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["id"], 42);
        assert!(json.get("state").is_none());
        assert!(parse("NAME\nshort 1 2\n").is_err());
        assert!(parse("").is_err());
    }
}
