//! Signed consent forms (PDF, JPEG, PNG): the type is sniffed from the content, the file is
//! sealed under the case key (STREAM) and kept outside the database, every download is audited,
//! and erasure removes the files along with the key.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::cases::{self, case_key, Authorized};
use super::Services;
use crate::crypto::{stream, Place};
use crate::error::{Error, Result};
use crate::policy::{Action, Actor};
use crate::store::AttachmentRow;

/// Largest signed form accepted.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

/// The media type of a file, from its first bytes; `None` for anything but PDF, JPEG and PNG.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else {
        None
    }
}

fn place(consent_id: &str) -> Place<'_> {
    Place::new("consent_attachments", "file", consent_id)
}

fn path(svc: &Services, case_id: &str, consent_id: &str) -> std::path::PathBuf {
    svc.attachments_dir
        .join(case_id)
        .join(format!("{consent_id}.dcs"))
}

/// Attach the signed form of a consent record (once).
pub async fn upload(
    svc: &Services,
    actor: &Actor,
    consent_id: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<AttachmentRow> {
    let consent = svc
        .store
        .consent_by_id(consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, &consent.case_id, Action::RecordConsent, now).await?;
    if bytes.len() > MAX_BYTES {
        return Err(Error::PayloadTooLarge);
    }
    let media_type =
        sniff(bytes).ok_or_else(|| Error::field("file", "must be a PDF, JPEG or PNG file"))?;
    if consent.withdraws.is_some() {
        return Err(Error::field("consent", "a withdrawal has no signed form"));
    }
    if svc.store.attachment(consent_id).await?.is_some() {
        return Err(Error::conflict(
            "attachment",
            "this consent already has its signed form",
        ));
    }
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let sealed = stream::seal_file(&key, place(consent_id), bytes);
    let target = path(svc, &consent.case_id, consent_id);
    let dir = target
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let tmp = target.with_extension("tmp");
    let sealed_len = sealed.len();
    let sealed_sha256 = hex::encode(Sha256::digest(&sealed));
    tokio::task::spawn_blocking({
        let (dir, tmp, target) = (dir.clone(), tmp.clone(), target.clone());
        move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("writing a signed form: {e}"))?
    .map_err(|e| anyhow::anyhow!("writing a signed form: {e}"))?;
    let row = AttachmentRow {
        consent_id: consent_id.to_string(),
        case_id: consent.case_id.clone(),
        media_type: media_type.to_string(),
        size: bytes.len() as i64,
        sealed_sha256,
        uploaded_by: actor.user_id.clone(),
        uploaded_at: now,
    };
    let audit = svc
        .entry(actor, Action::RecordConsent, "consent_attachment", now)
        .target(consent_id)
        .case(&consent.case_id)
        .break_glass(break_glass)
        .reason("signed_form");
    if let Err(e) = svc.store.insert_attachment(&row, &[audit]).await {
        let _ = std::fs::remove_file(&target);
        return Err(e);
    }
    tracing::info!(consent_id = %consent_id, bytes = sealed_len, "signed form stored");
    super::findings::refresh(svc, &consent.case_id, now).await;
    Ok(row)
}

/// The signed form of a consent record, decrypted; the download is audited.
pub async fn download(
    svc: &Services,
    actor: &Actor,
    consent_id: &str,
    now: DateTime<Utc>,
) -> Result<(String, Vec<u8>)> {
    let consent = svc
        .store
        .consent_by_id(consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, &consent.case_id, Action::ReadConsent, now).await?;
    let meta = svc
        .store
        .attachment(consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    let file = path(svc, &consent.case_id, consent_id);
    let sealed = tokio::fs::read(&file)
        .await
        .map_err(|e| anyhow::anyhow!("reading the signed form of {consent_id}: {e}"))?;
    if hex::encode(Sha256::digest(&sealed)) != meta.sealed_sha256 {
        return Err(
            anyhow::anyhow!("the signed form of {consent_id} does not match its record").into(),
        );
    }
    let plain = stream::open_file(&key, place(consent_id), &sealed)?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadConsent, "consent_attachment", now)
            .target(consent_id)
            .case(&consent.case_id)
            .break_glass(break_glass)
            .reason("download")])
        .await?;
    Ok((meta.media_type, plain))
}

/// Remove the sealed files of an erased case (the key is already gone).
pub async fn remove_case_files(svc: &Services, case_id: &str) {
    let dir = svc.attachments_dir.join(case_id);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(case_id = %case_id, error = %e, "removing an erased case's signed forms");
        }
    }
}
