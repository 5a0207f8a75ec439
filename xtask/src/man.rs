//! The man pages of `man/` (the man-pages project's roff), checked by
//! `cargo xtask check`:
//!
//! - both linters the man-pages project uses are silent: `mandoc -Tlint -W warning`
//!   and `groff -man -t -ww -z`;
//! - every errno that a section of the series' `container.rst` documents appears in
//!   the page that [`SECTIONS`] gives for it (in its ERRORS section; anywhere in a
//!   section 7 page, which has none), and every section of container.rst that names
//!   an errno is either mapped or listed in [`NOT_PAGES`] with the reason, so a new
//!   section cannot be forgotten.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

/// The series' documentation, in the kernel tree.
pub const CONTAINER_RST: &str = "Documentation/userspace-api/container.rst";

const SYSCALLS: &[&str] = &[
    "man2/container_create.2",
    "man2/fork_into_container.2",
    "man2/container_socket.2",
    "man2/container_kill.2",
    "man2/container_wait.2",
];
const CFD_CALLS: &[&str] = &[
    "man2/fork_into_container.2",
    "man2/container_socket.2",
    "man2/container_kill.2",
    "man2/container_wait.2",
    "man2/ioctl_container.2",
];
const IOCTL: &[&str] = &["man2/ioctl_container.2"];
const OVERVIEW: &[&str] = &["man7/containers.7"];
const INTERCEPT: &[&str] = &["man2const/KEYCTL_CONTAINER_INTERCEPT.2const"];

/// Which page documents the errnos of which section of container.rst.
pub const SECTIONS: &[(&str, &[&str])] = &[
    ("Configuration", SYSCALLS),
    ("Common rules", CFD_CALLS),
    ("container_create()", &["man2/container_create.2"]),
    ("fork_into_container()", &["man2/fork_into_container.2"]),
    ("container_socket()", &["man2/container_socket.2"]),
    ("container_kill()", &["man2/container_kill.2"]),
    ("container_wait()", &["man2/container_wait.2"]),
    ("The cfd as a handle", IOCTL),
    ("Identity and state", IOCTL),
    ("Init's pidfd", IOCTL),
    ("Namespace fds", IOCTL),
    ("Adopting a namespace and a cgroup", IOCTL),
    (
        "Starting init with clone3()",
        &["man2/fork_into_container.2"],
    ),
    ("An empty mount namespace", OVERVIEW),
    ("Superblocks in the container's namespaces", OVERVIEW),
    ("Mounting into the container", OVERVIEW),
    ("The cfd as dirfd", OVERVIEW),
    (
        "Idmapped mounts: files owned in the container's terms",
        OVERVIEW,
    ),
    (
        "The container keyring",
        &["man2const/KEYCTL_SET_CONTAINER_KEYRING.2const"],
    ),
    (
        "Key requests answered by the container's supervisor",
        INTERCEPT,
    ),
    ("Which intercept applies", INTERCEPT),
    ("Who may intercept", INTERCEPT),
];

/// Sections that name errnos without being a call's contract, and why.
pub const NOT_PAGES: &[(&str, &str)] = &[
    (
        "Credentials and user namespaces",
        "explains the EPERM of container_create() and fork_into_container(), which their pages list",
    ),
    ("Locking", "an allocation inside the kernel, not an error of a call"),
    (
        "A supervisor in user space",
        "the EAGAIN a supervisor rejects a request with (KEYCTL_REJECT), in the NOTES of \
         KEYCTL_CONTAINER_INTERCEPT(2const): no call returns it",
    ),
    (
        "Decisions where the RFC was silent",
        "a summary of the sections above, for reviewers",
    ),
];

/// A section of an RST document: its title and the `E...` names its text puts in
/// double back-quotes.
#[derive(Debug, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub errnos: BTreeSet<String>,
}

/// Splits an RST document at its titles (a line underlined by at least three of one
/// of `= - ~ ^`, at least as long as the title).
pub fn sections(rst: &str) -> Vec<Section> {
    let lines: Vec<&str> = rst.lines().collect();
    let mut out = vec![Section {
        title: String::new(),
        errnos: BTreeSet::new(),
    }];
    let mut i = 0;
    while i < lines.len() {
        let title = lines[i].trim_end();
        let under = lines.get(i + 1).map_or("", |l| l.trim_end());
        let is_rule = under.len() >= 3
            && under.len() >= title.len()
            && ['=', '-', '~', '^']
                .iter()
                .any(|&c| under.chars().all(|u| u == c));
        if !title.trim().is_empty() && is_rule && !title.chars().all(|c| "=-~^ ".contains(c)) {
            out.push(Section {
                title: title.trim().to_string(),
                errnos: BTreeSet::new(),
            });
            i += 2;
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.errnos.extend(quoted_errnos(lines[i]));
        }
        i += 1;
    }
    out
}

/// ``EFOO`` names in a line of RST.
fn quoted_errnos(line: &str) -> Vec<String> {
    line.split("``")
        .skip(1)
        .step_by(2)
        .filter(|w| is_errno(w))
        .map(str::to_string)
        .collect()
}

fn is_errno(w: &str) -> bool {
    w.len() > 2
        && w.starts_with('E')
        && w[1..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The errnos a page documents: the words of its `ERRORS` section, or of the whole
/// page for section 7.
pub fn page_errnos(page: &str, roff: &str) -> BTreeSet<String> {
    let whole = page.ends_with(".7");
    let mut inside = whole;
    let mut out = BTreeSet::new();
    for line in roff.lines() {
        if let Some(heading) = line.strip_prefix(".SH") {
            inside = whole || heading.trim().trim_matches('"') == "ERRORS";
            continue;
        }
        if inside {
            out.extend(
                line.split(|c: char| !(c.is_ascii_alphanumeric()))
                    .filter(|w| is_errno(w))
                    .map(str::to_string),
            );
        }
    }
    out
}

/// What is wrong between container.rst and the pages in `man_dir`, one line each.
pub fn cross_check(rst: &str, rst_name: &str, man_dir: &Path) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for section in sections(rst) {
        if section.errnos.is_empty() {
            continue;
        }
        let Some((_, pages)) = SECTIONS.iter().find(|(t, _)| *t == section.title) else {
            if !NOT_PAGES.iter().any(|(t, _)| *t == section.title) {
                failures.push(format!(
                    "{rst_name}: section \"{}\" names {} but no man page is given for it \
                     (add it to SECTIONS or NOT_PAGES in xtask/src/man.rs)",
                    section.title,
                    join(&section.errnos)
                ));
            }
            continue;
        };
        for page in *pages {
            let path = man_dir.join(page);
            let roff = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let documented = page_errnos(page, &roff);
            let missing: BTreeSet<String> =
                section.errnos.difference(&documented).cloned().collect();
            if !missing.is_empty() {
                failures.push(format!(
                    "man/{page}: {} of {rst_name}'s section \"{}\" not in its {}",
                    join(&missing),
                    section.title,
                    if page.ends_with(".7") {
                        "text"
                    } else {
                        "ERRORS"
                    }
                ));
            }
        }
    }
    for (title, _) in SECTIONS {
        if !sections(rst).iter().any(|s| s.title == *title) {
            failures.push(format!(
                "{rst_name} has no section \"{title}\" (xtask/src/man.rs maps it to a page)"
            ));
        }
    }
    Ok(failures)
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The pages under `man_dir` (`man*/*`), sorted.
pub fn pages(man_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in crate::layout::list_dir(man_dir)?
        .into_iter()
        .filter(|d| d.is_dir())
    {
        out.extend(crate::layout::list_dir(&dir)?);
    }
    Ok(out)
}

/// Both linters on every page; each complaint is a failure naming its page.
pub fn lint(sh: &Shell, man_dir: &Path) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let pages = pages(man_dir)?;
    for page in &pages {
        let name = page
            .strip_prefix(man_dir.parent().unwrap_or(man_dir))
            .unwrap_or(page)
            .display()
            .to_string();
        let mandoc = cmd!(sh, "mandoc -man -Tlint -W warning {page}")
            .quiet()
            .ignore_status()
            .output()
            .context("running mandoc (apt-get install mandoc)")?;
        for line in String::from_utf8_lossy(&mandoc.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&mandoc.stderr).lines())
        {
            failures.push(format!(
                "mandoc: {}",
                line.replace(&page.display().to_string(), &name)
            ));
        }
        if !mandoc.status.success() && mandoc.stdout.is_empty() && mandoc.stderr.is_empty() {
            failures.push(format!("mandoc: {name}: {}", mandoc.status));
        }
        let groff = cmd!(sh, "groff -man -t -ww -z {page}")
            .quiet()
            .ignore_status()
            .output()
            .context("running groff (apt-get install groff-base)")?;
        for line in String::from_utf8_lossy(&groff.stderr).lines() {
            failures.push(format!("groff: {name}: {line}"));
        }
        if !groff.status.success() && groff.stderr.is_empty() {
            failures.push(format!("groff: {name}: {}", groff.status));
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RST: &str = "\
=====
Title
=====

Intro ``ENOSYS`` here.

container_kill()
----------------

``EINVAL``
    bad. ``ESRCH`` and ``EPERM``; ``SIGKILL`` and ``E`` are not errnos.

Locking
~~~~~~~

``ENOMEM``
";

    #[test]
    fn sections_collect_their_errnos() {
        let s = sections(RST);
        let got: Vec<(&str, Vec<&str>)> = s
            .iter()
            .map(|s| {
                (
                    s.title.as_str(),
                    s.errnos.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("", vec![]),
                ("Title", vec!["ENOSYS"]),
                ("container_kill()", vec!["EINVAL", "EPERM", "ESRCH"]),
                ("Locking", vec!["ENOMEM"]),
            ]
        );
    }

    #[test]
    fn page_errnos_come_from_errors_only() {
        let roff = ".SH DESCRIPTION\nSee\n.BR EFAULT .\n.SH ERRORS\n.TP\n.B EINVAL\nbad\n.TP\n.BR ESRCH \" and \" EPERM\n.SH NOTES\nENOMEM\n";
        let got: Vec<String> = page_errnos("man2/x.2", roff).into_iter().collect();
        assert_eq!(got, ["EINVAL", "EPERM", "ESRCH"]);
        let all: Vec<String> = page_errnos("man7/x.7", roff).into_iter().collect();
        assert_eq!(all, ["EFAULT", "EINVAL", "ENOMEM", "EPERM", "ESRCH"]);
    }

    #[test]
    fn cross_check_names_what_is_missing_and_unmapped() {
        let dir = std::env::temp_dir().join(format!("man-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("man2")).unwrap();
        std::fs::write(
            dir.join("man2/container_kill.2"),
            ".SH ERRORS\n.TP\n.B EINVAL\n.TP\n.B ESRCH\n",
        )
        .unwrap();
        let rst = format!("{RST}\nNew part\n--------\n\n``EXDEV``\n");
        let failures = cross_check(&rst, "container.rst", &dir).unwrap();
        assert!(failures.contains(
            &"man/man2/container_kill.2: EPERM of container.rst's section \"container_kill()\" not in its ERRORS"
                .to_string()
        ));
        assert!(failures
            .iter()
            .any(|f| f.starts_with("container.rst: section \"Title\" names ENOSYS")));
        assert!(failures
            .iter()
            .any(|f| f.starts_with("container.rst: section \"New part\" names EXDEV")));
        // Locking is in NOT_PAGES; sections the map names but the file lacks are reported.
        assert!(!failures.iter().any(|f| f.contains("\"Locking\" names")));
        assert!(failures
            .iter()
            .any(|f| f == "container.rst has no section \"container_wait()\" (xtask/src/man.rs maps it to a page)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
