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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
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
