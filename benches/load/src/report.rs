//! The run's results: one table of absolute figures, the targets as ratios, the
//! section of BENCHMARKS.md that holds them and an SVG chart of req/s and p99 per system.

use std::{fmt::Write as _, path::Path};

use plotters::prelude::*;

/// One load phase: a system doing one operation.
#[derive(Debug, Clone)]
pub struct Run {
    pub system: &'static str,
    pub operation: &'static str,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU µs per request of the server process, and of Redis where it takes part.
    pub cpu_us: Option<f64>,
    pub redis_cpu_us: Option<f64>,
    pub failures: u64,
}

impl Run {
    fn label(&self) -> String {
        format!("{} {}", self.system, self.operation)
    }
}

/// A row of the table: what was measured against its target.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub measured: String,
    pub target: String,
    /// `None` where the row is context, not a target.
    pub met: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub header: Vec<String>,
    pub runs: Vec<Run>,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

pub const BEGIN: &str = "<!-- load harness: begin (written by `cargo run --release -p sessanger-load`) -->";
pub const END: &str = "<!-- load harness: end -->";

impl Report {
    pub fn runs_table(&self) -> String {
        let mut out = String::from(
            "| system | operation | req/s | p50 ms | p99 ms | server CPU µs/req | Redis CPU µs/req | failed |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
        );
        let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
        for run in &self.runs {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
                run.system,
                run.operation,
                run.rate,
                run.p50_ms,
                run.p99_ms,
                cell(run.cpu_us),
                cell(run.redis_cpu_us),
                run.failures
            );
        }
        out
    }

    pub fn figures_table(&self) -> String {
        let mut out = String::from("| figure | measured | target | |\n|---|---|---|---|\n");
        for f in &self.figures {
            let mark = match f.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "",
            };
            let _ = writeln!(out, "| {} | {} | {} | {} |", f.name, f.measured, f.target, mark);
        }
        out
    }

    /// The section of BENCHMARKS.md, between `BEGIN` and `END`.
    pub fn markdown(&self, chart: &str) -> String {
        let mut out = format!("{BEGIN}\n");
        for line in &self.header {
            let _ = writeln!(out, "{line}");
        }
        let _ = write!(out, "\n### Targets\n\n{}\n### Every run\n\n{}\n", self.figures_table(), self.runs_table());
        let _ = writeln!(out, "![req/s and p99 per system]({chart})\n");
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out.push_str(END);
        out
    }

    /// Draws req/s (left) and p99 (right) of every run as horizontal bars.
    pub fn chart(&self, path: &Path) -> anyhow::Result<()> {
        let labels: Vec<String> = self.runs.iter().map(Run::label).collect();
        let ours: Vec<bool> = self.runs.iter().map(|r| r.system.starts_with("sessanger")).collect();
        let height = 80 + 28 * labels.len() as u32;
        let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(620);
        let rates = self.runs.iter().map(|r| r.rate).collect();
        let p99s = self.runs.iter().map(|r| r.p99_ms).collect();
        bars(&left, "requests/s (higher is better)", &labels, &ours, rates, true)?;
        bars(&right, "p99 latency, ms (lower is better)", &labels, &ours, p99s, false)?;
        root.present()?;
        Ok(())
    }
}

/// Horizontal bars, sessanger's in blue and the baselines' in grey; `named` draws the labels.
fn bars(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    labels: &[String],
    ours: &[bool],
    values: Vec<f64>,
    named: bool,
) -> anyhow::Result<()> {
    let max = values.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max).max(1e-9) * 1.15;
    let n = labels.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(if named { 260 } else { 10 })
        .build_cartesian_2d(0.0..max, (0..n.saturating_sub(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(n)
        .x_label_formatter(&|v| if *v >= 1000.0 { format!("{:.0}k", v / 1000.0) } else { format!("{v}") })
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if named => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(
        Histogram::horizontal(&chart)
            .style_func(|i, _| {
                if matches!(i, SegmentValue::Exact(i) | SegmentValue::CenterOf(i) if ours.get(*i) == Some(&true)) {
                    BLUE.mix(0.6).filled()
                } else {
                    BLACK.mix(0.3).filled()
                }
            })
            .margin(4)
            .data(values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, v)| (i, *v))),
    )?;
    Ok(())
}

/// `existing` with its harness section replaced by `section` (appended when there is none).
pub fn splice(existing: &str, section: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{section}{}", &existing[..begin], &existing[end + END.len()..])
        }
        _ => format!("{}\n\n{section}\n", existing.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_harness_section() {
        let first = splice("# Benchmarks\n\nintro", &format!("{BEGIN}\nold\n{END}"));
        assert_eq!(first, format!("# Benchmarks\n\nintro\n\n{BEGIN}\nold\n{END}\n"));
        let second = splice(&format!("{first}after\n"), &format!("{BEGIN}\nnew\n{END}"));
        assert_eq!(second, format!("# Benchmarks\n\nintro\n\n{BEGIN}\nnew\n{END}\nafter\n"));
    }
}
