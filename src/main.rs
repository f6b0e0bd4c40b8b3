//! The `leakwatch` binary: parses the command line, sets up logging, and hands over to
//! `leakwatch::app`. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use leakwatch::app;
use leakwatch::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "leakwatch",
    version,
    about = "Finds your organisation's accounts in credential leaks and tells the people concerned first."
)]
struct Cli {
    /// The main configuration file.
    #[arg(long, short, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and templates, and say which key is wrong.
    Check,
    /// The organisation's directory.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Read dumps (files, directories, zip archives), record findings, send the mail they cause.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Password to try on encrypted zip and 7z archives (repeat for several).
        #[arg(long = "archive-password", value_name = "PASSWORD")]
        archive_passwords: Vec<String>,
        /// Passwords to try, one per line, from a file (`-`: standard input): unlike
        /// `--archive-password`, not shown to every local user in the process list.
        #[arg(long = "archive-passwords-file", value_name = "FILE")]
        archive_passwords_file: Option<PathBuf>,
        /// No progress bar, even on a terminal.
        #[arg(long)]
        no_progress: bool,
        /// Threads that parse combo/ULP lists (default: `[ingest] threads`, one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
        /// Read lists line by line through the reference path: slow, for cross-checking
        /// the fast one (the benchmark does).
        #[arg(long, conflicts_with = "threads")]
        reference: bool,
    },
    /// The daemon: run every feed on its schedule until SIGTERM (SIGHUP reloads).
    Run {
        /// Run every enabled feed once, then exit.
        #[arg(long)]
        once: bool,
    },
    /// The daemon, each feed's last and next run, and the mail queue.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Recorded findings.
    Findings {
        #[command(subcommand)]
        command: FindingsCommand,
    },
    /// The mail queue.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Print the identity key, SHA-1 and k-anonymous prefix of an address or username.
    Hash { identity: String },
    /// Print the Prometheus metrics, as the daemon serves them on `[metrics] listen`.
    Metrics,
    /// Apply `[retention]` now (it also runs once a day after a run).
    Purge,
    /// The people who asked for no further mail (admins still see their findings).
    Optout {
        #[command(subcommand)]
        command: OptoutCommand,
    },
    /// Erase what is held about one person: findings, sightings, actions, mail, keys.
    Forget { identity: String },
    /// Print what is held about one person, as JSON (right of access).
    Export { identity: String },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff): `leakwatch man > /usr/share/man/man1/leakwatch.1`.
    Man,
    /// Remediation: what was done in the directory, and what waits for approval.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
}

#[derive(Subcommand)]
enum OptoutCommand {
    Add { address: String },
    Remove { address: String },
    List,
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Actions waiting for an admin (approval mode, or held by the hourly ceiling).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Approve waiting actions; they are done at once.
    Approve {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        #[arg(long)]
        all: bool,
    },
    /// Reject waiting actions: never done.
    Reject {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        #[arg(long)]
        all: bool,
    },
    /// Every action, newest first: finding, account, action, target, result, time, who
    /// approved.
    Log {
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Replace the directory with a CSV (header: email, and optionally username, name, lang);
    /// `-` reads it from standard input.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum FindingsCommand {
    /// List every finding.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Every queued, sent and failed message.
    List,
    /// Try every queued message now.
    Flush {
        /// Queue failed messages again first.
        #[arg(long)]
        retry_failed: bool,
    },
}

fn main() -> ExitCode {
    // Everything leakwatch creates (the database and its journal, the filter, the key
    // index, the outbox's messages, spooled downloads) is its own alone: files 0600 and
    // directories 0700, whatever mode a directory that already exists has.
    // SAFETY: umask only sets this process's file-creation mask; it cannot fail.
    #[cfg(unix)]
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    // These need no config.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "leakwatch", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(app::EXIT_PROBLEMS as u8 + 1)
                }
            };
        }
        _ => {}
    }
    // The config first: it says how to log (`[log] format`). Its errors go to stderr as
    // they are.
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(app::EXIT_CONFIG as u8);
        }
    };
    // Colours only on a terminal. Under systemd (JOURNAL_STREAM set) the journal stamps
    // each line itself, so text lines carry no time (JSON ones keep theirs: a SIEM reads
    // the object, not the journal's stamp).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("leakwatch=info"));
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cfg.log.format {
        config::LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        config::LogFormat::Text => {
            let fmt = fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
            if std::env::var_os("JOURNAL_STREAM").is_some() {
                fmt.without_time().init();
            } else {
                fmt.init();
            }
        }
    }
    let result = match cli.command {
        Command::Check => app::check(&cli.config, &cfg),
        Command::Accounts {
            command: AccountsCommand::Import { file },
        } => app::import_accounts(&cfg, &file),
        Command::Ingest {
            paths,
            mut archive_passwords,
            archive_passwords_file,
            no_progress,
            threads,
            reference,
        } => match archive_passwords_file
            .as_deref()
            .map(app::archive_passwords_from)
            .transpose()
        {
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(app::EXIT_CONFIG as u8);
            }
            Ok(more) => {
                archive_passwords.extend(more.into_iter().flatten());
                app::ingest(
                    &cfg,
                    &paths,
                    &app::IngestOptions {
                        archive_passwords,
                        progress: !no_progress,
                        threads: if reference {
                            Some(0)
                        } else {
                            threads.map(usize::from)
                        },
                    },
                )
            }
        },
        Command::Run { once } => app::run(&cli.config, cfg, once),
        Command::Status { json } => app::status(&cfg, json),
        Command::Findings {
            command: FindingsCommand::List { json },
        } => app::findings_list(&cfg, json),
        Command::Mail {
            command: MailCommand::List,
        } => app::mail_list(&cfg),
        Command::Mail {
            command: MailCommand::Flush { retry_failed },
        } => app::mail_flush(&cfg, retry_failed),
        Command::Hash { identity } => app::hash(&cfg, &identity),
        Command::Metrics => app::metrics(&cfg),
        Command::Purge => app::purge(&cfg),
        Command::Optout { command } => match command {
            OptoutCommand::Add { address } => app::optout(&cfg, "add", Some(&address)),
            OptoutCommand::Remove { address } => app::optout(&cfg, "remove", Some(&address)),
            OptoutCommand::List => app::optout(&cfg, "list", None),
        },
        Command::Forget { identity } => app::forget(&cfg, &identity),
        Command::Export { identity } => app::export(&cfg, &identity),
        // Printed above, before the config was read.
        Command::Completions { .. } | Command::Man => Ok(app::EXIT_OK),
        Command::Actions { command } => match command {
            ActionsCommand::List { json } => app::actions_show(&cfg, true, json, u32::MAX),
            ActionsCommand::Log { json, limit } => app::actions_show(&cfg, false, json, limit),
            ActionsCommand::Approve { ids, all } => app::actions_settle(&cfg, &ids, all, true),
            ActionsCommand::Reject { ids, all } => app::actions_settle(&cfg, &ids, all, false),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(app::EXIT_PROBLEMS as u8 + 1)
        }
    }
}
