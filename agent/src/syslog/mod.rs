//! Syslog source: listeners ([`listener`], TLS from [`tls`], streams cut into messages by
//! [`framing`]) and the parser that turns one message into an
//! event with the syslog fields of DESIGN.md ([`parse`]), and the times at the start of lines that
//! are not syslog ([`timestamp`]); authentication messages read into fields ([`auth`]), and
//! web server and proxy access logs ([`access`]), and firewall verdicts ([`firewall`]).

pub mod access;
pub mod auth;
pub mod firewall;
pub mod framing;
pub mod listener;
pub mod parse;
pub mod timestamp;
pub mod tls;
