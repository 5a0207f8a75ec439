//! Where everything lives: the repository, and the build directory that
//! survives between runs (and between fresh clones, so CI reuses it).
//!
//! ```text
//! <build>/base/                        the base tarball (patches/base.toml)
//! <build>/tools/bindgen/bin/bindgen    bindgen-cli, installed by the bootstrap
//! <build>/ccache/                      ccache's cache for the kernel build
//! <build>/linux/                       git tree: the base commit + patches/
//! <build>/linux-state.json             what the tree was made from
//! <build>/out/<profile>/               make O= directory (`default`, `debug`)
//!     arch/x86/boot/bzImage, vmlinux, .config, usr/include (headers_install)
//! <build>/runs/<stamp>-<command>/      console.log, ktap.log, results.json
//! <build>/runs/latest                  symlink to the newest run
//! <build>/check/linux/                 `cargo xtask check`: git worktree of linux/
//! <build>/check/out/<profile>-on|off|keys-off/  its per-patch builds: feature on, off, and on with CONFIG_KEYS off
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Kernel build flavour; each has its own output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Default,
    Debug,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Debug => "debug",
        }
    }
}

/// A kernel source tree and the `make O=` directory it is built in.
#[derive(Debug, Clone)]
pub struct Kbuild {
    pub tree: PathBuf,
    pub out: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Layout {
    /// The repository (the workspace root).
    pub repo: PathBuf,
    /// The build directory.
    pub build: PathBuf,
    pub profile: Profile,
    /// The series to apply, if not `patches/` (`--series`, `cargo xtask am`).
    pub series_override: Option<PathBuf>,
}

impl Layout {
    /// `build_dir` comes from `--build-dir` / `KCONTAINER_BUILD_DIR`; the
    /// default is `$XDG_CACHE_HOME/kcontainer` or `~/.cache/kcontainer`.
    pub fn new(build_dir: Option<PathBuf>, profile: Profile) -> Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let build = match build_dir {
            Some(dir) => dir,
            None => {
                let cache = match std::env::var_os("XDG_CACHE_HOME") {
                    Some(dir) if !dir.is_empty() => PathBuf::from(dir),
                    _ => PathBuf::from(
                        std::env::var_os("HOME").context("HOME is not set; pass --build-dir")?,
                    )
                    .join(".cache"),
                };
                cache.join("kcontainer")
            }
        };
        let build = std::path::absolute(&build)
            .with_context(|| format!("resolving {}", build.display()))?;
        Ok(Self {
            repo,
            build,
            profile,
            series_override: None,
        })
    }

    pub fn patches(&self) -> PathBuf {
        self.repo.join("patches")
    }
    /// Where the series the tree is made of comes from: `patches/`, or another
    /// directory of `*.patch` files.
    pub fn series_dir(&self) -> PathBuf {
        self.series_override
            .clone()
            .unwrap_or_else(|| self.patches())
    }
    pub fn config_dir(&self) -> PathBuf {
        self.repo.join("linux-config")
    }
    /// The base tarball, fetched once (see `base.rs`).
    pub fn base_dir(&self) -> PathBuf {
        self.build.join("base")
    }
    pub fn tools(&self) -> PathBuf {
        self.build.join("tools")
    }
    pub fn bindgen(&self) -> PathBuf {
        self.tools().join("bindgen/bin/bindgen")
    }
    pub fn ccache(&self) -> PathBuf {
        self.build.join("ccache")
    }
    pub fn tree(&self) -> PathBuf {
        self.build.join("linux")
    }
    pub fn tree_state(&self) -> PathBuf {
        self.build.join("linux-state.json")
    }
    pub fn out(&self) -> PathBuf {
        self.build.join("out").join(self.profile.name())
    }
    /// The tree and output directory of `cargo xtask build`.
    pub fn kbuild(&self) -> Kbuild {
        Kbuild {
            tree: self.tree(),
            out: self.out(),
        }
    }
    /// `cargo xtask check`'s corner: a worktree and its own output directories.
    pub fn check(&self) -> PathBuf {
        self.build.join("check")
    }
    /// The worktree of `tree()`'s repository that `check` builds each patch in.
    pub fn check_tree(&self) -> PathBuf {
        self.check().join("linux")
    }
    /// `check`'s build of the worktree, `variant` being `on` or `off`.
    pub fn check_kbuild(&self, variant: &str) -> Kbuild {
        Kbuild {
            tree: self.check_tree(),
            out: self
                .check()
                .join("out")
                .join(format!("{}-{variant}", self.profile.name())),
        }
    }
    pub fn bzimage(&self) -> PathBuf {
        self.out().join("arch/x86/boot/bzImage")
    }
    pub fn vmlinux(&self) -> PathBuf {
        self.out().join("vmlinux")
    }
    pub fn dot_config(&self) -> PathBuf {
        self.out().join(".config")
    }
    /// `make headers_install` output (its default INSTALL_HDR_PATH, `usr`).
    pub fn headers(&self) -> PathBuf {
        self.out().join("usr/include")
    }
    pub fn build_log(&self) -> PathBuf {
        self.out().join("kcontainer-build.log")
    }
    pub fn runs(&self) -> PathBuf {
        self.build.join("runs")
    }
    /// Cargo's output for the guest binaries (static, x86_64-unknown-linux-gnu).
    pub fn guest_bin(&self, name: &str) -> PathBuf {
        self.repo
            .join("target/x86_64-unknown-linux-gnu/release")
            .join(name)
    }
}

/// The entries of `dir`, sorted by name.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

/// Runs kept under `<build>/runs`; older ones are deleted.
const KEEP_RUNS: usize = 30;

impl Layout {
    /// A fresh `<build>/runs/<stamp>-<command>` directory; `runs/latest`
    /// points at it.
    pub fn new_run(&self, command: &str) -> Result<PathBuf> {
        let runs = self.runs();
        std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs();
        let (y, mo, d, h, mi, s) = civil(secs);
        let base = format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{command}");
        let mut dir = runs.join(&base);
        let mut n = 1;
        while dir.exists() {
            n += 1;
            dir = runs.join(format!("{base}.{n}"));
        }
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let latest = runs.join("latest");
        let _ = std::fs::remove_file(&latest);
        std::os::unix::fs::symlink(dir.file_name().context("run dir name")?, &latest)
            .with_context(|| format!("updating {}", latest.display()))?;
        self.prune_runs()?;
        Ok(dir)
    }

    fn prune_runs(&self) -> Result<()> {
        let runs = self.runs();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .with_context(|| format!("reading {}", runs.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        let excess = dirs.len().saturating_sub(KEEP_RUNS);
        for old in &dirs[..excess] {
            std::fs::remove_dir_all(old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(())
    }
}

/// UTC calendar date and time of a Unix timestamp (Howard Hinnant's
/// days-from-civil inverse), so run directories sort by time.
pub(crate) fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(super::civil(1_795_500_000), (2026, 11, 24, 6, 0, 0));
    }
}
