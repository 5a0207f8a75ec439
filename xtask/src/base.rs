//! The pinned base from Debian (`patches/base.toml`): `linux-source-7.3`
//! from a suite the machine's apt sources do not list (trixie-backports),
//! fetched without touching the system's apt configuration.
//!
//! The archive URI is the one the machine already uses for its own release
//! (read with `apt-get indextargets`, never written into the repository); a
//! temporary sources list under `<build>/base/apt/` adds the suite for one
//! `apt-get update` + `apt-get download`. The `.deb` and the tarball in it
//! are checked against `base.toml`; only the tarball is kept, so later runs
//! need no network.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::layout::Layout;
use crate::linux::sha256_file;

/// `patches/base.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Base {
    pub kernel: String,
    pub debian_package: String,
    pub debian_version: String,
    pub debian_suite: String,
    pub deb_sha256: String,
    /// The tarball's path inside the `.deb`.
    pub tarball_member: String,
    /// sha256 of the tarball.
    pub sha256: String,
}

impl Base {
    pub fn load(layout: &Layout) -> Result<Self> {
        let path = layout.patches().join("base.toml");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Where the verified tarball is kept.
    pub fn tarball(&self, layout: &Layout) -> PathBuf {
        let name = Path::new(&self.tarball_member)
            .file_name()
            .map_or_else(|| "linux.tar.xz".into(), |n| n.to_string_lossy());
        layout.base_dir().join(format!(
            "{}-{}",
            self.debian_version.replace('~', "_"),
            name
        ))
    }
}

/// The tarball of `base`, fetched and verified when it is not there yet.
pub fn ensure(sh: &Shell, layout: &Layout, base: &Base) -> Result<PathBuf> {
    let tarball = base.tarball(layout);
    if tarball.exists() {
        return Ok(tarball);
    }
    let dir = layout.base_dir();
    let apt = dir.join("apt");
    if apt.exists() {
        fs::remove_dir_all(&apt).with_context(|| format!("removing {}", apt.display()))?;
    }
    for sub in ["lists/partial", "cache/archives/partial", "download"] {
        let d = apt.join(sub);
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let uri = archive_uri(sh)?;
    let sources = apt.join("sources.list");
    fs::write(&sources, format!("deb {uri} {} main\n", base.debian_suite))
        .with_context(|| format!("writing {}", sources.display()))?;
    let opts = [
        format!("-o=Dir::Etc::sourcelist={}", sources.display()),
        "-o=Dir::Etc::sourceparts=/dev/null".to_string(),
        format!("-o=Dir::State::Lists={}", apt.join("lists").display()),
        format!("-o=Dir::Cache={}", apt.join("cache").display()),
        // apt drops privileges to _apt for downloads into a directory that
        // user cannot write; the build directory is ours.
        "-o=APT::Sandbox::User=root".to_string(),
    ];
    let what = format!("{}={}", base.debian_package, base.debian_version);
    eprintln!(
        "xtask: fetching {what} from {} (the machine's archive, suite {})",
        uri, base.debian_suite
    );
    let by_hand = format!(
        "apt-get {} update && apt-get {} download {what}",
        opts.join(" "),
        opts.join(" ")
    );
    let o = &opts;
    cmd!(sh, "apt-get -q {o...} update")
        .run()
        .with_context(|| {
            format!(
                "apt-get update for {}; by hand:\n  {by_hand}",
                base.debian_suite
            )
        })?;
    let download = apt.join("download");
    {
        let _dir = sh.push_dir(&download);
        cmd!(sh, "apt-get -q {o...} download {what}")
            .run()
            .with_context(|| {
                format!(
                    "downloading {what}; is it still in {} {}? by hand:\n  {by_hand}\n\
                     or pass --linux-tarball with a Linux {} tarball",
                    uri, base.debian_suite, base.kernel
                )
            })?;
    }
    let deb = fs::read_dir(&download)
        .with_context(|| format!("reading {}", download.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", download.display()))?;
    let sum = sha256_file(&deb)?;
    if sum != base.deb_sha256 {
        bail!(
            "{} has sha256 {sum}, patches/base.toml pins {} for {what}: the archive serves another \
             build; update base.toml only after checking why",
            deb.display(),
            base.deb_sha256
        );
    }
    let partial = tarball.with_extension("xz.partial");
    let member = format!("./{}", base.tarball_member);
    eprintln!(
        "xtask: extracting {} from {}",
        base.tarball_member,
        deb.display()
    );
    duct::cmd!("dpkg-deb", "--fsys-tarfile", &deb)
        .pipe(duct::cmd!("tar", "-xOf", "-", &member))
        .stdout_path(&partial)
        .run()
        .with_context(|| format!("extracting {member} from {}", deb.display()))?;
    let sum = sha256_file(&partial)?;
    if sum != base.sha256 {
        bail!(
            "{member} in {} has sha256 {sum}, patches/base.toml pins {}",
            deb.display(),
            base.sha256
        );
    }
    fs::rename(&partial, &tarball)
        .with_context(|| format!("moving {} to {}", partial.display(), tarball.display()))?;
    fs::remove_dir_all(&apt).with_context(|| format!("removing {}", apt.display()))?;
    Ok(tarball)
}

/// The URI of the Debian archive the machine uses for its own release.
fn archive_uri(sh: &Shell) -> Result<String> {
    let format = "$(REPO_URI)|$(RELEASE)|$(IDENTIFIER)";
    let out = cmd!(sh, "apt-get indextargets --format {format}")
        .quiet()
        .read()
        .context(
            "reading the machine's apt sources (apt-get indextargets); this needs Debian, \
             otherwise pass --linux-tarball or --linux-tree",
        )?;
    let release = os_codename()?;
    pick_archive_uri(&out, &release).with_context(|| {
        format!(
            "no `deb <URI> {release} main` in the machine's apt sources (apt-get indextargets \
             printed:\n{out})\nadd the Debian archive to /etc/apt/sources.list, or pass --linux-tarball"
        )
    })
}

fn os_codename() -> Result<String> {
    let text = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME: not Debian? pass --linux-tarball")
}

/// From `apt-get indextargets` lines `URI|RELEASE|IDENTIFIER`, the URI of
/// the release `release` itself (not -updates or -security).
pub fn pick_archive_uri(indextargets: &str, release: &str) -> Option<String> {
    indextargets.lines().find_map(|line| {
        let mut f = line.split('|');
        let (uri, rel, id) = (f.next()?, f.next()?, f.next()?);
        (rel == release && id == "Packages").then(|| uri.trim_end_matches('/').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_uri_is_the_release_itself() {
        let out = "http://a.example/debian-security/|bookworm-security|Packages\n\
                   http://a.example/debian/|bookworm-updates|Packages\n\
                   http://a.example/debian/|bookworm|DEP-11\n\
                   http://a.example/debian/|bookworm|Packages\n";
        assert_eq!(
            pick_archive_uri(out, "bookworm").as_deref(),
            Some("http://a.example/debian")
        );
        assert_eq!(pick_archive_uri(out, "trixie"), None);
        assert_eq!(pick_archive_uri("", "bookworm"), None);
    }
}
