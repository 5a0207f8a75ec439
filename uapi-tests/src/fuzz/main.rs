//! kc-fuzz: a seeded fuzzer of the series' uAPI, run in the guest by `cargo xtask fuzz`
//! (xtask/src/fuzz.rs), on the debug kernel by default. From one seed it makes random
//! and boundary calls of every new system call and ioctl, with valid, stale, closed
//! and foreign fds mixed in; containers get inits whose members fork, exec and exit at
//! random; nested containers, signals and closes come in between. After each batch it
//! checks invariants (`check.rs`). The kernel's own checks (KASAN, lockdep, UBSAN,
//! kmemleak) are read from the console by xtask, which stops the run on the first
//! splat and reports the seed and batch: `--seed S --calls N` reproduces it.
//!
//! ```text
//! main.rs   the loop, the seeded generator, the fd pool
//! ops.rs    one random operation per call
//! check.rs  the invariants after a batch
//! ```
//!
//! Output on stdout: `FUZZ batch B calls N containers C` per batch and `FUZZ done ...` at
//! the end; an invariant that fails prints `FUZZ-FAILED ...` and exits 1.

#[allow(dead_code)]
#[path = "../container/calls.rs"]
mod calls;
mod check;
#[allow(dead_code)]
#[path = "../errno.rs"]
mod errno;
#[allow(dead_code)]
#[path = "../container/ioctl.rs"]
mod ioctl;
#[allow(dead_code)]
#[path = "../container/keyctl.rs"]
mod keyctl;
mod ops;
#[path = "../uapi.rs"]
mod uapi;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "kc-fuzz", about = "A seeded fuzzer of the container uAPI")]
struct Args {
    /// The seed; the same seed makes the same calls.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many calls in all.
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Calls per batch (the invariants are checked after each).
    #[arg(long, default_value_t = 2_000)]
    batch: u64,
}

/// splitmix64: small, seedable, good enough to pick calls and arguments.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn word(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.word() % n.max(1)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A value near a boundary, or any value.
    pub fn boundary(&mut self) -> u64 {
        const EDGES: &[u64] = &[
            0,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            0x100,
            0x3ff,
            0x400,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
            u64::MAX - 1,
        ];
        if self.one_in(3) {
            self.word()
        } else {
            *self.pick(EDGES)
        }
    }
}

/// A container the fuzzer made and still holds a fd of.
pub struct Held {
    pub cfd: OwnedFd,
    /// Its init, our child, until reaped.
    pub init: Option<libc::pid_t>,
}

/// What the fuzzer holds: containers, other fds to mix in, closed numbers.
pub struct Pool {
    pub containers: Vec<Held>,
    pub others: Vec<OwnedFd>,
    pub stale: Vec<RawFd>,
}

impl Pool {
    /// A fd to give a call: mostly a container's, sometimes another or a closed one.
    pub fn any_fd(&mut self, rng: &mut Rng) -> RawFd {
        match rng.below(10) {
            0 if !self.others.is_empty() => rng.pick(&self.others).as_raw_fd(),
            1 if !self.stale.is_empty() => *rng.pick(&self.stale),
            2 => *rng.pick(&[-1, 0, 1, 2, 9999, i32::MAX]),
            _ if !self.containers.is_empty() => rng.pick(&self.containers).cfd.as_raw_fd(),
            _ => -1,
        }
    }
}

/// Reaps every child that has exited, inits included; forgets reaped inits.
pub fn reap(pool: &mut Pool) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid for our own children, without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        if pid <= 0 {
            break;
        }
        for h in &mut pool.containers {
            if h.init == Some(pid) {
                h.init = None;
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let start = Instant::now();
    // Orphaned members come to us, so that reap() finds them.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let mut rng = Rng::new(args.seed);
    let mut pool = Pool {
        containers: Vec::new(),
        others: ops::other_fds(),
        stale: Vec::new(),
    };
    let mut done = 0u64;
    let mut batch = 0u64;
    while done < args.calls {
        batch += 1;
        let n = args.batch.min(args.calls - done);
        for _ in 0..n {
            ops::one(&mut rng, &mut pool);
            reap(&mut pool);
        }
        done += n;
        if let Err(e) = check::after_batch(&mut pool) {
            println!("FUZZ-FAILED seed {} batch {batch}: {e:#}", args.seed);
            return ExitCode::FAILURE;
        }
        println!(
            "FUZZ batch {batch} calls {done} containers {} elapsed {:.1}s",
            pool.containers.len(),
            start.elapsed().as_secs_f64()
        );
    }
    if let Err(e) = check::at_end(&mut pool) {
        println!("FUZZ-FAILED seed {} at the end: {e:#}", args.seed);
        return ExitCode::FAILURE;
    }
    println!(
        "FUZZ done seed {} calls {done} batches {batch} in {:.1}s",
        args.seed,
        start.elapsed().as_secs_f64()
    );
    let _: Result<()> = Ok(());
    ExitCode::SUCCESS
}
