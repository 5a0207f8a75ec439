//! KUnit in the guest: the kernel runs its built-in KUnit suites at boot and
//! prints their KTAP on the console. This module finds that KTAP, names the
//! cases the series' sources declare (`#[kunit_tests(suite)]` modules in
//! `kernel/container/`, when their `#[cfg(CONFIG_...)]` is on in `.config`),
//! and judges them: a case that fails, or that is expected and never
//! reported, fails the run. Running KUnit taints the kernel with TAINT_TEST,
//! which is then the one taint a run may have.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::ktap::{self, Status};
use crate::report::Summary;

/// The `TAINT_TEST` bit of `/proc/sys/kernel/tainted` (`N`), set by KUnit.
pub const TAINT_TEST: u64 = 1 << 18;

/// Where the series keeps its KUnit suites.
const SOURCE_DIR: &str = "kernel/container";

/// One KUnit case as the console reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub suite: String,
    pub name: String,
    pub status: Status,
}

/// What KUnit printed at boot.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Kunit {
    /// KUnit printed its KTAP header: tests ran (and tainted the kernel).
    pub ran: bool,
    pub cases: Vec<Case>,
    /// Suites reported `not ok` although none of their cases failed (e.g.
    /// their init failed).
    pub failed_suites: Vec<String>,
}

impl Kunit {
    /// The taint a guest that ran KUnit may have.
    pub fn allowed_taint(&self) -> u64 {
        if self.ran {
            TAINT_TEST
        } else {
            0
        }
    }
}

/// Strips printk's `[    1.234567] ` time stamp.
fn strip_time(line: &str) -> &str {
    if line.starts_with('[') {
        if let Some(i) = line.find("] ") {
            return &line[i + 2..];
        }
    }
    line
}

/// Finds KUnit's KTAP in the console lines (from its first `KTAP version 1`).
pub fn parse_console(lines: &[String]) -> Kunit {
    let stripped: Vec<&str> = lines.iter().map(|l| strip_time(l)).collect();
    let Some(start) = stripped.iter().position(|l| *l == "KTAP version 1") else {
        return Kunit::default();
    };
    let ktap = ktap::parse(&stripped[start..].join("\n"));
    let mut kunit = Kunit {
        ran: true,
        ..Kunit::default()
    };
    for suite in &ktap.results {
        for case in &suite.subtests {
            kunit.cases.push(Case {
                suite: suite.name.clone(),
                name: case.name.clone(),
                status: case.status,
            });
        }
        let case_failed = suite.subtests.iter().any(|c| c.status == Status::Fail);
        if suite.status == Status::Fail && !case_failed {
            kunit.failed_suites.push(suite.name.clone());
        }
    }
    kunit
}

/// The `(suite, case)` pairs declared in `source` by `#[kunit_tests(suite)]`
/// modules whose `#[cfg(CONFIG_X)]` (if any) is enabled, as `enabled` says.
fn declared_cases(source: &str, enabled: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut cases = Vec::new();
    let mut suite: Option<String> = None;
    let mut test_next = false;
    let mut previous = "";
    for line in source.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("#[kunit_tests(")
            .and_then(|r| r.strip_suffix(")]"))
        {
            let gated = previous
                .strip_prefix("#[cfg(")
                .and_then(|r| r.strip_suffix(")]"))
                .is_some_and(|option| !enabled(option));
            suite = (!gated).then(|| name.to_string());
            test_next = false;
        } else if line == "#[test]" {
            test_next = true;
        } else if test_next && !line.starts_with("#[") {
            if let (Some(s), Some(rest)) = (&suite, line.strip_prefix("fn ")) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                cases.push((s.clone(), name));
            }
            test_next = false;
        }
        if !line.is_empty() {
            previous = line;
        }
    }
    cases
}

/// The KUnit cases the kernel in `tree`, configured by `config`, must report.
pub fn expected_cases(tree: &Path, config: &Path) -> Result<Vec<(String, String)>> {
    let config_text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let on: BTreeSet<&str> = config_text
        .lines()
        .filter_map(|l| l.strip_suffix("=y"))
        .collect();
    if !on.contains("CONFIG_KUNIT") {
        return Ok(Vec::new());
    }
    let dir = tree.join(SOURCE_DIR);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        cases.extend(declared_cases(&source, &|option| on.contains(option)));
    }
    Ok(cases)
}

/// Why the KUnit part of a run failed; empty if it passed.
pub fn judge(kunit: &Kunit, expected: &[(String, String)]) -> Vec<String> {
    let mut reasons = Vec::new();
    for c in &kunit.cases {
        if c.status == Status::Fail {
            reasons.push(format!("KUnit case failed: {}.{}", c.suite, c.name));
        }
    }
    for s in &kunit.failed_suites {
        reasons.push(format!("KUnit suite failed: {s}"));
    }
    for (suite, name) in expected {
        if !kunit
            .cases
            .iter()
            .any(|c| &c.suite == suite && &c.name == name)
        {
            reasons.push(format!("KUnit case never reported: {suite}.{name}"));
        }
    }
    reasons
}

/// The counts of the KUnit cases; expected cases that never reported count
/// as failed.
pub fn summary(kunit: &Kunit, expected: &[(String, String)]) -> Summary {
    let mut s = Summary::default();
    for c in &kunit.cases {
        match c.status {
            Status::Pass => s.passed += 1,
            Status::Fail => s.failed += 1,
            Status::Skip => s.skipped += 1,
        }
    }
    s.failed += expected
        .iter()
        .filter(|(suite, name)| {
            !kunit
                .cases
                .iter()
                .any(|c| &c.suite == suite && &c.name == name)
        })
        .count();
    s.failed += kunit.failed_suites.len();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    const CONSOLE: &str = "\
[    0.500000] Run /init as init process
[    0.400000] KTAP version 1
[    0.400001] 1..2
[    0.400002]     KTAP version 1
[    0.400003]     # Subtest: kc_a
[    0.400004]     # module: object
[    0.400005]     1..2
[    0.400006]     ok 1 first
[    0.400007] random: crng init done
[    0.400008]     not ok 2 second
[    0.400009] # kc_a: pass:1 fail:1 skip:0 total:2
[    0.400010] not ok 1 kc_a
[    0.400011]     KTAP version 1
[    0.400012]     # Subtest: kc_b
[    0.400013]     1..1
[    0.400014]     ok 1 third # SKIP not built
[    0.400015] ok 2 kc_b
";

    #[test]
    fn console_cases_are_found() {
        let k = parse_console(&lines(CONSOLE));
        assert!(k.ran);
        let got: Vec<_> = k
            .cases
            .iter()
            .map(|c| (c.suite.as_str(), c.name.as_str(), c.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("kc_a", "first", Status::Pass),
                ("kc_a", "second", Status::Fail),
                ("kc_b", "third", Status::Skip),
            ]
        );
        assert!(k.failed_suites.is_empty());
        assert_eq!(k.allowed_taint(), TAINT_TEST);
    }

    #[test]
    fn no_kunit_no_taint_allowed() {
        let k = parse_console(&lines("[    0.1] Linux version 7.3\n"));
        assert!(!k.ran);
        assert_eq!(k.allowed_taint(), 0);
    }

    #[test]
    fn failures_and_missing_cases_are_reasons() {
        let k = parse_console(&lines(CONSOLE));
        let expected = vec![
            ("kc_a".to_string(), "first".to_string()),
            ("kc_a".to_string(), "second".to_string()),
            ("kc_c".to_string(), "never".to_string()),
        ];
        assert_eq!(
            judge(&k, &expected),
            vec![
                "KUnit case failed: kc_a.second".to_string(),
                "KUnit case never reported: kc_c.never".to_string(),
            ]
        );
        assert_eq!(
            summary(&k, &expected).line(),
            "1 passed, 2 failed, 1 skipped"
        );
    }

    #[test]
    fn a_suite_that_fails_without_cases_is_a_reason() {
        let k = parse_console(&lines(
            "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..1\nnot ok 1 s\n",
        ));
        assert_eq!(k.failed_suites, vec!["s".to_string()]);
        assert_eq!(judge(&k, &[]), vec!["KUnit suite failed: s".to_string()]);
    }

    #[test]
    fn declared_cases_follow_cfg() {
        let source = "\
#[cfg(CONFIG_ON)]
#[kunit_tests(on_suite)]
mod tests {
    #[test]
    fn one() {}

    fn helper() {}

    #[test]
    #[cfg(CONFIG_WHATEVER)]
    fn two() -> Result {
        Ok(())
    }
}

#[cfg(CONFIG_OFF)]
#[kunit_tests(off_suite)]
mod more {
    #[test]
    fn three() {}
}

#[kunit_tests(plain)]
mod plain {
    #[test]
    fn four() {}
}
";
        let got = declared_cases(source, &|o| o == "CONFIG_ON");
        let want: Vec<(String, String)> =
            [("on_suite", "one"), ("on_suite", "two"), ("plain", "four")]
                .iter()
                .map(|(s, n)| (s.to_string(), n.to_string()))
                .collect();
        assert_eq!(got, want);
    }
}
