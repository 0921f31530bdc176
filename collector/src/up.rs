//! `vigil up`: the collector and an in-process agent, with embedded defaults, so one command
//! on a fresh machine gives a working Vigil. The agent ships to the collector over real HTTP
//! on loopback, the same path a remote agent takes.

use std::net::SocketAddr;
use std::path::PathBuf;

use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use vigil_agent::{Agent, BoundAddrs};

use crate::config::{AgentToken, CollectorConfig};
use crate::server::Collector;

#[derive(Debug, Serialize)]
pub struct UpAddrs {
    pub http: SocketAddr,
    pub agent: BoundAddrs,
}

pub struct Up {
    collector: Collector,
    agent: Agent,
    addrs: UpAddrs,
}

impl Up {
    pub async fn open(mut cfg: CollectorConfig, data_dir: Option<PathBuf>) -> anyhow::Result<Up> {
        if let Some(d) = data_dir {
            cfg.data_dir = d;
        }
        let mut agent_cfg = cfg.agent.clone().unwrap_or_else(|| {
            let mut a = vigil_agent::config::AgentConfig::default();
            a.spool.dir = cfg.data_dir.join("spool");
            a
        });
        let token: String = (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rand::rng().random_range(0..16)]))
            .collect();
        cfg.ingest
            .agents
            .push(AgentToken::new(&agent_cfg.id, &token));
        let collector = Collector::open(&cfg).await?;
        let mut http = collector.local_addr()?;
        if http.ip().is_unspecified() {
            http.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        agent_cfg.collector.url = format!("http://{http}");
        agent_cfg.collector.token = token;
        let agent = Agent::bind(agent_cfg).await?;
        let addrs = UpAddrs {
            http: collector.local_addr()?,
            agent: agent.addrs(),
        };
        Ok(Up {
            collector,
            agent,
            addrs,
        })
    }

    pub fn addrs(&self) -> &UpAddrs {
        &self.addrs
    }

    /// Runs both until `shutdown`; the agent stops first (its last batch goes to its spool),
    /// then the collector.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let agent_stop = CancellationToken::new();
        let collector_stop = CancellationToken::new();
        let agent = tokio::spawn(self.agent.run(agent_stop.clone()));
        let collector = tokio::spawn(self.collector.run(collector_stop.clone()));
        shutdown.cancelled().await;
        agent_stop.cancel();
        let a = agent.await;
        collector_stop.cancel();
        collector.await??;
        a??;
        Ok(())
    }
}
