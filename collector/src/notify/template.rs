//! Templates of one's own (`[[notify.templates]]`): what a call or an SMS says, and an
//! e-mail's subject and body, per channel and language, in Jinja syntax (minijinja, as the
//! gateways' requests). A person told gets the template of the channel in their language,
//! else the channel's template without a language, else the built-in text.
//!
//! A template sees `kind` (`opened`, `changed`, `retracted`, `resolved`, `escalated`,
//! `reminder`), `incident` (`id`, `title`, `severity`, `danger`, `customer`, `assets`,
//! `status`, `rule_id`, `group_key`, `count`, `first_seen`, `last_seen`, `url`), `reason` (a
//! retraction's), `calls` (an e-mail's: `channel`, `target`, `state` of the calls before it),
//! `language`, `contact` (`[notify.contact]`: `name`, `phones`, `email`; none when not
//! configured), and `text`: the built-in text, to wrap rather than rewrite.
//!
//! # Invariants
//! - Every template is compiled and rendered on sample announcements, in each kind, with
//!   undefined variables as errors, when the configuration is loaded: one that cannot render
//!   is refused at `vigil config check` naming it (`notify.templates[2].body`).
//! - An announcement is never lost to a template: one that fails at run time all the same
//!   gives way to the built-in text (logged).

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use super::plan::{Channel, Kind};
use super::text::{Announcement, Call, IncidentView};
use super::words::Lang;

/// One `[[notify.templates]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// `email`, `voice` or `sms`.
    pub channel: String,
    /// `en`, `fr`, `nl` or `de`; none: any language without a template of its own.
    #[serde(default)]
    pub language: Option<String>,
    /// An e-mail's subject (e-mail only; none: the built-in subject).
    #[serde(default)]
    pub subject: Option<String>,
    /// What a call or an SMS says; an e-mail's body.
    pub body: String,
}

/// What a template sees.
#[derive(Debug, Serialize)]
struct Values<'a> {
    kind: &'a str,
    incident: &'a IncidentView,
    reason: Option<&'a str>,
    calls: &'a [Call],
    language: &'a str,
    text: &'a str,
    contact: Option<&'a super::ContactConfig>,
}

/// The templates in force.
#[derive(Debug, Clone, Default)]
pub struct Templates(Vec<(Channel, Option<Lang>, TemplateConfig)>);

fn env() -> Environment<'static> {
    let mut e = Environment::new();
    e.set_undefined_behavior(UndefinedBehavior::Strict);
    e
}

/// The kinds an announcement about an incident may be of.
const KINDS: [Kind; 6] = [
    Kind::Opened,
    Kind::Changed,
    Kind::Retracted,
    Kind::Resolved,
    Kind::Escalated,
    Kind::Reminder,
];

impl Templates {
    /// Checks and keeps `list` (tried with `contact`, the one configured); the error names
    /// the entry and the part (`notify.templates[1].subject: ...`).
    pub fn new(
        list: &[TemplateConfig],
        contact: Option<&super::ContactConfig>,
    ) -> Result<Templates, String> {
        let mut out = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let at = format!("notify.templates[{i}]");
            let channel = match t.channel.as_str() {
                "email" => Channel::Email,
                "voice" => Channel::Voice,
                "sms" => Channel::Sms,
                other => {
                    return Err(format!(
                        "{at}.channel: {other:?} is not one of email, voice, sms"
                    ));
                }
            };
            let lang = t
                .language
                .as_deref()
                .map(|l| {
                    Lang::known(l)
                        .ok_or_else(|| format!("{at}.language: {l:?} is not one of en, fr, nl, de"))
                })
                .transpose()?;
            if t.subject.is_some() && channel != Channel::Email {
                return Err(format!("{at}.subject: only an e-mail has a subject"));
            }
            if out
                .iter()
                .any(|(c, l, _): &(Channel, Option<Lang>, _)| *c == channel && *l == lang)
            {
                return Err(format!(
                    "{at}: a second template for {} in {}",
                    t.channel,
                    t.language.as_deref().unwrap_or("any language")
                ));
            }
            let inc = IncidentView::sample();
            for kind in KINDS {
                let calls = [Call {
                    channel: "voice".into(),
                    target: "+32470000000".into(),
                    state: "sent".into(),
                }];
                let v = Values {
                    kind: kind.as_str(),
                    incident: &inc,
                    reason: (kind == Kind::Retracted).then_some("false_positive: sample"),
                    calls: &calls,
                    language: lang.unwrap_or(Lang::En).code(),
                    text: "Vigil. Sample.",
                    contact,
                };
                for (part, src) in [("subject", t.subject.as_deref()), ("body", Some(&t.body))] {
                    if let Some(src) = src {
                        render(src, &v).map_err(|e| format!("{at}.{part}: {e}"))?;
                    }
                }
            }
            out.push((channel, lang, t.clone()));
        }
        Ok(Templates(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, channel: Channel, lang: Lang) -> Option<&TemplateConfig> {
        let of = |l: Option<Lang>| {
            self.0
                .iter()
                .find(|(c, tl, _)| *c == channel && *tl == l)
                .map(|(_, _, t)| t)
        };
        of(Some(lang)).or_else(|| of(None))
    }

    /// What a call or an SMS about `a` says: the template's, else `builtin`.
    pub fn spoken(&self, channel: Channel, a: &Announcement, builtin: String) -> String {
        let Some(t) = self.find(channel, a.lang) else {
            return builtin;
        };
        render(&t.body, &values(a, &builtin)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, channel = channel.as_str(), "a template failed: the built-in text goes");
            builtin
        })
    }

    /// An e-mail's (subject, body) about `a`: the template's parts, else the built-in ones.
    pub fn email(&self, a: &Announcement, subject: String, body: String) -> (String, String) {
        let Some(t) = self.find(Channel::Email, a.lang) else {
            return (subject, body);
        };
        let v = values(a, &body);
        let s = match &t.subject {
            Some(src) => render(src, &v),
            None => Ok(subject.clone()),
        };
        match (s, render(&t.body, &v)) {
            (Ok(s), Ok(b)) => (s.lines().next().unwrap_or_default().to_owned(), b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "an e-mail template failed: the built-in text goes");
                (subject, body)
            }
        }
    }
}

fn values<'a>(a: &'a Announcement, text: &'a str) -> Values<'a> {
    Values {
        kind: a.kind,
        incident: &a.incident,
        reason: a.reason.as_deref(),
        calls: &a.calls,
        language: a.lang.code(),
        text,
        contact: a.contact.as_ref(),
    }
}

fn render(src: &str, v: &Values<'_>) -> Result<String, String> {
    env().render_str(src, v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Incident;

    fn templates(toml_text: &str) -> Result<Templates, String> {
        #[derive(Deserialize)]
        struct Doc {
            templates: Vec<TemplateConfig>,
        }
        let d: Doc = toml::from_str(toml_text).expect("toml");
        Templates::new(&d.templates, None)
    }

    fn announcement(kind: Kind) -> Announcement {
        let inc = Incident {
            id: 7,
            title: "Router down".into(),
            severity: "critical".into(),
            assets: vec!["RTR-0001".into()],
            ..crate::notify::text::tests::incident(true)
        };
        Announcement::new(kind, &inc, "http://v", Vec::new())
    }

    #[test]
    fn the_person_s_language_else_the_channel_s_template_else_the_built_in_text() {
        let t = templates(
            r#"
[[templates]]
channel = "voice"
language = "fr"
body = "Alerte {{ incident.customer }} : {{ incident.title }} sur {{ incident.assets|join(', ') }}."
[[templates]]
channel = "voice"
body = "{{ text }} Press 1."
[[templates]]
channel = "email"
subject = "{{ incident.customer|upper }} #{{ incident.id }} {{ kind }}"
body = "{{ text }}\n-- \nNOC"
"#,
        )
        .expect("valid");
        let a = announcement(Kind::Opened);
        assert_eq!(
            t.spoken(
                Channel::Voice,
                &a.clone().in_language(Lang::Fr),
                "built-in".into()
            ),
            "Alerte ulb : Router down sur RTR-0001."
        );
        assert_eq!(
            t.spoken(
                Channel::Voice,
                &a.clone().in_language(Lang::Nl),
                "ingebouwd".into()
            ),
            "ingebouwd Press 1."
        );
        // No SMS template: the built-in text.
        assert_eq!(t.spoken(Channel::Sms, &a, "built-in".into()), "built-in");
        let (s, b) = t.email(&a, "subject".into(), "body".into());
        assert_eq!(s, "ULB #7 opened");
        assert_eq!(b, "body\n-- \nNOC");
    }

    #[test]
    fn a_template_that_cannot_render_is_refused_naming_it() {
        for (text, want) in [
            (
                "[[templates]]\nchannel = \"email\"\nbody = \"{{ incident.nope }}\"",
                "notify.templates[0].body: ",
            ),
            (
                "[[templates]]\nchannel = \"email\"\nsubject = \"{% if %}\"\nbody = \"x\"",
                "notify.templates[0].subject: ",
            ),
            (
                "[[templates]]\nchannel = \"fax\"\nbody = \"x\"",
                "notify.templates[0].channel: \"fax\"",
            ),
            (
                "[[templates]]\nchannel = \"sms\"\nlanguage = \"it\"\nbody = \"x\"",
                "notify.templates[0].language: \"it\"",
            ),
            (
                "[[templates]]\nchannel = \"sms\"\nsubject = \"s\"\nbody = \"x\"",
                "notify.templates[0].subject: only an e-mail",
            ),
            (
                "[[templates]]\nchannel = \"sms\"\nbody = \"x\"\n[[templates]]\nchannel = \"sms\"\nbody = \"y\"",
                "notify.templates[1]: a second template",
            ),
            // Past the sample's one call.
            (
                "[[templates]]\nchannel = \"voice\"\nbody = \"{{ calls[3].target }}\"",
                "notify.templates[0].body: ",
            ),
        ] {
            let e = templates(text).expect_err(text);
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }
}
