//! kc-bench: the series' costs against the mainline mechanism a runtime would use
//! instead, measured in the guest by `cargo xtask bench` (xtask/src/bench.rs). Each
//! figure is a ratio of two interleaved measurements of the same run, best of several
//! rounds, timed with the TSC: absolute times under TCG mean little.
//!
//! ```text
//! lifecycle.rs  create + start an init that exits + reap + close, against clone3()
//!               with the same namespaces, CLONE_PIDFD and waitid(P_PIDFD); the time
//!               of each step; against a child that joins a session keyring (runc)
//! fork.rs       fork() + _exit() + waitpid() by a member, against a non-member
//! proc.rs       reading /proc/containers with 10 to 100,000 rows; slab per container
//! kill.rs       container_kill() + container_wait() of N members, against
//!               cgroup.kill + cgroup.events for the same processes
//! init.rs       an init (or a non-member child) a benchmark drives over two pipes
//! keys.rs       request_key() through the container keyring against the session
//!               keyring; an upcall answered by the supervisor (intercept) against
//!               /sbin/request-key
//! ```
//!
//! Output: one `BENCH {json}` line per figure on stdout (a `Figure`), progress on
//! stderr. `--quick` runs every benchmark briefly (CI checks that each one runs).

// The suite's shared modules; kc-bench uses part of each.
#[allow(dead_code)]
#[path = "../container/calls.rs"]
mod calls;
#[allow(dead_code)]
#[path = "../errno.rs"]
mod errno;
mod fork;
mod init;
#[allow(dead_code)]
#[path = "../container/ioctl.rs"]
mod ioctl;
#[allow(dead_code)]
#[path = "../container/keyctl.rs"]
mod keyctl;
mod keys;
mod kill;
mod lifecycle;
mod proc;
mod timing;
#[path = "../uapi.rs"]
mod uapi;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "kc-bench",
    about = "The container's costs against mainline's, as ratios"
)]
struct Args {
    /// A short run: few iterations and rounds, small series (CI).
    #[arg(long)]
    quick: bool,
    /// Run only the benchmarks whose group contains one of these.
    filters: Vec<String>,
}

/// How long to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Interleaved rounds per comparison (the best round counts).
    pub rounds: usize,
    /// Iterations per round of a short operation.
    pub iterations: usize,
    pub quick: bool,
}

/// One figure, as `cargo xtask bench` reads it.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Figure {
    /// "lifecycle", "fork", "proc_containers", "memory", "kill".
    pub group: &'static str,
    /// The case within the group ("uts+ipc+pid", "1000", ...).
    pub name: String,
    /// The x value of a scaling series (row or member count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    /// The unit of `container` and `baseline`.
    pub unit: &'static str,
    /// The series' figure.
    pub container: f64,
    /// Mainline's figure for the same job, measured interleaved with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// `container / baseline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The goal: at most this ratio (with a baseline) or this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
    /// What `baseline` is, and anything else a reader needs.
    pub note: String,
}

impl Figure {
    pub fn compared(
        group: &'static str,
        name: impl Into<String>,
        unit: &'static str,
        container: f64,
        baseline: f64,
        goal: f64,
        note: impl Into<String>,
    ) -> Figure {
        Figure {
            group,
            name: name.into(),
            unit,
            container,
            baseline: Some(baseline),
            ratio: Some(container / baseline),
            goal: Some(goal),
            note: note.into(),
            ..Figure::default()
        }
    }

    /// The same figure without a goal (the issue set none for it).
    pub fn no_goal(mut self) -> Figure {
        self.goal = None;
        self
    }

    pub fn emit(&self) -> Result<()> {
        println!("BENCH {}", serde_json::to_string(self)?);
        Ok(())
    }
}

type Bench = fn(&Plan, &timing::Clock) -> Result<()>;

const BENCHES: &[(&str, Bench)] = &[
    ("lifecycle", lifecycle::run),
    ("fork", fork::run),
    ("proc_containers", proc::run),
    ("kill", kill::run),
    ("keys", keys::run),
];

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = if args.quick {
        Plan {
            rounds: 2,
            iterations: 20,
            quick: true,
        }
    } else {
        Plan {
            rounds: 7,
            iterations: 400,
            quick: false,
        }
    };
    let clock = match timing::Clock::calibrate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kc-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("kc-bench: TSC at {:.0} MHz", clock.hz / 1e6);
    let mut failed = false;
    for (group, bench) in BENCHES {
        if !args.filters.is_empty() && !args.filters.iter().any(|f| group.contains(f.as_str())) {
            continue;
        }
        eprintln!("kc-bench: {group}");
        if let Err(e) = bench(&plan, &clock) {
            eprintln!("kc-bench: {group}: {e:#}");
            println!("BENCH-FAILED {group}: {e:#}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
