//! A `cargo xtask test` run as KCIDB I/O (KernelCI's reporting schema, v5.3):
//! the checkout (the base and the series as its patchset), the build (profile,
//! config, log) and every test (the uAPI suite's KTAP results, the KUnit cases,
//! and the run as a whole: splats, taint, hangs), which is the form KernelCI's
//! database ingests from any lab (`kcidb-submit`). `--kcidb FILE` writes it and
//! validates it with the `kcidb-io` package's own schema, pinned, in the build
//! directory's Python environment.
//!
//! Log and file URLs are `file://` paths on this machine; a lab that submits
//! uploads them first and rewrites the URLs (README, "KernelCI").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::ktap::{self, Ktap};
use crate::kunit::Kunit;
use crate::layout::Layout;

/// The origin of every object: `[a-z0-9_]+`.
pub const ORIGIN: &str = "kcontainer";
/// The kcidb-io release whose schema the file is checked against (v5.3).
pub const KCIDB_IO_VERSION: &str = "141";
/// The schema version the file declares.
const SCHEMA: (u32, u32) = (5, 3);

/// What a test run knows that the file reports.
pub struct Run<'a> {
    /// The base commit (the unpatched Linux tree) and the tree's HEAD.
    pub base_commit: &'a str,
    pub head_commit: &'a str,
    /// The series' patch files, in order (without the cover letter).
    pub patches: &'a [PathBuf],
    /// "default" or "debug".
    pub profile: &'a str,
    pub config: &'a Path,
    pub build_log: &'a Path,
    /// `CONFIG_CC_VERSION_TEXT`.
    pub compiler: &'a str,
    /// The run's directory name (`20261202-231442-test`): test ids are unique by it.
    pub run_name: &'a str,
    /// Seconds since 1970 when the run started.
    pub started: u64,
    pub wall_seconds: f64,
    pub console_log: &'a Path,
    pub ktap_log: &'a Path,
    pub ktap: &'a Ktap,
    /// The uAPI tests the suite listed: one missing from the KTAP is MISS.
    pub expected: &'a [String],
    pub kunit: &'a Kunit,
    pub kunit_expected: &'a [(String, String)],
    /// Why the run as a whole failed (splat, taint, crash, hang); empty if it passed.
    pub failures: &'a [String],
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// RFC 3339, as the schema's `date-time` wants it.
fn timestamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = crate::layout::civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00")
}

fn status(s: ktap::Status) -> &'static str {
    match s {
        ktap::Status::Pass => "PASS",
        ktap::Status::Fail => "FAIL",
        ktap::Status::Skip => "SKIP",
    }
}

/// KCIDB's patchset hash: sha256 over the newline-terminated sha256 of each
/// patch, in order (`sha256sum *.patch | cut -c-64 | sha256sum`).
fn patchset_hash(patches: &[PathBuf]) -> Result<String> {
    let mut outer = Sha256::new();
    for p in patches {
        let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        outer.update(format!("{:x}\n", Sha256::digest(&text)));
    }
    Ok(if patches.is_empty() {
        String::new()
    } else {
        format!("{:x}", outer.finalize())
    })
}

/// The run as KCIDB I/O.
/// A test of the suite in KCIDB's dotted path: `kcontainer.uapi.<test>` for the Rust
/// tests, `kcontainer.kselftest.<collection>.<program>` for the C kselftests.
fn suite_path(name: &str) -> String {
    if name.starts_with("kselftest.") {
        format!("{ORIGIN}.{name}")
    } else {
        format!("{ORIGIN}.uapi.{name}")
    }
}

pub fn document(run: &Run<'_>) -> Result<Value> {
    // The same base and series are the same checkout on any machine: the tree's own
    // commit ids depend on when `git am` ran.
    let patchset_hash = patchset_hash(run.patches)?;
    let checkout_id = format!(
        "{ORIGIN}:{}+{}",
        run.base_commit.get(..12).unwrap_or(run.base_commit),
        patchset_hash.get(..16).unwrap_or("none")
    );
    let config_hash = crate::linux::sha256_file(run.config)?;
    let build_id = format!("{checkout_id}:{}:{}", run.profile, &config_hash[..16]);
    let patchset_files: Vec<Value> = run
        .patches
        .iter()
        .map(|p| {
            json!({
                "name": p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                "url": file_url(p),
            })
        })
        .collect();
    let checkout = json!({
        "id": checkout_id,
        "origin": ORIGIN,
        "tree_name": "linux-7.3",
        "git_commit_hash": run.base_commit,
        "patchset_files": patchset_files,
        "patchset_hash": patchset_hash,
        "start_time": timestamp(run.started),
        "valid": true,
        "misc": {"series_head": run.head_commit},
    });
    let build = json!({
        "id": build_id,
        "checkout_id": checkout_id,
        "origin": ORIGIN,
        "architecture": "x86_64",
        "compiler": run.compiler,
        "config_name": run.profile,
        "config_url": file_url(run.config),
        "log_url": file_url(run.build_log),
        "start_time": timestamp(run.started),
        "status": "PASS",
    });

    let test = |path: String, status: &str, log: &Path, comment: Option<String>| {
        let mut t = json!({
            "id": format!("{ORIGIN}:{}:{path}", run.run_name),
            "build_id": build_id,
            "origin": ORIGIN,
            "path": path,
            "status": status,
            "log_url": file_url(log),
            "start_time": timestamp(run.started),
        });
        if let Some(c) = comment {
            t["comment"] = Value::String(c);
        }
        t
    };
    let mut tests = Vec::new();
    // The run as a whole: what no single test reports (a splat, taint, a hang).
    tests.push(test(
        "kcontainer".into(),
        if run.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        },
        run.console_log,
        (!run.failures.is_empty()).then(|| run.failures.join("; ")),
    ));
    if let Some(t) = tests.last_mut() {
        t["duration"] = json!(run.wall_seconds);
    }
    for r in &run.ktap.results {
        tests.push(test(
            suite_path(&r.name),
            status(r.status),
            run.ktap_log,
            r.directive.clone(),
        ));
        // A kselftest program's cases (`global.create_bad_flags`: fixture.test).
        for sub in &r.subtests {
            tests.push(test(
                format!("{}.{}", suite_path(&r.name), sub.name),
                status(sub.status),
                run.ktap_log,
                sub.directive.clone(),
            ));
        }
    }
    for name in run.expected {
        if !run.ktap.results.iter().any(|r| &r.name == name) {
            tests.push(test(
                suite_path(name),
                "MISS",
                run.ktap_log,
                Some("listed by the suite, not reported".into()),
            ));
        }
    }
    for c in &run.kunit.cases {
        tests.push(test(
            format!("kcontainer.kunit.{}.{}", c.suite, c.name),
            status(c.status),
            run.console_log,
            None,
        ));
    }
    for (suite, name) in run.kunit_expected {
        if !run
            .kunit
            .cases
            .iter()
            .any(|c| &c.suite == suite && &c.name == name)
        {
            tests.push(test(
                format!("kcontainer.kunit.{suite}.{name}"),
                "MISS",
                run.console_log,
                Some("in the source, not reported at boot".into()),
            ));
        }
    }
    Ok(json!({
        "version": {"major": SCHEMA.0, "minor": SCHEMA.1},
        "checkouts": [checkout],
        "builds": [build],
        "tests": tests,
    }))
}

/// The build directory's Python environment with kcidb-io, made on first use.
pub fn python(sh: &Shell, layout: &Layout) -> Result<PathBuf> {
    let venv = layout.tools().join("python");
    let py = venv.join("bin/python3");
    let have = cmd!(
        sh,
        "{py} -c 'import importlib.metadata as m; print(m.version(\"kcidb-io\"))'"
    )
    .quiet()
    .ignore_stderr()
    .read();
    if have.is_ok_and(|v| v.trim() == KCIDB_IO_VERSION) {
        return Ok(py);
    }
    eprintln!(
        "xtask: installing kcidb-io {KCIDB_IO_VERSION} into {}",
        venv.display()
    );
    // Debian's python3 (python3-venv), not a pyenv or other one on PATH.
    crate::toolchain::ensure_debian_packages(sh, &[("python3-venv", None)])?;
    cmd!(sh, "/usr/bin/python3 -m venv {venv}")
        .run()
        .with_context(|| {
            format!(
                "creating {} failed (apt-get install python3-venv); run by hand:\n  \
                 /usr/bin/python3 -m venv {0}",
                venv.display()
            )
        })?;
    let pkg = format!("kcidb-io=={KCIDB_IO_VERSION}");
    cmd!(sh, "{py} -m pip install --quiet {pkg}")
        .run()
        .with_context(|| {
            format!(
                "installing kcidb-io failed; run by hand:\n  {} -m pip install {pkg}",
                py.display()
            )
        })?;
    Ok(py)
}

/// Checks `path` against kcidb-io's schema (the file's own version, exactly).
pub fn validate(sh: &Shell, layout: &Layout, path: &Path) -> Result<()> {
    let py = python(sh, layout)?;
    let script = "import json, sys\n\
                  from kcidb_io.schema import LATEST\n\
                  data = json.load(open(sys.argv[1]))\n\
                  LATEST.validate_exactly(data)\n";
    cmd!(sh, "{py} -c {script} {path}")
        .quiet()
        .run()
        .with_context(|| {
            format!(
                "{} does not validate against kcidb-io {KCIDB_IO_VERSION}'s schema",
                path.display()
            )
        })
}

/// Writes the run to `path` and validates it.
pub fn write(sh: &Shell, layout: &Layout, path: &Path, run: &Run<'_>) -> Result<()> {
    let doc = document(run)?;
    let text = serde_json::to_string_pretty(&doc).context("encoding the KCIDB document")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    validate(sh, layout, path)?;
    let tests = doc["tests"].as_array().map_or(0, Vec::len);
    eprintln!(
        "xtask: KCIDB {} ({tests} tests; valid against kcidb-io {KCIDB_IO_VERSION}, schema v{}.{})",
        path.display(),
        SCHEMA.0,
        SCHEMA.1
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap::TestResult;

    fn result(number: u32, name: &str, status: ktap::Status) -> TestResult {
        TestResult {
            number,
            name: name.into(),
            status,
            directive: None,
            diagnostics: vec![],
            subtests: vec![],
        }
    }

    #[test]
    fn run_maps_to_kcidb() {
        let dir = std::env::temp_dir().join(format!("kcidb-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let patch = dir.join("0001-a.patch");
        std::fs::write(&patch, "a\n").unwrap();
        let config = dir.join(".config");
        std::fs::write(&config, "CONFIG_CONTAINERS=y\n").unwrap();
        let ktap = Ktap {
            version: true,
            plan: Some(2),
            results: vec![
                result(1, "container_create_basic", ktap::Status::Pass),
                result(2, "container_kill_errors", ktap::Status::Skip),
                TestResult {
                    subtests: vec![
                        result(1, "global.create_bad_flags", ktap::Status::Pass),
                        result(2, "global.create_enametoolong", ktap::Status::Fail),
                    ],
                    ..result(
                        3,
                        "kselftest.container.container_create_test",
                        ktap::Status::Fail,
                    )
                },
            ],
            ..Ktap::default()
        };
        let kunit = Kunit {
            ran: true,
            cases: vec![crate::kunit::Case {
                suite: "kcontainer_registry".into(),
                name: "ids_increase".into(),
                status: ktap::Status::Fail,
            }],
            failed_suites: vec![],
        };
        let expected = vec![
            "container_create_basic".to_string(),
            "container_kill_errors".to_string(),
            "container_wait_nohang".to_string(),
        ];
        let run = Run {
            base_commit: "3a479d7c455eac8636fda8e0dff7ed7389d5175a",
            head_commit: "b3c39be0000000000000000000000000000000000",
            patches: std::slice::from_ref(&patch),
            profile: "debug",
            config: &config,
            build_log: &dir.join("build.log"),
            compiler: "Debian clang version 19.1.7",
            run_name: "20261202-231442-test",
            started: 1_764_717_282,
            wall_seconds: 183.2,
            console_log: &dir.join("console.log"),
            ktap_log: &dir.join("ktap.log"),
            ktap: &ktap,
            expected: &expected,
            kunit: &kunit,
            kunit_expected: &[],
            failures: &["a splat: KASAN".to_string()],
        };
        let doc = document(&run).unwrap();
        assert_eq!(doc["version"], json!({"major": 5, "minor": 3}));
        let checkout = &doc["checkouts"][0];
        // The patchset hash is the sha256 of the line "sha256(patch)\n".
        let inner = format!("{:x}\n", Sha256::digest(b"a\n"));
        let hash = format!("{:x}", Sha256::digest(inner.as_bytes()));
        assert_eq!(checkout["patchset_hash"], hash);
        assert_eq!(
            checkout["id"],
            format!("kcontainer:3a479d7c455e+{}", &hash[..16])
        );
        assert_eq!(checkout["patchset_files"][0]["name"], "0001-a.patch");
        let build = &doc["builds"][0];
        assert_eq!(build["checkout_id"], checkout["id"]);
        assert_eq!(build["config_name"], "debug");
        let tests = doc["tests"].as_array().unwrap();
        let by_path = |p: &str| tests.iter().find(|t| t["path"] == p).unwrap();
        assert_eq!(by_path("kcontainer")["status"], "FAIL");
        assert_eq!(by_path("kcontainer")["comment"], "a splat: KASAN");
        for (path, status) in [
            ("kcontainer.uapi.container_create_basic", "PASS"),
            ("kcontainer.uapi.container_kill_errors", "SKIP"),
            ("kcontainer.uapi.container_wait_nohang", "MISS"),
            ("kcontainer.kunit.kcontainer_registry.ids_increase", "FAIL"),
            (
                "kcontainer.kselftest.container.container_create_test",
                "FAIL",
            ),
            (
                "kcontainer.kselftest.container.container_create_test.global.create_bad_flags",
                "PASS",
            ),
            (
                "kcontainer.kselftest.container.container_create_test.global.create_enametoolong",
                "FAIL",
            ),
        ] {
            assert_eq!(by_path(path)["status"], status, "{path}");
        }
        assert_eq!(tests.len(), 8);
        assert!(tests.iter().all(|t| t["build_id"] == build["id"]
            && t["id"]
                .as_str()
                .unwrap()
                .starts_with("kcontainer:20261202-231442-test:")));
        assert_eq!(timestamp(0), "1970-01-01T00:00:00+00:00");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
