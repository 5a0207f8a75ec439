//! Long steps: the command's output goes to a log file while one status line
//! shows the elapsed time and the current stage (on a terminal it updates in
//! place; elsewhere, e.g. in CI, a line every 30 s). On failure the log's path
//! and its last lines are printed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const TAIL_LINES: usize = 40;

pub fn elapsed(start: Instant) -> String {
    let s = start.elapsed().as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// Runs `expr` (stdout and stderr merged) with its output in `log`; fails
/// with the log's last lines when the command fails.
pub fn run_logged(expr: duct::Expression, stage: &str, log: &Path, verbose: bool) -> Result<()> {
    let start = Instant::now();
    let outcome = run_captured(expr, stage, log, verbose)?;
    if !outcome.status.success() {
        eprintln!(
            "xtask: {stage} failed ({}); last lines of {}:",
            outcome.status,
            log.display()
        );
        for line in &outcome.tail {
            eprintln!("  {line}");
        }
        bail!(
            "{stage} failed ({}); full log: {}",
            outcome.status,
            log.display()
        );
    }
    eprintln!("xtask: {stage}: done in {}", elapsed(start));
    Ok(())
}

/// How a command run by [`run_captured`] ended.
pub struct Outcome {
    pub status: ExitStatus,
    /// The last lines of its output (at most [`TAIL_LINES`]).
    pub tail: Vec<String>,
}

/// Like [`run_logged`], but a failing command is an [`Outcome`] for the
/// caller to report, not an error; errors mean it could not be run.
pub fn run_captured(
    expr: duct::Expression,
    stage: &str,
    log: &Path,
    verbose: bool,
) -> Result<Outcome> {
    let start = Instant::now();
    let mut file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let reader = expr
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .with_context(|| format!("{stage}: starting the command"))?;
    let tty = std::io::stderr().is_terminal() && !verbose;
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut last_shown = Instant::now();
    let every = if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(30)
    };
    eprintln!("xtask: {stage} (log: {})", log.display());
    let mut buffered = BufReader::new(&reader);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = buffered
            .read_until(b'\n', &mut raw)
            .with_context(|| format!("{stage}: reading output"))?;
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end();
        writeln!(file, "{line}").with_context(|| format!("writing {}", log.display()))?;
        if verbose {
            eprintln!("{line}");
        } else if last_shown.elapsed() >= every {
            last_shown = Instant::now();
            let short: String = line.trim().chars().take(70).collect();
            if tty {
                eprint!("\r\x1b[K[{}] {stage}: {short}", elapsed(start));
            } else {
                eprintln!("[{}] {stage}: {short}", elapsed(start));
            }
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    let output = reader
        .try_wait()
        .with_context(|| format!("{stage}: waiting for the command"))?
        .context("command still running after its output closed")?;
    Ok(Outcome {
        status: output.status,
        tail: tail.into(),
    })
}
