//! Inline SVG charts, built with the same escaping template engine as the page (maud), so
//! labels taken from events (products, origins, client ids) can never become markup.
//!
//! Every data mark carries a class (`bar`, `contract`, `remaining`, `forecast`) and a `<title>`
//! with its value, so the charts are readable without JavaScript and checkable from the DOM.

use maud::{html, Markup};

use super::{CapBurn, ContractInfo, Point, Total};
use crate::time::{format_rfc3339, Millis, DAY_MS, HOUR_MS};

const W: f64 = 760.0;
const H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Units for axis labels: `1.2M`, `35k`, `120`.
pub fn short(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn day(t: Millis) -> String {
    format_rfc3339(t)[..10].to_owned()
}

fn hour(t: Millis) -> String {
    format_rfc3339(t)[..16].replace('T', " ")
}

/// Buckets of `bucket` ms covering `[from, to)`, summing `points` into them.
pub fn rebucket(points: &[Point], from: Millis, to: Millis, bucket: Millis) -> Vec<Point> {
    let n = ((to - from).max(0) + bucket - 1) / bucket;
    let mut out: Vec<Point> = (0..n)
        .map(|i| Point {
            t: from + i * bucket,
            hours: (bucket / HOUR_MS) as u32,
            units: 0.0,
            events: 0,
        })
        .collect();
    for p in points {
        if p.t >= from && p.t < to {
            let i = ((p.t - from) / bucket) as usize;
            if let Some(b) = out.get_mut(i) {
                b.units += p.units;
                b.events += p.events;
            }
        }
    }
    out
}

/// Hourly buckets for up to 4 days, daily beyond, and daily wherever `points` hold a day (days
/// beyond the engine's hourly span cannot be drawn as hours).
pub fn bucket_for(points: &[Point], from: Millis, to: Millis) -> Millis {
    if to - from <= 4 * DAY_MS && points.iter().all(|p| p.hours == 1) {
        HOUR_MS
    } else {
        DAY_MS
    }
}

/// Usage per bucket as bars, with the contracted units per bucket as a line.
pub fn usage(
    points: &[Point],
    from: Millis,
    to: Millis,
    contract: Option<&ContractInfo>,
) -> Markup {
    let bucket = bucket_for(points, from, to);
    let from = from.div_euclid(bucket) * bucket;
    let buckets = rebucket(points, from, to, bucket);
    let line = contract.map(|k| k.over(bucket));
    let max = nice(
        buckets
            .iter()
            .map(|b| b.units)
            .fold(line.unwrap_or(0.0), f64::max)
            .max(1.0)
            * 1.05,
    );
    let n = buckets.len().max(1) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let bw = pw / n;
    let y = |v: f64| TOP + ph * (1.0 - v / max);
    let label = |t: Millis| if bucket == HOUR_MS { hour(t) } else { day(t) };
    let every = (buckets.len() / 6).max(1);
    let per = if bucket == HOUR_MS { "hour" } else { "day" };
    html! {
        svg.chart.usage xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (W) " " (H)}
            role="img" aria-label={"Units per " (per) " against the contracted rate"} {
            (axes(max, ph))
            @for (i, b) in buckets.iter().enumerate() {
                @let h = (ph * b.units / max).max(0.0);
                rect.bar x=(fmt(LEFT + i as f64 * bw + bw * 0.1)) y=(fmt(TOP + ph - h))
                    width=(fmt((bw * 0.8).max(0.5))) height=(fmt(h)) data-units=(b.units) {
                    title { (label(b.t)) ": " (short(b.units)) " units, " (b.events) " calls" }
                }
                @if i % every == 0 && LEFT + i as f64 * bw < W - RIGHT - 80.0 {
                    text.x x=(fmt(LEFT + i as f64 * bw)) y=(fmt(H - 8.0)) { (label(b.t)) }
                }
            }
            @if let Some(v) = line {
                line.contract x1=(fmt(LEFT)) x2=(fmt(W - RIGHT)) y1=(fmt(y(v))) y2=(fmt(y(v))) {
                    title { "contract: " (short(v)) " units per " (per) }
                }
                text.legend x=(fmt(W - RIGHT - 4.0)) y=(fmt(y(v) - 4.0)) text-anchor="end" {
                    "contract " (short(v)) "/" (per)
                }
            }
        }
    }
}

/// The next round number at or above `x` (1, 2, 4, 5 or 8 × 10^k), for axis tops.
pub fn nice(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 4.0, 5.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

fn axes(max: f64, ph: f64) -> Markup {
    html! {
        line.axis x1=(fmt(LEFT)) x2=(fmt(LEFT)) y1=(fmt(TOP)) y2=(fmt(TOP + ph)) {}
        line.axis x1=(fmt(LEFT)) x2=(fmt(W - RIGHT)) y1=(fmt(TOP + ph)) y2=(fmt(TOP + ph)) {}
        @for k in 0..=4 {
            @let v = max * k as f64 / 4.0;
            @let yy = TOP + ph * (1.0 - k as f64 / 4.0);
            line.grid x1=(fmt(LEFT)) x2=(fmt(W - RIGHT)) y1=(fmt(yy)) y2=(fmt(yy)) {}
            text.y x=(fmt(LEFT - 6.0)) y=(fmt(yy + 4.0)) text-anchor="end" { (short(v)) }
        }
    }
}

/// Horizontal bars, one per key (at most `limit`, the rest summed as "other").
pub fn totals(rows: &[Total], what: &str, limit: usize) -> Markup {
    let mut shown: Vec<(String, f64, u64)> = rows
        .iter()
        .take(limit)
        .map(|t| (t.key.clone(), t.units, t.events))
        .collect();
    if rows.len() > limit {
        let rest = &rows[limit..];
        shown.push((
            format!("{} others", rest.len()),
            rest.iter().map(|t| t.units).sum(),
            rest.iter().map(|t| t.events).sum(),
        ));
    }
    let max = shown.iter().map(|s| s.1).fold(1.0, f64::max);
    let row_h = 24.0;
    let h = row_h * shown.len().max(1) as f64 + 8.0;
    let w = 360.0;
    let label_w = 110.0;
    let total: f64 = shown.iter().map(|s| s.1).sum::<f64>().max(1.0);
    html! {
        svg.chart.totals xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (w) " " (h)}
            role="img" aria-label={"Units by " (what)} {
            @for (i, (key, units, events)) in shown.iter().enumerate() {
                @let y = 4.0 + i as f64 * row_h;
                @let bw = (w - label_w - 70.0) * units / max;
                text.key x=(fmt(label_w - 6.0)) y=(fmt(y + 16.0)) text-anchor="end" {
                    (truncate(key, 16))
                }
                rect.bar x=(fmt(label_w)) y=(fmt(y + 3.0)) width=(fmt(bw.max(0.5))) height="16"
                    data-units=(units) {
                    title { (key) ": " (short(*units)) " units, " (events) " calls" }
                }
                text.value x=(fmt(label_w + bw + 4.0)) y=(fmt(y + 16.0)) {
                    (short(*units)) " (" (format!("{:.0}", 100.0 * units / total)) "%)"
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The month's cap burn-down: what is left of the cap, and the forecast to month end.
pub fn burn_down(c: &CapBurn) -> Markup {
    let (start, end) = (c.month_start, c.month_end);
    let last = c.remaining.last().copied().unwrap_or((start, c.cap));
    let end_left = c.cap - c.forecast_units;
    let lo = c
        .remaining
        .iter()
        .map(|r| r.1)
        .fold(end_left.min(0.0), f64::min);
    let hi = c.cap * 1.05;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: Millis| LEFT + pw * (t - start) as f64 / (end - start).max(1) as f64;
    let y = |v: f64| TOP + ph * (hi - v) / (hi - lo).max(1.0);
    let points: String = c
        .remaining
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect::<Vec<_>>()
        .join(" ");
    let days = (end - start) / DAY_MS;
    html! {
        svg.chart.burn xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (W) " " (H)}
            role="img" aria-label={"Cap burn-down for " (c.month)} {
            line.axis x1=(fmt(LEFT)) x2=(fmt(LEFT)) y1=(fmt(TOP)) y2=(fmt(TOP + ph)) {}
            line.zero x1=(fmt(LEFT)) x2=(fmt(W - RIGHT)) y1=(fmt(y(0.0))) y2=(fmt(y(0.0))) {
                title { "cap used up" }
            }
            text.y x=(fmt(LEFT - 6.0)) y=(fmt(y(c.cap) + 4.0)) text-anchor="end" { (short(c.cap)) }
            text.y x=(fmt(LEFT - 6.0)) y=(fmt(y(0.0) + 4.0)) text-anchor="end" { "0" }
            @for d in (0..days.saturating_sub(3)).step_by(5) {
                text.x x=(fmt(x(start + d * DAY_MS))) y=(fmt(H - 8.0)) { (day(start + d * DAY_MS)) }
            }
            polyline.remaining points=(points) {
                title { "left of the cap: " (short(last.1)) " at " (hour(last.0)) }
            }
            @if last.0 < end && c.forecast_ready {
                line.forecast x1=(fmt(x(last.0))) y1=(fmt(y(last.1))) x2=(fmt(x(end)))
                    y2=(fmt(y(end_left))) {
                    title { "forecast at " (short(c.pace_per_hour)) " units/h: "
                        (short(c.forecast_units)) " used by month end" }
                }
            }
            circle.now cx=(fmt(x(last.0))) cy=(fmt(y(last.1))) r="3" {}
        }
    }
}

/// One hour of a sparkline: the units used (`None` before the client was first seen) and what
/// they are measured against (`None` when nothing is: a learned baseline still learning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparkPoint {
    /// Start of the hour (not always a clock hour: the last may be the 60 minutes up to now).
    pub t: Millis,
    pub units: Option<f64>,
    pub reference: Option<f64>,
}

/// How big a sparkline is drawn: a table cell's, or a page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparkSize {
    /// For a table row: no labels, the page's text says the numbers.
    Cell,
    /// For a client's page: the scale, where the span starts and ends, and a dot with its value
    /// per hour.
    Page,
}

/// Units per hour as a line against a reference line (a contract's flat rate, or what a learned
/// baseline expects each hour), one point per hour at a fixed step, so a client first seen an
/// hour ago is a short line at the right end rather than a stretched one. `label` is the
/// accessible summary (`<title>` and `aria-label`); `reference` names the reference line.
///
/// Stroke and fill are presentation attributes, not page CSS, so the chart looks the same
/// wherever it is embedded.
pub fn sparkline(points: &[SparkPoint], size: SparkSize, label: &str, reference: &str) -> Markup {
    let (w, h, left, right, top, bottom) = match size {
        SparkSize::Cell => (120.0, 28.0, 2.0, 4.0, 3.0, 3.0),
        SparkSize::Page => (W, 160.0, LEFT, RIGHT, TOP, 24.0),
    };
    let max = points
        .iter()
        .flat_map(|p| [p.units, p.reference])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let max = match size {
        SparkSize::Cell => max.max(1.0) * 1.1,
        SparkSize::Page => nice(max.max(1.0) * 1.05),
    };
    let step = (w - left - right) / points.len().saturating_sub(1).max(1) as f64;
    let x = |i: usize| left + i as f64 * step;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v / max).clamp(0.0, 1.0));
    let line = |f: fn(&SparkPoint) -> Option<f64>| -> Vec<(usize, f64)> {
        points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| f(p).filter(|v| v.is_finite()).map(|v| (i, v)))
            .collect()
    };
    let used = line(|p| p.units);
    let refs = line(|p| p.reference);
    let coords = |pts: &[(usize, f64)]| {
        pts.iter()
            .map(|&(i, v)| format!("{},{}", fmt(x(i)), fmt(y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let range = |pts: &[(usize, f64)]| {
        let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(0.0, f64::max);
        if (hi - lo).abs() < 0.5 {
            short(hi)
        } else {
            format!("{} to {}", short(lo), short(hi))
        }
    };
    let last = used.last().copied();
    let class = match size {
        SparkSize::Cell => "spark",
        SparkSize::Page => "spark large",
    };
    html! {
        svg class=(class) xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (w) " " (h)}
            width=(if size == SparkSize::Cell { w.to_string() } else { "100%".to_owned() })
            height=[(size == SparkSize::Cell).then_some(h)] role="img" aria-label=(label) {
            title { (label) }
            @if size == SparkSize::Page {
                (axes(max, h - top - bottom))
                @if let (Some(first), Some(end)) = (points.first(), points.last()) {
                    text.x x=(fmt(left)) y=(fmt(h - 6.0)) { (hour(first.t)) }
                    // the span's end: the last point is the hour up to it
                    text.x x=(fmt(w - right)) y=(fmt(h - 6.0)) text-anchor="end" {
                        (hour(end.t + HOUR_MS)) }
                }
            }
            @if !refs.is_empty() {
                polyline.reference points=(coords(&refs)) fill="none" stroke="#c53030"
                    stroke-width="1.5" stroke-dasharray="4 3" {
                    title { (reference) ": " (range(&refs)) " units per hour" }
                }
            }
            @if !used.is_empty() {
                polyline.usage points=(coords(&used)) fill="none" stroke="#3b6fb6"
                    stroke-width=(if size == SparkSize::Cell { "1.5" } else { "2.5" })
                    stroke-linejoin="round" {
                    title { "units per hour: " (range(&used)) }
                }
            }
            @if size == SparkSize::Page {
                @for &(i, v) in &used {
                    circle.point cx=(fmt(x(i))) cy=(fmt(y(v))) r="3" fill="#3b6fb6" {
                        title { (hour(points[i].t)) ": " (short(v)) " units"
                            @if let Some(r) = points[i].reference { " (" (reference) " " (short(r)) ")" } }
                    }
                }
            } @else if let Some((i, v)) = last {
                circle.now cx=(fmt(x(i))) cy=(fmt(y(v))) r="2" fill="#3b6fb6" {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuckets_into_days() {
        let pts = [
            Point {
                t: 0,
                hours: 1,
                units: 1.0,
                events: 1,
            },
            Point {
                t: HOUR_MS,
                hours: 1,
                units: 2.0,
                events: 1,
            },
            Point {
                t: DAY_MS + 5,
                hours: 1,
                units: 4.0,
                events: 2,
            },
        ];
        let b = rebucket(&pts, 0, 3 * DAY_MS, DAY_MS);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].units, b[0].events), (3.0, 2));
        assert_eq!(b[1].units, 4.0);
        assert_eq!(b[2].units, 0.0);
    }

    #[test]
    fn a_day_among_the_points_makes_the_buckets_days() {
        let hour = Point {
            t: 0,
            hours: 1,
            units: 1.0,
            events: 1,
        };
        assert_eq!(bucket_for(&[hour], 0, 2 * DAY_MS), HOUR_MS);
        assert_eq!(bucket_for(&[hour], 0, 5 * DAY_MS), DAY_MS);
        let day = Point { hours: 24, ..hour };
        assert_eq!(bucket_for(&[day, hour], 0, 2 * DAY_MS), DAY_MS);
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice(18_900.0), 20_000.0);
        assert_eq!(nice(6_300.0), 8_000.0);
        assert_eq!(nice(1.0), 1.0);
    }

    #[test]
    fn labels_are_escaped() {
        let t = [Total {
            key: "<script>alert(1)</script>".into(),
            units: 3.0,
            events: 1,
        }];
        let s = totals(&t, "product", 8).into_string();
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;"), "{s}");
    }

    fn spark(units: &[Option<f64>], reference: Option<f64>) -> Vec<SparkPoint> {
        units
            .iter()
            .enumerate()
            .map(|(i, &u)| SparkPoint {
                t: i as Millis * HOUR_MS,
                units: u,
                reference,
            })
            .collect()
    }

    /// `points="..."` of the polyline of `class`, as (x, y) pairs.
    fn polyline(svg: &str, class: &str) -> Vec<(f64, f64)> {
        let at = svg
            .find(&format!("<polyline class=\"{class}\" points=\""))
            .unwrap_or_else(|| panic!("no {class} line: {svg}"));
        let rest = &svg[at..];
        let start = rest.find("points=\"").unwrap() + 8;
        let end = start + rest[start..].find('"').unwrap();
        rest[start..end]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_sparkline_draws_usage_against_its_reference_hour_by_hour() {
        // a client first seen in the third hour, at the contract, then at twice it
        let mut units = vec![None, None];
        units.extend([100.0, 100.0, 200.0].map(Some));
        let s = sparkline(
            &spark(&units, Some(100.0)),
            SparkSize::Cell,
            "<b>x</b> last 5 h",
            "contract",
        )
        .into_string();
        assert!(s.starts_with("<svg class=\"spark\""), "{s}");
        assert!(
            s.contains("<title>&lt;b&gt;x&lt;/b&gt; last 5 h</title>"),
            "{s}"
        );
        let used = polyline(&s, "usage");
        let refs = polyline(&s, "reference");
        assert_eq!(used.len(), 3, "no points before the client existed: {s}");
        assert_eq!(refs.len(), 5, "{s}");
        // the hours keep their place: the first usage point is above the third reference one
        assert_eq!(used[0].0, refs[2].0);
        // at the reference, then above it (smaller y is higher)
        assert_eq!(used[0].1, refs[2].1);
        assert!(used[2].1 < refs[4].1, "{s}");
        assert!(s.contains("contract: 100 units per hour"), "{s}");
        assert!(s.contains("units per hour: 100 to 200"), "{s}");
    }

    #[test]
    fn a_sparkline_without_reference_draws_usage_alone() {
        let s = sparkline(
            &spark(&[Some(1.0), Some(3.0)], None),
            SparkSize::Page,
            "y",
            "learned baseline",
        )
        .into_string();
        assert!(s.starts_with("<svg class=\"spark large\""), "{s}");
        assert!(!s.contains("class=\"reference\""), "{s}");
        assert_eq!(polyline(&s, "usage").len(), 2);
        assert_eq!(s.matches("<circle class=\"point\"").count(), 2, "{s}");
    }
}
