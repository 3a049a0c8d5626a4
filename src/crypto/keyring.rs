//! The keyring: the server's age identity, the recipients the keyring is sealed to, the
//! versioned data-encryption keys and the blind-index key.
//!
//! Keyring entries are stored in the database as age ciphertexts to every recipient in
//! `keys/recipients.txt` (the server's own key and offline recovery keys). They are opened once
//! at start with the identity and then held in memory in zeroizing types. Case keys are wrapped
//! by the newest data key; after `keys rotate`, [`KeyService::rewrap_batch`] moves old case keys
//! to the new version and [`KeyService::retire_unused`] destroys a version nothing uses.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use age::secrecy::ExposeSecret;
use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::{open, seal, CryptoError, Place, SecretKey};
use crate::audit::AuditEntry;
use crate::store::{KeyringRow, Store, WrappedCaseKey};

/// Where the identity and the recipients list live.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    pub identity: PathBuf,
    pub recipients: PathBuf,
}

impl KeyPaths {
    /// The erasure ledger, beside the recipients list: every approved erasure, so that a
    /// restore of an older backup erases again what was erased after it (`backup.rs`).
    pub fn erasures(&self) -> PathBuf {
        self.recipients.with_file_name("erasures.jsonl")
    }
}

/// The server's age identity. Never printed.
pub struct ServerIdentity(age::x25519::Identity);

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerIdentity({})", self.recipient())
    }
}

impl ServerIdentity {
    pub fn recipient(&self) -> String {
        self.0.to_public().to_string()
    }

    /// The age identity, to open files sealed to it (backups).
    pub fn age(&self) -> &age::x25519::Identity {
        &self.0
    }

    /// Whether this identity opens every live entry of these keyring rows.
    pub fn opens(&self, rows: &[KeyringRow]) -> bool {
        Keyring::open_rows(self, rows).is_ok()
    }

    /// Read the identity file. A file that is itself age-encrypted (`age -p`) is opened with the
    /// passphrase in `DONORCARE_IDENTITY_PASSPHRASE`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = Zeroizing::new(match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("{}: identity file not found", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
        });
        let text = if bytes.starts_with(b"age-encryption.org/v1") {
            let pass = std::env::var("DONORCARE_IDENTITY_PASSPHRASE").map_err(|_| {
                anyhow!(
                    "{}: identity is passphrase-protected; set DONORCARE_IDENTITY_PASSPHRASE",
                    path.display()
                )
            })?;
            let id = age::scrypt::Identity::new(age::secrecy::SecretString::from(pass));
            let dec = age::Decryptor::new_buffered(&bytes[..])
                .map_err(|e| anyhow!("{}: not a valid age file: {e}", path.display()))?;
            let mut reader = dec
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|_| anyhow!("{}: wrong passphrase for the identity", path.display()))?;
            let mut out = Zeroizing::new(Vec::new());
            reader.read_to_end(&mut out)?;
            out
        } else {
            bytes
        };
        let text = std::str::from_utf8(&text)
            .map_err(|_| anyhow!("{}: not a text age identity file", path.display()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| anyhow!("{}: no AGE-SECRET-KEY-1 line in the file", path.display()))?;
        let id = age::x25519::Identity::from_str(line)
            .map_err(|e| anyhow!("{}: invalid age identity ({e})", path.display()))?;
        Ok(ServerIdentity(id))
    }

    /// Create a new identity file with mode 0600; refuses to overwrite one.
    pub fn create(path: &Path, now: DateTime<Utc>) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        let id = age::x25519::Identity::generate();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(path)
            .with_context(|| format!("{}: cannot create identity file", path.display()))?;
        let body = Zeroizing::new(format!(
            "# donorcare server identity, created {}\n# public key: {}\n# Back this file up on separate media; without it the keyring cannot be opened.\n{}\n",
            now.to_rfc3339(),
            id.to_public(),
            id.to_string().expose_secret()
        ));
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        Ok(ServerIdentity(id))
    }
}

/// Parse an age X25519 recipient (`age1…`).
pub fn parse_recipient(s: &str) -> anyhow::Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(s.trim())
        .map_err(|e| anyhow!("not an age X25519 recipient ({e})"))
}

/// Read `keys/recipients.txt`: one `age1…` per line, `#` comments.
pub fn read_recipients(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_recipient(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        out.push(line.to_string());
    }
    Ok(out)
}

/// Write the recipients list atomically (temporary file, then rename).
pub fn write_recipients(path: &Path, recipients: &[String]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut body = String::from(
        "# age recipients the donorcare keyring is sealed to: the server's own key and offline\n\
         # recovery keys. Change with `donorcare keys add-recipient` / `remove-recipient`.\n",
    );
    for r in recipients {
        body.push_str(r);
        body.push('\n');
    }
    let tmp = path.with_extension("txt.tmp");
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn seal_to(recipients: &[String], secret: &[u8]) -> anyhow::Result<Vec<u8>> {
    let parsed = recipients
        .iter()
        .map(|r| parse_recipient(r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let enc = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| anyhow!("age: {e}"))?;
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out)?;
    w.write_all(secret)?;
    w.finish()?;
    Ok(out)
}

fn unseal(identity: &ServerIdentity, sealed: &[u8]) -> Result<SecretKey, ()> {
    let dec = age::Decryptor::new_buffered(sealed).map_err(|_| ())?;
    let mut reader = dec
        .decrypt(std::iter::once(&identity.0 as &dyn age::Identity))
        .map_err(|_| ())?;
    let mut out = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut out).map_err(|_| ())?;
    SecretKey::from_slice(&out).map_err(|_| ())
}

/// The opened keyring: every live data key by version, the newest version, the index key.
pub struct Keyring {
    pub index: SecretKey,
    data: BTreeMap<i64, SecretKey>,
    pub current: i64,
}

impl Keyring {
    fn open_rows(identity: &ServerIdentity, rows: &[KeyringRow]) -> anyhow::Result<Self> {
        let mut index = None;
        let mut data = BTreeMap::new();
        for r in rows {
            let Some(sealed) = &r.sealed else { continue };
            let key = unseal(identity, sealed).map_err(|_| {
                anyhow!(
                    "this identity ({}) cannot open the keyring: it is not one of the recipients \
                     the keyring was sealed to",
                    identity.recipient()
                )
            })?;
            match r.purpose.as_str() {
                "index" => index = Some(key),
                _ => {
                    data.insert(r.version, key);
                }
            }
        }
        let index = index.ok_or_else(|| anyhow!("the keyring has no blind-index key"))?;
        let current = *data
            .keys()
            .next_back()
            .ok_or_else(|| anyhow!("the keyring has no live data key"))?;
        Ok(Keyring {
            index,
            data,
            current,
        })
    }

    fn data_key(&self, version: i64) -> Option<&SecretKey> {
        self.data.get(&version)
    }
}

/// What a case key looks like stored: the version that wraps it and the wrapped bytes.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    pub version: i64,
    pub bytes: Vec<u8>,
}

fn case_key_place(case_id: &str) -> Place<'_> {
    Place::new("case_keys", "wrapped", case_id)
}

/// Status of one data-key version for `keys status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionStatus {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub case_keys: i64,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    pub current: i64,
    pub versions: Vec<VersionStatus>,
    pub recipients: Vec<String>,
    pub server_recipient: String,
}

/// The keyring service shared by the web server, the background re-wrap job and the commands.
pub struct KeyService {
    identity: ServerIdentity,
    ring: RwLock<Arc<Keyring>>,
    store: Arc<dyn Store>,
    paths: KeyPaths,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").finish_non_exhaustive()
    }
}

/// Outcome of opening the keys at start-up.
pub enum Opened {
    Existing(KeyService),
    /// A new keyring was made; `identity_created` says whether a new identity file was too.
    Created {
        service: KeyService,
        identity_created: bool,
    },
}

impl KeyService {
    /// Open the keyring, or create one (and a development identity) if the database has none,
    /// applying migrations on the way. With a keyring present, a missing or wrong identity is an
    /// error raised before anything is written, migrations included.
    pub async fn start(
        store: Arc<dyn Store>,
        paths: KeyPaths,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Opened> {
        if store.keyring_exists().await? {
            let identity = ServerIdentity::load(&paths.identity).map_err(|e| {
                anyhow!(
                    "{e:#} — the database's keyring is sealed to this identity; restore the file \
                     from its backup or point --identity at it (README: Keys)"
                )
            })?;
            let service = Self::open(store.clone(), paths, identity).await?;
            store.migrate().await?;
            return Ok(Opened::Existing(service));
        }
        store.migrate().await?;
        let (identity, identity_created) = if paths.identity.exists() {
            (ServerIdentity::load(&paths.identity)?, false)
        } else {
            (ServerIdentity::create(&paths.identity, now)?, true)
        };
        let service = Self::init(store, paths, identity, now).await?;
        Ok(Opened::Created {
            service,
            identity_created,
        })
    }

    /// Open an existing keyring with an identity.
    pub async fn open(
        store: Arc<dyn Store>,
        paths: KeyPaths,
        identity: ServerIdentity,
    ) -> anyhow::Result<Self> {
        let rows = store.keyring_rows().await.map_err(anyhow::Error::from)?;
        let ring = Keyring::open_rows(&identity, &rows)
            .with_context(|| format!("{}", paths.identity.display()))?;
        Ok(KeyService {
            identity,
            ring: RwLock::new(Arc::new(ring)),
            store,
            paths,
        })
    }

    /// Create the keyring: an index key and data key version 1, sealed to the recipients.
    async fn init(
        store: Arc<dyn Store>,
        paths: KeyPaths,
        identity: ServerIdentity,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let mut recipients = read_recipients(&paths.recipients)?;
        let own = identity.recipient();
        if !recipients.contains(&own) {
            recipients.insert(0, own);
            write_recipients(&paths.recipients, &recipients)?;
        }
        let index = SecretKey::generate();
        let data = SecretKey::generate();
        let joined = recipients.join("\n");
        let rows = vec![
            KeyringRow {
                purpose: "index".into(),
                version: 1,
                created_at: now,
                retired_at: None,
                sealed: Some(seal_to(&recipients, index.expose())?),
                recipients: joined.clone(),
            },
            KeyringRow {
                purpose: "data".into(),
                version: 1,
                created_at: now,
                retired_at: None,
                sealed: Some(seal_to(&recipients, data.expose())?),
                recipients: joined,
            },
        ];
        let audit = AuditEntry::new(None, "keys.init", "keyring", now).target("1");
        match store.insert_keyring_rows(&rows, &[audit]).await {
            Ok(()) => {}
            // Another instance created the keyring first: use that one.
            Err(crate::error::Error::Conflict { .. }) => {
                return Self::open(store, paths, identity).await;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("storing the new keyring")),
        }
        Self::open(store, paths, identity).await
    }

    pub fn recipient(&self) -> String {
        self.identity.recipient()
    }

    /// A 256-bit key derived from the server identity for `label` (e.g. the audit checkpoint
    /// signing key): it lives wherever the identity lives and never in the database.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let secret = self.identity.0.to_string();
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update(secret.expose_secret().as_bytes());
        h.finalize().into()
    }

    pub fn paths(&self) -> &KeyPaths {
        &self.paths
    }

    pub fn ring(&self) -> Arc<Keyring> {
        self.ring
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Re-read the keyring from the database (after a rotation by another process).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let rows = self.store.keyring_rows().await?;
        let ring = Keyring::open_rows(&self.identity, &rows)?;
        match self.ring.write() {
            Ok(mut g) => *g = Arc::new(ring),
            Err(p) => *p.into_inner() = Arc::new(ring),
        }
        Ok(())
    }

    /// A fresh case key, wrapped by the newest data key.
    pub fn new_case_key(&self, case_id: &str) -> (SecretKey, WrappedKey) {
        let ring = self.ring();
        let key = SecretKey::generate();
        let kek = ring
            .data_key(ring.current)
            .expect("the current version is always in the ring");
        let wrapped = seal(kek, case_key_place(case_id), key.expose());
        (
            key,
            WrappedKey {
                version: ring.current,
                bytes: wrapped.into_bytes(),
            },
        )
    }

    /// Unwrap a case key. An unknown version means another process rotated: reload once.
    pub async fn unwrap_case_key(
        &self,
        case_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<SecretKey, crate::error::Error> {
        if self.ring().data_key(wrapped.version).is_none() {
            self.reload().await?;
        }
        self.unwrap_with(&self.ring(), case_id, wrapped)
    }

    /// Unwrap with a ring snapshot, without reloading (for bulk reads).
    pub fn unwrap_with(
        &self,
        ring: &Keyring,
        case_id: &str,
        wrapped: &WrappedKey,
    ) -> Result<SecretKey, crate::error::Error> {
        let kek = ring
            .data_key(wrapped.version)
            .ok_or(CryptoError::UnknownVersion(wrapped.version))?;
        let plain = open(
            kek,
            case_key_place(case_id),
            &super::Sealed::from_bytes(wrapped.bytes.clone()),
        )?;
        Ok(SecretKey::from_slice(&plain)?)
    }

    /// Add a new data-key version sealed to the current recipients; returns it.
    pub async fn rotate(&self, now: DateTime<Utc>) -> anyhow::Result<i64> {
        self.rotate_by(None, now).await
    }

    /// [`KeyService::rotate`], recorded as `actor`'s (an admin's, from the keys page).
    pub async fn rotate_by(
        &self,
        actor: Option<&crate::policy::Actor>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        self.reload().await?;
        let recipients = self.current_recipients()?;
        let next = self.ring().current + 1;
        let key = SecretKey::generate();
        let row = KeyringRow {
            purpose: "data".into(),
            version: next,
            created_at: now,
            retired_at: None,
            sealed: Some(seal_to(&recipients, key.expose())?),
            recipients: recipients.join("\n"),
        };
        self.store
            .insert_keyring_rows(
                &[row],
                &[AuditEntry::new(actor, "keys.rotate", "keyring", now).target(&next.to_string())],
            )
            .await
            .context("adding the new keyring version (is another rotation running?)")?;
        self.reload().await?;
        Ok(next)
    }

    /// Re-wrap up to `limit` case keys that an older version wraps; returns how many moved.
    pub async fn rewrap_batch(&self, limit: i64) -> anyhow::Result<usize> {
        let ring = self.ring();
        let old = self.store.case_keys_not_at(ring.current, limit).await?;
        let mut moved = 0;
        for k in old {
            let wrapped = WrappedKey {
                version: k.key_version,
                bytes: k.wrapped.clone(),
            };
            let key = self.unwrap_case_key(&k.case_id, &wrapped).await?;
            let kek = ring
                .data_key(ring.current)
                .expect("the current version is always in the ring");
            let new = WrappedCaseKey {
                case_id: k.case_id.clone(),
                key_version: ring.current,
                wrapped: seal(kek, case_key_place(&k.case_id), key.expose()).into_bytes(),
            };
            if self.store.rewrap_case_key(&new, k.key_version).await? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Retire data-key versions that no case key uses and that were superseded at least
    /// `grace` ago (so no instance still wraps new keys with them). Returns the retired ones.
    pub async fn retire_unused(
        &self,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> anyhow::Result<Vec<i64>> {
        let rows = self.store.keyring_rows().await?;
        let data: Vec<&KeyringRow> = rows.iter().filter(|r| r.purpose == "data").collect();
        let mut retired = Vec::new();
        for (i, r) in data.iter().enumerate() {
            if r.retired_at.is_some() {
                continue;
            }
            let Some(next) = data.get(i + 1) else { break };
            if now - next.created_at < grace {
                continue;
            }
            let audit =
                AuditEntry::new(None, "keys.retire", "keyring", now).target(&r.version.to_string());
            if self
                .store
                .retire_key_version(r.version, now, &[audit])
                .await?
            {
                retired.push(r.version);
            }
        }
        if !retired.is_empty() {
            self.reload().await?;
        }
        Ok(retired)
    }

    /// The recipients list, always including the server's own key.
    pub fn current_recipients(&self) -> anyhow::Result<Vec<String>> {
        let mut r = read_recipients(&self.paths.recipients)?;
        let own = self.identity.recipient();
        if !r.contains(&own) {
            r.insert(0, own);
        }
        Ok(r)
    }

    /// Re-seal every live keyring entry to `recipients` and save the list.
    pub async fn set_recipients(&self, recipients: Vec<String>) -> anyhow::Result<()> {
        for r in &recipients {
            parse_recipient(r).with_context(|| r.clone())?;
        }
        if !recipients.contains(&self.identity.recipient()) {
            bail!("the server's own recipient cannot be removed: the server could not open its keyring");
        }
        let rows = self.store.keyring_rows().await?;
        let mut resealed = Vec::new();
        for r in rows.into_iter().filter(|r| r.sealed.is_some()) {
            let key = unseal(&self.identity, r.sealed.as_deref().unwrap_or_default())
                .map_err(|_| anyhow!("cannot open keyring entry {} v{}", r.purpose, r.version))?;
            resealed.push(KeyringRow {
                sealed: Some(seal_to(&recipients, key.expose())?),
                recipients: recipients.join("\n"),
                ..r
            });
        }
        write_recipients(&self.paths.recipients, &recipients)?;
        let audit = AuditEntry::new(None, "keys.recipients", "keyring", Utc::now())
            .reason(&format!("{} recipients", recipients.len()));
        self.store.reseal_keyring(&resealed, &[audit]).await?;
        Ok(())
    }

    pub async fn status(&self) -> anyhow::Result<KeyStatus> {
        let rows = self.store.keyring_rows().await?;
        let counts = self.store.case_key_counts().await?;
        let versions = rows
            .iter()
            .filter(|r| r.purpose == "data")
            .map(|r| VersionStatus {
                version: r.version,
                created_at: r.created_at,
                retired_at: r.retired_at,
                case_keys: counts
                    .iter()
                    .find(|c| c.key_version == r.version)
                    .map_or(0, |c| c.count),
                recipients: r.recipients.lines().map(str::to_string).collect(),
            })
            .collect();
        Ok(KeyStatus {
            current: self.ring().current,
            versions,
            recipients: self.current_recipients()?,
            server_recipient: self.identity.recipient(),
        })
    }
}
