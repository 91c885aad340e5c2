//! `--growth`: how the comparison's figures grow with the number of users,
//! as a Markdown table and an SVG chart (one panel per scenario, p50
//! latency against users, both axes logarithmic, one line per system).

use std::fmt::Write;

use crate::Report;
use crate::compare::SYSTEMS;

/// p50 ms and requests/s of every (scenario, clients, system) at each size.
struct Series {
    scenario: String,
    system: &'static str,
    /// (users, p50 ms, per second)
    points: Vec<(usize, f64, f64)>,
}

fn series(reports: &mut [Report]) -> Vec<Series> {
    let mut all: Vec<Series> = Vec::new();
    for report in reports.iter_mut() {
        for c in &mut report.comparisons {
            let scenario = format!("{}, {} clients", c.scenario, c.concurrency);
            for (system, sample) in &mut c.samples {
                let p50 = sample
                    .percentile(0.5)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                let rate = sample.count as f64 / sample.elapsed.as_secs_f64();
                let point = (report.users, p50, rate);
                match all
                    .iter_mut()
                    .find(|s| s.scenario == scenario && s.system == *system)
                {
                    Some(s) => s.points.push(point),
                    None => all.push(Series {
                        scenario: scenario.clone(),
                        system,
                        points: vec![point],
                    }),
                }
            }
        }
    }
    all
}

/// The Markdown table: a row per scenario and system, a column per size
/// (requests/s, p50 ms).
pub fn table(reports: &mut [Report]) -> String {
    let sizes: Vec<usize> = reports.iter().map(|r| r.users).collect();
    let label = reports.first().map_or("", |r| r.label);
    let mut out = format!("Growth on {label}: requests/s (p50 ms) at each number of users\n\n");
    out.push_str("| scenario | system |");
    for n in &sizes {
        let _ = write!(out, " {n} users |");
    }
    out.push_str("\n| --- | --- |");
    for _ in &sizes {
        out.push_str(" ---: |");
    }
    out.push('\n');
    for s in series(reports) {
        let _ = write!(out, "| {} | {} |", s.scenario, s.system);
        for n in &sizes {
            match s.points.iter().find(|p| p.0 == *n) {
                Some((_, p50, rate)) => {
                    let _ = write!(out, " {rate:.0} ({p50:.2}) |");
                }
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out
}

const COLORS: [&str; SYSTEMS.len()] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// The chart: a panel per scenario, p50 ms against users (log-log).
pub fn svg(reports: &mut [Report]) -> String {
    let all = series(reports);
    let label = reports.first().map_or("", |r| r.label);
    let mut scenarios: Vec<&str> = Vec::new();
    for s in &all {
        if !scenarios.contains(&s.scenario.as_str()) {
            scenarios.push(&s.scenario);
        }
    }
    let (pw, ph, cols) = (360.0, 240.0, 2usize);
    let rows = scenarios.len().div_ceil(cols);
    let (width, height) = (pw * cols as f64, 70.0 + ph * rows as f64);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">tagsmith benchmark growth on {label}: \
         p50 latency (ms, log) against users (log)</text>\n"
    );
    // The legend names the systems of the run only, in SYSTEMS' order.
    let present = SYSTEMS
        .iter()
        .enumerate()
        .filter(|(_, system)| all.iter().any(|s| s.system == **system));
    for (slot, (i, system)) in present.enumerate() {
        let x = 10.0 + 170.0 * slot as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"32\" width=\"14\" height=\"4\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"38\">{system}</text>",
            COLORS[i],
            x + 18.0
        );
    }
    let users: Vec<f64> = reports.iter().map(|r| r.users as f64).collect();
    let (x_min, x_max) = bounds(&users);
    for (k, scenario) in scenarios.iter().enumerate() {
        let (ox, oy) = (
            pw * (k % cols) as f64 + 50.0,
            60.0 + ph * (k / cols) as f64 + 20.0,
        );
        let (w, h) = (pw - 70.0, ph - 60.0);
        let lines: Vec<&Series> = all.iter().filter(|s| s.scenario == *scenario).collect();
        let p50s: Vec<f64> = lines
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1.max(0.001)))
            .collect();
        let (y_min, y_max) = bounds(&p50s);
        let x = |v: f64| ox + w * (v.log10() - x_min) / (x_max - x_min);
        let y = |v: f64| oy + h - h * (v.max(0.001).log10() - y_min) / (y_max - y_min);
        let _ = writeln!(
            out,
            "<text x=\"{ox}\" y=\"{}\" font-weight=\"bold\">{scenario}</text>\n\
             <rect x=\"{ox}\" y=\"{oy}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>",
            oy - 6.0
        );
        for decade in (x_min.floor() as i32)..=(x_max.ceil() as i32) {
            let v = 10f64.powi(decade);
            if (x_min..=x_max).contains(&v.log10()) {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    x(v),
                    oy + h + 14.0,
                    human(v)
                );
            }
        }
        for decade in (y_min.floor() as i32)..=(y_max.ceil() as i32) {
            let v = 10f64.powi(decade);
            if (y_min..=y_max).contains(&v.log10()) {
                let _ = writeln!(
                    out,
                    "<line x1=\"{ox}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"#eee\"/>\
                     <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} ms</text>",
                    ox + w,
                    ox - 4.0,
                    y(v) + 4.0,
                    human(v),
                    yy = y(v)
                );
            }
        }
        for s in lines {
            let color = COLORS[SYSTEMS.iter().position(|n| *n == s.system).unwrap_or(0)];
            let points: Vec<String> = s
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.0 as f64), y(p.1)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                points.join(" ")
            );
            for p in &s.points {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{}: {} users, p50 {:.2} ms, {:.0}/s</title></circle>",
                    x(p.0 as f64),
                    y(p.1),
                    s.system,
                    p.0,
                    p.1,
                    p.2
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// log10 bounds with a little room; one decade at least.
fn bounds(values: &[f64]) -> (f64, f64) {
    let logs = values.iter().map(|v| v.max(0.001).log10());
    let lo = logs.clone().fold(f64::INFINITY, f64::min);
    let hi = logs.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo - 0.1, hi + 0.1);
    if hi - lo < 1.0 {
        let mid = (lo + hi) / 2.0;
        (mid - 0.5, mid + 0.5)
    } else {
        (lo, hi)
    }
}

fn human(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}
