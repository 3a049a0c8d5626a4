//! Settings shared by every command, from flags or the environment (documented in README).

use std::path::PathBuf;
use std::time::Duration;

use crate::crypto::keyring::KeyPaths;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub identity: Option<PathBuf>,
    /// Folder of the development identity and of `recipients.txt` (default `keys`).
    pub keys_dir: PathBuf,
    /// Default time zone of contacts (`DONORCARE_TIMEZONE`).
    pub default_timezone: String,
    /// Optional folder of templates that override the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// How long a superseded keyring version must stay before it may be retired, so that no
    /// instance still wraps new case keys with it.
    pub key_retire_grace: Duration,
    /// How long a break-glass grant lasts (`DONORCARE_BREAK_GLASS_HOURS`, default 4 h).
    pub break_glass_for: Duration,
    /// Where signed audit checkpoints are appended (default `<keys-dir>/audit-checkpoints.jsonl`,
    /// beside the identity and away from the database).
    pub checkpoints: Option<PathBuf>,
    /// Roles that must enrol TOTP before anything else (`DONORCARE_REQUIRE_TOTP`).
    pub require_totp: Vec<crate::domain::types::Role>,
    /// The address users reach the service at, for links in invitations
    /// (`DONORCARE_PUBLIC_URL`; default the listening address).
    pub public_url: Option<String>,
    /// Scheduling and outreach delivery.
    pub schedule: crate::domain::schedule::ScheduleSettings,
    /// Scheduled backups in `serve`.
    pub backups: crate::backup::Settings,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            database_url: None,
            identity: None,
            keys_dir: PathBuf::from("keys"),
            default_timezone: "Asia/Shanghai".into(),
            templates_dir: None,
            key_retire_grace: Duration::from_secs(300),
            break_glass_for: Duration::from_secs(4 * 3600),
            checkpoints: None,
            require_totp: Vec::new(),
            public_url: None,
            schedule: Default::default(),
            backups: crate::backup::Settings {
                schedule: None,
                dir: data_dir.join("backups"),
                keep: 7,
                tz: chrono_tz::Asia::Shanghai,
            },
            data_dir,
        }
    }

    /// The database: `--database-url`, else `sqlite://<data-dir>/donorcare.db`.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("donorcare.db").display()))
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.checkpoints
            .clone()
            .unwrap_or_else(|| self.keys_dir.join("audit-checkpoints.jsonl"))
    }

    pub fn key_paths(&self) -> KeyPaths {
        KeyPaths {
            identity: self
                .identity
                .clone()
                .unwrap_or_else(|| self.keys_dir.join("identity.txt")),
            recipients: self.keys_dir.join("recipients.txt"),
        }
    }
}
