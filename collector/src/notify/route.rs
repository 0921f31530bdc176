//! The routing tree, in Alertmanager's vocabulary: a route matches an incident's labels with
//! `matchers`, names a `receiver`, and holds child `routes`. The children are tried in order;
//! the first that matches takes the incident (and its own children are tried in turn) unless
//! it says `continue = true`, in which case the next children are tried too. When no child
//! matches, the route's own receiver takes it. The root matches everything.
//!
//! An incident's labels: `customer`, `asset` (each of its assets: `asset=RTR-0001` matches
//! an incident concerning that asset among others), `tags` (each of its rules' tags, the
//! same way), `severity`, `danger` (`true` or
//! `false`), `rule`, `title`, `status`, `group`.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

/// The labels with several values (an incident's assets, its rules' tags), comma-separated.
const MULTI_VALUED: [&str; 2] = ["asset", "tags"];

/// One label matcher: `name=value`, `name!=value`, `name=~regex`, `name!~regex` (the regex
/// anchored at both ends, as in Alertmanager). A label the incident lacks is the empty
/// string.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let at = text.find(['=', '!']).ok_or_else(|| {
            format!(
                "matcher {text:?}: expected name=value, name!=value, name=~regex or name!~regex"
            )
        })?;
        let name = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Re, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotRe, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::Ne, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Eq, v)
        } else {
            return Err(format!(
                "matcher {text:?}: `!` must be followed by `=` or `~`"
            ));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "matcher {text:?}: a label name is letters, digits and _"
            ));
        }
        let value = value.trim().trim_matches('"').to_owned();
        let regex = match op {
            Op::Re | Op::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("matcher {text:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value,
            regex,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        // `asset` and `tags` hold several values: `=` and `=~` match when one of them
        // does, `!=` and `!~` when none does.
        if MULTI_VALUED.contains(&self.name.as_str()) {
            let one = |v: &str| match &self.regex {
                Some(r) => r.is_match(v),
                None => v == self.value,
            };
            let any = v.split(',').any(one);
            return matches!(self.op, Op::Eq | Op::Re) == any;
        }
        match (self.op, &self.regex) {
            (Op::Eq, _) => v == self.value,
            (Op::Ne, _) => v != self.value,
            (Op::Re, Some(r)) => r.is_match(v),
            (Op::NotRe, Some(r)) => !r.is_match(v),
            _ => false,
        }
    }
}

/// A route as written in the configuration (`[notify.route]`, `[[notify.route.routes]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Inherited from the parent when not set.
    pub receiver: Option<String>,
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Announce the incidents this route takes as probable danger (calls first) even when
    /// their rule did not judge them so: `matchers = ["severity=critical"]` with
    /// `danger = true`. Inherited by child routes unless they set it.
    #[serde(default)]
    pub danger: Option<bool>,
    /// How long a new incident's first announcement waits (its count may rise meanwhile;
    /// the announcement says the count when it goes). Inherited; default 0.
    #[serde(default)]
    pub group_wait: Option<String>,
    /// An active incident announced this long ago and not since is announced again (a
    /// reminder). Inherited; default: never.
    #[serde(default)]
    pub repeat_interval: Option<String>,
    /// Labels whose values gather incidents into one group: the first announcements of a
    /// group's incidents without danger go together, as one e-mail listing them and one
    /// webhook with an alert each (`groupLabels`), the first `group_wait` after the first
    /// of them, then at most once per `group_interval`. `["..."]` or none: each incident
    /// is its own group (announced alone). Inherited.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// How long a group announced waits before announcing its new incidents. Inherited;
    /// default 5m.
    #[serde(default)]
    pub group_interval: Option<String>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// A route ready to match.
#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub danger: bool,
    pub group_wait: Duration,
    pub repeat_interval: Option<Duration>,
    /// Empty: each incident is its own group.
    pub group_by: Vec<String>,
    pub group_interval: Duration,
    pub routes: Vec<Route>,
}

/// The labels a route may group by (`asset` with its several values joined).
pub const GROUP_LABELS: [&str; 8] = [
    "customer", "asset", "severity", "danger", "rule", "title", "status", "group",
];

impl Route {
    /// The tree of `cfg`, with receivers inherited; an error names the route by its path
    /// (`route.routes[1].routes[0]`) and what is wrong.
    pub fn build(cfg: &RouteConfig, receivers: &[&str]) -> Result<Route, String> {
        let top = Route {
            receiver: String::new(),
            matchers: Vec::new(),
            continue_: false,
            danger: false,
            group_wait: Duration::ZERO,
            repeat_interval: None,
            group_by: Vec::new(),
            group_interval: Duration::from_secs(300),
            routes: Vec::new(),
        };
        Self::build_at(cfg, None, &top, "route", receivers)
    }

    fn build_at(
        cfg: &RouteConfig,
        parent_receiver: Option<&str>,
        parent: &Route,
        path: &str,
        receivers: &[&str],
    ) -> Result<Route, String> {
        let danger = cfg.danger.unwrap_or(parent.danger);
        let duration = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(|d| {
                    vigil_schema::config::parse_duration(d)
                        .map_err(|e| format!("{path}.{name}: {e}"))
                })
                .transpose()
        };
        let group_wait = duration("group_wait", &cfg.group_wait)?.unwrap_or(parent.group_wait);
        if group_wait > Duration::from_secs(3600) {
            return Err(format!("{path}.group_wait: at most 1h"));
        }
        let repeat_interval =
            duration("repeat_interval", &cfg.repeat_interval)?.or(parent.repeat_interval);
        if repeat_interval.is_some_and(|r| r < Duration::from_secs(60)) {
            return Err(format!("{path}.repeat_interval: at least 1m"));
        }
        let group_interval =
            duration("group_interval", &cfg.group_interval)?.unwrap_or(parent.group_interval);
        if group_interval < Duration::from_secs(1) || group_interval > Duration::from_secs(86_400) {
            return Err(format!("{path}.group_interval: 1s to 24h"));
        }
        let group_by = match &cfg.group_by {
            None => parent.group_by.clone(),
            Some(labels) if labels.iter().any(|l| l == "...") => Vec::new(),
            Some(labels) => {
                if let Some(l) = labels.iter().find(|l| !GROUP_LABELS.contains(&l.as_str())) {
                    return Err(format!(
                        "{path}.group_by: {l:?} is not a label ({}, or \"...\")",
                        GROUP_LABELS.join(", ")
                    ));
                }
                let mut labels = labels.clone();
                labels.sort();
                labels.dedup();
                labels
            }
        };
        let parent = parent_receiver;
        let receiver = cfg
            .receiver
            .as_deref()
            .or(parent)
            .ok_or_else(|| format!("{path}: the root route needs a receiver"))?;
        if !receivers.contains(&receiver) {
            return Err(format!(
                "{path}: receiver {receiver:?} is not one of [[notify.receivers]] ({})",
                receivers.join(", ")
            ));
        }
        let matchers = cfg
            .matchers
            .iter()
            .map(|m| Matcher::parse(m).map_err(|e| format!("{path}: {e}")))
            .collect::<Result<_, _>>()?;
        let mut here = Route {
            receiver: receiver.to_owned(),
            matchers,
            continue_: cfg.continue_,
            danger,
            group_wait,
            repeat_interval,
            group_by,
            group_interval,
            routes: Vec::new(),
        };
        here.routes = cfg
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Self::build_at(
                    r,
                    Some(receiver),
                    &here,
                    &format!("{path}.routes[{i}]"),
                    receivers,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(here)
    }

    /// Whether any route repeats its announcements.
    pub fn repeats(&self) -> bool {
        self.repeat_interval.is_some() || self.routes.iter().any(Route::repeats)
    }

    /// The routes that take an incident with `labels`, each receiver once (announced as
    /// danger if any route choosing it says so).
    pub fn chosen(&self, labels: &BTreeMap<String, String>) -> Vec<Chosen> {
        let mut all = Vec::new();
        self.walk(labels, "route", &mut all);
        let mut out: Vec<Chosen> = Vec::new();
        for c in all {
            match out.iter_mut().find(|o| o.receiver == c.receiver) {
                Some(o) => {
                    o.danger |= c.danger;
                    o.group_wait = o.group_wait.min(c.group_wait);
                    o.repeat_interval = match (o.repeat_interval, c.repeat_interval) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => out.push(c),
            }
        }
        out
    }

    /// Adds the receivers of this route (which matched) to `out`.
    fn walk(&self, labels: &BTreeMap<String, String>, path: &str, out: &mut Vec<Chosen>) {
        let mut taken = false;
        for (i, child) in self.routes.iter().enumerate() {
            if child.matchers.iter().all(|m| m.matches(labels)) {
                child.walk(labels, &format!("{path}.routes[{i}]"), out);
                taken = true;
                if !child.continue_ {
                    break;
                }
            }
        }
        if !taken {
            out.push(Chosen {
                receiver: self.receiver.clone(),
                path: path.to_owned(),
                danger: self.danger,
                group_wait: self.group_wait,
                repeat_interval: self.repeat_interval,
                group_by: self.group_by.clone(),
                group_interval: self.group_interval,
            });
        }
    }
}

/// A receiver a route chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub receiver: String,
    /// The route (`route.routes[0]`).
    pub path: String,
    /// The route says to announce as probable danger.
    pub danger: bool,
    pub group_wait: Duration,
    pub repeat_interval: Option<Duration>,
    pub group_by: Vec<String>,
    pub group_interval: Duration,
}

impl Chosen {
    /// The group an incident with `labels` is in on this route: its key, as Alertmanager
    /// writes one (`route.routes[0]:{customer="ulb"}`), and its labels; `None` when each
    /// incident is its own group.
    pub fn group(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Option<(String, BTreeMap<String, String>)> {
        if self.group_by.is_empty() {
            return None;
        }
        let values: BTreeMap<String, String> = self
            .group_by
            .iter()
            .map(|k| (k.clone(), labels.get(k).cloned().unwrap_or_default()))
            .collect();
        let pairs: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        Some((format!("{}:{{{}}}", self.path, pairs.join(",")), values))
    }
}

/// Labels from `key=value,key=value` (the `--route` option of `vigil config check`).
pub fn labels_from(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("{p:?} is not label=value"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(toml_text: &str) -> Route {
        let cfg: RouteConfig = toml::from_str(toml_text).expect("route toml");
        Route::build(&cfg, &["desk", "soc", "ulb-noc", "cap"]).expect("builds")
    }

    fn take(route: &Route, labels: &str) -> Vec<String> {
        route
            .chosen(&labels_from(labels).expect("labels"))
            .into_iter()
            .map(|c| c.receiver)
            .collect()
    }

    #[test]
    fn groups_are_keyed_by_the_route_and_its_labels_values() {
        let r = tree(
            r#"
receiver = "desk"
group_by = ["customer", "severity"]
[[routes]]
matchers = ["danger=true"]
receiver = "soc"
group_by = ["..."]
[[routes]]
matchers = ["customer=ulb"]
receiver = "ulb-noc"
group_interval = "10m"
"#,
        );
        let labels = labels_from("customer=ulb,severity=high,danger=false").expect("labels");
        let c = &r.chosen(&labels)[0];
        assert_eq!(c.receiver, "ulb-noc");
        assert_eq!(c.group_interval, Duration::from_secs(600));
        let (key, values) = c.group(&labels).expect("grouped");
        assert_eq!(key, r#"route.routes[1]:{customer="ulb",severity="high"}"#);
        assert_eq!(values.len(), 2);
        // "..." : each incident its own group.
        let danger = labels_from("customer=ulb,danger=true").expect("labels");
        assert_eq!(r.chosen(&danger)[0].group(&danger), None);
        let bad: RouteConfig =
            toml::from_str("receiver = \"desk\"\ngroup_by = [\"host\"]").expect("toml");
        let e = Route::build(&bad, &["desk"]).expect_err("refused");
        assert!(
            e.starts_with("route.group_by: \"host\" is not a label"),
            "{e}"
        );
        let bad: RouteConfig =
            toml::from_str("receiver = \"desk\"\ngroup_interval = \"0s\"").expect("toml");
        assert!(Route::build(&bad, &["desk"]).is_err());
    }

    #[test]
    fn an_asset_matcher_matches_any_one_of_an_incident_s_assets() {
        let labels = |assets: &str| -> BTreeMap<String, String> {
            [("asset".to_owned(), assets.to_owned())].into()
        };
        let m = |t: &str| Matcher::parse(t).expect("matcher");
        let two = labels("FW-0002,RTR-0001");
        assert!(m("asset=RTR-0001").matches(&two));
        assert!(m("asset=FW-0002").matches(&two));
        assert!(!m("asset=FW-0002,RTR-0001").matches(&two));
        assert!(!m("asset=SW-0003").matches(&two));
        assert!(m("asset=~RTR-.*").matches(&two));
        assert!(!m("asset!=RTR-0001").matches(&two));
        assert!(m("asset!=SW-0003").matches(&two));
        assert!(!m("asset!~FW-.*").matches(&two));
        // No asset: the empty value, as for any label an incident lacks.
        assert!(m("asset=").matches(&labels("")));
        assert!(m("asset!~.+").matches(&labels("")));
    }

    #[test]
    fn the_first_matching_child_takes_it_unless_it_continues() {
        let r = tree(
            r#"
receiver = "desk"
[[routes]]
matchers = ["danger=true"]
receiver = "soc"
continue = true
[[routes]]
matchers = ["customer=ulb", "severity=~high|critical"]
receiver = "ulb-noc"
  [[routes.routes]]
  matchers = ["rule!~ssh.*"]
  receiver = "cap"
[[routes]]
matchers = ["customer=ulb"]
"#,
        );
        assert_eq!(take(&r, "severity=low,customer=kul"), ["desk"]);
        // A child took it: the root's own receiver is only for what no child takes.
        assert_eq!(take(&r, "danger=true,customer=kul"), ["soc"]);
        // The second child matches; its own child does not (ssh rule): its receiver.
        assert_eq!(
            take(&r, "danger=true,customer=ulb,severity=high,rule=ssh-bf"),
            ["soc", "ulb-noc"]
        );
        assert_eq!(
            take(&r, "customer=ulb,severity=critical,rule=port-scan"),
            ["cap"]
        );
        // The third child inherits the root's receiver.
        assert_eq!(take(&r, "customer=ulb,severity=low"), ["desk"]);
        let paths = r.chosen(&labels_from("customer=ulb,severity=critical,rule=x").expect("l"));
        assert_eq!(paths[0].path, "route.routes[1].routes[0]");
    }

    #[test]
    fn bad_routes_are_named_by_their_path() {
        let bad = |t: &str| {
            let cfg: RouteConfig = toml::from_str(t).expect("toml");
            Route::build(&cfg, &["desk"]).expect_err("refused")
        };
        assert!(bad("matchers = []").contains("root route needs a receiver"));
        let e = bad("receiver = \"desk\"\n[[routes]]\nreceiver = \"nobody\"\n");
        assert!(e.starts_with("route.routes[0]: receiver \"nobody\""), "{e}");
        let e = bad("receiver = \"desk\"\n[[routes]]\nmatchers = [\"severity=~(\"]\n");
        assert!(e.starts_with("route.routes[0]: matcher"), "{e}");
        assert!(Matcher::parse("severity").is_err());
        assert!(Matcher::parse("sev erity=x").is_err());
        assert!(Matcher::parse("a!x").is_err());
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let m = Matcher::parse("severity=~high").expect("m");
        assert!(!m.matches(&labels_from("severity=very-high").expect("l")));
        assert!(m.matches(&labels_from("severity=high").expect("l")));
        let absent = Matcher::parse("customer=").expect("m");
        assert!(absent.matches(&BTreeMap::new()));
        assert!(
            Matcher::parse("customer!=\"\"")
                .expect("m")
                .matches(&labels_from("customer=x").expect("l"))
        );
    }
}
