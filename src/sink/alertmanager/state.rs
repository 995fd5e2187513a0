//! Delivery state: what each Alertmanager URL is owed. Pure, so the bookkeeping is
//! unit-tested without I/O.
//!
//! Per URL, what is owed is one entry per fingerprint (the latest firing transition and the
//! latest undelivered resolve), so the state stays bounded by the number of distinct alerts
//! however long an outage lasts.

use std::collections::BTreeMap;

use super::config::AlertmanagerConfig;
use super::mapping::{to_postable, PostableAlert};
use crate::alert::{Alert, State};
use crate::time::Millis;

/// Alerts per request. Prometheus sends at most 64; larger batches are fine for Alertmanager
/// but one invalid alert makes it answer 400 for the whole request, so keep them moderate.
pub(super) const MAX_BATCH: usize = 256;

/// Each transition gets a sequence number, so a transition that arrives while a request for
/// the same fingerprint is in flight is not mistaken for delivered when that request succeeds.
pub(super) type Seq = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Firing,
    Resolve,
}

/// One alert in a request, to settle when the request completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sent {
    fingerprint: String,
    seq: Seq,
    kind: Kind,
}

#[derive(Debug, Default)]
pub(super) struct Owed {
    /// Firing alerts to (re-)send: fingerprint → seq of the firing transition.
    firing: BTreeMap<String, Seq>,
    /// Resolves not yet delivered: a resolve is sent once, not re-sent, so it must stay here
    /// until it is.
    resolves: BTreeMap<String, (Seq, Alert)>,
}

impl Owed {
    pub(super) fn len(&self) -> usize {
        self.firing.len() + self.resolves.len()
    }
}

#[derive(Debug)]
pub(super) struct Delivery {
    /// Currently firing alerts, by fingerprint.
    firing: BTreeMap<String, (Seq, Alert)>,
    owed: Vec<Owed>,
    seq: Seq,
}

impl Delivery {
    pub(super) fn new(targets: usize) -> Self {
        Delivery {
            firing: BTreeMap::new(),
            owed: (0..targets).map(|_| Owed::default()).collect(),
            seq: 0,
        }
    }

    pub(super) fn ingest(&mut self, alert: Alert) {
        if self.owed.is_empty() {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        let fp = alert.fingerprint.clone();
        match alert.state {
            State::Firing => {
                for o in &mut self.owed {
                    o.firing.insert(fp.clone(), seq);
                }
                self.firing.insert(fp, (seq, alert));
            }
            State::Resolved => {
                self.firing.remove(&fp);
                for o in &mut self.owed {
                    o.firing.remove(&fp);
                    o.resolves.insert(fp.clone(), (seq, alert.clone()));
                }
            }
        }
    }

    pub(super) fn forget(&mut self, fingerprint: &str) {
        self.firing.remove(fingerprint);
        for o in &mut self.owed {
            o.firing.remove(fingerprint);
        }
    }

    /// The re-send: every firing alert is owed again to this target.
    pub(super) fn resend_all(&mut self, target: usize) {
        if let Some(o) = self.owed.get_mut(target) {
            for (fp, (seq, _)) in &self.firing {
                o.firing.insert(fp.clone(), *seq);
            }
        }
    }

    pub(super) fn is_owed(&self, target: usize) -> bool {
        self.owed.get(target).is_some_and(|o| o.len() > 0)
    }

    pub(super) fn pending(&self) -> usize {
        self.owed.iter().map(Owed::len).sum()
    }

    /// The next request for `target`: resolves first, so that a resolve of an old episode
    /// reaches Alertmanager before the firing of a new episode of the same alert.
    pub(super) fn batch(
        &self,
        target: usize,
        cfg: &AlertmanagerConfig,
        now: Millis,
    ) -> (Vec<PostableAlert>, Vec<Sent>) {
        let mut body = Vec::new();
        let mut sent = Vec::new();
        let Some(o) = self.owed.get(target) else {
            return (body, sent);
        };
        for (fp, (seq, a)) in o.resolves.iter().take(MAX_BATCH) {
            body.push(to_postable(a, cfg, now));
            sent.push(Sent {
                fingerprint: fp.clone(),
                seq: *seq,
                kind: Kind::Resolve,
            });
        }
        for (fp, seq) in &o.firing {
            if body.len() >= MAX_BATCH {
                break;
            }
            if let Some((_, a)) = self.firing.get(fp) {
                body.push(to_postable(a, cfg, now));
                sent.push(Sent {
                    fingerprint: fp.clone(),
                    seq: *seq,
                    kind: Kind::Firing,
                });
            }
        }
        (body, sent)
    }

    /// Settle a request that Alertmanager accepted (or rejected for good): what it carried is
    /// no longer owed, unless a newer transition for the same alert arrived meanwhile.
    pub(super) fn settle(&mut self, target: usize, sent: &[Sent]) {
        let Some(o) = self.owed.get_mut(target) else {
            return;
        };
        for s in sent {
            match s.kind {
                Kind::Firing => {
                    if o.firing.get(&s.fingerprint) == Some(&s.seq) {
                        o.firing.remove(&s.fingerprint);
                    }
                }
                Kind::Resolve => {
                    if o.resolves.get(&s.fingerprint).map(|r| r.0) == Some(s.seq) {
                        o.resolves.remove(&s.fingerprint);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{alert, cfg, T0};
    use super::*;
    use crate::time::format_rfc3339;

    fn kinds(sent: &[Sent]) -> Vec<(&str, Kind)> {
        sent.iter()
            .map(|s| (s.fingerprint.as_str(), s.kind))
            .collect()
    }

    #[test]
    fn delivered_alerts_are_settled_and_firing_ones_come_back_on_resend() {
        let c = cfg();
        let mut d = Delivery::new(2);
        let a = alert(State::Firing, "a", T0, T0);
        d.ingest(a.clone());
        assert_eq!(d.pending(), 2);
        let (body, sent) = d.batch(0, &c, T0);
        assert_eq!(body.len(), 1);
        d.settle(0, &sent);
        assert!(!d.is_owed(0));
        // the other URL still owes it
        assert!(d.is_owed(1));
        d.resend_all(0);
        assert_eq!(
            kinds(&d.batch(0, &c, T0).1),
            [(a.fingerprint.as_str(), Kind::Firing)]
        );
    }

    #[test]
    fn resolve_before_delivery_sends_only_the_resolve_and_then_forgets_it() {
        let c = cfg();
        let mut d = Delivery::new(1);
        let f = alert(State::Firing, "a", T0, T0);
        d.ingest(f.clone());
        d.ingest(alert(State::Resolved, "a", T0 + 60_000, T0));
        let (body, sent) = d.batch(0, &c, T0 + 120_000);
        assert_eq!(kinds(&sent), [(f.fingerprint.as_str(), Kind::Resolve)]);
        assert_eq!(body[0].ends_at, format_rfc3339(T0 + 60_000));
        d.settle(0, &sent);
        assert_eq!(d.pending(), 0);
        d.resend_all(0);
        assert_eq!(d.pending(), 0, "resolved alerts are not re-sent");
    }

    #[test]
    fn a_resolve_goes_before_the_next_episode_of_the_same_alert() {
        let c = cfg();
        let mut d = Delivery::new(1);
        d.ingest(alert(State::Firing, "a", T0, T0));
        d.ingest(alert(State::Resolved, "a", T0 + 60_000, T0));
        d.ingest(alert(State::Firing, "a", T0 + 180_000, T0 + 180_000));
        let (body, sent) = d.batch(0, &c, T0 + 200_000);
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].kind, sent[1].kind), (Kind::Resolve, Kind::Firing));
        assert_eq!(body[1].starts_at, format_rfc3339(T0 + 180_000));
    }

    #[test]
    fn a_transition_arriving_during_a_request_is_not_settled_by_it() {
        let c = cfg();
        let mut d = Delivery::new(1);
        let fp = alert(State::Firing, "a", T0, T0).fingerprint;
        d.ingest(alert(State::Firing, "a", T0, T0));
        let (_, in_flight) = d.batch(0, &c, T0);
        d.ingest(alert(State::Resolved, "a", T0 + 60_000, T0));
        d.settle(0, &in_flight);
        assert_eq!(kinds(&d.batch(0, &c, T0).1), [(fp.as_str(), Kind::Resolve)]);
        // and a resolve superseded by a newer resolve stays owed too
        let (_, first) = d.batch(0, &c, T0);
        d.ingest(alert(State::Firing, "a", T0 + 120_000, T0 + 120_000));
        d.ingest(alert(State::Resolved, "a", T0 + 180_000, T0 + 120_000));
        d.settle(0, &first);
        assert!(d.is_owed(0));
    }

    #[test]
    fn batches_are_bounded() {
        let c = cfg();
        let mut d = Delivery::new(1);
        for i in 0..(MAX_BATCH + 10) {
            d.ingest(alert(State::Firing, &format!("c{i}"), T0, T0));
        }
        let (body, sent) = d.batch(0, &c, T0);
        assert_eq!(body.len(), MAX_BATCH);
        d.settle(0, &sent);
        assert_eq!(d.batch(0, &c, T0).0.len(), 10);
    }

    #[test]
    fn disabled_sink_keeps_nothing() {
        let mut d = Delivery::new(0);
        d.ingest(alert(State::Firing, "a", T0, T0));
        assert!(d.firing.is_empty());
        assert_eq!(d.pending(), 0);
    }
}
