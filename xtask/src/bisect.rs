//! `cargo xtask bisect [GOOD [BAD]]`: the first patch of the series that breaks
//! the tests. `git bisect run` over the series' commits in the kernel tree (by
//! default from the base, good, to the tree's HEAD, bad), each step a `cargo
//! xtask test --no-host-tests` of that commit (exit 0 good, 1 bad, 125 skipped:
//! a commit that does not build); the first bad commit is reported as the
//! patch it is, by number and subject, and the tree goes back to where it was.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::linux::{self, BASE_TAG};
use crate::{build, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The last good commit of the kernel tree [default: the base, kcontainer-base]
    pub good: Option<String>,
    /// The first bad commit [default: the tree's HEAD]
    pub bad: Option<String>,
    /// Run only the guest tests whose name contains one of these at each step
    #[arg(long = "test", value_name = "NAME")]
    pub tests: Vec<String>,
    /// Watchdog per step, in seconds (passed to `cargo xtask test --timeout`)
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    // The tree with the series applied (and built: the first step reuses it).
    let layout = build::kernel(opts).context("preparing the kernel tree")?;
    let tree = layout.tree();
    let sh = Shell::new().context("creating a shell")?;
    let git = &linux::git_in(&tree);
    if tree.join(".git/BISECT_LOG").exists() {
        bail!(
            "{} is already being bisected; end that with `git -C {} bisect reset` first",
            tree.display(),
            tree.display()
        );
    }
    let head = linux::head(&sh, &tree)?;
    let good = args.good.clone().unwrap_or_else(|| BASE_TAG.to_string());
    let bad = args.bad.clone().unwrap_or_else(|| head.clone());
    let patches = cmd!(sh, "git {git...} rev-list --reverse {good}..{bad}")
        .quiet()
        .read()
        .with_context(|| format!("listing the commits {good}..{bad} in {}", tree.display()))?;
    let count = patches.lines().count();
    if count == 0 {
        bail!("{good}..{bad} holds no commit to bisect");
    }
    eprintln!(
        "xtask: bisecting {count} commit(s) of {} ({good}..{bad}), about {} step(s)",
        tree.display(),
        usize::BITS - count.leading_zeros()
    );

    let step = step_command(opts, args)?;
    cmd!(sh, "git {git...} bisect start {bad} {good}")
        .quiet()
        .run()
        .context("git bisect start")?;
    // Each step's output goes to the terminal as it comes.
    let ran = cmd!(sh, "git {git...} bisect run {step...}")
        .ignore_status()
        .run()
        .context("git bisect run");
    let log = cmd!(sh, "git {git...} bisect log")
        .quiet()
        .read()
        .unwrap_or_default();
    // Back to where the tree was, whatever happened.
    let reset = cmd!(sh, "git {git...} bisect reset").quiet().run();
    ran?;
    reset.context("git bisect reset")?;
    let run_dir = layout.new_run("bisect")?;
    let log_path = run_dir.join("bisect.log");
    std::fs::write(&log_path, &log).with_context(|| format!("writing {}", log_path.display()))?;

    // git ends the log with "# first bad commit: [SHA] subject".
    let Some(first) = log
        .lines()
        .find_map(|l| l.strip_prefix("# first bad commit: ["))
        .and_then(|l| l.split(']').next())
        .map(str::to_string)
    else {
        bail!(
            "git bisect run found no first bad commit (log: {}); a step that cannot be \
             tested (exit 125) everywhere, or a good BAD?",
            log_path.display()
        );
    };
    let subject = cmd!(sh, "git {git...} log -1 --format=%s {first}")
        .quiet()
        .read()
        .unwrap_or_default();
    let number = patches
        .lines()
        .position(|c| c == first)
        .map_or("?".to_string(), |i| format!("{:04}", i + 1));
    println!("first bad patch: {number} {subject} ({first})");
    eprintln!("xtask: bisect log {}", log_path.display());
    Ok(0)
}

/// `cargo xtask test --no-host-tests` with this invocation's global options and
/// the test filter: what `git bisect run` runs at each step.
fn step_command(opts: &Options, args: &Args) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let mut step = vec![exe.display().to_string()];
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    if let Some(dir) = path(&opts.build_dir) {
        step.extend(["--build-dir".to_string(), dir]);
    }
    if let Some(t) = path(&opts.linux_tarball) {
        step.extend(["--linux-tarball".to_string(), t]);
    }
    if let Some(t) = path(&opts.linux_tree) {
        step.extend(["--linux-tree".to_string(), t]);
    }
    if opts.debug {
        step.push("--debug".into());
    }
    step.extend(["test".to_string(), "--no-host-tests".to_string()]);
    if let Some(t) = args.timeout {
        step.extend(["--timeout".to_string(), t.to_string()]);
    }
    step.extend(args.tests.iter().cloned());
    Ok(step)
}
