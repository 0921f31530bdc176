//! Customer attribution: which of the ~200 customer institutions an event belongs to.
//!
//! Precedence: the listener's `customer` (a port dedicated to one customer), then the
//! longest prefix that contains the sender's address, then the agent's `customer`, then the
//! customer that names this agent among its `agents`.
//!
//! The prefixes are the collector's customers' (`GET /api/v1/agents/customers`, fetched with
//! the checks and kept beside the spool, so a restart without the collector still
//! attributes), and this agent's own `[[customers]]`, whose prefixes a collector's customer
//! wins over at equal length. A change on the collector reaches the listeners at the next
//! fetch: the map is replaced whole, never seen half made.

use std::net::IpAddr;
use std::sync::Arc;

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

use vigil_schema::customer::CustomerList;
pub use vigil_schema::prefix::Prefix;

/// The map in force, which the collector's customers replace as they change.
pub struct Customers {
    map: arc_swap::ArcSwap<CustomerMap>,
    own: Vec<CustomerConfig>,
    agent_id: String,
}

impl Customers {
    /// This agent's own `[[customers]]` and, if any, the collector's last fetched.
    pub fn new(
        own: &[CustomerConfig],
        fetched: Option<&CustomerList>,
        agent_id: &str,
    ) -> Result<Customers, String> {
        let map =
            CustomerMap::with_fetched(own, fetched.unwrap_or(&CustomerList::default()), agent_id)?;
        Ok(Customers {
            map: arc_swap::ArcSwap::from_pointee(map),
            own: own.to_vec(),
            agent_id: agent_id.to_owned(),
        })
    }

    /// The map in force now.
    pub fn load(&self) -> Arc<CustomerMap> {
        self.map.load_full()
    }

    /// Puts the collector's `fetched` customers in force.
    pub fn replace(&self, fetched: &CustomerList) {
        // The own part was checked at start: it cannot fail now.
        if let Ok(map) = CustomerMap::with_fetched(&self.own, fetched, &self.agent_id) {
            self.map.store(Arc::new(map));
        }
    }
}

/// Fetches the collector's customers every `checks_refresh` and puts them in force, until
/// `shutdown`; keeps each new list in `cache`.
pub async fn follow(
    target: crate::config::CollectorTarget,
    cache: std::path::PathBuf,
    customers: Arc<Customers>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(target.timeout)
        .build()
        .unwrap_or_default();
    let url = format!(
        "{}/api/v1/agents/customers",
        target.url.trim_end_matches('/')
    );
    let mut last: Option<CustomerList> = crate::fetched::kept(&cache);
    loop {
        match crate::fetched::get::<CustomerList>(&client, &url, &target.token).await {
            Ok(fresh) if last.as_ref() != Some(&fresh) => {
                customers.replace(&fresh);
                crate::fetched::keep(&cache, &fresh);
                tracing::info!(
                    customers = fresh.customers.len(),
                    "the collector's customers are in force"
                );
                last = Some(fresh);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "customers not fetched; the last ones stay"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(target.checks_refresh) => {}
        }
    }
}

/// Where the collector's customers last fetched are kept (beside the spool).
pub fn cache_file(spool_dir: &std::path::Path) -> std::path::PathBuf {
    spool_dir.join("customers.json")
}

/// All prefixes; lookups pick the longest match.
#[derive(Debug, Default)]
pub struct CustomerMap {
    prefixes: Vec<(Prefix, String)>,
    zones: std::collections::HashMap<String, chrono_tz::Tz>,
    /// The collector's customer naming this agent among its agents.
    of_agent: Option<String>,
}

impl CustomerMap {
    pub fn new(customers: &[CustomerConfig]) -> Result<CustomerMap, String> {
        Self::with_fetched(customers, &CustomerList::default(), "")
    }

    /// This agent's own `customers` with the collector's `fetched` (whose prefixes win at
    /// equal length); `agent_id` finds the customer naming this agent. A fetched prefix that
    /// does not parse is left out (logged): the collector checked it, a newer one may write
    /// what this agent does not know.
    pub fn with_fetched(
        customers: &[CustomerConfig],
        fetched: &CustomerList,
        agent_id: &str,
    ) -> Result<CustomerMap, String> {
        let mut prefixes = Vec::new();
        for c in &fetched.customers {
            for p in &c.prefixes {
                match Prefix::parse(p) {
                    Ok(p) => prefixes.push((p, c.id.clone())),
                    Err(e) => {
                        tracing::warn!(customer = %c.id, error = %e, "a collector's customer prefix is left out")
                    }
                }
            }
        }
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
        // Longest first, so the first match is the most specific; the sort is stable, so
        // the collector's come first among equals.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.length()));
        let of_agent = fetched
            .customers
            .iter()
            .find(|c| !agent_id.is_empty() && c.agents.iter().any(|a| a == agent_id))
            .map(|c| c.id.clone());
        Ok(CustomerMap {
            prefixes,
            zones,
            of_agent,
        })
    }

    /// The customer of an event from `sender`, in the precedence of the module docs.
    pub fn attribute<'a>(
        &'a self,
        listener: Option<&'a str>,
        sender: IpAddr,
        agent: Option<&'a str>,
    ) -> Option<&'a str> {
        listener
            .or_else(|| self.lookup(sender))
            .or(agent)
            .or(self.of_agent.as_deref())
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
    fn the_collector_s_customers_join_the_agent_s_and_win_at_equal_length() {
        let own = [CustomerConfig {
            name: "local".into(),
            prefixes: vec!["10.0.0.0/8".into(), "192.0.2.0/24".into()],
            timezone: Some(chrono_tz::Europe::Brussels),
        }];
        let fetched: CustomerList = serde_json::from_value(serde_json::json!({"customers": [
            {"id": "ulb", "prefixes": ["10.1.0.0/16", "192.0.2.0/24", "not a prefix"]},
            {"id": "vub", "agents": ["edge-1"]},
        ]}))
        .expect("list");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let c = Customers::new(&own, None, "edge-1").expect("valid");
        let before = c.load();
        assert_eq!(before.attribute(None, ip("10.1.2.3"), None), Some("local"));
        assert_eq!(before.attribute(None, ip("203.0.113.1"), None), None);
        c.replace(&fetched);
        let map = c.load();
        // Longer: the collector's; equal: the collector's; only the agent's: the agent's.
        assert_eq!(map.attribute(None, ip("10.1.2.3"), None), Some("ulb"));
        assert_eq!(map.attribute(None, ip("192.0.2.9"), None), Some("ulb"));
        assert_eq!(map.attribute(None, ip("10.9.9.9"), None), Some("local"));
        // No prefix: the agent's own `customer`, else the customer naming this agent.
        assert_eq!(
            map.attribute(None, ip("203.0.113.1"), Some("cfg")),
            Some("cfg")
        );
        assert_eq!(map.attribute(None, ip("203.0.113.1"), None), Some("vub"));
        // A listener's customer comes first; zones stay the agent's own.
        assert_eq!(
            map.attribute(Some("port"), ip("10.1.2.3"), None),
            Some("port")
        );
        assert_eq!(map.zone("local"), Some(chrono_tz::Europe::Brussels));
        // What was loaded before the change is whole, as it was.
        assert_eq!(before.attribute(None, ip("10.1.2.3"), None), Some("local"));
        // Another agent: no customer names it.
        let other = Customers::new(&own, Some(&fetched), "edge-2").expect("valid");
        assert_eq!(other.load().attribute(None, ip("203.0.113.1"), None), None);
    }

    #[test]
    fn bad_prefixes_are_named() {
        for bad in ["10.0.0.0/33", "nonsense", "2001:db8::/129", "10.0.0.0/x"] {
            let err = Prefix::parse(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }
}
