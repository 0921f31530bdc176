//! Reference data: customers (the institutions Vigil watches for) with their contacts by
//! role, and assets (the decree's base information). A route's receiver names roles (`noc`,
//! `cert`, `management`); the incident's customer's contacts with those roles are told, in
//! the order written (customers do not give us their rotas).
//!
//! # Layout
//! - this file: a customer, its checks, and the customers looked up by id.
//! - [`directory`]: what is in force: the configuration's objects (read-only through the
//!   API) and the database's (managed through the API and CSV import), reloaded on change.
//! - [`assets`]: assets, their id format, their change log and its export.
//! - [`import`]: CSV import of customers, all rows or none.
//!
//! # Invariants
//! - One source of truth per object: an id defined in the configuration cannot be created,
//!   changed or deleted through the API (409 saying where it is defined).
//! - A customer or asset is checked field by field before it is stored; the error names the
//!   field.

pub mod assets;
pub mod directory;
pub mod import;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The id incidents carry in `customer` (from the agent or the sender's prefix).
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `fr`, `nl`, `de` or `en`: the language of announcements to its contacts.
    #[serde(default = "default_language")]
    pub language: String,
    /// An IANA time zone: how times are shown to its contacts.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Its address space (`10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// The agents at its edge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Acknowledge-by deadlines per severity for this customer's incidents (`critical =
    /// "5m"`), over `[incidents.acknowledge_within]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acknowledge_within: BTreeMap<String, String>,
    /// Resolve-by deadlines per severity, over `[incidents.resolve_within]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolve_within: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// `noc`, `cert`, `management`, or any role a receiver names.
    pub role: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// E.164 (`+3226501234`): called for announcements with probable danger.
    #[serde(default)]
    pub phone: Option<String>,
    /// Overrides the customer's.
    #[serde(default)]
    pub language: Option<String>,
}

fn default_language() -> String {
    "en".into()
}

fn default_time_zone() -> String {
    "Europe/Brussels".into()
}

pub const LANGUAGES: &[&str] = &["fr", "nl", "de", "en"];

/// A field that is wrong, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    /// `id`, `language`, `contacts[1].phone`, ...
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        field: field.into(),
        message: message.into(),
    }
}

/// Letters, digits, `.`, `_`, `-`; 1 to 64 of them, starting with a letter or digit.
pub fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Customer {
    /// Checks every field; the error names the first bad one.
    pub fn check(&self) -> Result<(), Bad> {
        if !is_id(&self.id) {
            return Err(bad(
                "id",
                format!(
                    "{:?} is not 1 to 64 letters, digits, '.', '_' or '-'",
                    self.id
                ),
            ));
        }
        let language = |field: String, lang: &str| {
            if LANGUAGES.contains(&lang) {
                Ok(())
            } else {
                Err(bad(
                    field,
                    format!("{lang:?} is not one of {}", LANGUAGES.join(", ")),
                ))
            }
        };
        language("language".into(), &self.language)?;
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(bad(
                "time_zone",
                format!("{:?} is not an IANA time zone", self.time_zone),
            ));
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            vigil_schema::prefix::Prefix::parse(p).map_err(|e| bad(format!("prefixes[{i}]"), e))?;
        }
        for (i, a) in self.agents.iter().enumerate() {
            if !is_id(a) {
                return Err(bad(
                    format!("agents[{i}]"),
                    format!("{a:?} is not an agent id"),
                ));
            }
        }
        for (i, k) in self.contacts.iter().enumerate() {
            let at = |f: &str| format!("contacts[{i}].{f}");
            if k.role.trim().is_empty() || k.name.trim().is_empty() {
                return Err(bad(at("role"), "a contact has a role and a name"));
            }
            if let Some(lang) = &k.language {
                language(at("language"), lang)?;
            }
            if let Some(p) = &k.phone
                && !is_e164(p)
            {
                return Err(bad(
                    at("phone"),
                    format!("{p:?} is not in E.164 form (+ and 8 to 15 digits)"),
                ));
            }
            if let Some(e) = &k.email
                && e.parse::<lettre::Address>().is_err()
            {
                return Err(bad(at("email"), format!("{e:?} is not an e-mail address")));
            }
        }
        crate::incidents::deadlines::check_tables(&self.acknowledge_within, &self.resolve_within)
            .map_err(|(field, message)| bad(field, message))
    }
}

/// The customers, looked up by id.
#[derive(Debug, Clone, Default)]
pub struct Customers(Vec<Customer>);

impl Customers {
    /// Checks each customer and that ids are unique; the error names the customer and field.
    pub fn new(list: Vec<Customer>) -> Result<Customers, String> {
        let mut seen = std::collections::HashSet::new();
        for c in &list {
            c.check().map_err(|b| format!("customer {:?}: {b}", c.id))?;
            if !seen.insert(c.id.as_str()) {
                return Err(format!("customer {:?} is defined twice", c.id));
            }
        }
        Ok(Customers(list))
    }

    pub fn all(&self) -> &[Customer] {
        &self.0
    }

    pub fn get(&self, id: &str) -> Option<&Customer> {
        self.0.iter().find(|c| c.id == id)
    }

    /// The contacts of customer `id` with one of `roles`, in the order the roles are named
    /// and then as written.
    pub fn contacts<'a>(&'a self, id: Option<&str>, roles: &'a [String]) -> Vec<&'a Contact> {
        let Some(c) = id.and_then(|id| self.get(id)) else {
            return Vec::new();
        };
        roles
            .iter()
            .flat_map(|r| c.contacts.iter().filter(move |k| &k.role == r))
            .collect()
    }
}

/// `+` then 8 to 15 digits.
pub fn is_e164(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(toml_text: &str) -> Result<Customers, String> {
        #[derive(Deserialize)]
        struct F {
            customers: Vec<Customer>,
        }
        let f: F = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Customers::new(f.customers)
    }

    #[test]
    fn contacts_come_by_role_in_order() {
        let c = customer(
            r#"
[[customers]]
id = "ulb"
language = "fr"
[[customers.contacts]]
role = "cert"
name = "Cert One"
email = "cert@ulb.example"
[[customers.contacts]]
role = "noc"
name = "Noc One"
phone = "+3226501111"
[[customers.contacts]]
role = "noc"
name = "Noc Two"
email = "noc2@ulb.example"
"#,
        )
        .expect("valid");
        let roles = vec!["noc".to_owned(), "cert".to_owned()];
        let names: Vec<&str> = c
            .contacts(Some("ulb"), &roles)
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(names, ["Noc One", "Noc Two", "Cert One"]);
        assert!(c.contacts(Some("kul"), &roles).is_empty());
        assert!(c.contacts(None, &roles).is_empty());
    }

    #[test]
    fn bad_customers_are_named() {
        let e =
            customer("[[customers]]\nid = \"a\"\n[[customers]]\nid = \"a\"\n").expect_err("twice");
        assert!(e.contains("\"a\" is defined twice"), "{e}");
        let e = customer("[[customers]]\nid = \"a\"\nlanguage = \"es\"\n").expect_err("language");
        assert!(e.contains("language: \"es\""), "{e}");
        let e = customer(
            "[[customers]]\nid = \"a\"\n[[customers.contacts]]\nrole = \"noc\"\nname = \"N\"\nphone = \"02 650 11 11\"\n",
        )
        .expect_err("phone");
        assert!(
            e.contains("contacts[0].phone") && e.contains("E.164"),
            "{e}"
        );
        let e = customer(
            "[[customers]]\nid = \"a\"\n[[customers.contacts]]\nrole = \"noc\"\nname = \"N\"\nemail = \"not an address\"\n",
        )
        .expect_err("email");
        assert!(e.contains("not an e-mail address"), "{e}");
    }
}
