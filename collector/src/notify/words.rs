//! The words of announcements in each language customers speak (`fr`, `nl`, `de`, `en`).
//! Templates hold `{id}`, `{reason}`, `{title}`, `{customer}`, `{severity}`, `{url}`.
//!
//! # Invariants
//! - Every language has every text (the tables are one struct, filled for each).

/// A language of announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Fr,
    Nl,
    De,
}

impl Lang {
    /// `fr`, `nl`, `de`, `en`; anything else is English.
    pub fn parse(code: &str) -> Lang {
        match code {
            "fr" => Lang::Fr,
            "nl" => Lang::Nl,
            "de" => Lang::De,
            _ => Lang::En,
        }
    }

    /// `fr`, `nl`, `de`, `en`; `None` for anything else.
    pub fn known(code: &str) -> Option<Lang> {
        [Lang::En, Lang::Fr, Lang::Nl, Lang::De]
            .into_iter()
            .find(|l| l.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Nl => "nl",
            Lang::De => "de",
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            Lang::En => &EN,
            Lang::Fr => &FR,
            Lang::Nl => &NL,
            Lang::De => &DE,
        }
    }
}

pub struct Words {
    pub retracted: &'static str,
    pub now_danger: &'static str,
    pub no_longer_danger: &'static str,
    pub resolved: &'static str,
    pub escalated: &'static str,
    pub opened_danger: &'static str,
    pub opened: &'static str,
    /// After the head: what, whose, how bad.
    pub tail: &'static str,
    pub subject_retracted: &'static str,
    pub subject_resolved: &'static str,
    pub subject_escalated_danger: &'static str,
    pub subject_escalated: &'static str,
    pub subject_now_danger: &'static str,
    pub subject_no_longer_danger: &'static str,
    pub subject_danger: &'static str,
    pub subject_reminder: &'static str,
    /// A group's e-mail: its subject (`{n}` incidents, the group's `{labels}`) and first line.
    pub group_subject: &'static str,
    pub group_intro: &'static str,
    /// Incident, What, Customer, Severity, Probable danger, Status, Where, Rule, Alerts,
    /// First seen, Last seen, Link.
    pub labels: [&'static str; 13],
    /// A digest's subject (`{n}` announcements held) and first line.
    pub digest_subject: &'static str,
    pub digest_intro: &'static str,
    /// Why an announcement was held: an exclusion, the customer's limit, the receiver's
    /// limit, the SMS cap, anything else.
    pub held_because: [&'static str; 5],
    /// Whom to call back (`[notify.contact]`), in an e-mail.
    pub contact: &'static str,
    /// Said after the tail when the incident concerns assets.
    pub assets_said: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    /// The status page: its title; up, degraded, down, unknown; 90 days, 30 days, 24 hours;
    /// notices; no checks.
    pub status: [&'static str; 10],
    pub reason: &'static str,
    pub calls: &'static str,
    pub placed: &'static str,
    pub failed: &'static str,
    pub pending: &'static str,
    pub handed: &'static str,
    pub no_customer: &'static str,
    pub no_reason: &'static str,
    pub reply_ack: &'static str,
    pub respond: &'static str,
    pub maintenance_planned: &'static str,
    pub maintenance_started: &'static str,
    pub maintenance_ended: &'static str,
    pub maintenance_window: &'static str,
    pub maintenance_every: &'static str,
    pub maintenance_until: &'static str,
    pub maintenance_assets: &'static str,
    pub maintenance_quiet: &'static str,
}

/// `template` with its placeholders replaced.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

static EN: Words = Words {
    retracted: "Vigil. Incident {id} is retracted: {reason}.",
    now_danger: "Vigil. Incident {id} is now a probable danger.",
    no_longer_danger: "Vigil. Incident {id} is no longer a probable danger.",
    resolved: "Vigil. Incident {id} is resolved.",
    escalated: "Vigil. Incident {id} was not acknowledged in time: it is yours now.",
    opened_danger: "Vigil. Probable danger. Incident {id}.",
    opened: "Vigil. Incident {id}.",
    tail: "{title}. Customer {customer}. Severity {severity}.",
    subject_retracted: "RETRACTED: ",
    subject_resolved: "Resolved: ",
    subject_escalated_danger: "ESCALATED, PROBABLE DANGER: ",
    subject_escalated: "ESCALATED: ",
    subject_now_danger: "NOW PROBABLE DANGER: ",
    subject_no_longer_danger: "No longer a danger: ",
    subject_danger: "PROBABLE DANGER: ",
    subject_reminder: "Reminder: ",
    group_subject: "{n} new incidents: {labels}",
    group_intro: "These incidents opened and go together (same {labels}). Each has its page.",
    labels: [
        "Incident",
        "What",
        "Customer",
        "Assets",
        "Severity",
        "Probable danger",
        "Status",
        "Where",
        "Rule",
        "Alerts",
        "First seen",
        "Last seen",
        "Link",
    ],
    assets_said: "Assets {assets}.",
    digest_subject: "Digest: {n} announcements held",
    digest_intro: "These announcements were held instead of sent one by one. Each incident's page has its timeline.",
    held_because: [
        "excluded (art. 9)",
        "the customer's limit was reached",
        "your limit was reached",
        "the monthly SMS cap was reached",
        "held",
    ],
    contact: "Contact",
    yes: "yes",
    no: "no",
    status: [
        "Status",
        "Operational",
        "Degraded",
        "Down",
        "Unknown",
        "90 days",
        "30 days",
        "24 hours",
        "Notices",
        "No checks.",
    ],
    reason: "Reason for the retraction",
    calls: "Calls made for this announcement:",
    placed: "placed",
    failed: "failed",
    pending: "not ended yet",
    handed: "handed to the desk to call",
    no_customer: "no customer",
    no_reason: "no reason given",
    reply_ack: " Reply ACK {id} to acknowledge.",
    respond: "Acknowledge it, or reply, here: {url}",
    maintenance_planned: "Maintenance planned",
    maintenance_started: "Maintenance started",
    maintenance_ended: "Maintenance ended",
    maintenance_window: "Window: {from} to {to}",
    maintenance_every: ", every {hours} hours",
    maintenance_until: " until {until}",
    maintenance_assets: "Assets",
    maintenance_quiet: "While it is on, incidents about these customers are recorded but not announced (a retraction still is).",
};

static FR: Words = Words {
    retracted: "Vigil. L'incident {id} est retiré : {reason}.",
    now_danger: "Vigil. L'incident {id} présente désormais un danger probable.",
    no_longer_danger: "Vigil. L'incident {id} ne présente plus de danger probable.",
    resolved: "Vigil. L'incident {id} est résolu.",
    escalated: "Vigil. L'incident {id} n'a pas été pris en charge à temps : il vous est confié.",
    opened_danger: "Vigil. Danger probable. Incident {id}.",
    opened: "Vigil. Incident {id}.",
    tail: "{title}. Client {customer}. Gravité {severity}.",
    subject_retracted: "RETIRÉ : ",
    subject_resolved: "Résolu : ",
    subject_escalated_danger: "ESCALADÉ, DANGER PROBABLE : ",
    subject_escalated: "ESCALADÉ : ",
    subject_now_danger: "DÉSORMAIS DANGER PROBABLE : ",
    subject_no_longer_danger: "Plus de danger : ",
    subject_danger: "DANGER PROBABLE : ",
    subject_reminder: "Rappel : ",
    group_subject: "{n} nouveaux incidents : {labels}",
    group_intro: "Ces incidents se sont ouverts et vont ensemble (même {labels}). Chacun a sa page.",
    labels: [
        "Incident",
        "Quoi",
        "Client",
        "Actifs",
        "Gravité",
        "Danger probable",
        "Statut",
        "Où",
        "Règle",
        "Alertes",
        "Première détection",
        "Dernière détection",
        "Lien",
    ],
    assets_said: "Actifs {assets}.",
    digest_subject: "Résumé : {n} annonces retenues",
    digest_intro: "Ces annonces ont été retenues au lieu d'être envoyées une à une. La page de chaque incident en donne l'historique.",
    held_because: [
        "exclusion (art. 9)",
        "la limite du client était atteinte",
        "votre limite était atteinte",
        "le plafond mensuel de SMS était atteint",
        "retenue",
    ],
    contact: "Contact",
    yes: "oui",
    no: "non",
    status: [
        "État des services",
        "Opérationnel",
        "Dégradé",
        "En panne",
        "Inconnu",
        "90 jours",
        "30 jours",
        "24 heures",
        "Avis",
        "Aucun contrôle.",
    ],
    reason: "Motif du retrait",
    calls: "Appels passés pour cette annonce :",
    placed: "passé",
    failed: "échoué",
    pending: "pas encore terminé",
    handed: "confié au desk pour appel",
    no_customer: "aucun client",
    no_reason: "aucun motif donné",
    reply_ack: " Répondez ACK {id} pour accuser réception.",
    respond: "Accusez réception ou répondez ici : {url}",
    maintenance_planned: "Maintenance planifiée",
    maintenance_started: "Maintenance commencée",
    maintenance_ended: "Maintenance terminée",
    maintenance_window: "Fenêtre : du {from} au {to}",
    maintenance_every: ", toutes les {hours} heures",
    maintenance_until: " jusqu'au {until}",
    maintenance_assets: "Équipements",
    maintenance_quiet: "Pendant la maintenance, les incidents de ces clients sont enregistrés mais pas annoncés (un retrait l'est toujours).",
};

static NL: Words = Words {
    retracted: "Vigil. Incident {id} is ingetrokken: {reason}.",
    now_danger: "Vigil. Incident {id} is nu een waarschijnlijk gevaar.",
    no_longer_danger: "Vigil. Incident {id} is niet langer een waarschijnlijk gevaar.",
    resolved: "Vigil. Incident {id} is opgelost.",
    escalated: "Vigil. Incident {id} werd niet op tijd bevestigd: het is nu aan u.",
    opened_danger: "Vigil. Waarschijnlijk gevaar. Incident {id}.",
    opened: "Vigil. Incident {id}.",
    tail: "{title}. Klant {customer}. Ernst {severity}.",
    subject_retracted: "INGETROKKEN: ",
    subject_resolved: "Opgelost: ",
    subject_escalated_danger: "GEËSCALEERD, WAARSCHIJNLIJK GEVAAR: ",
    subject_escalated: "GEËSCALEERD: ",
    subject_now_danger: "NU WAARSCHIJNLIJK GEVAAR: ",
    subject_no_longer_danger: "Geen gevaar meer: ",
    subject_danger: "WAARSCHIJNLIJK GEVAAR: ",
    subject_reminder: "Herinnering: ",
    group_subject: "{n} nieuwe incidenten: {labels}",
    group_intro: "Deze incidenten zijn geopend en horen samen (zelfde {labels}). Elk heeft zijn pagina.",
    labels: [
        "Incident",
        "Wat",
        "Klant",
        "Assets",
        "Ernst",
        "Waarschijnlijk gevaar",
        "Status",
        "Waar",
        "Regel",
        "Meldingen",
        "Eerst gezien",
        "Laatst gezien",
        "Link",
    ],
    assets_said: "Assets {assets}.",
    digest_subject: "Overzicht: {n} meldingen vastgehouden",
    digest_intro: "Deze meldingen werden vastgehouden in plaats van één voor één verstuurd. De pagina van elk incident toont de tijdlijn.",
    held_because: [
        "uitgesloten (art. 9)",
        "de limiet van de klant was bereikt",
        "uw limiet was bereikt",
        "het maandelijkse sms-plafond was bereikt",
        "vastgehouden",
    ],
    contact: "Contactpersoon",
    yes: "ja",
    no: "nee",
    status: [
        "Status",
        "Operationeel",
        "Verminderd",
        "Storing",
        "Onbekend",
        "90 dagen",
        "30 dagen",
        "24 uur",
        "Mededelingen",
        "Geen controles.",
    ],
    reason: "Reden van de intrekking",
    calls: "Oproepen voor deze melding:",
    placed: "geplaatst",
    failed: "mislukt",
    pending: "nog niet beëindigd",
    handed: "aan de desk gegeven om te bellen",
    no_customer: "geen klant",
    no_reason: "geen reden opgegeven",
    reply_ack: " Antwoord ACK {id} om te bevestigen.",
    respond: "Bevestig of antwoord hier: {url}",
    maintenance_planned: "Onderhoud gepland",
    maintenance_started: "Onderhoud begonnen",
    maintenance_ended: "Onderhoud beëindigd",
    maintenance_window: "Venster: van {from} tot {to}",
    maintenance_every: ", elke {hours} uur",
    maintenance_until: " tot {until}",
    maintenance_assets: "Uitrusting",
    maintenance_quiet: "Tijdens het onderhoud worden incidenten van deze klanten geregistreerd maar niet gemeld (een intrekking wel).",
};

static DE: Words = Words {
    retracted: "Vigil. Vorfall {id} wurde zurückgezogen: {reason}.",
    now_danger: "Vigil. Vorfall {id} ist jetzt eine wahrscheinliche Gefahr.",
    no_longer_danger: "Vigil. Vorfall {id} ist keine wahrscheinliche Gefahr mehr.",
    resolved: "Vigil. Vorfall {id} ist behoben.",
    escalated: "Vigil. Vorfall {id} wurde nicht rechtzeitig bestätigt: er liegt jetzt bei Ihnen.",
    opened_danger: "Vigil. Wahrscheinliche Gefahr. Vorfall {id}.",
    opened: "Vigil. Vorfall {id}.",
    tail: "{title}. Kunde {customer}. Schweregrad {severity}.",
    subject_retracted: "ZURÜCKGEZOGEN: ",
    subject_resolved: "Behoben: ",
    subject_escalated_danger: "ESKALIERT, WAHRSCHEINLICHE GEFAHR: ",
    subject_escalated: "ESKALIERT: ",
    subject_now_danger: "JETZT WAHRSCHEINLICHE GEFAHR: ",
    subject_no_longer_danger: "Keine Gefahr mehr: ",
    subject_danger: "WAHRSCHEINLICHE GEFAHR: ",
    subject_reminder: "Erinnerung: ",
    group_subject: "{n} neue Vorfälle: {labels}",
    group_intro: "Diese Vorfälle wurden eröffnet und gehören zusammen (gleiche {labels}). Jeder hat seine Seite.",
    labels: [
        "Vorfall",
        "Was",
        "Kunde",
        "Assets",
        "Schweregrad",
        "Wahrscheinliche Gefahr",
        "Status",
        "Wo",
        "Regel",
        "Alarme",
        "Zuerst gesehen",
        "Zuletzt gesehen",
        "Link",
    ],
    assets_said: "Assets {assets}.",
    digest_subject: "Zusammenfassung: {n} Meldungen zurückgehalten",
    digest_intro: "Diese Meldungen wurden zurückgehalten statt einzeln versandt. Die Seite jedes Vorfalls zeigt seinen Verlauf.",
    held_because: [
        "ausgeschlossen (Art. 9)",
        "das Limit des Kunden war erreicht",
        "Ihr Limit war erreicht",
        "die monatliche SMS-Obergrenze war erreicht",
        "zurückgehalten",
    ],
    contact: "Ansprechpartner",
    yes: "ja",
    no: "nein",
    status: [
        "Status",
        "In Betrieb",
        "Beeinträchtigt",
        "Ausgefallen",
        "Unbekannt",
        "90 Tage",
        "30 Tage",
        "24 Stunden",
        "Hinweise",
        "Keine Prüfungen.",
    ],
    reason: "Grund der Rücknahme",
    calls: "Anrufe zu dieser Meldung:",
    placed: "getätigt",
    failed: "fehlgeschlagen",
    pending: "noch nicht beendet",
    handed: "dem Desk zum Anrufen übergeben",
    no_customer: "kein Kunde",
    no_reason: "kein Grund angegeben",
    reply_ack: " Antworten Sie ACK {id} zur Bestätigung.",
    respond: "Bestätigen oder antworten Sie hier: {url}",
    maintenance_planned: "Wartung geplant",
    maintenance_started: "Wartung begonnen",
    maintenance_ended: "Wartung beendet",
    maintenance_window: "Zeitfenster: von {from} bis {to}",
    maintenance_every: ", alle {hours} Stunden",
    maintenance_until: " bis {until}",
    maintenance_assets: "Geräte",
    maintenance_quiet: "Während der Wartung werden Vorfälle dieser Kunden erfasst, aber nicht gemeldet (eine Rücknahme schon).",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_keeps_every_placeholder() {
        for lang in [Lang::En, Lang::Fr, Lang::Nl, Lang::De] {
            let w = lang.words();
            for (t, needs) in [
                (w.retracted, &["{id}", "{reason}"][..]),
                (w.now_danger, &["{id}"]),
                (w.no_longer_danger, &["{id}"]),
                (w.resolved, &["{id}"]),
                (w.escalated, &["{id}"]),
                (w.opened_danger, &["{id}"]),
                (w.opened, &["{id}"]),
                (w.tail, &["{title}", "{customer}", "{severity}"]),
                (w.reply_ack, &["{id}"]),
                (w.respond, &["{url}"]),
                (w.maintenance_window, &["{from}", "{to}"]),
                (w.maintenance_every, &["{hours}"]),
                (w.maintenance_until, &["{until}"]),
            ] {
                for n in needs {
                    assert!(t.contains(n), "{lang:?}: {t:?} lacks {n}");
                }
            }
        }
        assert_eq!(Lang::parse("fr"), Lang::Fr);
        assert_eq!(Lang::parse("es"), Lang::En);
        assert_eq!(fill("a {x} b {x}", &[("x", "1")]), "a 1 b 1");
    }
}
