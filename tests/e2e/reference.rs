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
