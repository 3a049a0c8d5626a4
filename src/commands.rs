//! Operator commands: migrations, accounts and keyring management.

use std::io::BufRead;

use anyhow::{bail, Context};
use chrono::Utc;

use crate::config::Config;
use crate::crypto::keyring::{parse_recipient, KeyService, Opened};
use crate::crypto::SecretString;
use crate::domain::accounts::{self, NewUserInput};
use crate::error::Error;
use crate::server::open_services;
use crate::store;

/// Sign a checkpoint of the audit head if the command moved it, then close the store. The
/// server signs one every minute and at shutdown; a command signs its own, so entries it
/// appended are covered at once, even where no server runs: a tail cut off afterwards, with the
/// head made to agree, fails `audit verify`. The command's change is already committed, so a
/// checkpoint that cannot be signed is reported, not turned into a failure.
async fn sign_and_close(store: &dyn store::Store, keys: &KeyService, cfg: &Config) {
    let signed = crate::server::checkpoints(keys, cfg)
        .write(store, Utc::now())
        .await;
    store.close().await;
    if let Err(e) = signed {
        eprintln!("donorcare: warning: no audit checkpoint was signed: {e}");
    }
}

pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    let store = store::open(&cfg.database_url()).await?;
    store.migrate().await?;
    store.close().await;
    println!(
        "migrations applied ({})",
        store::redact_url(&cfg.database_url())
    );
    Ok(())
}

pub struct UserAdd {
    pub username: String,
    pub role: String,
    pub region: Option<String>,
    pub display_name: Option<String>,
}

/// `user add … --password-stdin`: the password is the first line of standard input.
pub async fn user_add(cfg: &Config, args: UserAdd) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = SecretString::new(line.trim_end_matches(['\n', '\r']).to_string());
    let (svc, _) = open_services(cfg).await?;
    let input = NewUserInput {
        email: None,
        username: Some(args.username),
        display_name: args.display_name,
        role: Some(args.role),
        region: args.region,
        password: Some(password),
    };
    let row = match accounts::new_user(&input, Utc::now()) {
        Ok(r) => r,
        Err(Error::Validation(f)) => {
            let why: Vec<String> = f.iter().map(|(k, v)| format!("{k} {v}")).collect();
            bail!("{}", why.join("; "))
        }
        Err(e) => return Err(e.into()),
    };
    let audit = crate::audit::AuditEntry::new(None, "user.create", "user", Utc::now())
        .target(&row.id)
        .reason("command_line");
    match svc.store.insert_user(&row, &[audit]).await {
        Ok(()) => {}
        Err(Error::Conflict { message, .. }) => bail!("{message}"),
        Err(e) => return Err(e.into()),
    }
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    println!("created {} ({}) with id {}", row.username, row.role, row.id);
    Ok(())
}

pub async fn keys_init(cfg: &Config) -> anyhow::Result<()> {
    let store = store::open(&cfg.database_url()).await?;
    match KeyService::start(store.clone(), cfg.key_paths(), Utc::now()).await? {
        Opened::Existing(_) => bail!("the keyring already exists; see `donorcare keys status`"),
        Opened::Created {
            service,
            identity_created,
        } => {
            if identity_created {
                println!(
                    "created identity {} — back it up on separate media",
                    service.paths().identity.display()
                );
            }
            println!(
                "created keyring version 1, sealed to {}",
                service.paths().recipients.display()
            );
            println!("server recipient: {}", service.recipient());
            sign_and_close(store.as_ref(), &service, cfg).await;
        }
    }
    Ok(())
}

pub async fn keys_status(cfg: &Config) -> anyhow::Result<()> {
    let (svc, _) = open_services(cfg).await?;
    let st = svc.keys.status().await?;
    println!("current data-key version: {}", st.current);
    println!(
        "{:<8} {:<26} {:<26} {:>10}",
        "version", "created", "retired", "case keys"
    );
    for v in &st.versions {
        println!(
            "{:<8} {:<26} {:<26} {:>10}",
            v.version,
            v.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            v.retired_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "-".into()),
            v.case_keys
        );
    }
    println!("recipients ({}):", st.recipients.len());
    for r in &st.recipients {
        let own = if *r == st.server_recipient {
            "  (this server)"
        } else {
            ""
        };
        println!("  {r}{own}");
    }
    let sealed_to: Vec<&Vec<String>> = st
        .versions
        .iter()
        .filter(|v| v.retired_at.is_none())
        .map(|v| &v.recipients)
        .collect();
    if sealed_to.iter().any(|r| **r != st.recipients) {
        println!("warning: some keyring entries are sealed to a different recipient list; run `donorcare keys add-recipient` again to re-seal");
    }
    if st.recipients.len() < 2 {
        println!("warning: no recovery recipient — if the identity is lost, every case is lost");
    }
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    Ok(())
}

pub async fn keys_rotate(cfg: &Config) -> anyhow::Result<()> {
    let (svc, _) = open_services(cfg).await?;
    let v = svc.keys.rotate(Utc::now()).await?;
    println!("added keyring version {v}; new case keys are wrapped by it");
    let total: i64 = svc
        .store
        .case_key_counts()
        .await?
        .iter()
        .filter(|c| c.key_version < v)
        .map(|c| c.count)
        .sum();
    let mut done = 0usize;
    loop {
        let n = svc.keys.rewrap_batch(1000).await?;
        if n == 0 {
            break;
        }
        done += n;
        eprintln!("re-wrapped {done} of {total} case keys");
    }
    println!(
        "re-wrapped {done} case keys; older versions are retired by the running service once \
         unused for {} s (or by `keys rotate`/`keys status` after that)",
        cfg.key_retire_grace.as_secs()
    );
    let grace = chrono::Duration::from_std(cfg.key_retire_grace)?;
    for r in svc.keys.retire_unused(Utc::now(), grace).await? {
        println!("retired version {r}");
    }
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    Ok(())
}

pub async fn keys_add_recipient(cfg: &Config, recipient: &str) -> anyhow::Result<()> {
    parse_recipient(recipient)?;
    let (svc, _) = open_services(cfg).await?;
    let mut r = svc.keys.current_recipients()?;
    if !r.iter().any(|x| x == recipient.trim()) {
        r.push(recipient.trim().to_string());
    }
    svc.keys.set_recipients(r.clone()).await?;
    println!("keyring re-sealed to {} recipients", r.len());
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    Ok(())
}

pub async fn keys_remove_recipient(cfg: &Config, recipient: &str) -> anyhow::Result<()> {
    parse_recipient(recipient)?;
    let (svc, _) = open_services(cfg).await?;
    let mut r = svc.keys.current_recipients()?;
    let before = r.len();
    r.retain(|x| x != recipient.trim());
    if r.len() == before {
        bail!("{} is not a recipient of the keyring", recipient.trim());
    }
    svc.keys.set_recipients(r.clone()).await?;
    println!("keyring re-sealed to {} recipients", r.len());
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    Ok(())
}

/// `export consents --recipient age1… --out FILE`: the consent register encrypted to a
/// reviewer's key.
pub async fn export_consents(
    cfg: &Config,
    recipient: &str,
    format: &str,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let format = crate::domain::ethics::Format::parse(format)
        .map_err(|e| anyhow::anyhow!("--format {e}"))?;
    let (svc, _) = open_services(cfg).await?;
    let bytes = crate::domain::ethics::export(&svc, None, recipient, format, Utc::now())
        .await
        .map_err(|e| match e {
            Error::Validation(f) => anyhow::anyhow!(
                "{}",
                f.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => other.into(),
        })?;
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    println!(
        "wrote {} ({} bytes, age-encrypted)",
        out.display(),
        bytes.len()
    );
    Ok(())
}

/// `audit verify`: `ok <entries> <head>` and success, or the first bad entry and failure.
pub async fn audit_verify(cfg: &Config) -> anyhow::Result<bool> {
    let (svc, _) = open_services(cfg).await?;
    let checkpoints = crate::server::checkpoints(&svc.keys, cfg);
    let v = crate::audit::verify(svc.store.as_ref(), Some(&checkpoints)).await?;
    svc.store.close().await;
    if v.ok {
        println!("ok {} {}", v.entries, v.head);
        eprintln!("checked {} signed checkpoints", v.checkpoints);
        if v.checkpoints == 0 && v.entries > 0 {
            // Every server and command that appends signs one, so none at all means the files
            // are elsewhere (another host, a copy of the database alone) or were removed.
            eprintln!(
                "donorcare: warning: no signed checkpoints in {}: entries cut from the end of \
                 the log would not be noticed (keep the checkpoint files with the identity)",
                cfg.checkpoint_path().display()
            );
        }
        Ok(true)
    } else {
        let problem = v.problem.unwrap_or_default();
        match v.first_bad {
            Some(seq) => eprintln!("donorcare: audit verify failed at entry {seq}: {problem}"),
            None => eprintln!("donorcare: audit verify failed: {problem}"),
        }
        Ok(false)
    }
}

/// `backup --out FILE [--recipient age1…]`: sealed to the keyring's recipients unless
/// recipients are given.
pub async fn backup(
    cfg: &Config,
    out: &std::path::Path,
    recipients: Vec<String>,
) -> anyhow::Result<()> {
    let (svc, _) = open_services(cfg).await?;
    let given = !recipients.is_empty();
    let to = if given {
        for r in &recipients {
            parse_recipient(r).with_context(|| format!("--recipient {r}"))?;
        }
        recipients
    } else {
        crate::backup::keyring_recipients(&svc.store.keyring_rows().await?)
    };
    if !given && to.len() < 2 {
        eprintln!(
            "donorcare: warning: the keyring has no recovery recipient, so only this server's \
             identity opens this backup (README: Keys)"
        );
    }
    let src = crate::backup::BackupSource {
        store: svc.store.clone(),
        attachments: svc.attachments_dir.clone(),
        ledger: svc.keys.paths().erasures(),
        server_recipient: svc.keys.recipient(),
    };
    let s =
        crate::backup::backup(&src, &to, out, crate::backup::progress_to_stderr("backup")).await?;
    let audit = crate::audit::AuditEntry::new(None, "backup.create", "backup", Utc::now())
        .reason(&format!("{} rows, {} signed forms", s.rows, s.files));
    svc.store.append_audit(&[audit]).await?;
    sign_and_close(svc.store.as_ref(), &svc.keys, cfg).await;
    println!(
        "wrote {} ({} bytes, {} rows, {} signed forms), sealed to {} recipients",
        out.display(),
        s.bytes,
        s.rows,
        s.files,
        to.len()
    );
    Ok(())
}

pub struct Restore {
    pub input: std::path::PathBuf,
    /// The identity that opens the backup (and its keyring): the offline recovery key.
    pub recovery: std::path::PathBuf,
    /// Other erasure ledgers to apply besides the keys dir's.
    pub erasures: Vec<std::path::PathBuf>,
}

fn dir_is_empty(dir: &std::path::Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

fn remove_sqlite_files(db: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
}

/// `restore --in FILE --identity RECOVERY`: onto an empty data dir (SQLite) or an empty
/// database (PostgreSQL). The whole file is checked before anything is written; the rows go
/// in one transaction (SQLite: into a file beside the target, renamed at the end), and the
/// signed forms into a folder renamed at the end. Then the erasures recorded after the backup
/// are made again, the keyring is sealed to this server's identity (created if absent) and the
/// recipients the backup had, less the identity of the server that made it, and a new audit
/// checkpoint is signed.
pub async fn restore(cfg: &Config, args: Restore) -> anyhow::Result<()> {
    use crate::backup;
    use crate::crypto::keyring::{KeyPaths, ServerIdentity};
    use std::sync::Arc;

    let recovery = Arc::new(ServerIdentity::load(&args.recovery)?);
    let url = cfg.database_url();
    let sqlite_file = if url.starts_with("sqlite:") {
        use std::str::FromStr;
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .with_context(|| format!("parsing {url}"))?;
        Some(opts.get_filename().to_path_buf())
    } else {
        None
    };
    let attachments = cfg.data_dir.join("attachments");
    // The target must hold nothing.
    match &sqlite_file {
        Some(file) => {
            if !dir_is_empty(&cfg.data_dir)? {
                bail!(
                    "{} is not empty: restore onto an empty data dir (--data-dir NEW)",
                    cfg.data_dir.display()
                );
            }
            if file.exists() {
                bail!(
                    "{} already exists: restore onto an empty data dir",
                    file.display()
                );
            }
        }
        None => {
            if !dir_is_empty(&attachments)? {
                bail!(
                    "{} is not empty: restore onto an empty data dir (--data-dir NEW)",
                    attachments.display()
                );
            }
            let target = store::open(&url).await?;
            let empty = target.is_empty().await;
            target.close().await;
            if !empty? {
                bail!(
                    "the database at {} is not empty: restore onto an empty database",
                    store::redact_url(&url)
                );
            }
        }
    }

    // Check the whole file before writing anything.
    let (header, contents, progress) = backup::check(
        &args.input,
        recovery.clone(),
        backup::progress_to_stderr("restore"),
    )
    .await?;
    let paths = cfg.key_paths();
    let existing_server = if paths.identity.exists() {
        Some(ServerIdentity::load(&paths.identity)?)
    } else {
        None
    };
    // Which identity opens the keyring inside: the recovery key, else this folder's server.
    let recovery_opens = recovery.opens(&contents.keyring);
    if !recovery_opens
        && !existing_server
            .as_ref()
            .is_some_and(|s| s.opens(&contents.keyring))
    {
        bail!(
            "this identity opens the backup but not the keyring inside it (the backup was sealed \
             with --recipient): restore with the recovery identity the keyring is sealed to"
        );
    }
    let mut local = backup::read_ledger(&paths.erasures())?;
    for extra in &args.erasures {
        if !extra.exists() {
            bail!("--erasures {}: no such file", extra.display());
        }
        local.extend(backup::read_ledger(extra)?);
    }
    let again = backup::erasures_to_reapply(&contents, &local);

    // Write: rows in one transaction, forms into a folder of their own.
    let created_data_dir = !cfg.data_dir.exists();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let staged_forms = cfg.data_dir.join("attachments.restoring");
    let _ = std::fs::remove_dir_all(&staged_forms);
    std::fs::create_dir_all(&staged_forms)?;
    let (load_url, staged_db) = match &sqlite_file {
        Some(file) => {
            let mut name = file.as_os_str().to_owned();
            name.push(".restoring");
            let staged = std::path::PathBuf::from(name);
            remove_sqlite_files(&staged);
            (format!("sqlite://{}", staged.display()), Some(staged))
        }
        None => (url.clone(), None),
    };
    let cleanup = |staged_db: &Option<std::path::PathBuf>| {
        let _ = std::fs::remove_dir_all(&staged_forms);
        if let Some(s) = staged_db {
            remove_sqlite_files(s);
        }
        if created_data_dir && dir_is_empty(&cfg.data_dir).unwrap_or(false) {
            let _ = std::fs::remove_dir(&cfg.data_dir);
        }
    };
    let target = match store::open(&load_url).await {
        Ok(t) => t,
        Err(e) => {
            cleanup(&staged_db);
            return Err(e);
        }
    };
    let written = async {
        target.migrate().await?;
        let (loaded, progress) = backup::load(
            &args.input,
            recovery.clone(),
            target.clone(),
            &staged_forms,
            progress,
        )
        .await?;
        if loaded.audit_seq != contents.audit_seq
            || hex::encode(&loaded.audit_head) != contents.audit_head
        {
            bail!("the restored audit log does not end where the backup says it does");
        }
        anyhow::Ok((loaded, progress))
    }
    .await;
    let (loaded, mut progress) = match written {
        Ok(w) => w,
        Err(e) => {
            target.close().await;
            cleanup(&staged_db);
            return Err(e);
        }
    };

    // Erasures recorded after the backup are made again; the local ledger learns every
    // erasure the backup and the other ledgers knew.
    let now = Utc::now();
    let mut made_again = 0;
    for e in &again {
        let audit = crate::audit::AuditEntry::new(None, "case.erase", "case", now)
            .target(&e.case_id)
            .case(&e.case_id)
            .reason("restore: erased after the backup was made");
        if target
            .erase_again(&e.case_id, e.request_id.as_deref(), now, &[audit])
            .await?
        {
            target
                .cancel_case_schedule(&e.case_id, "case_erased", now)
                .await?;
            let _ = std::fs::remove_dir_all(staged_forms.join(&e.case_id));
            made_again += 1;
        }
    }
    let known: std::collections::BTreeSet<String> = backup::read_ledger(&paths.erasures())?
        .into_iter()
        .map(|e| e.case_id)
        .collect();
    let mut learnt = std::collections::BTreeSet::new();
    for e in contents.erasures.iter().chain(&local) {
        if !known.contains(&e.case_id) && learnt.insert(e.case_id.clone()) {
            backup::record_erasure(&paths.erasures(), e)?;
        }
    }

    // This server's identity, and the keyring sealed to it.
    let (server, identity_created) = match existing_server {
        Some(s) => (s, false),
        None => (ServerIdentity::create(&paths.identity, now)?, true),
    };
    let server_recipient = server.recipient();
    let mut recipients = vec![server_recipient.clone()];
    let mut dropped = None;
    for r in backup::keyring_recipients(&contents.keyring) {
        if r == header.server_recipient && r != server_recipient && r != recovery.recipient() {
            dropped = Some(r);
            continue;
        }
        if !recipients.contains(&r) {
            recipients.push(r);
        }
    }
    if let Ok(old) = std::fs::read_to_string(&paths.recipients) {
        let aside = paths.recipients.with_extension("txt.before-restore");
        std::fs::write(&aside, old).with_context(|| format!("writing {}", aside.display()))?;
    }
    let key_paths = KeyPaths {
        identity: paths.identity.clone(),
        recipients: paths.recipients.clone(),
    };
    let id = if recovery_opens {
        let id = ServerIdentity::load(&args.recovery)?;
        if !recipients.contains(&id.recipient()) {
            recipients.push(id.recipient());
        }
        id
    } else {
        ServerIdentity::load(&paths.identity)?
    };
    let sealer =
        crate::crypto::keyring::KeyService::open(target.clone(), key_paths.clone(), id).await?;
    sealer.set_recipients(recipients.clone()).await?;
    let audit =
        crate::audit::AuditEntry::new(None, "backup.restore", "backup", now).reason(&format!(
            "backup of {}; {made_again} erasures made again",
            header.created_at.to_rfc3339()
        ));
    target.append_audit(&[audit]).await?;
    target.checkpoint().await?;
    target.close().await;

    // Into place.
    if let (Some(file), Some(staged)) = (&sqlite_file, &staged_db) {
        std::fs::rename(staged, file)
            .with_context(|| format!("moving the restored database to {}", file.display()))?;
        remove_sqlite_files(staged);
    }
    std::fs::rename(&staged_forms, &attachments)
        .with_context(|| format!("moving the signed forms to {}", attachments.display()))?;

    // The server opens it, signs a new checkpoint, and the chain verifies.
    let store = store::open(&url).await?;
    let keys = crate::crypto::keyring::KeyService::open(store.clone(), key_paths, server).await?;
    let cp_path = cfg.checkpoint_path();
    if cp_path.exists() {
        let mut aside = cp_path.as_os_str().to_owned();
        aside.push(format!(".before-restore-{}", now.format("%Y%m%dT%H%M%SZ")));
        std::fs::rename(&cp_path, std::path::PathBuf::from(&aside))
            .with_context(|| format!("moving {} aside", cp_path.display()))?;
    }
    let checkpoints = crate::server::checkpoints(&keys, cfg);
    checkpoints.write(store.as_ref(), Utc::now()).await?;
    let v = crate::audit::verify(store.as_ref(), Some(&checkpoints)).await?;
    store.close().await;
    progress("done");
    println!(
        "restored {} rows and {} signed forms from the backup of {} ({}) into {}",
        loaded.rows,
        contents.files,
        header.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        header.backend,
        store::redact_url(&url)
    );
    println!("made again {made_again} erasures recorded after the backup");
    if !contents.missing_files.is_empty() {
        println!(
            "{} signed forms were not in the backup (their case was erased while it ran)",
            contents.missing_files.len()
        );
    }
    println!(
        "server identity {} ({}); keyring sealed to {} recipients{}",
        paths.identity.display(),
        if identity_created {
            "created: back it up on separate media"
        } else {
            "kept"
        },
        recipients.len(),
        dropped
            .map(|d| format!(", without the old server's key {d}"))
            .unwrap_or_default()
    );
    println!("sign-in sessions and API tokens are not in a backup: everyone signs in again");
    if !v.ok {
        bail!(
            "the restored audit chain does not verify: {}",
            v.problem.unwrap_or_default()
        );
    }
    println!("audit verify: ok {} {}", v.entries, v.head);
    Ok(())
}
