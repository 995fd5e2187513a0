//! Sinks: where alert transitions go once the engine has produced them.
//!
//! The engine is synchronous and clock-free; delivering alerts is neither (networks fail,
//! receivers restart, re-sends run on the wall clock). Each sink is an async task behind a
//! bounded queue, so a slow or unreachable receiver slows the pipeline down (backpressure)
//! instead of losing transitions or blocking detection logic on I/O.

pub mod alertmanager;
