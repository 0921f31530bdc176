//! Harness for Vigil's end-to-end tests and benchmark drivers: runs the real `vigil` and
//! `vigil-agent` binaries in temporary directories, sends real syslog over real sockets, and
//! reads results through the real HTTP API.
//!
//! # Layout
//! - [`process`]: binaries and peers as child processes; waits with deadlines.
//! - [`services`]: a collector and agents with their configurations.
//! - [`client`]: syslog, the search API and `/metrics`, as a user reaches them.
//! - [`browser`]: a headless Chromium through chromedriver, with screenshots.
//! - [`netns`]: network namespaces and veth pairs.
//! - [`pcap`]: per-connection totals of a pcap (from `tcpdump -r`) and of stored flows.
//! - [`sink`]: an HTTP server that records requests (a voice gateway, a webhook receiver).
//! - [`smtp`]: a real SMTP server (aiosmtpd) writing a maildir, and the messages in it.
//! - [`workload`]: the benchmark drivers' event mixes.
//!
//! Every wait has a deadline; on a timeout the panic message carries the tail of the logs of
//! the processes involved.

#[path = "../support/skip.rs"]
mod skip_support;
pub use skip_support::skip;

pub mod alertmanager;
pub mod browser;
pub mod client;
pub mod netns;
pub mod pcap;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod services;
pub mod sink;
pub mod smtp;
pub mod workload;

pub use client::*;
pub use netns::*;
pub use pcap::*;
pub use process::*;
pub use services::*;
