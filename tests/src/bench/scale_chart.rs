//! The chart of the simulator's runs (`simulation.svg`): time until a new key is on every
//! agent against the number of agents, on a logarithmic axis, simulated (p50, p99) beside
//! the real processes of the same benchmark run (p50, p90).

use std::fmt::Write as _;

use super::svg::{
    BOTTOM, HEIGHT, LEFT, TOP, WIDTH, escape, format_ms, nice_axis, open, reference_lines, y_grid,
};

/// Room on the right for the legend (its labels are longer than the other chart's).
const RIGHT: f64 = 230.0;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend.
    pub label: String,
    /// Its colour.
    pub colour: &'static str,
    /// Dashed (real processes) or solid (simulated).
    pub dashed: bool,
    /// (agents, ms).
    pub points: Vec<(f64, f64)>,
}

/// The chart of `series`, with `references` (targets: ms, label) as grey lines.
pub fn chart(series: &[Series], references: &[(f64, &str)]) -> String {
    let all = || series.iter().flat_map(|line| line.points.iter().copied());
    let highest = all()
        .map(|(_, ms)| ms)
        .chain(references.iter().map(|r| r.0))
        .fold(0.0, f64::max);
    let (y_step, y_top) = nice_axis(highest * 1.08);
    let (low, high) = all().fold((f64::MAX, 1.0f64), |(low, high), (n, _)| {
        (low.min(n), high.max(n))
    });
    let (x_low, x_high) = (
        low.min(high).max(1.0).log10().floor(),
        high.log10().ceil().max(1.0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: f64| LEFT + (n.max(1.0).log10() - x_low) / (x_high - x_low).max(1.0) * plot_w;
    let y = |ms: f64| TOP + plot_h - ms / y_top * plot_h;

    let mut svg = open(
        "c19: a new key on every agent, simulated and real",
        LEFT + plot_w / 2.0,
    );
    y_grid(&mut svg, (LEFT, LEFT + plot_w), &y, y_step, y_top);
    let bottom = TOP + plot_h;
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" x2="{:.1}" y1="{bottom:.1}" y2="{bottom:.1}" stroke="black"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom:.1}" stroke="black"/>"#,
        LEFT + plot_w
    );
    let mut decade = x_low;
    while decade <= x_high {
        let n = 10f64.powf(decade);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{n:.0}</text>"#,
            x(n),
            bottom + 18.0
        );
        decade += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">agents (N, logarithmic)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0
    );
    reference_lines(&mut svg, (LEFT, LEFT + plot_w), &y, references);
    let mut legend_y = TOP + 10.0;
    for line in series.iter().filter(|line| !line.points.is_empty()) {
        let dash = if line.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let colour = line.colour;
        let path: Vec<String> = line
            .points
            .iter()
            .map(|&(n, ms)| format!("{:.1},{:.1}", x(n), y(ms)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
            path.join(" ")
        );
        for &(n, ms) in &line.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}, N={n}: {}</title></circle>"#,
                x(n),
                y(ms),
                escape(&line.label),
                format_ms(ms)
            );
        }
        let lx = WIDTH - RIGHT + 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{:.1}" y1="{legend_y:.1}" y2="{legend_y:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 30.0,
            lx + 38.0,
            legend_y + 4.0,
            escape(&line.label)
        );
        legend_y += 20.0;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_each_series_and_its_points() {
        let svg = chart(
            &[
                Series {
                    label: "simulated p99".into(),
                    colour: "#1f77b4",
                    dashed: false,
                    points: vec![(10.0, 5.0), (100.0, 12.0), (1000.0, 30.0)],
                },
                Series {
                    label: "real p90".into(),
                    colour: "#d62728",
                    dashed: true,
                    points: vec![(10.0, 15.0), (40.0, 50.0)],
                },
            ],
            &[(500.0, "p99 target, 1,000 agents")],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("N=1000: 30 ms"), "{svg}");
        assert!(svg.contains("p99 target, 1,000 agents"));
        assert!(svg.contains(">1000</text>"), "decades on the x axis");
    }
}
