//! What the status pages show besides the checks: operators' notices (for everyone, or for
//! one customer's page), and the tokens that open a customer's own page.
//!
//! # Invariants
//! - A notice is written by a person and shown as text, never as markup.
//! - A token is shown once, when made; only its SHA-256 is kept, so the database does not
//!   hold what opens a page. A customer's page answers the same `404` for a wrong token as for
//!   none, so tokens cannot be probed for customers.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sqlx::{AnyPool, Row};

/// A notice as the API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotice {
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// Shown on this customer's page only; none: on every page, the public one too.
    #[serde(default)]
    pub customer: Option<String>,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Default: until ended.
    #[serde(default)]
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub customer: Option<String>,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_by: String,
}

/// Why a notice is refused, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("incident database: {0}")]
    Db(#[from] sqlx::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> NoticeError {
    NoticeError::Invalid {
        field,
        message: message.into(),
    }
}

fn time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Checks and keeps `n`; `known_customer` says whether a customer id exists.
pub async fn add(
    pool: &AnyPool,
    n: NewNotice,
    known_customer: impl Fn(&str) -> bool,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Notice, NoticeError> {
    let title = n.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(invalid("title", "1 to 200 characters"));
    }
    if n.body.chars().count() > 4000 {
        return Err(invalid("body", "at most 4000 characters"));
    }
    if let Some(c) = &n.customer
        && !known_customer(c)
    {
        return Err(invalid("customer", format!("no customer {c:?}")));
    }
    let starts = n.starts_at.unwrap_or(now);
    if n.ends_at.is_some_and(|e| e <= starts) {
        return Err(invalid("ends_at", "after starts_at"));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO status_notices (title, body, customer, starts_at, ends_at, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&title)
    .bind(&n.body)
    .bind(n.customer.clone())
    .bind(starts.timestamp_millis())
    .bind(n.ends_at.map(|e| e.timestamp_millis()))
    .bind(actor)
    .bind(now.timestamp_millis())
    .fetch_one(pool)
    .await?;
    Ok(Notice {
        id,
        title,
        body: n.body,
        customer: n.customer,
        starts_at: starts,
        ends_at: n.ends_at,
        created_by: actor.to_owned(),
    })
}

/// Notices: those shown at `at` to `audience` (`Some(None)`: the public page, `Some(Some(c))`:
/// customer `c`'s page), or every notice not ended before `at` (`None`), newest first.
pub async fn list(
    pool: &AnyPool,
    at: chrono::DateTime<chrono::Utc>,
    audience: Option<Option<&str>>,
) -> Result<Vec<Notice>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, title, body, customer, starts_at, ends_at, created_by FROM status_notices \
         WHERE (ends_at IS NULL OR ends_at > $1) ORDER BY starts_at DESC, id DESC LIMIT 500",
    )
    .bind(at.timestamp_millis())
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = Notice {
            id: r.try_get("id")?,
            title: r.try_get("title")?,
            body: r.try_get("body")?,
            customer: r.try_get("customer")?,
            starts_at: time(r.try_get("starts_at")?),
            ends_at: r.try_get::<Option<i64>, _>("ends_at")?.map(time),
            created_by: r.try_get("created_by")?,
        };
        let shown = match audience {
            None => true,
            Some(who) => {
                n.starts_at <= at && (n.customer.is_none() || n.customer.as_deref() == who)
            }
        };
        if shown {
            out.push(n);
        }
    }
    Ok(out)
}

/// Ends notice `id` at `now`; false when there is none still shown.
pub async fn end(
    pool: &AnyPool,
    id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let now = now.timestamp_millis();
    let done = sqlx::query(
        "UPDATE status_notices SET ends_at = $1 WHERE id = $2 AND (ends_at IS NULL OR ends_at > $1)",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn digest(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new token for `customer`'s page (earlier ones stay valid until revoked).
pub async fn new_token(
    pool: &AnyPool,
    customer: &str,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, sqlx::Error> {
    let token: String = (0..40)
        .map(|_| {
            char::from(
                b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
                    [rand::rng().random_range(0..57)],
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO status_tokens (token_sha256, customer, created_by, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(digest(&token))
    .bind(customer)
    .bind(actor)
    .bind(now.timestamp_millis())
    .execute(pool)
    .await?;
    Ok(token)
}

/// Revokes every token of `customer`'s page; how many there were.
pub async fn revoke(pool: &AnyPool, customer: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM status_tokens WHERE customer = $1")
        .bind(customer)
        .execute(pool)
        .await?
        .rows_affected())
}

/// The customer whose page `token` opens.
pub async fn customer_of(pool: &AnyPool, token: &str) -> Result<Option<String>, sqlx::Error> {
    if token.len() > 100 {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT customer FROM status_tokens WHERE token_sha256 = $1")
        .bind(digest(token))
        .fetch_optional(pool)
        .await
}
