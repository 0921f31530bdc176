//! The outside heartbeat: Vigil pings a heartbeat URL elsewhere (another Vigil, or any
//! healthchecks.io-compatible service) every `report_every`, so that a Vigil that is dead, or
//! cut off with the network it watches, is noticed by someone who is not.
//!
//! While this collector is ready the ping is a success; while it is not, it is `/fail` with
//! the components' states as the body, so the receiver opens an incident that says why.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::Inner;

/// Pings `url` every `every` until `shutdown`.
pub async fn run(state: Arc<Inner>, url: String, every: Duration, shutdown: CancellationToken) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let url = url.trim_end_matches('/').to_owned();
    loop {
        let (ready, body) = state.readiness().await;
        let req = if ready {
            client.get(&url)
        } else {
            client.post(format!("{url}/fail")).body(body.to_string())
        };
        let outcome = match req.send().await {
            Ok(r) if r.status().is_success() => "sent",
            Ok(r) => {
                tracing::warn!(status = %r.status(), "the outside heartbeat refused the ping");
                "refused"
            }
            Err(e) => {
                tracing::warn!(error = %e, "the outside heartbeat cannot be reached");
                "unreachable"
            }
        };
        let kind = if ready { "success" } else { "fail" };
        state
            .metrics
            .outside_pings
            .get_or_create(&vec![
                ("kind", kind.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
