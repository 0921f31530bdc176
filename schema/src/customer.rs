//! Customers as the collector hands them to agents (`GET /api/v1/agents/customers`): which
//! prefixes and agents are whose. The collector's customers (configuration, API, CSV) are
//! the one place their address space is written; agents attribute events with it at the
//! edge, where the sender's address is known.

use serde::{Deserialize, Serialize};

/// One customer's address space and agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSpace {
    pub id: String,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub agents: Vec<String>,
}

/// What an agent fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerList {
    pub customers: Vec<CustomerSpace>,
}
