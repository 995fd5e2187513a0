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
//!
//! Values are written as they are (no spreadsheet-formula escaping): the file is for
//! programs; open it in a spreadsheet with "text" columns if client ids are untrusted.

use super::{Report, ReportError};

pub const HEADER: [&str; 5] = ["client_id", "day", "product", "units", "events"];

pub fn write(r: &Report, w: &mut dyn std::io::Write) -> Result<(), ReportError> {
    let mut out = ::csv::Writer::from_writer(w);
    out.write_record(HEADER)?;
    for c in &r.clients {
        for d in &c.days {
            out.write_record([
                c.client_id.as_str(),
                d.day.as_str(),
                d.product.as_str(),
                &d.units.to_string(),
                &d.events.to_string(),
            ])?;
        }
    }
    out.flush()?;
    Ok(())
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
}
