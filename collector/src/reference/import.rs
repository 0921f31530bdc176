//! Customers from CSV (`vigil customers import FILE.csv`, `POST /api/v1/customers/import`):
//! one row per contact, the customer's columns repeated (or left empty) on its other rows; a
//! customer without contacts is one row with the contact columns empty.
//!
//! Columns (a header row names them, in any order; only `id` is required): `id`, `name`,
//! `language`, `time_zone`, `prefixes` and `agents` (separated by spaces), `role`,
//! `contact_name`, `email`, `phone`, `contact_language`.
//!
//! # Invariants
//! - Every row is read and checked before anything is stored; the first bad one is named by
//!   its line and column, and nothing is imported.

use std::collections::BTreeMap;

use super::{Bad, Contact, Customer, default_language, default_time_zone};

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "language",
    "time_zone",
    "prefixes",
    "agents",
    "role",
    "contact_name",
    "email",
    "phone",
    "contact_language",
];

/// Most rows taken in one import.
pub const MAX_ROWS: usize = 20_000;

fn at(line: u64, column: &str, message: impl Into<String>) -> Bad {
    Bad {
        field: format!("line {line}, column {column}"),
        message: message.into(),
    }
}

struct Draft {
    customer: Customer,
    /// The line each customer-level column was set on, and the line of each contact.
    line: u64,
    contact_lines: Vec<u64>,
}

/// The customers of `text`, each with the line it starts on, checked.
pub fn customers(text: &str) -> Result<Vec<(u64, Customer)>, Bad> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| at(1, "-", e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    for h in &header {
        if !COLUMNS.contains(&h.as_str()) {
            return Err(at(
                1,
                h,
                format!("unknown column (columns: {})", COLUMNS.join(", ")),
            ));
        }
    }
    if !header.iter().any(|h| h == "id") {
        return Err(at(1, "id", "the header has no id column"));
    }
    let mut drafts: Vec<Draft> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (n, record) in reader.records().enumerate() {
        if n >= MAX_ROWS {
            return Err(at(n as u64 + 2, "-", format!("more than {MAX_ROWS} rows")));
        }
        let record = record.map_err(|e| {
            let line = e.position().map_or(n as u64 + 2, |p| p.line());
            at(line, "-", e.to_string())
        })?;
        let line = record.position().map_or(n as u64 + 2, |p| p.line());
        let get = |col: &str| -> &str {
            header
                .iter()
                .position(|h| h == col)
                .and_then(|i| record.get(i))
                .unwrap_or("")
        };
        let id = get("id");
        if id.is_empty() {
            return Err(at(line, "id", "empty"));
        }
        let slot = match index.get(id) {
            Some(&i) => i,
            None => {
                index.insert(id.to_owned(), drafts.len());
                drafts.push(Draft {
                    customer: Customer {
                        id: id.to_owned(),
                        name: None,
                        language: default_language(),
                        time_zone: default_time_zone(),
                        prefixes: Vec::new(),
                        agents: Vec::new(),
                        contacts: Vec::new(),
                        acknowledge_within: BTreeMap::new(),
                        resolve_within: BTreeMap::new(),
                    },
                    line,
                    contact_lines: Vec::new(),
                });
                drafts.len() - 1
            }
        };
        let d = &mut drafts[slot];
        let first_line = d.line;
        let first = first_line == line;
        // A customer's own columns: set on its first row; a later row may repeat them.
        let own = |col: &str, current: String, set: &mut dyn FnMut(&str)| {
            let v = get(col);
            if v.is_empty() {
                return Ok(());
            }
            if first {
                set(v);
                Ok(())
            } else if v != current {
                Err(at(
                    line,
                    col,
                    format!("{v:?} differs from line {first_line} for customer {id:?}"),
                ))
            } else {
                Ok(())
            }
        };
        let c = &mut d.customer;
        own("name", c.name.clone().unwrap_or_default(), &mut |v| {
            c.name = Some(v.to_owned())
        })?;
        own("language", c.language.clone(), &mut |v| {
            c.language = v.to_owned()
        })?;
        own("time_zone", c.time_zone.clone(), &mut |v| {
            c.time_zone = v.to_owned()
        })?;
        own("prefixes", c.prefixes.join(" "), &mut |v| {
            c.prefixes = v.split_whitespace().map(str::to_owned).collect()
        })?;
        own("agents", c.agents.join(" "), &mut |v| {
            c.agents = v.split_whitespace().map(str::to_owned).collect()
        })?;
        let opt = |col: &str| Some(get(col)).filter(|v| !v.is_empty()).map(str::to_owned);
        let contact = ["role", "contact_name", "email", "phone", "contact_language"]
            .iter()
            .any(|c| !get(c).is_empty());
        if contact {
            c.contacts.push(Contact {
                role: get("role").to_owned(),
                name: get("contact_name").to_owned(),
                email: opt("email"),
                phone: opt("phone"),
                language: opt("contact_language"),
            });
            d.contact_lines.push(line);
        }
    }
    if drafts.is_empty() {
        return Err(at(2, "-", "no rows"));
    }
    let mut out = Vec::with_capacity(drafts.len());
    for d in drafts {
        d.customer.check().map_err(|b| locate(&d, b))?;
        out.push((d.line, d.customer));
    }
    Ok(out)
}

/// Where a check's bad field is in the file.
fn locate(d: &Draft, b: Bad) -> Bad {
    if let Some(rest) = b.field.strip_prefix("contacts[")
        && let Some((i, field)) = rest.split_once("].")
        && let Ok(i) = i.parse::<usize>()
    {
        let column = match field {
            "name" => "contact_name",
            "language" => "contact_language",
            "role" => "role",
            "email" => "email",
            "phone" => "phone",
            other => other,
        };
        return at(
            d.contact_lines.get(i).copied().unwrap_or(d.line),
            column,
            b.message,
        );
    }
    let column = b.field.split('[').next().unwrap_or(&b.field).to_owned();
    at(d.line, &column, b.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
id,name,language,prefixes,role,contact_name,email,phone
ulb,Université libre de Bruxelles,fr,10.1.0.0/16 2001:db8:1::/48,noc,NOC ULB,noc@ulb.example,+3226501111
ulb,,,,cert,CERT ULB,cert@ulb.example,
kul,KU Leuven,nl,10.2.0.0/16,,,,
";

    #[test]
    fn rows_of_one_customer_merge_its_contacts() {
        let list = customers(GOOD).expect("valid");
        assert_eq!(list.len(), 2);
        let (line, ulb) = &list[0];
        assert_eq!(*line, 2);
        assert_eq!(ulb.name.as_deref(), Some("Université libre de Bruxelles"));
        assert_eq!(ulb.prefixes, ["10.1.0.0/16", "2001:db8:1::/48"]);
        assert_eq!(ulb.contacts.len(), 2);
        assert_eq!(ulb.contacts[1].role, "cert");
        assert_eq!(ulb.contacts[1].phone, None);
        assert_eq!(list[1].1.language, "nl");
        assert!(list[1].1.contacts.is_empty());
    }

    #[test]
    fn a_bad_row_is_named_by_line_and_column() {
        let err = |text: &str| customers(text).expect_err("invalid").field;
        assert_eq!(
            err(&GOOD.replace("+3226501111", "02 650 11 11")),
            "line 2, column phone"
        );
        assert_eq!(
            err(&GOOD.replace("cert@ulb.example", "not-an-address")),
            "line 3, column email"
        );
        assert_eq!(
            err(&GOOD.replace("10.2.0.0/16", "10.2.0.0/99")),
            "line 4, column prefixes"
        );
        assert_eq!(
            err(&GOOD.replace("kul,KU Leuven,nl", "kul,KU Leuven,es")),
            "line 4, column language"
        );
        assert_eq!(
            err(&GOOD.replace("ulb,,,,cert", "ulb,ULB,,,cert")),
            "line 3, column name"
        );
        assert_eq!(err(&GOOD.replace("kul,KU", ",KU")), "line 4, column id");
        assert_eq!(
            err(&GOOD.replace("phone\n", "phone,colour\n")),
            "line 1, column colour"
        );
        // A row with a column too many or too few.
        assert_eq!(err(&format!("{GOOD}x,y\n")), "line 5, column -");
    }
}
