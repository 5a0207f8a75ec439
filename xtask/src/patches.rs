//! `cargo xtask patches export`: the kernel tree's commits since the base
//! become `patches/` again (`git format-patch`), the cover letter is kept,
//! and files whose content did not change are not touched.

use std::fs;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::linux::{self, BASE_TAG, COVER_LETTER};
use crate::{build, Options};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Regenerate patches/ from the commits in the kernel tree since the base
    Export,
}

pub const SUBJECT_PREFIX: &str = "RFC PATCH v4";

pub fn run(opts: &Options, command: &Command) -> Result<()> {
    match command {
        Command::Export => export(opts),
    }
}

fn export(opts: &Options) -> Result<()> {
    let sh = Shell::new().context("creating a shell")?;
    let layout = build::layout(opts)?;
    let tree = layout.tree();
    if !tree.join(".git").exists() {
        bail!(
            "no kernel tree at {}; `cargo xtask build` makes one",
            tree.display()
        );
    }
    let dirty = linux::dirty(&sh, &tree)?;
    if !dirty.is_empty() {
        bail!(
            "{} has uncommitted changes; commit them first:\n  {}",
            tree.display(),
            dirty.join("\n  ")
        );
    }
    let tmp = layout.build.join("patches-export.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    let prefix = format!("--subject-prefix={SUBJECT_PREFIX}");
    cmd!(
        sh,
        "git -C {tree} format-patch -q --cover-letter --zero-commit --no-signature --abbrev=7 {prefix} -o {tmp} {BASE_TAG}..HEAD"
    )
    .quiet()
    .run()
    .context("git format-patch")?;

    let patches_dir = layout.patches();
    let generated = crate::layout::list_dir(&tmp)?;
    let count = generated.len().saturating_sub(1);
    let (mut written, mut unchanged, mut removed) = (0, 0, 0);
    let mut names = Vec::new();
    for path in &generated {
        let name = path.file_name().context("patch file name")?.to_owned();
        let dest = patches_dir.join(&name);
        let mut text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if name == COVER_LETTER {
            match fs::read_to_string(&dest) {
                // Keep the written cover letter; the patch count and the shortlog
                // and diffstat at its end follow the series.
                Ok(existing) => {
                    text = renumber_cover_letter(&refresh_shortlog(&existing, &text), count)
                }
                Err(_) => eprintln!(
                    "xtask: {} is new: fill in its subject and blurb",
                    dest.display()
                ),
            }
        }
        names.push(name);
        if fs::read_to_string(&dest).ok().as_deref() == Some(text.as_str()) {
            unchanged += 1;
        } else {
            fs::write(&dest, text).with_context(|| format!("writing {}", dest.display()))?;
            written += 1;
        }
    }
    for old in linux::series(&layout)? {
        if !names.iter().any(|n| Some(n.as_os_str()) == old.file_name()) {
            fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
            removed += 1;
        }
    }
    fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    linux::mark_exported(&sh, &layout)?;
    eprintln!(
        "xtask: {count} patch(es) in {}: {written} written, {unchanged} unchanged, {removed} removed",
        patches_dir.display()
    );
    Ok(())
}

/// Where `git format-patch --cover-letter` starts its shortlog: the first line
/// of the form `Author Name (N):`, with the author `who` if given. Returns the
/// offset of that line and the author.
fn shortlog_start<'a>(text: &'a str, who: Option<&str>) -> Option<(usize, &'a str)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let header = line
            .trim_end()
            .strip_suffix("):")
            .and_then(|l| l.rsplit_once(" ("))
            .filter(|(name, n)| {
                !name.is_empty()
                    && !name.starts_with(char::is_whitespace)
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && who.is_none_or(|w| w == *name)
            });
        if let Some((name, _)) = header {
            return Some((offset, name));
        }
        offset += line.len();
    }
    None
}

/// The written cover letter with its shortlog and diffstat (from the shortlog
/// header of the series' first author to the end) replaced by those of the
/// freshly generated one. A cover letter without that header is kept as it is.
fn refresh_shortlog(existing: &str, generated: &str) -> String {
    let Some((new, who)) = shortlog_start(generated, None) else {
        return existing.to_string();
    };
    match shortlog_start(existing, Some(who)) {
        Some((old, _)) => format!("{}{}", &existing[..old], &generated[new..]),
        None => existing.to_string(),
    }
}

/// `Subject: [RFC PATCH 00/07] ...` → `00/<count>`.
fn renumber_cover_letter(text: &str, count: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        // "Subject: [" head " " zeros "/" old "]" tail
        let parsed = line.strip_prefix("Subject: [").and_then(|rest| {
            let (tag, tail) = rest.split_once(']')?;
            let (head, numbers) = tag.rsplit_once(' ')?;
            let (zeros, _) = numbers.split_once('/')?;
            Some((head, zeros.len(), tail))
        });
        match parsed {
            Some((head, width, tail)) => out.push_str(&format!(
                "Subject: [{head} {:0width$}/{count:0width$}]{tail}",
                0
            )),
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_letter_shortlog_follows_the_series() {
        let existing = "Subject: x\n\nblurb (see below):\nSince v1 (2):\n\nA Dev (2):\n  one\n  two\n\n a | 1 +\n";
        let generated =
            "Subject: y\n\n*** BLURB HERE ***\n\nA Dev (3):\n  one\n  two\n  three\n\n a | 2 ++\n";
        assert_eq!(
            refresh_shortlog(existing, generated),
            "Subject: x\n\nblurb (see below):\nSince v1 (2):\n\nA Dev (3):\n  one\n  two\n  three\n\n a | 2 ++\n"
        );
        // Nothing to replace: the written letter stays as it is.
        assert_eq!(
            refresh_shortlog("Subject: x\nbody\n", generated),
            "Subject: x\nbody\n"
        );
    }

    #[test]
    fn cover_letter_count_follows_the_series() {
        let text =
            "From 0\nSubject: [RFC PATCH 00/07] containers as kernel objects\n\nbody 00/07\n";
        assert_eq!(
            renumber_cover_letter(text, 12),
            "From 0\nSubject: [RFC PATCH 00/12] containers as kernel objects\n\nbody 00/07\n"
        );
        assert_eq!(
            renumber_cover_letter("Subject: no tag\n", 3),
            "Subject: no tag\n"
        );
    }
}
