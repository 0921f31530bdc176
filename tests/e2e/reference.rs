//! Reference data from the command line against a real collector: 200 institutions imported
//! from one CSV file, a file with a bad row refused whole (its line and column named), and an
//! asset added, listed and removed with its change log.

use serde_json::Value;
use vigil_e2e::Collector;

fn csv(rows: usize, bad_at: Option<usize>) -> String {
    let mut text = String::from("id,name,language,prefixes,role,contact_name,email,phone\n");
    for i in 0..rows {
        let phone = if Some(i) == bad_at {
            "0470 12 34 56".to_owned()
        } else {
            format!("+3247{i:07}")
        };
        text.push_str(&format!(
            "inst-{i:03},Institution {i},{},10.{}.{}.0/24,noc,NOC {i},noc{i}@inst.example,{phone}\n",
            ["fr", "nl", "de", "en"][i % 4],
            i / 250,
            i % 250
        ));
    }
    text
}

#[test]
fn two_hundred_customers_import_at_once_and_a_bad_row_imports_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(dir.path(), 0);
    let url = collector.url();
    let count = || {
        let (ok, out, err) = vigil_e2e::vigil_cli("customers", &["list", "--json"], &url);
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).expect("json");
        v["customers"].as_array().map_or(0, Vec::len)
    };
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, csv(200, Some(150))).expect("write");
    let (ok, _, err) =
        vigil_e2e::vigil_cli("customers", &["import", bad.to_str().expect("path")], &url);
    // The header is line 1: the 151st row is line 152.
    assert!(!ok && err.contains("line 152, column phone"), "{err}");
    assert_eq!(count(), 0, "nothing half-imported");

    let good = dir.path().join("institutions.csv");
    std::fs::write(&good, csv(200, None)).expect("write");
    let (ok, out, err) = vigil_e2e::vigil_cli(
        "customers",
        &["import", good.to_str().expect("path"), "--as", "alice"],
        &url,
    );
    assert!(ok, "{err}");
    assert!(out.contains("200 customers created, 0 updated"), "{out}");
    assert_eq!(count(), 200);
    // Importing again updates them.
    let (ok, out, _) =
        vigil_e2e::vigil_cli("customers", &["import", good.to_str().expect("path")], &url);
    assert!(
        ok && out.contains("0 customers created, 200 updated"),
        "{out}"
    );
    let (ok, out, _) = vigil_e2e::vigil_cli("customers", &["show", "inst-007"], &url);
    assert!(ok);
    let c: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(c["contacts"][0]["phone"], "+32470000007");
    assert_eq!(c["language"], "en");

    // An asset of one of them.
    let (ok, out, err) = vigil_e2e::vigil_cli(
        "assets",
        &[
            "add",
            "inst-007-fw1",
            "--customer",
            "inst-007",
            "--kind",
            "firewall",
            "--as",
            "bob",
        ],
        &url,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("inst-007-fw1") && out.contains("firewall"),
        "{out}"
    );
    let (ok, _, err) = vigil_e2e::vigil_cli(
        "assets",
        &["add", "x1", "--customer", "nobody", "--kind", "web"],
        &url,
    );
    assert!(
        !ok && err.contains("customer: no customer \"nobody\""),
        "{err}"
    );
    let (ok, out, err) = vigil_e2e::vigil_cli("assets", &["remove", "inst-007-fw1"], &url);
    assert!(ok && out.contains("removed"), "{err}");
    let (ok, out, _) = vigil_e2e::vigil_cli("assets", &["changes"], &url);
    assert!(ok);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert!(
        lines.len() == 2 && lines[0].contains("deleted") && lines[1].contains("bob"),
        "{out}"
    );
}

/// Customers' prefixes are written once, on the collector: a real agent fetches them and
/// attributes the events of senders within them (over its own `customer`), and a customer
/// added through the API with a longer prefix takes the sender's next events.
#[test]
fn agents_attribute_events_by_the_collector_s_customers_prefixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = vigil_e2e::Collector::start_with(
        dir.path(),
        0,
        "100ms",
        "\n[[customers]]\nid = \"campus\"\nprefixes = [\"127.0.0.0/8\"]\n",
    );
    let url = collector.url();
    let agent = vigil_e2e::Agent::start(&dir.path().join("agent"), collector.port, "", "");
    let logs = || format!("{}\n{}", collector.proc.log_tail(), agent.proc.log_tail());
    // The customer of the newest line of `prefix` sent so far, sending one more each time.
    let sent = std::cell::Cell::new(0);
    let customer_of_next = |prefix: &str| {
        let i = sent.get();
        sent.set(i + 1);
        vigil_e2e::send_tcp(agent.syslog_tcp, prefix, i..i + 1);
        let q = format!("message:\"{prefix}-{i}\"");
        vigil_e2e::wait_for(
            std::time::Duration::from_secs(30),
            "the line indexed",
            logs,
            || {
                let r = vigil_e2e::search(&url, &q, 1, 0)?;
                let hit = r["hits"].as_array()?.first()?.clone();
                Some(hit["customer"].as_str().unwrap_or("").to_owned())
            },
        )
    };
    vigil_e2e::wait_for(
        std::time::Duration::from_secs(30),
        "the agent to attribute by the collector's prefix",
        logs,
        || (customer_of_next("CUSTOMER-A") == "campus").then_some(()),
    );
    let resp = reqwest::blocking::Client::new()
        .post(format!("{url}/api/v1/customers"))
        .header("x-vigil-actor", "e2e")
        .json(&serde_json::json!({"id": "lab", "prefixes": ["127.0.0.1/32"]}))
        .send()
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text());
    vigil_e2e::wait_for(
        std::time::Duration::from_secs(30),
        "the agent to take the longer prefix",
        logs,
        || (customer_of_next("CUSTOMER-B") == "lab").then_some(()),
    );
}
