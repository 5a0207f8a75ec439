//! `cargo xtask fuzz`: the kernel (the debug one unless `--normal-kernel`) built and
//! booted with `kc-fuzz` (`uapi-tests/src/fuzz/`), a seeded fuzzer of the uAPI. Its
//! progress lines come over the job's channel; the console is watched for splats.
//! Exit 0 when the run ended with every invariant held and no splat; 1 otherwise, with
//! the command that repeats the run.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::guest;
use crate::image::{self, FUZZ_GUEST_PATH};
use crate::report::{self, Untestable, Verdict};
use crate::{build, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The seed [default: from the clock, printed]
    #[arg(long)]
    pub seed: Option<u64>,
    /// How many calls
    #[arg(long, default_value_t = 1_000_000)]
    pub calls: u64,
    /// Calls between two checks of the invariants
    #[arg(long, default_value_t = 2_000)]
    pub batch: u64,
    /// Use the normal kernel instead of the debug one (KASAN, lockdep, UBSAN, kmemleak)
    #[arg(long)]
    pub normal_kernel: bool,
    /// Watchdog: kill the guest after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub timeout: u64,
}

#[derive(Serialize)]
struct Results<'a> {
    seed: u64,
    calls: u64,
    profile: &'static str,
    wall_seconds: f64,
    last_progress: Option<&'a str>,
    failure: Option<&'a str>,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let start = std::time::Instant::now();
    let opts = Options {
        debug: !args.normal_kernel,
        ..opts.clone()
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let layout = build::kernel(&opts)?;
    image::build_guest_binaries(&layout, opts.verbose).context(Untestable)?;
    let argv = vec![
        FUZZ_GUEST_PATH.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--calls".into(),
        args.calls.to_string(),
        "--batch".into(),
        args.batch.to_string(),
    ];
    eprintln!(
        "xtask: fuzzing {} with seed {seed}, {} calls",
        layout.bzimage().display(),
        args.calls
    );
    let verbose = opts.verbose;
    let (outcome, text) = guest::run_job(
        &layout,
        "fuzz",
        argv,
        Duration::from_secs(args.timeout),
        guest::JobSetup::default(),
        |_| verbose,
        |_| true,
    )?;
    let last = text.lines().rev().find(|l| l.starts_with("FUZZ "));
    let failure = text.lines().find(|l| l.starts_with("FUZZ-FAILED"));
    let mut verdict = report::judge(&outcome.end, None, &[], &outcome.splats, true);
    if let Some(f) = failure {
        verdict.extend(vec![format!("invariant: {f}")]);
    }
    if !last.is_some_and(|l| l.starts_with("FUZZ done")) && failure.is_none() {
        verdict.extend(vec![format!(
            "kc-fuzz did not finish; its last line: {}",
            last.unwrap_or("(none)")
        )]);
    }
    let results = Results {
        seed,
        calls: args.calls,
        profile: layout.profile.name(),
        wall_seconds: start.elapsed().as_secs_f64(),
        last_progress: last,
        failure,
        verdict: &verdict,
    };
    let json = outcome.run_dir.join("fuzz.json");
    report::write_json(&json, &results)?;
    guest::quote_splats(&outcome.splats, &outcome.console_log);
    if verdict.print_failures() {
        eprintln!(
            "xtask: to repeat: cargo xtask fuzz --seed {seed} --calls {}{}",
            args.calls,
            if args.normal_kernel {
                " --normal-kernel"
            } else {
                ""
            }
        );
    }
    eprintln!("xtask: console {}", outcome.console_log.display());
    eprintln!("xtask: results {}", json.display());
    eprintln!(
        "xtask: fuzz seed {seed} on the {} kernel ({}): {:.1} s",
        layout.profile.name(),
        outcome.accel,
        start.elapsed().as_secs_f64()
    );
    Ok(verdict.exit_code())
}
