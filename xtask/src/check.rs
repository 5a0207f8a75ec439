//! `cargo xtask check`: the review gate for the series in `patches/`.
//!
//! 1. `scripts/checkpatch.pl --strict` on every patch: 0 errors, 0 warnings,
//!    0 checks, except what `patches/checkpatch-exceptions.toml` excuses
//!    (each exception names its patches and message type and says why).
//! 2. `make rustfmtcheck` on the tree with the whole series applied.
//! 3. `scripts/kernel-doc -none -Wall` on the C files the series adds or
//!    changes under `include/` and `kernel/container/`; a changed upstream
//!    file is held only to the warnings it did not have at the base.
//! 4. The man pages of `man/` (man.rs): `mandoc -Tlint` and `groff -ww` are
//!    silent, and every errno a section of the series' `container.rst`
//!    documents is in the page that documents that section.
//! 5. Unless `--quick`: every patch, applied in order on `kcontainer-base`,
//!    builds `bzImage` with `CONFIG_CONTAINERS` on and off (once the patch
//!    that adds the symbol is in; before that there is one build). The
//!    first patch that touches the keys subsystem (`security/keys/` and its
//!    headers, see [`KEYS_PATHS`]) and every patch after it also build with
//!    `CONFIG_CONTAINERS=y` and `CONFIG_KEYS` off (`keys-off`).
//! 6. Unless `--quick`: `b4 prep --check` on the series as `cargo xtask send`
//!    would post it (b4's own checks and its checkpatch run), in
//!    `<build>/check/b4/linux`; an error fails.
//!
//! Everything runs in a git worktree of the kernel tree's repository,
//! `<build>/check/linux`, built in
//! `<build>/check/out/<profile>-{on,off,keys-off}`;
//! `<build>/linux`, where the series is being written, is never touched.
//! Each patch is turned into a commit without a checkout (a temporary index,
//! fixed committer and date), so an unchanged patch keeps its commit id, a
//! checkout rewrites only the files that differ, and a commit that built
//! with the same configuration before is not built again
//! (`<build>/check/passed.json`; `--rebuild` ignores it).
//!
//! Exit 0 all passed, 1 something failed (every failure names its patch or
//! file), 125 the tools could not run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::kconfig::Assignment;
use crate::layout::{Kbuild, Layout};
use crate::linux::{self, ConfigSpec, BASE_TAG};
use crate::progress;
use crate::report::{ToolFailure, EXIT_FAIL, EXIT_PASS};
use crate::toolchain::{self, Toolchain};
use crate::{build, Options};

/// The feature the series adds: each patch builds with it on and off.
const FEATURE: &str = "CONFIG_CONTAINERS";
/// The keys subsystem: from the first patch that touches it (see
/// [`KEYS_PATHS`]) on, each patch also builds with it off.
const KEYS: &str = "CONFIG_KEYS";
/// The keys subsystem's files, as MAINTAINERS' `KEYS/KEYRINGS` entry lists
/// them (less `Documentation/`, which no build reads): a patch that adds or
/// changes one of them touches the keys subsystem. A path ending in `/` is
/// a directory.
const KEYS_PATHS: &[&str] = &[
    "security/keys/",
    "include/keys/",
    "include/linux/key.h",
    "include/linux/key-type.h",
    "include/linux/keyctl.h",
    "include/uapi/linux/keyctl.h",
];
/// Symbols that cannot be on without `CONFIG_KEYS`, left out of the
/// profile for the `keys-off` build. All but `DNS_RESOLVER` (which `depends
/// on KEYS`, net/dns_resolver/Kconfig) are inside `if KEYS` in
/// security/keys/Kconfig.
///
/// A fixed list rather than a question to Kconfig: nothing here can read
/// Kconfig's dependency graph short of reimplementing it (`if` blocks
/// around `source`, `depends on` of menus, `select` chains), and the list
/// cannot go stale silently. `keys-off` verifies the profile's options that
/// the base defines, as `off` does, and `CONFIG_KEYS` not set: a profile
/// option missing here that depends on `KEYS` fails that verification by
/// name ("unmet dependencies"), and one that selects `KEYS` fails it on
/// `CONFIG_KEYS`; either way, add the symbol here.
const KEYS_DEPENDENT: &[&str] = &[
    "CONFIG_KEY_NOTIFICATIONS",
    "CONFIG_DNS_RESOLVER",
    "CONFIG_PERSISTENT_KEYRINGS",
    "CONFIG_TRUSTED_KEYS",
    "CONFIG_ENCRYPTED_KEYS",
    "CONFIG_KEY_DH_OPERATIONS",
    "CONFIG_BIG_KEYS",
    "CONFIG_KEYS_REQUEST_CACHE",
];
/// In the patches directory.
pub const EXCEPTIONS_FILE: &str = "checkpatch-exceptions.toml";
/// Lines of a failed build's log to show.
const BUILD_TAIL: usize = 30;
/// Lines of a rustfmt diff to show.
const RUSTFMT_SHOWN: usize = 60;
/// Committer and date of the commits made from the patches: fixed, so the
/// same patch on the same parent is the same commit every time.
const COMMITTER: (&str, &str, &str) = (
    "kcontainer xtask",
    "xtask@kcontainer.invalid",
    "2000-01-01T00:00:00Z",
);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only checkpatch, rustfmt and kernel-doc (what CI runs); no per-patch builds
    #[arg(long)]
    pub quick: bool,
    /// Build from patch N (1-based) to the end of the series
    #[arg(long, value_name = "N", conflicts_with_all = ["only", "quick"])]
    pub from: Option<usize>,
    /// Build only patch N (1-based)
    #[arg(long, value_name = "N", conflicts_with = "quick")]
    pub only: Option<usize>,
    /// Build every selected patch, even a commit that passed with the same configuration before
    #[arg(long, conflicts_with = "quick")]
    pub rebuild: bool,
    /// Check the series in DIR instead of patches/ (it applies to the same base)
    #[arg(long, value_name = "DIR")]
    pub patches_dir: Option<PathBuf>,
}

/// One patch file of the series.
#[derive(Debug)]
struct Patch {
    /// 1-based position.
    n: usize,
    path: PathBuf,
    name: String,
    subject: String,
    text: String,
}

impl Patch {
    /// `[2/7] subject`.
    fn label(&self, total: usize) -> String {
        format!("[{}/{total}] {}", self.n, self.subject)
    }
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let start = Instant::now();
    let sh = Shell::new().context("creating a shell")?;
    let layout = build::layout(opts)?;
    let dir = match &args.patches_dir {
        Some(dir) => {
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?
        }
        None => layout.patches(),
    };
    let patches = read_series(&dir)?;
    if patches.is_empty() {
        println!("check: no patches in {}: nothing to check", dir.display());
        return Ok(EXIT_PASS);
    }
    let total = patches.len();
    let selected: Vec<usize> = match (args.only, args.from) {
        (Some(n), _) | (_, Some(n)) if n == 0 || n > total => {
            bail!("there is no patch {n}: the series has patches 1 to {total}")
        }
        (Some(n), _) => vec![n],
        (_, Some(n)) => (n..=total).collect(),
        (None, None) => (1..=total).collect(),
    };

    fs::create_dir_all(&layout.build)
        .with_context(|| format!("creating {}", layout.build.display()))?;
    let (tc, source) = build::setup(opts, &sh, &layout, true).context(ToolFailure)?;
    linux::ensure_base(&sh, &layout, &source).context(ToolFailure)?;
    let _lock = lock(&layout.check()).context(ToolFailure)?;
    let run_dir = layout.new_run("check").context(ToolFailure)?;
    let mut failures: Vec<String> = Vec::new();

    let exceptions = match load_exceptions(&dir) {
        Ok(e) => e,
        Err(err) => {
            failures.push(format!("{err:#}"));
            Vec::new()
        }
    };
    ensure_worktree(&sh, &layout).context(ToolFailure)?;
    let tree = layout.check_tree();
    let commits = match commit_series(&sh, &layout, &patches).context(ToolFailure)? {
        Ok(commits) => Some(commits),
        Err(failure) => {
            failures.push(failure);
            None
        }
    };
    if let Some(tip) = commits.as_ref().and_then(|c| c.last()) {
        checkout(&sh, &tree, tip).context(ToolFailure)?;
    }

    println!(
        "check: {total} patch(es) from {} (logs: {})",
        dir.display(),
        run_dir.display()
    );
    failures.extend(
        checkpatch(
            &sh,
            &tree,
            &layout.check().join("bin"),
            &patches,
            &exceptions,
            &run_dir,
        )
        .context(ToolFailure)?,
    );
    if let Some(commits) = &commits {
        let touched = touched_by(&patches);
        failures.extend(
            rustfmt(&layout, &tc, &touched, &patches, &run_dir, opts.verbose)
                .context(ToolFailure)?,
        );
        failures.extend(kernel_doc(&sh, &layout, &touched, &patches).context(ToolFailure)?);
        failures.extend(man_pages(&sh, &layout).context(ToolFailure)?);
        if !args.quick {
            let builds = Builds {
                sh: &sh,
                layout: &layout,
                tc: &tc,
                run_dir: &run_dir,
                rebuild: args.rebuild,
                verbose: opts.verbose,
            };
            failures.extend(
                builds
                    .run(&patches, commits, &selected)
                    .context(ToolFailure)?,
            );
            failures.extend(b4_check(&layout, &dir, &run_dir).context(ToolFailure)?);
        }
    } else {
        println!("check: the series does not apply; rustfmt, kernel-doc and the builds need it");
    }

    let took = progress::elapsed(start);
    if failures.is_empty() {
        println!("check: all passed in {took}");
        Ok(EXIT_PASS)
    } else {
        println!("check: {} failure(s) in {took}:", failures.len());
        for f in &failures {
            println!("  - {f}");
        }
        Ok(EXIT_FAIL)
    }
}

/// Step 4: the man pages linted and cross-checked against the container.rst of
/// the series' tip (checked out in the worktree).
fn man_pages(sh: &Shell, layout: &Layout) -> Result<Vec<String>> {
    let man_dir = layout.repo.join("man");
    let rst_path = layout.check_tree().join(crate::man::CONTAINER_RST);
    let rst =
        fs::read_to_string(&rst_path).with_context(|| format!("reading {}", rst_path.display()))?;
    let mut failures = crate::man::lint(sh, &man_dir)?;
    failures.extend(crate::man::cross_check(
        &rst,
        crate::man::CONTAINER_RST,
        &man_dir,
    )?);
    println!(
        "check: man pages: {} page(s), {} problem(s) (mandoc -Tlint, groff -ww, errnos of {})",
        crate::man::pages(&man_dir)?.len(),
        failures.len(),
        crate::man::CONTAINER_RST
    );
    Ok(failures)
}

/// `b4 prep --check` on the series as b4 would post it (send.rs): checkpatch
/// run b4's way and b4's own checks, on a branch of the base with the series
/// and the cover letter of `dir`, in `<build>/check/b4/linux`. An error is a
/// failure; warnings are checkpatch's, judged above with their exceptions.
fn b4_check(layout: &Layout, dir: &Path, run_dir: &Path) -> Result<Vec<String>> {
    let sh = Shell::new().context("creating a shell")?;
    let series = linux::series_in(dir)?;
    let b4 = crate::send::prepare(
        &sh,
        layout,
        &layout.check_tree(),
        linux::BASE_TAG,
        &series,
        &layout.check().join("b4/linux"),
        &dir.join(linux::COVER_LETTER),
        run_dir,
    )?;
    let summary = crate::send::prep_check(&sh, &b4, run_dir)?;
    println!("check: b4 prep --check: {summary}");
    Ok(if summary.ends_with("Error: 0") {
        Vec::new()
    } else {
        vec![format!(
            "b4 prep --check: {summary} (log: {})",
            run_dir.join("prep-check.log").display()
        )]
    })
}

fn read_series(dir: &Path) -> Result<Vec<Patch>> {
    let mut patches = Vec::new();
    for (i, path) in linux::series_in(dir)?.into_iter().enumerate() {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .context("patch file name")?
            .to_string_lossy()
            .into_owned();
        let subject = subject_of(&text)
            .with_context(|| format!("{} has no Subject: header", path.display()))?;
        patches.push(Patch {
            n: i + 1,
            path,
            name,
            subject,
            text,
        });
    }
    Ok(patches)
}

/// The `Subject:` of a `git format-patch` file, unfolded, without its
/// `[RFC PATCH 2/7]` tag.
fn subject_of(text: &str) -> Option<String> {
    let mut lines = text.lines().take_while(|l| !l.is_empty());
    let mut subject = lines.find_map(|l| l.strip_prefix("Subject:"))?.to_string();
    for more in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        subject.push(' ');
        subject.push_str(more.trim());
    }
    let mut subject = subject.trim();
    while let Some(rest) = subject.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, rest)) => subject = rest.trim_start(),
            None => break,
        }
    }
    Some(subject.to_string())
}

/// Only one `check` at a time per build directory (they share the worktree).
fn lock(dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock() on a descriptor this function owns; the lock goes away
    // when the returned file is dropped (closed).
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "another `cargo xtask check` is running in {}",
            dir.display()
        );
    }
    Ok(file)
}

// ---------------------------------------------------------------------------
// The worktree and the series as commits

/// `<build>/check/linux`: a worktree (detached HEAD) of `<build>/linux`'s
/// repository, made again if the repository was (the base changed).
fn ensure_worktree(sh: &Shell, layout: &Layout) -> Result<()> {
    let main = layout.tree();
    let tree = layout.check_tree();
    if tree.join(".git").exists() {
        let common = cmd!(
            sh,
            "git -C {tree} rev-parse --path-format=absolute --git-common-dir"
        )
        .quiet()
        .ignore_stderr()
        .read();
        let ours = fs::canonicalize(main.join(".git")).ok();
        if let (Ok(common), Some(ours)) = (common, ours) {
            if fs::canonicalize(common.trim()).ok() == Some(ours) {
                return Ok(());
            }
        }
        eprintln!(
            "xtask: {} belongs to an older kernel tree; making it again",
            tree.display()
        );
        fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    let git = &linux::git_in(&main);
    cmd!(sh, "git {git...} worktree prune")
        .quiet()
        .run()
        .context("git worktree prune")?;
    eprintln!(
        "xtask: checking out a worktree of {} in {} (once)",
        main.display(),
        tree.display()
    );
    cmd!(
        sh,
        "git {git...} worktree add --quiet --detach {tree} {BASE_TAG}"
    )
    .quiet()
    .run()
    .with_context(|| format!("git worktree add {}", tree.display()))
}

fn checkout(sh: &Shell, tree: &Path, commit: &str) -> Result<()> {
    let git = &linux::git_in(tree);
    cmd!(
        sh,
        "git {git...} checkout --quiet --force --detach {commit}"
    )
    .quiet()
    .run()
    .with_context(|| format!("checking out {commit} in {}", tree.display()))
}

/// `git mailinfo`'s header.
#[derive(Debug, Default, PartialEq, Eq)]
struct MailInfo {
    author: String,
    email: String,
    subject: String,
    date: String,
}

fn parse_mailinfo(out: &str) -> MailInfo {
    let mut info = MailInfo::default();
    for line in out.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let field = match key {
            "Author" => &mut info.author,
            "Email" => &mut info.email,
            "Subject" => &mut info.subject,
            "Date" => &mut info.date,
            _ => continue,
        };
        *field = value.to_string();
    }
    info
}

/// Each patch as a commit on the previous one, starting at the base: the
/// commits (outer error: git could not run), or which patch does not apply.
fn commit_series(
    sh: &Shell,
    layout: &Layout,
    patches: &[Patch],
) -> Result<std::result::Result<Vec<String>, String>> {
    let tree = layout.check_tree();
    let git = &linux::git_in(&tree);
    let work = layout.check().join("series");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let index = work.join("index");
    let (msg, diff) = (work.join("message"), work.join("diff"));
    let base = format!("{BASE_TAG}^{{commit}}");
    let mut parent = cmd!(sh, "git {git...} rev-parse {base}")
        .quiet()
        .read()
        .context("resolving the base commit")?;
    cmd!(sh, "git {git...} read-tree {parent}")
        .env("GIT_INDEX_FILE", &index)
        .quiet()
        .run()
        .context("git read-tree of the base")?;
    let total = patches.len();
    let mut commits = Vec::new();
    for p in patches {
        let info = cmd!(sh, "git mailinfo {msg} {diff}")
            .stdin(&p.text)
            .quiet()
            .read()
            .with_context(|| format!("git mailinfo {}", p.path.display()))?;
        let info = parse_mailinfo(&info);
        let applied = cmd!(sh, "git {git...} apply --cached {diff}")
            .env("GIT_INDEX_FILE", &index)
            .quiet()
            .ignore_status()
            .output()
            .context("running git apply")?;
        if !applied.status.success() {
            return Ok(Err(format!(
                "{} ({}) does not apply on {BASE_TAG} and the patches before it: {}",
                p.label(total),
                p.name,
                String::from_utf8_lossy(&applied.stderr).trim()
            )));
        }
        let tree_id = cmd!(sh, "git {git...} write-tree")
            .env("GIT_INDEX_FILE", &index)
            .quiet()
            .read()
            .context("git write-tree")?;
        let body =
            fs::read_to_string(&msg).with_context(|| format!("reading {}", msg.display()))?;
        let message = match body.trim() {
            "" => format!("{}\n", info.subject),
            body => format!("{}\n\n{body}\n", info.subject),
        };
        let commit = cmd!(sh, "git {git...} commit-tree {tree_id} -p {parent} -F -")
            .stdin(message)
            .env("GIT_AUTHOR_NAME", &info.author)
            .env("GIT_AUTHOR_EMAIL", &info.email)
            .env("GIT_AUTHOR_DATE", &info.date)
            .env("GIT_COMMITTER_NAME", COMMITTER.0)
            .env("GIT_COMMITTER_EMAIL", COMMITTER.1)
            .env("GIT_COMMITTER_DATE", COMMITTER.2)
            .quiet()
            .read()
            .with_context(|| format!("committing {}", p.name))?;
        commits.push(commit.clone());
        parent = commit;
    }
    Ok(Ok(commits))
}

/// The files each patch adds or changes (not those it deletes).
fn touched_paths(patch: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            if let Some(path) = current.take() {
                paths.insert(path);
            }
            current = rest.split_once(" b/").map(|(_, b)| b.to_string());
        } else if line.starts_with("deleted file mode ") {
            current = None;
        }
    }
    paths.extend(current);
    paths
}

/// Whether a patch adds or changes a file of the keys subsystem
/// ([`KEYS_PATHS`]).
fn touches_keys(patch: &str) -> bool {
    touched_paths(patch).iter().any(|path| {
        KEYS_PATHS.iter().any(|&k| match k.strip_suffix('/') {
            Some(_) => path.starts_with(k),
            None => path == k,
        })
    })
}

/// The first patch (1-based) that touches the keys subsystem: it and every
/// patch after it build with `CONFIG_KEYS` off as well.
fn first_keys_patch(patches: &[Patch]) -> Option<usize> {
    patches.iter().find(|p| touches_keys(&p.text)).map(|p| p.n)
}

/// path → the patches (1-based) that add or change it.
fn touched_by(patches: &[Patch]) -> BTreeMap<String, Vec<usize>> {
    let mut map: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for p in patches {
        for path in touched_paths(&p.text) {
            map.entry(path).or_default().push(p.n);
        }
    }
    map
}

/// ` (last changed by [3/7] subject)`.
fn blame(path: &str, touched: &BTreeMap<String, Vec<usize>>, patches: &[Patch]) -> String {
    touched
        .get(path)
        .and_then(|ns| ns.last())
        .map(|&n| format!(" (last changed by {})", patches[n - 1].label(patches.len())))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// checkpatch

/// The severity of a checkpatch message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Error,
    Warning,
    Check,
}

/// One message of `checkpatch.pl --show-types`: its first line is
/// `LEVEL:TYPE: text`, then where it is and the offending lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    level: Level,
    kind: String,
    block: Vec<String>,
}

impl Message {
    fn first_line(&self) -> &str {
        self.block.first().map_or("", String::as_str)
    }
}

/// `total: 0 errors, 1 warnings, 0 checks, 25 lines checked`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    errors: usize,
    warnings: usize,
    checks: usize,
    lines: usize,
}

impl Totals {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("total: ")?;
        let mut numbers = rest.split(", ").map(|part| {
            let (n, what) = part.split_once(' ')?;
            Some((n.parse::<usize>().ok()?, what))
        });
        let mut next = |want: &str| match numbers.next()?? {
            (n, what) if what == want => Some(n),
            _ => None,
        };
        Some(Self {
            errors: next("errors")?,
            warnings: next("warnings")?,
            checks: next("checks")?,
            lines: next("lines checked")?,
        })
    }

    fn line(&self) -> String {
        format!(
            "{} errors, {} warnings, {} checks",
            self.errors, self.warnings, self.checks
        )
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Report {
    messages: Vec<Message>,
    totals: Totals,
}

/// Parses `checkpatch.pl --show-types` output; an error means the output is
/// not what this parser knows (a tool problem), e.g. its counts disagree
/// with the messages found.
fn parse_checkpatch(out: &str) -> Result<Report> {
    let mut messages = Vec::new();
    let mut totals = None;
    let mut current: Option<Message> = None;
    for line in out.lines() {
        if let Some(msg) = current.as_mut() {
            if line.trim().is_empty() {
                messages.extend(current.take());
            } else {
                msg.block.push(line.to_string());
            }
            continue;
        }
        let level = [
            ("ERROR:", Level::Error),
            ("WARNING:", Level::Warning),
            ("CHECK:", Level::Check),
        ]
        .into_iter()
        .find_map(|(prefix, level)| line.strip_prefix(prefix).map(|rest| (level, rest)));
        if let Some((level, rest)) = level {
            let kind = rest
                .split_once(':')
                .map(|(kind, _)| kind)
                .filter(|k| is_message_type(k))
                .with_context(|| format!("checkpatch message without a type: {line:?}"))?;
            current = Some(Message {
                level,
                kind: kind.to_string(),
                block: vec![line.to_string()],
            });
        } else if let Some(t) = Totals::parse(line) {
            totals = Some(t);
        }
    }
    messages.extend(current);
    let totals = totals.context("checkpatch printed no `total:` line")?;
    let count = |level| messages.iter().filter(|m| m.level == level).count();
    let found = (
        count(Level::Error),
        count(Level::Warning),
        count(Level::Check),
    );
    if found != (totals.errors, totals.warnings, totals.checks) {
        bail!(
            "checkpatch reports {} but {} error(s), {} warning(s) and {} check(s) were found in its output",
            totals.line(),
            found.0,
            found.1,
            found.2
        );
    }
    Ok(Report { messages, totals })
}

/// checkpatch's message types: `FILE_PATH_CHANGES`, `LINE_SPACING`, ...
fn is_message_type(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Which patches an exception is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A file name glob (`*` and `?`), e.g. `0003-*.patch`.
    Glob(String),
    /// The exact subject, without the `[RFC PATCH n/m]` tag.
    Subject(String),
}

/// One entry of `checkpatch-exceptions.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exception {
    target: Target,
    kind: String,
    why: String,
}

impl Exception {
    fn covers(&self, patch: &Patch) -> bool {
        match &self.target {
            Target::Glob(glob) => glob_match(glob, &patch.name),
            Target::Subject(subject) => *subject == patch.subject,
        }
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Glob(glob) => format!("patch {glob:?}, {}", self.kind),
            Target::Subject(subject) => format!("subject {subject:?}, {}", self.kind),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsToml {
    #[serde(default)]
    exception: Vec<ExceptionToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionToml {
    patch: Option<String>,
    subject: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    why: Option<String>,
}

/// Parses and validates `checkpatch-exceptions.toml`: each `[[exception]]`
/// has exactly one of `patch` (a file name glob) and `subject`, a message
/// `type`, and a non-empty `why`.
fn parse_exceptions(text: &str) -> Result<Vec<Exception>> {
    let file: ExceptionsToml = toml::from_str(text)?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, e) in file.exception.into_iter().enumerate() {
        let n = i + 1;
        let target = match (e.patch, e.subject) {
            (Some(glob), None) if !glob.trim().is_empty() => Target::Glob(glob),
            (None, Some(subject)) if !subject.trim().is_empty() => Target::Subject(subject),
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "exception {n} ({}): give `patch` or `subject`, not both",
                    e.kind
                ));
                continue;
            }
            _ => {
                problems.push(format!(
                    "exception {n} ({}): names no patch (`patch = \"0003-*.patch\"` or `subject = \"...\"`)",
                    e.kind
                ));
                continue;
            }
        };
        let exception = Exception {
            target,
            kind: e.kind,
            why: e.why.map(|w| w.trim().to_string()).unwrap_or_default(),
        };
        if !is_message_type(&exception.kind) {
            problems.push(format!(
                "exception {n} ({}): `type` must be a checkpatch message type such as FILE_PATH_CHANGES",
                exception.describe()
            ));
        } else if exception.why.is_empty() {
            problems.push(format!(
                "exception {n} ({}): has no `why`; every exception says why the message is acceptable",
                exception.describe()
            ));
        } else {
            out.push(exception);
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n    "));
    }
    Ok(out)
}

/// `*` any run of characters, `?` one character, everything else itself.
fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ni));
                gi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    gi = sg + 1;
                    ni = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// `checkpatch-exceptions.toml` in the patches directory, if there is one.
fn load_exceptions(dir: &Path) -> Result<Vec<Exception>> {
    let path = dir.join(EXCEPTIONS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse_exceptions(&text).with_context(|| format!("checkpatch: {}", path.display()))
}

/// Exceptions that excused nothing: stale, an error, whether the patch they
/// name is gone or checkpatch no longer reports the message.
fn stale_exceptions(exceptions: &[Exception], patches: &[Patch], used: &[bool]) -> Vec<String> {
    exceptions
        .iter()
        .zip(used)
        .filter(|(_, used)| !**used)
        .map(|(e, _)| {
            let why = if patches.iter().any(|p| e.covers(p)) {
                "checkpatch no longer reports it"
            } else {
                "no patch of the series matches"
            };
            format!(
                "checkpatch: {EXCEPTIONS_FILE}: stale exception ({}): {why}; remove it",
                e.describe()
            )
        })
        .collect()
}

/// `PATH` with `bin/python3` → `/usr/bin/python3` in front: checkpatch runs
/// `scripts/spdxcheck.py` with `env python3`, and python3-ply and python3-git
/// are installed for Debian's python3, not for another one (pyenv, a venv)
/// that may come first on PATH.
pub(crate) fn debian_python_first(bin: &Path) -> Result<std::ffi::OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let debian = Path::new("/usr/bin/python3");
    if !debian.exists() {
        return Ok(path);
    }
    fs::create_dir_all(bin).with_context(|| format!("creating {}", bin.display()))?;
    let link = bin.join("python3");
    if fs::read_link(&link).ok().as_deref() != Some(debian) {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(debian, &link)
            .with_context(|| format!("linking {} to {}", link.display(), debian.display()))?;
    }
    std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path)))
        .context("building PATH")
}

/// `checkpatch.pl --strict` on each patch; returns the failures. Errors mean
/// checkpatch itself could not run (its stderr is not empty, or its output
/// cannot be read).
fn checkpatch(
    sh: &Shell,
    tree: &Path,
    bin: &Path,
    patches: &[Patch],
    exceptions: &[Exception],
    run_dir: &Path,
) -> Result<Vec<String>> {
    let total = patches.len();
    let mut failures = Vec::new();
    let mut used = vec![false; exceptions.len()];
    let script = tree.join("scripts/checkpatch.pl");
    let _dir = sh.push_dir(tree);
    let _path = sh.push_env("PATH", debian_python_first(bin)?);
    for p in patches {
        let path = &p.path;
        let out = cmd!(
            sh,
            "perl {script} --strict --show-types --color=never {path}"
        )
        .quiet()
        .ignore_status()
        .output()
        .context("running scripts/checkpatch.pl")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let log = run_dir.join(format!("checkpatch-{:04}.log", p.n));
        fs::write(&log, format!("{stdout}{stderr}"))
            .with_context(|| format!("writing {}", log.display()))?;
        if !stderr.trim().is_empty() {
            bail!(
                "checkpatch.pl on {} wrote to stderr, so its review is incomplete (missing \
                 python3-ply or python3-git?):\n{}",
                p.name,
                stderr.trim()
            );
        }
        let report = parse_checkpatch(&stdout).with_context(|| {
            format!(
                "reading checkpatch's output for {} ({})",
                p.name,
                log.display()
            )
        })?;
        let mut remaining = Vec::new();
        let mut excused = Vec::new();
        for m in &report.messages {
            let hit = exceptions
                .iter()
                .position(|e| e.kind == m.kind && e.covers(p));
            match hit {
                Some(i) => {
                    used[i] = true;
                    excused.push((m, &exceptions[i]));
                }
                None => remaining.push(m),
            }
        }
        let excepted = match excused.len() {
            0 => String::new(),
            n => format!(" ({n} excepted)"),
        };
        if remaining.is_empty() {
            println!("checkpatch {}: ok{excepted}", p.label(total));
        } else {
            println!(
                "checkpatch {}: {}{excepted}: FAILED (log: {})",
                p.label(total),
                report.totals.line(),
                log.display()
            );
            for m in &remaining {
                for line in &m.block {
                    println!("    {line}");
                }
                println!();
            }
            failures.push(format!(
                "checkpatch: {} ({}): {} message(s)",
                p.label(total),
                p.name,
                remaining.len()
            ));
        }
        for (m, e) in excused {
            println!("    excepted {}", m.first_line());
            println!("      why: {}", e.why);
        }
    }
    failures.extend(stale_exceptions(exceptions, patches, &used));
    Ok(failures)
}

// ---------------------------------------------------------------------------
// rustfmt

/// rustup's rustfmt (the kernel's Rust is formatted with a stable rustfmt),
/// else the one on PATH.
fn find_rustfmt() -> Result<PathBuf> {
    if let Ok(out) = duct::cmd!("rustup", "which", "rustfmt")
        .stderr_null()
        .read()
    {
        let path = PathBuf::from(out.trim());
        if path.is_file() {
            return Ok(path);
        }
    }
    toolchain::which("rustfmt")
        .context("no rustfmt: install it with `rustup component add rustfmt`")
}

/// The files `rustfmt --check` says need formatting (`Diff in PATH:LINE:`).
fn rustfmt_files(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("Diff in "))
        .filter_map(|rest| {
            let rest = rest.trim_end().strip_suffix(':').unwrap_or(rest);
            rest.rsplit_once(':').map(|(path, _line)| path.to_string())
        })
        .collect()
}

/// `make rustfmtcheck` on the worktree at the tip of the series.
fn rustfmt(
    layout: &Layout,
    tc: &Toolchain,
    touched: &BTreeMap<String, Vec<usize>>,
    patches: &[Patch],
    run_dir: &Path,
    verbose: bool,
) -> Result<Vec<String>> {
    let start = Instant::now();
    let rustfmt = find_rustfmt()?;
    let kb = layout.check_kbuild("on");
    fs::create_dir_all(&kb.out).with_context(|| format!("creating {}", kb.out.display()))?;
    let vars = tc.make_vars(&kb.out);
    // The Makefile runs `xargs $(RUSTFMT) --check`; rustfmt colours even a pipe.
    let rustfmt_var = format!("RUSTFMT={} --color=never", rustfmt.display());
    let log = run_dir.join("rustfmt.log");
    let make = linux::make_cmd(&kb.tree, &vars, &[&rustfmt_var, "rustfmtcheck"], layout);
    let outcome = progress::run_captured(make, "make rustfmtcheck", &log, verbose)?;
    if outcome.status.success() {
        println!("rustfmt    ok ({} s)", start.elapsed().as_secs());
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    let prefix = format!("{}/", kb.tree.display());
    let files: Vec<String> = rustfmt_files(&text)
        .into_iter()
        .map(|f| f.strip_prefix(&prefix).map_or(f.clone(), str::to_string))
        .collect();
    println!("rustfmt    FAILED (log: {})", log.display());
    let diff: Vec<&str> = text.lines().filter(|l| !l.starts_with("make")).collect();
    for line in diff.iter().take(RUSTFMT_SHOWN) {
        println!("    {}", line.replace(&prefix, ""));
    }
    if diff.len() > RUSTFMT_SHOWN {
        println!("    ...");
    }
    if files.is_empty() {
        return Ok(vec![format!(
            "rustfmt: make rustfmtcheck failed ({}); see {}",
            outcome.status,
            log.display()
        )]);
    }
    Ok(files
        .iter()
        .map(|f| {
            format!(
                "rustfmt: {f} is not formatted{}",
                blame(f, touched, patches)
            )
        })
        .collect())
}

// ---------------------------------------------------------------------------
// kernel-doc

/// Whether kernel-doc checks this file: C under `include/` and `kernel/container/`.
fn kernel_doc_wanted(path: &str) -> bool {
    (path.starts_with("include/") || path.starts_with("kernel/container/"))
        && (path.ends_with(".c") || path.ends_with(".h"))
}

/// `file:line: warning: text` lines of kernel-doc's output as (file, text),
/// the line number dropped so the same warning matches at the base.
fn kernel_doc_warnings(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let (file, rest) = line.split_once(':')?;
            let (number, rest) = rest.split_once(": ")?;
            number.parse::<u64>().ok()?;
            (rest.starts_with("warning: ") || rest.starts_with("error: "))
                .then(|| (file.to_string(), rest.to_string()))
        })
        .collect()
}

/// The warnings in `tip` that `base` did not have (counting repeats).
fn new_warnings(tip: &[(String, String)], base: &[(String, String)]) -> Vec<(String, String)> {
    let mut left: BTreeMap<&(String, String), usize> = BTreeMap::new();
    for w in base {
        *left.entry(w).or_default() += 1;
    }
    tip.iter()
        .filter(|w| match left.get_mut(w) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect()
}

/// Runs `scripts/kernel-doc -none -Wall` in `dir` on `files` (relative).
fn run_kernel_doc(script: &Path, dir: &Path, files: &[String]) -> Result<String> {
    let mut argv = vec![
        script.display().to_string(),
        "-none".to_string(),
        "-Wall".to_string(),
    ];
    argv.extend(files.iter().cloned());
    let out = duct::cmd("perl", argv)
        .dir(dir)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .context("running scripts/kernel-doc")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "scripts/kernel-doc failed ({}):\n{}",
            out.status,
            text.trim()
        );
    }
    Ok(text)
}

/// kernel-doc on the series' C files under include/ and kernel/container/.
fn kernel_doc(
    sh: &Shell,
    layout: &Layout,
    touched: &BTreeMap<String, Vec<usize>>,
    patches: &[Patch],
) -> Result<Vec<String>> {
    let tree = layout.check_tree();
    let files: Vec<String> = touched
        .keys()
        .filter(|f| kernel_doc_wanted(f) && tree.join(f).is_file())
        .cloned()
        .collect();
    if files.is_empty() {
        println!("kernel-doc ok (no C file under include/ or kernel/container/)");
        return Ok(Vec::new());
    }
    let script = tree.join("scripts/kernel-doc");
    let tip = kernel_doc_warnings(&run_kernel_doc(&script, &tree, &files)?);

    // A file the base already has keeps the warnings it had there.
    let base_dir = layout.check().join("kernel-doc-base");
    if base_dir.exists() {
        fs::remove_dir_all(&base_dir)
            .with_context(|| format!("removing {}", base_dir.display()))?;
    }
    let git = &linux::git_in(&tree);
    let mut at_base = Vec::new();
    for f in &files {
        let object = format!("{BASE_TAG}:{f}");
        let Ok(text) = cmd!(sh, "git {git...} show {object}")
            .quiet()
            .ignore_stderr()
            .output()
        else {
            continue;
        };
        if !text.status.success() {
            continue;
        }
        let dest = base_dir.join(f);
        fs::create_dir_all(dest.parent().context("a file has a parent")?)
            .with_context(|| format!("creating the parent of {}", dest.display()))?;
        fs::write(&dest, &text.stdout).with_context(|| format!("writing {}", dest.display()))?;
        at_base.push(f.clone());
    }
    let base = if at_base.is_empty() {
        Vec::new()
    } else {
        kernel_doc_warnings(&run_kernel_doc(&script, &base_dir, &at_base)?)
    };
    let new = new_warnings(&tip, &base);
    let upstream = tip.len() - new.len();
    let note = match upstream {
        0 => String::new(),
        n => format!("; {n} warning(s) the base already has are not counted"),
    };
    if new.is_empty() {
        println!("kernel-doc ok ({} file(s){note})", files.len());
        return Ok(Vec::new());
    }
    println!("kernel-doc FAILED ({} file(s){note}):", files.len());
    let mut failures = Vec::new();
    for (file, text) in &new {
        println!("    {file}: {text}");
        failures.push(format!(
            "kernel-doc: {file}: {text}{}",
            blame(file, touched, patches)
        ));
    }
    Ok(failures)
}

// ---------------------------------------------------------------------------
// Per-patch builds

/// `CONFIG_FOO` for every `config FOO` / `menuconfig FOO` in `git grep -h -o`
/// output.
fn parse_kconfig_symbols(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            matches!(words.next(), Some("config" | "menuconfig"))
                .then(|| words.next())
                .flatten()
                .map(|s| format!("CONFIG_{s}"))
        })
        .collect()
}

/// The Kconfig symbols defined at `rev`.
fn kconfig_symbols(sh: &Shell, tree: &Path, rev: &str) -> Result<BTreeSet<String>> {
    let git = &linux::git_in(tree);
    let pattern = "^[[:space:]]*(menu)?config[[:space:]]+[A-Za-z0-9_]+";
    let out = cmd!(
        sh,
        "git {git...} grep -h -o -E {pattern} {rev} -- *Kconfig*"
    )
    .quiet()
    .read()
    .with_context(|| format!("listing the Kconfig symbols at {rev}"))?;
    Ok(parse_kconfig_symbols(&out))
}

/// The configurations one patch is built with.
#[derive(Debug)]
struct Plan {
    /// `on` and `off`, or only `on` while the feature's symbol does not
    /// exist; then `keys-off` if asked for.
    variants: Vec<(&'static str, ConfigSpec)>,
    /// Options of the profile left out because a later patch adds their symbol.
    deferred: Vec<String>,
    /// Options of the profile that `keys-off` leaves out ([`KEYS_DEPENDENT`]).
    keys_left_out: Vec<String>,
}

fn assignment(symbol: &str, value: Option<&str>, origin: &str) -> Assignment {
    Assignment {
        symbol: symbol.to_string(),
        value: value.map(str::to_string),
        origin: origin.to_string(),
    }
}

/// The profile for a patch whose tree defines the symbols `here`: options
/// whose symbol only a later patch adds are left out; once `FEATURE` exists,
/// `on` forces it to `y` and `off` to not set. `off` verifies what the base's
/// symbols and `FEATURE` became, not the series' other options (they may
/// depend on the feature).
///
/// With `keys_off` (the patch is at or after the first that touches the
/// keys subsystem) there is a third variant, `keys-off`: `FEATURE=y` (once
/// it exists) and `KEYS` not set, without the options in
/// [`KEYS_DEPENDENT`]. Like `off`, it verifies the base's symbols,
/// `FEATURE` and `KEYS`, not the series' other options (they may depend on
/// `KEYS`).
fn plan(
    profile: &ConfigSpec,
    here: &BTreeSet<String>,
    base: &BTreeSet<String>,
    tip: &BTreeSet<String>,
    keys_off: bool,
) -> Plan {
    let later = |s: &str| !here.contains(s) && tip.contains(s);
    let deferred: Vec<String> = profile
        .assignments
        .iter()
        .filter(|a| later(&a.symbol))
        .map(|a| format!("{} ({})", a.line(), a.origin))
        .collect();
    let kept: Vec<Assignment> = profile
        .assignments
        .iter()
        .filter(|a| !later(&a.symbol))
        .cloned()
        .collect();
    let feature = here.contains(FEATURE);
    let keys_left_out: Vec<String> = kept
        .iter()
        .filter(|a| keys_off && KEYS_DEPENDENT.contains(&a.symbol.as_str()))
        .map(|a| format!("{} ({})", a.line(), a.origin))
        .collect();
    let keys_variant = keys_off.then(|| {
        let mut assignments: Vec<Assignment> = kept
            .iter()
            .filter(|a| !KEYS_DEPENDENT.contains(&a.symbol.as_str()))
            .cloned()
            .collect();
        if feature {
            assignments.push(assignment(FEATURE, Some("y"), "xtask check (keys-off)"));
        }
        assignments.push(assignment(
            KEYS,
            None,
            "xtask check (keys-off; a profile option that selects KEYS belongs in \
             KEYS_DEPENDENT in xtask/src/check.rs)",
        ));
        let verify = assignments
            .iter()
            .filter(|a| a.symbol == FEATURE || base.contains(&a.symbol))
            .cloned()
            .collect();
        let name = if feature {
            format!("{} with {FEATURE}=y and {KEYS} off", profile.name)
        } else {
            format!("{} with {KEYS} off", profile.name)
        };
        (
            "keys-off",
            ConfigSpec {
                name,
                verify,
                assignments,
            },
        )
    });
    if !feature {
        let spec = ConfigSpec {
            name: profile.name.clone(),
            verify: kept.clone(),
            assignments: kept,
        };
        return Plan {
            variants: std::iter::once(("on", spec)).chain(keys_variant).collect(),
            deferred,
            keys_left_out,
        };
    }
    let mut on = kept.clone();
    on.push(assignment(FEATURE, Some("y"), "xtask check (on)"));
    let mut off = kept;
    off.push(assignment(FEATURE, None, "xtask check (off)"));
    let off_verify = off
        .iter()
        .filter(|a| a.symbol == FEATURE || base.contains(&a.symbol))
        .cloned()
        .collect();
    let variants = [
        (
            "on",
            ConfigSpec {
                name: format!("{} with {FEATURE}=y", profile.name),
                verify: on.clone(),
                assignments: on,
            },
        ),
        (
            "off",
            ConfigSpec {
                name: format!("{} with {FEATURE} off", profile.name),
                verify: off_verify,
                assignments: off,
            },
        ),
    ];
    Plan {
        variants: variants.into_iter().chain(keys_variant).collect(),
        deferred,
        keys_left_out,
    }
}

/// The per-patch builds and what they share.
struct Builds<'a> {
    sh: &'a Shell,
    layout: &'a Layout,
    tc: &'a Toolchain,
    run_dir: &'a Path,
    rebuild: bool,
    verbose: bool,
}

/// `<build>/check/passed.json`: keys of (commit, configuration, make
/// variables) that built.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct Passed {
    keys: BTreeSet<String>,
}

impl Builds<'_> {
    fn passed_path(&self) -> PathBuf {
        self.layout.check().join("passed.json")
    }

    fn load_passed(&self) -> Passed {
        fs::read_to_string(self.passed_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn save_passed(&self, passed: &Passed) -> Result<()> {
        let path = self.passed_path();
        let text = serde_json::to_string_pretty(passed).context("encoding passed builds")?;
        fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    fn key(&self, commit: &str, kb: &Kbuild, spec: &ConfigSpec) -> String {
        let mut h = Sha256::new();
        h.update(commit);
        for list in [&spec.assignments, &spec.verify] {
            h.update([0]);
            for a in list {
                h.update(a.line() + "\n");
            }
        }
        h.update([0]);
        for v in self.tc.make_vars(&kb.out) {
            h.update(v + "\n");
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Builds each selected patch; returns the failures. Errors mean the
    /// tools could not run (git, make not starting).
    fn run(
        &self,
        patches: &[Patch],
        commits: &[String],
        selected: &[usize],
    ) -> Result<Vec<String>> {
        let total = patches.len();
        let tree = self.layout.check_tree();
        let profile = ConfigSpec::profile(self.layout)?;
        let base = kconfig_symbols(self.sh, &tree, BASE_TAG)?;
        let tip = kconfig_symbols(self.sh, &tree, commits.last().context("no commits")?)?;
        let keys_from = first_keys_patch(patches);
        let mut keys_told = false;
        let mut passed = self.load_passed();
        let mut failures = Vec::new();
        for &n in selected {
            let p = &patches[n - 1];
            let commit = &commits[n - 1];
            // Planned from the commit, and checked out only when something
            // is built: checking out a patch that is skipped would rewrite
            // files for nothing, and their new mtimes cost recompiles.
            let mut checked_out = false;
            let plan = plan(
                &profile,
                &kconfig_symbols(self.sh, &tree, commit)?,
                &base,
                &tip,
                keys_from.is_some_and(|k| n >= k),
            );
            if !plan.deferred.is_empty() {
                eprintln!(
                    "xtask: {}: left out until a later patch adds their symbol: {}",
                    p.label(total),
                    plan.deferred.join(", ")
                );
            }
            if let Some(k) = keys_from.filter(|&k| n >= k && !keys_told) {
                keys_told = true;
                let left_out = if plan.keys_left_out.is_empty() {
                    String::new()
                } else {
                    format!(", without {}", plan.keys_left_out.join(", "))
                };
                eprintln!(
                    "xtask: {} is the first patch that touches the keys subsystem: \
                     it and the patches after it also build with {KEYS} off (keys-off{left_out})",
                    patches[k - 1].label(total)
                );
            }
            let mut results = Vec::new();
            for (variant, spec) in &plan.variants {
                let kb = self.layout.check_kbuild(variant);
                let key = self.key(commit, &kb, spec);
                if !self.rebuild && passed.keys.contains(&key) {
                    results.push(format!("{variant} ok (built before)"));
                    continue;
                }
                if !checked_out {
                    checkout(self.sh, &tree, commit)?;
                    checked_out = true;
                }
                let start = Instant::now();
                match self.build(p, total, variant, &kb, spec)? {
                    None => {
                        results.push(format!("{variant} ok ({} s)", start.elapsed().as_secs()));
                        passed.keys.insert(key);
                        self.save_passed(&passed)?;
                    }
                    Some(failure) => {
                        results.push(format!("{variant} FAILED"));
                        failures.push(failure);
                    }
                }
            }
            let note = if plan.variants.iter().any(|(v, _)| *v == "off") {
                String::new()
            } else if plan.variants.len() == 1 {
                format!(" ({FEATURE} does not exist yet: one build)")
            } else {
                format!(" ({FEATURE} does not exist yet: no off build)")
            };
            println!("{}: {}{note}", p.label(total), results.join(", "));
        }
        Ok(failures)
    }

    /// Configures and builds one patch in one variant: `None` if it built,
    /// else the failure (printed with the log's tail).
    fn build(
        &self,
        p: &Patch,
        total: usize,
        variant: &str,
        kb: &Kbuild,
        spec: &ConfigSpec,
    ) -> Result<Option<String>> {
        let what = format!("{} ({}), {}", p.label(total), p.name, spec.name);
        if let Err(err) = linux::configure_in(self.sh, self.layout, self.tc, kb, spec, self.verbose)
        {
            println!(
                "{}: {variant}: configuration FAILED: {err:#}",
                p.label(total)
            );
            return Ok(Some(format!("{what}: the configuration failed: {err:#}")));
        }
        let log = self.run_dir.join(format!("build-{:04}-{variant}.log", p.n));
        let vars = self.tc.make_vars(&kb.out);
        let jobs = linux::jobs();
        let make = linux::make_cmd(&kb.tree, &vars, &[&jobs, "bzImage"], self.layout);
        let stage = format!("[{}/{total}] {variant}: make bzImage", p.n);
        let outcome = progress::run_captured(make, &stage, &log, self.verbose)?;
        if outcome.status.success() {
            return Ok(None);
        }
        println!(
            "{}: {variant}: bzImage FAILED ({}); last lines of {}:",
            p.label(total),
            outcome.status,
            log.display()
        );
        let skip = outcome.tail.len().saturating_sub(BUILD_TAIL);
        for line in &outcome.tail[skip..] {
            println!("    {line}");
        }
        Ok(Some(format!(
            "{what}: bzImage does not build; log: {}",
            log.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kconfig;

    const CHECKPATCH: &str = "\
WARNING:CONFIG_DESCRIPTION: please write a help paragraph that fully describes the config symbol
#26: FILE: init/Kconfig:1363:
+config CONTAINERS
+\tbool \"Containers as kernel objects\"

WARNING:FILE_PATH_CHANGES: added, moved or deleted file(s), does MAINTAINERS need updating?
#48: 
new file mode 100644

CHECK:LINE_SPACING: Please use a blank line after function/struct/union/enum declarations
#80: FILE: kernel/container/container.c:20:

total: 0 errors, 2 warnings, 1 checks, 38 lines checked

NOTE: For some of the reported defects, checkpatch may be able to
      mechanically convert to the typical style using --fix or --fix-inplace.

0002-x.patch has style problems, please review.
";

    #[test]
    fn totals_line() {
        assert_eq!(
            Totals::parse("total: 0 errors, 1 warnings, 0 checks, 25 lines checked"),
            Some(Totals {
                errors: 0,
                warnings: 1,
                checks: 0,
                lines: 25
            })
        );
        assert_eq!(
            Totals::parse("total: 0 errors, 1 warnings, 25 lines checked"),
            None
        );
        assert_eq!(Totals::parse("totally"), None);
    }

    #[test]
    fn checkpatch_messages_and_totals() {
        let r = parse_checkpatch(CHECKPATCH).unwrap();
        let kinds: Vec<(Level, &str)> = r
            .messages
            .iter()
            .map(|m| (m.level, m.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Level::Warning, "CONFIG_DESCRIPTION"),
                (Level::Warning, "FILE_PATH_CHANGES"),
                (Level::Check, "LINE_SPACING"),
            ]
        );
        assert_eq!(r.messages[0].block.len(), 4);
        assert_eq!(r.messages[1].block[2], "new file mode 100644");
        assert_eq!(r.totals.line(), "0 errors, 2 warnings, 1 checks");
    }

    #[test]
    fn clean_checkpatch_output() {
        let r = parse_checkpatch(
            "total: 0 errors, 0 warnings, 0 checks, 48 lines checked\n\n\
             x.patch has no obvious style problems and is ready for submission.\n",
        )
        .unwrap();
        assert!(r.messages.is_empty());
        assert_eq!(r.totals.lines, 48);
    }

    #[test]
    fn checkpatch_output_that_does_not_add_up_is_an_error() {
        assert!(parse_checkpatch("no total line\n").is_err());
        let err = parse_checkpatch("total: 1 errors, 0 warnings, 0 checks, 3 lines checked\n")
            .unwrap_err();
        assert!(err.to_string().contains("1 errors"), "{err}");
        // Without --show-types there is no type to match exceptions on.
        assert!(parse_checkpatch(
            "WARNING: no type\ntotal: 0 errors, 1 warnings, 0 checks, 1 lines checked\n"
        )
        .is_err());
    }

    #[test]
    fn subjects_lose_their_tag_and_unfold() {
        let text = "From 0 Mon Sep 17 00:00:00 2001\nSubject: [RFC PATCH 02/12] container: add\n the core\n\nbody\nSubject: not this\n";
        assert_eq!(subject_of(text).as_deref(), Some("container: add the core"));
        assert_eq!(
            subject_of("Subject: [PATCH] [net] x: y\n").as_deref(),
            Some("x: y")
        );
        assert_eq!(subject_of("From: a\n\nSubject: body\n"), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("0003-*.patch", "0003-container-add.patch"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("00?1-*-core.patch", "0001-add-the-core.patch"));
        assert!(glob_match("*core*", "0001-add-the-core.patch"));
        assert!(!glob_match("0003-*.patch", "0004-container-add.patch"));
        assert!(!glob_match("*.patch", "x.patch.orig"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn exceptions_parse() {
        let e = parse_exceptions(
            r#"
[[exception]]
patch = "0001-*.patch"
type = "FILE_PATH_CHANGES"
why = "MAINTAINERS gets its entry in the last patch"

[[exception]]
subject = "container: add the core"
type = "LINE_SPACING"
why = "  matches upstream's style in this file  "
"#,
        )
        .unwrap();
        assert_eq!(
            e,
            vec![
                Exception {
                    target: Target::Glob("0001-*.patch".into()),
                    kind: "FILE_PATH_CHANGES".into(),
                    why: "MAINTAINERS gets its entry in the last patch".into(),
                },
                Exception {
                    target: Target::Subject("container: add the core".into()),
                    kind: "LINE_SPACING".into(),
                    why: "matches upstream's style in this file".into(),
                },
            ]
        );
        assert!(parse_exceptions("").unwrap().is_empty());
    }

    #[test]
    fn exceptions_need_why_one_target_and_a_type() {
        let err = parse_exceptions(
            r#"
[[exception]]
patch = "0001-*.patch"
type = "FILE_PATH_CHANGES"

[[exception]]
patch = "0002-*.patch"
type = "LINE_SPACING"
why = " "

[[exception]]
patch = "0002-*.patch"
subject = "x"
type = "LINE_SPACING"
why = "y"

[[exception]]
type = "LINE_SPACING"
why = "y"

[[exception]]
patch = "0002-*.patch"
type = "line spacing"
why = "y"
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("exception 1 (patch \"0001-*.patch\", FILE_PATH_CHANGES): has no `why`"),
            "{err}"
        );
        assert!(err.contains("exception 2 "), "{err}");
        assert!(
            err.contains("exception 3 (LINE_SPACING): give `patch` or `subject`, not both"),
            "{err}"
        );
        assert!(
            err.contains("exception 4 (LINE_SPACING): names no patch"),
            "{err}"
        );
        assert!(err.contains("exception 5 "), "{err}");
        assert!(parse_exceptions(
            "[[exception]]\npatch = \"x\"\ntype = \"A\"\nwhy = \"b\"\nreason = \"c\"\n"
        )
        .is_err());
    }

    fn patch(n: usize, name: &str, subject: &str) -> Patch {
        Patch {
            n,
            path: PathBuf::from(name),
            name: name.into(),
            subject: subject.into(),
            text: String::new(),
        }
    }

    #[test]
    fn unused_exceptions_are_stale() {
        let e = parse_exceptions(
            "[[exception]]\npatch = \"0009-*.patch\"\ntype = \"A\"\nwhy = \"b\"\n\n\
             [[exception]]\nsubject = \"x: y\"\ntype = \"A\"\nwhy = \"b\"\n\n\
             [[exception]]\nsubject = \"x: y\"\ntype = \"B\"\nwhy = \"b\"\n",
        )
        .unwrap();
        let patches = [patch(1, "0001-x-y.patch", "x: y")];
        let stale = stale_exceptions(&e, &patches, &[false, false, true]);
        assert_eq!(stale.len(), 2);
        assert!(
            stale[0].contains("(patch \"0009-*.patch\", A)")
                && stale[0].ends_with("no patch of the series matches; remove it"),
            "{stale:?}"
        );
        assert!(
            stale[1].contains("(subject \"x: y\", A)")
                && stale[1].ends_with("checkpatch no longer reports it; remove it"),
            "{stale:?}"
        );
    }

    #[test]
    fn a_missing_exceptions_file_is_no_exceptions() {
        let dir = Path::new("/nonexistent/kcontainer-check-test");
        assert!(load_exceptions(dir).unwrap().is_empty());
    }

    #[test]
    fn touched_paths_skip_deletions() {
        let text = "\
Subject: x

diff --git a/init/Kconfig b/init/Kconfig
index 1..2 100644
diff --git a/kernel/container/core.c b/kernel/container/core.c
new file mode 100644
diff --git a/kernel/old.c b/kernel/old.c
deleted file mode 100644
diff --git a/include/linux/a.h b/include/linux/b.h
similarity index 90%
";
        let paths: Vec<String> = touched_paths(text).into_iter().collect();
        assert_eq!(
            paths,
            vec![
                "include/linux/b.h",
                "init/Kconfig",
                "kernel/container/core.c"
            ]
        );
        assert!(kernel_doc_wanted("include/uapi/linux/container.h"));
        assert!(kernel_doc_wanted("kernel/container/core.c"));
        assert!(!kernel_doc_wanted("kernel/container/core.rs"));
        assert!(!kernel_doc_wanted("kernel/fork.c"));
    }

    #[test]
    fn kernel_doc_counts_only_new_warnings() {
        let tip = kernel_doc_warnings(
            "include/linux/cred.h:50: warning: No description found for return value of 'get_group_info'\n\
             include/linux/cred.h:60: warning: No description found for return value of 'get_group_info'\n\
             kernel/container/core.c:12: warning: Function parameter or struct member 'c' not described in 'f'\n\
             some other line\n",
        );
        assert_eq!(tip.len(), 3);
        assert_eq!(tip[2].0, "kernel/container/core.c");
        let base = kernel_doc_warnings(
            "include/linux/cred.h:44: warning: No description found for return value of 'get_group_info'\n",
        );
        let new = new_warnings(&tip, &base);
        assert_eq!(new.len(), 2);
        assert_eq!(new[0].0, "include/linux/cred.h");
        assert_eq!(new[1].0, "kernel/container/core.c");
    }

    #[test]
    fn rustfmt_diffs_name_files() {
        let log = "Diff in /t/samples/rust/rust_minimal.rs:19:\n-x\n+y\nDiff in /t/samples/rust/rust_minimal.rs:40:\nDiff in /t/rust/kernel/lib.rs at line 3:\n";
        let files: Vec<String> = rustfmt_files(log).into_iter().collect();
        assert_eq!(files, vec!["/t/samples/rust/rust_minimal.rs"]);
    }

    #[test]
    fn mailinfo_header() {
        let info = parse_mailinfo(
            "Author: A U Thor\nEmail: a@example.org\nSubject: x: y: z\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n\n",
        );
        assert_eq!(info.author, "A U Thor");
        assert_eq!(info.subject, "x: y: z");
        assert_eq!(info.date, "Thu, 1 Jan 2026 00:00:00 +0000");
    }

    #[test]
    fn kconfig_symbol_list() {
        let s = parse_kconfig_symbols("config A\n\tmenuconfig B_2\nconfigure C\n");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec!["CONFIG_A", "CONFIG_B_2"]
        );
    }

    fn spec(text: &str) -> ConfigSpec {
        let a = kconfig::parse_fragment("p.config", text).unwrap();
        ConfigSpec {
            name: "default".into(),
            verify: a.clone(),
            assignments: a,
        }
    }

    fn set(symbols: &[&str]) -> BTreeSet<String> {
        symbols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn before_the_feature_exists_one_build_without_its_options() {
        let profile = spec("CONFIG_NET=y\nCONFIG_CONTAINERS=y\nCONFIG_CONTAINER_KEYS=y\n");
        let base = set(&["CONFIG_NET"]);
        let tip = set(&["CONFIG_NET", "CONFIG_CONTAINERS", "CONFIG_CONTAINER_KEYS"]);
        let p = plan(&profile, &base, &base, &tip, false);
        assert_eq!(p.variants.len(), 1);
        assert_eq!(p.variants[0].0, "on");
        let lines: Vec<String> = p.variants[0]
            .1
            .assignments
            .iter()
            .map(|a| a.line())
            .collect();
        assert_eq!(lines, vec!["CONFIG_NET=y"]);
        assert_eq!(p.deferred.len(), 2);
        assert!(p.deferred[0].starts_with("CONFIG_CONTAINERS=y (p.config:2)"));
    }

    #[test]
    fn once_the_feature_exists_on_and_off() {
        let profile =
            spec("CONFIG_NET=y\nCONFIG_CONTAINERS=y\nCONFIG_CONTAINER_KEYS=y\nCONFIG_TYPO=y\n");
        let base = set(&["CONFIG_NET"]);
        let here = set(&["CONFIG_NET", "CONFIG_CONTAINERS"]);
        let tip = set(&["CONFIG_NET", "CONFIG_CONTAINERS", "CONFIG_CONTAINER_KEYS"]);
        let p = plan(&profile, &here, &base, &tip, false);
        assert_eq!(p.deferred, vec!["CONFIG_CONTAINER_KEYS=y (p.config:3)"]);
        let (on, off) = (&p.variants[0], &p.variants[1]);
        assert_eq!((on.0, off.0), ("on", "off"));
        let lines = |a: &[Assignment]| a.iter().map(|a| a.line()).collect::<Vec<_>>();
        // A symbol nobody defines stays, so the verification names it.
        assert_eq!(
            lines(&on.1.assignments),
            vec![
                "CONFIG_NET=y",
                "CONFIG_CONTAINERS=y",
                "CONFIG_TYPO=y",
                "CONFIG_CONTAINERS=y"
            ]
        );
        assert_eq!(on.1.verify, on.1.assignments);
        assert_eq!(
            lines(&off.1.assignments).last().map(String::as_str),
            Some("# CONFIG_CONTAINERS is not set")
        );
        assert_eq!(
            lines(&off.1.verify),
            vec![
                "CONFIG_NET=y",
                "CONFIG_CONTAINERS=y",
                "# CONFIG_CONTAINERS is not set"
            ]
        );
        assert!(kconfig::verify(
            "CONFIG_NET=y\n# CONFIG_CONTAINERS is not set\n",
            &off.1.verify
        )
        .is_empty());
    }

    fn patch_touching(n: usize, paths: &[&str]) -> Patch {
        let mut p = patch(n, &format!("{n:04}-x.patch"), "x: y");
        p.text = "Subject: x: y\n\n".to_string();
        for path in paths {
            p.text += &format!("diff --git a/{path} b/{path}\nindex 1..2 100644\n");
        }
        p
    }

    #[test]
    fn keys_paths() {
        for path in [
            "security/keys/keyctl.c",
            "security/keys/trusted-keys/trusted_core.c",
            "include/keys/user-type.h",
            "include/linux/key.h",
            "include/linux/key-type.h",
            "include/linux/keyctl.h",
            "include/uapi/linux/keyctl.h",
        ] {
            assert!(
                touches_keys(&patch_touching(1, &["init/Kconfig", path]).text),
                "{path}"
            );
        }
        for path in [
            "security/keystore.c",
            "security/security.c",
            "include/linux/keyboard.h",
            "include/linux/key.h.orig",
            "Documentation/security/keys/core.rst",
            "net/dns_resolver/dns_key.c",
        ] {
            assert!(!touches_keys(&patch_touching(1, &[path]).text), "{path}");
        }
        // Deleting a keys file is no change to build.
        let deleted = "diff --git a/security/keys/gc.c b/security/keys/gc.c\n\
                       deleted file mode 100644\n";
        assert!(!touches_keys(deleted));
    }

    #[test]
    fn the_first_keys_patch_starts_keys_off() {
        let series = [
            patch_touching(1, &["kernel/container/core.c"]),
            patch_touching(2, &["include/linux/kcontainer.h", "security/keys/keyctl.c"]),
            patch_touching(3, &["kernel/container/core.c"]),
            patch_touching(4, &["include/uapi/linux/keyctl.h"]),
        ];
        assert_eq!(first_keys_patch(&series), Some(2));
        assert_eq!(first_keys_patch(&series[2..3]), None);
        assert_eq!(first_keys_patch(&[]), None);
    }

    const KEYS_PROFILE: &str = "\
CONFIG_NET=y
CONFIG_KEYS=y
CONFIG_DNS_RESOLVER=y
CONFIG_KEY_NOTIFICATIONS=y
CONFIG_CONTAINERS=y
CONFIG_CONTAINER_KEYS=y
";

    fn lines(a: &[Assignment]) -> Vec<String> {
        a.iter().map(|a| a.line()).collect()
    }

    #[test]
    fn keys_off_builds_with_the_feature_and_without_keys() {
        let profile = spec(KEYS_PROFILE);
        let base = set(&[
            "CONFIG_NET",
            "CONFIG_KEYS",
            "CONFIG_DNS_RESOLVER",
            "CONFIG_KEY_NOTIFICATIONS",
        ]);
        let mut tip = base.clone();
        tip.extend(set(&["CONFIG_CONTAINERS", "CONFIG_CONTAINER_KEYS"]));
        let p = plan(&profile, &tip, &base, &tip, true);
        let names: Vec<&str> = p.variants.iter().map(|v| v.0).collect();
        assert_eq!(names, vec!["on", "off", "keys-off"]);
        // on and off are what they are without keys-off.
        let without = plan(&profile, &tip, &base, &tip, false);
        assert_eq!(without.variants.len(), 2);
        assert!(without.keys_left_out.is_empty());
        for (with, without) in p.variants.iter().zip(&without.variants) {
            assert_eq!(with.1.assignments, without.1.assignments);
            assert_eq!(with.1.verify, without.1.verify);
        }

        let keys_off = &p.variants[2].1;
        assert_eq!(
            keys_off.name,
            "default with CONFIG_CONTAINERS=y and CONFIG_KEYS off"
        );
        assert_eq!(
            lines(&keys_off.assignments),
            vec![
                "CONFIG_NET=y",
                "CONFIG_KEYS=y",
                "CONFIG_CONTAINERS=y",
                "CONFIG_CONTAINER_KEYS=y",
                "CONFIG_CONTAINERS=y",
                "# CONFIG_KEYS is not set",
            ]
        );
        // The series' own options are not verified: they may depend on KEYS.
        assert_eq!(
            lines(&keys_off.verify),
            vec![
                "CONFIG_NET=y",
                "CONFIG_KEYS=y",
                "CONFIG_CONTAINERS=y",
                "CONFIG_CONTAINERS=y",
                "# CONFIG_KEYS is not set",
            ]
        );
        assert_eq!(
            p.keys_left_out,
            vec![
                "CONFIG_DNS_RESOLVER=y (p.config:3)",
                "CONFIG_KEY_NOTIFICATIONS=y (p.config:4)",
            ]
        );
        // What Kconfig makes of it passes; KEYS on (something selected it)
        // or the feature off does not.
        let dot = "CONFIG_NET=y\n# CONFIG_KEYS is not set\nCONFIG_CONTAINERS=y\n";
        assert!(kconfig::verify(dot, &keys_off.verify).is_empty());
        let selected = kconfig::verify(
            "CONFIG_NET=y\nCONFIG_KEYS=y\nCONFIG_CONTAINERS=y\n",
            &keys_off.verify,
        );
        assert_eq!(selected.len(), 1);
        assert!(
            selected[0].starts_with("# CONFIG_KEYS is not set (wanted by xtask check (keys-off;")
                && selected[0].ends_with(".config has CONFIG_KEYS=y"),
            "{selected:?}"
        );
        let no_feature = kconfig::verify("CONFIG_NET=y\n", &keys_off.verify);
        assert_eq!(no_feature.len(), 1);
        assert!(
            no_feature[0].starts_with("CONFIG_CONTAINERS=y"),
            "{no_feature:?}"
        );
    }

    #[test]
    fn keys_off_before_the_feature_exists_leaves_it_out() {
        let profile = spec(KEYS_PROFILE);
        let base = set(&["CONFIG_NET", "CONFIG_KEYS", "CONFIG_DNS_RESOLVER"]);
        let mut tip = base.clone();
        tip.extend(set(&["CONFIG_CONTAINERS", "CONFIG_CONTAINER_KEYS"]));
        let p = plan(&profile, &base, &base, &tip, true);
        let names: Vec<&str> = p.variants.iter().map(|v| v.0).collect();
        assert_eq!(names, vec!["on", "keys-off"]);
        let keys_off = &p.variants[1].1;
        assert_eq!(keys_off.name, "default with CONFIG_KEYS off");
        assert_eq!(
            lines(&keys_off.assignments),
            vec!["CONFIG_NET=y", "CONFIG_KEYS=y", "# CONFIG_KEYS is not set"]
        );
        assert_eq!(keys_off.verify, keys_off.assignments);
        assert_eq!(p.keys_left_out.len(), 2);
    }
}
