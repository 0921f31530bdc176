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
/// Rows per statement of many rows. SQLite finds a parameter's name by walking its list, once
/// per parameter bound: a statement's binding costs the square of its parameters, so several
/// middling statements beat one large one.
const ROWS_PER_STATEMENT: usize = 32;
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
///
/// The heartbeats pinged are read in one query, each ping is applied in order to its row in
/// memory (a later ping of the batch sees what an earlier one did), then each heartbeat
/// touched is written once and the pings are inserted a hundred rows a statement: a batch
/// costs a few statements, not a few per ping.
async fn apply(
    hb: &Heartbeats,
    pings: &[&Ping],
) -> Result<(Vec<Outcome>, Vec<Change>), sqlx::Error> {
    let now = hb.now().timestamp_millis();
    let mut tx = super::heartbeat::begin_write(&hb.pool).await?;
    let mut rows = read(&mut tx, pings).await?;
    // uuid → (pings added, outages added), in the order first touched.
    let mut touched: Vec<(String, i64, i64)> = Vec::new();
    let mut records = Vec::with_capacity(pings.len());
    let mut outcomes = Vec::with_capacity(pings.len());
    let mut changes = Vec::new();
    for p in pings {
        let key = match &p.target {
            Target::Uuid(u) => rows.iter().position(|r| r.uuid == *u),
            Target::Slug { slug, .. } => rows.iter().position(|r| r.slug == *slug),
        };
        let (i, outcome) = match (key, &p.target) {
            (Some(i), _) => (i, Outcome::Recorded),
            (None, Target::Slug { slug, create: true }) => {
                let new = NewHeartbeat {
                    slug: slug.clone(),
                    ..NewHeartbeat::default()
                };
                let made = match new.check(&crate::reference::Customers::default()) {
                    Ok(c) => hb.insert(&mut tx, &c, "ping").await?,
                    Err(_) => None,
                };
                match made {
                    Some(r) => {
                        rows.push(r);
                        (rows.len() - 1, Outcome::Created)
                    }
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
        let r = &mut rows[i];
        let was_down = r.status == "down";
        // The run's length: from its start (the same run id, if the start gave one).
        let started = r
            .last_start_at
            .filter(|_| p.rid.is_none() || p.rid == r.last_start_rid);
        let duration = match p.kind {
            Kind::Success | Kind::Exit(_) | Kind::Fail => started.map(|s| (now - s).max(0)),
            _ => None,
        };
        let mut outage = 0;
        match p.kind {
            Kind::Start => {
                r.last_start_at = Some(now);
                r.last_start_rid = p.rid.clone();
            }
            Kind::Success | Kind::Exit(0) => {
                r.status = "up".into();
                r.last_ping_at = Some(now);
                r.last_start_at = None;
                r.last_start_rid = None;
                r.last_duration_ms = duration.or(r.last_duration_ms);
                if was_down {
                    changes.push(Change::Up {
                        slug: r.slug.clone(),
                        down_since: r.down_since,
                        at: now,
                    });
                }
                r.down_since = None;
                r.down_reason = None;
            }
            Kind::Fail | Kind::Exit(_) => {
                r.last_start_at = None;
                r.last_start_rid = None;
                if !was_down {
                    r.status = "down".into();
                    r.down_since = Some(now);
                    r.down_reason = Some(
                        if p.kind == Kind::Fail {
                            "failed"
                        } else {
                            "exit_status"
                        }
                        .into(),
                    );
                    r.outages += 1;
                    outage = 1;
                    changes.push(Change::Down(Box::new(r.clone()), p.body.clone()));
                }
            }
            Kind::Log => {}
        }
        r.pings += 1;
        match touched.iter_mut().find(|(u, _, _)| *u == r.uuid) {
            Some(t) => {
                t.1 += 1;
                t.2 += outage;
            }
            None => touched.push((r.uuid.clone(), 1, outage)),
        }
        let exit = match p.kind {
            Kind::Exit(n) => Some(i64::from(n)),
            _ => None,
        };
        records.push((
            r.uuid.clone(),
            p.kind.name(),
            exit,
            p.rid.clone(),
            duration,
            p,
        ));
        outcomes.push(outcome);
    }
    // One statement for many heartbeats (each statement is a round trip to the database's
    // thread, [`ROWS_PER_STATEMENT`] rows each): the rows' new values joined in as a VALUES table, cast so that both dialects
    // type a column of NULLs alike.
    let touched: Vec<(&Stored, i64, i64)> = touched
        .iter()
        .filter_map(|(uuid, pinged, outages)| {
            rows.iter()
                .find(|r| r.uuid == *uuid)
                .map(|r| (r, *pinged, *outages))
        })
        .collect();
    for chunk in touched.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 10;
                format!(
                    "(CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS BIGINT), \
                     CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS BIGINT), \
                     CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS BIGINT), \
                     CAST(${} AS BIGINT))",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9,
                    b + 10
                )
            })
            .collect();
        // Only placeholders are formatted into the statement; every value is bound.
        let sql = format!(
            "UPDATE heartbeats SET status = v.column2, last_ping_at = v.column3,
                 last_start_at = v.column4, last_start_rid = v.column5,
                 last_duration_ms = v.column6, down_since = v.column7,
                 down_reason = v.column8, pings = heartbeats.pings + v.column9,
                 outages = heartbeats.outages + v.column10
             FROM (VALUES {}) AS v WHERE heartbeats.uuid = v.column1",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (r, pinged, outages) in chunk {
            q = q
                .bind(r.uuid.clone())
                .bind(r.status.clone())
                .bind(r.last_ping_at)
                .bind(r.last_start_at)
                .bind(r.last_start_rid.clone())
                .bind(r.last_duration_ms)
                .bind(r.down_since)
                .bind(r.down_reason.clone())
                .bind(*pinged)
                .bind(*outages);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 8;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                )
            })
            .collect();
        // Only placeholders are formatted into the statement; every value is bound.
        let sql = format!(
            "INSERT INTO heartbeat_pings (uuid, at, kind, exit_status, rid, duration_ms,
                 user_agent, body) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (uuid, kind, exit, rid, duration, p) in chunk {
            q = q
                .bind(uuid.clone())
                .bind(now)
                .bind(*kind)
                .bind(*exit)
                .bind(rid.clone())
                .bind(*duration)
                .bind(p.user_agent.clone())
                .bind(p.body.clone());
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok((outcomes, changes))
}

/// The heartbeats `pings` name, in one query (by uuid and by slug).
async fn read(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    pings: &[&Ping],
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut uuids: Vec<&str> = Vec::new();
    let mut slugs: Vec<&str> = Vec::new();
    for p in pings {
        match &p.target {
            Target::Uuid(u) if !uuids.contains(&u.as_str()) => uuids.push(u),
            Target::Slug { slug, .. } if !slugs.contains(&slug.as_str()) => slugs.push(slug),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (column, keys) in [("uuid", &uuids), ("slug", &slugs)] {
        for chunk in keys.chunks(4 * ROWS_PER_STATEMENT) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            // Only placeholders are formatted into the statement; every key is bound.
            let sql = format!(
                "SELECT {} FROM heartbeats WHERE {column} IN ({})",
                super::heartbeat::COLUMNS,
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(*k);
            }
            for r in q.fetch_all(&mut **tx).await? {
                let r = row(&r)?;
                if !out.iter().any(|o: &Stored| o.uuid == r.uuid) {
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
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
