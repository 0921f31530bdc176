//! Reading CAP (OASIS Common Alerting Protocol 1.0–1.2): one `<alert>`, or an Atom feed of
//! them, as public alerting platforms publish. A `cap` check holds a feed to this reader
//! (down unless it parses and every alert is valid), and the collector turns the alerts of
//! watched feeds into events.
//!
//! Two shapes of feed are read: entries that embed a whole `<alert>` (in `<content>`), and
//! index entries that carry a few CAP elements of their own (`cap:status`, `cap:msgType`,
//! `cap:event`, `cap:severity`, ...; the National Weather Service's shape), whose identifier
//! is the entry's `<id>`, sender its author and sent its `<published>` time.
//!
//! # Invariants
//! - The input is hostile: its size is bounded by the caller, the XML parser refuses DTDs
//!   (no entity expansion), and a bad document is an error naming what is wrong, never a panic.
//! - Validity follows the CAP schemas' rules for what it checks: the required elements, their
//!   enumerations, and times (in CAP 1.2 with an explicit offset: its schema refuses `Z`).

use std::fmt;

/// The CAP namespaces read.
const CAP_NS: &[&str] = &[
    "urn:oasis:names:tc:emergency:cap:1.2",
    "urn:oasis:names:tc:emergency:cap:1.1",
    "http://www.incident.com/cap/1.0",
    "urn:oasis:names:tc:emergency:cap:1.0",
];
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

pub const STATUS: &[&str] = &["Actual", "Exercise", "System", "Test", "Draft"];
pub const MSG_TYPE: &[&str] = &["Alert", "Update", "Cancel", "Ack", "Error"];
pub const SCOPE: &[&str] = &["Public", "Restricted", "Private"];
pub const CATEGORY: &[&str] = &[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
];
pub const URGENCY: &[&str] = &["Immediate", "Expected", "Future", "Past", "Unknown"];
pub const SEVERITY: &[&str] = &["Extreme", "Severe", "Moderate", "Minor", "Unknown"];
pub const CERTAINTY: &[&str] = &[
    "Observed",
    "Likely",
    "Possible",
    "Unlikely",
    "Unknown",
    // CAP 1.0's word for `Likely`.
    "Very Likely",
];

/// Why a document is not valid CAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapError(pub String);

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CapError {}

fn err<T>(m: impl Into<String>) -> Result<T, CapError> {
    Err(CapError(m.into()))
}

/// One alert, with what an event keeps of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapAlert {
    pub identifier: String,
    pub sender: String,
    /// As written (with its offset).
    pub sent: String,
    pub status: String,
    pub msg_type: String,
    /// Empty for a feed's index entry.
    pub scope: String,
    /// The messages this one updates or cancels, each `sender,identifier,sent`.
    pub references: Vec<String>,
    /// From the first `<info>`.
    pub event: Option<String>,
    pub category: Option<String>,
    pub urgency: Option<String>,
    pub severity: Option<String>,
    pub certainty: Option<String>,
    pub headline: Option<String>,
    /// Every `<areaDesc>`, joined by `; `.
    pub area: Option<String>,
}

impl CapAlert {
    /// The key that names a message in `references`: `sender,identifier,sent`.
    pub fn key(&self) -> String {
        format!("{},{},{}", self.sender, self.identifier, self.sent)
    }

    /// A test or an exercise: never a reason to raise an incident.
    pub fn is_drill(&self) -> bool {
        matches!(self.status.as_str(), "Test" | "Exercise" | "Draft")
    }
}

/// Whether `s` is a CAP time: `YYYY-MM-DDThh:mm:ss` and an explicit `+hh:mm` or `-hh:mm`.
pub fn is_cap_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && matches!(b[19], b'+' | b'-')
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_cap(n: &roxmltree::Node) -> bool {
    n.tag_name()
        .namespace()
        .is_some_and(|ns| CAP_NS.contains(&ns))
}

fn child<'a>(n: &roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text(n: &roxmltree::Node, name: &str) -> Option<String> {
    child(n, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn required(n: &roxmltree::Node, name: &str, what: &str) -> Result<String, CapError> {
    text(n, name).map_or_else(|| err(format!("{what}: no <{name}>")), Ok)
}

fn one_of(value: &str, allowed: &[&str], name: &str, what: &str) -> Result<(), CapError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        err(format!(
            "{what}: <{name}> {value:?} is not one of {}",
            allowed.join(", ")
        ))
    }
}

/// One `<alert>` element, checked.
fn alert(n: &roxmltree::Node) -> Result<CapAlert, CapError> {
    let id = text(n, "identifier");
    let what = format!("alert {}", id.as_deref().unwrap_or("(no identifier)"));
    let a = CapAlert {
        identifier: required(n, "identifier", &what)?,
        sender: required(n, "sender", &what)?,
        sent: required(n, "sent", &what)?,
        status: required(n, "status", &what)?,
        msg_type: required(n, "msgType", &what)?,
        scope: required(n, "scope", &what)?,
        references: text(n, "references")
            .map(|r| r.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        ..CapAlert::default()
    };
    // CAP 1.2's schema holds times to an explicit offset; the older ones take any xs:dateTime.
    let strict = n.tag_name().namespace() == Some(CAP_NS[0]);
    let time_ok = |t: &str| {
        if strict {
            is_cap_time(t)
        } else {
            chrono::DateTime::parse_from_rfc3339(t).is_ok()
        }
    };
    if !time_ok(&a.sent) {
        return err(format!(
            "{what}: <sent> {:?} is not a time with an explicit offset (YYYY-MM-DDThh:mm:ss+hh:mm)",
            a.sent
        ));
    }
    one_of(&a.status, STATUS, "status", &what)?;
    one_of(&a.msg_type, MSG_TYPE, "msgType", &what)?;
    one_of(&a.scope, SCOPE, "scope", &what)?;
    let mut first = None;
    for info in n
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "info")
    {
        let categories: Vec<_> = info
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "category")
            .map(|c| c.text().unwrap_or("").trim().to_owned())
            .collect();
        if categories.is_empty() {
            return err(format!("{what}: an <info> has no <category>"));
        }
        for c in &categories {
            one_of(c, CATEGORY, "category", &what)?;
        }
        let event = required(&info, "event", &what)?;
        let urgency = required(&info, "urgency", &what)?;
        let severity = required(&info, "severity", &what)?;
        let certainty = required(&info, "certainty", &what)?;
        one_of(&urgency, URGENCY, "urgency", &what)?;
        one_of(&severity, SEVERITY, "severity", &what)?;
        one_of(&certainty, CERTAINTY, "certainty", &what)?;
        for t in ["effective", "onset", "expires"] {
            if let Some(v) = text(&info, t)
                && !time_ok(&v)
            {
                return err(format!("{what}: <{t}> {v:?} is not a time with an offset"));
            }
        }
        if first.is_none() {
            let areas: Vec<String> = info
                .children()
                .filter(|c| c.is_element() && c.tag_name().name() == "area")
                .filter_map(|area| text(&area, "areaDesc"))
                .collect();
            first = Some((
                event,
                categories.join(" "),
                urgency,
                severity,
                certainty,
                text(&info, "headline"),
                (!areas.is_empty()).then(|| areas.join("; ")),
            ));
        }
    }
    let mut a = a;
    if let Some((event, category, urgency, severity, certainty, headline, area)) = first {
        a.event = Some(event);
        a.category = Some(category);
        a.urgency = Some(urgency);
        a.severity = Some(severity);
        a.certainty = Some(certainty);
        a.headline = headline;
        a.area = area;
    }
    Ok(a)
}

/// A feed's index entry: CAP elements of its own, no embedded alert.
fn index_entry(e: &roxmltree::Node) -> Result<CapAlert, CapError> {
    let cap = |name: &str| {
        e.children()
            .find(|c| c.is_element() && is_cap(c) && c.tag_name().name() == name)
            .and_then(|c| c.text())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let id = text(e, "id");
    let what = format!("entry {}", id.as_deref().unwrap_or("(no id)"));
    let sender = child(e, "author")
        .and_then(|a| text(&a, "name"))
        .unwrap_or_default();
    let sent = text(e, "published")
        .or_else(|| text(e, "updated"))
        .unwrap_or_default();
    let a = CapAlert {
        identifier: id.ok_or_else(|| CapError(format!("{what}: no <id>")))?,
        sender,
        sent,
        status: cap("status").ok_or_else(|| CapError(format!("{what}: no <cap:status>")))?,
        msg_type: cap("msgType").ok_or_else(|| CapError(format!("{what}: no <cap:msgType>")))?,
        scope: String::new(),
        references: Vec::new(),
        event: cap("event"),
        category: cap("category"),
        urgency: cap("urgency"),
        severity: cap("severity"),
        certainty: cap("certainty"),
        headline: text(e, "title"),
        area: cap("areaDesc"),
    };
    one_of(&a.status, STATUS, "cap:status", &what)?;
    one_of(&a.msg_type, MSG_TYPE, "cap:msgType", &what)?;
    for (name, v, allowed) in [
        ("cap:category", &a.category, CATEGORY),
        ("cap:urgency", &a.urgency, URGENCY),
        ("cap:severity", &a.severity, SEVERITY),
        ("cap:certainty", &a.certainty, CERTAINTY),
    ] {
        if let Some(v) = v {
            one_of(v, allowed, name, &what)?;
        }
    }
    Ok(a)
}

/// The alerts of a CAP document or an Atom feed of them, each valid; the first invalid one
/// makes the whole document an error.
pub fn read(xml: &str) -> Result<Vec<CapAlert>, CapError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| CapError(format!("not XML: {e}")))?;
    let root = doc.root_element();
    let name = root.tag_name().name();
    if name == "alert" && is_cap(&root) {
        return Ok(vec![alert(&root)?]);
    }
    if name != "feed" || root.tag_name().namespace() != Some(ATOM_NS) {
        return err(format!(
            "neither a CAP <alert> nor an Atom <feed> (the root is <{name}> in {:?})",
            root.tag_name().namespace().unwrap_or("no namespace")
        ));
    }
    let mut out = Vec::new();
    for e in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "entry")
    {
        let embedded = e
            .descendants()
            .find(|d| d.is_element() && d.tag_name().name() == "alert" && is_cap(d));
        out.push(match embedded {
            Some(a) => alert(&a)?,
            None => index_entry(&e)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
      <identifier>BE-1</identifier><sender>alert@example.test</sender>
      <sent>2026-12-01T10:00:00+01:00</sent><status>Actual</status><msgType>Alert</msgType>
      <scope>Public</scope>
      <info><category>Safety</category><event>Gas leak</event><urgency>Immediate</urgency>
      <severity>Severe</severity><certainty>Observed</certainty><headline>Stay inside</headline>
      <area><areaDesc>Leuven</areaDesc></area><area><areaDesc>Heverlee</areaDesc></area></info>
    </alert>"#;

    #[test]
    fn an_alert_reads_with_its_first_info() {
        let a = read(ALERT).expect("valid");
        assert_eq!(a.len(), 1);
        assert_eq!(
            a[0].key(),
            "alert@example.test,BE-1,2026-12-01T10:00:00+01:00"
        );
        assert_eq!(a[0].area.as_deref(), Some("Leuven; Heverlee"));
        assert_eq!(a[0].event.as_deref(), Some("Gas leak"));
    }

    #[test]
    fn what_is_wrong_is_named() {
        let cases = [
            ("+01:00</sent>", "Z</sent>", "<sent>"),
            ("<status>Actual", "<status>Real", "<status>"),
            ("<sender>alert@example.test</sender>", "", "no <sender>"),
            ("<category>Safety", "<category>Cyber", "<category>"),
            ("<!DOCTYPE", "<!DOCTYPE", ""),
        ];
        for (from, to, says) in cases {
            if from == "<!DOCTYPE" {
                let with_dtd = format!("<!DOCTYPE alert [<!ENTITY a \"aaaa\">]>{ALERT}");
                assert!(read(&with_dtd).is_err(), "a DTD is refused");
                continue;
            }
            let bad = ALERT.replace(from, to);
            let e = read(&bad).expect_err(to);
            assert!(e.0.contains(says), "{e} names {says}");
        }
    }

    #[test]
    fn times_need_an_explicit_offset() {
        assert!(is_cap_time("2003-06-17T14:57:00-07:00"));
        assert!(!is_cap_time("2003-06-17T14:57:00Z"));
        assert!(!is_cap_time("2003-06-17T14:57:00+0700"));
        assert!(!is_cap_time("2003-13-17T14:57:00-07:00"));
    }
}
