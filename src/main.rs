//! The `donorcare` command: parses the command line and starts what it names.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use donorcare::{commands, config::Config, server, telemetry};

#[derive(Parser)]
#[command(
    name = "donorcare",
    version,
    about = "Encrypted case system for donor and family care"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    /// Options of `serve`, which runs when no command is given.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct Global {
    /// Folder of the SQLite database (and, later, attachments).
    #[arg(
        long,
        env = "DONORCARE_DATA_DIR",
        default_value = "data",
        global = true
    )]
    data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default `sqlite://<data-dir>/donorcare.db`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// The server's age identity; default `keys/identity.txt`.
    #[arg(long, env = "DONORCARE_IDENTITY", global = true)]
    identity: Option<PathBuf>,
    /// Folder of the development identity and the recipients list.
    #[arg(
        long,
        env = "DONORCARE_KEYS_DIR",
        default_value = "keys",
        global = true
    )]
    keys_dir: PathBuf,
    /// Default time zone of contacts.
    #[arg(
        long,
        env = "DONORCARE_TIMEZONE",
        default_value = "Asia/Shanghai",
        global = true
    )]
    timezone: String,
    /// Folder of templates overriding the built-in ones.
    #[arg(long, env = "DONORCARE_TEMPLATES_DIR", global = true)]
    templates_dir: Option<PathBuf>,
    /// Seconds a superseded keyring version is kept before it may be retired.
    #[arg(
        long,
        env = "DONORCARE_KEY_RETIRE_GRACE",
        default_value_t = 300,
        global = true
    )]
    key_retire_grace: u64,
    /// Hours a break-glass grant lasts.
    #[arg(
        long,
        env = "DONORCARE_BREAK_GLASS_HOURS",
        default_value_t = 4,
        global = true
    )]
    break_glass_hours: u64,
    /// File the signed audit checkpoints are appended to; default beside the identity.
    #[arg(long, env = "DONORCARE_AUDIT_CHECKPOINTS", global = true)]
    audit_checkpoints: Option<PathBuf>,
    /// Roles that must enrol TOTP before anything else, comma-separated
    /// (production guidance: admin,supervisor,ethics_reviewer).
    #[arg(
        long,
        env = "DONORCARE_REQUIRE_TOTP",
        default_value = "",
        global = true
    )]
    require_totp: String,
    /// The address users reach the service at, for links in invitations.
    #[arg(long, env = "DONORCARE_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// SMTP server of the email channel: smtp://host:port or smtps://user:pass@host.
    #[arg(long, env = "DONORCARE_SMTP_URL", global = true)]
    smtp_url: Option<String>,
    /// Sender address of outreach email.
    #[arg(
        long,
        env = "DONORCARE_SMTP_FROM",
        default_value = "donorcare@localhost",
        global = true
    )]
    smtp_from: String,
    /// HTTP endpoint of the SMS gateway (POST JSON {"to","text","idempotency_key"}).
    #[arg(long, env = "DONORCARE_SMS_URL", global = true)]
    sms_url: Option<String>,
    /// HTTP endpoint of the WeChat gateway (POST JSON {"to","text","idempotency_key"}, `to`
    /// being the contact's WeChat ID or OpenID).
    #[arg(long, env = "DONORCARE_WECHAT_URL", global = true)]
    wechat_url: Option<String>,
    /// Folder of the `file` channel (plaintext messages: off unless set).
    #[arg(long, env = "DONORCARE_OUTBOX_DIR", global = true)]
    outbox_dir: Option<PathBuf>,
    /// Local hours in which outreach may go out.
    #[arg(
        long,
        env = "DONORCARE_WAKING_HOURS",
        default_value = "09-20",
        global = true
    )]
    waking_hours: String,
    /// At most this many messages to one family per cap period, across all channels.
    #[arg(
        long,
        env = "DONORCARE_OUTREACH_CAP",
        default_value_t = 3,
        global = true
    )]
    outreach_cap: i64,
    /// The cap period, in days.
    #[arg(
        long,
        env = "DONORCARE_OUTREACH_CAP_DAYS",
        default_value_t = 7,
        global = true
    )]
    outreach_cap_days: i64,
    /// Days ahead that care-plan occurrences become tasks.
    #[arg(
        long,
        env = "DONORCARE_HORIZON_DAYS",
        default_value_t = 400,
        global = true
    )]
    horizon_days: i64,
    /// Seconds a worker holds a claimed message before another may take it.
    #[arg(
        long,
        env = "DONORCARE_OUTREACH_LEASE_SECS",
        default_value_t = 60,
        global = true
    )]
    outreach_lease_secs: i64,
    /// Milliseconds between looks for due messages.
    #[arg(
        long,
        env = "DONORCARE_OUTREACH_TICK_MS",
        default_value_t = 5000,
        global = true
    )]
    outreach_tick_ms: u64,
    /// Domain of outreach email Message-IDs (`<outreach-<id>@domain>`).
    /// When `serve` makes a backup: a cron expression, seconds first ("0 0 2 * * *": 02:00 daily).
    #[arg(long, env = "DONORCARE_BACKUP_SCHEDULE", global = true)]
    backup_schedule: Option<String>,
    /// Where scheduled backups go (default `<data-dir>/backups`).
    #[arg(long, env = "DONORCARE_BACKUP_DIR", global = true)]
    backup_dir: Option<PathBuf>,
    /// How many scheduled backups to keep.
    #[arg(
        long,
        env = "DONORCARE_BACKUP_KEEP",
        default_value_t = 7,
        global = true
    )]
    backup_keep: usize,
    #[arg(
        long,
        env = "DONORCARE_MAIL_DOMAIN",
        default_value = "donorcare.invalid",
        global = true
    )]
    mail_domain: String,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DONORCARE_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Load synthetic cases and accounts and print their logins.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server and scheduler (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the keyring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Exports for ethics reviewers.
    #[command(subcommand)]
    Export(ExportCommand),
    /// An age-encrypted backup of the whole database, the signed forms and the erasure
    /// ledger, taken while the server runs.
    Backup {
        #[arg(long)]
        out: PathBuf,
        /// Seal to these recipients instead of the keyring's (repeatable).
        #[arg(long = "recipient")]
        recipients: Vec<String>,
    },
    /// Restore a backup onto an empty data dir or database; `--identity` is the recovery
    /// identity that opens it.
    Restore {
        #[arg(long = "in")]
        input: PathBuf,
        /// The restored server's identity (default `<keys-dir>/identity.txt`, created if absent).
        #[arg(long)]
        server_identity: Option<PathBuf>,
        /// More erasure ledgers to apply (other instances'); the keys dir's own is always read.
        #[arg(long = "erasures")]
        erasures: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The consent register, encrypted with age to a reviewer's public key.
    Consents {
        /// The reviewer's age public key.
        #[arg(long)]
        recipient: String,
        /// `csv` or `json`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Where to write the encrypted file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and check the signed checkpoints; exit 1 naming the first bad entry.
    Verify,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the identity (if absent) and the keyring.
    Init,
    /// Show keyring versions, recipients and how many case keys each version wraps.
    Status,
    /// Add a keyring version and re-wrap case keys under it.
    Rotate,
    /// Seal the keyring to one more age recipient (an offline recovery key).
    AddRecipient { recipient: String },
    /// Stop sealing the keyring to a recipient.
    RemoveRecipient { recipient: String },
}

fn schedule_settings(tz: &str, waking: &str) -> Result<(chrono_tz::Tz, (u32, u32)), String> {
    let tz = tz
        .parse()
        .map_err(|_| format!("DONORCARE_TIMEZONE: {tz:?} is not an IANA time zone"))?;
    let waking = donorcare::domain::schedule::parse_waking(waking)
        .map_err(|e| format!("DONORCARE_WAKING_HOURS: {e}"))?;
    Ok((tz, waking))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let g = cli.global;
    let cfg = Config {
        database_url: g.database_url,
        identity: g.identity,
        keys_dir: g.keys_dir,
        default_timezone: g.timezone.clone(),
        templates_dir: g.templates_dir,
        key_retire_grace: Duration::from_secs(g.key_retire_grace),
        break_glass_for: Duration::from_secs(g.break_glass_hours * 3600),
        checkpoints: g.audit_checkpoints,
        require_totp: Vec::new(),
        public_url: g.public_url,
        ..Config::new(g.data_dir)
    };
    let mut require_totp = Vec::new();
    for r in g
        .require_totp
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        match donorcare::domain::types::Role::parse(r) {
            Ok(role) => require_totp.push(role),
            Err(why) => {
                eprintln!("donorcare: error: DONORCARE_REQUIRE_TOTP: {r:?} {why}");
                return ExitCode::FAILURE;
            }
        }
    }
    let schedule = match schedule_settings(&g.timezone, &g.waking_hours) {
        Ok((default_tz, waking)) => donorcare::domain::schedule::ScheduleSettings {
            default_tz,
            waking,
            horizon_days: g.horizon_days.clamp(1, 3660),
            cap: g.outreach_cap.max(1),
            cap_period: chrono::Duration::days(g.outreach_cap_days.clamp(1, 366)),
            smtp_url: g.smtp_url,
            smtp_from: g.smtp_from,
            sms_url: g.sms_url,
            wechat_url: g.wechat_url,
            outbox_dir: g.outbox_dir,
            mail_domain: g.mail_domain,
            lease: chrono::Duration::seconds(g.outreach_lease_secs.clamp(1, 3600)),
            max_attempts: 8,
            tick: Duration::from_millis(g.outreach_tick_ms.clamp(10, 600_000)),
            ..Default::default()
        },
        Err(why) => {
            eprintln!("donorcare: error: {why}");
            return ExitCode::FAILURE;
        }
    };
    let backups = donorcare::backup::Settings {
        schedule: g.backup_schedule.filter(|s| !s.trim().is_empty()),
        dir: g.backup_dir.unwrap_or_else(|| cfg.data_dir.join("backups")),
        keep: g.backup_keep.max(1),
        tz: schedule.default_tz,
    };
    let cfg = Config {
        require_totp,
        schedule,
        backups,
        ..cfg
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("donorcare: error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async {
        let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
        match cli.command {
            None => done(server::serve(cfg, cli.serve.addr, cli.serve.demo).await),
            Some(Command::Serve(s)) => {
                done(server::serve(cfg, s.addr, s.demo || cli.serve.demo).await)
            }
            Some(Command::Migrate) => done(commands::migrate(&cfg).await),
            Some(Command::User(UserCommand::Add {
                username,
                role,
                region,
                display_name,
                password_stdin: _,
            })) => done(
                commands::user_add(
                    &cfg,
                    commands::UserAdd {
                        username,
                        role,
                        region,
                        display_name,
                    },
                )
                .await,
            ),
            Some(Command::Export(ExportCommand::Consents {
                recipient,
                format,
                out,
            })) => done(commands::export_consents(&cfg, &recipient, &format, &out).await),
            Some(Command::Audit(AuditCommand::Verify)) => {
                commands::audit_verify(&cfg).await.map(|ok| {
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                })
            }
            Some(Command::Backup { out, recipients }) => {
                done(commands::backup(&cfg, &out, recipients).await)
            }
            Some(Command::Restore {
                input,
                server_identity,
                erasures,
            }) => {
                let Some(recovery) = cfg.identity.clone() else {
                    return Err(anyhow::anyhow!(
                        "restore needs --identity RECOVERY: the identity that opens the backup"
                    ));
                };
                let cfg = Config {
                    identity: server_identity,
                    ..cfg
                };
                done(
                    commands::restore(
                        &cfg,
                        commands::Restore {
                            input,
                            recovery,
                            erasures,
                        },
                    )
                    .await,
                )
            }
            Some(Command::Keys(k)) => done(match k {
                KeysCommand::Init => commands::keys_init(&cfg).await,
                KeysCommand::Status => commands::keys_status(&cfg).await,
                KeysCommand::Rotate => commands::keys_rotate(&cfg).await,
                KeysCommand::AddRecipient { recipient } => {
                    commands::keys_add_recipient(&cfg, &recipient).await
                }
                KeysCommand::RemoveRecipient { recipient } => {
                    commands::keys_remove_recipient(&cfg, &recipient).await
                }
            }),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("donorcare: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
