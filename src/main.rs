//! The `callmeta` command line: the only place (with the daemon) that wires sources,
//! tracker and store together. Errors here are `anyhow`, with context for the operator.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use callmeta::call::TrackerConfig;
use callmeta::ingest;
use callmeta::source::log::{Detected, LogFormat};
use callmeta::store::export::{self, Format};
use callmeta::store::{Query, Store, Writer, WriterConfig};
use callmeta::time;

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
    /// Read capture files (pcap, pcapng) as one time-ordered stream, and PBX trace logs
    /// (in the order given, rotated logs oldest first), and store their calls.
    Ingest {
        #[command(flatten)]
        db: DbArg,
        /// What the files are: `auto` recognises each by its content.
        #[arg(long, default_value = "auto", value_parser = [
            "auto", "pcap", "asterisk-pjsip", "asterisk-chansip", "freeswitch",
            "kamailio-sipdump", "cisco",
        ])]
        format: String,
        /// Capture files; several are merged in time order (rotated or per-interface captures).
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
            eprintln!("callmeta: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Ingest { db, format, files } => cmd_ingest(&db.db, &format, &files),
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

fn cmd_ingest(db: &std::path::Path, format: &str, files: &[PathBuf]) -> Result<ExitCode> {
    // Captures are merged in time order, logs read in the order given: split them.
    let (captures, logs): (Vec<PathBuf>, Vec<PathBuf>) = match format {
        "pcap" => (files.to_vec(), Vec::new()),
        "auto" => files.iter().cloned().partition(|f| {
            matches!(
                ingest::log::detect_file(f),
                Ok(Some(Detected::Pcap | Detected::Pcapng)) | Err(_)
            )
        }),
        _ => (Vec::new(), files.to_vec()),
    };
    let log_opts = ingest::LogOptions {
        format: LogFormat::from_name(format),
        ..Default::default()
    };
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
    let mut summaries = Ok(Vec::new());
    if !captures.is_empty() {
        summaries = ingest::ingest_files(&captures, TrackerConfig::default(), |r| writer.send(r));
    }
    if !logs.is_empty() {
        if let Ok(done) = summaries {
            summaries = ingest::ingest_log_files(&logs, &log_opts, TrackerConfig::default(), |r| {
                writer.send(r)
            })
            .map(|more| done.into_iter().chain(more).collect());
        }
    }
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
