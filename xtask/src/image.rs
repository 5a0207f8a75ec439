//! The guest image: `/init` and the uAPI suite (static Rust binaries built
//! against the kernel's installed headers), what `initramfs/image.toml`
//! lists, the job, and files added with `--add HOST:GUEST`.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use kcontainer_init::{Job, JOB_PATH};
use serde::Deserialize;

use crate::cpio;
use crate::layout::Layout;
use crate::progress;

const TARGET: &str = "x86_64-unknown-linux-gnu";
pub const TESTS_GUEST_PATH: &str = "/bin/uapi-tests";
/// Where the benchmarks (`cargo xtask bench`) are in the guest.
pub const BENCH_GUEST_PATH: &str = "/bin/kc-bench";
/// Where the fuzzer (`cargo xtask fuzz`) is in the guest.
pub const FUZZ_GUEST_PATH: &str = "/bin/kc-fuzz";

/// `--add HOST_PATH:GUEST_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub host: PathBuf,
    pub guest: String,
}

impl FromStr for Extra {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.rsplit_once(':') {
            Some((host, guest))
                if !host.is_empty() && guest.starts_with('/') && guest.len() > 1 =>
            {
                Ok(Extra {
                    host: host.into(),
                    guest: guest.into(),
                })
            }
            _ => Err(format!(
                "expected HOST_PATH:/GUEST_PATH (an absolute guest path), got {s:?}"
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ImageSpec {
    dirs: Vec<String>,
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(default)]
    files: Vec<SpecFile>,
}

#[derive(Debug, Deserialize)]
struct Node {
    path: String,
    mode: u32,
    major: u32,
    minor: u32,
}

#[derive(Debug, Deserialize)]
struct SpecFile {
    host: PathBuf,
    guest: String,
    mode: u32,
}

/// Builds `/init`, `uapi-tests` and `kc` as static binaries; the suite is built
/// against `layout.headers()` (see uapi-tests/build.rs).
pub fn build_guest_binaries(layout: &Layout, verbose: bool) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let expr = duct::cmd!(
        cargo,
        "build",
        "--release",
        "--target",
        TARGET,
        "-p",
        "kcontainer-init",
        "-p",
        "uapi-tests"
    )
    .dir(&layout.repo)
    // Only the target's binaries are static (build scripts stay dynamic).
    .env(
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
        "-C target-feature=+crt-static",
    )
    .env("KCONTAINER_UAPI_HEADERS", layout.headers());
    let log = layout.runs().join("guest-binaries.log");
    fs::create_dir_all(layout.runs())
        .with_context(|| format!("creating {}", layout.runs().display()))?;
    progress::run_logged(expr, "building the guest binaries", &log, verbose)
}

/// Writes the initramfs for `job` to `out`.
pub fn pack(layout: &Layout, job: &Job, extras: &[Extra], out: &Path) -> Result<()> {
    let spec_path = layout.repo.join("initramfs/image.toml");
    let text = fs::read_to_string(&spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?;
    let spec: ImageSpec =
        toml::from_str(&text).with_context(|| format!("parsing {}", spec_path.display()))?;

    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = cpio::Writer::new(std::io::BufWriter::new(file));
    let mut made_dirs: Vec<String> = Vec::new();
    for dir in &spec.dirs {
        w.dir(dir, 0o755)?;
        made_dirs.push(dir.clone());
    }
    for node in &spec.nodes {
        w.char_dev(&node.path, node.mode, node.major, node.minor)?;
    }
    let read = |path: &Path, what: &str| {
        fs::read(path).with_context(|| format!("reading {} ({what})", path.display()))
    };
    for f in &spec.files {
        let data = read(
            &f.host,
            &format!(
                "listed in {}; run `cargo xtask build` to install it",
                spec_path.display()
            ),
        )?;
        w.file(&f.guest, f.mode, &data)?;
    }
    w.file(
        "/init",
        0o755,
        &read(&layout.guest_bin("init"), "the guest's /init")?,
    )?;
    w.file(
        TESTS_GUEST_PATH,
        0o755,
        &read(&layout.guest_bin("uapi-tests"), "the uAPI suite")?,
    )?;
    w.file(
        "/bin/kc",
        0o755,
        &read(&layout.guest_bin("kc"), "kc, the container demo tool")?,
    )?;
    w.file(
        BENCH_GUEST_PATH,
        0o755,
        &read(&layout.guest_bin("kc-bench"), "kc-bench, the benchmarks")?,
    )?;
    w.file(
        FUZZ_GUEST_PATH,
        0o755,
        &read(&layout.guest_bin("kc-fuzz"), "kc-fuzz, the fuzzer")?,
    )?;
    let job_json = serde_json::to_vec_pretty(job).context("encoding the job")?;
    w.file(JOB_PATH, 0o644, &job_json)?;
    for extra in extras {
        let meta = fs::metadata(&extra.host)
            .with_context(|| format!("--add {}: no such file", extra.host.display()))?;
        if !meta.is_file() {
            bail!("--add {}: not a regular file", extra.host.display());
        }
        // Parent directories the spec does not have yet.
        let mut parent = String::new();
        let parts: Vec<&str> = extra.guest.trim_start_matches('/').split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent.push('/');
            parent.push_str(part);
            if !made_dirs.contains(&parent) {
                w.dir(&parent, 0o755)?;
                made_dirs.push(parent.clone());
            }
        }
        use std::os::unix::fs::PermissionsExt;
        let data = read(&extra.host, "--add")?;
        w.file(&extra.guest, meta.permissions().mode() & 0o7777, &data)?;
    }
    use std::io::Write;
    w.finish()?
        .flush()
        .with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_add() {
        assert_eq!(
            "./a.out:/bin/x".parse::<Extra>(),
            Ok(Extra {
                host: "./a.out".into(),
                guest: "/bin/x".into()
            })
        );
        assert!("a.out".parse::<Extra>().is_err());
        assert!("a.out:bin/x".parse::<Extra>().is_err());
        assert!(":/bin/x".parse::<Extra>().is_err());
    }
}
