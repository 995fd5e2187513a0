//! Putting a run on disk: `events.jsonl` (in the chosen gateway shape), `contracts.toml`,
//! `truth.json`, and for a gateway shape the `overage.toml` that reads it.
//!
//! Generation itself writes nothing (the live demo streams it into a broker instead); this is
//! the one place that knows the file names `overage replay` and `overage score` expect.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::params::{SimError, SimParams};
use super::plan::Scenario;
use super::shapes;
use super::truth::Truth;

/// Generate the scenario into `dir`: `events.jsonl`, `contracts.toml` and `truth.json`.
pub fn write_scenario(p: &SimParams, dir: &Path) -> Result<Truth, SimError> {
    write_scenario_as(p, dir, shapes::Shape::Json)
}

/// [`write_scenario`] with the events in a gateway's shape, and beside them `overage.toml`,
/// the `[input]` section that reads them.
pub fn write_scenario_as(
    p: &SimParams,
    dir: &Path,
    shape: shapes::Shape,
) -> Result<Truth, SimError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SimError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let sc = Scenario::new(p)?;

    let contracts = dir.join("contracts.toml");
    std::fs::write(&contracts, sc.contracts_toml()).map_err(io(&contracts))?;
    if let Some(toml) = shape.input_toml() {
        let config = dir.join("overage.toml");
        std::fs::write(&config, toml).map_err(io(&config))?;
    }

    let events = dir.join("events.jsonl");
    let file = File::create(&events).map_err(io(&events))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut gen = sc.generator();
    let mut line = Vec::with_capacity(512);
    let mut shaped = shapes::Writer::new(shape);
    let mut result = Ok(());
    let mut emit = |msg: &[u8]| {
        if result.is_ok() {
            result = out.write_all(msg).and_then(|()| out.write_all(b"\n"));
        }
    };
    while gen.next_line(&mut line).is_some() {
        shaped.line(&line, &mut emit);
    }
    shaped.flush(&mut emit);
    result.map_err(io(&events))?;
    out.flush().map_err(io(&events))?;
    let truth = gen.finish();

    let truth_path = dir.join("truth.json");
    let file = File::create(&truth_path).map_err(io(&truth_path))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &truth).map_err(|source| SimError::Json {
        path: truth_path.clone(),
        source,
    })?;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(io(&truth_path))?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::super::small;
    use super::*;

    #[test]
    fn write_scenario_writes_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = write_scenario(&small(5), dir.path()).unwrap();
        let events = std::fs::read(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(
            events.iter().filter(|&&b| b == b'\n').count() as u64,
            t.faults.lines
        );
        let back = Truth::load(&dir.path().join("truth.json")).unwrap();
        assert_eq!(back, t);
        // the per-product split adds up to the per-day truth
        for (client, days) in &t.usage_by_day {
            for (day, units) in days {
                let split = &t.faults.applied_by_day_product[client][day];
                assert_eq!(split.values().map(|u| u.units).sum::<f64>(), *units);
            }
        }
        assert!(std::fs::read_to_string(dir.path().join("contracts.toml"))
            .unwrap()
            .contains("[[contract]]"));
    }
}
