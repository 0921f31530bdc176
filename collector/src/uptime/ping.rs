//! Pings: `/ping/{uuid}[/start|/fail|/log|/{exit-status}]` and
//! `/ping/{ping-key}/{slug}[...]` (healthchecks.io's pinging API), `?rid=` to pair a start
//! with its end, `?create=1` to create a heartbeat by slug on its first ping.
//!
//! # Invariants
//! - A ping is answered `OK` only once it is committed. Pings are written by one task, many
//!   per transaction: a burst costs a few commits, not one per ping, and each ping's effect
//!   on its heartbeat is applied in arrival order.
//! - A failure (`/fail`, a non-zero exit status) opens its incident before the ping is
//!   answered and before the next batch is written, so a failure followed at once by a
//!   success still opens (and resolves) one; the incident opened is the one of the row as it
//!   went down, not as it is by then.
//! - What a client sends in the body is kept up to [`BODY_BYTES`], cut on a character
//!   boundary; a longer body is refused before it is read whole (`413`).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::heartbeat::{Heartbeats, NewHeartbeat, Stored, row};

/// Largest request body taken (healthchecks.io's limit).
pub const MAX_BODY_BYTES: usize = 100_000;
/// What is kept of a body.
pub const BODY_BYTES: usize = 10_000;
/// Most pings written in one transaction.
const BATCH: usize = 512;
/// Pings waiting for the writer; beyond it, callers wait (backpressure, not loss).
const QUEUE: usize = 16_384;

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Success,
    Start,
    Fail,
    Log,
    /// A job's exit status: 0 is a success, anything else a failure.
    Exit(u8),
}

impl Kind {
    /// The last path segment after the heartbeat: none, `start`, `fail`, `log` or `0`–`255`.
    pub fn parse(seg: Option<&str>) -> Result<Kind, String> {
        Ok(match seg {
            None | Some("") => Kind::Success,
            Some("start") => Kind::Start,
            Some("fail") => Kind::Fail,
            Some("log") => Kind::Log,
            Some(n) => Kind::Exit(n.parse::<u8>().map_err(|_| {
                format!("{n:?} is not start, fail, log or an exit status from 0 to 255")
            })?),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Success | Kind::Exit(0) => "success",
            Kind::Start => "start",
            Kind::Fail | Kind::Exit(_) => "fail",
            Kind::Log => "log",
        }
    }
}

/// Which heartbeat a ping is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Uuid(String),
    /// The ping key was checked by the caller.
    Slug {
        slug: String,
        create: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Ping {
    pub target: Target,
    pub kind: Kind,
    pub rid: Option<String>,
    pub user_agent: Option<String>,
    pub body: String,
}

/// What became of a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Recorded,
    /// The heartbeat was created by this ping (`?create=1`).
    Created,
    NotFound,
}

/// A heartbeat's state changed in a way incidents follow.
enum Change {
    /// The row as it went down, and what the job said.
    Down(Box<Stored>, String),
    Up {
        slug: String,
        down_since: Option<i64>,
        at: i64,
    },
}

/// Cuts `body` to [`BODY_BYTES`] on a character boundary, replacing bytes that are not UTF-8.
pub fn keep(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(BODY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

type Job = (Ping, oneshot::Sender<Result<Outcome, String>>);

/// Hands pings to the writer.
#[derive(Clone)]
pub struct Pinger {
    tx: mpsc::Sender<Job>,
}

impl Pinger {
    /// Starts the writer of `hb`'s pings (it ends when every `Pinger` is dropped).
    pub fn start(hb: Heartbeats) -> Pinger {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(hb, rx));
        Pinger { tx }
    }

    /// Records `ping`; returns once it is committed.
    pub async fn ping(&self, ping: Ping) -> Result<Outcome, String> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send((ping, done))
            .await
            .map_err(|_| "the ping writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the ping writer has stopped".to_owned())?
    }
}

async fn write(hb: Heartbeats, mut rx: mpsc::Receiver<Job>) {
    let hb = Arc::new(hb);
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        let pings: Vec<&Ping> = jobs.iter().map(|(p, _)| p).collect();
        match apply(&hb, &pings).await {
            Ok((outcomes, changes)) => {
                // Incidents first, answers after: when a client's failure ping is answered,
                // its incident is open.
                for c in changes {
                    let to = if matches!(c, Change::Down(..)) {
                        "down"
                    } else {
                        "up"
                    };
                    hb.count_transition(to);
                    let r = match c {
                        Change::Down(r, said) => hb.open_incident(&r, Some(&said)).await,
                        Change::Up {
                            slug,
                            down_since,
                            at,
                        } => hb.resolve_incident(&slug, down_since, at).await,
                    };
                    // The sweep's reconciliation repairs what is not done here.
                    if let Err(e) = r {
                        tracing::error!(error = %e, "a heartbeat's incident not updated; it will be on the next reconciliation");
                    }
                }
                for ((ping, done), o) in jobs.drain(..).zip(outcomes) {
                    hb.count_ping(ping.kind.name(), o);
                    let _ = done.send(Ok(o));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, pings = jobs.len(), "pings not recorded");
                for (_, done) in jobs.drain(..) {
                    let _ = done.send(Err(format!("the heartbeat database is not answering: {e}")));
                }
            }
        }
    }
}

/// Applies `pings` in one transaction: each ping's outcome, and the changes incidents follow.
async fn apply(
    hb: &Heartbeats,
    pings: &[&Ping],
) -> Result<(Vec<Outcome>, Vec<Change>), sqlx::Error> {
    let now = hb.now().timestamp_millis();
    let mut tx = hb.pool.begin().await?;
    let mut outcomes = Vec::with_capacity(pings.len());
    let mut changes = Vec::new();
    for p in pings {
        let found = match &p.target {
            Target::Uuid(u) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM heartbeats WHERE uuid = $1",
                super::heartbeat::COLUMNS
            )))
            .bind(u),
            Target::Slug { slug, .. } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM heartbeats WHERE slug = $1",
                super::heartbeat::COLUMNS
            )))
            .bind(slug),
        }
        .fetch_optional(&mut *tx)
        .await?;
        let (r, outcome) = match (found, &p.target) {
            (Some(r), _) => (row(&r)?, Outcome::Recorded),
            (None, Target::Slug { slug, create: true }) => {
                let new = NewHeartbeat {
                    slug: slug.clone(),
                    ..NewHeartbeat::default()
                };
                let checked = new.check(&crate::reference::Customers::default());
                match match checked {
                    Ok(c) => hb.insert(&mut tx, &c, "ping").await?,
                    Err(_) => None,
                } {
                    Some(r) => (r, Outcome::Created),
                    None => {
                        outcomes.push(Outcome::NotFound);
                        continue;
                    }
                }
            }
            (None, _) => {
                outcomes.push(Outcome::NotFound);
                continue;
            }
        };
        // The run's length: from its start (the same run id, if the start gave one).
        let started = r
            .last_start_at
            .filter(|_| p.rid.is_none() || p.rid == r.last_start_rid);
        let duration = match p.kind {
            Kind::Success | Kind::Exit(_) | Kind::Fail => started.map(|s| (now - s).max(0)),
            _ => None,
        };
        match p.kind {
            Kind::Start => {
                sqlx::query(
                    "UPDATE heartbeats SET last_start_at = $1, last_start_rid = $2,
                         pings = pings + 1 WHERE uuid = $3",
                )
                .bind(now)
                .bind(p.rid.clone())
                .bind(&r.uuid)
                .execute(&mut *tx)
                .await?;
            }
            Kind::Success | Kind::Exit(0) => {
                sqlx::query(
                    "UPDATE heartbeats SET status = 'up', last_ping_at = $1,
                         last_start_at = NULL, last_start_rid = NULL,
                         last_duration_ms = COALESCE($2, last_duration_ms),
                         down_since = NULL, down_reason = NULL, pings = pings + 1
                     WHERE uuid = $3",
                )
                .bind(now)
                .bind(duration)
                .bind(&r.uuid)
                .execute(&mut *tx)
                .await?;
                if r.status == "down" {
                    changes.push(Change::Up {
                        slug: r.slug.clone(),
                        down_since: r.down_since,
                        at: now,
                    });
                }
            }
            Kind::Fail | Kind::Exit(_) => {
                let reason = if p.kind == Kind::Fail {
                    "failed"
                } else {
                    "exit_status"
                };
                sqlx::query(
                    "UPDATE heartbeats SET status = 'down', last_start_at = NULL,
                         last_start_rid = NULL, down_since = COALESCE(down_since, $1),
                         down_reason = COALESCE(down_reason, $2), pings = pings + 1,
                         outages = outages + CASE WHEN status = 'down' THEN 0 ELSE 1 END
                     WHERE uuid = $3",
                )
                .bind(now)
                .bind(reason)
                .bind(&r.uuid)
                .execute(&mut *tx)
                .await?;
                if r.status != "down" {
                    let down = Stored {
                        status: "down".into(),
                        down_since: Some(now),
                        outages: r.outages + 1,
                        down_reason: Some(reason.into()),
                        ..r.clone()
                    };
                    changes.push(Change::Down(Box::new(down), p.body.clone()));
                }
            }
            Kind::Log => {
                sqlx::query("UPDATE heartbeats SET pings = pings + 1 WHERE uuid = $1")
                    .bind(&r.uuid)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let exit = match p.kind {
            Kind::Exit(n) => Some(i64::from(n)),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO heartbeat_pings (uuid, at, kind, exit_status, rid, duration_ms,
                 user_agent, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.uuid)
        .bind(now)
        .bind(p.kind.name())
        .bind(exit)
        .bind(p.rid.clone())
        .bind(duration)
        .bind(p.user_agent.clone())
        .bind(&p.body)
        .execute(&mut *tx)
        .await?;
        outcomes.push(outcome);
    }
    tx.commit().await?;
    Ok((outcomes, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_segment_says_what_happened() {
        assert_eq!(Kind::parse(None), Ok(Kind::Success));
        assert_eq!(Kind::parse(Some("start")), Ok(Kind::Start));
        assert_eq!(Kind::parse(Some("fail")), Ok(Kind::Fail));
        assert_eq!(Kind::parse(Some("log")), Ok(Kind::Log));
        assert_eq!(Kind::parse(Some("0")), Ok(Kind::Exit(0)));
        assert_eq!(Kind::parse(Some("255")), Ok(Kind::Exit(255)));
        assert!(Kind::parse(Some("256")).is_err());
        assert!(Kind::parse(Some("-1")).is_err());
        assert!(Kind::parse(Some("stop")).is_err());
        assert_eq!(Kind::Exit(0).name(), "success");
        assert_eq!(Kind::Exit(1).name(), "fail");
    }

    #[test]
    fn bodies_are_cut_on_a_character_boundary() {
        let long = "é".repeat(BODY_BYTES);
        let kept = keep(long.as_bytes());
        assert!(kept.len() <= BODY_BYTES && kept.len() >= BODY_BYTES - 1);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(keep(b"ok\xff"), "ok\u{fffd}");
    }
}
