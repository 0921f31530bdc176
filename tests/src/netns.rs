//! Network namespaces and veth pairs, for tests whose traffic must stay off the host's
//! interfaces or whose ports must not collide with anything.

use std::process::Command;

/// Network namespaces and veth pairs a test creates, deleted (by name) when dropped.
pub struct Netns {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
}

/// Runs `ip ARGS`, failing the test with what `ip` said.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Whether this machine lets a test make namespaces (root, `ip` present); the reason if not.
    pub fn unavailable() -> Option<String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            })
            .unwrap_or_default();
        if uid != "0" {
            return Some("not root".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(o) if o.status.success() => None,
            _ => Some("`ip` (iproute2) is missing".into()),
        }
    }

    /// A veth pair: `host_if` stays in this namespace with `host_addr`, its peer goes into a
    /// new namespace `ns` with `ns_addr` (both `/24`). IPv6 is off on both ends, so only the
    /// test's own traffic crosses the link.
    pub fn pair(tag: &str, host_addr: &str, ns_addr: &str) -> (Netns, String, String) {
        let id = std::process::id() % 100_000;
        let ns = format!("vg{tag}{id}");
        let host_if = format!("vh{tag}{id}");
        let ns_if = format!("vn{tag}{id}");
        let n = Netns {
            namespaces: vec![ns.clone()],
            links: vec![host_if.clone()],
        };
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &ns]);
        for (netns, dev) in [(None, &host_if), (Some(&ns), &ns_if)] {
            let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
            let mut cmd = match netns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "sysctl", "-qw", &sysctl]);
                    c
                }
                None => {
                    let mut c = Command::new("sysctl");
                    c.args(["-qw", &sysctl]);
                    c
                }
            };
            let _ = cmd.status();
        }
        ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ns_addr}/24"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        (n, ns, host_if)
    }

    /// A new namespace `ns` with only its loopback, up: a machine of its own for a test whose
    /// fixed ports (the defaults of `vigil up`) must not meet anyone else's.
    pub fn alone(tag: &str) -> (Netns, String) {
        let ns = format!("vg{tag}{}", std::process::id() % 100_000);
        ip(&["netns", "add", &ns]);
        let n = Netns {
            namespaces: vec![ns.clone()],
            links: Vec::new(),
        };
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        (n, ns)
    }

    /// A command run inside namespace `ns`.
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        for n in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}
