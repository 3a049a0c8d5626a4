//! Letters between donor families (or marrow donors) and recipients (or patients), relayed
//! through coordinators so that neither side learns the other's identity from donorcare.
//!
//! A letter is recorded as received, its original text sealed under the case key. The case's
//! coordinator (or the region's supervisor) reads it and saves a redacted text, helped by a
//! proposal ([`propose`]) that holds back every identifying string donorcare knows for the
//! case and whatever looks like a date, a phone number, an ID number, an e-mail address or a
//! place. Release ([`release`]) is refused, naming each reason, unless:
//! - the redacted text holds none of the case's known identifying strings (compared
//!   case-insensitively, ignoring spaces and hyphens);
//! - the family side's writer (a letter to the recipient) or addressee (a letter to the family)
//!   holds a `correspondence` consent in force about themselves. The addressee's own consent,
//!   not another relative's: a letter reaches only someone who agreed to receive letters;
//! - the correspondent's consent is recorded and not withdrawn.
//!
//! Withdrawing either consent therefore stops every pending release. What leaves to the other
//! side is the redacted text and the pseudonymous labels, never the original. Ethics reviewers
//! see the metadata (status, dates, the consent that covered a release) and never a text.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized};
use super::contacts::{self, ContactView};
use super::{consents, from_json, merge_patch, new_id, page_limit, paginate, Page};
use super::{types, Services};
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::{self, Action, Actor, Resource};
use crate::store::{CaseRow, ConsentQuery, ConsentScope, CorrespondentRow, LetterQuery, LetterRow};

/// Who the family writes with.
pub const ROLES: &[&str] = &["recipient", "patient"];
/// `to_recipient`: written by the family side; `to_family`: written by the recipient side.
pub const DIRECTIONS: &[&str] = &["to_recipient", "to_family"];
pub const STATUSES: &[&str] = &["received", "redacted", "released", "withheld"];
/// Why a letter is not passed on: it cannot be redacted without losing what it says; it would
/// hurt its reader; a side has no consent in force; a side declined it; anything else.
pub const WITHHELD_REASONS: &[&str] = &[
    "identifying",
    "distressing",
    "no_consent",
    "declined",
    "other",
];
/// The longest letter.
pub const MAX_TEXT: usize = 10_000;
/// The longest pseudonymous label ("受者 A").
pub const MAX_LABEL: usize = 40;
/// The longest transplant-centre or registry reference.
pub const MAX_REFERENCE: usize = 100;
/// What replaces a held-back detail.
pub const WITHHELD_ZH: &str = "［已隐去］";
pub const WITHHELD_EN: &str = "[withheld]";

pub const CORRESPONDENT_REQUIRED: &[&str] = &["label", "role"];
pub const LETTER_REQUIRED: &[&str] = &["correspondent_id", "direction", "received_on", "text"];
/// The OpenAPI document's creating copies (the PATCH of a correspondent takes none required).
pub const CORRESPONDENT_ON_CREATE: &[(&str, &str, &[&str], &[&str])] = &[(
    "CorrespondentInput",
    "CorrespondentCreate",
    CORRESPONDENT_REQUIRED,
    &[],
)];
pub const LETTER_ON_CREATE: &[(&str, &str, &[&str], &[&str])] =
    &[("LetterInput", "LetterCreate", LETTER_REQUIRED, &[])];

fn date_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(true)
}
fn role_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(ROLES, true)
}
fn direction_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(DIRECTIONS, true)
}
fn status_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(STATUSES, true)
}
fn reason_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(WITHHELD_REASONS, false)
}
fn label_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_LABEL)
}
fn reference_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_REFERENCE)
}
fn text_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_TEXT)
}
fn required_text_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::required_text(1, MAX_TEXT)
}
fn required_id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::required_text(1, super::MAX_ID)
}
fn party_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, super::MAX_ID)
}

/// A correspondent as added, or changed (PATCH, a JSON merge patch of `reference`,
/// `consented_on` and `consent_withdrawn_on`; `null` clears one).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrespondentInput {
    /// The pseudonymous name the family knows them by, e.g. `受者 A` (unique in the case; it
    /// must not contain anything that identifies the family side).
    #[schema(schema_with = label_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `recipient` (of an organ or tissue) or `patient` (of a marrow donation).
    #[schema(schema_with = role_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The transplant centre's or registry's reference for them (identifying: sealed, shown
    /// to staff only).
    #[schema(schema_with = reference_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// When they consented to correspondence (YYYY-MM-DD, not in the future).
    #[schema(schema_with = date_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consented_on: Option<String>,
    /// When they withdrew it (YYYY-MM-DD, not before `consented_on`, not in the future).
    #[schema(schema_with = date_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_withdrawn_on: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CorrespondentView {
    pub id: String,
    pub case_id: String,
    pub label: String,
    pub role: String,
    /// Staff of the case only.
    pub reference: Option<String>,
    pub consented_on: Option<NaiveDate>,
    pub consent_withdrawn_on: Option<NaiveDate>,
    /// `none`, `given` or `withdrawn`.
    pub consent: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A letter as recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LetterInput {
    /// A correspondent of the case.
    #[schema(schema_with = party_schema)]
    pub correspondent_id: Option<String>,
    #[schema(schema_with = direction_schema)]
    pub direction: Option<String>,
    /// For `to_recipient` (and only then): who on the family side wrote it, `donor` (a living
    /// donor) or a contact id of the case.
    #[schema(schema_with = party_schema)]
    pub author: Option<String>,
    /// For `to_family` (and only then): whom on the family side it is for, `donor` (a living
    /// donor) or a contact id of the case.
    #[schema(schema_with = party_schema)]
    pub addressee: Option<String>,
    /// When the letter reached us (YYYY-MM-DD, not in the future).
    #[schema(schema_with = date_schema)]
    pub received_on: Option<String>,
    /// The letter as written (sealed; never passed on).
    #[schema(schema_with = text_schema)]
    pub text: Option<String>,
}

/// The coordinator's redaction.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactInput {
    /// The letter as it may be passed on, with what identifies held back.
    #[schema(schema_with = required_text_schema, required = true)]
    pub redacted_text: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithholdInput {
    /// `identifying`, `distressing`, `no_consent`, `declined` or `other`.
    #[schema(schema_with = reason_schema, required = true)]
    pub reason: Option<String>,
}

/// One stretch of the original that the proposal holds back.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Span {
    /// Character offsets in the original text, `start` inclusive, `end` exclusive.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// What it is: `donor.full_name`, `contact.phone`, `donation.hospital`, … for a detail
    /// donorcare holds; `date`, `phone`, `national_id`, `email`, `place` for a pattern.
    pub kind: String,
}

/// A proposed redaction: the original with every span replaced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Proposal {
    pub text: String,
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LetterView {
    pub id: String,
    pub case_id: String,
    pub correspondent_id: String,
    pub correspondent_label: String,
    pub direction: String,
    pub author: Option<String>,
    pub addressee: Option<String>,
    pub received_on: NaiveDate,
    pub status: String,
    pub withheld_reason: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub released_by: Option<String>,
    pub released_at: Option<DateTime<Utc>>,
    /// The family side's consent that covered the release.
    pub consent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The case's staff only.
    pub original_text: Option<String>,
    pub redacted_text: Option<String>,
    /// One letter read by the case's staff, before it is released or withheld.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed_redaction: Option<Proposal>,
    /// Why release would be refused now, by field (`redacted_text`, `consent`,
    /// `correspondent`); empty when it may go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_problems: Option<std::collections::BTreeMap<String, String>>,
}

/// A released letter as its family reader sees it: the redacted text and a label, no more.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FamilyLetter {
    pub id: String,
    /// The writer's pseudonymous label.
    pub from: String,
    /// `recipient` or `patient`.
    pub role: String,
    pub received_on: NaiveDate,
    pub released_at: Option<DateTime<Utc>>,
    pub text: String,
}

/// A released letter to the recipient, as printed for the transplant centre or registry:
/// the label and the redacted text, no donor name and no case id.
#[derive(Debug, Clone, Serialize)]
pub struct Printable {
    pub id: String,
    pub to: String,
    pub role: String,
    pub released_at: Option<DateTime<Utc>>,
    pub text: String,
    /// `zh-CN` when the text is written in Chinese, else `en` (the sheet's own language).
    pub language: String,
}

/// A page of a case's letters or correspondents.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CasePageFilter {
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The queue across the cases of the caller's scope.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LetterFilter {
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    #[param(schema_with = direction_schema)]
    pub direction: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn reference_place(id: &str) -> Place<'_> {
    Place::new("correspondents", "reference", id)
}
fn original_place(id: &str) -> Place<'_> {
    Place::new("correspondence_letters", "original", id)
}
fn redacted_place(id: &str) -> Place<'_> {
    Place::new("correspondence_letters", "redacted", id)
}

fn open_text(key: &SecretKey, place: Place<'_>, sealed: &[u8]) -> Result<String> {
    let plain = crypto::open(key, place, &crypto::Sealed::from_bytes(sealed.to_vec()))?;
    Ok(String::from_utf8(plain.to_vec()).map_err(|_| crypto::CryptoError::Malformed)?)
}

fn today(svc: &Services, now: DateTime<Utc>) -> NaiveDate {
    crate::schedule::calendar::local_date(svc.schedule.default_tz, now)
}

fn cursor(c: &Option<String>, v: &mut Validator) -> Option<String> {
    let c = c.as_deref()?;
    if super::is_id(c) {
        Some(c.to_string())
    } else {
        v.add("cursor", "is not a cursor of this listing");
        None
    }
}

/// A page request of one of the plain listings, checked: its size and where it starts.
fn page_request(f: &CasePageFilter) -> Result<(i64, Option<String>)> {
    let limit = page_limit(f.limit)?;
    let mut v = Validator::new();
    let before = cursor(&f.cursor, &mut v);
    v.finish()?;
    Ok((limit, before))
}

fn one_of(v: &mut Validator, name: &str, value: Option<&str>, all: &[&str]) -> Option<String> {
    let x = value.map(str::trim)?;
    if all.contains(&x) {
        Some(x.to_string())
    } else {
        v.add(name, format!("must be one of {}", all.join(", ")));
        None
    }
}

fn past_date(
    v: &mut Validator,
    name: &str,
    value: Option<&str>,
    today: NaiveDate,
) -> Option<NaiveDate> {
    let d = value.and_then(|s| v.check(name, types::parse_date(s.trim())))?;
    if d > today {
        v.add(name, "is in the future");
        return None;
    }
    Some(d)
}

// ---------------------------------------------------------------------------------------------
// What identifies, and the redaction proposal.

/// One identifying detail donorcare holds for a case, and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub kind: &'static str,
    pub value: String,
}

/// Every identifying string the case holds: the donor's and each contact's name (and, for a
/// name of three or more Chinese characters, the given name alone; for a name in Latin
/// letters, each part of three or more letters), ID number, phones, e-mail, address, WeChat
/// id, and the donation's hospital.
pub fn known_details(
    donor: &cases::Donor,
    donation: &cases::Donation,
    people: &[ContactView],
) -> Vec<Known> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str, value: Option<&str>| {
        if let Some(v) = value.map(str::trim).filter(|v| v.chars().count() >= 2) {
            out.push(Known {
                kind,
                value: v.to_string(),
            });
        }
    };
    let names = |name: &str| -> Vec<String> {
        let name = name.trim();
        let mut all = vec![name.to_string()];
        let chars: Vec<char> = name.chars().collect();
        if chars.iter().all(|c| is_han(*c)) && chars.len() >= 3 {
            all.push(chars[1..].iter().collect());
        } else if name.contains(char::is_whitespace) {
            all.extend(
                name.split_whitespace()
                    .filter(|p| p.chars().count() >= 3)
                    .map(str::to_string),
            );
        }
        all
    };
    for n in names(&donor.full_name) {
        push("donor.full_name", Some(&n));
    }
    push("donor.national_id", donor.national_id.as_deref());
    for p in donor.phone.iter().flat_map(|p| phone_forms(p)) {
        push("donor.phone", Some(&p));
    }
    push("donor.email", donor.email.as_deref());
    push("donor.address", donor.address.as_deref());
    push("donation.hospital", donation.hospital.as_deref());
    for c in people {
        for n in names(&c.full_name) {
            push("contact.full_name", Some(&n));
        }
        for p in c.phone.iter().flat_map(|p| phone_forms(p)) {
            push("contact.phone", Some(&p));
        }
        push("contact.email", c.email.as_deref());
        push("contact.address", c.address.as_deref());
        push("contact.wechat_id", c.wechat_id.as_deref());
    }
    out
}

/// A phone number as stored, and as a letter would write it: the digits dialled at home,
/// without the country code ("+86 139 0000 1111" is also "13900001111").
fn phone_forms(p: &str) -> Vec<String> {
    let digits = types::normalise_phone(p);
    let mut out = vec![p.to_string()];
    if digits != p {
        out.push(digits);
    }
    out
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

/// Lower case, without spaces, hyphens and brackets: "139 0000-4444" and "13900004444" are
/// one phone number, "Li  Wei" and "li wei" one name.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '(' | ')' | '（' | '）' | '\u{3000}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The known details that `text` still contains (the release gate).
pub fn remaining<'a>(text: &str, known: &'a [Known]) -> Vec<&'a Known> {
    let t = normalise(text);
    known
        .iter()
        .filter(|k| {
            let n = normalise(&k.value);
            !n.is_empty() && t.contains(&n)
        })
        .collect()
}

/// Patterns of what usually identifies, whoever it belongs to.
fn patterns() -> &'static [(&'static str, Regex)] {
    static P: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    P.get_or_init(|| {
        let months = "January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec";
        let sources: Vec<(&'static str, String)> = vec![
            ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}".into()),
            // No `\b`: a Chinese letter runs digits into characters, which are word characters too.
            ("national_id", r"\d{17}[\dXx]|\d{15}".into()),
            ("phone", r"(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}|0\d{2,3}-\d{7,8}".into()),
            (
                "date",
                format!(
                    r"\d{{4}}\s*[-/.年]\s*\d{{1,2}}\s*[-/.月]\s*\d{{1,2}}\s*[日号]?|\d{{4}}\s*年\s*\d{{1,2}}\s*月|\d{{1,2}}\s*月\s*\d{{1,2}}\s*[日号]|(?i:\b(?:{months})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{months})\b(?:\.?,?\s+\d{{4}})?)"
                ),
            ),
            (
                "place",
                r"[\p{Han}]{2,8}?(?:医院|中心|诊所|省|市|县|区)|(?:[A-Z][\w'’.-]*\s+){1,4}(?:Hospital|Centre|Center|Clinic|Infirmary|Province|City|County|District)\b".into(),
            ),
        ];
        sources
            .into_iter()
            .filter_map(|(k, s)| match Regex::new(&s) {
                Ok(r) => Some((k, r)),
                // A pattern is fixed text: one that fails to build is a bug the unit tests catch.
                Err(e) => {
                    tracing::error!(pattern = k, error = %e, "a redaction pattern does not build");
                    None
                }
            })
            .collect()
    })
}

/// The placeholder for a letter: Chinese in a letter with Chinese in it.
pub fn placeholder(text: &str) -> &'static str {
    if text.chars().any(is_han) {
        WITHHELD_ZH
    } else {
        WITHHELD_EN
    }
}

/// Propose a redaction of `text`: each known detail (case-insensitively) and each pattern's
/// match replaced by the placeholder; overlapping finds merged into one span.
pub fn propose(text: &str, known: &[Known]) -> Proposal {
    // Byte ranges first; known details outrank patterns for the span's kind.
    let mut found: Vec<(usize, usize, String)> = Vec::new();
    let lower = text.to_lowercase();
    let same_length = lower.len() == text.len();
    for k in known {
        let needle = k.value.to_lowercase();
        if needle.is_empty() {
            continue;
        }
        if same_length {
            for (i, _) in lower.match_indices(&needle) {
                found.push((i, i + needle.len(), k.kind.to_string()));
            }
        } else {
            for (i, _) in text.match_indices(k.value.as_str()) {
                found.push((i, i + k.value.len(), k.kind.to_string()));
            }
        }
        // Digits written with spaces or hyphens between them ("139 0000 4444").
        let digits: String = k
            .value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        if digits.len() >= 7
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || c == 'X' || c == 'x')
        {
            let spaced: Vec<String> = digits
                .chars()
                .map(|c| regex::escape(&c.to_string()))
                .collect();
            if let Ok(r) = Regex::new(&format!("(?i){}", spaced.join(r"[\s-]*"))) {
                for m in r.find_iter(text) {
                    found.push((m.start(), m.end(), k.kind.to_string()));
                }
            }
        }
    }
    for (kind, r) in patterns() {
        for m in r.find_iter(text) {
            found.push((m.start(), m.end(), (*kind).to_string()));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut merged: Vec<(usize, usize, String)> = Vec::new();
    for (s, e, k) in found {
        match merged.last_mut() {
            Some(last) if s < last.1 => {
                last.1 = last.1.max(e);
                // A detail the case holds says more than a pattern's guess.
                if k.contains('.') && !last.2.contains('.') {
                    last.2 = k;
                }
            }
            _ => merged.push((s, e, k)),
        }
    }
    let mark = placeholder(text);
    let mut out = String::with_capacity(text.len());
    let mut spans = Vec::with_capacity(merged.len());
    let mut at = 0;
    for (s, e, kind) in merged {
        out.push_str(&text[at..s]);
        out.push_str(mark);
        spans.push(Span {
            start: text[..s].chars().count(),
            end: text[..e].chars().count(),
            text: text[s..e].to_string(),
            kind,
        });
        at = e;
    }
    out.push_str(&text[at..]);
    Proposal { text: out, spans }
}

/// The original cut into plain and held-back stretches, for a page to mark the spans.
pub fn segments(text: &str, spans: &[Span]) -> Vec<(String, Option<String>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut at = 0;
    for s in spans {
        if s.start > at {
            out.push((chars[at..s.start].iter().collect(), None));
        }
        out.push((
            chars[s.start..s.end.min(chars.len())].iter().collect(),
            Some(s.kind.clone()),
        ));
        at = s.end.min(chars.len());
    }
    if at < chars.len() {
        out.push((chars[at..].iter().collect(), None));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The case and its people.

/// What a case holds that the letters need: its key, its donor and donation, its contacts.
struct Opened {
    key: SecretKey,
    donor: cases::Donor,
    donation: cases::Donation,
    people: Vec<ContactView>,
}

async fn open_case(svc: &Services, case: &CaseRow) -> Result<Opened> {
    let key = case_key(svc, case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let opened = cases::open_row(&key, case)?;
    let people = contacts::views_for_case(svc, &key, &case.id).await?;
    Ok(Opened {
        key,
        donor: opened.donor,
        donation: opened.donation,
        people,
    })
}

/// `donor` (a living donor) or a contact of the case, for `field`.
fn family_party(v: &mut Validator, field: &str, value: Option<&str>, o: &Opened) -> Option<String> {
    match value.map(str::trim) {
        None | Some("") => {
            v.add(field, "is required: donor or a contact id of this case");
            None
        }
        Some("donor") if o.donor.deceased => {
            v.add(
                field,
                "the donor has died: name the relative who writes or reads",
            );
            None
        }
        Some("donor") => Some("donor".into()),
        Some(id) if o.people.iter().any(|c| c.id == id) => Some(id.to_string()),
        Some(_) => {
            v.add(field, "is neither donor nor a contact of this case");
            None
        }
    }
}

fn correspondent_consent(r: &CorrespondentRow) -> &'static str {
    match (r.consented_on, r.consent_withdrawn_on) {
        (_, Some(_)) => "withdrawn",
        (Some(_), None) => "given",
        (None, None) => "none",
    }
}

fn correspondent_view(r: &CorrespondentRow, key: Option<&SecretKey>) -> Result<CorrespondentView> {
    let reference = match (key, &r.reference) {
        (Some(k), Some(sealed)) => Some(open_text(k, reference_place(&r.id), sealed)?),
        _ => None,
    };
    Ok(CorrespondentView {
        id: r.id.clone(),
        case_id: r.case_id.clone(),
        label: r.label.clone(),
        role: r.role.clone(),
        reference,
        consented_on: r.consented_on,
        consent_withdrawn_on: r.consent_withdrawn_on,
        consent: correspondent_consent(r).into(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

struct ValidCorrespondent {
    label: String,
    role: String,
    reference: Option<String>,
    consented_on: Option<NaiveDate>,
    consent_withdrawn_on: Option<NaiveDate>,
}

fn validate_correspondent(
    input: &CorrespondentInput,
    o: &Opened,
    today: NaiveDate,
) -> Result<ValidCorrespondent> {
    let mut v = Validator::new();
    let label = match input.label.as_deref() {
        None => {
            v.add("label", "is required");
            None
        }
        Some(l) => v.check("label", types::required_text(l, MAX_LABEL)),
    };
    if let Some(l) = &label {
        let known = known_details(&o.donor, &o.donation, &o.people);
        if !remaining(l, &known).is_empty() {
            v.add(
                "label",
                "must not contain anything that identifies the family side",
            );
        }
    }
    let role = match input.role.as_deref() {
        None => {
            v.add("role", "is required");
            None
        }
        r => one_of(&mut v, "role", r, ROLES),
    };
    let reference = input
        .reference
        .as_deref()
        .and_then(|r| v.check("reference", types::text(r, MAX_REFERENCE)))
        .filter(|r| !r.is_empty());
    let consented_on = past_date(&mut v, "consented_on", input.consented_on.as_deref(), today);
    let consent_withdrawn_on = past_date(
        &mut v,
        "consent_withdrawn_on",
        input.consent_withdrawn_on.as_deref(),
        today,
    );
    match (
        input.consented_on.is_some(),
        consented_on,
        consent_withdrawn_on,
    ) {
        (false, _, Some(_)) => v.add(
            "consent_withdrawn_on",
            "needs consented_on: a consent never given cannot be withdrawn",
        ),
        (_, Some(a), Some(b)) if b < a => {
            v.add("consent_withdrawn_on", "must not be before consented_on")
        }
        _ => {}
    }
    v.finish()?;
    let (Some(label), Some(role)) = (label, role) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    Ok(ValidCorrespondent {
        label,
        role,
        reference,
        consented_on,
        consent_withdrawn_on,
    })
}

/// Add a correspondent to a case (its coordinator, the region's supervisor).
pub async fn add_correspondent(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: CorrespondentInput,
    now: DateTime<Utc>,
) -> Result<CorrespondentView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::RecordCorrespondence, now).await?;
    let o = open_case(svc, &case).await?;
    let ok = validate_correspondent(&input, &o, today(svc, now))?;
    let id = new_id();
    let row = CorrespondentRow {
        reference: ok
            .reference
            .as_ref()
            .map(|r| crypto::seal(&o.key, reference_place(&id), r.as_bytes()).into_bytes()),
        id,
        case_id: case_id.into(),
        label: ok.label,
        role: ok.role,
        consented_on: ok.consented_on,
        consent_withdrawn_on: ok.consent_withdrawn_on,
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_at: now,
        region: case.region.clone(),
    };
    let audit = svc
        .entry(actor, Action::RecordCorrespondence, "correspondent", now)
        .target(&row.id)
        .case(case_id)
        .break_glass(break_glass)
        .reason("correspondent.add");
    if !svc.store.insert_correspondent(&row, &[audit]).await? {
        return Err(Error::field(
            "label",
            "this case already has a correspondent of that label",
        ));
    }
    correspondent_view(&row, Some(&o.key))
}

/// A record found by id (`found`) with its case, for `action` by `actor`; 404 (audited) when
/// absent or out of scope. `target` names the record's kind in the audit.
async fn with_case<R>(
    svc: &Services,
    actor: &Actor,
    id: &str,
    found: Option<R>,
    case_of: impl Fn(&R) -> String,
    (action, target): (Action, &str),
    now: DateTime<Utc>,
) -> Result<(R, Authorized)> {
    let Some(row) = found else {
        let entry = svc.entry(actor, action, target, now);
        let entry = if super::is_id(id) {
            entry.target(id)
        } else {
            entry
        };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    let case = cases::load_authorized(svc, actor, &case_of(&row), action, now).await?;
    Ok((row, case))
}

async fn load_correspondent(
    svc: &Services,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(CorrespondentRow, Authorized)> {
    let found = svc.store.correspondent_by_id(id).await?;
    let case_of = |r: &CorrespondentRow| r.case_id.clone();
    with_case(
        svc,
        actor,
        id,
        found,
        case_of,
        (action, "correspondent"),
        now,
    )
    .await
}

/// One correspondent (its case's staff with the reference; ethics reviewers without).
pub async fn get_correspondent(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<CorrespondentView> {
    let (
        row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load_correspondent(svc, actor, id, Action::ReadCorrespondence, now).await?;
    let v = correspondent_view(&row, reader_key(svc, actor, &case).await?.as_ref())?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadCorrespondence, "correspondent", now)
            .target(id)
            .case(&row.case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(v)
}

/// The fields a correspondent's change may name.
const CORRESPONDENT_PATCHABLE: &[&str] = &["reference", "consented_on", "consent_withdrawn_on"];

/// Change a correspondent's reference or consent dates (a JSON merge patch).
pub async fn update_correspondent(
    svc: &Services,
    actor: &Actor,
    id: &str,
    patch: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<CorrespondentView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let (
        mut row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load_correspondent(svc, actor, id, Action::RecordCorrespondence, now).await?;
    let Some(fields) = patch.as_object() else {
        return Err(Error::field("body", "must be a JSON object"));
    };
    let mut v = Validator::new();
    for name in fields.keys() {
        if matches!(name.as_str(), "label" | "role") {
            v.add(
                name.as_str(),
                "is set when the correspondent is added and does not change",
            );
        } else if !CORRESPONDENT_PATCHABLE.contains(&name.as_str()) {
            v.add(name.as_str(), "is not a field of a correspondent");
        }
    }
    v.finish()?;
    let o = open_case(svc, &case).await?;
    let current = CorrespondentInput {
        label: Some(row.label.clone()),
        role: Some(row.role.clone()),
        reference: correspondent_view(&row, Some(&o.key))?.reference,
        consented_on: row.consented_on.map(|d| d.to_string()),
        consent_withdrawn_on: row.consent_withdrawn_on.map(|d| d.to_string()),
    };
    let mut merged = serde_json::to_value(current)
        .map_err(|e| anyhow::anyhow!("a correspondent as JSON: {e}"))?;
    merge_patch(&mut merged, &patch);
    let input: CorrespondentInput = from_json(merged)?;
    let ok = validate_correspondent(&input, &o, today(svc, now))?;
    row.reference = ok
        .reference
        .as_ref()
        .map(|r| crypto::seal(&o.key, reference_place(&row.id), r.as_bytes()).into_bytes());
    row.consented_on = ok.consented_on;
    row.consent_withdrawn_on = ok.consent_withdrawn_on;
    row.updated_at = now;
    let audit = svc
        .entry(actor, Action::RecordCorrespondence, "correspondent", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass)
        .reason("correspondent.update");
    svc.store.update_correspondent(&row, &[audit]).await?;
    correspondent_view(&row, Some(&o.key))
}

/// The key that opens letters and references for `actor`: only the case's own staff.
async fn reader_key(svc: &Services, actor: &Actor, case: &CaseRow) -> Result<Option<SecretKey>> {
    if policy::reads_letters(actor.role) {
        case_key(svc, case).await
    } else {
        Ok(None)
    }
}

/// A case's correspondents, newest first.
pub async fn list_correspondents(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    f: CasePageFilter,
    now: DateTime<Utc>,
) -> Result<Page<CorrespondentView>> {
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::ReadCorrespondence, now).await?;
    let (limit, before) = page_request(&f)?;
    let rows = svc
        .store
        .list_correspondents(case_id, before.as_deref(), limit + 1)
        .await?;
    let key = reader_key(svc, actor, &case).await?;
    let page = paginate(
        rows,
        limit,
        |r| r.id.clone(),
        |r| correspondent_view(&r, key.as_ref()),
    )?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadCorrespondence, "correspondent", now)
            .case(case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(page)
}

// ---------------------------------------------------------------------------------------------
// Letters.

fn letter_view(r: &LetterRow, key: Option<&SecretKey>) -> Result<LetterView> {
    let (original_text, redacted_text) = match key {
        Some(k) => (
            Some(open_text(k, original_place(&r.id), &r.original)?),
            r.redacted
                .as_ref()
                .map(|s| open_text(k, redacted_place(&r.id), s))
                .transpose()?,
        ),
        None => (None, None),
    };
    Ok(LetterView {
        id: r.id.clone(),
        case_id: r.case_id.clone(),
        correspondent_id: r.correspondent_id.clone(),
        correspondent_label: r.label.clone(),
        direction: r.direction.clone(),
        author: r.author.clone(),
        addressee: r.addressee.clone(),
        received_on: r.received_on,
        status: r.status.clone(),
        withheld_reason: r.withheld_reason.clone(),
        reviewed_by: r.reviewed_by.clone(),
        reviewed_at: r.reviewed_at,
        released_by: r.released_by.clone(),
        released_at: r.released_at,
        consent_id: r.consent_id.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        original_text,
        redacted_text,
        proposed_redaction: None,
        release_problems: None,
    })
}

/// Record a letter on a case (its coordinator, the region's supervisor).
pub async fn record(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: LetterInput,
    now: DateTime<Utc>,
) -> Result<LetterView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::RecordCorrespondence, now).await?;
    let o = open_case(svc, &case).await?;
    let mut v = Validator::new();
    let correspondent = match input.correspondent_id.as_deref().map(str::trim) {
        None | Some("") => {
            v.add("correspondent_id", "is required");
            None
        }
        Some(id) => match svc.store.correspondent_by_id(id).await? {
            Some(p) if p.case_id == case_id => Some(p),
            _ => {
                v.add("correspondent_id", "is not a correspondent of this case");
                None
            }
        },
    };
    let direction = match input.direction.as_deref() {
        None => {
            v.add("direction", "is required");
            None
        }
        d => one_of(&mut v, "direction", d, DIRECTIONS),
    };
    let (mut author, mut addressee) = (None, None);
    match direction.as_deref() {
        Some("to_recipient") => {
            author = family_party(&mut v, "author", input.author.as_deref(), &o);
            if input.addressee.is_some() {
                v.add(
                    "addressee",
                    "goes with letters to the family; this one is to the recipient",
                );
            }
        }
        Some(_) => {
            addressee = family_party(&mut v, "addressee", input.addressee.as_deref(), &o);
            if input.author.is_some() {
                v.add(
                    "author",
                    "goes with letters to the recipient; this one is to the family",
                );
            }
        }
        None => {}
    }
    let received_on = match input.received_on.as_deref() {
        None => {
            v.add("received_on", "is required");
            None
        }
        d => past_date(&mut v, "received_on", d, today(svc, now)),
    };
    let text = match input.text.as_deref() {
        None => {
            v.add("text", "is required");
            None
        }
        Some(t) => v.check("text", types::required_text(t, MAX_TEXT)),
    };
    v.finish()?;
    let (Some(correspondent), Some(direction), Some(received_on), Some(text)) =
        (correspondent, direction, received_on, text)
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let id = new_id();
    let row = LetterRow {
        original: crypto::seal(&o.key, original_place(&id), text.as_bytes()).into_bytes(),
        id,
        case_id: case_id.into(),
        correspondent_id: correspondent.id.clone(),
        direction,
        author,
        addressee,
        received_on,
        redacted: None,
        status: "received".into(),
        withheld_reason: None,
        reviewed_by: None,
        reviewed_at: None,
        released_by: None,
        released_at: None,
        consent_id: None,
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_at: now,
        region: case.region.clone(),
        label: correspondent.label.clone(),
    };
    let audit = svc
        .entry(actor, Action::RecordCorrespondence, "correspondence", now)
        .target(&row.id)
        .case(case_id)
        .break_glass(break_glass)
        .reason(&row.direction);
    svc.store.insert_letter(&row, &[audit]).await?;
    letter_view(&row, Some(&o.key))
}

async fn load(
    svc: &Services,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(LetterRow, Authorized)> {
    let found = svc.store.letter_by_id(id).await?;
    let case_of = |r: &LetterRow| r.case_id.clone();
    with_case(
        svc,
        actor,
        id,
        found,
        case_of,
        (action, "correspondence"),
        now,
    )
    .await
}

/// The family side's `correspondence` consent in force about `party`, if any.
async fn family_consent(
    svc: &Services,
    case_id: &str,
    party: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let rows = svc
        .store
        .list_consents(&ConsentQuery {
            scope: ConsentScope::All,
            case_id: Some(case_id.to_string()),
            kind: Some("correspondence".into()),
            after: None,
            limit: 1000,
        })
        .await?;
    Ok(rows
        .into_iter()
        .find(|r| r.subject == party && r.signed_at <= now && consents::status(r, now) == "active")
        .map(|r| r.id))
}

/// Why `row` (with `redacted`) may not be released now, by field, and the family consent
/// that would cover it.
async fn release_problems(
    svc: &Services,
    row: &LetterRow,
    redacted: Option<&str>,
    o: &Opened,
    now: DateTime<Utc>,
) -> Result<(std::collections::BTreeMap<String, String>, Option<String>)> {
    let mut problems = std::collections::BTreeMap::new();
    match redacted {
        None => {
            problems.insert(
                "redacted_text".into(),
                "is required: save the redacted text before release".into(),
            );
        }
        Some(t) => {
            let known = known_details(&o.donor, &o.donation, &o.people);
            let left = remaining(t, &known);
            if !left.is_empty() {
                let mut kinds: Vec<&str> = left.iter().map(|k| k.kind).collect();
                kinds.dedup();
                problems.insert(
                    "redacted_text".into(),
                    format!(
                        "still contains what identifies the family side ({})",
                        kinds.join(", ")
                    ),
                );
            }
        }
    }
    let party = row
        .author
        .as_deref()
        .or(row.addressee.as_deref())
        .unwrap_or_default();
    let consent = family_consent(svc, &row.case_id, party, now).await?;
    if consent.is_none() {
        problems.insert(
            "consent".into(),
            format!(
                "{} holds no correspondence consent in force",
                if row.direction == "to_recipient" {
                    "the writer"
                } else {
                    "the addressee"
                }
            ),
        );
    }
    match svc.store.correspondent_by_id(&row.correspondent_id).await? {
        Some(p) if correspondent_consent(&p) == "given" => {}
        Some(p) if correspondent_consent(&p) == "withdrawn" => {
            problems.insert(
                "correspondent".into(),
                "the correspondent has withdrawn their consent to correspondence".into(),
            );
        }
        _ => {
            problems.insert(
                "correspondent".into(),
                "the correspondent's consent to correspondence is not recorded".into(),
            );
        }
    }
    Ok((problems, consent))
}

/// One letter: for the case's staff with both texts and, while it is pending, the proposed
/// redaction and what would stop its release; for ethics reviewers, its metadata only.
pub async fn get(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<LetterView> {
    let (
        row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::ReadCorrespondence, now).await?;
    // Texts for the case's own staff, while the case has its key (an erased case's letters
    // keep their metadata only).
    let readable = policy::reads_letters(actor.role) && case_key(svc, &case).await?.is_some();
    let mut v = if readable {
        let o = open_case(svc, &case).await?;
        let mut v = letter_view(&row, Some(&o.key))?;
        if matches!(row.status.as_str(), "received" | "redacted") {
            let known = known_details(&o.donor, &o.donation, &o.people);
            v.proposed_redaction = v.original_text.as_deref().map(|t| propose(t, &known));
            v.release_problems = Some(
                release_problems(svc, &row, v.redacted_text.as_deref(), &o, now)
                    .await?
                    .0,
            );
        }
        v
    } else {
        letter_view(&row, None)?
    };
    v.correspondent_label = row.label.clone();
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadCorrespondence, "correspondence", now)
            .target(id)
            .case(&row.case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(v)
}

/// A case's letters, newest recorded first (texts for the case's staff only).
pub async fn list_for_case(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    f: CasePageFilter,
    now: DateTime<Utc>,
) -> Result<Page<LetterView>> {
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::ReadCorrespondence, now).await?;
    let (limit, before) = page_request(&f)?;
    let rows = svc
        .store
        .list_letters(&LetterQuery {
            scope: crate::store::CaseScope::All,
            case_id: Some(case_id.into()),
            status: None,
            direction: None,
            addressee: None,
            before,
            limit: limit + 1,
        })
        .await?;
    let key = reader_key(svc, actor, &case).await?;
    let page = paginate(
        rows,
        limit,
        |r| r.id.clone(),
        |r| letter_view(&r, key.as_ref()),
    )?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadCorrespondence, "correspondence", now)
            .case(case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(page)
}

/// The queue: letters across the cases of the caller's scope, newest first, metadata only.
pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: LetterFilter,
    now: DateTime<Utc>,
) -> Result<Page<LetterView>> {
    svc.authorize(
        actor,
        Action::ListCorrespondence,
        Resource::System,
        svc.entry(actor, Action::ListCorrespondence, "correspondence", now),
    )
    .await?;
    let scope = policy::correspondence_scope(actor)?;
    let limit = page_limit(f.limit)?;
    let mut v = Validator::new();
    let status = one_of(&mut v, "status", f.status.as_deref(), STATUSES);
    let direction = one_of(&mut v, "direction", f.direction.as_deref(), DIRECTIONS);
    let before = cursor(&f.cursor, &mut v);
    v.finish()?;
    let rows = svc
        .store
        .list_letters(&LetterQuery {
            scope,
            case_id: None,
            status,
            direction,
            addressee: None,
            before,
            limit: limit + 1,
        })
        .await?;
    let page = paginate(rows, limit, |r| r.id.clone(), |r| letter_view(&r, None))?;
    svc.audit
        .record(vec![svc.entry(
            actor,
            Action::ListCorrespondence,
            "correspondence",
            now,
        )])
        .await?;
    Ok(page)
}

/// A letter still under review, or 409 naming its status.
fn pending(row: &LetterRow) -> Result<()> {
    if matches!(row.status.as_str(), "received" | "redacted") {
        Ok(())
    } else {
        Err(Error::conflict(
            "status",
            format!("this letter has been {} and does not change", row.status),
        ))
    }
}

fn lost_race() -> Error {
    Error::conflict("status", "the letter changed meanwhile: open it again")
}

/// Save the redacted text (the letter becomes `redacted`).
pub async fn redact(
    svc: &Services,
    actor: &Actor,
    id: &str,
    input: RedactInput,
    now: DateTime<Utc>,
) -> Result<LetterView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let (
        mut row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::RedactCorrespondence, now).await?;
    pending(&row)?;
    let text = match input.redacted_text.as_deref() {
        None => Err(Error::field("redacted_text", "is required")),
        Some(t) => types::required_text(t, MAX_TEXT).map_err(|e| Error::field("redacted_text", e)),
    }?;
    let o = open_case(svc, &case).await?;
    let was = row.status.clone();
    row.redacted =
        Some(crypto::seal(&o.key, redacted_place(&row.id), text.as_bytes()).into_bytes());
    row.status = "redacted".into();
    row.reviewed_by = Some(actor.user_id.clone());
    row.reviewed_at = Some(now);
    row.updated_at = now;
    let audit = svc
        .entry(actor, Action::RedactCorrespondence, "correspondence", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass);
    if !svc.store.update_letter(&row, &was, &[audit]).await? {
        return Err(lost_race());
    }
    letter_view(&row, Some(&o.key))
}

/// Release a redacted letter: refused (422, each reason by field) unless the redacted text
/// holds nothing the case knows identifies, the family side's consent is in force, and the
/// correspondent's consent is recorded and not withdrawn.
pub async fn release(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<LetterView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let (
        mut row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::ReleaseCorrespondence, now).await?;
    pending(&row)?;
    let o = open_case(svc, &case).await?;
    let redacted = row
        .redacted
        .as_ref()
        .map(|s| open_text(&o.key, redacted_place(&row.id), s))
        .transpose()?;
    let (problems, consent) = release_problems(svc, &row, redacted.as_deref(), &o, now).await?;
    if !problems.is_empty() {
        svc.audit
            .record(vec![svc
                .entry(actor, Action::ReleaseCorrespondence, "correspondence", now)
                .target(&row.id)
                .case(&row.case_id)
                .break_glass(break_glass)
                .denied(
                    &problems.keys().cloned().collect::<Vec<_>>().join(","),
                )])
            .await?;
        return Err(Error::Validation(problems.into_iter().collect()));
    }
    row.status = "released".into();
    row.released_by = Some(actor.user_id.clone());
    row.released_at = Some(now);
    row.consent_id = consent;
    row.updated_at = now;
    let audit = svc
        .entry(actor, Action::ReleaseCorrespondence, "correspondence", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass)
        .reason(&row.direction);
    if !svc.store.update_letter(&row, "redacted", &[audit]).await? {
        return Err(lost_race());
    }
    letter_view(&row, Some(&o.key))
}

/// Withhold a letter, with the reason code.
pub async fn withhold(
    svc: &Services,
    actor: &Actor,
    id: &str,
    input: WithholdInput,
    now: DateTime<Utc>,
) -> Result<LetterView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let (
        mut row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::WithholdCorrespondence, now).await?;
    pending(&row)?;
    let mut v = Validator::new();
    let reason = match input.reason.as_deref() {
        None => {
            v.add("reason", "is required");
            None
        }
        r => one_of(&mut v, "reason", r, WITHHELD_REASONS),
    };
    v.finish()?;
    let key = case_key(svc, &case).await?;
    let was = row.status.clone();
    row.status = "withheld".into();
    row.withheld_reason = reason;
    row.reviewed_by = Some(actor.user_id.clone());
    row.reviewed_at = Some(now);
    row.updated_at = now;
    let audit = svc
        .entry(actor, Action::WithholdCorrespondence, "correspondence", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass)
        .reason(row.withheld_reason.as_deref().unwrap_or_default());
    if !svc.store.update_letter(&row, &was, &[audit]).await? {
        return Err(lost_race());
    }
    letter_view(&row, key.as_ref())
}

/// A released letter to the recipient, as printed for the centre or registry (audited).
pub async fn printable(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Printable> {
    let (
        row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::PrintCorrespondence, now).await?;
    if row.status != "released" || row.direction != "to_recipient" {
        return Err(Error::conflict(
            "status",
            "only a released letter to the recipient is printed",
        ));
    }
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    let text = row
        .redacted
        .as_ref()
        .map(|s| open_text(&key, redacted_place(&row.id), s))
        .transpose()?
        .unwrap_or_default();
    svc.audit
        .record(vec![svc
            .entry(actor, Action::PrintCorrespondence, "correspondence", now)
            .target(id)
            .case(&row.case_id)
            .break_glass(break_glass)])
        .await?;
    let p = svc.store.correspondent_by_id(&row.correspondent_id).await?;
    Ok(Printable {
        id: row.id.clone(),
        to: row.label.clone(),
        role: p.map(|p| p.role).unwrap_or_else(|| "recipient".into()),
        released_at: row.released_at,
        language: if placeholder(&text) == WITHHELD_ZH {
            "zh-CN"
        } else {
            "en"
        }
        .into(),
        text,
    })
}

/// A letter the family writes in its portal.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FamilyLetterInput {
    /// One of [`family_correspondents`].
    #[schema(schema_with = required_id_schema, required = true)]
    pub correspondent_id: Option<String>,
    /// The letter (a coordinator reads it and holds back what identifies before it goes).
    #[schema(schema_with = required_text_schema, required = true)]
    pub text: Option<String>,
}

/// Someone the family may write to: the label, never more.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FamilyCorrespondent {
    pub id: String,
    pub label: String,
    /// `recipient` or `patient`.
    pub role: String,
}

/// The family's case and contact, once `action` is theirs to take (audited when refused).
async fn family_side(
    svc: &Services,
    actor: &Actor,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(String, String)> {
    svc.authorize(
        actor,
        action,
        Resource::System,
        svc.entry(actor, action, "correspondence", now),
    )
    .await?;
    let case_id = super::family::own_case(svc, actor, now).await?;
    let contact = actor.contact_id.clone().ok_or(Error::Forbidden)?;
    Ok((case_id, contact))
}

/// Whom the family may write to: its case's correspondents who agreed to write (labels only);
/// none while the family member's own correspondence consent is not in force.
pub async fn family_correspondents(
    svc: &Services,
    actor: &Actor,
    f: CasePageFilter,
    now: DateTime<Utc>,
) -> Result<Page<FamilyCorrespondent>> {
    let (case_id, contact) =
        family_side(svc, actor, Action::FamilyWriteCorrespondence, now).await?;
    let (limit, before) = page_request(&f)?;
    if family_consent(svc, &case_id, &contact, now)
        .await?
        .is_none()
    {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let rows = svc
        .store
        .list_correspondents(&case_id, before.as_deref(), limit + 1)
        .await?;
    let mut page = paginate(rows, limit, |r| r.id.clone(), Ok)?;
    // The cursor stays the page's last row; a page may hold fewer who agreed than `limit`.
    page.items.retain(|r| correspondent_consent(r) == "given");
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|r| FamilyCorrespondent {
                id: r.id,
                label: r.label,
                role: r.role,
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// A family member writes to a correspondent: recorded as received (to the recipient, the
/// family member its author) for a coordinator to review like any other letter. Refused
/// unless the writer's correspondence consent is in force and the correspondent agreed.
pub async fn family_write(
    svc: &Services,
    actor: &Actor,
    input: FamilyLetterInput,
    now: DateTime<Utc>,
) -> Result<FamilyLetter> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let (case_id, contact) =
        family_side(svc, actor, Action::FamilyWriteCorrespondence, now).await?;
    let mut v = Validator::new();
    if family_consent(svc, &case_id, &contact, now)
        .await?
        .is_none()
    {
        v.add(
            "consent",
            "you have no correspondence consent in force: ask your coordinator",
        );
    }
    let correspondent = match input.correspondent_id.as_deref().map(str::trim) {
        None | Some("") => {
            v.add("correspondent_id", "is required");
            None
        }
        Some(id) => match svc.store.correspondent_by_id(id).await? {
            Some(p) if p.case_id == case_id && correspondent_consent(&p) == "given" => Some(p),
            _ => {
                v.add("correspondent_id", "is not someone you may write to");
                None
            }
        },
    };
    let text = match input.text.as_deref() {
        None => {
            v.add("text", "is required");
            None
        }
        Some(t) => v.check("text", types::required_text(t, MAX_TEXT)),
    };
    v.finish()?;
    let (Some(correspondent), Some(text)) = (correspondent, text) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?.ok_or(Error::NotFound)?;
    let id = new_id();
    let row = LetterRow {
        original: crypto::seal(&key, original_place(&id), text.as_bytes()).into_bytes(),
        id,
        case_id: case_id.clone(),
        correspondent_id: correspondent.id.clone(),
        direction: "to_recipient".into(),
        author: Some(contact),
        addressee: None,
        received_on: today(svc, now),
        redacted: None,
        status: "received".into(),
        withheld_reason: None,
        reviewed_by: None,
        reviewed_at: None,
        released_by: None,
        released_at: None,
        consent_id: None,
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_at: now,
        region: case.region.clone(),
        label: correspondent.label.clone(),
    };
    let audit = svc
        .entry(
            actor,
            Action::FamilyWriteCorrespondence,
            "correspondence",
            now,
        )
        .target(&row.id)
        .case(&case_id);
    svc.store.insert_letter(&row, &[audit]).await?;
    Ok(FamilyLetter {
        id: row.id,
        from: row.label,
        role: correspondent.role,
        received_on: row.received_on,
        released_at: None,
        text,
    })
}

/// The family's released letters addressed to them, newest first: the redacted text and the
/// writer's label only.
pub async fn family_letters(
    svc: &Services,
    actor: &Actor,
    f: CasePageFilter,
    now: DateTime<Utc>,
) -> Result<Page<FamilyLetter>> {
    let (case_id, contact) = family_side(svc, actor, Action::FamilyCorrespondence, now).await?;
    let (limit, before) = page_request(&f)?;
    let rows = svc
        .store
        .list_letters(&LetterQuery {
            scope: crate::store::CaseScope::All,
            case_id: Some(case_id.clone()),
            status: Some("released".into()),
            direction: Some("to_family".into()),
            addressee: Some(contact),
            before,
            limit: limit + 1,
        })
        .await?;
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?;
    let mut roles = std::collections::HashMap::new();
    for r in &rows {
        if !roles.contains_key(&r.correspondent_id) {
            let role = svc
                .store
                .correspondent_by_id(&r.correspondent_id)
                .await?
                .map(|p| p.role)
                .unwrap_or_default();
            roles.insert(r.correspondent_id.clone(), role);
        }
    }
    let page = paginate(
        rows,
        limit,
        |r| r.id.clone(),
        |r| {
            // Only the redacted text leaves, and only with the case key (none once erased).
            let text = match (&key, &r.redacted) {
                (Some(k), Some(s)) => open_text(k, redacted_place(&r.id), s)?,
                _ => String::new(),
            };
            Ok(FamilyLetter {
                role: roles.get(&r.correspondent_id).cloned().unwrap_or_default(),
                id: r.id,
                from: r.label,
                received_on: r.received_on,
                released_at: r.released_at,
                text,
            })
        },
    )?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::FamilyCorrespondence, "correspondence", now)
            .case(&case_id)])
        .await?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn donor() -> (cases::Donor, cases::Donation) {
        (
            cases::Donor {
                full_name: "王小明".into(),
                sex: None,
                birth_date: None,
                national_id: Some("330203198001010011".into()),
                phone: Some("13900004444".into()),
                email: Some("wang@example.com".into()),
                address: None,
                deceased: true,
                death_date: None,
                language: None,
                timezone: None,
            },
            cases::Donation {
                date: NaiveDate::from_ymd_opt(2025, 3, 14).unwrap_or_default(),
                kind: "kidney".into(),
                hospital: Some("宁波第一医院".into()),
            },
        )
    }

    #[test]
    fn every_pattern_builds() {
        assert_eq!(patterns().len(), 5);
    }

    #[test]
    fn the_proposal_holds_back_names_phones_dates_and_hospitals() {
        let (d, don) = donor();
        let known = known_details(&d, &don, &[]);
        let text = "亲爱的受者：我的父亲王小明于2025年3月14日在宁波第一医院离开了我们。小明生前常说要帮助别人。有事请打 139 0000 4444，或 3月20日 到鄞州区来。";
        let p = propose(text, &known);
        for gone in [
            "王小明",
            "小明",
            "2025年3月14日",
            "宁波第一医院",
            "139 0000 4444",
            "3月20日",
            "鄞州区",
        ] {
            assert!(!p.text.contains(gone), "{gone} in {}", p.text);
        }
        assert!(p.text.contains(WITHHELD_ZH));
        assert!(p.text.contains("生前常说要帮助别人"), "{}", p.text);
        let kinds: Vec<&str> = p.spans.iter().map(|s| s.kind.as_str()).collect();
        assert!(kinds.contains(&"donor.full_name"), "{kinds:?}");
        assert!(kinds.contains(&"donation.hospital"), "{kinds:?}");
        assert!(kinds.contains(&"date"), "{kinds:?}");
        let chars: Vec<char> = text.chars().collect();
        for s in &p.spans {
            assert_eq!(chars[s.start..s.end].iter().collect::<String>(), s.text);
        }
        assert!(remaining(&p.text, &known).is_empty());
    }

    #[test]
    fn english_letters_lose_dates_places_emails_and_ids() {
        let p = propose(
            "Dear friend, on March 14, 2025 at St Mary Hospital my mother (ID 330203198001010011, mail wang@example.com) gave you life.",
            &[],
        );
        for gone in [
            "March 14, 2025",
            "St Mary Hospital",
            "330203198001010011",
            "wang@example.com",
        ] {
            assert!(!p.text.contains(gone), "{gone} in {}", p.text);
        }
        assert!(p.text.contains(WITHHELD_EN));
        assert!(
            p.text.starts_with("Dear friend, on [withheld]"),
            "{}",
            p.text
        );
    }

    #[test]
    fn the_release_gate_ignores_case_and_spaces() {
        let known = vec![Known {
            kind: "contact.full_name",
            value: "Li Wei".into(),
        }];
        assert_eq!(remaining("from LI  WEI with love", &known).len(), 1);
        assert_eq!(remaining("from liwei", &known).len(), 1);
        assert!(remaining("from a grateful family", &known).is_empty());
        let phone = vec![Known {
            kind: "donor.phone",
            value: "13900004444".into(),
        }];
        assert_eq!(remaining("call 139-0000-4444", &phone).len(), 1);
    }

    #[test]
    fn a_phone_with_its_country_code_is_held_back_without_it_too() {
        let (mut d, don) = donor();
        d.phone = Some("+86 139 0000 1111".into());
        let known = known_details(&d, &don, &[]);
        assert_eq!(remaining("请打13900001111", &known).len(), 1);
        assert!(!propose("请打 139-0000-1111", &known).text.contains("1111"));
    }

    #[test]
    fn segments_mark_each_span() {
        let p = propose("我在2025-03-14写信", &[]);
        let seg = segments("我在2025-03-14写信", &p.spans);
        assert_eq!(
            seg,
            vec![
                ("我在".to_string(), None),
                ("2025-03-14".to_string(), Some("date".to_string())),
                ("写信".to_string(), None)
            ]
        );
    }
}
