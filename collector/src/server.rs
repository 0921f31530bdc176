//! The collector as one unit: open (index, write-ahead-log replay, writer thread), bind,
//! serve, and stop in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Inner};
use crate::config::CollectorConfig;
use crate::detect::{DetectView, Detector};
use crate::index::IndexSchema;
use crate::index::partition::Partitions;
use crate::index::search::Searcher;
use crate::index::writer::{self, Msg, WriterConfig};
use crate::metrics::Metrics;

pub struct Collector {
    state: AppState,
    listener: TcpListener,
    writer: std::thread::JoinHandle<()>,
    /// Sends what the outbox holds; none without a notification route.
    dispatcher: Option<crate::notify::dispatch::Dispatcher>,
    /// Where asset changes go, if anywhere.
    asset_export: Option<crate::reference::assets::ExportConfig>,
    /// The SMTP listener for replies, bound at open.
    inbound: Option<(TcpListener, usize, Option<tokio_rustls::TlsAcceptor>)>,
    /// This Vigil's own heartbeat outside, and how often it is pinged.
    report_to: Option<(String, std::time::Duration)>,
}

impl Collector {
    /// Opens the index, replays the write-ahead log (so everything acknowledged before a crash
    /// is searchable again before the first request is served) and binds the HTTP listener.
    pub async fn open(cfg: &CollectorConfig) -> anyhow::Result<Collector> {
        let listener = TcpListener::bind(&cfg.http.listen)
            .await
            .with_context(|| format!("cannot bind http.listen {}", cfg.http.listen))?;
        let metrics = Arc::new(Metrics::new());
        let healthy = Arc::new(AtomicBool::new(true));
        let schema = IndexSchema::new();
        let data_dir = cfg.data_dir.clone();
        let detect_state = data_dir.join("detect-state.json");
        let db = cfg.incidents.url(&data_dir);
        let here = std::path::Path::new("configuration");
        let directory = Arc::new(cfg.directory(here)?);
        let mut store = crate::incidents::Store::open(&db)
            .await?
            .with_shared_deadlines(directory.deadlines())
            .with_assets(directory.shared_assets());
        // The customers and assets managed through the API join the configuration's.
        directory
            .reload(store.pool())
            .await
            .context("cannot read customers and assets from the incident database")?;
        let oncall = cfg.oncall().map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
        let notifier = cfg
            .notifier_with(here, directory.customers())?
            .map(Arc::new);
        match &notifier {
            Some(n) => store = store.with_notifier(n.clone()),
            None => tracing::warn!("no [notify.route] configured: incidents are not announced"),
        }
        let store_has_notifier = notifier.is_some();
        let dispatcher = notifier
            .map(|n| {
                crate::notify::dispatch::Dispatcher::new(
                    store.clone(),
                    n,
                    writer::system_clock(),
                    store.wake(),
                    metrics.clone(),
                )
            })
            .transpose()
            .map_err(|e| anyhow::anyhow!("notifications: {e}"))?;
        let incidents_healthy = Arc::new(AtomicBool::new(true));
        let queue = crate::incidents::Queue {
            store: store.clone(),
            rt: tokio::runtime::Handle::current(),
            healthy: incidents_healthy.clone(),
            metrics: metrics.clone(),
        };
        let wcfg = WriterConfig {
            wal_dir: writer::wal_dir(&data_dir),
            commit_interval: cfg.index.commit_interval,
            fsync: cfg.ingest.fsync,
            memory_budget_bytes: cfg.index.memory_budget_mb << 20,
            threads: cfg.index.threads,
            detect_state,
            snapshot_interval: cfg.detect.snapshot_interval,
            retention: cfg.index.retention(),
            clock: writer::system_clock(),
            incidents: Some(queue),
        };
        let (m, h, rt) = (
            metrics.clone(),
            healthy.clone(),
            tokio::runtime::Handle::current(),
        );
        let view = Arc::new(DetectView::default());
        let detector = if cfg.detect.enabled {
            let dcfg = cfg.detect.clone();
            let (engine, errors) = tokio::task::spawn_blocking(move || dcfg.load()).await??;
            Some(Detector::new(
                Box::new(engine),
                errors,
                view.clone(),
                metrics.clone(),
            ))
        } else {
            None
        };
        let (parts, tx, writer) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let dir = data_dir.join("index");
            let parts = Partitions::open(&dir, schema)
                .with_context(|| format!("cannot open the index in {}", dir.display()))?;
            let (tx, handle) = writer::start(parts.clone(), wcfg, m, detector, h, rt)?;
            Ok((parts, tx, handle))
        })
        .await??;
        let agents = cfg
            .ingest
            .agents
            .iter()
            .map(|a| (a.token.clone(), a.id.clone()))
            .collect();
        if cfg.ingest.agents.is_empty() {
            tracing::warn!(
                "no agents configured under [[ingest.agents]]: every ingest request will get 401"
            );
        }
        let decode_budget_kib =
            u32::try_from(cfg.ingest.decode_budget_mb.saturating_mul(1024)).unwrap_or(u32::MAX);
        let heartbeats = crate::uptime::heartbeat::Heartbeats::new(
            store.clone(),
            writer::system_clock(),
            crate::uptime::heartbeat::Urls {
                base: cfg.notify.external_url.clone(),
                ping_key: cfg.heartbeats.ping_key.clone(),
            },
            directory.customers(),
            metrics.clone(),
        );
        let pinger = crate::uptime::ping::Pinger::start(heartbeats.clone());
        let configured_checks = cfg.checks(here)?;
        let checks = crate::uptime::check::load(store.pool(), &configured_checks)
            .await
            .context("cannot read the checks from the incident database")?;
        let quorum = Arc::new(crate::uptime::quorum::Quorum::new(
            store.clone(),
            writer::system_clock(),
            crate::reference::directory::Shared::new(checks),
            cfg.ingest.agents.iter().map(|a| a.id.clone()).collect(),
            metrics.clone(),
        ));
        let state = AppState(Arc::new(Inner {
            searcher: Searcher::new(parts),
            ingest: tx,
            ingest_open: AtomicBool::new(true),
            writer_healthy: healthy,
            agents,
            api_token: cfg.http.api_token.clone(),
            metrics,
            max_body_bytes: cfg.ingest.max_body_bytes,
            max_batch_events: cfg.ingest.max_batch_events,
            max_expansion: cfg.ingest.max_expansion,
            decode_budget: Arc::new(tokio::sync::Semaphore::new(decode_budget_kib as usize)),
            decode_budget_kib,
            detect: view,
            detect_cfg: cfg.detect.clone(),
            incidents: store,
            incidents_healthy,
            directory,
            oncall: Arc::new(oncall),
            heartbeats,
            agent_limits: cfg
                .ingest
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.silent_after))
                .collect(),
            pinger,
            quorum,
            configured_checks,
            cap_feeds: Default::default(),
            sessions: crate::console::Sessions::new(cfg.http.session_ttl, writer::system_clock()),
        }));
        let inbound = match (&cfg.notify.inbound, store_has_notifier) {
            (Some(i), true) => Some((
                TcpListener::bind(&i.listen)
                    .await
                    .with_context(|| format!("cannot bind notify.inbound.listen {}", i.listen))?,
                i.max_message_bytes,
                i.tls
                    .as_ref()
                    .map(vigil_agent::syslog::tls::acceptor)
                    .transpose()
                    .context("notify.inbound.tls")?,
            )),
            _ => None,
        };
        Ok(Collector {
            state,
            listener,
            writer,
            dispatcher,
            asset_export: cfg.assets.export.clone(),
            inbound,
            report_to: cfg
                .heartbeats
                .report_to
                .clone()
                .map(|u| (u, cfg.heartbeats.report_every)),
        })
    }

    /// What the API serves from: `api::app(collector.state())` answers requests in process,
    /// as the tests drive it.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, then: stop ingest (503), drain the pipeline and commit the
    /// index, stop HTTP.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, console = %format!("http://{addr}/"), "collector listening");
        let http_stop = CancellationToken::new();
        let app = api::app(self.state.clone());
        let stop = http_stop.clone();
        let server = tokio::spawn(async move {
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        let reloads = tokio::spawn(reload_on_sighup(self.state.clone()));
        let dispatch_stop = CancellationToken::new();
        let dispatcher = self
            .dispatcher
            .map(|d| tokio::spawn(d.run(dispatch_stop.clone())));
        let reference = tokio::spawn(reload_reference(
            self.state.0.directory.clone(),
            self.state.0.incidents.pool().clone(),
            dispatch_stop.clone(),
        ));
        let export = self.asset_export.map(|cfg| {
            tokio::spawn(crate::reference::assets::run(
                self.state.0.incidents.pool().clone(),
                cfg,
                dispatch_stop.clone(),
            ))
        });
        let inbound = self.inbound.map(|(listener, max, tls)| {
            tokio::spawn(crate::notify::inbound::run(
                listener,
                self.state.0.incidents.clone(),
                max,
                tls,
                dispatch_stop.clone(),
            ))
        });
        let deadlines = tokio::spawn(crate::incidents::deadlines::run(
            self.state.0.incidents.clone(),
            writer::system_clock(),
            self.state.0.metrics.clone(),
            dispatch_stop.clone(),
        ));
        let outside = self.report_to.map(|(url, every)| {
            tokio::spawn(crate::uptime::deadman::run(
                self.state.0.clone(),
                url,
                every,
                dispatch_stop.clone(),
            ))
        });
        let quorum = tokio::spawn(crate::uptime::quorum::run(
            self.state.0.quorum.clone(),
            self.state.0.configured_checks.clone(),
            self.state.0.ingest.clone(),
            dispatch_stop.clone(),
        ));
        let heartbeats = tokio::spawn(crate::uptime::heartbeat::run(
            self.state.0.heartbeats.clone(),
            dispatch_stop.clone(),
        ));
        let capwatch = tokio::spawn(crate::uptime::capwatch::run(
            self.state.0.quorum.checks.clone(),
            self.state.0.incidents.pool().clone(),
            self.state.0.ingest.clone(),
            self.state.0.metrics.clone(),
            self.state.0.cap_feeds.clone(),
            dispatch_stop.clone(),
        ));
        shutdown.cancelled().await;
        reloads.abort();
        tracing::info!("collector stopping: ingest closed");
        self.state.0.ingest_open.store(false, Ordering::SeqCst);
        let (done, drained) = oneshot::channel();
        if self.state.0.ingest.send(Msg::Shutdown(done)).await.is_ok() {
            let _ = drained.await;
        }
        tracing::info!("collector stopping: index committed; stopping http");
        http_stop.cancel();
        server.await??;
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.join())
            .await?
            .ok();
        // After the writer: it may have handed alerts over until its last batch. What the
        // dispatcher has not sent stays in the outbox for the next start.
        dispatch_stop.cancel();
        if let Some(d) = dispatcher {
            let _ = d.await;
        }
        let _ = deadlines.await;
        let _ = heartbeats.await;
        let _ = quorum.await;
        let _ = capwatch.await;
        if let Some(o) = outside {
            let _ = o.await;
        }
        let _ = reference.await;
        if let Some(i) = inbound {
            let _ = i.await;
        }
        if let Some(e) = export {
            let _ = e.await;
        }
        self.state.0.incidents.close().await;
        tracing::info!("collector stopped");
        Ok(())
    }
}

/// How often customers and assets are read again (changes made through another collector
/// sharing the database).
const REFERENCE_RELOAD: std::time::Duration = std::time::Duration::from_secs(30);

async fn reload_reference(
    directory: Arc<crate::reference::directory::Directory>,
    pool: sqlx::AnyPool,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFERENCE_RELOAD) => {}
        }
        if let Err(e) = directory.reload(&pool).await {
            tracing::error!(error = %e, "customers and assets not reloaded; retrying");
        }
    }
}

/// SIGHUP reloads the Sigma rules, as `POST /api/v1/rules/reload` does.
async fn reload_on_sighup(state: AppState) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        if let Err(e) = api::rules::reload(&state).await {
            tracing::error!(error = %e, "sigma rule reload failed; the previous rules stay");
        }
    }
}
