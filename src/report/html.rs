//! The HTML report: one self-contained page (inline CSS and SVG, no scripts, no external
//! assets), readable offline and printable. Built with maud, which escapes every interpolated
//! value: client ids, products and origins come from events and are untrusted.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{svg, ClientReport, Report};
use crate::time::{format_rfc3339, parse_rfc3339, DAY_MS, HOUR_MS};

/// Styles shared with the service's status pages.
pub const CSS: &str = r#"
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6675; --line: #d8dee6; --bar: #3b6fb6;
  --warn: #b7791f; --crit: #c53030; --ok: #2f855a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0 auto; padding: 16px 24px 48px; max-width: 1120px; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.meta, .muted { color: var(--muted); } .meta span { margin-right: 18px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; } td.n, th.n { text-align: right; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.kpi b { display: block; font-size: 20px; } .kpi small { color: var(--muted); }
svg.chart { width: 100%; height: auto; display: block; }
svg .bar { fill: var(--bar); } svg .contract { stroke: var(--crit); stroke-width: 2; stroke-dasharray: 6 4; }
svg .axis { stroke: #8894a4; } svg .grid { stroke: #eef1f5; } svg .zero { stroke: var(--crit); stroke-width: 1.5; }
svg text { font-size: 11px; fill: var(--muted); } svg .legend { fill: var(--crit); font-weight: 600; }
svg .key { fill: var(--ink); } svg .remaining { fill: none; stroke: var(--bar); stroke-width: 2.5; }
svg .forecast { stroke: var(--warn); stroke-width: 2; stroke-dasharray: 5 4; } svg .now { fill: var(--bar); }
.sev-critical { color: var(--crit); font-weight: 600; } .sev-warning { color: var(--warn); font-weight: 600; }
.state-resolved { color: var(--ok); } .empty { color: var(--muted); font-style: italic; }
.bad { color: var(--crit); font-weight: 600; } .good { color: var(--ok); font-weight: 600; }
a { color: #2b5797; } nav { margin: 4px 0 12px; }
@media (max-width: 800px) { .grid { grid-template-columns: 1fr; } }
@media print { body { max-width: none; } h2 { break-after: avoid; } .client { break-before: page; } }
"#;

/// The whole page.
pub fn page(r: &Report) -> Markup {
    let title = match r.clients.as_slice() {
        [one] => format!("Usage report: {}", one.client_id),
        many => format!("Usage report: {} clients", many.len()),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (title) }
                p.meta {
                    span { "Period: " b { (r.from.as_deref().unwrap_or("start of data")) }
                        " to " b { (r.to.as_deref().unwrap_or("end of data")) } " (UTC, whole hours)" }
                    span { "Source: " (r.source) }
                }
                @if !r.input.is_empty() {
                    p.meta { "Input events: "
                        @for (k, n) in r.input.iter().filter(|(_, n)| **n > 0) { span { (k) " " (n) } }
                    }
                }
                @if r.clients.is_empty() {
                    p.empty { "No client has usage in this period." }
                }
                @if r.clients.len() > 1 {
                    h2 { "Clients" }
                    table.clients {
                        thead { tr { th { "client" } th { "plan" } th.n { "units" } th.n { "calls" }
                            th.n { "used vs contracted" } th.n { "over contract" } th.n { "alerts" } } }
                        tbody {
                            @for (i, c) in r.clients.iter().enumerate() {
                                tr {
                                    td { a href={"#c" (i)} { (c.client_id) } }
                                    td { (c.contract.as_ref().and_then(|k| k.plan.as_deref()).unwrap_or("-")) }
                                    td.n { (num(c.units)) } td.n { (c.events) }
                                    @if let Some(a) = &c.against_contract {
                                        td.n { (format!("{:.0}%", a.used_pct)) } td.n.over { (num(a.over_contract)) }
                                    } @else { td.n { "-" } td.n { "-" } }
                                    td.n { (c.alerts.len()) }
                                }
                            }
                        }
                    }
                }
                @for (i, c) in r.clients.iter().enumerate() {
                    (client(r, c, i))
                }
                p.muted { "Generated by overage. Units are exact: each distinct event once, late events included." }
            }
        }
    }
}

/// Thousands separators for people: `1,234,567` (and up to 2 decimals when fractional).
pub fn num(x: f64) -> String {
    let neg = x < 0.0;
    let x = x.abs();
    let int = x.trunc() as u64;
    let digits = int.to_string();
    let mut s = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(ch);
    }
    let frac = x - int as f64;
    if frac > 0.005 {
        s += &format!("{frac:.2}")[1..];
    }
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

fn client(r: &Report, c: &ClientReport, i: usize) -> Markup {
    let from = r
        .from
        .as_deref()
        .and_then(parse_rfc3339)
        .or(c.hours.first().map(|p| p.t))
        .unwrap_or(0);
    let to =
        r.to.as_deref()
            .and_then(parse_rfc3339)
            .or(c.hours.last().map(|p| p.t + i64::from(p.hours) * HOUR_MS))
            .unwrap_or(from + DAY_MS);
    // averages and the contract over the hours the data covers, not the whole period asked for
    let hours = c.covered.as_ref().map_or(1, |k| k.hours.max(1)) as f64;
    let over: Option<std::collections::BTreeMap<&str, f64>> =
        c.against_contract.as_ref().map(|a| {
            a.days
                .iter()
                .map(|d| (d.day.as_str(), d.over_contract))
                .collect()
        });
    let bucket = if svg::bucket_for(&c.hours, from, to) == HOUR_MS {
        "hour"
    } else {
        "day"
    };
    html! {
        section.client id={"c" (i)} {
            h2 { "Client " (c.client_id) }
            div.kpis {
                div.kpi { small { "units in period" } b { (num(c.units)) } }
                div.kpi { small { "calls" } b { (c.events) } }
                div.kpi { small { "average units / hour" } b { (num(c.units / hours)) } }
                @if let Some(k) = &c.contract {
                    div.kpi { small { "contract" }
                        b { (num(k.units)) " / " (crate::time::duration_label(k.per_ms)) }
                        small { (k.plan.as_deref().unwrap_or("")) } }
                    @if let (Some(a), Some(cov)) = (&c.against_contract, &c.covered) {
                        div.kpi.used { small { "used vs contracted" }
                            b class=(if a.used_pct > 100.0 { "bad" } else { "good" }) {
                                (format!("{:.0}%", a.used_pct)) }
                            small { (num(c.units)) " of " (num(a.contracted)) " over the "
                                (cov.hours) " h the data covers (" (cov.from) " to " (cov.to) ")" } }
                        div.kpi.over { small { "units over contract" }
                            b class=(if a.over_contract > 0.0 { "bad" } else { "good" }) {
                                (num(a.over_contract)) }
                            small { "above " (num(a.allowance_per_hour)) " per hour, summed per hour" } }
                    }
                } @else {
                    div.kpi { small { "contract" } b { "none" } small { "learned baseline only" } }
                }
                @if let Some(a) = &c.as_of { div.kpi { small { "data complete to" } b { (a) } } }
            }
            h3 { "Usage per " (bucket) " against the contract" }
            (svg::usage(&c.hours, from, to, c.contract.as_ref()))
            div.grid {
                div.card { h3 { "By product" } (svg::totals(&c.by_product, "product", 8)) }
                div.card { h3 { "By origin" } (svg::totals(&c.by_origin, "origin", 8)) }
            }
            @if let Some(cap) = &c.cap {
                h3 { "Monthly cap " (cap.month) ": burn-down and forecast" }
                p {
                    "Used " b { (num(cap.used)) } " of " (num(cap.cap))
                    " (" (format!("{:.0}%", 100.0 * cap.used / cap.cap.max(1e-9))) "). "
                    @if cap.forecast_ready {
                        "At the recent pace of " (num(cap.pace_per_hour)) " units/h (the cap detector's pace "
                        "window), the month ends at " b { (num(cap.forecast_units)) }
                        " (" (format!("{:.0}%", 100.0 * cap.forecast_units / cap.cap.max(1e-9))) " of the cap)"
                    } @else {
                        "Too little history for a forecast yet (the cap detector waits for it too)"
                    }
                    @if let Some(t) = cap.forecast_exhausted_at {
                        "; the cap " @if cap.used >= cap.cap { "ran out" } @else { "runs out" }
                        " at " b.bad { (format_rfc3339(t)) }
                    }
                    "."
                }
                (svg::burn_down(cap))
            }
            h3 { "Alerts in the period" }
            @if c.alerts.is_empty() {
                p.empty { "No alert transitions in this period." }
            } @else {
                ul.alerts {
                    @for a in &c.alerts {
                        li.alert {
                            span.muted { (a.at) } " "
                            span class={"sev-" (a.severity)} { (a.severity) } " "
                            b { (a.alert) } " "
                            span class={"state-" (a.state)} { (a.state) } " — " (a.summary)
                        }
                    }
                }
            }
            h3 { "Per day and product" }
            table.days {
                thead { tr { th { "day (UTC)" } th { "product" } th.n { "units" } th.n { "calls" }
                    @if over.is_some() { th.n title="units above the contract's hourly rate, summed per hour, for the whole day" { "over contract (day)" } } } }
                tbody {
                    @for (j, d) in c.days.iter().enumerate() {
                        tr { td { (d.day) } td { (d.product) } td.n { (num(d.units)) } td.n { (d.events) }
                            // the day's excess once, beside all its products: it is not per product
                            @if let Some(over) = &over {
                                @if j == 0 || c.days[j - 1].day != d.day {
                                    td.n.over rowspan=(c.days[j..].iter().take_while(|x| x.day == d.day).count()) {
                                        (num(over.get(d.day.as_str()).copied().unwrap_or(0.0))) }
                                }
                            }
                        }
                    }
                    @if c.days.is_empty() { tr { td.empty colspan="4" { "no usage" } } }
                }
                @if let Some(a) = &c.against_contract {
                    tfoot { tr { th colspan="2" { "period" } th.n { (num(c.units)) } th.n { (c.events) }
                        th.n.over { (num(a.over_contract)) } } }
                }
            }
        }
    }
}

pub fn write(r: &Report, w: &mut dyn std::io::Write) -> Result<(), super::ReportError> {
    w.write_all(page(r).into_string().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{build, report, tests::sample, Period};
    use super::*;

    #[test]
    fn a_hostile_client_id_is_text_not_markup() {
        let mut d = sample();
        d.client_id = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>".into();
        d.products[0].key = Some("</style><script>bad()</script>".into());
        let p = Period::default();
        let r = report(
            &p,
            "<b>src</b>".into(),
            Default::default(),
            vec![build(&d, &p)],
        );
        let s = page(&r).into_string();
        assert!(!s.contains("<script"), "{s}");
        assert!(!s.contains("<img"), "{s}");
        assert!(!s.contains("<b>src"), "{s}");
        assert!(s.contains("&lt;script&gt;alert("), "{s}");
        // self-contained: no external references
        assert!(!s.contains("http://") || !s.contains("src=\"http"));
        assert!(!s.contains("<link"));
    }

    #[test]
    fn the_page_has_every_section() {
        let d = sample();
        let p = Period::default();
        let r = report(&p, "test".into(), Default::default(), vec![build(&d, &p)]);
        let s = page(&r).into_string();
        for needle in [
            "svg class=\"chart usage\"",
            "class=\"contract\"",
            "svg class=\"chart totals\"",
            "svg class=\"chart burn\"",
            "class=\"forecast\"",
            "li class=\"alert\"",
            "table class=\"days\"",
            "2026-09-10",
        ] {
            assert!(s.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn contract_use_is_over_the_hours_covered_and_excess_is_per_day() {
        let d = sample();
        let p = Period::from_args(Some("2026-09"), None, None).unwrap();
        let r = report(&p, "test".into(), Default::default(), vec![build(&d, &p)]);
        let s = page(&r).into_string();
        // 370 units of 26 h × 100, not of the month's 720 h
        assert!(s.contains(">14%</b>"), "{s}");
        assert!(
            s.contains("370 of 2,600 over the 26 h the data covers"),
            "{s}"
        );
        assert!(
            s.contains("units over contract</small><b class=\"bad\">200</b>"),
            "{s}"
        );
        // the day's excess once per day (rowspan over its products), and the period's total
        assert!(
            s.contains("<td class=\"n over\" rowspan=\"2\">0</td>"),
            "{s}"
        );
        assert!(
            s.contains("<td class=\"n over\" rowspan=\"1\">200</td>"),
            "{s}"
        );
        assert!(s.contains("<th class=\"n over\">200</th>"), "{s}");
        // and in the clients table of a multi-client report
        let mut other = sample();
        other.client_id = "other".into();
        other.contract = None;
        let r = report(
            &p,
            "test".into(),
            Default::default(),
            vec![build(&d, &p), build(&other, &p)],
        );
        let s = page(&r).into_string();
        assert!(
            s.contains("<td class=\"n\">14%</td><td class=\"n over\">200</td>"),
            "{s}"
        );
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(num(1234567.0), "1,234,567");
        assert_eq!(num(12.5), "12.50");
        assert_eq!(num(-1000.0), "-1,000");
    }
}
