//! `vigil-collector`: receives batches from agents, makes them durable, indexes them and
//! answers searches; the `vigil` binary is its command line.
//!
//! # Layout
//! - [`config`]: the TOML configuration, strict about unknown keys.
//! - [`wal`]: the write-ahead log behind every acknowledgement.
//! - [`ingest`]: what a batch's events get at ingest (agent, id, time, flow fields).
//! - [`index`]: the Tantivy index: schema, the writer thread, search.
//! - [`detect`]: Sigma rules and correlations on every event; alerts.
//! - [`incidents`]: the queue alerts become, and its lifecycle (SQLite or PostgreSQL).
//! - [`notify`]: who is told about an incident, by which channel, through an outbox.
//! - [`reference`]: customers and their contacts by role.
//! - [`oncall`]: our own people and on-call rotas, with temporary overrides.
//! - [`uptime`]: heartbeats (push checks pinged by jobs and services).
//! - [`api`]: the HTTP API (`fn app(state) -> Router`) and its one error type.
//! - [`server`]: the collector as a whole: open, serve, ordered shutdown.
//! - [`cli`]: the client side of `vigil search`.
//! - [`up`]: `vigil up`, a collector and an in-process agent with embedded defaults.
//! - [`metrics`]: every metric the collector exports.

pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod detect;
pub mod incidents;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod oncall;
pub mod reference;
pub mod server;
pub mod up;
pub mod uptime;
pub mod wal;
