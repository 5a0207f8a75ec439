//! Timing with the TSC, interleaved, best of several rounds.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

/// The TSC and its rate, calibrated against CLOCK_MONOTONIC over half a second (long
/// enough that a jiffies-based clocksource's 4 ms steps do not matter).
pub struct Clock {
    pub hz: f64,
}

/// The time stamp counter.
pub fn cycles() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Clock {
    pub fn calibrate() -> Result<Clock> {
        let (t0, c0) = (Instant::now(), cycles());
        std::thread::sleep(Duration::from_millis(500));
        let (t1, c1) = (Instant::now(), cycles());
        let secs = (t1 - t0).as_secs_f64();
        ensure!(c1 > c0 && secs > 0.0, "the TSC did not advance");
        Ok(Clock {
            hz: (c1 - c0) as f64 / secs,
        })
    }

    /// Cycles as microseconds.
    pub fn us(&self, cycles: f64) -> f64 {
        cycles / self.hz * 1e6
    }
}

/// Cycles per call of `f`, over `n` calls.
pub fn per_call(n: usize, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let start = cycles();
    for _ in 0..n {
        f()?;
    }
    Ok((cycles() - start) as f64 / n as f64)
}

/// `rounds` rounds of `n` calls of each of `a` and `b`, alternating which goes first;
/// the best round's cycles per call of each.
pub fn interleaved(
    rounds: usize,
    n: usize,
    a: &mut dyn FnMut() -> Result<()>,
    b: &mut dyn FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    // One unmeasured call of each warms caches and allocators.
    a()?;
    b()?;
    interleaved_values(rounds, &mut || per_call(n, a), &mut || per_call(n, b))
}

/// `rounds` measurements of each of `a` and `b` (each returns its own figure),
/// alternating which goes first, after one unmeasured call of each; the lowest of each.
pub fn interleaved_values(
    rounds: usize,
    a: &mut dyn FnMut() -> Result<f64>,
    b: &mut dyn FnMut() -> Result<f64>,
) -> Result<(f64, f64)> {
    let (mut best_a, mut best_b) = (f64::INFINITY, f64::INFINITY);
    a()?;
    b()?;
    for round in 0..rounds {
        if round % 2 == 0 {
            best_a = best_a.min(a()?);
            best_b = best_b.min(b()?);
        } else {
            best_b = best_b.min(b()?);
            best_a = best_a.min(a()?);
        }
    }
    Ok((best_a, best_b))
}
