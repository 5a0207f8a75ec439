//! What the host and the guest's `/init` agree on: the job file the host packs
//! into the image, and the marker line `/init` prints on the console when the
//! job is over.

use serde::{Deserialize, Serialize};

/// Where the job lives in the image.
pub const JOB_PATH: &str = "/kcontainer/job.json";

/// Prefix of the line `/init` prints on the console when the job has ended.
pub const EXIT_MARKER: &str = "KCONTAINER-EXIT";

/// Prefix of the line `/init` prints when it could not run the job at all.
pub const INIT_ERROR_MARKER: &str = "KCONTAINER-INIT-ERROR";

/// The isa-debug-exit I/O port (`-device isa-debug-exit,iobase=0xf4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What `/init` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Program and arguments; looked up in `PATH` when not absolute.
    pub argv: Vec<String>,
    /// Give the program the console as its controlling terminal (a shell).
    #[serde(default)]
    pub interactive: bool,
    /// Redirect the program's stdout to this file (e.g. `/dev/ttyS1`, the
    /// second serial port that carries the KTAP stream to the host).
    #[serde(default)]
    pub stdout: Option<String>,
}

/// The end of a job as `/init` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitReport {
    /// The exit code, or 128 + the signal number for a program killed by a signal.
    pub status: i32,
    /// `/proc/sys/kernel/tainted` read after the program ended.
    pub tainted: u64,
}

impl ExitReport {
    /// The console line, e.g. `KCONTAINER-EXIT status=0 tainted=0`.
    pub fn line(&self) -> String {
        format!(
            "{EXIT_MARKER} status={} tainted={}",
            self.status, self.tainted
        )
    }

    /// Parses a console line; `None` unless it is a complete marker line.
    /// Console lines may carry a trailing `\r` or leading noise from a
    /// concurrent printk, so the marker is searched for, not anchored.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = &line[line.find(EXIT_MARKER)? + EXIT_MARKER.len()..];
        let mut status = None;
        let mut tainted = None;
        for field in rest.split_whitespace() {
            match field.split_once('=') {
                Some(("status", v)) => status = v.parse().ok(),
                Some(("tainted", v)) => tainted = v.parse().ok(),
                _ => return None,
            }
        }
        Some(Self {
            status: status?,
            tainted: tainted?,
        })
    }

    /// The byte `/init` writes to the isa-debug-exit port. QEMU exits with
    /// `(byte << 1) | 1`, so only 0..=127 survive the trip: larger statuses
    /// are clamped to 127 and the exact value is in the marker line.
    pub fn port_byte(&self) -> u8 {
        self.status.clamp(0, 127) as u8
    }

    /// The QEMU exit status that goes with this report.
    pub fn qemu_status(&self) -> i32 {
        (i32::from(self.port_byte()) << 1) | 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let r = ExitReport {
            status: 3,
            tainted: 512,
        };
        assert_eq!(r.line(), "KCONTAINER-EXIT status=3 tainted=512");
        assert_eq!(ExitReport::parse(&r.line()), Some(r));
        assert_eq!(
            ExitReport::parse("[  1.0] x KCONTAINER-EXIT status=0 tainted=0\r"),
            Some(ExitReport {
                status: 0,
                tainted: 0
            })
        );
    }

    #[test]
    fn marker_rejects_partial_lines() {
        assert_eq!(ExitReport::parse("KCONTAINER-EXIT status=0"), None);
        assert_eq!(
            ExitReport::parse("KCONTAINER-EXIT status=x tainted=0"),
            None
        );
        assert_eq!(
            ExitReport::parse("KCONTAINER-EXIT status=0 tainted=0 junk"),
            None
        );
        assert_eq!(ExitReport::parse("uname -a"), None);
    }

    #[test]
    fn qemu_status_is_clamped() {
        assert_eq!(
            ExitReport {
                status: 0,
                tainted: 0
            }
            .qemu_status(),
            1
        );
        assert_eq!(
            ExitReport {
                status: 1,
                tainted: 0
            }
            .qemu_status(),
            3
        );
        assert_eq!(
            ExitReport {
                status: 137,
                tainted: 0
            }
            .qemu_status(),
            255
        );
    }

    #[test]
    fn job_defaults() {
        let job: Job = serde_json::from_str(r#"{"argv":["/bin/sh"]}"#).unwrap();
        assert_eq!(
            job,
            Job {
                argv: vec!["/bin/sh".into()],
                interactive: false,
                stdout: None
            }
        );
    }
}
