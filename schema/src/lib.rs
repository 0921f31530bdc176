//! `vigil-schema`: the only contract between a Vigil agent and a Vigil collector.
//!
//! # Layout
//! - [`event`]: one flat, ECS-style event (a JSON object to everyone outside), with typed
//!   helpers for the fields named in DESIGN.md ([`fields`] holds their names, in one place).
//! - [`flow`] and [`community_id`]: what the collector derives from a flow event at ingest,
//!   which agents leave out.
//! - [`check`]: uptime checks as the collector hands them to agents.
//! - [`config`]: what the configurations of agent and collector share (errors, durations).
//! - [`prefix`]: IP prefixes, as customers' address space is written; [`customer`]: whose
//!   prefixes and agents are whose, as the collector hands them to agents.
//! - [`wire`]: how a batch of events travels from agent to collector: a small binary
//!   header (magic, version, checksum, length) in front of a zstd-compressed body, binary
//!   ([`binary`]) since version 2, JSON in version 1.
//!
//! # Invariants
//! - An event is always a JSON object; the wire format never carries anything else.
//! - A collector decodes every wire version up to [`wire::CURRENT_VERSION`], so an older
//!   agent keeps working against a newer collector.
//! - Decoding is hostile-input safe: every length is bounded before it is used.

pub mod binary;
pub mod cap;
pub mod check;
pub mod community_id;
pub mod config;
pub mod customer;
pub mod event;
pub mod fields;
pub mod flow;
pub mod prefix;
pub mod wire;

pub use event::{Event, EventKind, Fields};
pub use wire::{Batch, DecodeError};
