//! Judging a guest run, the results file, and the exit codes `git bisect run`
//! understands: 0 good, 1 bad, 125 cannot test this commit, never ≥ 128.

use std::path::Path;

use anyhow::{Context, Result};
use kcontainer_init::ExitReport;
use serde::Serialize;

use crate::ktap::{Ktap, Status};
use crate::splat::Splat;

/// Context attached to errors that mean "this commit cannot be tested"
/// (the series does not apply, the kernel does not configure or build).
#[derive(Debug)]
pub struct Untestable;

impl std::fmt::Display for Untestable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the kernel could not be prepared at this commit")
    }
}

/// Context attached to errors that mean a check's tools did not run as they
/// should (`cargo xtask check`: checkpatch writing to stderr, git or make not
/// starting), so there is no verdict.
#[derive(Debug)]
pub struct ToolFailure;

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the check could not run")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reasons", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail(Vec<String>),
}

pub const EXIT_PASS: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_UNTESTABLE: u8 = 125;

impl Verdict {
    /// Adds the reasons another judge found; any reason makes a failure.
    pub fn extend(&mut self, more: Vec<String>) {
        if more.is_empty() {
            return;
        }
        match self {
            Verdict::Pass => *self = Verdict::Fail(more),
            Verdict::Fail(reasons) => reasons.extend(more),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Pass => EXIT_PASS,
            Verdict::Fail(_) => EXIT_FAIL,
        }
    }

    /// Why it failed; empty if it passed.
    pub fn reasons(&self) -> &[String] {
        match self {
            Verdict::Pass => &[],
            Verdict::Fail(reasons) => reasons,
        }
    }

    /// Prints each reason as `xtask: FAIL: ...`; true if there was one.
    pub fn print_failures(&self) -> bool {
        for r in self.reasons() {
            eprintln!("xtask: FAIL: {r}");
        }
        !self.reasons().is_empty()
    }
}

/// Exit code for an error that ended the xtask before a verdict.
pub fn error_exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Untestable>().is_some() || err.downcast_ref::<ToolFailure>().is_some() {
        EXIT_UNTESTABLE
    } else {
        EXIT_FAIL
    }
}

/// Exit code of `cargo xtask run -- CMD`: the command's own status when the
/// guest ended cleanly, else 1. Kept below 128 except for the command's
/// own 128+signal, which is what a shell would report.
pub fn command_exit_code(verdict: &Verdict, report: Option<ExitReport>) -> u8 {
    match (verdict, report) {
        (Verdict::Pass, Some(r)) => r.status.clamp(0, 255) as u8,
        (Verdict::Pass, None) => EXIT_PASS,
        (Verdict::Fail(_), Some(r)) if r.status != 0 => r.status.clamp(1, 255) as u8,
        (Verdict::Fail(_), _) => EXIT_FAIL,
    }
}

/// How the guest ended, as the host saw it.
#[derive(Debug, Clone, Serialize)]
pub struct GuestEnd {
    pub qemu_status: Option<i32>,
    pub timed_out: bool,
    pub timeout_seconds: u64,
    pub init_error: Option<String>,
    /// Taint bits the run may have (TAINT_TEST once KUnit ran, see kunit.rs).
    pub allowed_taint: u64,
    #[serde(skip)]
    pub report: Option<ExitReport>,
}

/// Everything that ended the run badly, in the order a reader wants it.
/// `expected` are the test names the suite was asked to run (empty: none
/// expected, e.g. `cargo xtask run -- CMD`); `judge_status` says whether the
/// job's non-zero exit status is a failure by itself.
pub fn judge(
    end: &GuestEnd,
    ktap: Option<&Ktap>,
    expected: &[String],
    splats: &[Splat],
    judge_status: bool,
) -> Verdict {
    let mut reasons = Vec::new();
    if end.timed_out {
        reasons.push(format!(
            "watchdog: the guest did not finish within {} s and was killed",
            end.timeout_seconds
        ));
    }
    if let Some(msg) = &end.init_error {
        reasons.push(format!("/init could not run the job: {msg}"));
    }
    for s in splats {
        reasons.push(format!(
            "kernel {} at console line {}: {}",
            s.kinds.join("+"),
            s.line,
            s.excerpt.first().map(String::as_str).unwrap_or("")
        ));
    }
    match end.report {
        None if !end.timed_out => reasons.push(format!(
            "the guest died before /init reported (QEMU exit status {}): kernel crash or reboot",
            end.qemu_status
                .map_or("none".to_string(), |s| s.to_string())
        )),
        None => {}
        Some(r) => {
            if end.qemu_status != Some(r.qemu_status()) {
                reasons.push(format!(
                    "QEMU exit status {:?} does not match /init's report (status {} → expected {})",
                    end.qemu_status,
                    r.status,
                    r.qemu_status()
                ));
            }
            if r.tainted & !end.allowed_taint != 0 {
                reasons.push(format!(
                    "the kernel is tainted (/proc/sys/kernel/tainted = {})",
                    r.tainted
                ));
            }
            if judge_status && r.status != 0 {
                reasons.push(format!("the job exited with status {}", r.status));
            }
        }
    }
    if let Some(ktap) = ktap {
        if !ktap.version {
            reasons.push("no KTAP header from the suite".to_string());
        }
        for r in &ktap.results {
            if r.status == Status::Fail {
                reasons.push(format!("test failed: {}", r.name));
            }
            // A program's own KTAP (a kselftest): a failed case fails the run even
            // if the program's exit status said otherwise.
            for sub in r.subtests.iter().filter(|s| s.status == Status::Fail) {
                reasons.push(format!("test failed: {}: {}", r.name, sub.name));
            }
        }
        for name in expected {
            if !ktap.results.iter().any(|r| &r.name == name) {
                reasons.push(format!("test crashed (never reported): {name}"));
            }
        }
        if let Some(plan) = ktap.plan {
            if plan as usize != expected.len() {
                reasons.push(format!(
                    "KTAP plan 1..{plan} but {} tests were expected",
                    expected.len()
                ));
            }
        }
    }
    if reasons.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(reasons)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    /// Adds another set of counts (the KUnit cases to the uAPI tests).
    pub fn add(&mut self, other: Summary) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    /// Counts the tests; expected tests that never reported count as failed. A test
    /// with nested results (a kselftest program) counts as its cases, or as one
    /// failure when it failed with no failed case (it crashed or timed out).
    pub fn of(ktap: &Ktap, expected: &[String]) -> Self {
        let mut s = Summary::default();
        for r in &ktap.results {
            let cases = Summary::of_results(&r.subtests);
            if r.subtests.is_empty() || (r.status == Status::Fail && cases.failed == 0) {
                s.count(r.status);
            }
            s.add(cases);
        }
        s.failed += expected
            .iter()
            .filter(|n| !ktap.results.iter().any(|r| &r.name == *n))
            .count();
        s
    }

    fn count(&mut self, status: Status) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip => self.skipped += 1,
        }
    }

    fn of_results(results: &[crate::ktap::TestResult]) -> Self {
        let mut s = Summary::default();
        for r in results {
            s.count(r.status);
        }
        s
    }

    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding results")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap;

    fn end(status: i32, tainted: u64) -> GuestEnd {
        let report = ExitReport { status, tainted };
        GuestEnd {
            qemu_status: Some(report.qemu_status()),
            timed_out: false,
            timeout_seconds: 60,
            init_error: None,
            allowed_taint: 0,
            report: Some(report),
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn clean_run_passes_with_exit_0() {
        let k = ktap::parse("KTAP version 1\n1..2\nok 1 a\nok 2 b # SKIP ENOSYS\n");
        let v = judge(&end(0, 0), Some(&k), &names(&["a", "b"]), &[], true);
        assert_eq!(v, Verdict::Pass);
        assert_eq!(v.exit_code(), 0);
        assert_eq!(
            Summary::of(&k, &names(&["a", "b"])).line(),
            "1 passed, 0 failed, 1 skipped"
        );
    }

    #[test]
    fn failed_and_crashed_tests_exit_1() {
        let k = ktap::parse("KTAP version 1\n1..3\nok 1 a\nnot ok 2 b\n");
        let expected = names(&["a", "b", "c"]);
        let v = judge(&end(1, 0), Some(&k), &expected, &[], true);
        let Verdict::Fail(reasons) = &v else {
            panic!("expected a failure")
        };
        assert!(reasons.contains(&"test failed: b".to_string()));
        assert!(reasons.contains(&"test crashed (never reported): c".to_string()));
        assert_eq!(v.exit_code(), 1);
        assert_eq!(
            Summary::of(&k, &expected).line(),
            "1 passed, 2 failed, 0 skipped"
        );
    }

    #[test]
    fn kselftest_programs_count_as_their_cases() {
        // What uapi-tests prints for two kselftest programs: one whose case failed
        // although it exited 0, one that timed out after its first case.
        let text = "KTAP version 1\n1..3\nok 1 a\n    TAP version 13\n    1..3\n    ok 1 global.x\n    not ok 2 global.y\n    ok 3 global.z # SKIP ENOSYS\nok 2 kselftest.c.p\n    TAP version 13\n    1..2\n    ok 1 global.u\n# timeout after 45s\nnot ok 3 kselftest.c.q\n";
        let k = ktap::parse(text);
        let expected = names(&["a", "kselftest.c.p", "kselftest.c.q"]);
        let Verdict::Fail(reasons) = judge(&end(1, 0), Some(&k), &expected, &[], true) else {
            panic!("expected a failure")
        };
        assert_eq!(
            reasons,
            [
                "the job exited with status 1",
                "test failed: kselftest.c.p: global.y",
                "test failed: kselftest.c.q",
            ]
        );
        // a; x, z (skip), y (fail); u and q's crash.
        assert_eq!(
            Summary::of(&k, &expected).line(),
            "3 passed, 2 failed, 1 skipped"
        );
    }

    #[test]
    fn taint_splat_hang_and_crash_fail() {
        let k = ktap::parse("KTAP version 1\n1..1\nok 1 a\n");
        let expected = names(&["a"]);
        assert!(
            matches!(judge(&end(0, 512), Some(&k), &expected, &[], true), Verdict::Fail(r) if r[0].contains("tainted"))
        );
        // KUnit's TAINT_TEST is allowed once KUnit ran, nothing else.
        let mut kunit_ran = end(0, crate::kunit::TAINT_TEST);
        kunit_ran.allowed_taint = crate::kunit::TAINT_TEST;
        assert_eq!(
            judge(&kunit_ran, Some(&k), &expected, &[], true),
            Verdict::Pass
        );
        kunit_ran.report = Some(ExitReport {
            status: 0,
            tainted: crate::kunit::TAINT_TEST | 512,
        });
        assert!(
            matches!(judge(&kunit_ran, Some(&k), &expected, &[], true), Verdict::Fail(r) if r[0].contains("tainted"))
        );
        let splat = Splat {
            line: 7,
            kinds: vec!["WARNING".into()],
            excerpt: vec!["[ 1.0] WARNING: x".into()],
        };
        assert!(
            matches!(judge(&end(0, 0), Some(&k), &expected, &[splat], true), Verdict::Fail(r) if r[0].contains("WARNING"))
        );
        let hang = GuestEnd {
            qemu_status: None,
            timed_out: true,
            timeout_seconds: 5,
            init_error: None,
            allowed_taint: 0,
            report: None,
        };
        assert!(
            matches!(judge(&hang, None, &[], &[], false), Verdict::Fail(r) if r.len() == 1 && r[0].starts_with("watchdog"))
        );
        let crash = GuestEnd {
            qemu_status: Some(0),
            timed_out: false,
            timeout_seconds: 5,
            init_error: None,
            allowed_taint: 0,
            report: None,
        };
        let v = judge(&crash, None, &[], &[], false);
        assert!(matches!(&v, Verdict::Fail(r) if r[0].contains("died before /init reported")));
        assert_eq!(command_exit_code(&v, None), 1);
    }

    #[test]
    fn more_reasons_make_a_failure() {
        let mut v = Verdict::Pass;
        v.extend(Vec::new());
        assert_eq!(v, Verdict::Pass);
        v.extend(vec!["a".into()]);
        v.extend(vec!["b".into()]);
        assert_eq!(v, Verdict::Fail(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn qemu_status_must_match_the_marker() {
        let mut e = end(0, 0);
        e.qemu_status = Some(0);
        assert!(
            matches!(judge(&e, None, &[], &[], false), Verdict::Fail(r) if r[0].contains("does not match"))
        );
    }

    #[test]
    fn exit_codes_never_reach_128_for_test() {
        let untestable = anyhow::anyhow!("boom").context(Untestable);
        assert_eq!(error_exit_code(&untestable), 125);
        let tools = anyhow::anyhow!("boom").context(ToolFailure);
        assert_eq!(error_exit_code(&tools), 125);
        assert_eq!(error_exit_code(&anyhow::anyhow!("other")), 1);
        assert_eq!(Verdict::Fail(vec![]).exit_code(), 1);
    }

    #[test]
    fn command_status_passes_through() {
        assert_eq!(
            command_exit_code(
                &Verdict::Pass,
                Some(ExitReport {
                    status: 3,
                    tainted: 0
                })
            ),
            3
        );
        let fail = Verdict::Fail(vec!["x".into()]);
        assert_eq!(
            command_exit_code(
                &fail,
                Some(ExitReport {
                    status: 0,
                    tainted: 1
                })
            ),
            1
        );
    }
}
