use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vigil_agent::config::AgentConfig;
use vigil_collector::cli::{self, SearchArgs};
use vigil_collector::config::CollectorConfig;
use vigil_collector::server::Collector;
use vigil_collector::up::Up;

// Events are many small maps and strings: glibc malloc was a quarter of the agent's CPU.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vigil: network operations and security monitoring. Collects flows and syslog from agents,
/// indexes them, answers searches, detects, and turns what matters into incidents; the web
/// console is at / of the HTTP address.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector and an in-process agent with embedded defaults (no config needed):
    /// data in ./vigil-data, the web console and the API on 127.0.0.1:8080, syslog on TCP
    /// and UDP 5514.
    Up {
        /// Where the index, write-ahead log and spool live.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Optional configuration (collector keys, plus an [agent] section).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Write the bound addresses as JSON to this file once listening.
        #[arg(long)]
        ports_file: Option<PathBuf>,
    },
    /// Run the collector alone; agents connect to it with their tokens.
    Collector {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        ports_file: Option<PathBuf>,
    },
    /// Search events: Tantivy query syntax over the event fields, newest first. With --top,
    /// --histogram or --stats: aggregate the matching events instead of listing them.
    ///
    /// Beyond Tantivy's syntax: `source.ip:10.0.0.0/8` (CIDR, IPv6 quoted:
    /// `source.ip:"2001:db8::/32"`), `field:*` (the field is present), wildcards
    /// (`message:fail*`, `fail?d`) and `/regex/` terms on text and keyword fields (whole
    /// terms; case-insensitive on text fields; at most 10000 terms each), and pure negation
    /// (`NOT message:preauth`: every event but those). AND binds tighter than OR:
    /// `a OR b AND c` is `a OR (b AND c)`; words without an operator are ANDed. The whole
    /// language: docs/QUERY.md.
    /// Examples: `vigil search 'event.kind:flow' --since 1h --top source.ip --sum network.bytes`,
    /// `vigil search 'log.syslog.appname:sshd' --since 1d --histogram 1h`.
    Search {
        /// Query, e.g. `hello`, `host.name:web-1 AND message:failed`; `*` for everything.
        query: String,
        /// Only events from this long ago until now (e.g. 15m, 1h, 7d).
        #[arg(long, conflicts_with = "from")]
        since: Option<String>,
        /// Start of the time range (RFC 3339 or now-1h).
        #[arg(long)]
        from: Option<String>,
        /// End of the time range (RFC 3339 or now), exclusive.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// One JSON event per line (or the aggregation as JSON) instead of a table.
        #[arg(long)]
        json: bool,
        /// Top values of this field (keyword, numeric or IP), e.g. source.ip.
        #[arg(long, value_name = "FIELD")]
        top: Option<String>,
        /// How many top values.
        #[arg(long, default_value_t = 10)]
        size: usize,
        /// Rank top values by the sum of this numeric field (top talkers: network.bytes);
        /// with --histogram, also sum it per bucket.
        #[arg(long, value_name = "FIELD")]
        sum: Option<String>,
        /// Event counts over time in buckets of this width (e.g. 1m, 1h).
        #[arg(long, value_name = "INTERVAL")]
        histogram: Option<String>,
        /// Count, min, max, average, percentiles and sum of this numeric field.
        #[arg(long, value_name = "FIELD")]
        stats: Option<String>,
        #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "VIGIL_TOKEN")]
        token: Option<String>,
    },
    /// The incident queue: list, show, and act on incidents (every action goes on the
    /// incident's timeline with who did it).
    Incidents(cli::incidents::IncidentsArgs),
    /// Silences: hold back the announcements of matching incidents for a while (a
    /// retraction is always announced).
    Silences(cli::silences::SilencesArgs),
    /// Maintenance windows: customers' incidents are not announced while one is on; the
    /// customers are told when it is planned, starts and ends.
    Maintenance(cli::maintenance::MaintenanceArgs),
    /// Exclusions (decree art. 9): matching incidents' announcements are held for the
    /// receivers' digest, with who decided, why and until when (a retraction still goes).
    Exclusions(cli::silences::SilencesArgs),
    /// Uptime checks (HTTP, TCP, TLS, DNS, ICMP, CAP) the agents run as vantage points; their
    /// state by quorum.
    Checks(cli::checks::ChecksArgs),
    /// Notices on the status pages, and the links to customers' own status pages.
    Notices(cli::notices::NoticesArgs),
    /// Heartbeats: push health checks that jobs and services ping
    /// (`curl -fsS -m 10 --retry 5 URL`); a heartbeat without a success in time, or with a
    /// failure, opens an incident.
    Heartbeats(cli::heartbeats::HeartbeatsArgs),
    /// Who is on call now (each level of each rota), and overrides ("I take tonight").
    Oncall(cli::oncall::OnCallArgs),
    /// Operator call tasks: the calls the desk must make, and recording them.
    Tasks(cli::tasks::TasksArgs),
    /// Customers: list them, import them from CSV.
    Customers(cli::customers::CustomersArgs),
    /// Assets (base information): list, add, remove, and their change log.
    Assets(cli::assets::AssetsArgs),
    /// Sigma rules: check that they load, test them on events.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Load rule files and directories (Vigil's own rules when none is given); report every
    /// rule that cannot load, with its file and the reason, and exit non-zero if any. Warn
    /// about every field a rule tests that no event it sees carries (from the mapping and
    /// the event schema).
    Check {
        paths: Vec<PathBuf>,
        /// Mapping files (default: Vigil's rules/mappings/vigil.yml).
        #[arg(long)]
        mapping: Vec<PathBuf>,
        /// Also exit non-zero when a rule tests a field its events never carry.
        #[arg(long)]
        strict: bool,
    },
    /// Run one rule file (a rule, or a correlation with the rules it counts) over events and
    /// print the alerts it raises.
    Test {
        rule: PathBuf,
        /// One JSON event per line (Vigil's field names; @timestamp drives correlations).
        #[arg(long)]
        events: PathBuf,
        #[arg(long)]
        mapping: Vec<PathBuf>,
        /// Alerts as JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file; print the first error with its location.
    Check {
        file: PathBuf,
        /// The file is a vigil-agent configuration (default: collector / vigil up).
        #[arg(long)]
        agent: bool,
        /// Show who an incident with these labels would reach, and by which channel:
        /// `severity=high,customer=ulb,danger=true` (labels: customer, severity, danger,
        /// rule, title, status, group).
        #[arg(long, value_name = "LABELS", conflicts_with = "agent")]
        route: Option<String>,
    },
    /// Print the configuration `vigil up` runs with, written out, with a commented example
    /// that watches a public alerting platform (web site, API, CAP feed) from every agent:
    /// `vigil config example > vigil.toml`.
    Example,
}

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up {
            data_dir,
            config,
            ports_file,
        } => {
            let cfg = match &config {
                Some(p) => CollectorConfig::load(p)?,
                None => CollectorConfig::default(),
            };
            let up = Up::open(cfg, data_dir).await?;
            if let Some(p) = ports_file {
                write_ports(&p, &serde_json::to_vec(up.addrs())?)?;
            }
            let a = up.addrs();
            eprintln!(
                "vigil is up: console on http://{}/, API on http://{}/api/v1, syslog on tcp {:?} and udp {:?}",
                a.http, a.http, a.agent.syslog_tcp, a.agent.syslog_udp
            );
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_to(shutdown.clone()));
            up.run(shutdown).await
        }
        Command::Collector { config, ports_file } => {
            let cfg = CollectorConfig::load(&config)?;
            let collector = Collector::open(&cfg).await?;
            if let Some(p) = ports_file {
                let addrs = serde_json::json!({ "http": collector.local_addr()? });
                write_ports(&p, addrs.to_string().as_bytes())?;
            }
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_to(shutdown.clone()));
            collector.run(shutdown).await
        }
        Command::Search {
            query,
            since,
            from,
            to,
            limit,
            offset,
            json,
            top,
            size,
            sum,
            histogram,
            stats,
            url,
            token,
        } => {
            let args = SearchArgs {
                query,
                since,
                from,
                to,
                limit,
                offset,
                json,
                server: cli::Server { url, token },
                top,
                size,
                sum,
                histogram,
                stats,
            };
            cli::search(args, &mut std::io::stdout().lock()).await
        }
        Command::Incidents(args) => cli::incidents::run(args, &mut std::io::stdout().lock()).await,
        Command::Silences(args) => {
            cli::silences::run(args, "silences", &mut std::io::stdout().lock()).await
        }
        Command::Maintenance(args) => {
            cli::maintenance::run(args, &mut std::io::stdout().lock()).await
        }
        Command::Exclusions(args) => {
            cli::silences::run(args, "exclusions", &mut std::io::stdout().lock()).await
        }
        Command::Checks(args) => cli::checks::run(args, &mut std::io::stdout().lock()).await,
        Command::Notices(args) => cli::notices::run(args, &mut std::io::stdout().lock()).await,
        Command::Heartbeats(args) => {
            cli::heartbeats::run(args, &mut std::io::stdout().lock()).await
        }
        Command::Oncall(args) => cli::oncall::run(args, &mut std::io::stdout().lock()).await,
        Command::Tasks(args) => cli::tasks::run(args, &mut std::io::stdout().lock()).await,
        Command::Customers(args) => cli::customers::run(args, &mut std::io::stdout().lock()).await,
        Command::Assets(args) => cli::assets::run(args, &mut std::io::stdout().lock()).await,
        Command::Rules {
            command:
                RulesCommand::Check {
                    paths,
                    mapping,
                    strict,
                },
        } => {
            if cli::rules_check(&paths, &mapping, strict, &mut std::io::stdout().lock())? {
                Ok(())
            } else if strict {
                anyhow::bail!(
                    "some rules cannot be loaded or test fields their events never carry (listed above)"
                )
            } else {
                anyhow::bail!("some rules cannot be loaded (listed above)")
            }
        }
        Command::Rules {
            command:
                RulesCommand::Test {
                    rule,
                    events,
                    mapping,
                    json,
                },
        } => {
            cli::rules_test(
                &rule,
                &events,
                &mapping,
                json,
                &mut std::io::stdout().lock(),
            )?;
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", vigil_collector::config::EXAMPLE);
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check { file, agent, route },
        } => {
            if agent {
                AgentConfig::load(&file)?;
            } else {
                let cfg = CollectorConfig::load(&file)?;
                if let Some(labels) = route {
                    return cli::route::show(&cfg, &file, &labels);
                }
            }
            println!("{}: configuration is valid", file.display());
            Ok(())
        }
    }
}

fn write_ports(path: &Path, data: &[u8]) -> anyhow::Result<()> {
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
