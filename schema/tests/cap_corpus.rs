//! The CAP reader against the corpus, with `xmllint` and the OASIS schemas as the oracle: every
//! alert of the corpus is valid for both or for neither, and so is each alert broken in the
//! ways the reader checks (a required element gone, a value outside its enumeration, a time
//! in `Z`). The National Weather Service's Atom index reads entry by entry.

#[path = "../../tests/support/skip.rs"]
mod skip_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_schema::cap;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/cap");
    p.is_dir().then_some(p)
}

/// The schema of the CAP version `xml` declares.
fn schema_of(dir: &Path, xml: &str) -> Option<PathBuf> {
    let file = if xml.contains("urn:oasis:names:tc:emergency:cap:1.2") {
        "schema/CAP-v1.2.xsd"
    } else if xml.contains("urn:oasis:names:tc:emergency:cap:1.1") {
        "schema/oasiscap-reformatted-cap11.xsd"
    } else if xml.contains("http://www.incident.com/cap/1.0") {
        "schema/oasiscap-reformatted-cap10.xsd"
    } else {
        return None;
    };
    Some(dir.join(file))
}

/// Whether xmllint finds `xml` valid against `xsd`.
fn xmllint_valid(xml: &str, xsd: &Path) -> bool {
    let f = tempfile_with(xml);
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(xsd)
        .arg(&f)
        .output()
        .expect("xmllint runs");
    let _ = std::fs::remove_file(&f);
    out.status.success()
}

fn tempfile_with(text: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "vigil-cap-{}-{}.xml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&p, text).expect("temp file");
    p
}

/// The same alert broken in one way each (those the reader checks), where `xml` has what
/// is replaced.
fn broken(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut replace = |what: &str, from: &str, to: &str| {
        if let Some(i) = xml.find(from) {
            let mut b = xml.to_owned();
            b.replace_range(i..i + from.len(), to);
            out.push((what.to_owned(), b));
        }
    };
    replace(
        "status outside its enumeration",
        "<status>Actual<",
        "<status>Real<",
    );
    replace(
        "msgType outside its enumeration",
        "<msgType>Alert<",
        "<msgType>Notice<",
    );
    replace(
        "scope outside its enumeration",
        "<scope>Public<",
        "<scope>Everyone<",
    );
    replace(
        "urgency outside its enumeration",
        "<urgency>",
        "<urgency>Soon",
    );
    // Drop the sender element, whatever it holds.
    if let (Some(a), Some(b)) = (xml.find("<sender>"), xml.find("</sender>")) {
        let mut s = xml.to_owned();
        s.replace_range(a..b + "</sender>".len(), "");
        out.push(("no sender".into(), s));
    }
    // `sent` in Z instead of an offset (refused by CAP 1.2's schema only).
    if let (Some(a), Some(b), true) = (
        xml.find("<sent>"),
        xml.find("</sent>"),
        xml.contains("emergency:cap:1.2"),
    ) {
        let mut s = xml.to_owned();
        s.replace_range(a + "<sent>".len()..b, "2003-06-17T14:57:00Z");
        out.push(("sent in Z".into(), s));
    }
    out
}

#[test]
fn the_reader_agrees_with_xmllint_on_the_corpus_and_on_broken_alerts() {
    let Some(dir) = corpus() else {
        skip_support::skip("the CAP corpus (../shared/corpus/cap) is not beside the repository");
        return;
    };
    let have_xmllint = Command::new("xmllint").arg("--version").output().is_ok();
    if !have_xmllint {
        skip_support::skip("xmllint is not installed (apt-get install libxml2-utils)");
        return;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in [
        "examples/oasis-spec-appendix-a",
        "examples/real-world",
        "examples/ibm-cap",
    ] {
        for e in std::fs::read_dir(dir.join(sub)).expect("corpus dir") {
            files.push(e.expect("entry").path());
        }
    }
    files.sort();
    let (mut alerts, mut cases) = (0, 0);
    for f in &files {
        let xml = std::fs::read_to_string(f).expect("read");
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if xml.contains("<feed") {
            // The Atom index: one alert per entry, counted independently.
            let read = cap::read(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(read.len(), xml.matches("<entry>").count(), "{name}");
            assert!(read.iter().all(|a| a.status == "Actual"), "{name}");
            continue;
        }
        let Some(xsd) = schema_of(&dir, &xml) else {
            panic!("{name}: no CAP namespace");
        };
        alerts += 1;
        let ours = cap::read(&xml);
        assert_eq!(
            ours.is_ok(),
            xmllint_valid(&xml, &xsd),
            "{name}: the reader says {ours:?}"
        );
        // The broken copies of valid 1.1 and 1.2 alerts (1.0's schema differs in its
        // enumerations).
        if ours.is_ok() && !xml.contains("incident.com/cap/1.0") {
            for (what, b) in broken(&xml) {
                cases += 1;
                let ours = cap::read(&b);
                assert!(ours.is_err(), "{name}, {what}: the reader takes it");
                assert!(!xmllint_valid(&b, &xsd), "{name}, {what}: xmllint takes it");
            }
        }
    }
    assert!(alerts >= 18, "{alerts} alerts in the corpus");
    assert!(cases >= 60, "{cases} broken alerts");
}
