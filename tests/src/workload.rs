//! The events benchmarks feed Vigil and its peers: every loghub line as the agent parses it,
//! and synthetic flows (ordinary traffic, with a port scan now and then).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use vigil_agent::flow::Flow;
use vigil_agent::syslog::parse::{Origin, to_event};
use vigil_schema::Event;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

/// Every loghub line, parsed as the agent parses it (received at `start`).
pub fn loghub(start: DateTime<Utc>) -> Vec<Event> {
    let dir = workspace().join("../shared/corpus/syslog/loghub");
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("loghub")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for d in names {
        for f in std::fs::read_dir(&d).expect("dir").filter_map(|e| e.ok()) {
            let p = f.path();
            if !p.to_string_lossy().ends_with("_2k.log") {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read");
            for line in text.lines() {
                let origin = Origin {
                    agent_id: "bench",
                    agent_name: "bench",
                    customer: None,
                    peer: Some(IpAddr::from([192, 0, 2, 1])),
                    received: start,
                    truncated: false,
                    tz: chrono_tz::UTC,
                };
                out.push(to_event(line, &origin).0);
            }
        }
    }
    out
}

/// Flow `n` at `at`: mostly ordinary, and in every 10,000 a scan of 300 ports from one address.
pub fn flow(n: u64, at: DateTime<Utc>) -> Event {
    let mut f = Flow::new("flow.capture");
    let scan = n % 10_000 < 300;
    f.src = Some(IpAddr::from([
        10,
        1,
        (n >> 8) as u8 % 32,
        if scan { 66 } else { n as u8 },
    ]));
    f.dst = Some(IpAddr::from([192, 0, 2, (n % 200) as u8]));
    f.src_port = 1024 + (n % 50_000) as u16;
    f.dst_port = if scan {
        (n % 10_000) as u16 + 1
    } else {
        [443, 53, 80, 22][(n % 4) as usize]
    };
    f.proto = Some(if f.dst_port == 53 { 17 } else { 6 });
    f.bytes = 60 + n % 5_000;
    f.packets = 1 + n % 10;
    f.rev_bytes = Some(40 + n % 9_000);
    f.rev_packets = Some(1 + n % 12);
    f.start = vigil_agent::flow::unix_ns(at);
    f.end = f.start;
    f.into_event(at)
}
