//! Our own on-call rota (the desk and the SOC): the people, rotas of ordered levels whose
//! shifts hand over at local times, and temporary overrides ("I take tonight") kept in the
//! incident database. A receiver that names a rota tells the person on call at the
//! incident's escalation level; an incident not acknowledged in time goes to the next level.
//!
//! # Invariants
//! - Who is on call at an instant is a function of the configuration, the overrides and the
//!   instant alone. Shifts are counted in the rota's time zone, so a hand-over at 08:00 stays
//!   at 08:00 local time across daylight-saving changes.
//! - An override covers `[starts_at, ends_at)`; where overrides of one level overlap, the one
//!   made last wins. An override never outlives [`MAX_OVERRIDE_DAYS`].
//! - Levels are numbered from 1, as people say them ("level 2 did not answer").

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Row};

use crate::incidents::store::time;

/// `[oncall]` in the collector configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnCallConfig {
    pub people: Vec<Person>,
    pub rotas: Vec<RotaConfig>,
}

/// Someone of ours who can be on call.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// E.164: called when there is probable danger.
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotaConfig {
    pub name: String,
    /// Where the hand-over times are read (an IANA name).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Local times (`HH:MM`) at which a shift hands over to the next, every day.
    #[serde(default = "default_handover")]
    pub handover: Vec<String>,
    /// Days a shift lasts, with one hand-over time (7: a weekly rota).
    #[serde(default = "one")]
    pub shift_days: u32,
    /// The day (`YYYY-MM-DD`) whose first hand-over starts the first shift, taken by the
    /// first person of each level.
    pub start: String,
    /// The levels, first called first: each a list of person ids taking the shifts in turn.
    pub levels: Vec<Vec<String>>,
}

fn default_time_zone() -> String {
    "Europe/Brussels".into()
}

fn default_handover() -> Vec<String> {
    vec!["08:00".into()]
}

fn one() -> u32 {
    1
}

/// Longest override: beyond it, the rota itself should change.
pub const MAX_OVERRIDE_DAYS: i64 = 31;

#[derive(Debug, Clone)]
struct Rota {
    name: String,
    tz: Tz,
    handover: Vec<NaiveTime>,
    shift_days: i64,
    start: NaiveDate,
    levels: Vec<Vec<String>>,
}

/// The rotas and people, checked.
#[derive(Debug, Clone, Default)]
pub struct OnCall {
    people: BTreeMap<String, Person>,
    rotas: Vec<Rota>,
}

/// An override of one level of one rota, as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Override {
    pub id: i64,
    pub rota: String,
    pub level: usize,
    pub person: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// Who holds one level of one rota at an instant, and until when.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Duty {
    pub level: usize,
    pub person: Option<Person>,
    /// The shift (or the override) being worked.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The override that put `person` here, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RotaNow {
    pub rota: String,
    pub time_zone: String,
    pub levels: Vec<Duty>,
}

/// The local instant of `date` at `time`; in a daylight-saving gap, the first instant after it.
fn instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut local = date.and_time(time);
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_time(time))
}

impl Rota {
    /// The number of the shift at `t` (0: the first; negative before `start`), with its start
    /// and end.
    fn shift(&self, t: DateTime<Utc>) -> (i64, DateTime<Utc>, DateTime<Utc>) {
        let local = t.with_timezone(&self.tz);
        let h = self.handover.len() as i64;
        let days = (local.date_naive() - self.start).num_days();
        let passed = self.handover.iter().filter(|&&x| x <= local.time()).count() as i64;
        // Hand-overs since the first one; the shift is the one the last of them began.
        let slot = days * h + passed - 1;
        let shift = slot.div_euclid(self.shift_days);
        let at = |shift: i64| {
            let slot = shift * self.shift_days;
            let date = self.start + chrono::Duration::days(slot.div_euclid(h));
            instant(self.tz, date, self.handover[slot.rem_euclid(h) as usize])
        };
        (shift, at(shift), at(shift + 1))
    }
}

impl OnCall {
    /// Checks the configuration; the error names the key and what is wrong.
    pub fn new(cfg: &OnCallConfig) -> Result<OnCall, (&'static str, String)> {
        let mut people = BTreeMap::new();
        for p in &cfg.people {
            let bad = |m: String| ("oncall.people", format!("person {:?}: {m}", p.id));
            if p.id.trim().is_empty() {
                return Err(("oncall.people", "a person has an empty id".into()));
            }
            if let Some(e) = &p.email {
                e.parse::<lettre::message::Mailbox>()
                    .map_err(|_| bad(format!("{e:?} is not an e-mail address")))?;
            }
            if let Some(n) = &p.phone
                && !crate::reference::is_e164(n)
            {
                return Err(bad(format!(
                    "phone {n:?} is not in E.164 form (+ and 8 to 15 digits)"
                )));
            }
            if people.insert(p.id.clone(), p.clone()).is_some() {
                return Err(bad("is defined twice".into()));
            }
        }
        let mut rotas: Vec<Rota> = Vec::new();
        for r in &cfg.rotas {
            let bad = |m: String| ("oncall.rotas", format!("rota {:?}: {m}", r.name));
            if rotas.iter().any(|o| o.name == r.name) {
                return Err(bad("is defined twice".into()));
            }
            let tz: Tz = r
                .time_zone
                .parse()
                .map_err(|_| bad(format!("time_zone {:?} is not an IANA zone", r.time_zone)))?;
            let mut handover = r
                .handover
                .iter()
                .map(|h| {
                    NaiveTime::parse_from_str(h, "%H:%M")
                        .map_err(|_| bad(format!("handover {h:?} is not a time like 08:00")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            handover.sort();
            handover.dedup();
            if handover.is_empty() {
                return Err(bad("handover: at least one time".into()));
            }
            if r.shift_days == 0 || (r.shift_days > 1 && handover.len() > 1) {
                return Err(bad(
                    "shift_days: at least 1, and more than 1 only with one hand-over time".into(),
                ));
            }
            let start = NaiveDate::parse_from_str(&r.start, "%Y-%m-%d")
                .map_err(|_| bad(format!("start {:?} is not a date like 2026-01-05", r.start)))?;
            if r.levels.is_empty() || r.levels.iter().any(Vec::is_empty) {
                return Err(bad(
                    "levels: at least one, each with at least one person".into()
                ));
            }
            for id in r.levels.iter().flatten() {
                if !people.contains_key(id) {
                    return Err(bad(format!(
                        "names {id:?}, who is not in [[oncall.people]]"
                    )));
                }
            }
            rotas.push(Rota {
                name: r.name.clone(),
                tz,
                handover,
                shift_days: i64::from(r.shift_days),
                start,
                levels: r.levels.clone(),
            });
        }
        Ok(OnCall { people, rotas })
    }

    /// No rota configured.
    pub fn is_empty(&self) -> bool {
        self.rotas.is_empty()
    }

    pub fn has_rota(&self, name: &str) -> bool {
        self.rota(name).is_some()
    }

    fn rota(&self, name: &str) -> Option<&Rota> {
        self.rotas.iter().find(|r| r.name == name)
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.get(id)
    }

    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values()
    }

    /// How many levels rota `name` has (0 for an unknown rota).
    pub fn levels(&self, name: &str) -> usize {
        self.rota(name).map_or(0, |r| r.levels.len())
    }

    /// Who holds `level` (from 1) of `rota` at `t`, given the overrides active then.
    pub fn duty(
        &self,
        rota: &str,
        level: usize,
        t: DateTime<Utc>,
        overrides: &[Override],
    ) -> Option<Duty> {
        let r = self.rota(rota)?;
        let people = r.levels.get(level.checked_sub(1)?)?;
        if let Some(o) = overrides
            .iter()
            .filter(|o| o.rota == rota && o.level == level && o.starts_at <= t && t < o.ends_at)
            .max_by_key(|o| o.id)
        {
            return Some(Duty {
                level,
                person: self.people.get(&o.person).cloned(),
                starts_at: o.starts_at,
                ends_at: o.ends_at,
                override_id: Some(o.id),
            });
        }
        let (shift, starts_at, ends_at) = r.shift(t);
        let id = &people[shift.rem_euclid(people.len() as i64) as usize];
        Some(Duty {
            level,
            person: self.people.get(id).cloned(),
            starts_at,
            ends_at,
            override_id: None,
        })
    }

    /// Every rota's levels at `t`.
    pub fn now(&self, t: DateTime<Utc>, overrides: &[Override]) -> Vec<RotaNow> {
        self.rotas
            .iter()
            .map(|r| RotaNow {
                rota: r.name.clone(),
                time_zone: r.tz.name().to_owned(),
                levels: (1..=r.levels.len())
                    .filter_map(|l| self.duty(&r.name, l, t, overrides))
                    .collect(),
            })
            .collect()
    }
}

/// Who is on call at one instant: the rotas with the overrides in force then.
pub struct Roster<'a> {
    pub oncall: &'a OnCall,
    pub at: DateTime<Utc>,
    pub overrides: &'a [Override],
}

impl Roster<'_> {
    /// The person holding `level` (from 1) of `rota`.
    pub fn person(&self, rota: &str, level: usize) -> Option<Person> {
        self.oncall
            .duty(rota, level, self.at, self.overrides)?
            .person
    }
}

/// A new override (`POST /api/v1/oncall/overrides`): `ends_at` or `duration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOverride {
    pub rota: String,
    #[serde(default = "one_usize")]
    pub level: usize,
    pub person: String,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// `12h`, `1d`: from `starts_at` (or now).
    #[serde(default)]
    pub duration: Option<String>,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

fn one_usize() -> usize {
    1
}

fn row(r: &sqlx::any::AnyRow) -> Result<Override, sqlx::Error> {
    Ok(Override {
        id: r.try_get("id")?,
        rota: r.try_get("rota")?,
        level: r.try_get::<i64, _>("level")?.max(0) as usize,
        person: r.try_get("person")?,
        starts_at: time(r.try_get("starts_at")?),
        ends_at: time(r.try_get("ends_at")?),
        created_by: r.try_get("created_by")?,
        comment: r.try_get("comment")?,
    })
}

const COLUMNS: &str = "id, rota, level, person, starts_at, ends_at, created_by, comment";

/// The overrides in force at `t`.
pub async fn active<'c, E>(exec: E, t: DateTime<Utc>) -> Result<Vec<Override>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let t = t.timestamp_millis();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oncall_overrides WHERE starts_at <= $1 AND ends_at > $1 ORDER BY id"
    )))
    .bind(t)
    .fetch_all(exec)
    .await?;
    rows.iter().map(row).collect()
}

/// Overrides not ended at `now`, and those ended in the last day.
pub async fn list(pool: &AnyPool, now: DateTime<Utc>) -> Result<Vec<Override>, sqlx::Error> {
    let since = (now - chrono::Duration::days(1)).timestamp_millis();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oncall_overrides WHERE ends_at > $1 ORDER BY starts_at, id"
    )))
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.iter().map(row).collect()
}

impl OnCall {
    /// Records an override; the inner error names the field that is wrong.
    pub async fn create_override(
        &self,
        pool: &AnyPool,
        new: &NewOverride,
        now: DateTime<Utc>,
    ) -> Result<Result<Override, String>, sqlx::Error> {
        let Some(r) = self.rota(&new.rota) else {
            return Ok(Err(format!("rota: no rota {:?}", new.rota)));
        };
        if new.level == 0 || new.level > r.levels.len() {
            return Ok(Err(format!(
                "level: rota {:?} has levels 1 to {}",
                new.rota,
                r.levels.len()
            )));
        }
        if !self.people.contains_key(&new.person) {
            return Ok(Err(format!(
                "person: no person {:?} in [[oncall.people]]",
                new.person
            )));
        }
        if new.created_by.trim().is_empty()
            || new.created_by.len() > 256
            || new.comment.len() > 1024
        {
            return Ok(Err(
                "created_by: 1 to 256 characters; comment: at most 1024".into(),
            ));
        }
        let (starts, ends) = match crate::notify::silence::window(
            now,
            new.starts_at,
            new.ends_at,
            new.duration.as_deref(),
            MAX_OVERRIDE_DAYS,
            "an override",
        ) {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        let r = sqlx::query(
            "INSERT INTO oncall_overrides (rota, level, person, starts_at, ends_at, created_by,
                 comment, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&new.rota)
        .bind(new.level as i64)
        .bind(&new.person)
        .bind(starts.timestamp_millis())
        .bind(ends.timestamp_millis())
        .bind(&new.created_by)
        .bind(&new.comment)
        .bind(now.timestamp_millis())
        .fetch_one(pool)
        .await?;
        Ok(Ok(Override {
            id: r.try_get("id")?,
            rota: new.rota.clone(),
            level: new.level,
            person: new.person.clone(),
            starts_at: time(starts.timestamp_millis()),
            ends_at: time(ends.timestamp_millis()),
            created_by: new.created_by.clone(),
            comment: new.comment.clone(),
        }))
    }
}

/// Ends override `id` at `now` (one not started yet ends before it starts); `None` if there
/// is no such override.
pub async fn end(
    pool: &AnyPool,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Override>, sqlx::Error> {
    let now = now.timestamp_millis();
    sqlx::query(
        "UPDATE oncall_overrides SET ends_at = $1, starts_at = CASE WHEN starts_at > $1
             THEN $1 ELSE starts_at END WHERE id = $2 AND ends_at > $1",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oncall_overrides WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    r.as_ref().map(row).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oncall(extra: &str) -> OnCall {
        let cfg: OnCallConfig = toml::from_str(&format!(
            r#"
[[people]]
id = "ann"
name = "Ann"
phone = "+32470000011"
[[people]]
id = "bob"
name = "Bob"
email = "bob@example.org"
[[people]]
id = "cy"
name = "Cy"
[[rotas]]
name = "soc"
start = "2026-03-23"
levels = [["ann", "bob"], ["cy"]]
{extra}
"#
        ))
        .expect("toml");
        OnCall::new(&cfg).expect("valid")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn who(o: &OnCall, level: usize, t: &str, ov: &[Override]) -> String {
        o.duty("soc", level, at(t), ov)
            .and_then(|d| d.person)
            .map(|p| p.id)
            .unwrap_or_default()
    }

    #[test]
    fn daily_shifts_hand_over_at_local_time_across_daylight_saving() {
        let o = oncall("");
        // 2026-03-23 08:00 CET is 07:00 UTC: Ann's first shift.
        assert_eq!(who(&o, 1, "2026-03-23T06:59:00Z", &[]), "bob");
        assert_eq!(who(&o, 1, "2026-03-23T07:00:00Z", &[]), "ann");
        assert_eq!(who(&o, 1, "2026-03-24T06:59:59Z", &[]), "ann");
        assert_eq!(who(&o, 1, "2026-03-24T07:00:00Z", &[]), "bob");
        assert_eq!(who(&o, 2, "2026-03-24T07:00:00Z", &[]), "cy");
        // Summer time from 29 March: the hand-over is at 08:00 CEST, 06:00 UTC.
        assert_eq!(who(&o, 1, "2026-03-29T05:59:00Z", &[]), "bob");
        assert_eq!(who(&o, 1, "2026-03-29T06:00:00Z", &[]), "ann");
        let d = o
            .duty("soc", 1, at("2026-03-29T12:00:00Z"), &[])
            .expect("duty");
        assert_eq!(d.starts_at, at("2026-03-29T06:00:00Z"));
        assert_eq!(d.ends_at, at("2026-03-30T06:00:00Z"));
        // The 28th runs from 07:00 UTC (CET) to 06:00 UTC (CEST): 23 hours.
        let d = o
            .duty("soc", 1, at("2026-03-28T12:00:00Z"), &[])
            .expect("duty");
        assert_eq!(d.ends_at - d.starts_at, chrono::Duration::hours(23));
        assert!(o.duty("soc", 3, at("2026-03-28T12:00:00Z"), &[]).is_none());
        assert!(o.duty("soc", 0, at("2026-03-28T12:00:00Z"), &[]).is_none());
    }

    #[test]
    fn weekly_and_twice_daily_shifts() {
        let weekly = oncall("shift_days = 7");
        assert_eq!(who(&weekly, 1, "2026-03-29T12:00:00Z", &[]), "ann");
        assert_eq!(who(&weekly, 1, "2026-03-30T05:59:00Z", &[]), "ann");
        assert_eq!(who(&weekly, 1, "2026-03-30T06:00:00Z", &[]), "bob");
        let twice = oncall(r#"handover = ["20:00", "08:00"]"#);
        assert_eq!(who(&twice, 1, "2026-03-23T12:00:00Z", &[]), "ann");
        assert_eq!(who(&twice, 1, "2026-03-23T19:00:00Z", &[]), "bob");
        assert_eq!(who(&twice, 1, "2026-03-24T06:00:00Z", &[]), "bob");
        assert_eq!(who(&twice, 1, "2026-03-24T07:00:00Z", &[]), "ann");
    }

    #[test]
    fn the_latest_override_wins_while_it_lasts() {
        let o = oncall("");
        let ov = |id, person: &str, from: &str, to: &str| Override {
            id,
            rota: "soc".into(),
            level: 1,
            person: person.into(),
            starts_at: at(from),
            ends_at: at(to),
            created_by: "t".into(),
            comment: String::new(),
        };
        let list = [
            ov(1, "cy", "2026-03-23T18:00:00Z", "2026-03-24T06:00:00Z"),
            ov(2, "bob", "2026-03-23T20:00:00Z", "2026-03-23T22:00:00Z"),
        ];
        assert_eq!(who(&o, 1, "2026-03-23T17:59:00Z", &list), "ann");
        assert_eq!(who(&o, 1, "2026-03-23T18:00:00Z", &list), "cy");
        assert_eq!(who(&o, 1, "2026-03-23T21:00:00Z", &list), "bob");
        assert_eq!(who(&o, 1, "2026-03-23T23:00:00Z", &list), "cy");
        assert_eq!(who(&o, 1, "2026-03-24T06:00:00Z", &list), "ann");
        // Another level is not affected.
        assert_eq!(who(&o, 2, "2026-03-23T21:00:00Z", &list), "cy");
        let d = o
            .duty("soc", 1, at("2026-03-23T21:00:00Z"), &list)
            .expect("duty");
        assert_eq!(d.override_id, Some(2));
    }

    #[test]
    fn bad_rotas_are_refused_with_the_reason() {
        let bad = |extra: &str, want: &str| {
            let cfg: OnCallConfig = toml::from_str(&format!(
                "[[people]]\nid = \"ann\"\nname = \"Ann\"\n[[rotas]]\nname = \"soc\"\n{extra}"
            ))
            .expect("toml");
            let e = OnCall::new(&cfg).expect_err("invalid").1;
            assert!(e.contains(want), "{e}");
        };
        bad("start = \"2026-13-01\"\nlevels = [[\"ann\"]]", "start");
        bad("start = \"2026-03-01\"\nlevels = [[\"zed\"]]", "\"zed\"");
        bad("start = \"2026-03-01\"\nlevels = []", "levels");
        bad(
            "start = \"2026-03-01\"\nlevels = [[\"ann\"]]\ntime_zone = \"Mars/Base\"",
            "time_zone",
        );
        bad(
            "start = \"2026-03-01\"\nlevels = [[\"ann\"]]\nhandover = [\"8h\"]",
            "handover",
        );
        bad(
            "start = \"2026-03-01\"\nlevels = [[\"ann\"]]\nhandover = [\"08:00\", \"20:00\"]\nshift_days = 7",
            "shift_days",
        );
    }
}
