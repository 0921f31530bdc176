//! Reference data the notifications need: customers (the institutions Vigil watches for) and
//! their contacts by role. A route's receiver names roles (`noc`, `cert`, `management`); the
//! incident's customer's contacts with those roles are told, in the order written (customers
//! do not give us their rotas).
//!
//! Defined in the configuration (`[[customers]]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The id incidents carry in `customer` (from the agent or the sender's prefix).
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `fr`, `nl`, `de` or `en`: the language of announcements to its contacts.
    #[serde(default = "default_language")]
    pub language: String,
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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

pub const LANGUAGES: &[&str] = &["fr", "nl", "de", "en"];

/// The customers, looked up by id.
#[derive(Debug, Clone, Default)]
pub struct Customers(Vec<Customer>);

impl Customers {
    /// Checks ids are unique and fields well formed; the error names the customer.
    pub fn new(list: Vec<Customer>) -> Result<Customers, String> {
        let mut seen = std::collections::HashSet::new();
        for c in &list {
            if c.id.trim().is_empty() {
                return Err("a customer has an empty id".into());
            }
            if !seen.insert(c.id.as_str()) {
                return Err(format!("customer {:?} is defined twice", c.id));
            }
            for lang in std::iter::once(&c.language)
                .chain(c.contacts.iter().filter_map(|k| k.language.as_ref()))
            {
                if !LANGUAGES.contains(&lang.as_str()) {
                    return Err(format!(
                        "customer {:?}: language {lang:?} is not one of {}",
                        c.id,
                        LANGUAGES.join(", ")
                    ));
                }
            }
            for k in &c.contacts {
                if let Some(p) = &k.phone
                    && !is_e164(p)
                {
                    return Err(format!(
                        "customer {:?}: contact {:?}: phone {p:?} is not in E.164 form (+ and 8 to 15 digits)",
                        c.id, k.name
                    ));
                }
                if let Some(e) = &k.email
                    && e.parse::<lettre::Address>().is_err()
                {
                    return Err(format!(
                        "customer {:?}: contact {:?}: {e:?} is not an e-mail address",
                        c.id, k.name
                    ));
                }
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
        assert!(e.contains("language \"es\""), "{e}");
        let e = customer(
            "[[customers]]\nid = \"a\"\n[[customers.contacts]]\nrole = \"noc\"\nname = \"N\"\nphone = \"02 650 11 11\"\n",
        )
        .expect_err("phone");
        assert!(e.contains("E.164"), "{e}");
        let e = customer(
            "[[customers]]\nid = \"a\"\n[[customers.contacts]]\nrole = \"noc\"\nname = \"N\"\nemail = \"not an address\"\n",
        )
        .expect_err("email");
        assert!(e.contains("not an e-mail address"), "{e}");
    }
}
