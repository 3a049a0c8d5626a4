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
