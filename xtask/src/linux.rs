//! The kernel: the pinned base tree with `patches/` applied, its
//! configuration from `linux-config/`, and the build.
//!
//! The tree is a git repository under the build directory whose first commit
//! (tag `kcontainer-base`) is the unpacked base; the series is applied on top
//! with `git am`. The tree is only rebuilt from scratch when the base
//! changes, and the series only re-applied when `patches/` changes. Work in
//! the tree that `patches/` does not have yet (commits or edits) is never
//! thrown away: the xtask refuses and says how to save it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::base::Base;
use crate::kconfig;
use crate::layout::{Kbuild, Layout};
use crate::progress;
use crate::toolchain::Toolchain;

pub const BASE_TAG: &str = "kcontainer-base";
pub const BRANCH: &str = "kcontainer";
pub const COVER_LETTER: &str = "0000-cover-letter.patch";

/// Where the base tree comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Debian's linux-source package, verified against `patches/base.toml`;
    /// `tarball` is where [`crate::base::ensure`] keeps it.
    Debian { base: Base, tarball: PathBuf },
    /// `--linux-tarball PATH`: any tarball of the same kernel.
    Tarball(PathBuf),
    /// `--linux-tree PATH`: an unpacked source tree (copied, never modified).
    Tree(PathBuf),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct TreeState {
    /// Identifies the base: `sha256:<hex>` of a tarball or `tree:<path>`.
    base_id: String,
    /// Size and mtime of the tarball when its sha256 was last checked.
    tarball_stamp: Option<(u64, i64)>,
    /// sha256 over the series' file names and contents; empty when none applied.
    series_hash: String,
    /// HEAD right after the series was applied.
    applied_head: String,
}

/// `git` arguments for the repository at `tree`, with the xtask's identity.
pub fn git_in(tree: &Path) -> Vec<String> {
    vec![
        "-C".into(),
        tree.display().to_string(),
        "-c".into(),
        "user.name=kcontainer xtask".into(),
        "-c".into(),
        "user.email=xtask@kcontainer.invalid".into(),
    ]
}

/// The series in application order (the cover letter is not a patch).
pub fn series(layout: &Layout) -> Result<Vec<PathBuf>> {
    series_in(&layout.series_dir())
}

/// The `*.patch` files in `dir` but the cover letter, in application order.
pub fn series_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut patches = crate::layout::list_dir(dir)?;
    patches.retain(|p| {
        p.extension().is_some_and(|e| e == "patch")
            && p.file_name().is_some_and(|n| n != COVER_LETTER)
    });
    patches.sort();
    Ok(patches)
}

fn series_hash(patches: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    for p in patches {
        h.update(
            p.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update([0]);
        h.update(fs::read(p).with_context(|| format!("reading {}", p.display()))?);
        h.update([0]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex(&h.finalize()))
}

fn stamp(path: &Path) -> Result<(u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path)
        .with_context(|| format!("reading {} (does it exist?)", path.display()))?;
    Ok((m.size(), m.mtime()))
}

fn load_state(layout: &Layout) -> Result<Option<TreeState>> {
    let path = layout.tree_state();
    if !layout.tree().join(".git").exists() || !path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing {}; delete it and {} to start the tree afresh",
            path.display(),
            layout.tree().display()
        )
    })?))
}

fn save_state(layout: &Layout, state: &TreeState) -> Result<()> {
    let path = layout.tree_state();
    let text = serde_json::to_string_pretty(state).context("encoding the tree state")?;
    fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

pub fn head(sh: &Shell, tree: &Path) -> Result<String> {
    let git = &git_in(tree);
    cmd!(sh, "git {git...} rev-parse HEAD")
        .quiet()
        .read()
        .with_context(|| format!("reading HEAD of {}", tree.display()))
}

/// Tracked files with uncommitted changes.
pub fn dirty(sh: &Shell, tree: &Path) -> Result<Vec<String>> {
    let git = &git_in(tree);
    let out = cmd!(sh, "git {git...} status --porcelain --untracked-files=no")
        .quiet()
        .read()
        .with_context(|| format!("git status in {}", tree.display()))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Makes `<build>/linux` a git tree whose tag `kcontainer-base` is the base
/// (importing it when it changed); the series and any work in the tree are
/// left as they are.
pub fn ensure_base(sh: &Shell, layout: &Layout, source: &Source) -> Result<()> {
    prepare_base(sh, layout, source).map(drop)
}

fn prepare_base(sh: &Shell, layout: &Layout, source: &Source) -> Result<TreeState> {
    let tree = layout.tree();
    let mut state = load_state(layout)?;

    let (base_id, tarball_stamp) = match source {
        Source::Debian { base, tarball } => {
            let now = stamp(tarball).with_context(|| {
                format!(
                    "the base tarball comes from {}={}",
                    base.debian_package, base.debian_version
                )
            })?;
            let known = state.as_ref().is_some_and(|s| {
                s.base_id == format!("sha256:{}", base.sha256) && s.tarball_stamp == Some(now)
            });
            if !known {
                let sum = sha256_file(tarball)?;
                if sum != base.sha256 {
                    bail!(
                        "{} has sha256 {sum}, patches/base.toml pins {} ({} {}): delete it to \
                         fetch it again, or pass --linux-tarball",
                        tarball.display(),
                        base.sha256,
                        base.debian_package,
                        base.debian_version,
                    );
                }
            }
            (format!("sha256:{}", base.sha256), Some(now))
        }
        Source::Tarball(path) => (format!("sha256:{}", sha256_file(path)?), Some(stamp(path)?)),
        Source::Tree(path) => {
            let path = fs::canonicalize(path)
                .with_context(|| format!("--linux-tree {}", path.display()))?;
            (format!("tree:{}", path.display()), None)
        }
    };

    if state.as_ref().is_none_or(|s| s.base_id != base_id) {
        match &state {
            Some(old) => refuse_to_lose_work(sh, layout, old, "the base changed")?,
            None if tree.join(".git").exists() => bail!(
                "{} is a git tree but {} is missing, so the xtask cannot tell whether it holds \
                 unsaved work; move the tree away (or delete it) and run again",
                tree.display(),
                layout.tree_state().display()
            ),
            None => {}
        }
        import_base(sh, layout, source)?;
        state = Some(TreeState {
            base_id,
            tarball_stamp,
            series_hash: String::new(),
            applied_head: head(sh, &tree)?,
        });
        save_state(layout, state.as_ref().context("state")?)?;
    }
    let mut state = state.context("tree state")?;
    if state.tarball_stamp != tarball_stamp {
        state.tarball_stamp = tarball_stamp;
        save_state(layout, &state)?;
    }
    Ok(state)
}

/// Makes `<build>/linux` the base plus the current series.
pub fn ensure_tree(sh: &Shell, layout: &Layout, source: &Source) -> Result<()> {
    let tree = layout.tree();
    let mut state = prepare_base(sh, layout, source)?;
    let patches = series(layout)?;
    let hash = series_hash(&patches)?;
    if hash == state.series_hash {
        let head = head(sh, &tree)?;
        if head != state.applied_head {
            let short = &head[..12.min(head.len())];
            // An earlier commit of the series (checked out by hand or by a bisect)
            // is not new work: say so rather than suggesting an export.
            let applied = &state.applied_head;
            let behind = cmd!(
                sh,
                "git -C {tree} merge-base --is-ancestor {head} {applied}"
            )
            .quiet()
            .ignore_stderr()
            .run()
            .is_ok();
            if behind {
                eprintln!(
                    "xtask: note: {} is at an earlier commit of the series (HEAD {short}); building it",
                    tree.display()
                );
            } else {
                eprintln!(
                    "xtask: note: {} has commits that patches/ does not (HEAD {short}); building them. \
                     `cargo xtask patches export` saves them to patches/",
                    tree.display()
                );
            }
        }
        let dirty = dirty(sh, &tree)?;
        if !dirty.is_empty() {
            eprintln!(
                "xtask: note: building {} uncommitted change(s) in {}",
                dirty.len(),
                tree.display()
            );
        }
        return Ok(());
    }

    refuse_to_lose_work(sh, layout, &state, "patches/ changed")?;
    let git = &git_in(&tree);
    cmd!(sh, "git {git...} checkout -q -f -B {BRANCH} {BASE_TAG}")
        .quiet()
        .run()
        .with_context(|| format!("resetting {} to {BASE_TAG}", tree.display()))?;
    state.series_hash = String::new();
    state.applied_head = head(sh, &tree)?;
    save_state(layout, &state)?;
    if !patches.is_empty() {
        eprintln!(
            "xtask: applying {} patch(es) from {}",
            patches.len(),
            layout.series_dir().display()
        );
        let out = cmd!(sh, "git {git...} am -q --no-3way {patches...}")
            .quiet()
            .ignore_status()
            .output()
            .context("running git am")?;
        if !out.status.success() {
            let msg = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = cmd!(sh, "git {git...} am --abort")
                .quiet()
                .ignore_status()
                .run();
            bail!("the series does not apply to {BASE_TAG}:\n{}", msg.trim());
        }
    }
    state.series_hash = hash;
    state.applied_head = head(sh, &tree)?;
    save_state(layout, &state)
}

/// Records that the tree's HEAD now matches `patches/` (after an export).
pub fn mark_exported(sh: &Shell, layout: &Layout) -> Result<()> {
    let mut state =
        load_state(layout)?.context("no kernel tree yet; run `cargo xtask build` first")?;
    state.series_hash = series_hash(&series(layout)?)?;
    state.applied_head = head(sh, &layout.tree())?;
    save_state(layout, &state)
}

fn refuse_to_lose_work(sh: &Shell, layout: &Layout, state: &TreeState, why: &str) -> Result<()> {
    let tree = layout.tree();
    let head = head(sh, &tree)?;
    let dirty = dirty(sh, &tree)?;
    if head != state.applied_head {
        bail!(
            "{why}, but {} has commits that patches/ does not have (HEAD {head}, last applied {}).\n\
             Save them with `cargo xtask patches export`, or drop them with \
             `git -C {} reset --hard {}`, then run again.",
            tree.display(),
            state.applied_head,
            tree.display(),
            state.applied_head
        );
    }
    if !dirty.is_empty() {
        bail!(
            "{why}, but {} has uncommitted changes:\n  {}\nCommit them (and `cargo xtask patches export`) or \
             `git -C {} checkout -- .`, then run again.",
            tree.display(),
            dirty.join("\n  "),
            tree.display()
        );
    }
    Ok(())
}

fn import_base(sh: &Shell, layout: &Layout, source: &Source) -> Result<()> {
    let tree = layout.tree();
    let tmp = layout.build.join("linux.new");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let what = match source {
        Source::Debian { base, tarball } => {
            unpack(sh, tarball, &tmp)?;
            format!(
                "Linux {} from Debian {} {}\n\n{} sha256 {}\n\n\
                 The top-level .gitignore rules `/*` and `!/debian/` of Debian's\n\
                 packaging are dropped so that new files can be added.",
                base.kernel,
                base.debian_package,
                base.debian_version,
                base.tarball_member,
                base.sha256
            )
        }
        Source::Tarball(path) => {
            unpack(sh, path, &tmp)?;
            format!("Linux base from {}", path.display())
        }
        Source::Tree(path) => {
            eprintln!("xtask: copying {} into {}", path.display(), tmp.display());
            duct::cmd!("tar", "-C", path, "--exclude=.git", "-cf", "-", ".")
                .pipe(duct::cmd!("tar", "-C", &tmp, "-xf", "-"))
                .run()
                .with_context(|| format!("copying {}", path.display()))?;
            format!("Linux base from {}", path.display())
        }
    };
    if !tmp.join("Makefile").exists() || !tmp.join("kernel").is_dir() {
        bail!(
            "{} does not look like a Linux source tree (no Makefile or kernel/)",
            tmp.display()
        );
    }
    drop_debian_ignore_all(&tmp)?;
    eprintln!("xtask: committing the base tree (this takes a minute once)");
    let git = &git_in(&tmp);
    // A fixed date and identity make the base commit the same on every machine.
    let _env = sh.push_env("GIT_AUTHOR_DATE", "2000-01-01T00:00:00Z");
    let _env2 = sh.push_env("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z");
    cmd!(sh, "git {git...} init -q -b {BRANCH}")
        .quiet()
        .run()
        .context("git init")?;
    cmd!(sh, "git {git...} config gc.auto 0")
        .quiet()
        .run()
        .context("git config")?;
    // -f: everything the tarball ships is source, whatever .gitignore says.
    cmd!(sh, "git {git...} add -A -f")
        .quiet()
        .run()
        .context("git add of the base tree")?;
    cmd!(sh, "git {git...} commit -q --no-verify -m {what}")
        .quiet()
        .run()
        .context("committing the base tree")?;
    cmd!(sh, "git {git...} tag {BASE_TAG}")
        .quiet()
        .run()
        .context("tagging the base")?;
    if tree.exists() {
        fs::remove_dir_all(&tree)
            .with_context(|| format!("removing the old {}", tree.display()))?;
    }
    fs::rename(&tmp, &tree)
        .with_context(|| format!("moving {} to {}", tmp.display(), tree.display()))?;
    // The old output directories were built from another tree.
    let out = layout.build.join("out");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    Ok(())
}

/// Debian's tree ignores everything at the top level (`/*`, `!/debian/`),
/// which would hide a developer's new files from `git add`. Drop those two
/// rules from the base's top-level .gitignore; the commit message says so.
fn drop_debian_ignore_all(tree: &Path) -> Result<()> {
    let path = tree.join(".gitignore");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| *l != "/*" && *l != "!/debian/")
        .collect();
    if kept.len() != text.lines().count() {
        fs::write(&path, kept.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn unpack(sh: &Shell, tarball: &Path, into: &Path) -> Result<()> {
    eprintln!(
        "xtask: unpacking {} into {}",
        tarball.display(),
        into.display()
    );
    cmd!(sh, "tar -C {into} --strip-components=1 -xf {tarball}")
        .quiet()
        .run()
        .with_context(|| format!("unpacking {}", tarball.display()))
}

/// `linux-config/profiles.toml`.
#[derive(Debug, Deserialize)]
struct ProfileSpec {
    fragments: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    key: String,
}

/// What a `.config` is made of: `make tinyconfig`, then `assignments` merged
/// on top (a later one wins), then `make olddefconfig`; every assignment in
/// `verify` must hold in the result.
#[derive(Debug, Clone)]
pub struct ConfigSpec {
    /// For messages: the profile's name, and what was changed in it.
    pub name: String,
    pub assignments: Vec<kconfig::Assignment>,
    pub verify: Vec<kconfig::Assignment>,
}

impl ConfigSpec {
    /// The layout's profile: its fragments from `linux-config/`, in order,
    /// all verified.
    pub fn profile(layout: &Layout) -> Result<Self> {
        let profiles_path = layout.config_dir().join("profiles.toml");
        let text = fs::read_to_string(&profiles_path)
            .with_context(|| format!("reading {}", profiles_path.display()))?;
        let profiles: BTreeMap<String, ProfileSpec> = toml::from_str(&text)
            .with_context(|| format!("parsing {}", profiles_path.display()))?;
        let name = layout.profile.name();
        let spec = profiles
            .get(name)
            .with_context(|| format!("{} has no [{name}] profile", profiles_path.display()))?;
        let mut assignments = Vec::new();
        for fragment in &spec.fragments {
            let path = layout.config_dir().join(fragment);
            let text = fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (listed in {})",
                    path.display(),
                    profiles_path.display()
                )
            })?;
            assignments.extend(kconfig::parse_fragment(fragment, &text)?);
        }
        Ok(Self {
            name: name.to_string(),
            verify: assignments.clone(),
            assignments,
        })
    }
}

/// Writes `<out>/.config`: tinyconfig + the profile's fragments, verified.
pub fn configure(sh: &Shell, layout: &Layout, tc: &Toolchain, verbose: bool) -> Result<()> {
    let spec = ConfigSpec::profile(layout)?;
    configure_in(sh, layout, tc, &layout.kbuild(), &spec, verbose)
}

/// Writes `<kbuild.out>/.config` for `kbuild.tree` as `spec` says, verified;
/// nothing is done when the spec, the tree's Kconfig inputs and the
/// toolchain are what they were last time.
pub fn configure_in(
    sh: &Shell,
    layout: &Layout,
    tc: &Toolchain,
    kbuild: &Kbuild,
    spec: &ConfigSpec,
    verbose: bool,
) -> Result<()> {
    let tree = &kbuild.tree;
    let mut key = Sha256::new();
    key.update(&spec.name);
    for list in [&spec.assignments, &spec.verify] {
        key.update([0]);
        for a in list {
            key.update(a.line() + "\n");
        }
    }
    // What the result depends on besides the spec: the Kconfig files, the
    // `*.config` fragments tinyconfig merges, kconfig itself and the version
    // in the Makefile, as they are in the tree (index, edits, new files), and
    // the toolchain (Kconfig asks the compilers for their versions). Not
    // HEAD: a commit that changes none of them does not reconfigure.
    let git = &git_in(tree);
    let inputs = [
        ":(glob)**/Kconfig*",
        ":(glob)**/*.config",
        "scripts/kconfig",
        "Makefile",
    ];
    let staged = cmd!(sh, "git {git...} ls-files -s -- {inputs...}")
        .quiet()
        .read()
        .context("git ls-files of the Kconfig inputs")?;
    let edited = cmd!(sh, "git {git...} diff -- {inputs...}")
        .quiet()
        .read()
        .context("git diff of the Kconfig inputs")?;
    let untracked = cmd!(
        sh,
        "git {git...} ls-files --others --exclude-standard -- {inputs...}"
    )
    .quiet()
    .read()
    .context("git ls-files of untracked Kconfig inputs")?;
    key.update(staged);
    key.update([0]);
    key.update(edited);
    for path in untracked.lines() {
        let path = tree.join(path);
        key.update([0]);
        key.update(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
    }
    let vars = tc.make_vars(&kbuild.out);
    for v in &vars {
        key.update([0]);
        key.update(v);
    }
    let key = hex(&key.finalize());

    let out = &kbuild.out;
    let stamp_path = out.join("kcontainer-config.json");
    let dot_config = out.join(".config");
    if dot_config.exists() {
        if let Ok(text) = fs::read_to_string(&stamp_path) {
            if serde_json::from_str::<Stamp>(&text).is_ok_and(|s| s.key == key) {
                return Ok(());
            }
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let new = out.join(".config.kcontainer-new");
    let kconfig_var = format!("KCONFIG_CONFIG={}", new.display());
    let log = |step: &str| out.join(format!("kcontainer-{step}.log"));
    let tiny = make_cmd(tree, &vars, &[&kconfig_var, "tinyconfig"], layout);
    progress::run_logged(tiny, "make tinyconfig", &log("tinyconfig"), verbose)?;
    let base = fs::read_to_string(&new).with_context(|| format!("reading {}", new.display()))?;
    fs::write(&new, kconfig::merge(&base, &spec.assignments))
        .with_context(|| format!("writing {}", new.display()))?;
    let olddef = make_cmd(tree, &vars, &[&kconfig_var, "olddefconfig"], layout);
    progress::run_logged(olddef, "make olddefconfig", &log("olddefconfig"), verbose)?;
    let result = fs::read_to_string(&new).with_context(|| format!("reading {}", new.display()))?;
    let missing = kconfig::verify(&result, &spec.verify);
    if !missing.is_empty() {
        bail!(
            "the {} configuration lacks {} option(s) it asks for (see {}):\n  {}",
            spec.name,
            missing.len(),
            new.display(),
            missing.join("\n  ")
        );
    }
    if fs::read_to_string(&dot_config).ok().as_deref() == Some(result.as_str()) {
        fs::remove_file(&new).with_context(|| format!("removing {}", new.display()))?;
    } else {
        fs::rename(&new, &dot_config)
            .with_context(|| format!("writing {}", dot_config.display()))?;
    }
    let stamp = serde_json::to_string(&Stamp { key }).context("encoding the config stamp")?;
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))
}

/// `make -C <tree> <vars> <args>` with the lab's environment.
pub fn make_cmd(tree: &Path, vars: &[String], args: &[&str], layout: &Layout) -> duct::Expression {
    let mut argv: Vec<String> = vec!["-C".into(), tree.display().to_string()];
    argv.extend(vars.iter().cloned());
    argv.extend(args.iter().map(|s| s.to_string()));
    duct::cmd("make", argv).env("CCACHE_DIR", layout.ccache())
}

/// `-j<number of CPUs>`.
pub fn jobs() -> String {
    format!(
        "-j{}",
        std::thread::available_parallelism().map_or(2, |n| n.get())
    )
}

/// Builds bzImage (and vmlinux) and installs the uAPI headers.
pub fn build(sh: &Shell, layout: &Layout, tc: &Toolchain, verbose: bool) -> Result<()> {
    let tree = layout.tree();
    let jobs = jobs();
    let vars = tc.make_vars(&layout.out());
    let kbuild = make_cmd(&tree, &vars, &[&jobs, "bzImage"], layout);
    progress::run_logged(kbuild, "building the kernel", &layout.build_log(), verbose)?;

    // headers_install takes seconds even when nothing changed: skip it
    // unless the tree's uAPI headers differ from the last install.
    let git = &git_in(&tree);
    let uapi_diff = cmd!(
        sh,
        "git {git...} diff HEAD -- include/uapi arch/x86/include/uapi"
    )
    .quiet()
    .read()
    .context("git diff of the uAPI headers")?;
    let mut key = Sha256::new();
    key.update(head(sh, &tree)?);
    key.update(uapi_diff);
    let key = hex(&key.finalize());
    let stamp_path = layout.out().join("kcontainer-headers.json");
    let fresh = layout.headers().join("linux").is_dir()
        && fs::read_to_string(&stamp_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Stamp>(&t).ok())
            .is_some_and(|s| s.key == key);
    if fresh {
        return Ok(());
    }
    let headers = make_cmd(&tree, &vars, &["headers_install"], layout);
    progress::run_logged(
        headers,
        "make headers_install",
        &layout.out().join("kcontainer-headers.log"),
        verbose,
    )?;
    let stamp = serde_json::to_string(&Stamp { key }).context("encoding the headers stamp")?;
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))
}
