//! Consent records: immutable, each bound to the exact document text signed (id and SHA-256).
//! Withdrawal is a new record naming the one it withdraws; expiry is computed. The record's
//! content hash enters the audit chain, so `audit verify` catches an edited row.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized};
use super::types::{self, Channel, Program, Role};
use super::{documents, family, from_json, new_id, page_limit, Page, Services};
use crate::audit::consent_hash;
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::schedule::plan::CHANNELS;
use crate::store::{Cancel, CancelOutreach, CancelUses, ConsentQuery, ConsentRow, ConsentScope};

pub const KINDS: &[&str] = &[
    "registry",
    "donation",
    "body_donation",
    "contact",
    "publicity",
    "research",
    "correspondence",
];
pub const METHODS: &[&str] = &["written", "verbal", "electronic"];
/// The longest witness a record names.
pub const MAX_WITNESS: usize = 100;

fn consent_kind() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(KINDS, false)
}

fn consent_person() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::required_text(1, super::MAX_ID)
}

fn consent_method() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(METHODS, false)
}

fn consent_document() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::required_text(1, super::MAX_ID)
}

fn consent_witness() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_WITNESS)
}

fn consent_signed() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::instant_or_date(false)
}

fn consent_expires() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::instant_or_date(true)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// `registry`, `donation`, `body_donation`, `contact`, `publicity`, `research` or
    /// `correspondence` (letters with a recipient or patient, relayed with identities held back).
    #[schema(schema_with = consent_kind, required = true)]
    pub kind: Option<String>,
    /// Whose data or body it concerns: `donor` or a contact id of the case.
    #[schema(schema_with = consent_person, required = true)]
    pub subject: Option<String>,
    /// Who gave it: `donor` or a contact id of the case (next of kin).
    #[schema(schema_with = consent_person, required = true)]
    pub given_by: Option<String>,
    /// `written`, `verbal` or `electronic`.
    #[schema(schema_with = consent_method, required = true)]
    pub method: Option<String>,
    /// The document version signed (`GET /api/v1/consent-documents`).
    #[schema(schema_with = consent_document, required = true)]
    pub document: Option<String>,
    #[schema(schema_with = consent_witness)]
    pub witness: Option<String>,
    /// RFC 3339 time or date.
    #[schema(schema_with = consent_signed, required = true)]
    pub signed_at: Option<String>,
    #[schema(schema_with = consent_expires)]
    pub expires_at: Option<String>,
    /// `{"organs": […]}` for donation kinds, `{"channels": […]}` for `contact`.
    #[schema(value_type = Option<Object>)]
    pub scope: Option<serde_json::Value>,
    /// A donor's recorded refusal to donate (donation kinds, given by the donor).
    pub refusal: Option<bool>,
}

/// The sealed part of a record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Sealed {
    witness: Option<String>,
    organs: Option<Vec<String>>,
    channels: Option<Vec<Channel>>,
    reason: Option<String>,
    #[serde(default)]
    refusal: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentScopeView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentView {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub subject: String,
    pub given_by: String,
    pub method: String,
    pub document: String,
    pub document_sha256: String,
    /// The exact text signed (single records only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_text: Option<String>,
    pub witness: Option<String>,
    pub scope: Option<ConsentScopeView>,
    pub signed_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `active`, `withdrawn`, `expired`, or `withdrawal` for a record that withdraws another.
    pub status: String,
    /// On a withdrawal: the record it withdraws, and why.
    pub withdraws: Option<String>,
    pub reason: Option<String>,
    /// On a withdrawn record: the withdrawal.
    pub withdrawn_by: Option<String>,
    /// The donor refused (rather than consented to) the donation.
    pub refusal: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The signed form, when one is attached (single records only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentInfo>,
}

/// What is known of a signed form without opening it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttachmentInfo {
    /// `application/pdf`, `image/jpeg` or `image/png`, as sniffed at upload.
    pub media_type: String,
    /// Bytes of the file as uploaded.
    pub size: i64,
    pub uploaded_at: DateTime<Utc>,
}

fn place(id: &str) -> Place<'_> {
    Place::new("consents", "sealed", id)
}

/// Whether a `publicity` consent about the donor is in force on the case at `now`: what lets
/// a donor's name be published (the honour roll, a memorial list, the engraver's file).
pub async fn publicity_in_force(svc: &Services, case_id: &str, now: DateTime<Utc>) -> Result<bool> {
    Ok(svc
        .store
        .list_consents(&crate::store::ConsentQuery {
            scope: crate::store::ConsentScope::All,
            case_id: Some(case_id.to_string()),
            kind: Some("publicity".into()),
            after: None,
            limit: 1000,
        })
        .await?
        .iter()
        .any(|r| r.subject == "donor" && status(r, now) == "active"))
}

pub fn status(r: &ConsentRow, now: DateTime<Utc>) -> &'static str {
    if r.withdraws.is_some() {
        "withdrawal"
    } else if r.withdrawn_by.is_some() {
        "withdrawn"
    } else if r.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

/// The channels on which `subject` (`donor` or a contact id) may be contacted now: the union of
/// their active `contact` consents' scopes (a consent without scope covers every channel, and
/// the development `file` channel with them). `except` leaves one record out.
pub async fn contact_channels(
    svc: &Services,
    key: &SecretKey,
    case_id: &str,
    subject: &str,
    except: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let rows = svc
        .store
        .list_consents(&ConsentQuery {
            scope: ConsentScope::All,
            case_id: Some(case_id.to_string()),
            kind: Some("contact".into()),
            after: None,
            limit: 1000,
        })
        .await?;
    let mut out: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| {
        r.subject == subject && status(r, now) == "active" && Some(r.id.as_str()) != except
    }) {
        let sealed: Sealed = crypto::open_json(
            key,
            place(&r.id),
            &crypto::Sealed::from_bytes(r.sealed.clone()),
        )?;
        let chans: Vec<String> = match sealed.channels {
            Some(c) => c.iter().map(|c| c.as_str().to_string()).collect(),
            None => CHANNELS.iter().map(|c| c.to_string()).collect(),
        };
        for c in chans {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// A record as the API shows it; `key` opens witness, scope, reason and refusal.
pub fn view(r: &ConsentRow, key: Option<&SecretKey>, now: DateTime<Utc>) -> Result<ConsentView> {
    let sealed: Option<Sealed> = match key {
        Some(k) => Some(crypto::open_json(
            k,
            place(&r.id),
            &crypto::Sealed::from_bytes(r.sealed.clone()),
        )?),
        None => None,
    };
    let refusal = sealed.as_ref().is_some_and(|s| s.refusal);
    let (witness, scope, reason) = match sealed {
        Some(s) => {
            let scope = (s.organs.is_some() || s.channels.is_some()).then_some(ConsentScopeView {
                organs: s.organs,
                channels: s.channels,
            });
            (s.witness, scope, s.reason)
        }
        None => (None, None, None),
    };
    Ok(ConsentView {
        id: r.id.clone(),
        case_id: r.case_id.clone(),
        kind: r.kind.clone(),
        subject: r.subject.clone(),
        given_by: r.given_by.clone(),
        method: r.method.clone(),
        document: r.document_id.clone(),
        document_sha256: r.document_sha256.clone(),
        document_text: None,
        witness,
        scope,
        signed_at: r.signed_at,
        expires_at: r.expires_at,
        status: status(r, now).into(),
        withdraws: r.withdraws.clone(),
        reason,
        withdrawn_by: r.withdrawn_by.clone(),
        refusal,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        attachment: None,
    })
}

/// Record a consent on a case.
pub async fn record(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: ConsentInput,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    record_checked(svc, actor, case_id, input, None, now).await
}

/// Record a consent with its signed form (the page's one form): the file is checked with the
/// fields (PDF, JPEG or PNG by its content, at most [`super::attachments::MAX_BYTES`]), so a bad
/// file refuses the whole form and nothing is saved; then the record, then the sealed file.
pub async fn record_with_form(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: ConsentInput,
    form: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    let consent = record_checked(svc, actor, case_id, input, form, now).await?;
    if let Some(bytes) = form {
        super::attachments::upload(svc, actor, &consent.id, bytes, now).await?;
    }
    Ok(consent)
}

/// The problem with a signed form, if any, as a field message.
pub fn form_problem(bytes: &[u8]) -> Option<String> {
    use super::attachments::{sniff, MAX_BYTES};
    if bytes.len() > MAX_BYTES {
        Some(format!("must be at most {} MB", MAX_BYTES / (1024 * 1024)))
    } else if sniff(bytes).is_none() {
        Some("must be a PDF, JPEG or PNG file".into())
    } else {
        None
    }
}

async fn record_checked(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: ConsentInput,
    form: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::RecordConsent, now).await?;
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let opened = cases::open_row(&key, &case)?;
    let contacts = svc.store.contacts_for_case(case_id).await?;
    let mut v = Validator::new();
    let kind = match input.kind.as_deref() {
        None => {
            v.add("kind", "is required");
            None
        }
        Some(k) if KINDS.contains(&k) => Some(k.to_string()),
        Some(_) => {
            v.add("kind", format!("must be one of {}", KINDS.join(", ")));
            None
        }
    };
    let mut party = |field: &str, value: Option<&str>| -> Option<String> {
        match value {
            None => {
                v.add(field, "is required: donor or a contact id of this case");
                None
            }
            Some("donor") => Some("donor".into()),
            Some(id) if contacts.iter().any(|c| c.id == id) => Some(id.to_string()),
            Some(_) => {
                v.add(field, "is neither donor nor a contact of this case");
                None
            }
        }
    };
    let subject = party("subject", input.subject.as_deref());
    let given_by = party("given_by", input.given_by.as_deref());
    let method = match input.method.as_deref() {
        None => {
            v.add("method", "is required");
            None
        }
        Some(m) if METHODS.contains(&m) => Some(m.to_string()),
        Some(_) => {
            v.add("method", format!("must be one of {}", METHODS.join(", ")));
            None
        }
    };
    let document = match input.document.as_deref() {
        None => {
            v.add("document", "is required");
            None
        }
        Some(d) => match documents::find(d) {
            Some(doc) if Some(doc.kind.as_str()) == kind.as_deref() || kind.is_none() => Some(doc),
            Some(_) => {
                v.add("document", "is a document of another kind");
                None
            }
            None => {
                v.add("document", "is not a consent document version");
                None
            }
        },
    };
    let signed_at = match input.signed_at.as_deref() {
        None => {
            v.add("signed_at", "is required");
            None
        }
        Some(s) => v.check(
            "signed_at",
            types::parse_instant_or_date(s).and_then(|t| {
                if t > now {
                    Err("is in the future".into())
                } else {
                    Ok(t)
                }
            }),
        ),
    };
    let expires_at = input
        .expires_at
        .as_deref()
        .and_then(|s| v.check("expires_at", types::parse_instant_or_date(s)));
    if let (Some(s), Some(e)) = (signed_at, expires_at) {
        if e <= s {
            v.add("expires_at", "is not after signed_at");
        }
    }
    if given_by.as_deref() == Some("donor") {
        if let (Some(s), Some(d)) = (signed_at, opened.donor.death_date) {
            if s.date_naive() > d {
                v.add("given_by", "the donor cannot sign after their death date");
            }
        }
    }
    let witness = input
        .witness
        .as_deref()
        .and_then(|w| v.check("witness", types::text(w, MAX_WITNESS)))
        .filter(|w| !w.is_empty());
    let refusal = input.refusal.unwrap_or(false);
    if refusal
        && (!matches!(kind.as_deref(), Some("donation" | "body_donation"))
            || given_by.as_deref() != Some("donor"))
    {
        v.add("refusal", "is a donor's own refusal of a donation kind");
    }
    let mut sealed = Sealed {
        witness,
        refusal,
        ..Default::default()
    };
    if let Some(scope) = input.scope {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ScopeIn {
            organs: Option<Vec<String>>,
            channels: Option<Vec<String>>,
        }
        match from_json::<ScopeIn>(scope) {
            Err(_) => v.add("scope", "must be {\"organs\": […]} or {\"channels\": […]}"),
            Ok(s) => match kind.as_deref() {
                Some("donation" | "body_donation") if s.channels.is_none() => {
                    let program = Program::parse(&case.program).unwrap_or(Program::Organ);
                    let organs = s.organs.unwrap_or_default();
                    if let Some(bad) = organs.iter().find(|o| !program.donation_kinds().contains(&o.as_str())) {
                        v.add("scope", format!("{bad:?} is not a donation kind of the {program} programme"));
                    }
                    sealed.organs = Some(organs);
                }
                Some("contact") if s.organs.is_none() => {
                    let mut channels = Vec::new();
                    for c in s.channels.unwrap_or_default() {
                        match Channel::parse(&c) {
                            Ok(ch) => channels.push(ch),
                            Err(e) => v.add("scope", format!("channel {c:?} {e}")),
                        }
                    }
                    sealed.channels = Some(channels);
                }
                _ => v.add("scope", "organs go with donation kinds, channels with contact; nothing else takes a scope"),
            },
        }
    }
    if let Some(problem) = form.and_then(form_problem) {
        v.add("attachment", problem);
    }
    v.finish()?;
    let (Some(kind), Some(subject), Some(given_by), Some(method), Some(document), Some(signed_at)) =
        (kind, subject, given_by, method, document, signed_at)
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let id = new_id();
    let mut row = ConsentRow {
        sealed: crypto::seal_json(&key, place(&id), &sealed).into_bytes(),
        id,
        case_id: case_id.to_string(),
        kind,
        subject,
        given_by,
        method,
        document_id: document.id.clone(),
        document_sha256: document.sha256.clone(),
        signed_at,
        expires_at,
        withdraws: None,
        created_by: actor.user_id.clone(),
        created_at: now,
        content_hash: Vec::new(),
        withdrawn_by: None,
    };
    store_record(svc, actor, &mut row, break_glass, None, now).await?;
    if row.kind == "contact" {
        // Messages held for want of this consent go out after all, if still in time (the gate
        // checks the channels again).
        let n = svc
            .store
            .requeue_held(case_id, &row.subject, "no_consent", now)
            .await?;
        if n > 0 {
            tracing::info!(
                case_id,
                requeued = n,
                "held messages requeued after a consent"
            );
        }
    }
    super::findings::refresh(svc, case_id, now).await;
    view(&row, Some(&key), now)
}

/// Insert a record with its audit entry carrying the content hash.
async fn store_record(
    svc: &Services,
    actor: &Actor,
    row: &mut ConsentRow,
    break_glass: bool,
    cancel: Option<&Cancel>,
    now: DateTime<Utc>,
) -> Result<u64> {
    // Store what the database will give back: PostgreSQL keeps microseconds.
    use chrono::SubsecRound;
    row.signed_at = row.signed_at.trunc_subsecs(6);
    row.expires_at = row.expires_at.map(|t| t.trunc_subsecs(6));
    row.created_at = row.created_at.trunc_subsecs(6);
    row.content_hash = consent_hash(row);
    let audit = svc
        .entry(actor, Action::RecordConsent, "consent", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass)
        .reason(if row.withdraws.is_some() {
            "withdrawal"
        } else {
            row.kind.as_str()
        })
        .content_hash(row.content_hash.clone());
    svc.store.insert_consent(row, &[audit], cancel).await
}

/// Withdraw a consent: a new record that names it. `reason` is sealed with it.
async fn withdraw_row(
    svc: &Services,
    actor: &Actor,
    original: &ConsentRow,
    key: &SecretKey,
    reason: &str,
    break_glass: bool,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    if original.withdraws.is_some() {
        return Err(Error::Conflict {
            field: None,
            message: "this record is itself a withdrawal".into(),
        });
    }
    if original.withdrawn_by.is_some() {
        return Err(Error::Conflict {
            field: None,
            message: "this consent has already been withdrawn".into(),
        });
    }
    let reason = types::required_text(reason, super::cases::MAX_REASON)
        .map_err(|e| Error::field("reason", e))?;
    let id = new_id();
    let sealed = Sealed {
        reason: Some(reason),
        ..Default::default()
    };
    let mut row = ConsentRow {
        sealed: crypto::seal_json(key, place(&id), &sealed).into_bytes(),
        id,
        case_id: original.case_id.clone(),
        kind: original.kind.clone(),
        subject: original.subject.clone(),
        given_by: original.given_by.clone(),
        method: "electronic".into(),
        document_id: original.document_id.clone(),
        document_sha256: original.document_sha256.clone(),
        signed_at: now,
        expires_at: None,
        withdraws: Some(original.id.clone()),
        created_by: actor.user_id.clone(),
        created_at: now,
        content_hash: Vec::new(),
        withdrawn_by: None,
    };
    let cancel = if matches!(row.kind.as_str(), "publicity" | "research") {
        // The planned uses this consent covered (unless another active one still does).
        let still = svc
            .store
            .list_consents(&ConsentQuery {
                scope: ConsentScope::All,
                case_id: Some(row.case_id.clone()),
                kind: Some(row.kind.clone()),
                after: None,
                limit: 1000,
            })
            .await?
            .iter()
            .any(|r| r.subject == row.subject && r.id != original.id && status(r, now) == "active");
        (!still).then(|| {
            Cancel::Uses(CancelUses {
                case_id: row.case_id.clone(),
                subject: row.subject.clone(),
                kind: row.kind.clone(),
                reason: "consent_withdrawn".into(),
            })
        })
    } else if row.kind == "contact" {
        // Messages on channels that no other active contact consent of this person covers.
        let covered = contact_channels(
            svc,
            key,
            &row.case_id,
            &row.subject,
            Some(&original.id),
            now,
        )
        .await?;
        let uncovered: Vec<String> = CHANNELS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !covered.contains(c))
            .collect();
        (!uncovered.is_empty()).then(|| {
            Cancel::Outreach(CancelOutreach {
                case_id: row.case_id.clone(),
                recipient: Some(row.subject.clone()),
                channels: Some(uncovered),
                rule: None,
                reason: "consent_withdrawn".into(),
            })
        })
    } else {
        None
    };
    let cancelled = store_record(svc, actor, &mut row, break_glass, cancel.as_ref(), now).await?;
    super::findings::refresh(svc, &row.case_id, now).await;
    tracing::info!(consent_id = %original.id, withdrawal = %row.id, actor = %actor.user_id, cancelled, "consent withdrawn");
    view(&row, Some(key), now)
}

/// Staff withdraw a consent on a case they may record consents on.
pub async fn withdraw(
    svc: &Services,
    actor: &Actor,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    let original = svc.store.consent_by_id(id).await?.ok_or(Error::NotFound)?;
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, &original.case_id, Action::RecordConsent, now).await?;
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    withdraw_row(svc, actor, &original, &key, reason, break_glass, now).await
}

/// One record with the exact text signed.
pub async fn get(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    let row = svc.store.consent_by_id(id).await?.ok_or(Error::NotFound)?;
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, &row.case_id, Action::ReadConsent, now).await?;
    let key = case_key(svc, &case).await?;
    let mut v = view(&row, key.as_ref(), now)?;
    v.document_text = documents::find(&row.document_id).map(|d| d.text.clone());
    v.attachment = svc.store.attachment(id).await?.map(|a| AttachmentInfo {
        media_type: a.media_type,
        size: a.size,
        uploaded_at: a.uploaded_at,
    });
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadConsent, "consent", now)
            .target(id)
            .case(&row.case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(v)
}

/// What a consent listing can be filtered by.
pub const STATUSES: &[&str] = &["active", "withdrawn", "expired", "withdrawal"];

fn kind_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(KINDS, true)
}

fn status_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(STATUSES, true)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsentFilter {
    pub case_id: Option<String>,
    #[param(schema_with = kind_param)]
    pub kind: Option<String>,
    /// `active`, `withdrawn`, `expired` or `withdrawal`.
    #[param(schema_with = status_param)]
    pub status: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

async fn page(
    svc: &Services,
    actor: &Actor,
    scope: ConsentScope,
    f: ConsentFilter,
    now: DateTime<Utc>,
) -> Result<Page<ConsentView>> {
    let mut v = Validator::new();
    if let Some(k) = &f.kind {
        if !KINDS.contains(&k.as_str()) {
            v.add("kind", format!("must be one of {}", KINDS.join(", ")));
        }
    }
    if let Some(s) = &f.status {
        if !STATUSES.contains(&s.as_str()) {
            v.add("status", format!("must be one of {}", STATUSES.join(", ")));
        }
    }
    let limit = page_limit(f.limit)?;
    v.finish()?;
    // Status is computed, so filter after reading; keep reading until the page is full.
    let mut items = Vec::new();
    let mut after = f.cursor.clone();
    let mut more = false;
    let mut keys: std::collections::HashMap<String, Option<SecretKey>> = Default::default();
    'outer: loop {
        let rows = svc
            .store
            .list_consents(&ConsentQuery {
                scope: scope.clone(),
                case_id: f.case_id.clone(),
                kind: f.kind.clone(),
                after: after.clone(),
                limit: limit + 1,
            })
            .await?;
        let exhausted = (rows.len() as i64) <= limit;
        for r in rows {
            after = Some(r.id.clone());
            if f.status.as_deref().is_some_and(|s| s != status(&r, now)) {
                continue;
            }
            if items.len() as i64 == limit {
                more = true;
                break 'outer;
            }
            if !keys.contains_key(&r.case_id) {
                let key = match svc.store.case_by_id(&r.case_id).await? {
                    Some(c) => case_key(svc, &c).await?,
                    None => None,
                };
                keys.insert(r.case_id.clone(), key);
            }
            let key = keys.get(&r.case_id).and_then(Option::as_ref);
            items.push(view(&r, key, now)?);
        }
        if exhausted {
            break;
        }
    }
    let entries: Vec<_> = items
        .iter()
        .map(|c: &ConsentView| {
            svc.entry(actor, Action::ReadConsent, "consent", now)
                .target(&c.id)
                .case(&c.case_id)
                .reason("list")
        })
        .collect();
    if !entries.is_empty() {
        svc.audit.record(entries).await?;
    }
    let next_cursor = if more {
        items.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// The consent register in the caller's scope: all for ethics reviewers, the region for
/// supervisors, assigned cases for coordinators.
pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: ConsentFilter,
    now: DateTime<Utc>,
) -> Result<Page<ConsentView>> {
    svc.authorize(
        actor,
        Action::ListConsents,
        Resource::System,
        svc.entry(actor, Action::ListConsents, "consent", now),
    )
    .await?;
    let scope = match actor.role {
        Role::EthicsReviewer => ConsentScope::All,
        Role::Supervisor => ConsentScope::Region(actor.region.clone().unwrap_or_default()),
        _ => ConsentScope::AssignedTo(actor.user_id.clone()),
    };
    page(svc, actor, scope, f, now).await
}

/// A family's own consents: those it gave or that concern it.
pub async fn family_list(
    svc: &Services,
    actor: &Actor,
    f: ConsentFilter,
    now: DateTime<Utc>,
) -> Result<Page<ConsentView>> {
    family::own_case(svc, actor, now).await?;
    let contact = actor.contact_id.clone().ok_or(Error::Forbidden)?;
    page(svc, actor, ConsentScope::Contact(contact), f, now).await
}

/// A family withdraws its own contact, publicity or correspondence consent.
pub async fn family_withdraw(
    svc: &Services,
    actor: &Actor,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<ConsentView> {
    let case_id = family::own_case(svc, actor, now).await?;
    let contact = actor.contact_id.as_deref().unwrap_or_default();
    let original = svc.store.consent_by_id(id).await?.ok_or(Error::NotFound)?;
    let own = original.case_id == case_id
        && (original.subject == contact || original.given_by == contact);
    if !own {
        return Err(Error::NotFound);
    }
    if !["contact", "publicity", "correspondence"].contains(&original.kind.as_str()) {
        return Err(Error::field(
            "kind",
            "families withdraw contact, publicity and correspondence consents here; for others, ask your coordinator",
        ));
    }
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    withdraw_row(svc, actor, &original, &key, reason, false, now).await
}
