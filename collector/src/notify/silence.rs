//! Silences and exclusions: matchers on incident labels (as in the routing tree) and a time
//! window, made by someone for a reason.
//!
//! - A **silence** is a mute: while it matches an incident, its announcements are not made —
//!   the incident is still opened, grouped and shown, and the suppression is on its timeline.
//! - An **exclusion** (decree art. 9) is a decision about a customer or an asset: its
//!   announcements are held for the receivers' digest instead of sent at once, with the
//!   decision (who, why, until when) on the timeline.
//!
//! Neither holds back a retraction (art. 6: whoever was told must hear that it was a false
//! alarm).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Row, Transaction};

use super::route::Matcher;
use crate::incidents::store::time;

/// A silence or an exclusion: what it does to matching announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mute {
    /// Not announced.
    Silence,
    /// Held for the digest.
    Exclusion,
}

impl Mute {
    pub fn as_str(self) -> &'static str {
        match self {
            Mute::Silence => "silence",
            Mute::Exclusion => "exclusion",
        }
    }

    /// The longest window: a silence is short (beyond it, an exclusion or a change of route
    /// is the tool); an exclusion may last a year.
    fn max_days(self) -> i64 {
        match self {
            Mute::Silence => 90,
            Mute::Exclusion => 366,
        }
    }
}

/// A silence (or an exclusion) as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    /// `pending`, `active` or `expired`, at the time it was read.
    pub state: &'static str,
}

/// A new silence (`POST /api/v1/silences`): `ends_at` or `duration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub matchers: Vec<String>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// `2h`, `1d`: from `starts_at` (or now).
    #[serde(default)]
    pub duration: Option<String>,
    pub created_by: String,
    pub comment: String,
}

impl NewSilence {
    /// The window of a new `mute`, checked; the error names the field.
    pub fn window(
        &self,
        mute: Mute,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
        if self.matchers.is_empty() {
            return Err(format!(
                "matchers: at least one (a {} of everything is not one)",
                mute.as_str()
            ));
        }
        for m in &self.matchers {
            Matcher::parse(m).map_err(|e| format!("matchers: {e}"))?;
        }
        for (name, v) in [("created_by", &self.created_by), ("comment", &self.comment)] {
            if v.trim().is_empty() || v.len() > 1024 {
                return Err(format!("{name}: 1 to 1024 characters"));
            }
        }
        window(
            now,
            self.starts_at,
            self.ends_at,
            self.duration.as_deref(),
            mute.max_days(),
            &format!("a {}", mute.as_str()),
        )
    }
}

/// A time window given by a start (default `now`) and an end or a duration: it ends in the
/// future and lasts at most `max_days`. The error names the field; `what` is what the
/// window is of ("a silence").
pub fn window(
    now: DateTime<Utc>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    duration: Option<&str>,
    max_days: i64,
    what: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let starts = starts_at.unwrap_or(now);
    let ends = match (ends_at, duration) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d =
                vigil_schema::config::parse_duration(d).map_err(|e| format!("duration: {e}"))?;
            starts + chrono::Duration::from_std(d).map_err(|e| format!("duration: {e}"))?
        }
        _ => return Err("ends_at or duration: one of them".into()),
    };
    if ends <= starts {
        return Err("ends_at: must be after starts_at".into());
    }
    if ends <= now {
        return Err("ends_at: must be in the future".into());
    }
    if ends - starts > chrono::Duration::days(max_days) {
        return Err(format!("ends_at: {what} lasts at most {max_days} days"));
    }
    Ok((starts, ends))
}

fn silence(r: &sqlx::any::AnyRow, now: i64) -> Result<Silence, sqlx::Error> {
    let matchers: String = r.try_get("matchers")?;
    let (starts, ends): (i64, i64) = (r.try_get("starts_at")?, r.try_get("ends_at")?);
    Ok(Silence {
        id: r.try_get("id")?,
        matchers: serde_json::from_str(&matchers).unwrap_or_default(),
        starts_at: time(starts),
        ends_at: time(ends),
        created_by: r.try_get("created_by")?,
        comment: r.try_get("comment")?,
        state: if now < starts {
            "pending"
        } else if now < ends {
            "active"
        } else {
            "expired"
        },
    })
}

pub async fn create(
    pool: &AnyPool,
    mute: Mute,
    s: &NewSilence,
    now: DateTime<Utc>,
) -> Result<Result<Silence, String>, sqlx::Error> {
    let (starts, ends) = match s.window(mute, now) {
        Ok(w) => w,
        Err(e) => return Ok(Err(e)),
    };
    let row = sqlx::query(
        "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at,
             kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, matchers, starts_at, ends_at, created_by, comment",
    )
    .bind(serde_json::to_string(&s.matchers).unwrap_or_default())
    .bind(starts.timestamp_millis())
    .bind(ends.timestamp_millis())
    .bind(s.created_by.trim())
    .bind(s.comment.trim())
    .bind(now.timestamp_millis())
    .bind(mute.as_str())
    .fetch_one(pool)
    .await?;
    Ok(Ok(silence(&row, now.timestamp_millis())?))
}

/// The `mute`s not expired, and those expired in the last day, newest first.
pub async fn list(
    pool: &AnyPool,
    mute: Mute,
    now: DateTime<Utc>,
) -> Result<Vec<Silence>, sqlx::Error> {
    let now = now.timestamp_millis();
    let rows = sqlx::query(
        "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences
         WHERE ends_at > $1 AND kind = $2 ORDER BY id DESC",
    )
    .bind(now - 86_400_000)
    .bind(mute.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| silence(r, now)).collect()
}

/// Ends `mute` `id` now; `None` when there is none.
pub async fn expire(
    pool: &AnyPool,
    mute: Mute,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Silence>, sqlx::Error> {
    let now = now.timestamp_millis();
    let row = sqlx::query(
        "UPDATE silences SET ends_at = CASE WHEN ends_at > $1 THEN $1 ELSE ends_at END
         WHERE id = $2 AND kind = $3
         RETURNING id, matchers, starts_at, ends_at, created_by, comment",
    )
    .bind(now)
    .bind(id)
    .bind(mute.as_str())
    .fetch_optional(pool)
    .await?;
    row.map(|r| silence(&r, now)).transpose()
}

/// The silences and exclusions active at `now` that match `labels`: (id, which).
pub async fn matching(
    tx: &mut Transaction<'_, Any>,
    labels: &BTreeMap<String, String>,
    now: i64,
) -> Result<Vec<(i64, Mute)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, matchers, kind FROM silences WHERE starts_at <= $1 AND ends_at > $1
         ORDER BY id",
    )
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let text: String = r.try_get("matchers")?;
        let matchers: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
        // Stored matchers were checked when the silence was made; one that no longer parses
        // matches nothing rather than everything.
        let parsed: Option<Vec<Matcher>> =
            matchers.iter().map(|m| Matcher::parse(m).ok()).collect();
        if let Some(ms) = parsed
            && !ms.is_empty()
            && ms.iter().all(|m| m.matches(labels))
        {
            let kind: String = r.try_get("kind")?;
            let mute = if kind == Mute::Exclusion.as_str() {
                Mute::Exclusion
            } else {
                Mute::Silence
            };
            out.push((r.try_get("id")?, mute));
        }
    }
    Ok(out)
}
