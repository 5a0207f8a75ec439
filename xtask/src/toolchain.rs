//! Finds, checks and (on Debian, as root) installs what the lab needs: the
//! package set measured in `../shared/lab-notes.md`, bindgen-cli 0.72.1 in the
//! build directory, and rustup's x86_64-unknown-linux-gnu target for the
//! static guest binaries. The kernel is always built with Debian's rustc-web,
//! never with rustup's rustc (which has no rust-src).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::layout::Layout;

/// Debian packages and, where it matters, the pinned version.
const PACKAGES: &[(&str, Option<&str>)] = &[
    ("rustc-web", None),
    ("rust-web-src", None),
    ("libstd-rust-web-dev", None),
    ("clang-19", None),
    ("lld-19", None),
    ("llvm-19", None),
    ("libclang-19-dev", None),
    ("make", None),
    ("flex", None),
    ("bison", None),
    ("libelf-dev", None),
    ("libssl-dev", None),
    ("bc", None),
    ("cpio", None),
    ("xz-utils", None),
    ("git", None),
    ("ccache", None),
    ("qemu-system-x86", None),
    ("busybox-static", None),
    // `make headers_install` copies with rsync.
    ("rsync", None),
    // The static guest binaries and the C kselftests link glibc's libc.a.
    ("gcc", None),
    ("libc6-dev", None),
];

pub const BINDGEN_VERSION: &str = "0.72.1";
/// 7.3's minimum (scripts/min-tool-version.sh).
const RUSTC_MIN: (u32, u32) = (1, 85);
const LLVM_SUFFIX: &str = "-19";

/// The kernel's toolchain, resolved to absolute paths.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub rustc: PathBuf,
    pub rustdoc: PathBuf,
    pub rust_lib_src: PathBuf,
    pub bindgen: PathBuf,
    pub ccache: Option<PathBuf>,
}

impl Toolchain {
    /// The variables every kernel `make` gets; `out` is the `O=` directory.
    pub fn make_vars(&self, out: &Path) -> Vec<String> {
        let cc = match &self.ccache {
            Some(ccache) => format!("CC={} clang{LLVM_SUFFIX}", ccache.display()),
            None => format!("CC=clang{LLVM_SUFFIX}"),
        };
        vec![
            format!("O={}", out.display()),
            "ARCH=x86_64".into(),
            format!("LLVM={LLVM_SUFFIX}"),
            cc,
            // An empty LOCALVERSION keeps setlocalversion from appending "+"
            // for the git tree: `uname -r` is 7.3.4-kcontainer.
            "LOCALVERSION=".into(),
            format!("RUSTC={}", self.rustc.display()),
            format!("HOSTRUSTC={}", self.rustc.display()),
            format!("RUSTDOC={}", self.rustdoc.display()),
            format!("RUST_LIB_SRC={}", self.rust_lib_src.display()),
            format!("BINDGEN={}", self.bindgen.display()),
        ]
    }
}

/// What to check for beyond [`PACKAGES`]: the review tools (checkpatch's
/// SPDX check needs python3-ply and python3-git) only for `cargo xtask check`.
pub struct Needs {
    pub review: bool,
}

/// Packages `cargo xtask check` needs on top of [`PACKAGES`]: checkpatch's, and
/// the man pages' two linters (man.rs).
const REVIEW_PACKAGES: &[(&str, Option<&str>)] = &[
    ("perl", None),
    ("python3-ply", None),
    ("python3-git", None),
    ("mandoc", None),
    ("groff-base", None),
];

/// Checks everything and installs what is missing where it can.
pub fn ensure(sh: &Shell, layout: &Layout, needs: &Needs) -> Result<Toolchain> {
    ensure_packages(sh, needs)?;
    let rustc = PathBuf::from("/usr/bin/rustc");
    let version = rustc_version(sh, &rustc)?;
    if (version.0, version.1) < RUSTC_MIN {
        bail!(
            "{} is {}.{}.{}, the kernel needs ≥ {}.{}: install Debian's rustc-web (apt-get install rustc-web)",
            rustc.display(),
            version.0,
            version.1,
            version.2,
            RUSTC_MIN.0,
            RUSTC_MIN.1
        );
    }
    let rust_lib_src = PathBuf::from(format!(
        "/usr/src/rustc-{}.{}.{}/library",
        version.0, version.1, version.2
    ));
    if !rust_lib_src.join("core/src/lib.rs").exists() {
        bail!(
            "{} has no core/src/lib.rs: the standard library sources for rustc {}.{}.{} are missing \
             (apt-get install rust-web-src)",
            rust_lib_src.display(),
            version.0,
            version.1,
            version.2
        );
    }
    let bindgen = ensure_bindgen(sh, layout)?;
    ensure_rust_target(sh)?;
    let ccache = which("ccache");
    Ok(Toolchain {
        rustc,
        rustdoc: PathBuf::from("/usr/bin/rustdoc"),
        rust_lib_src,
        bindgen,
        ccache,
    })
}

fn ensure_packages(sh: &Shell, needs: &Needs) -> Result<()> {
    let mut wanted: Vec<(&str, Option<&str>)> = PACKAGES.to_vec();
    if needs.review {
        wanted.extend_from_slice(REVIEW_PACKAGES);
    }
    ensure_debian_packages(sh, &wanted)
}

/// Installs those of `wanted` (name, pinned version) that are missing, as root on
/// Debian, or says which command would.
pub fn ensure_debian_packages(sh: &Shell, wanted: &[(&str, Option<&str>)]) -> Result<()> {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, version)| !package_ok(sh, name, *version))
        .map(|(name, version)| match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    let is_root = euid() == 0;
    if which("apt-get").is_none() || !is_root {
        bail!(
            "missing packages: {}\nthis needs Debian 12 (bookworm) and root; run:\n  {install}\n\
             (not on Debian: install the equivalents and pass --linux-tarball or --linux-tree)",
            missing.join(", ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    cmd!(sh, "apt-get update -q")
        .run()
        .context("apt-get update failed; is the Debian archive reachable?")?;
    cmd!(
        sh,
        "apt-get install -y -q --no-install-recommends {missing...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()
    .with_context(|| format!("apt-get install failed; run by hand:\n  {install}"))?;
    Ok(())
}

fn package_ok(sh: &Shell, name: &str, version: Option<&str>) -> bool {
    let format = "-f=${Status}|${Version}";
    let out = cmd!(sh, "dpkg-query -W {format} {name}")
        .quiet()
        .ignore_stderr()
        .read();
    match out {
        Ok(out) => {
            let (status, installed) = out.split_once('|').unwrap_or((&out, ""));
            status.ends_with(" installed") && version.is_none_or(|v| v == installed)
        }
        Err(_) => false,
    }
}

fn rustc_version(sh: &Shell, rustc: &Path) -> Result<(u32, u32, u32)> {
    let out = cmd!(sh, "{rustc} --version")
        .quiet()
        .read()
        .with_context(|| {
            format!(
                "running {} --version (apt-get install rustc-web)",
                rustc.display()
            )
        })?;
    parse_rustc_version(&out)
        .with_context(|| format!("unexpected `rustc --version` output: {out:?}"))
}

/// `rustc 1.96.0 (…)` → (1, 96, 0).
pub fn parse_rustc_version(out: &str) -> Option<(u32, u32, u32)> {
    let version = out.split_whitespace().nth(1)?;
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>());
    Some((
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ))
}

fn ensure_bindgen(sh: &Shell, layout: &Layout) -> Result<PathBuf> {
    let bindgen = layout.bindgen();
    if let Ok(out) = cmd!(sh, "{bindgen} --version")
        .quiet()
        .ignore_stderr()
        .read()
    {
        if out.trim() == format!("bindgen {BINDGEN_VERSION}") {
            return Ok(bindgen);
        }
    }
    let root = layout.tools().join("bindgen");
    eprintln!(
        "xtask: installing bindgen-cli {BINDGEN_VERSION} into {}",
        root.display()
    );
    cmd!(
        sh,
        "cargo install bindgen-cli --version {BINDGEN_VERSION} --locked --root {root}"
    )
    .run()
    .with_context(|| {
        format!(
            "installing bindgen-cli failed; run by hand:\n  cargo install bindgen-cli --version \
                 {BINDGEN_VERSION} --locked --root {}",
            root.display()
        )
    })?;
    Ok(bindgen)
}

fn ensure_rust_target(sh: &Shell) -> Result<()> {
    // The guest binaries are built with the workspace's (rustup) toolchain.
    let installed = cmd!(sh, "rustup target list --installed")
        .quiet()
        .ignore_stderr()
        .read();
    match installed {
        Ok(list) if list.lines().any(|l| l.trim() == "x86_64-unknown-linux-gnu") => Ok(()),
        Ok(_) => cmd!(sh, "rustup target add x86_64-unknown-linux-gnu")
            .run()
            .context("rustup target add x86_64-unknown-linux-gnu"),
        // No rustup: assume a toolchain that ships its host target.
        Err(_) => Ok(()),
    }
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn euid() -> u32 {
    // SAFETY: geteuid() cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustc_versions() {
        assert_eq!(
            parse_rustc_version("rustc 1.96.0 (abc 2026-01-01)"),
            Some((1, 96, 0))
        );
        assert_eq!(
            parse_rustc_version("rustc 1.85.0-nightly"),
            Some((1, 85, 0))
        );
        assert_eq!(parse_rustc_version("garbage"), None);
    }
}
