//! `--html`: a self-contained page (inline SVG, no scripts, no external assets) with the
//! report, latency histograms and reputation over time.

use std::fmt::Write as _;

use crate::report::{Percentiles, ReputationSample};
use crate::sim::SimOutcome;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const MARGIN: f64 = 40.0;
/// Bars per histogram.
const BUCKETS: usize = 24;

/// The page for a finished run.
pub fn page(outcome: &SimOutcome) -> String {
    let r = &outcome.report;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cairn-testnet sim: {} nodes, {} jobs</title>\
         <style>body{{font-family:sans-serif;max-width:720px;margin:2em auto;color:#222}}\
         pre{{background:#f4f4f4;padding:1em;overflow-x:auto}}svg{{background:#fafafa;border:1px solid #ddd}}</style>\
         </head><body><h1>cairn-testnet sim</h1><pre>{}</pre>",
        r.nodes,
        r.jobs,
        escape(&r.human())
    );
    s.push_str("<h2>Auction latency (submit to award)</h2>");
    s.push_str(&histogram(&outcome.auction_ms, "#4a7ab5"));
    s.push_str("<h2>End-to-end latency (submit to accepted)</h2>");
    s.push_str(&histogram(&outcome.end_to_end_ms, "#3c9a5f"));
    s.push_str("<h2>Mean reputation over time (node 0's table)</h2>");
    s.push_str(&reputation_chart(&outcome.reputation));
    s.push_str("</body></html>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn svg_open(s: &mut String) {
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-size=\"11\">"
    );
}

/// A histogram of latencies in ms: `BUCKETS` bars from 0 to the 99th percentile, then one bar
/// for everything above it (so one outlier does not squeeze the rest into the first bar), with
/// the median and the 99th percentile marked.
pub fn histogram(values: &[u64], colour: &str) -> String {
    let mut s = String::new();
    svg_open(&mut s);
    let p = Percentiles::of(values);
    let span = p.p99.max(1);
    let width = span.div_ceil(BUCKETS as u64).max(1);
    let mut counts = [0usize; BUCKETS + 1];
    for v in values {
        let b = if *v > span {
            BUCKETS
        } else {
            usize::try_from(v / width)
                .unwrap_or(BUCKETS - 1)
                .min(BUCKETS - 1)
        };
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let (plot_w, plot_h) = (WIDTH - 2.0 * MARGIN, HEIGHT - 2.0 * MARGIN);
    // The overflow bar stands apart, after a gap of one bar.
    let bar_w = plot_w / (BUCKETS + 2) as f64;
    let x_of =
        |ms: u64| MARGIN + bar_w * BUCKETS as f64 * ms as f64 / (width * BUCKETS as u64) as f64;
    for (i, &c) in counts.iter().enumerate() {
        let h = plot_h * c as f64 / top as f64;
        let (x, title) = if i < BUCKETS {
            let title = format!(
                "{}-{} ms: {c} jobs",
                i as u64 * width,
                (i as u64 + 1) * width
            );
            (MARGIN + i as f64 * bar_w, title)
        } else {
            let title = format!("above the 99th percentile, up to {} ms: {c} jobs", p.max);
            (MARGIN + (BUCKETS + 1) as f64 * bar_w, title)
        };
        let fill = if i < BUCKETS { colour } else { "#999" };
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{fill}\"><title>{title}</title></rect>",
            HEIGHT - MARGIN - h,
            bar_w - 1.0,
        );
    }
    if !values.is_empty() {
        for (label, ms, dy) in [("p50", p.p50, 0.0), ("p99", p.p99, 12.0)] {
            let x = x_of(ms);
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#222\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{label} {ms} ms</text>",
                HEIGHT - MARGIN,
                MARGIN - 4.0,
                x + 3.0,
                MARGIN + 8.0 + dy
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">&gt; p99</text>",
            MARGIN + (BUCKETS as f64 + 1.5) * bar_w,
            HEIGHT - MARGIN + 14.0
        );
    }
    let x_ticks: Vec<(f64, String)> = (0..=4)
        .map(|k| {
            let ms = width * BUCKETS as u64 * k / 4;
            (x_of(ms), format!("{ms} ms"))
        })
        .collect();
    let y_ticks = [(0.0, "0".to_owned()), (1.0, format!("{top} jobs"))];
    axes(&mut s, &x_ticks, &y_ticks);
    if values.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\">no data</text>",
            WIDTH / 2.0 - 20.0,
            HEIGHT / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

/// The two axes, with labels at `x_ticks` (x positions) and `y_ticks` (fractions of the
/// plot's height from the bottom).
fn axes(s: &mut String, x_ticks: &[(f64, String)], y_ticks: &[(f64, String)]) {
    let (x0, y0, x1, y1) = (MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, MARGIN);
    let _ = write!(
        s,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#333\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"#333\"/>"
    );
    for (x, label) in x_ticks {
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            y0 + 4.0,
            y0 + 14.0
        );
    }
    for (fraction, label) in y_ticks {
        let y = y0 - (y0 - y1) * fraction;
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{x0}\" y2=\"{y:.1}\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            x0 - 4.0,
            x0 - 6.0,
            y + 4.0
        );
    }
}

/// Honest and cheater mean reputation against time, on an axis from the lowest to the highest
/// mean (0 always in range), labelled at its bottom, its top and 0.
fn reputation_chart(samples: &[ReputationSample]) -> String {
    let mut s = String::new();
    svg_open(&mut s);
    let t_max = samples.last().map_or(1.0, |x| x.at_secs).max(1e-3);
    let values = samples
        .iter()
        .flat_map(|x| std::iter::once(x.means.honest_mean).chain(x.means.cheater_mean));
    let (lo, hi) = values.fold((0.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (plot_w, plot_h) = (WIDTH - 2.0 * MARGIN, HEIGHT - 2.0 * MARGIN);
    let fraction = |v: f64| (v - lo) / (hi - lo).max(1e-9);
    let point = |t: f64, v: f64| {
        let x = MARGIN + plot_w * t / t_max;
        let y = HEIGHT - MARGIN - plot_h * fraction(v);
        format!("{x:.1},{y:.1}")
    };
    let honest: Vec<String> = samples
        .iter()
        .map(|x| point(x.at_secs, x.means.honest_mean))
        .collect();
    let cheater: Vec<String> = samples
        .iter()
        .filter_map(|x| Some(point(x.at_secs, x.means.cheater_mean?)))
        .collect();
    if lo < 0.0 {
        let y = HEIGHT - MARGIN - plot_h * fraction(0.0);
        let _ = write!(
            s,
            "<line x1=\"{MARGIN}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>",
            WIDTH - MARGIN
        );
    }
    for (line, colour, label, dy) in [
        (honest, "#3c9a5f", "honest", 0.0),
        (cheater, "#c0392b", "cheaters", 14.0),
    ] {
        if line.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{label}</text>",
            line.join(" "),
            WIDTH - MARGIN - 60.0,
            MARGIN + dy
        );
    }
    let x_ticks: Vec<(f64, String)> = (0..=4)
        .map(|k| {
            let t = t_max * f64::from(k) / 4.0;
            (MARGIN + plot_w * t / t_max, format!("{t:.1} s"))
        })
        .collect();
    let mut y_ticks = vec![(0.0, format!("{lo:.0}")), (1.0, format!("{hi:.0}"))];
    if lo < 0.0 {
        y_ticks.push((fraction(0.0), "0".to_owned()));
    }
    axes(&mut s, &x_ticks, &y_ticks);
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_has_one_bar_per_bucket_and_counts_every_value() {
        let svg = histogram(&[1, 2, 3, 100, 240], "#000");
        assert_eq!(svg.matches("<rect").count(), BUCKETS + 1);
        let total: usize = svg
            .split(" jobs</title>")
            .filter_map(|p| p.rsplit(": ").next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(total, 5);
        assert!(!svg.contains("http://") || svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    }

    /// Heights of the histogram's bars, in order.
    fn bar_heights(svg: &str) -> Vec<f64> {
        svg.split("height=\"")
            .skip(2) // the svg element's own height
            .filter_map(|p| p.split('"').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn one_outlier_does_not_flatten_the_histogram_and_percentiles_are_marked() {
        let mut values: Vec<u64> = (1..=200).collect();
        values.push(1_000_000);
        let svg = histogram(&values, "#000");
        let heights = bar_heights(&svg);
        assert_eq!(heights.len(), BUCKETS + 1);
        // The 200 ordinary values spread over the bars, not all in the first one.
        let used = heights[..BUCKETS].iter().filter(|h| **h > 0.0).count();
        assert!(used >= BUCKETS - 1, "{heights:?}");
        assert!(
            svg.contains("above the 99th percentile, up to 1000000 ms: 2 jobs"),
            "{svg}"
        );
        assert!(
            svg.contains("p50 101 ms") && svg.contains("p99 199 ms"),
            "{svg}"
        );
    }

    #[test]
    fn the_reputation_axis_puts_its_minimum_at_the_bottom_and_marks_zero() {
        use crate::report::ReputationMeans;
        let sample = |at_secs, honest_mean, cheater_mean| ReputationSample {
            at_secs,
            means: ReputationMeans {
                honest_mean,
                cheater_mean: Some(cheater_mean),
            },
        };
        let svg = reputation_chart(&[sample(0.0, 0.0, 0.0), sample(5.0, 39.0, -250.0)]);
        let label_y = |text: &str| -> f64 {
            let end = svg.find(&format!(">{text}</text>")).unwrap();
            let before = &svg[..end];
            let y = before.rsplit("y=\"").next().unwrap();
            y.split('"').next().unwrap().parse().unwrap()
        };
        let (bottom, top, zero) = (label_y("-250"), label_y("39"), label_y("0"));
        assert!(bottom > HEIGHT - MARGIN, "minimum at the bottom: {bottom}");
        assert!(top < MARGIN + 10.0, "maximum at the top: {top}");
        assert!(zero > top && zero < bottom, "0 between them: {zero}");
    }
}
