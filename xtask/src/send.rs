//! `cargo xtask send`: the series prepared for the mailing lists with the kernel
//! community's own tool, b4 (pinned, in the build directory's Python environment),
//! and written out as the exact mails instead of sent: nothing leaves this machine.
//!
//! In a throwaway clone of the kernel tree (`<build>/send/linux`), the base with
//! the patch files of `patches/` applied (not whatever the tree holds):
//! `b4 prep --enroll` on the base, the cover letter from
//! `patches/0000-cover-letter.patch`, the revision and the RFC prefix from its
//! subject, `b4 prep --auto-to-cc` (the tree's `scripts/get_maintainer.pl`),
//! `b4 prep --check` (checkpatch and b4's own checks), then `b4 send -o DIR`,
//! which writes every mail, threaded, to `runs/<stamp>-send/`.
//!
//! The previous version (vN-1) is the newest commit of this repository whose
//! cover letter says so; it is applied on the base in the same clone and tagged
//! the way `b4 send` tags what it sent, so that `b4 prep --compare-to vN-1`
//! writes the range-diff to `runs/<stamp>-send/range-diff-vN-1.txt`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::layout::Layout;
use crate::linux::{self, BASE_TAG, BRANCH, COVER_LETTER};
use crate::{build, Options};

/// The b4 release the lab uses.
pub const B4_VERSION: &str = "0.16.0";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip `b4 prep --check` (checkpatch on every patch; `cargo xtask check` runs it too)
    #[arg(long)]
    pub no_check: bool,
}

/// The cover letter of `patches/`: its subject without the `[RFC PATCH vN 00/NN]`
/// prefix, the revision N, whether it is an RFC, and its body (up to the shortlog,
/// which b4 writes itself).
struct Cover {
    subject: String,
    revision: u32,
    rfc: bool,
    body: String,
}

fn read_cover(path: &Path) -> Result<Cover> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_cover(&text, &path.display())
}

/// The cover letter in `text`; `path` names it in errors.
fn parse_cover(text: &str, path: &dyn std::fmt::Display) -> Result<Cover> {
    let (headers, body) = text
        .split_once("\n\n")
        .with_context(|| format!("{path}: no blank line after the headers"))?;
    let subject = headers
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .with_context(|| format!("{path}: no Subject: header"))?;
    let (prefix, title) = subject
        .strip_prefix('[')
        .and_then(|s| s.split_once("] "))
        .with_context(|| format!("{path}: the subject has no [PATCH ...] prefix"))?;
    let revision = prefix
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v').and_then(|n| n.parse().ok()))
        .unwrap_or(1);
    // The shortlog and diffstat format-patch appended start at "Name (N):".
    let end = body
        .lines()
        .position(|l| l.ends_with("):") && l.contains(" ("))
        .unwrap_or(usize::MAX);
    let body: Vec<&str> = body.lines().take(end).collect();
    Ok(Cover {
        subject: title.to_string(),
        revision,
        rfc: prefix.split_whitespace().any(|w| w == "RFC"),
        body: body.join("\n").trim_end().to_string(),
    })
}

/// The build directory's Python environment with b4.
pub fn b4(sh: &Shell, layout: &Layout) -> Result<PathBuf> {
    let py = crate::kcidb::python(sh, layout)?;
    let b4 = layout.tools().join("python/bin/b4");
    let have = cmd!(sh, "{b4} --version").quiet().ignore_stderr().read();
    if have.is_ok_and(|v| v.trim() == B4_VERSION) {
        return Ok(b4);
    }
    eprintln!("xtask: installing b4 {B4_VERSION}");
    let pkg = format!("b4=={B4_VERSION}");
    cmd!(sh, "{py} -m pip install --quiet {pkg}")
        .run()
        .with_context(|| {
            format!(
                "installing b4 failed; run by hand:\n  {} -m pip install {pkg}",
                py.display()
            )
        })?;
    Ok(b4)
}

/// `b4 prep --check` in the prepared branch: checkpatch (with Debian's python3 for its
/// SPDX check, as `cargo xtask check` runs it) and b4's own checks. Returns b4's
/// summary line (`Success: N, Warning: N, Error: N`).
pub fn prep_check(sh: &Shell, b4: &Path, run_dir: &Path) -> Result<String> {
    crate::toolchain::ensure_debian_packages(
        sh,
        &[("perl", None), ("python3-ply", None), ("python3-git", None)],
    )?;
    let _path = sh.push_env(
        "PATH",
        crate::check::debian_python_first(&run_dir.join("bin"))?,
    );
    let out = cmd!(sh, "{b4} prep --check")
        .ignore_status()
        .output()
        .context("b4 prep --check")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = run_dir.join("prep-check.log");
    std::fs::write(&log, &text).with_context(|| format!("writing {}", log.display()))?;
    let summary = text
        .lines()
        .find(|l| l.starts_with("Success: "))
        .unwrap_or_default();
    eprintln!("xtask: b4 prep --check: {summary} (log: {})", log.display());
    if !out.status.success() || summary.is_empty() {
        bail!("b4 prep --check did not run; see {}", log.display());
    }
    Ok(summary.to_string())
}

/// A b4-prepared branch of the series: a fresh clone of `tree` at `head` in `dir`
/// (b4 keeps its state in the branch) with the patch files `apply` applied on top,
/// enrolled on the base, with the cover letter of `cover_path`, its revision and
/// prefix, and the recipients from get_maintainer.pl. Returns b4; the shell is left
/// in the clone.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    sh: &Shell,
    layout: &Layout,
    tree: &Path,
    head: &str,
    apply: &[PathBuf],
    dir: &Path,
    cover_path: &Path,
    run_dir: &Path,
) -> Result<PathBuf> {
    let cover = read_cover(cover_path)?;
    let b4 = b4(sh, layout)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    eprintln!("xtask: cloning {} to {}", tree.display(), dir.display());
    cmd!(sh, "git clone -q --no-checkout {tree} {dir}")
        .run()
        .context("git clone")?;
    sh.change_dir(dir);
    cmd!(sh, "git checkout -q -B {BRANCH} {head}")
        .run()
        .context("git checkout")?;
    // The series' author, as in the patches.
    let (name, email) = ("kcontainer developers", "kcontainer@example.org");
    cmd!(sh, "git config user.name {name}").run()?;
    cmd!(sh, "git config user.email {email}").run()?;
    // SMTP rather than b4's web endpoint, which insists on signed mail; never
    // contacted: `b4 send -o` only writes files.
    cmd!(sh, "git config sendemail.smtpserver localhost").run()?;
    if !apply.is_empty() {
        cmd!(sh, "git am -q --no-3way {apply...}")
            .run()
            .context("git am of the series")?;
    }

    cmd!(sh, "{b4} prep --enroll {BASE_TAG}")
        .run()
        .context("b4 prep --enroll")?;
    // The cover letter through b4's own editor hook.
    let cover_file = run_dir.join("cover.txt");
    std::fs::write(
        &cover_file,
        format!("{}\n\n{}\n", cover.subject, cover.body),
    )
    .with_context(|| format!("writing {}", cover_file.display()))?;
    let editor = format!("cp {}", cover_file.display());
    cmd!(sh, "{b4} prep --edit-cover")
        .env("EDITOR", &editor)
        .env("GIT_EDITOR", &editor)
        .run()
        .context("b4 prep --edit-cover")?;
    let revision = cover.revision.to_string();
    cmd!(sh, "{b4} prep --force-revision {revision}")
        .run()
        .context("b4 prep --force-revision")?;
    if cover.rfc {
        cmd!(sh, "{b4} prep --set-prefixes RFC")
            .run()
            .context("b4 prep --set-prefixes")?;
    }
    cmd!(sh, "{b4} prep --auto-to-cc")
        .run()
        .context("b4 prep --auto-to-cc")?;
    Ok(b4)
}

/// The newest commit of the repository whose `patches/` cover letter is revision
/// `revision`, with the patch files it held. None when the history does not have one
/// (a shallow clone, or v1).
fn previous_version(
    sh: &Shell,
    repo: &Path,
    revision: u32,
) -> Result<Option<(String, Vec<String>)>> {
    let cover = format!("patches/{COVER_LETTER}");
    let commits = cmd!(sh, "git -C {repo} log --format=%H -- {cover}")
        .quiet()
        .read()
        .with_context(|| format!("git log of {cover} in {}", repo.display()))?;
    for commit in commits.lines() {
        let spec = format!("{commit}:{cover}");
        let text = cmd!(sh, "git -C {repo} show {spec}").quiet().read()?;
        let rev = parse_cover(&text, &spec).map_or(1, |c| c.revision);
        if rev == revision {
            let files = cmd!(sh, "git -C {repo} ls-tree --name-only {commit} patches/")
                .quiet()
                .read()?;
            let patches = files
                .lines()
                .filter(|f| f.ends_with(".patch") && !f.ends_with(COVER_LETTER))
                .map(str::to_string)
                .collect();
            return Ok(Some((commit.to_string(), patches)));
        }
    }
    Ok(None)
}

/// The range-diff against the previous version, by b4: vN-1 from the repository's
/// history applied on the base as branch `kcontainer-vN-1`, tagged
/// `sent/<change-id>-vN-1` with the base-commit and change-id b4 reads from a sent
/// tag, then `b4 prep --compare-to vN-1`. Written to `range-diff-vN-1.txt`; its
/// pairing (`=` same, `!` changed, `<` dropped, `>` new) is summed up on stderr.
fn range_diff(sh: &Shell, layout: &Layout, b4: &Path, revision: u32, run_dir: &Path) -> Result<()> {
    if revision < 2 {
        return Ok(());
    }
    let prev = revision - 1;
    let repo = &layout.repo;
    let Some((commit, files)) = previous_version(sh, repo, prev)? else {
        eprintln!(
            "xtask: no v{prev} in the history of {} (a shallow clone?): no range-diff",
            repo.display()
        );
        return Ok(());
    };
    let dir = run_dir.join(format!("v{prev}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::new();
    for f in &files {
        let spec = format!("{commit}:{f}");
        let text = cmd!(sh, "git -C {repo} show {spec}")
            .quiet()
            .output()?
            .stdout;
        let path = dir.join(Path::new(f).file_name().unwrap_or_default());
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        paths.push(path);
    }
    let info = cmd!(sh, "{b4} prep --show-info").quiet().read()?;
    let field = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("`b4 prep --show-info` printed no {key}"))
    };
    let (change_id, base) = (field("change-id:")?, field("base-commit:")?);
    let branch = format!("kcontainer-v{prev}");
    let patches = paths.len();
    cmd!(sh, "git checkout -q -b {branch} {base}").run()?;
    cmd!(sh, "git am -q --no-3way {paths...}")
        .run()
        .with_context(|| format!("git am of v{prev} (repository commit {commit})"))?;
    let tag = format!("sent/{change_id}-v{prev}");
    let msg = format!("v{prev} from {commit}\n\nbase-commit: {base}\nchange-id: {change_id}\n");
    cmd!(sh, "git tag -a {tag} -m {msg}").run()?;
    cmd!(sh, "git checkout -q {BRANCH}").run()?;
    let compare_to = format!("v{prev}");
    let out = cmd!(sh, "{b4} prep --compare-to {compare_to}")
        .env("GIT_PAGER", "cat")
        .read()
        .with_context(|| format!("b4 prep --compare-to v{prev}"))?;
    let path = run_dir.join(format!("range-diff-v{prev}.txt"));
    std::fs::write(&path, format!("{out}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    let count = |mark: &str| {
        out.lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(mark))
            .count()
    };
    eprintln!(
        "xtask: range-diff v{prev} ({} patches, repository commit {:.12}) → v{revision}: {} same, {} changed, {} dropped, {} new; {}",
        patches,
        commit,
        count("="),
        count("!"),
        count("<"),
        count(">"),
        path.display()
    );
    Ok(())
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let layout = build::layout(opts)?;
    // A tree with the base (the build makes it); the series is applied from its
    // files, so that what is posted is `patches/` whatever the tree holds.
    let layout = if layout.tree().join(".git").exists() {
        layout
    } else {
        build::kernel(opts)?
    };
    let sh = Shell::new().context("creating a shell")?;
    let run_dir = layout.new_run("send")?;
    let b4 = prepare(
        &sh,
        &layout,
        &layout.tree(),
        BASE_TAG,
        &linux::series(&layout)?,
        &layout.build.join("send/linux"),
        &layout.patches().join(COVER_LETTER),
        &run_dir,
    )?;
    if !args.no_check {
        let summary = prep_check(&sh, &b4, &run_dir)?;
        if !summary.ends_with("Error: 0") {
            bail!(
                "b4 prep --check found errors ({summary}); see {}/prep-check.log",
                run_dir.display()
            );
        }
    }
    let cover = read_cover(&layout.patches().join(COVER_LETTER))?;
    range_diff(&sh, &layout, &b4, cover.revision, &run_dir)?;
    // Unsigned: nothing is sent, and a maintainer's patatt key is not the lab's.
    let mails = run_dir.join("mails");
    cmd!(sh, "{b4} send --no-sign -o {mails}")
        .run()
        .context("b4 send -o")?;

    let files = crate::layout::list_dir(&mails)?;
    let patches = linux::series(&layout)?.len();
    if files.len() != patches + 1 {
        bail!(
            "b4 wrote {} mail(s) to {}; expected the cover letter and {patches} patches",
            files.len(),
            mails.display()
        );
    }
    // The cover letter's headers: what a maintainer's mail client shows first.
    if let Some(first) = files.first() {
        let text = std::fs::read_to_string(first)
            .with_context(|| format!("reading {}", first.display()))?;
        for line in text.lines().take_while(|l| !l.is_empty()) {
            if [
                "From:",
                "To:",
                "Cc:",
                "Subject:",
                "Message-Id:",
                "Date:",
                " ",
            ]
            .iter()
            .any(|h| line.starts_with(h))
            {
                println!("{line}");
            }
        }
    }
    eprintln!(
        "xtask: {} mails (nothing sent) in {}",
        files.len(),
        mails.display()
    );
    Ok(0)
}
