//! `cargo xtask bench`: the kernel built and booted with `kc-bench`
//! (`uapi-tests/src/bench/`), which prints one `BENCH {json}` line per figure on
//! the job's channel. Prints a table, writes `bench.json` and `bench.svg` (the
//! scaling series) next to the run, and with `--compare OLD.json` the change
//! against an earlier run. Exit 0 when every benchmark ran (goals are reported,
//! not enforced), 1 when one failed or the guest crashed, hung or splatted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::guest;
use crate::image::{self, BENCH_GUEST_PATH};
use crate::report::{self, Untestable};
use crate::{build, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run only the benchmarks whose group contains one of these (lifecycle, fork,
    /// proc_containers, kill)
    pub filters: Vec<String>,
    /// A short run that only checks that each benchmark runs (what CI does)
    #[arg(long)]
    pub quick: bool,
    /// Print the change against an earlier run's bench.json
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
    /// Watchdog: kill the guest after this many seconds [default: 1800, 300 with --quick]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Guest memory in MiB (100,000 containers need more than the test's 512)
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pub memory: u32,
}

/// One figure, as kc-bench prints it (`uapi-tests/src/bench/main.rs`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Figure {
    pub group: String,
    pub name: String,
    #[serde(default)]
    pub x: Option<f64>,
    pub unit: String,
    pub container: f64,
    #[serde(default)]
    pub baseline: Option<f64>,
    #[serde(default)]
    pub ratio: Option<f64>,
    #[serde(default)]
    pub goal: Option<f64>,
    pub note: String,
}

impl Figure {
    /// What the goal is about: the ratio when there is a baseline, else the value.
    fn judged(&self) -> f64 {
        self.ratio.unwrap_or(self.container)
    }

    fn goal_met(&self) -> Option<bool> {
        self.goal.map(|g| self.judged() <= g)
    }
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Results {
    pub kernel: String,
    pub profile: String,
    pub accel: String,
    pub quick: bool,
    pub wall_seconds: f64,
    pub figures: Vec<Figure>,
    /// Benchmarks that failed, with kc-bench's message.
    pub failed: Vec<String>,
}

pub fn run(opts: &Options, args: &Args) -> Result<u8> {
    let start = std::time::Instant::now();
    if let Some(old) = &args.compare {
        // Fail before a long run, not after it.
        load(old)?;
    }
    let layout = build::kernel(opts)?;
    image::build_guest_binaries(&layout, opts.verbose).context(Untestable)?;

    let mut argv = vec![BENCH_GUEST_PATH.to_string()];
    if args.quick {
        argv.push("--quick".into());
    }
    argv.extend(args.filters.iter().cloned());
    let timeout = args.timeout.unwrap_or(if args.quick { 300 } else { 1800 });
    eprintln!(
        "xtask: booting {} with {} ({} MiB)",
        layout.bzimage().display(),
        argv.join(" "),
        args.memory
    );
    let verbose = opts.verbose;
    let (outcome, text) = guest::run_job(
        &layout,
        "bench",
        argv,
        Duration::from_secs(timeout),
        guest::JobSetup {
            memory_mib: Some(args.memory),
            ..Default::default()
        },
        |line| verbose || line.contains("kc-bench:"),
        |_| verbose,
    )?;
    let (figures, failed) = parse(&text)?;
    let mut verdict = report::judge(&outcome.end, None, &[], &outcome.splats, true);
    verdict.extend(
        failed
            .iter()
            .map(|f| format!("benchmark failed: {f}"))
            .collect(),
    );
    if figures.is_empty() {
        verdict.extend(vec!["kc-bench printed no figure".to_string()]);
    }

    let kernel = std::fs::read_to_string(layout.out().join("include/config/kernel.release"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let results = Results {
        kernel,
        profile: layout.profile.name().to_string(),
        accel: outcome.accel.to_string(),
        quick: args.quick,
        wall_seconds: start.elapsed().as_secs_f64(),
        figures,
        failed,
    };
    print!("{}", table(&results.figures));
    let json = outcome.run_dir.join("bench.json");
    report::write_json(&json, &results)?;
    let svg = outcome.run_dir.join("bench.svg");
    chart(&results.figures, &svg)?;
    if let Some(old) = &args.compare {
        print!("{}", compare(&load(old)?, &results));
    }
    guest::quote_splats(&outcome.splats, &outcome.console_log);
    verdict.print_failures();
    eprintln!("xtask: console {}", outcome.console_log.display());
    eprintln!("xtask: results {} and {}", json.display(), svg.display());
    eprintln!(
        "xtask: {} on {} in {:.1} s",
        layout.profile.name(),
        outcome.accel,
        start.elapsed().as_secs_f64()
    );
    Ok(verdict.exit_code())
}

/// The figures and the failures in kc-bench's output.
fn parse(text: &str) -> Result<(Vec<Figure>, Vec<String>)> {
    let mut figures = Vec::new();
    let mut failed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(json) = line.strip_prefix("BENCH ") {
            figures.push(
                serde_json::from_str(json)
                    .with_context(|| format!("kc-bench output line {}: {line:?}", n + 1))?,
            );
        } else if let Some(msg) = line.strip_prefix("BENCH-FAILED ") {
            failed.push(msg.to_string());
        }
    }
    Ok((figures, failed))
}

fn load(path: &Path) -> Result<Results> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--compare {}: cannot read it", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "--compare {}: not a bench.json written by `cargo xtask bench`",
            path.display()
        )
    })
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The widths of the group and case columns: their longest entries.
fn widths(figures: &[Figure]) -> (usize, usize) {
    let longest =
        |len: fn(&Figure) -> usize, min| figures.iter().map(len).max().unwrap_or(0).max(min);
    (
        longest(|f| f.group.len(), 16),
        longest(|f| f.name.len(), 15),
    )
}

/// The terminal table: the group and case columns as wide as their longest entry.
pub fn table(figures: &[Figure]) -> String {
    let (gw, cw) = widths(figures);
    let mut out = format!(
        "{:<gw$} {:<cw$} {:>10} {:>10} {:>7} {:>6} {:>4}\n",
        "group", "case", "container", "mainline", "ratio", "goal", "met"
    );
    for f in figures {
        out.push_str(&format!(
            "{:<gw$} {:<cw$} {:>10} {:>10} {:>7} {:>6} {:>4}\n",
            f.group,
            f.name,
            format!("{} {}", fmt_value(f.container), f.unit),
            f.baseline
                .map_or("-".to_string(), |b| format!("{} {}", fmt_value(b), f.unit)),
            f.ratio.map_or("-".to_string(), |r| format!("{r:.3}")),
            f.goal.map_or("-".to_string(), |g| format!("{g}")),
            match f.goal_met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            }
        ));
    }
    out
}

/// The change of each figure against `old` (the ratio, or the value without one).
pub fn compare(old: &Results, new: &Results) -> String {
    let before: BTreeMap<(&str, &str), &Figure> = old
        .figures
        .iter()
        .map(|f| ((f.group.as_str(), f.name.as_str()), f))
        .collect();
    let (gw, cw) = widths(&new.figures);
    let mut out = format!(
        "\nagainst the run of kernel {} ({}):\n{:<gw$} {:<cw$} {:>10} {:>10} {:>8}\n",
        old.kernel, old.profile, "group", "case", "before", "now", "change"
    );
    for f in &new.figures {
        let Some(o) = before.get(&(f.group.as_str(), f.name.as_str())) else {
            out.push_str(&format!(
                "{:<gw$} {:<cw$} {:>10}\n",
                f.group, f.name, "(new)"
            ));
            continue;
        };
        let (a, b) = (o.judged(), f.judged());
        out.push_str(&format!(
            "{:<gw$} {:<cw$} {:>10} {:>10} {:>+7.1}%\n",
            f.group,
            f.name,
            fmt_value(a),
            fmt_value(b),
            (b / a - 1.0) * 100.0
        ));
    }
    out
}

/// An SVG of the scaling series: /proc/containers read time against rows, and the
/// kill time against members (container and cgroup.kill), both log-log.
fn chart(figures: &[Figure], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let series = |group: &str, base: bool| -> Vec<(f64, f64)> {
        figures
            .iter()
            .filter(|f| f.group == group)
            .filter_map(|f| {
                let y = if base { f.baseline? } else { f.container };
                Some((f.x?, y))
            })
            .collect()
    };
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(500);
        let plots = [
            (
                &left,
                "/proc/containers: one read of every row",
                "rows",
                "ms",
                vec![("read", series("proc_containers", false))],
            ),
            (
                &right,
                "SIGKILL every member and wait",
                "members",
                "us",
                vec![
                    ("container_kill + container_wait", series("kill", false)),
                    ("cgroup.kill + cgroup.events", series("kill", true)),
                ],
            ),
        ];
        for (area, title, xdesc, ydesc, lines) in plots {
            let pts: Vec<(f64, f64)> = lines.iter().flat_map(|(_, p)| p.clone()).collect();
            if pts.is_empty() {
                continue;
            }
            let (xmin, xmax) = pts
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (ymin, ymax) = pts
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(
                    (xmin.max(1e-9) * 0.8..xmax * 1.25).log_scale(),
                    (ymin.max(1e-9) * 0.5..ymax * 2.0).log_scale(),
                )?;
            chart.configure_mesh().x_desc(xdesc).y_desc(ydesc).draw()?;
            for (i, (label, p)) in lines.into_iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart.draw_series(p.into_iter().map(|pt| Circle::new(pt, 3, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "\
kc-bench: noise
BENCH {\"group\":\"lifecycle\",\"name\":\"none\",\"unit\":\"us\",\"container\":110.0,\"baseline\":100.0,\"ratio\":1.1,\"goal\":1.1,\"note\":\"n\"}
BENCH {\"group\":\"proc_containers\",\"name\":\"10\",\"x\":10.0,\"unit\":\"ms\",\"container\":0.5,\"note\":\"n\"}
BENCH-FAILED kill: mkdir: EEXIST
";

    #[test]
    fn parses_figures_and_failures() {
        let (f, failed) = parse(OUT).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].ratio, Some(1.1));
        assert_eq!(f[1].x, Some(10.0));
        assert_eq!(failed, vec!["kill: mkdir: EEXIST".to_string()]);
    }

    #[test]
    fn bad_line_names_its_number() {
        let err = parse("x\nBENCH {nope").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn table_and_compare() {
        let (figures, _) = parse(OUT).unwrap();
        let t = table(&figures);
        assert!(t.contains("lifecycle        none"), "{t}");
        assert!(t.contains("1.100"), "{t}");
        let old = Results {
            kernel: "k".into(),
            profile: "default".into(),
            accel: "tcg".into(),
            quick: false,
            wall_seconds: 1.0,
            figures: figures.clone(),
            failed: vec![],
        };
        let mut newer = figures;
        newer[0].ratio = Some(1.21);
        let new = Results {
            figures: newer,
            ..old_clone(&old)
        };
        let c = compare(&old, &new);
        assert!(c.contains("+10.0%"), "{c}");
        assert!(c.contains("+0.0%"), "{c}");
    }

    fn old_clone(r: &Results) -> Results {
        Results {
            kernel: r.kernel.clone(),
            profile: r.profile.clone(),
            accel: r.accel.clone(),
            quick: r.quick,
            wall_seconds: r.wall_seconds,
            figures: r.figures.clone(),
            failed: r.failed.clone(),
        }
    }

    #[test]
    fn chart_writes_svg() {
        let (figures, _) = parse(OUT).unwrap();
        let dir = std::env::temp_dir().join(format!("kc-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.svg");
        chart(&figures, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
