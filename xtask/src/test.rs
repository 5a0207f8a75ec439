//! `cargo xtask test`: the host unit tests, then the kernel built and booted
//! with the uAPI suite. Exit 0 all passed, 1 anything failed (a test, a
//! crash, a hang, a splat, taint), 125 the kernel could not be built.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::guest;
use crate::image::{self, TESTS_GUEST_PATH};
use crate::ktap::{self, Ktap};
use crate::kunit::{self, Kunit};
use crate::report::{self, Summary, Untestable, Verdict};
use crate::splat::Splat;
use crate::{build, kselftest, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run only the guest tests whose name contains one of these
    pub filters: Vec<String>,
    /// Watchdog: kill the guest after this many seconds [default: 300, 1200 with --debug]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Skip the host unit tests (`cargo test --workspace`)
    #[arg(long)]
    pub no_host_tests: bool,
    /// Also write the run as KCIDB I/O JSON (KernelCI's schema) to FILE, validated with
    /// kcidb-io
    #[arg(long, value_name = "FILE")]
    pub kcidb: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Results<'a> {
    kernel: String,
    profile: &'static str,
    accel: &'static str,
    wall_seconds: f64,
    boot_to_ktap_seconds: Option<f64>,
    summary: Summary,
    #[serde(flatten)]
    verdict: &'a Verdict,
    guest: &'a report::GuestEnd,
    exit_status: Option<i32>,
    tainted: Option<u64>,
    expected: &'a [String],
    ktap: &'a Ktap,
    kunit: &'a Kunit,
    kunit_expected: &'a [(String, String)],
    splats: &'a [Splat],
    console_log: String,
    ktap_log: String,
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let start = std::time::Instant::now();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if !args.no_host_tests {
        host_tests(opts)?;
    }
    let layout = build::kernel(opts)?;
    image::build_guest_binaries(&layout, opts.verbose).context(Untestable)?;
    // The series' C kselftests, once the tree has them: run by the suite, each
    // program one test with its KTAP nested.
    let kselftests = kselftest::build(&layout, opts.verbose).context(Untestable)?;
    let extras = match &kselftests {
        Some(dir) => kselftest::extras(dir)?,
        None => Vec::new(),
    };
    let with_kselftests = |dir: &str| match &kselftests {
        Some(_) => vec!["--kselftests".to_string(), dir.to_string()],
        None => Vec::new(),
    };

    let suite = layout.guest_bin("uapi-tests");
    let host_dir = kselftest::install_dir(&layout).display().to_string();
    let listed = duct::cmd(
        &suite,
        std::iter::once("--list".to_string())
            .chain(with_kselftests(&host_dir))
            .chain(args.filters.iter().cloned()),
    )
    .read()
    .with_context(|| format!("{} --list", suite.display()))?;
    let expected: Vec<String> = listed
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    if expected.is_empty() {
        anyhow::bail!(
            "no test matches {:?}; `{} --list` shows the names",
            args.filters,
            suite.display()
        );
    }

    let timeout = args.timeout.unwrap_or(if opts.debug { 1200 } else { 300 });
    let mut argv = vec![TESTS_GUEST_PATH.to_string()];
    argv.extend(with_kselftests(kselftest::GUEST_DIR));
    argv.extend(args.filters.iter().cloned());
    eprintln!(
        "xtask: booting {} with {} test(s)",
        layout.bzimage().display(),
        expected.len()
    );
    let verbose = opts.verbose;
    let (outcome, ktap_text) = guest::run_job(
        &layout,
        "test",
        argv,
        Duration::from_secs(timeout),
        guest::JobSetup {
            extras: &extras,
            ..Default::default()
        },
        |_| verbose,
        |line| verbose || !line.starts_with("    "),
    )?;
    let ktap = ktap::parse(&ktap_text);
    let mut verdict = report::judge(&outcome.end, Some(&ktap), &expected, &outcome.splats, true);
    let mut summary = Summary::of(&ktap, &expected);
    let kunit_expected = kunit::expected_cases(&layout.tree(), &layout.dot_config())?;
    let kunit_summary = kunit::summary(&outcome.kunit, &kunit_expected);
    summary.add(kunit_summary);
    verdict.extend(kunit::judge(&outcome.kunit, &kunit_expected));
    let kernel = std::fs::read_to_string(layout.out().join("include/config/kernel.release"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let results = Results {
        kernel,
        profile: layout.profile.name(),
        accel: outcome.accel,
        wall_seconds: start.elapsed().as_secs_f64(),
        boot_to_ktap_seconds: outcome.ended.first_ktap.map(|d| d.as_secs_f64()),
        summary,
        verdict: &verdict,
        guest: &outcome.end,
        exit_status: outcome.end.report.map(|r| r.status),
        tainted: outcome.end.report.map(|r| r.tainted),
        expected: &expected,
        ktap: &ktap,
        kunit: &outcome.kunit,
        kunit_expected: &kunit_expected,
        splats: &outcome.splats,
        console_log: outcome.console_log.display().to_string(),
        ktap_log: outcome.ktap_log.display().to_string(),
    };
    let results_path = outcome.run_dir.join("results.json");
    report::write_json(&results_path, &results)?;

    if let Some(path) = &args.kcidb {
        write_kcidb(
            path,
            &layout,
            &results,
            &outcome.run_dir,
            started,
            verdict.reasons(),
        )?;
    }

    guest::quote_splats(&outcome.splats, &outcome.console_log);
    verdict.print_failures();
    eprintln!("xtask: console {}", outcome.console_log.display());
    eprintln!("xtask: results {}", results_path.display());
    eprintln!(
        "xtask: {} on {} in {:.1} s (guest: first KTAP line after {})",
        layout.profile.name(),
        outcome.accel,
        start.elapsed().as_secs_f64(),
        outcome
            .ended
            .first_ktap
            .map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    );
    eprintln!("xtask: KUnit: {}", kunit_summary.line());
    println!("{}", summary.line());
    Ok(verdict.exit_code())
}

/// The run as KCIDB I/O (kcidb.rs), from what results.json holds.
fn write_kcidb(
    path: &std::path::Path,
    layout: &crate::layout::Layout,
    results: &Results<'_>,
    run_dir: &std::path::Path,
    started: u64,
    failures: &[String],
) -> Result<()> {
    let sh = xshell::Shell::new().context("creating a shell")?;
    let tree = layout.tree();
    let git = crate::linux::git_in(&tree);
    let base_tag = crate::linux::BASE_TAG;
    let base_rev = format!("{base_tag}^{{commit}}");
    let base_commit = xshell::cmd!(sh, "git {git...} rev-parse {base_rev}")
        .quiet()
        .read()
        .with_context(|| format!("reading {base_tag} in {}", tree.display()))?;
    let head_commit = crate::linux::head(&sh, &tree)?;
    let config = layout.dot_config();
    let config_text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    let compiler = config_text
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let patches = crate::linux::series(layout)?;
    let run_name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let run = crate::kcidb::Run {
        base_commit: &base_commit,
        head_commit: &head_commit,
        patches: &patches,
        profile: results.profile,
        config: &config,
        build_log: &layout.build_log(),
        compiler: &compiler,
        run_name: &run_name,
        started,
        wall_seconds: results.wall_seconds,
        console_log: std::path::Path::new(&results.console_log),
        ktap_log: std::path::Path::new(&results.ktap_log),
        ktap: results.ktap,
        expected: results.expected,
        kunit: results.kunit,
        kunit_expected: results.kunit_expected,
        failures,
    };
    crate::kcidb::write(&sh, layout, path, &run)
}

/// `cargo test --workspace`: the lab's own unit tests (KTAP parser, splat
/// scanner, config verification, exit codes, ...).
fn host_tests(opts: &Options) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["test", "--workspace"];
    if !opts.verbose {
        args.push("--quiet");
    }
    eprintln!("xtask: host unit tests: cargo {}", args.join(" "));
    let out = duct::cmd(cargo, &args)
        .dir(env!("CARGO_MANIFEST_DIR"))
        .stderr_to_stdout()
        .unchecked()
        .stdout_capture()
        .run()
        .context("running cargo test --workspace")?;
    if !out.status.success() || opts.verbose {
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    if !out.status.success() {
        anyhow::bail!("host unit tests failed (cargo test --workspace)");
    }
    Ok(())
}
