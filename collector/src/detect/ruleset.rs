//! Rule files: Vigil's own rules (embedded from `rules/`) and the `.yml`/`.yaml` files under
//! configured directories, parsed into one Sigma collection.
//!
//! Invariants: a file that cannot be read or parsed, or a document in it that is not a
//! valid rule, is reported with the file and the reason ([`RuleError`]) and the rest still
//! load (unlike engines that drop bad rules silently). `mappings/` and `tests/` folders are
//! not rules and are skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rsigma_parser::SigmaCollection;
use serde::Serialize;

/// Vigil's own rules, compiled in so that `vigil up` detects with no configuration.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "rules/ssh_brute_force.yml",
        include_str!("../../../rules/ssh_brute_force.yml"),
    ),
    (
        "rules/password_spraying.yml",
        include_str!("../../../rules/password_spraying.yml"),
    ),
    (
        "rules/port_scan.yml",
        include_str!("../../../rules/port_scan.yml"),
    ),
    (
        "rules/host_sweep.yml",
        include_str!("../../../rules/host_sweep.yml"),
    ),
    (
        "rules/large_outbound_transfer.yml",
        include_str!("../../../rules/large_outbound_transfer.yml"),
    ),
    (
        "rules/sudo_failures.yml",
        include_str!("../../../rules/sudo_failures.yml"),
    ),
    (
        "rules/dns_non_standard_port.yml",
        include_str!("../../../rules/dns_non_standard_port.yml"),
    ),
];

/// A rule (or a whole file) that could not be loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleError {
    pub file: String,
    /// The rule's title, when the failure is one rule's rather than the file's.
    pub rule: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule {
            Some(r) => write!(f, "{}: rule {:?}: {}", self.file, r, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// Parsed rules with the file each came from.
#[derive(Debug, Default)]
pub struct Ruleset {
    pub collection: SigmaCollection,
    /// Rule key ([`rule_key`]) to the file it came from.
    pub files: HashMap<String, String>,
    pub errors: Vec<RuleError>,
}

/// The key a rule is known by: its id, else its name, else its title.
pub fn rule_key(id: &Option<String>, name: &Option<String>, title: &str) -> String {
    id.clone()
        .or_else(|| name.clone())
        .unwrap_or_else(|| title.to_owned())
}

impl Ruleset {
    /// The builtin rules (if `builtin`) and every rule file under `dirs`.
    pub fn load(builtin: bool, dirs: &[PathBuf]) -> Ruleset {
        let mut set = Ruleset::default();
        if builtin {
            for (name, text) in BUILTIN {
                set.add_text(name, text);
            }
        }
        for dir in dirs {
            let mut files = Vec::new();
            if let Err(e) = collect(dir, &mut files) {
                set.errors.push(RuleError {
                    file: dir.display().to_string(),
                    rule: None,
                    reason: format!("cannot read the rules directory: {e}"),
                });
            }
            files.sort();
            for f in files {
                match std::fs::read_to_string(&f) {
                    Ok(text) => set.add_text(&f.display().to_string(), &text),
                    Err(e) => set.errors.push(RuleError {
                        file: f.display().to_string(),
                        rule: None,
                        reason: format!("cannot read: {e}"),
                    }),
                }
            }
        }
        set
    }

    /// Parses one file's text and adds its rules; a rule whose key is already taken is
    /// refused (two rules with one id would make correlations ambiguous).
    pub fn add_text(&mut self, file: &str, text: &str) {
        let parsed = match rsigma_parser::parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                self.errors.push(RuleError {
                    file: file.to_owned(),
                    rule: None,
                    reason: e.to_string(),
                });
                return;
            }
        };
        for e in parsed.errors {
            self.errors.push(RuleError {
                file: file.to_owned(),
                rule: None,
                reason: e,
            });
        }
        let mut taken = |key: String, title: &str, errors: &mut Vec<RuleError>| {
            if let Some(first) = self.files.get(&key) {
                errors.push(RuleError {
                    file: file.to_owned(),
                    rule: Some(title.to_owned()),
                    reason: format!("duplicate rule id {key:?} (first in {first})"),
                });
                true
            } else {
                self.files.insert(key, file.to_owned());
                false
            }
        };
        for r in parsed.rules {
            if !taken(
                rule_key(&r.id, &r.name, &r.title),
                &r.title,
                &mut self.errors,
            ) {
                self.collection.rules.push(r);
            }
        }
        for c in parsed.correlations {
            if !taken(
                rule_key(&c.id, &c.name, &c.title),
                &c.title,
                &mut self.errors,
            ) {
                self.collection.correlations.push(c);
            }
        }
        for f in parsed.filters {
            self.collection.filters.push(f);
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if meta.is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "mappings" && name != "tests" && !name.starts_with('.') {
                collect(&path, out)?;
            }
        } else if name.ends_with(".yml") || name.ends_with(".yaml") {
            out.push(path);
        }
    }
    Ok(())
}
