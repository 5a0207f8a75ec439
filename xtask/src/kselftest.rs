//! The series' C kselftests (`tools/testing/selftests/container/`, a patch of the
//! series): built against the installed uAPI headers the way kselftest builds them
//! for an `O=` kernel build (`KHDR_INCLUDES=-isystem <out>/usr/include`), linked
//! statically for the guest, which has no C library, and installed with their
//! `kselftest-list.txt`; the uAPI suite runs each program as one test with its KTAP
//! nested under it (`uapi-tests --kselftests DIR`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::image::Extra;
use crate::layout::{list_dir, Layout};
use crate::{linux, progress};

/// The kselftest collections of the series.
pub const TARGETS: &str = "container";
/// Where the installation is in the guest.
pub const GUEST_DIR: &str = "/kcontainer/kselftest";

/// `<out>/kselftest_install`, what `make ... install` filled.
pub fn install_dir(layout: &Layout) -> PathBuf {
    layout.out().join("kselftest_install")
}

/// Builds and installs the kselftests of the tree, or returns None when the tree
/// has none yet (a commit of the series before the selftests patch).
pub fn build(layout: &Layout, verbose: bool) -> Result<Option<PathBuf>> {
    let tree = layout.tree();
    let selftests = tree.join("tools/testing/selftests");
    if !selftests.join(TARGETS).join("Makefile").exists() {
        return Ok(None);
    }
    let install = install_dir(layout);
    if install.exists() {
        std::fs::remove_dir_all(&install)
            .with_context(|| format!("removing {}", install.display()))?;
    }
    // Debian's cc, as for the static guest binaries; `O=` makes kselftest use
    // `<out>/usr/include`, which `make headers_install` filled.
    let argv = vec![
        "-C".to_string(),
        selftests.display().to_string(),
        linux::jobs(),
        format!("O={}", layout.out().display()),
        format!("TARGETS={TARGETS}"),
        "CC=cc".to_string(),
        "LDFLAGS=-static".to_string(),
        format!("KSFT_INSTALL_PATH={}", install.display()),
        "install".to_string(),
    ];
    let log = layout.out().join("kcontainer-kselftest.log");
    progress::run_logged(
        duct::cmd("make", argv),
        "building the kselftests",
        &log,
        verbose,
    )?;
    let list = install.join("kselftest-list.txt");
    let text = std::fs::read_to_string(&list)
        .with_context(|| format!("reading {} (see {})", list.display(), log.display()))?;
    if text.trim().is_empty() {
        anyhow::bail!("{} lists no program; see {}", list.display(), log.display());
    }
    Ok(Some(install))
}

/// The installation as files for the guest image, under [`GUEST_DIR`]: the list,
/// each collection's programs and settings (kselftest's runner scripts stay out).
pub fn extras(install: &Path) -> Result<Vec<Extra>> {
    let mut out = vec![Extra {
        host: install.join("kselftest-list.txt"),
        guest: format!("{GUEST_DIR}/kselftest-list.txt"),
    }];
    for target in TARGETS.split_whitespace() {
        let dir = install.join(target);
        for path in list_dir(&dir)?.into_iter().filter(|p| p.is_file()) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Extra {
                guest: format!("{GUEST_DIR}/{target}/{name}"),
                host: path,
            });
        }
    }
    Ok(out)
}
