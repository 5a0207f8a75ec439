//! `cargo xtask build`: everything up to a built kernel, also the first half
//! of `test` and `run`. Failures here mark the commit untestable (exit 125).

use anyhow::{Context, Result};
use xshell::Shell;

use crate::base::{self, Base};
use crate::layout::{Layout, Profile};
use crate::linux::{self, Source};
use crate::report::Untestable;
use crate::toolchain::{self, Needs, Toolchain};
use crate::Options;

pub fn layout(opts: &Options) -> Result<Layout> {
    let profile = if opts.debug {
        Profile::Debug
    } else {
        Profile::Default
    };
    let mut layout = Layout::new(opts.build_dir.clone(), profile)?;
    layout.series_override = opts.series.clone();
    Ok(layout)
}

/// The toolchain and the base source, installed and checked; `review` adds
/// what `cargo xtask check` needs.
pub fn setup(
    opts: &Options,
    sh: &Shell,
    layout: &Layout,
    review: bool,
) -> Result<(Toolchain, Source)> {
    let needs = Needs { review };
    let tc = toolchain::ensure(sh, layout, &needs)?;
    let source = match (&opts.linux_tarball, &opts.linux_tree) {
        (Some(t), _) => Source::Tarball(t.clone()),
        (_, Some(t)) => Source::Tree(t.clone()),
        (None, None) => {
            let base = Base::load(layout)?;
            let tarball = base::ensure(sh, layout, &base)?;
            Source::Debian { base, tarball }
        }
    };
    Ok((tc, source))
}

/// Tree, config, kernel and headers; returns the layout with the artifacts.
pub fn kernel(opts: &Options) -> Result<Layout> {
    let sh = Shell::new().context("creating a shell")?;
    let layout = layout(opts)?;
    std::fs::create_dir_all(&layout.build)
        .with_context(|| format!("creating {}", layout.build.display()))?;
    let (tc, source) = setup(opts, &sh, &layout, false)?;
    linux::ensure_tree(&sh, &layout, &source).context(Untestable)?;
    linux::configure(&sh, &layout, &tc, opts.verbose).context(Untestable)?;
    linux::build(&sh, &layout, &tc, opts.verbose).context(Untestable)?;
    Ok(layout)
}

pub fn run(opts: &Options) -> Result<()> {
    let layout = kernel(opts)?;
    println!("bzImage  {}", layout.bzimage().display());
    println!("vmlinux  {}", layout.vmlinux().display());
    println!(".config  {}", layout.dot_config().display());
    println!("headers  {}", layout.headers().display());
    println!("tree     {}", layout.tree().display());
    Ok(())
}
