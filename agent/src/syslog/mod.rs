//! Syslog source: listeners ([`listener`]) and the parser that turns one message into an
//! event with the syslog fields of DESIGN.md ([`parse`]).

pub mod listener;
pub mod parse;
