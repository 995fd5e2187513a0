//! CSV: one row per client × UTC day × product.
//!
//! Layout (a header row, then rows sorted by client, day, product):
//!
//! | column | meaning |
//! |---|---|
//! | `client_id` | the client, as in the events (quoted by the CSV rules when needed) |
//! | `day` | UTC day, `YYYY-MM-DD` |
//! | `product` | product name, `(none)` for events without one |
//! | `units` | billable units that day (exact: duplicates excluded, late events included) |
//! | `events` | calls that day |
//! | `over_contract` | the client's units above its contract that day, summed per hour (what an overage invoice counts); on the day's first row only, since it is the day's and not a product's, so that the column sums to the period's total; empty on the day's other rows and for clients without a contract |
//!
//! Client ids and product names come from the events, so from the API's callers: a text cell
//! that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading
//! `'`, as OWASP advises against CSV injection, so that a spreadsheet shows it as text instead
//! of running it as a formula. Numbers are written as they are.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Report, ReportError};

pub const HEADER: [&str; 6] = [
    "client_id",
    "day",
    "product",
    "units",
    "events",
    "over_contract",
];

pub fn write(r: &Report, w: &mut dyn std::io::Write) -> Result<(), ReportError> {
    let mut out = ::csv::Writer::from_writer(w);
    out.write_record(HEADER)?;
    for c in &r.clients {
        let over: BTreeMap<&str, f64> = c
            .against_contract
            .iter()
            .flat_map(|a| &a.days)
            .map(|d| (d.day.as_str(), d.over_contract))
            .collect();
        for (i, d) in c.days.iter().enumerate() {
            let first_of_day = i == 0 || c.days[i - 1].day != d.day;
            let excess = match over.get(d.day.as_str()) {
                Some(x) if first_of_day => x.to_string(),
                _ => String::new(),
            };
            out.write_record([
                &text_cell(&c.client_id),
                d.day.as_str(),
                &text_cell(&d.product),
                &d.units.to_string(),
                &d.events.to_string(),
                &excess,
            ])?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A text cell a spreadsheet will not evaluate.
fn text_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{build, report, tests::sample, Period};
    use super::*;

    #[test]
    fn hostile_ids_round_trip_through_csv() {
        let mut d = sample();
        d.client_id = "a,\"b\"\n<script>".into();
        let p = Period::default();
        let r = report(&p, "test".into(), Default::default(), vec![build(&d, &p)]);
        let mut buf = Vec::new();
        write(&r, &mut buf).unwrap();
        let mut rd = ::csv::Reader::from_reader(buf.as_slice());
        assert_eq!(rd.headers().unwrap(), HEADER.as_slice());
        let rows: Vec<::csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][0], "a,\"b\"\n<script>");
        assert_eq!(&rows[0][1], "2026-09-10");
        let units: f64 = rows.iter().map(|r| r[3].parse::<f64>().unwrap()).sum();
        assert_eq!(units, 370.0);
    }

    #[test]
    fn units_over_contract_once_per_day() {
        let p = Period::default();
        let mut none = sample();
        none.client_id = "uncontracted".into();
        none.contract = None;
        let r = report(
            &p,
            "test".into(),
            Default::default(),
            vec![build(&sample(), &p), build(&none, &p)],
        );
        let mut buf = Vec::new();
        write(&r, &mut buf).unwrap();
        let mut rd = ::csv::Reader::from_reader(buf.as_slice());
        let rows: Vec<Vec<String>> = rd
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        let cells: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str(), r[5].as_str()))
            .collect();
        assert_eq!(
            cells,
            [
                // 2026-09-10 has two products: the day's 0 once
                ("acme", "2026-09-10", "0"),
                ("acme", "2026-09-10", ""),
                ("acme", "2026-09-11", "200"),
                ("uncontracted", "2026-09-10", ""),
                ("uncontracted", "2026-09-10", ""),
                ("uncontracted", "2026-09-11", ""),
            ]
        );
    }

    #[test]
    fn formula_like_cells_are_escaped() {
        for (id, want) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
            ("msft-bing", "msft-bing"),
        ] {
            let mut d = sample();
            d.client_id = id.into();
            let p = Period::default();
            let r = report(&p, "test".into(), Default::default(), vec![build(&d, &p)]);
            let mut buf = Vec::new();
            write(&r, &mut buf).unwrap();
            let mut rd = ::csv::Reader::from_reader(buf.as_slice());
            let row = rd.records().next().unwrap().unwrap();
            assert_eq!(&row[0], want, "{id:?}");
            assert_eq!(
                &row[2], "search",
                "product names are escaped only when they need it"
            );
        }
    }
}
