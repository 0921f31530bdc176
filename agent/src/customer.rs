//! Customer attribution: which of the ~200 customer institutions an event belongs to.
//!
//! Precedence: the listener's `customer` (a port dedicated to one customer), then the
//! longest configured prefix that contains the sender's address, then the agent's `customer`.

use std::net::IpAddr;

use serde::Deserialize;

/// `[[customers]]` in the agent config: a customer and the sender prefixes that are theirs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerConfig {
    pub name: String,
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Time zone of this customer's devices' timestamps that carry no offset (RFC 3164,
    /// most application logs), unless the source names one.
    #[serde(default, deserialize_with = "crate::config::de_opt_tz")]
    pub timezone: Option<chrono_tz::Tz>,
}

pub use vigil_schema::prefix::Prefix;

/// All configured prefixes; lookups pick the longest match.
#[derive(Debug, Default)]
pub struct CustomerMap {
    prefixes: Vec<(Prefix, String)>,
    zones: std::collections::HashMap<String, chrono_tz::Tz>,
}

impl CustomerMap {
    pub fn new(customers: &[CustomerConfig]) -> Result<CustomerMap, String> {
        let mut prefixes = Vec::new();
        let mut zones = std::collections::HashMap::new();
        for c in customers {
            if c.name.is_empty() {
                return Err("a customer needs a name".into());
            }
            if let Some(z) = c.timezone {
                zones.insert(c.name.clone(), z);
            }
            for p in &c.prefixes {
                prefixes.push((Prefix::parse(p)?, c.name.clone()));
            }
        }
        // Longest first, so the first match is the most specific.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.length()));
        Ok(CustomerMap { prefixes, zones })
    }

    /// The customer of an event from `sender`, in the precedence of the module docs.
    pub fn attribute<'a>(
        &'a self,
        listener: Option<&'a str>,
        sender: IpAddr,
        agent: Option<&'a str>,
    ) -> Option<&'a str> {
        listener.or_else(|| self.lookup(sender)).or(agent)
    }

    /// The time zone configured for `customer`.
    pub fn zone(&self, customer: &str) -> Option<chrono_tz::Tz> {
        self.zones.get(customer).copied()
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(p, _)| p.contains(ip))
            .map(|(_, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_for_v4_and_v6() {
        let map = CustomerMap::new(&[
            CustomerConfig {
                name: "belnet".into(),
                prefixes: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                timezone: None,
            },
            CustomerConfig {
                name: "ulb".into(),
                prefixes: vec!["10.1.0.0/16".into(), "2001:db8:1::/48".into()],
                timezone: None,
            },
            CustomerConfig {
                name: "one-host".into(),
                prefixes: vec!["10.1.2.3".into()],
                timezone: None,
            },
        ])
        .expect("valid");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(map.lookup(ip("10.9.9.9")), Some("belnet"));
        assert_eq!(map.lookup(ip("10.1.9.9")), Some("ulb"));
        assert_eq!(map.lookup(ip("10.1.2.3")), Some("one-host"));
        assert_eq!(map.lookup(ip("11.0.0.1")), None);
        assert_eq!(map.lookup(ip("2001:db8:1::5")), Some("ulb"));
        assert_eq!(map.lookup(ip("2001:db8:2::5")), Some("belnet"));
        // An IPv4 prefix never matches an unrelated IPv6 address.
        assert_eq!(map.lookup(ip("::1")), None);
    }

    #[test]
    fn bad_prefixes_are_named() {
        for bad in ["10.0.0.0/33", "nonsense", "2001:db8::/129", "10.0.0.0/x"] {
            let err = Prefix::parse(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }
}
