//! A small SVG line chart of convergence time against the number of agents, written
//! by hand: one colour per kind of write, p50 dotted, p90 solid and max dashed,
//! targets in grey.

use std::fmt::Write as _;

use super::convergence::{Kind, Point};

pub(super) const WIDTH: f64 = 760.0;
pub(super) const HEIGHT: f64 = 440.0;
pub(super) const LEFT: f64 = 70.0;
const RIGHT: f64 = 210.0;
pub(super) const TOP: f64 = 40.0;
pub(super) const BOTTOM: f64 = 50.0;

/// A horizontal reference line: (value in ms, label).
pub type Reference<'a> = (f64, &'a str);

/// The chart of `points`, with `references` (targets) as horizontal lines.
pub fn convergence_chart(points: &[Point], references: &[Reference<'_>]) -> String {
    let mut sizes: Vec<usize> = points.iter().map(|p| p.n).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let highest = points
        .iter()
        .filter_map(|p| p.summary.map(|s| s.max))
        .chain(references.iter().map(|r| r.0))
        .fold(0.0, f64::max);
    // Headroom above the highest line, so its label stays clear of the title.
    let (y_step, y_top) = nice_axis(highest * 1.08);
    let x_top = sizes.last().copied().unwrap_or(1).max(1) as f64 * 1.1;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: f64| LEFT + n / x_top * plot_w;
    let y = |ms: f64| TOP + plot_h - ms / y_top * plot_h;

    let mut svg = open(
        "c19: time until every agent reads a write",
        LEFT + plot_w / 2.0,
    );
    y_grid(&mut svg, (LEFT, LEFT + plot_w), &y, y_step, y_top);
    // x axis: one tick per measured cluster size.
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" x2="{right:.1}" y1="{bottom:.1}" y2="{bottom:.1}" stroke="black"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom:.1}" stroke="black"/>"#,
        right = LEFT + plot_w,
        bottom = TOP + plot_h,
    );
    for &n in &sizes {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{n}</text>"#,
            x(n as f64),
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">agents (N)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0
    );
    reference_lines(&mut svg, (LEFT, LEFT + plot_w), &y, references);
    // Series and legend.
    let mut legend_y = TOP + 10.0;
    for kind in Kind::ALL {
        let colour = colour(kind);
        for (stat, dash) in [
            ("p50", r#" stroke-dasharray="1,3""#),
            ("p90", ""),
            ("max", r#" stroke-dasharray="6,4""#),
        ] {
            let mut series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.kind == kind)
                .filter_map(|p| {
                    let s = p.summary?;
                    let ms = match stat {
                        "p50" => s.p50,
                        "p90" => s.p90,
                        _ => s.max,
                    };
                    Some((p.n as f64, ms))
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            series.sort_by(|a, b| a.0.total_cmp(&b.0));
            let line: Vec<String> = series
                .iter()
                .map(|&(n, ms)| format!("{:.1},{:.1}", x(n), y(ms)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
                line.join(" ")
            );
            for &(n, ms) in &series {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{} {stat}, N={n}: {}</title></circle>"#,
                    x(n),
                    y(ms),
                    kind.name(),
                    format_ms(ms)
                );
            }
            let lx = WIDTH - RIGHT + 20.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" x2="{:.1}" y1="{legend_y:.1}" y2="{legend_y:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{} {stat}</text>"#,
                lx + 30.0,
                lx + 38.0,
                legend_y + 4.0,
                kind.name()
            );
            legend_y += 20.0;
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::New => "#1f77b4",
        Kind::Overwrite => "#d62728",
        Kind::Delete => "#2ca02c",
    }
}

/// The start of a chart: the `svg` element, a white ground and `title`, centred at `x`.
pub(super) fn open(title: &str, x: f64) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{x}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        escape(title)
    );
    svg
}

/// Grid lines with their labels every `step` ms up to `top`, across `(left, right)`.
pub(super) fn y_grid(
    svg: &mut String,
    (left, right): (f64, f64),
    y: &dyn Fn(f64) -> f64,
    step: f64,
    top: f64,
) {
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{right:.1}" y1="{at:.1}" y2="{at:.1}" stroke="#e0e0e0"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="end">{label}</text>"##,
            at = y(tick),
            lx = left - 6.0,
            ly = y(tick) + 4.0,
            label = format_ms(tick)
        );
        tick += step;
    }
}

/// Grey dotted lines at `references` (ms, label), across `(left, right)`.
pub(super) fn reference_lines(
    svg: &mut String,
    (left, right): (f64, f64),
    y: &dyn Fn(f64) -> f64,
    references: &[Reference<'_>],
) {
    for &(value, label) in references {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{right:.1}" y1="{at:.1}" y2="{at:.1}" stroke="#888" stroke-dasharray="2,4"/><text x="{lx:.1}" y="{ly:.1}" fill="#666">{text}</text>"##,
            at = y(value),
            lx = left + 4.0,
            ly = y(value) - 4.0,
            text = escape(label)
        );
    }
}

/// A tick step of 1, 2 or 5 times a power of ten giving about five ticks up to
/// `highest`, and the top of the axis (a multiple of the step).
pub(super) fn nice_axis(highest: f64) -> (f64, f64) {
    let highest = if highest > 0.0 { highest } else { 1.0 };
    let raw = highest / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * magnitude);
    (step, (highest / step).ceil() * step)
}

pub(super) fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Summary;

    fn point(n: usize, kind: Kind, p90: f64, max: f64) -> Point {
        let summary = Summary {
            count: 20,
            p50: p90 / 2.0,
            p90,
            p99: max,
            max,
        };
        Point {
            n,
            kind,
            summary: Some(summary),
            timeouts: 0,
        }
    }

    #[test]
    fn axes_get_round_steps() {
        assert_eq!(nice_axis(1834.0), (500.0, 2000.0));
        assert_eq!(nice_axis(600.0), (200.0, 600.0));
        assert_eq!(nice_axis(0.0), (0.2, 1.0));
    }

    #[test]
    fn draws_one_line_per_kind_and_statistic() {
        // 3 kinds × (p50, p90, max) over 2 cluster sizes.
        let points: Vec<Point> = [10, 30]
            .into_iter()
            .flat_map(|n| Kind::ALL.map(|kind| point(n, kind, 400.0 + n as f64, 900.0 + n as f64)))
            .collect();
        let svg = convergence_chart(&points, &[(600.0, "p90 target <10 agents>")]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 9);
        assert_eq!(svg.matches("<circle").count(), 18);
        assert!(svg.contains("p90 target &lt;10 agents&gt;"));
        assert!(svg.contains(">overwrite max<"));
        assert!(svg.contains(">30</text>"));
        // The highest point (930 ms, plus headroom: a 1.5 s axis) lies inside the plot.
        let top_y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - 930.0 / 1500.0);
        assert!(svg.contains(&format!("cy=\"{top_y:.1}\"")), "{svg}");
    }

    #[test]
    fn an_empty_run_still_draws_axes() {
        let svg = convergence_chart(&[], &[]);
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert!(svg.contains("agents (N)"));
    }
}
