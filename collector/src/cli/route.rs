//! `vigil config check FILE --route LABELS`: which routes an incident with these labels takes,
//! and who it reaches by which channel, when it opens, at each on-call level it escalates to,
//! and when it is retracted.

use std::path::Path;

use crate::config::CollectorConfig;
use crate::notify::plan::{Delivery, Kind, Subject};
use crate::notify::route::labels_from;

pub fn show(cfg: &CollectorConfig, file: &Path, labels: &str) -> anyhow::Result<()> {
    let labels = labels_from(labels).map_err(|e| anyhow::anyhow!("--route: {e}"))?;
    let Some(n) = cfg.notifier(file)? else {
        println!(
            "{}: no [notify.route]: nothing is announced",
            file.display()
        );
        return Ok(());
    };
    let known = [
        "customer", "asset", "tags", "severity", "danger", "rule", "title", "status", "group",
    ];
    if let Some(k) = labels.keys().find(|k| !known.contains(&k.as_str())) {
        anyhow::bail!(
            "--route: unknown label {k:?} (labels: {})",
            known.join(", ")
        );
    }
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let danger = match get("danger").as_str() {
        "" => false,
        "true" => true,
        "false" => false,
        other => anyhow::bail!("--route: danger={other:?} must be true or false"),
    };
    let subject = Subject {
        customer: labels.get("customer").cloned(),
        affected: Vec::new(),
        assets: labels.get("asset").cloned().into_iter().collect(),
        tags: labels.get("tags").cloned().into_iter().collect(),
        severity: get("severity"),
        danger,
        rule: get("rule"),
        title: get("title"),
        status: labels
            .get("status")
            .cloned()
            .unwrap_or_else(|| "open".into()),
        group: get("group"),
        level: 1,
    };
    // Who is on call now by the rotas alone (overrides live in the database).
    let roster = crate::oncall::Roster {
        oncall: &n.oncall,
        at: chrono::Utc::now(),
        overrides: &[],
    };
    let labels = subject.labels();
    for c in n.route.chosen(&labels) {
        println!("{} -> receiver {}", c.path, c.receiver);
        // Only first announcements without danger wait for their group.
        if let (Some((key, _)), false) = (c.group(&labels), danger) {
            println!(
                "  group {key}: first after {:?}, then at most every {:?}",
                c.group_wait, c.group_interval
            );
        }
    }
    let print = |what: &str, d: &[Delivery]| {
        println!("{what}:");
        if d.is_empty() {
            println!("  nobody");
        }
        for d in d {
            let when = if d.channel.stage() == 0 {
                "at once"
            } else {
                "after the calls"
            };
            println!(
                "  {:<8} {:<32} ({}, {when})",
                d.channel.as_str(),
                d.target,
                d.receiver
            );
        }
    };
    let opened = n.plan(&subject, Kind::Opened, &[], &roster);
    print(
        &format!(
            "opened ({})",
            if danger {
                "probable danger"
            } else {
                "no danger"
            }
        ),
        &opened,
    );
    for level in 2..=n.levels() {
        let up = Subject {
            level,
            ..subject.clone()
        };
        print(
            &format!("not acknowledged in time: on-call level {level}"),
            &n.plan(&up, Kind::Escalated, &[], &roster),
        );
    }
    print(
        "retracted",
        &n.plan(&subject, Kind::Retracted, &opened, &roster),
    );
    Ok(())
}
