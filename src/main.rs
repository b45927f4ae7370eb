//! The `callmeta` command line: the only place (with the daemon) that wires sources,
//! tracker and store together. Errors here are `anyhow`, with context for the operator.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use callmeta::call::TrackerConfig;
use callmeta::config::LogFormat;
use callmeta::store::export::{self, Format};
use callmeta::store::{Query, Store, Writer, WriterConfig};
use callmeta::time;
use callmeta::{daemon, ingest};

#[derive(Parser)]
#[command(
    name = "callmeta",
    version,
    about = "SIP call metadata from the wire or PBX trace logs into a local store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read capture files (pcap, pcapng) as one time-ordered stream and store their calls.
    Ingest {
        #[command(flatten)]
        db: DbArg,
        /// Capture files; several are merged in time order (rotated or per-interface captures).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the daemon: capture SIP live and store a record per call as it ends.
    Run {
        /// The config file (default /etc/callmeta/callmeta.toml, else built-in defaults).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Capture on this interface instead of the configured sources (repeatable; `any` for all).
        #[arg(long = "interface", value_name = "NAME")]
        interfaces: Vec<String>,
        /// Capture this SIP port instead of the configured ones (repeatable).
        #[arg(long = "port", value_name = "N")]
        ports: Vec<u16>,
        /// The store, instead of store.path.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Log format on stdout.
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// The config file (default /etc/callmeta/callmeta.toml, else built-in defaults).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// List call records.
    Calls(ListArgs),
    /// List text-message (SIP MESSAGE) records.
    Messages(ListArgs),
}

#[derive(Args)]
struct DbArg {
    /// The store.
    #[arg(long, env = "CALLMETA_DB", default_value = "callmeta.db")]
    db: PathBuf,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    db: DbArg,
    /// Only records that started at or after this time (RFC 3339, or a date YYYY-MM-DD, UTC).
    #[arg(long, value_parser = time::parse_us)]
    since: Option<i64>,
    /// Only records that started before this time.
    #[arg(long, value_parser = time::parse_us)]
    until: Option<i64>,
    /// Only records where this number is the caller, callee or asserted identity
    /// (a leading +, spaces and dashes are ignored).
    #[arg(long)]
    number: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "jsonl"])]
    format: String,
}

impl ListArgs {
    fn query(&self) -> Query {
        Query {
            since_us: self.since,
            until_us: self.until,
            number: self.number.clone(),
        }
    }

    fn format(&self) -> Result<Format> {
        self.format
            .parse()
            .map_err(|e| anyhow::anyhow!("unknown format {e}"))
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // Each cause once: library errors often quote their source already.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message.push_str(": ");
                    message.push_str(&cause);
                }
            }
            eprintln!("callmeta: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Ingest { db, files } => cmd_ingest(&db.db, &files),
        Command::Run {
            config,
            interfaces,
            ports,
            db,
            log_format,
        } => {
            let log_format = match log_format.as_deref() {
                Some("json") => Some(LogFormat::Json),
                Some(_) => Some(LogFormat::Text),
                None => None,
            };
            daemon::run(
                config,
                daemon::Overrides {
                    interfaces,
                    ports,
                    db,
                    log_format,
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let cfg = daemon::load_config(config.as_deref(), &daemon::Overrides::default())?;
            print!(
                "{}",
                toml::to_string_pretty(&cfg).context("printing the configuration")?
            );
            eprintln!(
                "configuration is valid; store: {}",
                cfg.store.effective_path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Calls(args) => {
            let store = Store::open_read_only(&args.db.db)?;
            let calls = store.calls(&args.query())?;
            let mut out = std::io::stdout().lock();
            export::write_calls(&mut out, args.format()?, &calls).context("writing output")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Messages(args) => {
            let store = Store::open_read_only(&args.db.db)?;
            let messages = store.messages(&args.query())?;
            let mut out = std::io::stdout().lock();
            export::write_messages(&mut out, args.format()?, &messages)
                .context("writing output")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cmd_ingest(db: &std::path::Path, files: &[PathBuf]) -> Result<ExitCode> {
    let started = Instant::now();
    let store = Store::open(db)?;
    let writer = Writer::spawn(
        store,
        WriterConfig {
            batch_size: 1000,
            flush_interval: Duration::from_secs(1),
            queue: 10_000,
        },
    );
    let summaries = ingest::ingest_files(files, TrackerConfig::default(), |r| writer.send(r));
    // Flush what was written even when the run stopped on an error.
    let stats = writer.finish().context("writing records to the store")?;
    let summaries = summaries.context("writing records to the store")?;
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for s in &summaries {
        writeln!(out, "{}", s.line())?;
        failed |= s.error.is_some();
    }
    let messages: u64 = summaries.iter().map(|s| s.sip_messages).sum();
    let elapsed = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "total: {} SIP messages, {} calls and {} messages stored in {} ({:.3}s, {:.0} SIP messages/s)",
        messages,
        stats.calls_written,
        stats.messages_written,
        db.display(),
        elapsed,
        messages as f64 / elapsed.max(1e-9)
    )?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
