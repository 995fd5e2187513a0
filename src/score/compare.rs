//! Two scores of the same scenarios side by side, episode by episode: what a change to the
//! detectors or to `[detect]` moved. Totals hide trades (a delay won on one episode and a
//! re-fire lost on another sum to "about the same"), so this lists every episode whose
//! detection or delay moved, every alert whose firings changed, and every stuck alert and
//! false firing that came, went or moved.
//!
//! Reads what `overage score --json` writes: one report, or one per seed with `--fleet` (each
//! on its own line, beside the line of side-by-side rows, which is skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use super::{AnomalyResult, Report, ScoreError};

/// The reports of one `score --json` output, in seed order.
pub fn read_reports(path: &Path) -> Result<Vec<Report>, ScoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // (one pretty-printed report, or one report per line)
    if let Ok(r) = serde_json::from_str::<Report>(&text) {
        return Ok(vec![r]);
    }
    let reports: Vec<Report> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if reports.is_empty() {
        return Err(ScoreError::NoReports(path.to_path_buf()));
    }
    Ok(reports)
}

/// An episode whose detection or delay moved (delays in seconds; `None`: missed).
#[derive(Debug, Clone, PartialEq)]
pub struct DelayMoved {
    pub client_id: String,
    pub expect: String,
    pub magnitude: Option<f64>,
    pub before: Option<f64>,
    pub after: Option<f64>,
}

/// An alert (one fingerprint) that fired another number of times in one context (1: once).
#[derive(Debug, Clone, PartialEq)]
pub struct FiringsMoved {
    pub client_id: String,
    pub alert: String,
    pub before: usize,
    pub after: usize,
}

/// A stuck alert that came, went, or resolves at another time. Outer `None`: not stuck;
/// inner `None`: never resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckMoved {
    pub client_id: String,
    pub alert: String,
    pub fired: String,
    pub before: Option<Option<String>>,
    pub after: Option<Option<String>>,
}

/// A false firing in one score and not the other.
#[derive(Debug, Clone, PartialEq)]
pub struct FalseMoved {
    /// In the second score (new), or only in the first (gone).
    pub new: bool,
    pub client_id: String,
    pub alert: String,
    pub severity: String,
    pub at: String,
}

/// What moved in one scenario.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunDiff {
    /// Before and after: detected episodes, false firings, false pages, re-fires, stuck.
    pub totals: [(usize, usize); 5],
    pub delays: Vec<DelayMoved>,
    pub firings: Vec<FiringsMoved>,
    pub stuck: Vec<StuckMoved>,
    pub false_firings: Vec<FalseMoved>,
}

const TOTALS: [&str; 5] = [
    "detected",
    "false firings",
    "false pages",
    "re-fires",
    "stuck",
];

impl RunDiff {
    /// Of the episodes that moved, how many were detected sooner.
    pub fn sooner(&self) -> usize {
        let rank = |d: Option<f64>| d.unwrap_or(f64::INFINITY);
        self.delays
            .iter()
            .filter(|d| rank(d.after) < rank(d.before))
            .count()
    }
}

/// Compares `after` with `before`, scenario by scenario (the n-th report of each).
pub fn compare(before: &[Report], after: &[Report]) -> Vec<RunDiff> {
    before.iter().zip(after).map(|(b, a)| run(b, a)).collect()
}

fn run(b: &Report, a: &Report) -> RunDiff {
    let totals = |r: &Report| {
        [
            r.detected,
            r.false_firings,
            r.false_pages,
            r.refires,
            r.stuck.len(),
        ]
    };
    let (tb, ta) = (totals(b), totals(a));
    let delay = |m: &AnomalyResult| m.delay_s.filter(|_| m.detected);
    let episode = |m: &AnomalyResult| (m.client_id.clone(), m.expect.join("+"), m.start.clone());
    let was: BTreeMap<_, _> = b.results.iter().map(|m| (episode(m), m)).collect();
    let delays = a
        .results
        .iter()
        .filter_map(|m| {
            let w = was.get(&episode(m))?;
            (delay(w) != delay(m)).then(|| DelayMoved {
                client_id: m.client_id.clone(),
                expect: m.expect.join("+"),
                magnitude: m.magnitude,
                before: delay(w),
                after: delay(m),
            })
        })
        .collect();
    let flaps = |r: &Report| -> BTreeMap<_, _> {
        r.flaps
            .iter()
            .map(|f| {
                (
                    (f.client_id.clone(), f.alert.clone(), f.fingerprint.clone()),
                    f.firings,
                )
            })
            .collect()
    };
    let firings = changed(&flaps(b), &flaps(a))
        .map(|((client_id, alert, _), x, y)| FiringsMoved {
            client_id,
            alert,
            before: x.unwrap_or(1),
            after: y.unwrap_or(1),
        })
        .collect();
    let stuck = |r: &Report| -> BTreeMap<_, _> {
        r.stuck
            .iter()
            .map(|s| {
                (
                    (s.client_id.clone(), s.alert.clone(), s.fired.clone()),
                    s.resolved.clone(),
                )
            })
            .collect()
    };
    let stuck = changed(&stuck(b), &stuck(a))
        .map(|((client_id, alert, fired), before, after)| StuckMoved {
            client_id,
            alert,
            fired,
            before,
            after,
        })
        .collect();
    let falses = |r: &Report| -> BTreeMap<_, _> {
        r.false_list
            .iter()
            .map(|f| {
                let (c, a, s) = (&f.client_id, &f.alert, &f.severity);
                ((c.clone(), a.clone(), s.clone(), f.at.clone()), ())
            })
            .collect()
    };
    let false_firings = changed(&falses(b), &falses(a))
        .map(|((client_id, alert, severity, at), _, now)| FalseMoved {
            new: now.is_some(),
            client_id,
            alert,
            severity,
            at,
        })
        .collect();
    RunDiff {
        totals: std::array::from_fn(|i| (tb[i], ta[i])),
        delays,
        firings,
        stuck,
        false_firings,
    }
}

/// The keys of either map whose values differ (a missing key is `None`), with both values.
fn changed<'a, K: Ord + Clone, V: PartialEq + Clone>(
    b: &'a BTreeMap<K, V>,
    a: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (K, Option<V>, Option<V>)> + 'a {
    let keys: BTreeSet<&K> = b.keys().chain(a.keys()).collect();
    keys.into_iter().filter_map(|k| {
        let (x, y) = (b.get(k).cloned(), a.get(k).cloned());
        (x != y).then(|| (k.clone(), x, y))
    })
}

/// The comparison as text, one section per scenario.
pub struct Text<'a>(pub &'a [RunDiff]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mins = |d: Option<f64>| d.map_or("missed".into(), |d| format!("{:.1} min", d / 60.0));
        let resolved = |s: &Option<Option<String>>| match s {
            None => "not stuck".to_string(),
            Some(None) => "never resolved".to_string(),
            Some(Some(at)) => format!("resolved {at}"),
        };
        for (i, r) in self.0.iter().enumerate() {
            writeln!(f, "## scenario {}\n", i + 1)?;
            for (name, (x, y)) in TOTALS.iter().zip(r.totals) {
                let mark = if x == y { "" } else { "  *" };
                writeln!(f, "{name:>14}: {x} -> {y}{mark}")?;
            }
            let sooner = r.sooner();
            writeln!(
                f,
                "\n{} episodes moved: {sooner} sooner, {} later or missed",
                r.delays.len(),
                r.delays.len() - sooner
            )?;
            for d in &r.delays {
                let m = d.magnitude.map_or(String::new(), |m| format!(" {m}x"));
                let (x, y) = (mins(d.before), mins(d.after));
                writeln!(f, "  {} {}{m}: {x} -> {y}", d.client_id, d.expect)?;
            }
            for m in &r.firings {
                let (c, a, x, y) = (&m.client_id, &m.alert, m.before, m.after);
                writeln!(f, "  firings of {c} {a}: {x} -> {y}")?;
            }
            for s in &r.stuck {
                let (x, y) = (resolved(&s.before), resolved(&s.after));
                writeln!(
                    f,
                    "  stuck {} {} fired {}: {x} -> {y}",
                    s.client_id, s.alert, s.fired
                )?;
            }
            for m in &r.false_firings {
                let what = if m.new { "new" } else { "gone" };
                let (c, a, s) = (&m.client_id, &m.alert, &m.severity);
                writeln!(f, "  false firing {what}: {c} {a} {s} at {}", m.at)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{truth, T0};
    use super::super::{score, AlertRecord};
    use super::*;
    use crate::simulate::kind;
    use crate::time::{HOUR_MS, MINUTE_MS};

    fn rec(client: &str, firing: bool, at: i64) -> AlertRecord {
        AlertRecord::new(kind::OVER_CONTRACT, firing, client, at, "warning")
    }

    #[test]
    fn lists_what_moved_episode_by_episode() {
        let t = truth();
        let before = score(
            &t,
            &[
                rec("jumpy", true, T0 + 20 * MINUTE_MS),
                rec("jumpy", false, T0 + 4 * HOUR_MS),
            ],
        );
        // sooner, but resolved inside the episode and fired again; and a false firing
        let after = score(
            &t,
            &[
                rec("jumpy", true, T0 + 5 * MINUTE_MS),
                rec("jumpy", false, T0 + HOUR_MS),
                rec("jumpy", true, T0 + 2 * HOUR_MS),
                rec("jumpy", false, T0 + 4 * HOUR_MS),
                rec("calm", true, T0),
                rec("calm", false, T0 + HOUR_MS),
            ],
        );
        let diff = compare(std::slice::from_ref(&before), &[after]);
        let [d] = &diff[..] else { panic!("{diff:?}") };
        assert_eq!(d.totals[1], (0, 1), "false firings");
        assert_eq!(d.totals[3], (0, 1), "re-fires");
        assert_eq!(
            d.delays,
            [DelayMoved {
                client_id: "jumpy".into(),
                expect: kind::OVER_CONTRACT.into(),
                magnitude: None,
                before: Some(1200.0),
                after: Some(300.0),
            }]
        );
        assert_eq!(d.sooner(), 1);
        assert_eq!(
            d.firings,
            [FiringsMoved {
                client_id: "jumpy".into(),
                alert: kind::OVER_CONTRACT.into(),
                before: 1,
                after: 2,
            }]
        );
        assert!(d.stuck.is_empty(), "{:?}", d.stuck);
        assert!(
            matches!(&d.false_firings[..], [m] if m.new && m.client_id == "calm"),
            "{:?}",
            d.false_firings
        );
        let text = Text(&diff).to_string();
        assert!(
            text.contains("jumpy over_contract: 20.0 min -> 5.0 min"),
            "{text}"
        );
        // a score against itself moves nothing
        let same = compare(std::slice::from_ref(&before), std::slice::from_ref(&before));
        assert!(same[0].delays.is_empty() && same[0].firings.is_empty());
    }

    #[test]
    fn reads_one_report_or_one_per_line_and_refuses_other_files() {
        let r = score(&truth(), &[rec("jumpy", true, T0)]);
        let dir = tempfile::tempdir().unwrap();
        let pretty = dir.path().join("one.json");
        std::fs::write(&pretty, serde_json::to_string_pretty(&r).unwrap()).unwrap();
        assert_eq!(read_reports(&pretty).unwrap().len(), 1);
        // `score --fleet --json`: a report per seed, then the rows
        let fleet = dir.path().join("fleet.json");
        let line = serde_json::to_string(&r).unwrap();
        std::fs::write(
            &fleet,
            format!("{line}\n{line}\n[{{\"detector\":\"x\"}}]\n"),
        )
        .unwrap();
        assert_eq!(read_reports(&fleet).unwrap().len(), 2);
        let other = dir.path().join("alerts.jsonl");
        std::fs::write(&other, "{\"alert\":\"over_contract\"}\n").unwrap();
        let e = read_reports(&other).unwrap_err();
        assert!(e.to_string().contains("no report"), "{e}");
    }
}
