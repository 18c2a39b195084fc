//! `--html`: a self-contained page (inline SVG, no scripts, no external assets) with the
//! report, latency histograms and reputation over time.

use std::fmt::Write as _;

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
    s.push_str(&reputation_chart(outcome));
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

/// A histogram of latencies in ms: `BUCKETS` bars from 0 to the largest value.
pub fn histogram(values: &[u64], colour: &str) -> String {
    let mut s = String::new();
    svg_open(&mut s);
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let width = max.div_ceil(BUCKETS as u64).max(1);
    let mut counts = [0usize; BUCKETS];
    for v in values {
        let b = usize::try_from(v / width)
            .unwrap_or(BUCKETS - 1)
            .min(BUCKETS - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let (plot_w, plot_h) = (WIDTH - 2.0 * MARGIN, HEIGHT - 2.0 * MARGIN);
    let bar_w = plot_w / BUCKETS as f64;
    for (i, &c) in counts.iter().enumerate() {
        let h = plot_h * c as f64 / top as f64;
        let x = MARGIN + i as f64 * bar_w;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{}-{} ms: {c} jobs</title></rect>",
            HEIGHT - MARGIN - h,
            bar_w - 1.0,
            i as u64 * width,
            (i as u64 + 1) * width
        );
    }
    axes(
        &mut s,
        &format!("{} ms", width * BUCKETS as u64),
        &format!("{top} jobs"),
    );
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

fn axes(s: &mut String, x_max: &str, y_max: &str) {
    let (x0, y0, x1, y1) = (MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, MARGIN);
    let _ = write!(
        s,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#333\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"#333\"/>\
         <text x=\"{x0}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{x_max}</text>\
         <text x=\"2\" y=\"{}\">{y_max}</text>",
        y0 + 14.0,
        x1,
        y0 + 14.0,
        y1 - 6.0
    );
}

/// Honest and cheater mean reputation against time.
fn reputation_chart(outcome: &SimOutcome) -> String {
    let samples = &outcome.reputation;
    let mut s = String::new();
    svg_open(&mut s);
    let t_max = samples.last().map_or(1.0, |x| x.at_secs).max(1e-3);
    let values = samples
        .iter()
        .flat_map(|x| std::iter::once(x.means.honest_mean).chain(x.means.cheater_mean));
    let (lo, hi) = values.fold((0.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (plot_w, plot_h) = (WIDTH - 2.0 * MARGIN, HEIGHT - 2.0 * MARGIN);
    let point = |t: f64, v: f64| {
        let x = MARGIN + plot_w * t / t_max;
        let y = HEIGHT - MARGIN - plot_h * (v - lo) / (hi - lo).max(1e-9);
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
    let zero = point(0.0, 0.0);
    let _ = write!(
        s,
        "<text x=\"2\" y=\"{}\">{lo:.0}</text>",
        zero.split(',').nth(1).unwrap_or("0")
    );
    axes(&mut s, &format!("{t_max:.1} s"), &format!("{hi:.0}"));
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_has_one_bar_per_bucket_and_counts_every_value() {
        let svg = histogram(&[1, 2, 3, 100, 240], "#000");
        assert_eq!(svg.matches("<rect").count(), BUCKETS);
        let total: usize = svg
            .split(" jobs</title>")
            .filter_map(|p| p.rsplit(": ").next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(total, 5);
        assert!(!svg.contains("http://") || svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    }
}
