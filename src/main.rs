//! The `callmeta` command line: the only place (with the daemon) that wires sources,
//! tracker and store together. Errors here are `anyhow`, with context for the operator.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::builder::TypedValueParser;
use clap::{value_parser, Args, CommandFactory, Parser, Subcommand};
use jiff::tz::TimeZone;

use callmeta::call::TrackerConfig;
use callmeta::config::{self, LogFormat, RetentionSection};
use callmeta::privacy::{self, PseudonymKey, Pseudonymiser};
use callmeta::source::log::Detected;
use callmeta::store::export::{self, Format};
use callmeta::store::retention::{self, RetentionOutcome, RetentionPolicy};
use callmeta::store::{self as store, Query, Request, Store, Subject, Writer, WriterConfig};
use callmeta::time::{self, now_us};
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
    /// Read capture files (pcap, pcapng) as one time-ordered stream, and PBX trace logs,
    /// and store their calls.
    Ingest {
        #[command(flatten)]
        db: DbArg,
        /// Delete records that ended longer ago than this at the end of the run (h, d, w).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "90d")]
        retention: Duration,
        /// Replace caller, callee, names and addresses by pseudonyms in records that ended
        /// longer ago than this (needs the key file).
        #[arg(long, value_parser = humantime::parse_duration)]
        anonymise_after: Option<Duration>,
        /// Fields written as keyed pseudonyms: any of caller, callee, caller_name,
        /// asserted_identity, src_ip, dst_ip, comma-separated.
        #[arg(long, value_delimiter = ',')]
        pseudonymise: Vec<String>,
        #[command(flatten)]
        key: KeyArg,
        /// What the files are: `auto` recognises each by its content (docs/sources.md).
        #[arg(long, default_value = "auto", value_parser = [
            "auto", "pcap", "asterisk-pjsip", "asterisk-chansip", "freeswitch",
            "kamailio-sipdump", "cisco",
        ])]
        format: String,
        #[command(flatten)]
        log: LogArgs,
        /// Capture files (merged in time order: rotated or per-interface captures) and PBX
        /// trace logs (read in the order given: rotated logs oldest first).
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
    /// Delete records that ended before the retention window, and erase their bytes from
    /// the store's files.
    Purge {
        #[command(flatten)]
        db: DbArg,
        /// Delete records that ended longer ago than this (h, d, w).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "90d")]
        older_than: Duration,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Erasure request: delete every record of one subscriber (as caller, callee, asserted
    /// identity, sender or recipient) and audit the request.
    Forget {
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        number: NumberArg,
        /// Only count what would be deleted (audited as a dry run).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Access request: write every record of one subscriber to DIR/calls.FORMAT and
    /// DIR/messages.FORMAT, in the call model's field names, and audit the request.
    Export {
        #[command(flatten)]
        db: DbArg,
        #[command(flatten)]
        number: NumberArg,
        #[arg(long, value_parser = ["csv", "jsonl"])]
        format: String,
        /// Directory for the files (created 0700 when missing; existing files are kept).
        #[arg(long)]
        output: PathBuf,
        #[command(flatten)]
        key: KeyArg,
    },
    /// List call records.
    Calls(ListArgs),
    /// List text-message (SIP MESSAGE) records.
    Messages(ListArgs),
    /// Print the man page, callmeta(1), in roff (the Debian package ships it).
    #[command(hide = true)]
    Man,
    /// Print a shell completion script (the Debian package ships bash and zsh).
    #[command(hide = true)]
    Completions {
        #[arg(value_parser = ["bash", "zsh"])]
        shell: String,
    },
}

#[derive(Args)]
struct DbArg {
    /// The store.
    #[arg(long, env = "CALLMETA_DB", default_value = "callmeta.db")]
    db: PathBuf,
}

/// How `ingest` reads logs: the keys of `[[source.log]]`, checked by the same code.
#[derive(Args)]
struct LogArgs {
    /// Zone of the local times in logs (IANA name, e.g. Europe/Berlin). Default: the
    /// host's zone.
    #[arg(long, value_name = "ZONE", value_parser = config::log_time_zone)]
    timezone: Option<TimeZone>,
    /// Year of log dates written without one (Asterisk's default dateformat, Cisco).
    /// Default: the year that puts each time closest before the file's modification time.
    #[arg(long, value_name = "YYYY", value_parser = value_parser!(i64).try_map(config::log_year))]
    year: Option<i16>,
    /// The PBX's own SIP address: the other end of every peer a log names (the source of
    /// what it sent, the destination of what it received). Default: 0.0.0.0:0.
    #[arg(long, value_name = "IP:PORT", value_parser = config::log_local_address)]
    local_address: Option<SocketAddr>,
}

impl LogArgs {
    fn options(&self, format: &str) -> ingest::LogOptions {
        ingest::LogOptions {
            format: callmeta::source::log::LogFormat::from_name(format),
            timezone: self
                .timezone
                .clone()
                .unwrap_or_else(callmeta::source::log::time::host_time_zone),
            year: self.year,
            local_address: self.local_address,
        }
    }
}

#[derive(Args)]
struct NumberArg {
    /// The subscriber's number, in clear (a leading +, spaces and dashes are ignored; its
    /// pseudonym is looked for too).
    #[arg(long)]
    number: String,
}

#[derive(Args)]
struct KeyArg {
    /// The pseudonym key ([privacy] key_file). Default: pseudonym.key beside the store.
    /// Created (0600) when missing.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

impl KeyArg {
    fn path(&self, db: &Path) -> PathBuf {
        match &self.key_file {
            Some(p) => p.clone(),
            None => db
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join("pseudonym.key"),
        }
    }

    /// Loads the key, creating it when missing; says so on stderr when it was created.
    fn load(&self, db: &Path) -> Result<(PseudonymKey, bool)> {
        let path = self.path(db);
        let (key, created) = PseudonymKey::load_or_create(&path)?;
        if created {
            eprintln!("callmeta: created pseudonym key {}", path.display());
        }
        Ok((key, created))
    }
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
        Command::Ingest {
            db,
            retention,
            anonymise_after,
            pseudonymise,
            key,
            format,
            log,
            files,
        } => cmd_ingest(
            &db.db,
            &format,
            &log,
            &files,
            &IngestPrivacy {
                retention,
                anonymise_after,
                pseudonymise,
                key,
            },
        ),
        Command::Purge {
            db,
            older_than,
            dry_run,
        } => cmd_purge(&db.db, older_than, dry_run),
        Command::Forget {
            db,
            number,
            dry_run,
            key,
        } => cmd_forget(&db.db, &number.number, dry_run, &key),
        Command::Export {
            db,
            number,
            format,
            output,
            key,
        } => cmd_export(&db.db, &number.number, &format, &output, &key),
        Command::Calls(args) => {
            let store = Store::open_read_only(&args.db.db)?;
            let calls = store.calls(&args.query())?;
            let mut out = std::io::stdout().lock();
            export::write_calls(&mut out, args.format()?, &calls).context("writing output")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = std::io::stdout().lock();
            write_man_page(&mut out)
                .and_then(|()| Ok(out.flush()?))
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let shell = match shell.as_str() {
                "zsh" => clap_complete::Shell::Zsh,
                _ => clap_complete::Shell::Bash,
            };
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "callmeta", &mut out);
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

type ManSection = fn(&clap_mangen::Man, &mut dyn Write) -> std::io::Result<()>;

/// callmeta(1): the whole command line on one page, each command a subsection (clap_mangen
/// alone would point to a callmeta-COMMAND(1) page per command, which nobody ships).
fn write_man_page(out: &mut dyn Write) -> Result<()> {
    let mut cli = Cli::command();
    cli.build();
    let man = clap_mangen::Man::new(cli.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
        let page = clap_mangen::Man::new(sub.clone());
        writeln!(out, ".SS \"{name}\"")?;
        let sections: [ManSection; 3] = [
            clap_mangen::Man::render_synopsis_section,
            clap_mangen::Man::render_description_section,
            clap_mangen::Man::render_options_section,
        ];
        for render in sections {
            let mut text = Vec::new();
            render(&page, &mut text)?;
            // Each render starts with roff's apostrophe preamble and its own heading: the
            // page has the preamble once, and paragraphs under this subsection instead.
            writeln!(out, ".PP")?;
            for line in String::from_utf8_lossy(&text).lines() {
                if !(line.starts_with(".SH")
                    || line.starts_with(".ie ")
                    || line.starts_with(".el "))
                {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    writeln!(
        out,
        ".SH FILES\n.TP\n/etc/callmeta/callmeta.toml\nThe configuration (every key commented); \
         reloaded on SIGHUP.\n.TP\n/var/lib/callmeta/calls.db\nThe store (with its \\-wal and \
         \\-shm files), readable by the callmeta group.\n.SH SEE ALSO\n\
         \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); \
         /usr/share/doc/callmeta/docs/operations.md, call\\-model.md, schema.md and privacy.md."
    )?;
    man.render_version_section(out)?;
    Ok(())
}

/// The privacy options of `ingest`: what the daemon reads from `[retention]` and
/// `[privacy]`.
struct IngestPrivacy {
    retention: Duration,
    anonymise_after: Option<Duration>,
    pseudonymise: Vec<String>,
    key: KeyArg,
}

/// Refuses an unsafe store directory, prints the warnings of a weak one.
fn check_store_permissions(db: &Path) -> Result<()> {
    for warning in store::check_permissions(db)? {
        eprintln!("callmeta: warning: {warning}");
    }
    Ok(())
}

fn print_retention(out: &mut impl Write, what: &str, r: &RetentionOutcome) -> Result<()> {
    writeln!(
        out,
        "{what}: {} calls, {} messages and {} audit entries deleted; {} calls and {} messages anonymised",
        r.calls_deleted, r.messages_deleted, r.audit_deleted, r.calls_anonymised, r.messages_anonymised
    )?;
    warn_if_wal_kept(r.erasure);
    Ok(())
}

fn warn_if_wal_kept(erasure: Option<store::Erasure>) {
    if erasure.is_some_and(|e| !e.wal_truncated) {
        eprintln!(
            "callmeta: warning: a reader kept the store's -wal open: deleted records' old \
             pages stay in it until the next checkpoint (run `callmeta purge` again once \
             readers are done)"
        );
    }
}

fn cmd_ingest(
    db: &Path,
    format: &str,
    log: &LogArgs,
    files: &[PathBuf],
    opts: &IngestPrivacy,
) -> Result<ExitCode> {
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
    let log_opts = log.options(format);
    let started = Instant::now();
    check_store_permissions(db)?;
    let fields = privacy::parse_fields(&opts.pseudonymise)?;
    let pseudonymiser = if fields.is_empty() && opts.anonymise_after.is_none() {
        None
    } else {
        let (key, _) = opts.key.load(db)?;
        Some(Pseudonymiser::new(&key, &fields))
    };
    let policy = RetentionPolicy::from_config(
        &RetentionSection {
            window: opts.retention,
            anonymise_after: opts.anonymise_after,
        },
        pseudonymiser.as_ref(),
    );
    let mut store = Store::open(db)?;
    store.set_pseudonymiser(pseudonymiser.filter(|p| !p.fields().is_empty()));
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
    // Retention runs on wall-clock time: a capture older than the window is stored and
    // deleted in the same run, as the retention promise says.
    let mut store = Store::open(db)?;
    let outcome = retention::apply(&mut store, now_us(), &policy, false)
        .context("applying the retention window")?;
    print_retention(&mut out, "retention", &outcome)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_purge(db: &Path, older_than: Duration, dry_run: bool) -> Result<ExitCode> {
    check_store_permissions(db)?;
    let mut store = open_existing(db)?;
    let outcome = retention::apply(
        &mut store,
        now_us(),
        &RetentionPolicy::delete_after(older_than),
        dry_run,
    )?;
    let what = if dry_run {
        "dry run, would be"
    } else {
        "purge"
    };
    print_retention(&mut std::io::stdout().lock(), what, &outcome)?;
    Ok(ExitCode::SUCCESS)
}

/// Opens a store read-write for a request; never creates one (a typo in --db must not
/// answer "nothing found" from a fresh empty store).
fn open_existing(db: &Path) -> Result<Store> {
    if !db.exists() {
        return Err(callmeta::store::StoreError::NotFound {
            path: db.to_owned(),
        }
        .into());
    }
    Ok(Store::open(db)?)
}

/// The key and the subject of a request. Refuses to make a new key for a store that
/// already holds pseudonyms: they were made under another key and would not be found, and
/// a key left behind would hide that from the next request too.
fn request_subject(store: &Store, db: &Path, number: &str, key: &KeyArg) -> Result<Subject> {
    let path = key.path(db);
    if !path.exists() && store.holds_pseudonyms()? {
        anyhow::bail!(
            "the store holds pseudonymised records but there is no key at {}: give the key \
             they were made with (--key-file, [privacy] key_file)",
            path.display()
        );
    }
    let (key, _) = key.load(db)?;
    Ok(Subject::new(number, &Pseudonymiser::new(&key, &[])))
}

fn request(dry_run: bool) -> Request {
    Request {
        at_us: now_us(),
        os_user: privacy::current_os_user(),
        dry_run,
    }
}

fn cmd_forget(db: &Path, number: &str, dry_run: bool, key: &KeyArg) -> Result<ExitCode> {
    check_store_permissions(db)?;
    let mut store = open_existing(db)?;
    let subject = request_subject(&store, db, number, key)?;
    let outcome = store.forget(&subject, &request(dry_run))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    // The subscriber is named by pseudonym here too: this line ends up in shell histories
    // and tickets.
    println!(
        "forget {}: {verb} {} calls and {} messages; audited",
        subject.pseudonym(),
        outcome.calls,
        outcome.messages
    );
    warn_if_wal_kept(outcome.erasure);
    Ok(ExitCode::SUCCESS)
}

fn cmd_export(
    db: &Path,
    number: &str,
    format: &str,
    output: &Path,
    key: &KeyArg,
) -> Result<ExitCode> {
    check_store_permissions(db)?;
    let format: Format = format
        .parse()
        .map_err(|e| anyhow::anyhow!("unknown format {e}"))?;
    let mut store = open_existing(db)?;
    let subject = request_subject(&store, db, number, key)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(output)
        .with_context(|| format!("creating {}", output.display()))?;
    // Create both files before reading anything, so an existing export is never
    // overwritten and a refused run is not audited as served.
    let create = |name: &str| {
        let path = output.join(format!("{name}.{format}"));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))
            .map(|f| (path, f))
    };
    let (calls_path, calls_file) = create("calls")?;
    let (messages_path, messages_file) = create("messages")?;
    let records = store.export_subject(&subject, &request(false))?;
    let mut w = std::io::BufWriter::new(calls_file);
    export::write_calls(&mut w, format, &records.calls)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {}", calls_path.display()))?;
    let mut w = std::io::BufWriter::new(messages_file);
    export::write_messages(&mut w, format, &records.messages)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {}", messages_path.display()))?;
    println!(
        "export {}: {} calls to {}, {} messages to {}; audited",
        subject.pseudonym(),
        records.calls.len(),
        calls_path.display(),
        records.messages.len(),
        messages_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
