//! overage: per-client API consumption in event time, checked against contracts and learned
//! baselines, with alerts when a client overruns.
//!
//! # Layout
//!
//! The pipeline, one module per stage, in the order an event flows through it:
//!
//! - [`decode`]: bytes → [`decode::Event`] (canonical JSON or Kong logs), or a bounded
//!   [`decode::Reject`] reason. Never panics, never fatal.
//! - [`dedupe`]: repeated `event_id`s within a horizon are counted once.
//! - [`engine`]: owns a shard of clients; event-time watermark, evaluation schedule, eviction.
//!   `replay` and the service both go through [`engine::Engine::ingest`].
//! - [`client`]: the fixed-size state of one client (windows, usage, scope counters, alerts).
//! - [`sparse`]: a client of a few calls, kept as those calls until it needs full windows.
//! - [`packed`]: a full client gone quiet, compressed until it calls again.
//! - [`rollup`]: exact usage by product and origin (hours, then days), for reports.
//! - [`window`]: minute / hour / day bucket rings and exact window sums.
//! - [`baseline`]: the learned seasonal baseline (hour of day × weekday).
//! - [`detect`]: pure detectors, state at a minute boundary → verdicts. One file per detector
//!   (`over_contract`, `baseline_jump`, `cap`, `scope`, `new_origin`), each owning its config
//!   section, parameters, verdicts and alert summary; `detect/mod.rs` holds the `Detector` trait
//!   and the registry the engine loops over, `stats` and `volume` what detectors share.
//! - [`drivers`]: which product, endpoint or origin an excess comes from.
//! - [`alert`]: verdicts → firing / resolved transitions with hysteresis; the alert JSON.
//! - [`contract`] and [`config`]: the two input files, validated with precise errors.
//! - [`checkpoint`]: a partition's state and offset, encoded and kept in a durable store.
//! - [`replay`]: recorded events (JSONL, gzip, stdin) through the engine, or through one
//!   engine per thread with the clients split between them.
//! - [`simulate`], [`score`], [`peers`] and [`quality`]: labelled scenarios (a hand-written
//!   month, or a fleet sampled from distributions), graded against their truth side by side
//!   with the Prometheus rules users would write instead.
//! - [`report`]: usage reports (CSV, JSON, self-contained HTML with SVG charts) from the
//!   usage history, over recorded events or a running service's usage API.
//! - [`board`]: the read model: each engine's clients worth showing, published each minute so
//!   that readers never walk clients under the engine's lock.
//! - [`sink`]: where transitions go, one file per destination behind the
//!   [`sink::AlertSink`] trait (log, Kafka alerts topic, Alertmanager, webhook), each with its
//!   own queue and backoff; `sink::build` makes the configured ones.
//! - [`service`]: `overage run`: the Kafka consumer, the router fanning transitions out to the
//!   sinks, checkpoints, and the HTTP API, status pages and metrics.
//!
//! Support: [`time`] (event-time arithmetic), [`intern`] (bounded label ids), [`redact`] (what
//! a secret looks like and how it is shown; a leaf every layer may use).
//!
//! Everything under `engine` is synchronous and clock-free: time is the events' time, so a
//! replay of a file and the live service compute the same alerts.

pub mod alert;
pub mod baseline;
pub mod board;
pub mod checkpoint;
pub mod client;
pub mod config;
pub mod contract;
pub mod decode;
pub mod dedupe;
pub mod demo;
pub mod detect;
pub mod drivers;
pub mod engine;
pub mod intern;
pub mod packed;
pub mod peers;
pub mod quality;
pub mod redact;
pub mod replay;
pub mod report;
pub mod rollup;
pub mod score;
pub mod service;
pub mod simulate;
pub mod sink;
pub mod sparse;
pub mod time;
pub mod window;
