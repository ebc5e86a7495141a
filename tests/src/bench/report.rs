//! The results of a run: figures with their targets, rendered as a terminal table,
//! JSON and markdown.

use std::{fmt::Write as _, time::Duration};

use serde_json::{Value, json};

use super::{convergence::Point, machine::Machine};

/// The unit of a figure, which also decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Requests per second.
    ReqPerSec,
    /// Bytes (printed in KB/MB/GB of 1000).
    Bytes,
    /// Bytes per key.
    BytesPerKey,
    /// Events per second.
    PerSec,
    /// A plain number (messages per change, a ratio).
    Count,
}

impl Unit {
    /// The unit's name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ms => "ms",
            Self::ReqPerSec => "req/s",
            Self::Bytes => "bytes",
            Self::BytesPerKey => "bytes/key",
            Self::PerSec => "1/s",
            Self::Count => "count",
        }
    }

    /// `value` in this unit, for humans.
    pub fn format(self, value: f64) -> String {
        match self {
            Self::Ms if value >= 1000.0 => format!("{:.2} s", value / 1000.0),
            Self::Ms if value >= 10.0 => format!("{value:.0} ms"),
            Self::Ms => format!("{value:.2} ms"),
            Self::ReqPerSec if value >= 1000.0 => format!("{:.1}k req/s", value / 1000.0),
            Self::ReqPerSec => format!("{value:.0} req/s"),
            Self::Bytes if value >= 1e9 => format!("{:.2} GB", value / 1e9),
            Self::Bytes if value >= 1e6 => format!("{:.2} MB", value / 1e6),
            Self::Bytes if value >= 1e3 => format!("{:.1} KB", value / 1e3),
            Self::Bytes => format!("{value:.0} B"),
            Self::BytesPerKey => format!("{value:.0} B/key"),
            Self::PerSec => format!("{value:.2} /s"),
            Self::Count if value >= 100.0 => format!("{value:.0}"),
            Self::Count => format!("{value:.2}"),
        }
    }
}

/// One simulated cluster size's new-key times: (agents, p50 ms, p99 ms).
pub type Simulated = (usize, f64, f64);

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// The figure must be at most the target.
    AtMost,
    /// The figure must be below the target.
    Below,
    /// The figure must be at least the target.
    AtLeast,
}

/// The target a figure is measured against, and the issue that set it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The comparison.
    pub cmp: Cmp,
    /// The bound, in the figure's unit.
    pub value: f64,
    /// Where the target comes from (`issue 4`).
    pub source: &'static str,
}

impl Target {
    /// A target the figure must not exceed.
    pub fn at_most(value: f64, source: &'static str) -> Self {
        Self {
            cmp: Cmp::AtMost,
            value,
            source,
        }
    }

    /// A target the figure must stay below.
    pub fn below(value: f64, source: &'static str) -> Self {
        Self {
            cmp: Cmp::Below,
            value,
            source,
        }
    }

    /// A target the figure must reach.
    pub fn at_least(value: f64, source: &'static str) -> Self {
        Self {
            cmp: Cmp::AtLeast,
            value,
            source,
        }
    }

    /// Whether `value` meets the target.
    pub fn met_by(&self, value: f64) -> bool {
        match self.cmp {
            Cmp::AtMost => value <= self.value,
            Cmp::Below => value < self.value,
            Cmp::AtLeast => value >= self.value,
        }
    }

    fn symbol(&self) -> &'static str {
        match self.cmp {
            Cmp::AtMost => "≤",
            Cmp::Below => "<",
            Cmp::AtLeast => "≥",
        }
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The scenario that measured it (`convergence N=10`).
    pub scenario: String,
    /// What it is (`new key p90`).
    pub name: String,
    /// The measurement; `None` when it could not be taken (the note says why).
    pub value: Option<f64>,
    /// Its unit.
    pub unit: Unit,
    /// Its target, if an issue set one.
    pub target: Option<Target>,
    /// Context: how it was measured, the 0.1 figure, why it is missing.
    pub note: String,
}

impl Figure {
    /// A figure without target or note.
    pub fn new(scenario: &str, name: &str, value: Option<f64>, unit: Unit) -> Self {
        Self {
            scenario: scenario.to_owned(),
            name: name.to_owned(),
            value,
            unit,
            target: None,
            note: String::new(),
        }
    }

    /// Sets the target.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// `MET`, `MISS`, `n/a` (not measured) or `-` (no target).
    pub fn verdict(&self) -> &'static str {
        match (self.value, &self.target) {
            (None, _) => "n/a",
            (Some(_), None) => "-",
            (Some(value), Some(target)) if target.met_by(value) => "MET",
            (Some(_), Some(_)) => "MISS",
        }
    }

    fn value_text(&self) -> String {
        self.value
            .map_or_else(|| "n/a".to_owned(), |value| self.unit.format(value))
    }

    fn target_text(&self) -> String {
        self.target.as_ref().map_or_else(String::new, |target| {
            format!(
                "{} {} ({})",
                target.symbol(),
                self.unit.format(target.value),
                target.source
            )
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "name": self.name,
            "value": self.value,
            "unit": self.unit.name(),
            "target": self.target.as_ref().map(|target| json!({
                "cmp": target.symbol(),
                "value": target.value,
                "source": target.source,
            })),
            "verdict": self.verdict(),
            "note": self.note,
        })
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Whether this was the `--quick` run.
    pub quick: bool,
    /// Where it ran.
    pub machine: Machine,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u128,
    /// How long it took.
    pub duration: Duration,
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
    /// Convergence times by cluster size, for the plot.
    pub convergence: Vec<Point>,
    /// Simulated new-key times by cluster size.
    pub simulated: Vec<Simulated>,
    /// How things were measured.
    pub notes: Vec<String>,
    /// Scenarios that failed: (scenario, message).
    pub errors: Vec<(String, String)>,
}

impl Report {
    /// One line saying where and how the figures were taken.
    pub fn header(&self) -> String {
        format!(
            "c19 benchmarks ({}): {}, {} CPUs; load generator: {}; wire bytes: {}; {:.0} s",
            if self.quick { "quick run" } else { "full run" },
            self.machine.cpu,
            self.machine.cpus,
            self.machine.load_generator,
            if self.machine.wire_bytes {
                "measured"
            } else {
                "not measured"
            },
            self.duration.as_secs_f64()
        )
    }

    /// The figures as an aligned text table.
    pub fn table(&self) -> String {
        let header = ["scenario", "figure", "value", "target", "verdict"].map(str::to_owned);
        let rows: Vec<[String; 5]> = self
            .figures
            .iter()
            .map(|figure| {
                [
                    figure.scenario.clone(),
                    figure.name.clone(),
                    figure.value_text(),
                    figure.target_text(),
                    figure.verdict().to_owned(),
                ]
            })
            .collect();
        let mut widths = header.clone().map(|cell| cell.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }

    /// The report as JSON (`report.json`).
    pub fn to_json(&self) -> Value {
        json!({
            "quick": self.quick,
            "started_unix_ms": u64::try_from(self.started_unix_ms).unwrap_or(u64::MAX),
            "duration_s": self.duration.as_secs_f64(),
            "machine": self.machine.to_json(),
            "figures": self.figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
            "convergence": self.convergence.iter().map(Point::to_json).collect::<Vec<_>>(),
            "notes": self.notes,
            "errors": self.errors.iter().map(|(scenario, message)| json!({
                "scenario": scenario,
                "message": message,
            })).collect::<Vec<_>>(),
        })
    }

    /// The report as markdown (`report.md`).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let kind = if self.quick { "quick run" } else { "full run" };
        let _ = writeln!(out, "# c19 benchmarks ({kind})\n");
        let _ = writeln!(out, "{}.\n", self.header());
        let _ = writeln!(
            out,
            "| Scenario | Figure | Value | Target | Verdict | Note |"
        );
        let _ = writeln!(out, "|---|---|---:|---|---|---|");
        for figure in &self.figures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                figure.scenario,
                figure.name,
                figure.value_text(),
                figure.target_text(),
                figure.verdict(),
                figure.note.replace('|', "\\|"),
            );
        }
        if !self.convergence.is_empty() {
            let _ = writeln!(out, "\n![convergence time against N](convergence.svg)");
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\n## How it was measured\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\n## Scenarios that failed\n");
            for (scenario, message) in &self.errors {
                let _ = writeln!(out, "- {scenario}: {message}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_comparison() {
        let figure = |value, target| Figure::new("s", "f", value, Unit::Ms).target(target);
        assert_eq!(
            figure(Some(600.0), Target::at_most(600.0, "issue 4")).verdict(),
            "MET"
        );
        assert_eq!(
            figure(Some(601.0), Target::at_most(600.0, "issue 4")).verdict(),
            "MISS"
        );
        assert_eq!(
            figure(Some(2000.0), Target::below(2000.0, "issue 4")).verdict(),
            "MISS"
        );
        assert_eq!(
            figure(Some(9e4), Target::at_least(9e4, "issue 3")).verdict(),
            "MET"
        );
        assert_eq!(
            figure(None, Target::at_least(9e4, "issue 3")).verdict(),
            "n/a"
        );
        assert_eq!(Figure::new("s", "f", Some(1.0), Unit::Ms).verdict(), "-");
    }

    #[test]
    fn values_print_in_readable_units() {
        assert_eq!(Unit::Ms.format(1834.0), "1.83 s");
        assert_eq!(Unit::Ms.format(412.4), "412 ms");
        assert_eq!(Unit::Ms.format(0.42), "0.42 ms");
        assert_eq!(Unit::ReqPerSec.format(87_123.0), "87.1k req/s");
        assert_eq!(Unit::Bytes.format(63_000_000.0), "63.00 MB");
        assert_eq!(Unit::Bytes.format(6_361_510_000.0), "6.36 GB");
        assert_eq!(Unit::Bytes.format(25_000.0), "25.0 KB");
        assert_eq!(Unit::BytesPerKey.format(212.4), "212 B/key");
    }

    #[test]
    fn figures_are_printed_next_to_their_targets() {
        let report = Report {
            simulated: Vec::new(),
            quick: true,
            machine: Machine::default(),
            started_unix_ms: 0,
            duration: Duration::from_secs(1),
            figures: vec![
                Figure::new("convergence N=10", "new key p90", Some(450.0), Unit::Ms)
                    .target(Target::at_most(600.0, "issue 4")),
                Figure::new("agent", "GET", None, Unit::ReqPerSec).note("wrk failed"),
            ],
            convergence: Vec::new(),
            notes: vec!["polled every 20 ms".into()],
            errors: vec![("memory".into(), "agent did not start".into())],
        };
        let table = report.table();
        let line = table
            .lines()
            .find(|line| line.contains("new key p90"))
            .unwrap();
        assert!(
            line.contains("450 ms") && line.contains("≤ 600 ms (issue 4)") && line.ends_with("MET")
        );
        assert!(
            table
                .lines()
                .any(|line| line.contains("GET") && line.ends_with("n/a"))
        );

        let json = report.to_json();
        assert_eq!(json["figures"][0]["value"], 450.0);
        assert_eq!(json["figures"][0]["target"]["value"], 600.0);
        assert_eq!(json["figures"][1]["value"], Value::Null);
        assert_eq!(json["errors"][0]["scenario"], "memory");

        let markdown = report.to_markdown();
        assert!(
            markdown
                .contains("| convergence N=10 | new key p90 | 450 ms | ≤ 600 ms (issue 4) | MET |")
        );
        assert!(markdown.contains("- memory: agent did not start"));
    }
}
