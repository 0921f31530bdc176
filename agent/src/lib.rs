//! `vigil-agent`: runs on a network edge, reads events from sources, keeps them in a disk
//! spool and ships them to the collector.
//!
//! # Layout
//! - [`config`]: the TOML configuration, strict about unknown keys.
//! - [`syslog`]: the syslog listeners and parser.
//! - [`tail`]: the file source (tails globs, follows rotation, remembers positions).
//! - [`batcher`]: events to batches, written to the [`spool`]; [`spare`]: emptied buffers
//!   handed back between threads for reuse.
//! - [`spool`]: batches on disk until acknowledged.
//! - [`shipper`]: spooled batches to the collector, a window of them in flight.
//! - [`x509`]: a certificate's expiry, for TLS checks.
//! - [`probe`]: runs the uptime checks the collector hands out; results are events.
//! - [`customer`]: whose events are whose, by the collector's customers' prefixes;
//!   [`fetched`]: what the agent fetches from the collector and keeps beside the spool.
//! - [`report`]: tells the collector every so often that the agent is alive, and its backlog.
//! - [`metrics`], [`http`]: what the agent says about itself.
//!
//! # Invariants
//! - An event accepted from a TCP source reaches the spool or the agent is still trying:
//!   nothing between a source and the spool drops silently (UDP overruns are counted).
//! - A batch leaves the spool only on the collector's acknowledgement, on a counted drop
//!   when the spool is full, or when the collector refused it as invalid (set aside).
//! - Shutdown order: stop sources, write the batch in progress to the spool, stop shipping.

pub mod batcher;
pub mod config;
pub mod customer;
pub mod dns;
pub mod fetched;
pub mod flow;
pub mod http;
pub mod icmp;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod shipper;
pub mod spare;
pub mod spool;
pub mod syslog;
pub mod tail;
pub mod udp;
pub mod x509;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AgentConfig, Protocol};
use crate::customer::Customers;
use crate::metrics::Metrics;
use crate::spool::Spool;
use crate::syslog::listener::{self, Listener};

/// The addresses an agent actually bound (useful when a config asks for port 0).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BoundAddrs {
    pub http: Option<SocketAddr>,
    pub syslog_tcp: Vec<SocketAddr>,
    pub syslog_tls: Vec<SocketAddr>,
    pub syslog_udp: Vec<SocketAddr>,
    pub netflow: Vec<SocketAddr>,
}

/// An agent whose sockets are bound and whose spool is open, ready to [`Agent::run`].
pub struct Agent {
    cfg: AgentConfig,
    metrics: Arc<Metrics>,
    spool: Arc<Spool>,
    http: Option<TcpListener>,
    /// TCP listeners, with their TLS acceptor when they speak TLS.
    tcp: Vec<(config::SyslogConfig, TcpListener, Option<TlsAcceptor>)>,
    udp: Vec<(config::SyslogConfig, std::net::UdpSocket)>,
    netflow: Vec<(config::NetflowConfig, std::net::UdpSocket)>,
}

impl Agent {
    /// Opens the spool and binds every listener; fails with the address that could not be bound.
    pub async fn bind(cfg: AgentConfig) -> anyhow::Result<Agent> {
        let metrics = Arc::new(Metrics::new());
        let spool_cfg = cfg.spool.clone();
        let m = metrics.clone();
        let spool = tokio::task::spawn_blocking(move || {
            Spool::open(&spool_cfg.dir, spool_cfg.max_bytes, spool_cfg.fsync, m)
        })
        .await?
        .with_context(|| format!("cannot open spool {}", cfg.spool.dir.display()))?;
        let http = if cfg.http.listen.is_empty() {
            None
        } else {
            Some(
                TcpListener::bind(&cfg.http.listen)
                    .await
                    .with_context(|| format!("cannot bind http.listen {}", cfg.http.listen))?,
            )
        };
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for s in &cfg.syslog {
            let tls = match &s.tls {
                Some(t) => Some(syslog::tls::acceptor(t)?),
                None => None,
            };
            if s.protocols.contains(&Protocol::Tcp) || tls.is_some() {
                let l = TcpListener::bind(s.listen)
                    .await
                    .with_context(|| format!("cannot bind syslog tcp {}", s.listen))?;
                tcp.push((s.clone(), l, tls));
            }
            if s.protocols.contains(&Protocol::Udp) {
                // Blocking with a timeout: the receiver runs on its own thread.
                let u = udp::bind(s.listen, s.udp_receive_buffer_bytes, false)
                    .with_context(|| format!("cannot bind syslog udp {}", s.listen))?;
                udp.push((s.clone(), u));
            }
        }
        let mut netflow = Vec::new();
        for n in &cfg.netflow {
            // Blocking with a timeout: the receiver runs on its own thread.
            let u = udp::bind(n.listen, n.udp_receive_buffer_bytes, false)
                .with_context(|| format!("cannot bind netflow udp {}", n.listen))?;
            netflow.push((n.clone(), u));
        }
        Ok(Agent {
            netflow,
            cfg,
            metrics,
            spool: Arc::new(spool),
            http,
            tcp,
            udp,
        })
    }

    pub fn addrs(&self) -> BoundAddrs {
        BoundAddrs {
            http: self.http.as_ref().and_then(|l| l.local_addr().ok()),
            syslog_tcp: self
                .tcp
                .iter()
                .filter(|(_, _, tls)| tls.is_none())
                .filter_map(|(_, l, _)| l.local_addr().ok())
                .collect(),
            syslog_tls: self
                .tcp
                .iter()
                .filter(|(_, _, tls)| tls.is_some())
                .filter_map(|(_, l, _)| l.local_addr().ok())
                .collect(),
            syslog_udp: self
                .udp
                .iter()
                .filter_map(|(_, u)| u.local_addr().ok())
                .collect(),
            netflow: self
                .netflow
                .iter()
                .filter_map(|(_, u)| u.local_addr().ok())
                .collect(),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown`, then stops in order: sources, batcher (its last batch goes to
    /// the spool), shipper, HTTP.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = self.cfg;
        let (tx, rx) = mpsc::channel(cfg.batch.channel);
        let sources = CancellationToken::new();
        let source_tasks = TaskTracker::new();
        let customers_file = customer::cache_file(&cfg.spool.dir);
        let customers = Arc::new(
            Customers::new(
                &cfg.customers,
                fetched::kept(&customers_file).as_ref(),
                &cfg.id,
            )
            .map_err(anyhow::Error::msg)?,
        );
        for (s, l, tls) in self.tcp {
            let kind = if tls.is_some() { "tls" } else { "tcp" };
            let name = format!("syslog-{kind}-{}", s.listen);
            tracing::info!(listener = %name, addr = ?l.local_addr().ok(), "listening");
            let ctx = Arc::new(Listener::new(
                name,
                &cfg,
                &s,
                customers.clone(),
                tx.clone(),
                &self.metrics,
                tls,
            ));
            source_tasks.spawn(listener::run_tcp(
                l,
                ctx,
                source_tasks.clone(),
                sources.clone(),
            ));
        }
        for (s, u) in self.udp {
            let name = format!("syslog-udp-{}", s.listen);
            tracing::info!(listener = %name, addr = ?u.local_addr().ok(), "listening");
            let ctx = Arc::new(Listener::new(
                name,
                &cfg,
                &s,
                customers.clone(),
                tx.clone(),
                &self.metrics,
                None,
            ));
            source_tasks.spawn(listener::run_udp(u, ctx, sources.clone()));
        }
        for (n, sock) in self.netflow {
            let name = format!("netflow-{}", n.listen);
            let port = sock
                .local_addr()
                .map(|a| a.port())
                .unwrap_or(n.listen.port());
            let store = flow::templates::FileTemplateStore::open(
                &cfg.spool.dir.join(format!("netflow-templates-{port}.json")),
            );
            tracing::info!(listener = %name, addr = ?sock.local_addr().ok(), templates = store.len(), "listening");
            let rx = flow::netflow::Receiver {
                name,
                decoder: flow::netflow::Decoder::new(Some(Arc::new(store)), n.max_exporters),
                customer: n.customer.clone(),
                customers: customers.clone(),
                agent_customer: cfg.customer.clone(),
                metrics: self.metrics.clone(),
            };
            let (tx, stop) = (tx.clone(), sources.clone());
            source_tasks.spawn_blocking(move || flow::netflow::run(sock, rx, tx, stop));
        }
        for c in &cfg.capture {
            let customer = c.customer.clone().or_else(|| cfg.customer.clone());
            let (c, tx, metrics, stop) =
                (c.clone(), tx.clone(), self.metrics.clone(), sources.clone());
            source_tasks.spawn_blocking(move || flow::capture::run(c, customer, tx, metrics, stop));
        }
        if !cfg.file.is_empty() {
            let (cfg, tx, metrics, stop) = (
                cfg.clone(),
                tx.clone(),
                self.metrics.clone(),
                sources.clone(),
            );
            source_tasks.spawn_blocking(move || tail::run(cfg, tx, metrics, stop));
        }
        source_tasks.spawn(customer::follow(
            cfg.collector.clone(),
            customers_file,
            customers.clone(),
            sources.clone(),
        ));
        source_tasks.spawn(probe::run(
            cfg.collector.clone(),
            probe::cache_file(&cfg.spool.dir),
            tx.clone(),
            self.metrics.clone(),
            sources.clone(),
        ));
        drop(tx);

        let batcher = tokio::spawn(batcher::run(
            rx,
            self.spool.clone(),
            cfg.batch.clone(),
            cfg.id.clone(),
        ));
        let ship_stop = CancellationToken::new();
        let shipper = tokio::spawn(shipper::run(
            self.spool.clone(),
            cfg.collector.clone(),
            self.metrics.clone(),
            ship_stop.clone(),
        ));
        let report = tokio::spawn(report::run(
            cfg.id.clone(),
            self.spool.clone(),
            cfg.collector.clone(),
            self.metrics.clone(),
            ship_stop.clone(),
        ));
        let http_stop = CancellationToken::new();
        let http = self.http.map(|l| {
            let app = http::app(http::HttpState {
                metrics: self.metrics.clone(),
                spool: self.spool.clone(),
            });
            tokio::spawn(http::run(l, app, http_stop.clone()))
        });

        shutdown.cancelled().await;
        tracing::info!("agent stopping: sources");
        sources.cancel();
        source_tasks.close();
        source_tasks.wait().await;
        tracing::info!("agent stopping: writing the last batch to the spool");
        let flushed = batcher.await;
        ship_stop.cancel();
        let _ = shipper.await;
        let _ = report.await;
        http_stop.cancel();
        if let Some(h) = http {
            let _ = h.await;
        }
        tracing::info!(spooled_batches = self.spool.len(), "agent stopped");
        flushed??;
        Ok(())
    }
}
