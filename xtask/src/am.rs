//! `cargo xtask am MBOX`: a reviewer's side of `cargo xtask send`. The newest
//! version of the series in MBOX (a thread saved from a mail client, or from
//! lore) is taken back with `b4 am`, which orders it and checks that no patch
//! is missing, split into patch files under `runs/<stamp>-am/series/`, applied
//! on the base in the build directory's tree and tested with `cargo xtask test`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{build, send, test, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The mailbox holding the series' thread
    pub mbox: PathBuf,
    /// Run only the guest tests whose name contains one of these
    pub filters: Vec<String>,
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let layout = build::layout(opts)?;
    let sh = Shell::new().context("creating a shell")?;
    if !args.mbox.is_file() {
        bail!("{}: no such mailbox", args.mbox.display());
    }
    let b4 = send::b4(&sh, &layout)?;
    let run_dir = layout.new_run("am")?;
    let out = run_dir.join("b4");
    let mbox = std::path::absolute(&args.mbox)
        .with_context(|| format!("resolving {}", args.mbox.display()))?;
    cmd!(sh, "{b4} am -m {mbox} -o {out}")
        .run()
        .with_context(|| format!("b4 am of {}", mbox.display()))?;
    let mbx = std::fs::read_dir(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "mbx"))
        .with_context(|| format!("b4 am wrote no .mbx to {}", out.display()))?;

    // One file per patch, in order, as patches/ holds them.
    let series = run_dir.join("series");
    std::fs::create_dir_all(&series).with_context(|| format!("creating {}", series.display()))?;
    let split = format!("-o{}", series.display());
    let count = cmd!(sh, "git mailsplit -d4 {split} {mbx}")
        .quiet()
        .read()
        .context("git mailsplit")?;
    for entry in
        std::fs::read_dir(&series).with_context(|| format!("reading {}", series.display()))?
    {
        let path = entry?.path();
        let patch = path.with_extension("patch");
        std::fs::rename(&path, &patch)
            .with_context(|| format!("renaming {} to {}", path.display(), patch.display()))?;
    }
    eprintln!(
        "xtask: {} patch(es) from {} in {}",
        count.trim(),
        mbox.display(),
        series.display()
    );

    let mut opts = opts.clone();
    opts.series = Some(series);
    test::run(
        &opts,
        &test::Args {
            filters: args.filters.clone(),
            timeout: None,
            no_host_tests: true,
            kcidb: None,
        },
    )
}
