//! End-to-end tests: the real `vigil` and `vigil-agent` binaries, real sockets, real peers.
//! One test binary (ripgrep style); one module per concern.

mod agents;
mod bad_input;
mod checks;
mod console;
mod delivery;
mod detect;
mod file;
mod flows;
mod heartbeats;
mod hunt;
mod incidents;
mod loghub;
mod metrics;
mod notify;
mod quickstart;
mod reference;
mod syslog;
mod up;
