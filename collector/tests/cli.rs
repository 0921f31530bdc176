//! The `vigil` command line as a user meets it (this file also makes `cargo test` build the
//! `vigil` binary that the end-to-end tests in `tests/` run).

use std::process::Command;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// `vigil --help` lists each command as a line of its `Commands:` section, with a
/// description, and each command's own `--help` works and describes it.
#[test]
fn help_lists_every_command() {
    let out = vigil().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<(&str, &str)> = text
        .split_once("Commands:")
        .map(|(_, rest)| rest.split("\n\n").next().unwrap_or(""))
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.trim().split_once(char::is_whitespace))
        .map(|(c, d)| (c, d.trim()))
        .collect();
    let names: Vec<&str> = commands.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        names,
        [
            "up",
            "collector",
            "search",
            "incidents",
            "silences",
            "maintenance",
            "exclusions",
            "checks",
            "notices",
            "heartbeats",
            "oncall",
            "tasks",
            "customers",
            "assets",
            "rules",
            "config",
            "help"
        ],
        "{text}"
    );
    for (cmd, description) in commands.iter().filter(|(c, _)| *c != "help") {
        assert!(description.len() > 10, "{cmd} has no description: {text}");
        let out = vigil().args([cmd, "--help"]).output().expect("runs");
        assert!(out.status.success(), "{cmd} --help");
        let own = String::from_utf8_lossy(&out.stdout);
        assert!(
            own.contains(&format!("Usage: vigil {cmd}")),
            "{cmd} --help: {own}"
        );
    }
}

#[test]
fn config_check_names_the_bad_key_and_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `vigil config check` of a collector configuration: whether it passed, and stderr.
    let check = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        let out = vigil()
            .args(["config", "check"])
            .arg(&file)
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check(
        "bad.toml",
        "data_dir = \"x\"\n[index]\ncommit_intervall = \"1s\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("commit_intervall") && err.contains("line 3"),
        "{err}"
    );
    let (ok, err) = check("good.toml", "[http]\nlisten = \"127.0.0.1:0\"\n");
    assert!(ok, "{err}");
    // A value that parses but cannot work: refused by the check, with its key and line,
    // not left for `vigil up` to fail on.
    let (ok, err) = check(
        "port.toml",
        "data_dir = \"x\"\n\n[http]\nlisten = \"127.0.0.1:80800\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("line 4: http.listen: `127.0.0.1:80800` is not an address and port"),
        "{err}"
    );
    // A missing file: the OS error once.
    let out = vigil()
        .args(["config", "check", "/nonexistent/vigil.toml"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    let agent = dir.path().join("agent.toml");
    std::fs::write(&agent, "[spool]\nmax_bytes = 1\n").expect("write");
    let out = vigil()
        .args(["config", "check", "--agent"])
        .arg(&agent)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spool.max_bytes"));
}

const NOTIFY: &str = r#"
[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[notify.voice]
url = "https://gateway.example/call"
body = '{"to": {{ to|tojson }}}'

[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
[[notify.receivers]]
name = "oncall"
voice = ["+32470000001"]
email = ["oncall@example.org"]

[notify.route]
receiver = "desk"
[[notify.route.routes]]
matchers = ["danger=true"]
receiver = "oncall"
"#;

/// `vigil config check FILE [ARGS]` of `text`: (success, stdout, stderr).
fn check_config(text: &str, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("vigil.toml");
    std::fs::write(&file, text).expect("write");
    let out = vigil()
        .args(["config", "check"])
        .arg(&file)
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_shows_the_route_and_refuses_templates_that_do_not_render() {
    let (ok, out, err) = check_config(
        NOTIFY,
        &["--route", "severity=high,customer=ulb,danger=true"],
    );
    assert!(ok, "{err}");
    // Probable danger: called first, then e-mailed.
    assert!(out.contains("route.routes[0] -> receiver oncall"), "{out}");
    let opened = out.split("retracted:").next().unwrap_or_default();
    let voice = opened.find("voice    +32470000001").expect("a call");
    let email = opened
        .find("email    oncall@example.org")
        .expect("an e-mail");
    assert!(voice < email, "{out}");
    assert!(opened.contains("after the calls"), "{out}");
    for labels in ["severity=low", "severity=critical"] {
        let (ok, out, _) = check_config(NOTIFY, &["--route", labels]);
        assert!(ok);
        assert!(out.contains("route -> receiver desk"), "{out}");
        assert!(!out.contains("voice"), "no danger, no call: {out}");
    }
    let (ok, _, err) = check_config(NOTIFY, &["--route", "colour=red"]);
    assert!(!ok && err.contains("unknown label \"colour\""), "{err}");

    // A template that cannot render is refused now, with its key and line.
    let bad = NOTIFY.replace("{{ to|tojson }}", "{{ recipient }}");
    let (ok, _, err) = check_config(&bad, &[]);
    assert!(!ok);
    assert!(err.contains("line 5: notify.voice: body template"), "{err}");
    let bad = NOTIFY.replace("receiver = \"oncall\"", "receiver = \"nobody\"");
    let (ok, _, err) = check_config(&bad, &[]);
    assert!(
        !ok && err.contains("receiver \"nobody\" is not one of"),
        "{err}"
    );
    let bad = NOTIFY.replace("+32470000001", "0470 00 00 01");
    let (ok, _, err) = check_config(&bad, &[]);
    assert!(!ok && err.contains("E.164"), "{err}");
    // Texts of one's own, a grouping and the contact person are checked as well.
    for (extra, says) in [
        (
            "[[notify.templates]]\nchannel = \"email\"\nbody = \"{{ incident.nope }}\"\n",
            "notify.templates[0].body: ",
        ),
        (
            "[[notify.templates]]\nchannel = \"voice\"\nlanguage = \"it\"\nbody = \"x\"\n",
            "notify.templates[0].language: \"it\"",
        ),
        (
            "[notify.contact]\nname = \"NOC\"\nphones = [\"02 000 00 00\"]\n",
            "notify.contact: phones: \"02 000 00 00\" is not in E.164 form",
        ),
    ] {
        let (ok, _, err) = check_config(&format!("{NOTIFY}\n{extra}"), &[]);
        assert!(!ok && err.contains(says), "{extra}: {err}");
    }
    let grouped = NOTIFY.replacen(
        "[notify.route]\n",
        "[notify.route]\ngroup_by = [\"customer\"]\ngroup_wait = \"30s\"\n",
        1,
    );
    let (ok, out, err) = check_config(&grouped, &["--route", "severity=low,customer=ulb"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("  group route:{customer=\"ulb\"}: first after 30s, then at most every 300s"),
        "{out}"
    );
    let bad = NOTIFY.replacen(
        "[notify.route]\n",
        "[notify.route]\ngroup_by = [\"host\"]\n",
        1,
    );
    let (ok, _, err) = check_config(&bad, &[]);
    assert!(
        !ok && err.contains("route.group_by: \"host\" is not a label"),
        "{err}"
    );
    let good = format!(
        "{NOTIFY}\n[[notify.templates]]\nchannel = \"sms\"\nbody = \"{{{{ text }}}} {{{{ contact.name }}}}\"\n[notify.contact]\nname = \"NOC\"\nphones = [\"+3220000000\"]\n"
    );
    let (ok, _, err) = check_config(&good, &[]);
    assert!(ok, "{err}");
}

#[test]
fn search_against_nothing_says_where_it_looked() {
    let out = vigil()
        .args(["search", "x", "--url", "http://127.0.0.1:9"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot reach the collector at http://127.0.0.1:9")
    );
}
