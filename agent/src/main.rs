use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use vigil_agent::Agent;
use vigil_agent::config::AgentConfig;

// Events are many small maps and strings: glibc malloc was a quarter of the agent's CPU.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vigil agent: receives syslog on the network edge, keeps every event in a disk spool and
/// ships it to the Vigil collector.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (TOML). Without it the agent runs with embedded defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Only validate the configuration, print the first error with its location, and exit.
    #[arg(long)]
    check: bool,
    /// Write the bound addresses as JSON to this file once listening (for scripts and tests).
    #[arg(long)]
    ports_file: Option<PathBuf>,
    /// Run one uptime check once from this host, print its result (the probe event) as JSON
    /// and exit: 0 when up or degraded, 1 when down. The check as JSON, as the collector hands
    /// it out: '{"type": "icmp", "target": "192.0.2.1"}', '{"type": "dns", "target":
    /// "example.org", "dns": {"server": "192.0.2.53", "expect": ["192.0.2.80"]}}', ...
    /// (`id` defaults to "probe", `timeout_ms` to 5000).
    #[arg(long, value_name = "JSON")]
    probe: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
    if let Some(json) = &cli.probe {
        return probe_once(json).await;
    }
    let cfg = match &cli.config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default(),
    };
    if cli.check {
        println!("configuration is valid");
        return Ok(());
    }
    let agent = Agent::bind(cfg).await?;
    if let Some(p) = &cli.ports_file {
        write_ports(p, &serde_json::to_vec(&agent.addrs())?)?;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_to(shutdown.clone()));
    agent.run(shutdown).await
}

async fn probe_once(json: &str) -> anyhow::Result<()> {
    let mut v: serde_json::Value =
        serde_json::from_str(json).context("--probe takes a check as JSON")?;
    let obj = v
        .as_object_mut()
        .context("--probe takes a JSON object: {\"type\": ..., \"target\": ...}")?;
    obj.entry("id").or_insert("probe".into());
    obj.entry("interval_ms").or_insert(60_000.into());
    obj.entry("timeout_ms").or_insert(5_000.into());
    let spec: vigil_schema::check::CheckSpec =
        serde_json::from_value(v).context("--probe: not a check")?;
    let out = vigil_agent::probe::Prober::new()?.probe(&spec).await;
    println!("{}", serde_json::to_string(&out.event(&spec))?);
    if out.status == vigil_schema::check::ProbeStatus::Down {
        std::process::exit(1);
    }
    Ok(())
}

fn write_ports(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn signal_to(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("signal received; shutting down");
    shutdown.cancel();
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
