//! Contacts: family members and next of kin of a case. Their identity and contact details
//! (phone, email, address, WeChat ID) are sealed under the case key; name and phone are
//! blind-index terms of the case.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key};
use super::types::{self, Channel, Language, Relationship};
use super::{from_json, merge_patch, new_id, Services};
use crate::crypto::{self, blind_term, Place, SecretKey, TermKind};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor};
use crate::store::{ContactRow, SearchTerms};

fn contact_name() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, cases::MAX_NAME)
}

fn contact_relationship() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(
        &super::schema::names(Relationship::ALL, Relationship::as_str),
        true,
    )
}

fn contact_phone() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::phone(true)
}

fn contact_email() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::email(true)
}

fn contact_wechat_id() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::wechat_id(true)
}

fn contact_address() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(cases::MAX_ADDRESS)
}

fn contact_language() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Language::ALL, Language::as_str), true)
}

fn contact_timezone() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::timezone(true)
}

fn contact_channel() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Channel::ALL, Channel::as_str), true)
}

fn contact_date() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(true)
}

/// What adding a contact needs beyond a change to one (see `web::openapi`), as [`validate`]
/// requires it.
pub const ON_CREATE: &[(&str, &str, &[&str], &[&str])] = &[(
    "ContactInput",
    "NewContactInput",
    &["full_name", "relationship", "preferred_channel"],
    &[],
)];

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[schema(schema_with = contact_name)]
    pub full_name: Option<String>,
    /// `spouse`, `parent`, `child`, `sibling` or `other`.
    #[schema(schema_with = contact_relationship)]
    pub relationship: Option<String>,
    #[schema(schema_with = contact_phone)]
    pub phone: Option<String>,
    #[schema(schema_with = contact_email)]
    pub email: Option<String>,
    #[schema(schema_with = contact_address)]
    pub address: Option<String>,
    /// The WeChat ID (微信号) or the OpenID the WeChat gateway knows them by.
    #[schema(schema_with = contact_wechat_id)]
    pub wechat_id: Option<String>,
    /// `zh-CN` (default) or `en`.
    #[schema(schema_with = contact_language)]
    pub language: Option<String>,
    /// IANA zone; default `DONORCARE_TIMEZONE` (Asia/Shanghai).
    #[schema(schema_with = contact_timezone)]
    pub timezone: Option<String>,
    /// `email`, `sms`, `letter`, `portal` or `wechat`.
    #[schema(schema_with = contact_channel)]
    pub preferred_channel: Option<String>,
    pub opted_out: Option<bool>,
    /// No outreach before this date (YYYY-MM-DD).
    #[schema(schema_with = contact_date)]
    pub do_not_contact_until: Option<String>,
    /// A child under 18 (their consent is not needed for a deceased donation).
    pub minor: Option<bool>,
    /// The relative has died (e.g. a parent), so no consent of theirs is expected.
    pub deceased: Option<bool>,
}

/// The sealed part of a contact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Details {
    full_name: String,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wechat_id: Option<String>,
    #[serde(default)]
    minor: bool,
    #[serde(default)]
    deceased: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactView {
    pub id: String,
    pub case_id: String,
    pub full_name: String,
    pub relationship: Relationship,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub wechat_id: Option<String>,
    pub language: Language,
    pub timezone: String,
    pub preferred_channel: Channel,
    pub opted_out: bool,
    pub do_not_contact_until: Option<NaiveDate>,
    pub minor: bool,
    pub deceased: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

struct Valid {
    details: Details,
    relationship: Relationship,
    language: Language,
    timezone: String,
    channel: Channel,
    opted_out: bool,
    do_not_contact_until: Option<NaiveDate>,
}

fn validate(input: &ContactInput, default_tz: &str) -> Result<Valid> {
    let mut v = Validator::new();
    let full_name = match &input.full_name {
        None => {
            v.add("full_name", "is required");
            None
        }
        Some(n) => v.check("full_name", types::required_text(n, cases::MAX_NAME)),
    };
    let relationship = match &input.relationship {
        None => {
            v.add("relationship", "is required");
            None
        }
        Some(r) => v.check("relationship", Relationship::parse(r)),
    };
    let phone = input
        .phone
        .as_deref()
        .and_then(|s| v.check("phone", types::phone(s)));
    let email = input
        .email
        .as_deref()
        .and_then(|s| v.check("email", types::email(s)));
    let address = input
        .address
        .as_deref()
        .and_then(|s| v.check("address", types::text(s, cases::MAX_ADDRESS)))
        .filter(|s| !s.is_empty());
    let wechat_id = input
        .wechat_id
        .as_deref()
        .and_then(|s| v.check("wechat_id", types::wechat_id(s)));
    let language = v.check(
        "language",
        Language::parse(input.language.as_deref().unwrap_or("zh-CN")),
    );
    let timezone = v.check(
        "timezone",
        types::timezone(input.timezone.as_deref().unwrap_or(default_tz)),
    );
    let channel = match &input.preferred_channel {
        None => {
            v.add("preferred_channel", "is required");
            None
        }
        Some(c) => v.check("preferred_channel", Channel::parse(c)),
    };
    match channel {
        Some(Channel::Email) if email.is_none() && !v.has("email") => {
            v.add("email", "is required when preferred_channel is email")
        }
        Some(Channel::Sms) if phone.is_none() && !v.has("phone") => {
            v.add("phone", "is required when preferred_channel is sms")
        }
        Some(Channel::Letter) if address.is_none() && !v.has("address") => {
            v.add("address", "is required when preferred_channel is letter")
        }
        Some(Channel::Wechat) if wechat_id.is_none() && !v.has("wechat_id") => {
            v.add("wechat_id", "is required when preferred_channel is wechat")
        }
        _ => {}
    }
    let do_not_contact_until = input
        .do_not_contact_until
        .as_deref()
        .and_then(|s| v.check("do_not_contact_until", types::parse_date(s)));
    v.finish()?;
    let (Some(full_name), Some(relationship), Some(language), Some(timezone), Some(channel)) =
        (full_name, relationship, language, timezone, channel)
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    Ok(Valid {
        details: Details {
            full_name,
            phone,
            email,
            address,
            wechat_id,
            minor: input.minor.unwrap_or(false),
            deceased: input.deceased.unwrap_or(false),
        },
        relationship,
        language,
        timezone,
        channel,
        opted_out: input.opted_out.unwrap_or(false),
        do_not_contact_until,
    })
}

fn terms(index_key: &SecretKey, contact_id: &str, d: &Details) -> SearchTerms {
    let mut terms = vec![blind_term(
        index_key,
        TermKind::Name,
        &types::normalise_name(&d.full_name),
    )];
    if let Some(p) = &d.phone {
        terms.push(blind_term(
            index_key,
            TermKind::Phone,
            &types::normalise_phone(p),
        ));
    }
    SearchTerms {
        source: format!("contact:{contact_id}"),
        terms,
    }
}

fn place(id: &str) -> Place<'_> {
    Place::new("contacts", "details", id)
}

pub fn open_view(key: &SecretKey, row: &ContactRow) -> Result<ContactView> {
    let d: Details = crypto::open_json(
        key,
        place(&row.id),
        &crypto::Sealed::from_bytes(row.details.clone()),
    )?;
    let bad =
        |what: &str, e: String| Error::Internal(anyhow::anyhow!("stored contact {what}: {e}"));
    Ok(ContactView {
        id: row.id.clone(),
        case_id: row.case_id.clone(),
        full_name: d.full_name,
        relationship: Relationship::parse(&row.relationship).map_err(|e| bad("relationship", e))?,
        phone: d.phone,
        email: d.email,
        address: d.address,
        wechat_id: d.wechat_id,
        language: Language::parse(&row.language).map_err(|e| bad("language", e))?,
        timezone: row.timezone.clone(),
        preferred_channel: Channel::parse(&row.preferred_channel).map_err(|e| bad("channel", e))?,
        opted_out: row.opted_out,
        do_not_contact_until: row.do_not_contact_until,
        minor: d.minor,
        deceased: d.deceased,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub async fn views_for_case(
    svc: &Services,
    key: &SecretKey,
    case_id: &str,
) -> Result<Vec<ContactView>> {
    open_views(key, &svc.store.contacts_for_case(case_id).await?)
}

/// The views of a case's contact rows.
pub fn open_views(key: &SecretKey, rows: &[ContactRow]) -> Result<Vec<ContactView>> {
    rows.iter().map(|r| open_view(key, r)).collect()
}

fn apply(row: &mut ContactRow, key: &SecretKey, v: &Valid) {
    row.relationship = v.relationship.as_str().into();
    row.language = v.language.as_str().into();
    row.timezone = v.timezone.clone();
    row.preferred_channel = v.channel.as_str().into();
    row.opted_out = v.opted_out;
    row.do_not_contact_until = v.do_not_contact_until;
    row.details = crypto::seal_json(key, place(&row.id), &v.details).into_bytes();
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: ContactInput,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<ContactView> {
    let cases::Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::ManageContacts, now).await?;
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let valid = validate(&input, default_tz)?;
    let mut row = ContactRow {
        id: new_id(),
        case_id: case_id.to_string(),
        relationship: String::new(),
        language: String::new(),
        timezone: String::new(),
        preferred_channel: String::new(),
        opted_out: false,
        do_not_contact_until: None,
        details: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut row, &key, &valid);
    let t = terms(&svc.keys.ring().index, &row.id, &valid.details);
    let audit = svc
        .entry(actor, Action::ManageContacts, "contact", now)
        .target(&row.id)
        .case(case_id)
        .break_glass(break_glass)
        .reason("create");
    svc.store.insert_contact(&row, &t, &[audit]).await?;
    tracing::info!(case_id = %case_id, contact_id = %row.id, actor = %actor.user_id, "contact created");
    super::schedule::refresh_case(svc, &row.case_id, now).await;
    open_view(&key, &row)
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    contact_id: &str,
    patch: serde_json::Value,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<ContactView> {
    let mut row = svc
        .store
        .contact_by_id(contact_id)
        .await?
        .ok_or(Error::NotFound)?;
    let cases::Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, &row.case_id, Action::ManageContacts, now).await?;
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    patch_row(
        svc,
        actor,
        &mut row,
        &key,
        break_glass,
        patch,
        default_tz,
        now,
    )
    .await
}

/// What a family may change of their own contact through the portal.
pub const FAMILY_FIELDS: [&str; 5] = [
    "preferred_channel",
    "opted_out",
    "do_not_contact_until",
    "language",
    "timezone",
];

/// The family's own contact row and its case key.
async fn own_contact(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(ContactRow, SecretKey)> {
    let case_id = super::family::own_case(svc, actor, now).await?;
    let contact_id = actor.contact_id.as_deref().ok_or(Error::Forbidden)?;
    let row = svc
        .store
        .contact_by_id(contact_id)
        .await?
        .ok_or(Error::NotFound)?;
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    Ok((row, key))
}

/// A family changes its own contact preferences (only [`FAMILY_FIELDS`]).
pub async fn family_update(
    svc: &Services,
    actor: &Actor,
    patch: serde_json::Value,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<ContactView> {
    let (mut row, key) = own_contact(svc, actor, now).await?;
    patch_row(svc, actor, &mut row, &key, false, patch, default_tz, now).await
}

/// The family's own contact, as they see it.
pub async fn family_view(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<ContactView> {
    let (row, key) = own_contact(svc, actor, now).await?;
    open_view(&key, &row)
}

#[allow(clippy::too_many_arguments)]
async fn patch_row(
    svc: &Services,
    actor: &Actor,
    row: &mut ContactRow,
    key: &SecretKey,
    break_glass: bool,
    patch: serde_json::Value,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<ContactView> {
    let Some(fields) = patch.as_object() else {
        return Err(Error::field("body", "must be a JSON object"));
    };
    if actor.role == super::types::Role::Family {
        let mut v = crate::error::Validator::new();
        for k in fields
            .keys()
            .filter(|k| !FAMILY_FIELDS.contains(&k.as_str()))
        {
            v.add(
                k.clone(),
                "is not a preference you can change here; ask your coordinator",
            );
        }
        v.finish()?;
    }
    let was_opted_out = row.opted_out;
    let contact_id = row.id.clone();
    let key = key.clone();
    let current = open_view(&key, row)?;
    let mut merged = serde_json::json!({
        "full_name": current.full_name,
        "relationship": current.relationship,
        "phone": current.phone,
        "email": current.email,
        "address": current.address,
        "wechat_id": current.wechat_id,
        "language": current.language,
        "timezone": current.timezone,
        "preferred_channel": current.preferred_channel,
        "opted_out": current.opted_out,
        "do_not_contact_until": current.do_not_contact_until.map(|d| d.to_string()),
        "minor": current.minor,
        "deceased": current.deceased,
    });
    if let serde_json::Value::Object(m) = &mut merged {
        m.retain(|_, v| !v.is_null());
    }
    super::known_patch_fields::<ContactInput>(&patch)?;
    merge_patch(&mut merged, &patch);
    let input: ContactInput = from_json(merged)?;
    let valid = validate(&input, default_tz)?;
    apply(row, &key, &valid);
    row.updated_at = now;
    let t = terms(&svc.keys.ring().index, &row.id, &valid.details);
    let audit = svc
        .entry(actor, Action::ManageContacts, "contact", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass)
        .reason("update");
    svc.store.update_contact(row, &t, &[audit]).await?;
    tracing::info!(contact_id = %contact_id, actor = %actor.user_id, "contact updated");
    if was_opted_out && !row.opted_out {
        // Back in: what was held for the opt-out and is still in time goes out after all.
        svc.store
            .requeue_held(&row.case_id, &row.id, "opted_out", now)
            .await?;
    }
    if row.opted_out && !was_opted_out {
        // An opt-out cancels what is pending for this person at once.
        let c = crate::store::CancelOutreach {
            case_id: row.case_id.clone(),
            recipient: Some(row.id.clone()),
            channels: None,
            rule: None,
            reason: "opted_out".into(),
        };
        svc.store.cancel_outreach(&c, now, &[]).await?;
    }
    super::schedule::refresh_case(svc, &row.case_id, now).await;
    open_view(&key, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the OpenAPI document requires of a new contact ([`ON_CREATE`]) are exactly
    /// those validation reports missing from an empty one.
    #[test]
    fn the_documented_required_fields_are_the_validated_ones() {
        let Err(Error::Validation(fields)) = validate(&ContactInput::default(), "Asia/Shanghai")
        else {
            panic!("an empty contact is refused");
        };
        let missing: Vec<&str> = fields
            .iter()
            .filter(|(_, why)| why.as_str() == "is required")
            .map(|(f, _)| f.as_str())
            .collect();
        let mut documented: Vec<&str> = ON_CREATE[0].2.to_vec();
        documented.sort_unstable();
        assert_eq!(missing, documented);
    }
}
