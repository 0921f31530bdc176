//! Documents the agent fetches from the collector and keeps beside the spool, so that after
//! a restart without the collector it still runs with the last ones: its uptime checks and
//! the customers' prefixes.
//!
//! # Invariants
//! - A document kept is whole: written to a temporary file, then renamed over the last.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `GET url` with the agent's token; the collector's answer parsed.
pub async fn get<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<T> {
    let resp = client.get(url).bearer_auth(token).send().await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the collector answered {}",
        resp.status()
    );
    Ok(resp.json().await?)
}

/// The document last kept in `file`, if it reads.
pub fn kept<T: DeserializeOwned>(file: &Path) -> Option<T> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Keeps `doc` in `file` (logged when it cannot: the agent runs on with it in memory).
pub fn keep<T: Serialize>(file: &Path, doc: &T) {
    let tmp = file.with_extension("json.tmp");
    let written = serde_json::to_vec(doc)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        tracing::warn!(error = %e, file = %file.display(), "a document from the collector is not kept on disk");
    }
}
