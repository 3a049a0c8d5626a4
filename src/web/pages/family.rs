//! The family portal, for bereaved families and living donors: what is coming and what was sent
//! (the portal's own messages are read here), their preferences, their consents and withdrawing
//! one, who opened their file, and signing out on every device. Each page goes through the same
//! domain functions as `/api/v1/me/…`, which decide that a family reaches its own records only;
//! staff are refused there (403) as on the API, and dates are shown in the family's own zone.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::form::{self, Blank, FormData, Kind};
use super::view::{word, Page};
use crate::domain::consents::{self, ConsentFilter, ConsentView};
use crate::domain::contacts::{self, ContactView};
use crate::domain::outreach::{self, OutreachFilter, OutreachView};
use crate::domain::types::{Channel, Language, Role};
use crate::domain::{accounts, family, schedule, MAX_PAGE};
use crate::error::{Error, FieldErrors};
use crate::policy::Actor;
use crate::schedule::calendar::Festival;
use crate::web::i18n;
use crate::web::session::{self, PageUser};
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("me_home", include_str!("../../../templates/me_home.hbs")),
    (
        "me_messages",
        include_str!("../../../templates/me_messages.hbs"),
    ),
    (
        "me_preferences",
        include_str!("../../../templates/me_preferences.hbs"),
    ),
    (
        "me_consents",
        include_str!("../../../templates/me_consents.hbs"),
    ),
    (
        "me_withdraw",
        include_str!("../../../templates/me_withdraw.hbs"),
    ),
    (
        "me_access_log",
        include_str!("../../../templates/me_access_log.hbs"),
    ),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(home))
        .route("/me/messages", get(messages))
        .route("/me/preferences", get(preferences).post(save_preferences))
        .route("/me/consents", get(consent_list))
        .route(
            "/me/consents/{id}/withdraw",
            get(withdraw_confirm).post(withdraw),
        )
        .route("/me/access-log", get(access_log))
        .route("/me/sign-out-everywhere", post(sign_out_everywhere))
}

/// Messages, consents and log entries on one page.
const PER_PAGE: usize = 20;
/// The family's listings are read whole, `MAX_PAGE` at a time, up to this many reads: a family
/// hears from us a few times a year, so this is decades of messages.
const MAX_READS: usize = 10;
/// What the portal's home shows of each list; the rest is on the messages page.
const COMING_ON_HOME: usize = 5;
const RECENT_ON_HOME: usize = 3;
/// Messages still to go (or to be tried again), and those that went or could not.
const COMING: &[&str] = &["scheduled", "held", "failed"];
const HISTORY: &[&str] = &["sent", "dead"];
/// The consents a family withdraws itself; others through their coordinator.
const WITHDRAWABLE: &[&str] = &["contact", "publicity", "correspondence"];
/// The ways we may write to a family, in the order the form offers them.
const CHANNELS: &[Channel] = &[
    Channel::Portal,
    Channel::Wechat,
    Channel::Sms,
    Channel::Email,
    Channel::Letter,
];
/// The preferences form's fields, by their API names.
const PREF_FIELDS: &[(&str, Kind)] = &[
    ("preferred_channel", Kind::Text),
    ("language", Kind::Text),
    ("mourning_days", Kind::Bool),
    ("skip_festivals", Kind::List),
    ("do_not_contact_until", Kind::Text),
    ("opted_out", Kind::Bool),
];

/// The signed-in user (else to the sign-in page) and their own contact record, which says
/// which zone their dates are in. Staff are refused here by the domain (403).
async fn family_of<'p>(
    s: &AppState,
    page: &'p Page,
) -> Result<(&'p PageUser, ContactView), Response> {
    let user = page.user()?;
    match contacts::family_view(&s.svc, &user.actor, s.now()).await {
        Ok(c) => Ok((user, c)),
        Err(e) => Err(page.error(s, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// Everything the family was sent or is due to be sent: still to come (in date order) and
/// already gone (newest first). Cancelled messages are not theirs to worry about.
struct Messages {
    coming: Vec<OutreachView>,
    history: Vec<OutreachView>,
}

async fn messages_of(s: &AppState, actor: &Actor) -> Result<Messages, Error> {
    let now = s.now();
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_READS {
        let filter = OutreachFilter {
            limit: Some(MAX_PAGE),
            cursor: cursor.take(),
        };
        let page = outreach::family_outreach(&s.svc, actor, filter, now).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let coming: Vec<OutreachView> = all
        .iter()
        .filter(|m| COMING.contains(&m.status.as_str()))
        .cloned()
        .collect();
    let mut history: Vec<OutreachView> = all
        .into_iter()
        .filter(|m| HISTORY.contains(&m.status.as_str()))
        .collect();
    history.sort_by_key(|m| std::cmp::Reverse(gone_at(m)));
    Ok(Messages { coming, history })
}

fn gone_at(m: &OutreachView) -> DateTime<Utc> {
    m.sent_at.unwrap_or(m.due_at)
}

/// A message as the family reads it: what, when, how, where it stands, and for a portal
/// message its text. One whose channel is not fixed yet goes the way the family prefers.
fn message_item(m: &OutreachView, preferred: Channel) -> Value {
    json!({
        "id": m.id,
        "template": m.template,
        "channel": m.channel.as_deref().unwrap_or(preferred.as_str()),
        "status": m.status,
        "due_at": m.due_at,
        "gone_at": gone_at(m),
        "message": m.message,
    })
}

async fn home(State(s): State<AppState>, page: Page) -> Response {
    let (user, contact) = match family_of(&s, &page).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let msgs = match messages_of(&s, &user.actor).await {
        Ok(m) => m,
        Err(e) => return page.error(&s, e),
    };
    let today = crate::schedule::calendar::local_date(
        contact
            .timezone
            .parse::<chrono_tz::Tz>()
            .unwrap_or(s.svc.schedule.default_tz),
        s.now(),
    );
    let paused = contact.do_not_contact_until.filter(|d| *d >= today);
    let coming: Vec<Value> = msgs
        .coming
        .iter()
        .take(COMING_ON_HOME)
        .map(|m| message_item(m, contact.preferred_channel))
        .collect();
    let recent: Vec<Value> = msgs
        .history
        .iter()
        .take(RECENT_ON_HOME)
        .map(|m| message_item(m, contact.preferred_channel))
        .collect();
    page.render(
        &s,
        StatusCode::OK,
        "me_home",
        json!({
            "title": "me-title",
            "tz": contact.timezone,
            "opted_out": contact.opted_out,
            "paused_until": paused,
            "channel": contact.preferred_channel.as_str(),
            "coming": coming,
            "coming_more": msgs.coming.len().saturating_sub(COMING_ON_HOME),
            "recent": recent,
            "more_sent": msgs.history.len() > RECENT_ON_HOME,
        }),
    )
}

#[derive(Deserialize, Default)]
struct MessagesQuery {
    show: Option<String>,
    page: Option<String>,
}

/// The messages page: those sent (newest first; a portal message with its text), or with
/// `show=coming` those still to come; `page` counts from 1, and anything else is the first.
async fn messages(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<MessagesQuery>,
) -> Response {
    let (user, contact) = match family_of(&s, &page).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let msgs = match messages_of(&s, &user.actor).await {
        Ok(m) => m,
        Err(e) => return page.error(&s, e),
    };
    let coming = q.show.as_deref() == Some("coming");
    let list = if coming { &msgs.coming } else { &msgs.history };
    let pages = list.len().div_ceil(PER_PAGE).max(1);
    let n = q
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|p| (1..=pages).contains(p))
        .unwrap_or(1);
    let items: Vec<Value> = list
        .iter()
        .skip((n - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|m| message_item(m, contact.preferred_channel))
        .collect();
    let href = |p: usize| {
        let mut ser = super::view::query_href("/me/messages");
        if coming {
            ser.append_pair("show", "coming");
        }
        if p > 1 {
            ser.append_pair("page", &p.to_string());
        }
        ser.finish()
    };
    page.render(
        &s,
        StatusCode::OK,
        "me_messages",
        json!({
            "title": "me-messages-title",
            "tz": contact.timezone,
            "coming": coming,
            "items": items,
            "counts": {"coming": msgs.coming.len(), "sent": msgs.history.len()},
            "page": n,
            "pages": pages,
            "newer": (n > 1).then(|| href(n - 1)),
            "older": (n < pages).then(|| href(n + 1)),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Preferences

#[derive(Deserialize, Default)]
struct SavedQuery {
    saved: Option<String>,
    withdrawn: Option<String>,
    cursor: Option<String>,
}

fn preference_options() -> Value {
    let channels: Vec<Value> = CHANNELS
        .iter()
        .map(|c| json!({"value": c.as_str(), "key": format!("me-prefs-channel-{}", c.as_str())}))
        .collect();
    let languages: Vec<Value> = Language::ALL
        .iter()
        .map(|l| json!({"value": l.as_str(), "key": format!("me-prefs-language-{}", l.as_str())}))
        .collect();
    let festivals: Vec<Value> = Festival::ALL
        .iter()
        .map(|f| {
            json!({"value": f.as_str(), "key": format!("me-festival-{}", f.as_str().replace('_', "-"))})
        })
        .collect();
    json!({"preferred_channel": channels, "language": languages, "skip_festivals": festivals})
}

fn show_preferences(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    tz: &str,
    values: Value,
    errors: Value,
    saved: bool,
) -> Response {
    page.render(
        s,
        status,
        "me_preferences",
        json!({
            "title": "me-prefs-title",
            "tz": tz,
            "values": values,
            "errors": errors,
            "saved": saved,
            "options": preference_options(),
        }),
    )
}

async fn preferences(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<SavedQuery>,
) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (c, p) = match schedule::family_preferences(&s.svc, &user.actor, s.now()).await {
        Ok(v) => v,
        Err(e) => return page.error(&s, e),
    };
    let values = json!({
        "preferred_channel": c.preferred_channel.as_str(),
        "language": c.language.as_str(),
        "mourning_days": p.mourning_days.to_string(),
        "skip_festivals": p.skip_festivals,
        "do_not_contact_until": c.do_not_contact_until.map(|d| d.to_string()),
        "opted_out": c.opted_out.to_string(),
    });
    let saved = q.saved.is_some();
    show_preferences(
        &s,
        &page,
        StatusCode::OK,
        &c.timezone,
        values,
        json!({}),
        saved,
    )
}

/// The domain's refusals beside the form's fields, in words a family reads: a way of writing
/// we have no address for is said on the choice of way.
fn preference_errors(lang: &str, e: &FieldErrors) -> Value {
    let mut out = Map::new();
    for (k, v) in e {
        let (name, text) = match k.as_str() {
            "email" | "phone" | "address" | "wechat_id" => (
                "preferred_channel",
                i18n::text(lang, &format!("me-prefs-no-{k}"), &[]),
            ),
            "skip_festivals" => (
                "skip_festivals",
                i18n::text(lang, "me-prefs-festivals-invalid", &[]),
            ),
            "do_not_contact_until" => (
                "do_not_contact_until",
                i18n::text(lang, "me-prefs-date-invalid", &[]),
            ),
            other => (other, i18n::field_message(lang, v)),
        };
        out.entry(name.to_string()).or_insert(json!(text));
    }
    Value::Object(out)
}

async fn save_preferences(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let patch = f.json(PREF_FIELDS, Blank::Null);
    let now = s.now();
    let done =
        schedule::update_family_preferences(&s.svc, &user.actor, patch, &s.default_timezone, now)
            .await;
    match done {
        Ok((c, _)) => {
            // The pages follow the language the family is written to; the switch's cookie
            // would otherwise outrank the new choice.
            let mut resp = page.see_other(&s, "/me/preferences?saved=1");
            resp.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(
                    i18n::LANG_COOKIE,
                    c.language.as_str(),
                    "/",
                    365 * 86400,
                    s.secure_cookies,
                ),
            );
            resp
        }
        Err(Error::Validation(e)) => {
            let tz = match contacts::family_view(&s.svc, &user.actor, now).await {
                Ok(c) => c.timezone,
                Err(e) => return page.error(&s, e),
            };
            let errors = preference_errors(page.lang, &e);
            let code = StatusCode::UNPROCESSABLE_ENTITY;
            show_preferences(&s, &page, code, &tz, f.values(), errors, false)
        }
        Err(e) => page.error(&s, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Consents

/// Who gave a consent or whom it concerns, as the family says it.
fn party(who: &str, own: &str) -> &'static str {
    if who == own {
        "you"
    } else if who == "donor" {
        "donor"
    } else {
        "family"
    }
}

/// Whether a contact consent names its channels (one that names none covers every channel).
fn named_channels(c: &ConsentView) -> bool {
    c.scope
        .as_ref()
        .and_then(|s| s.channels.as_ref())
        .is_some_and(|chs| !chs.is_empty())
}

/// The channels a contact consent covers, in words (every channel when it names none).
fn channel_words(lang: &str, c: &ConsentView) -> String {
    let listed: Vec<String> = c
        .scope
        .as_ref()
        .and_then(|s| s.channels.as_ref())
        .map(|chs| {
            chs.iter()
                .map(|ch| word(lang, "me-channel", ch.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        i18n::text(lang, "me-consent-all-channels", &[])
    } else {
        listed.join(if lang == "en" { ", " } else { "、" })
    }
}

fn consent_item(lang: &str, c: &ConsentView, own: &str) -> Value {
    let mut v = json!({
        "id": c.id,
        "kind": c.kind,
        "status": c.status,
        "signed_at": c.signed_at,
        "expires_at": c.expires_at,
        "given_by": party(&c.given_by, own),
        "refusal": c.refusal,
        "can_withdraw": c.status == "active" && WITHDRAWABLE.contains(&c.kind.as_str()),
        "ask_coordinator": c.status == "active" && !WITHDRAWABLE.contains(&c.kind.as_str()),
    });
    if c.kind == "contact" {
        v["channels"] = json!(channel_words(lang, c));
    }
    v
}

async fn consent_list(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<SavedQuery>,
) -> Response {
    let (user, contact) = match family_of(&s, &page).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let filter = ConsentFilter {
        limit: Some(PER_PAGE as i64),
        cursor: form::blank_none(&q.cursor),
        ..Default::default()
    };
    let listed = match consents::family_list(&s.svc, &user.actor, filter, s.now()).await {
        Ok(p) => p,
        // A cursor not of this listing: the first page.
        Err(Error::Validation(_)) => {
            return page.see_other(&s, "/me/consents");
        }
        Err(e) => return page.error(&s, e),
    };
    // A withdrawal is its own record; the family sees it on the consent it withdrew.
    let items: Vec<Value> = listed
        .items
        .iter()
        .filter(|c| c.withdraws.is_none())
        .map(|c| consent_item(page.lang, c, &contact.id))
        .collect();
    page.render(
        &s,
        StatusCode::OK,
        "me_consents",
        json!({
            "title": "me-consents-title",
            "tz": contact.timezone,
            "items": items,
            "withdrawn": q.withdrawn.is_some(),
            "next": listed.next_cursor.map(|c| {
                let mut ser = super::view::query_href("/me/consents");
                ser.append_pair("cursor", &c);
                ser.finish()
            }),
            "first": q.cursor.is_some().then_some("/me/consents"),
        }),
    )
}

/// One of the family's own consents, looked up through their own listing; `None` if it is not
/// theirs (or does not exist), which the pages answer with 404 alike.
async fn own_consent(s: &AppState, actor: &Actor, id: &str) -> Result<Option<ConsentView>, Error> {
    let now = s.now();
    let mut cursor = None;
    for _ in 0..MAX_READS {
        let filter = ConsentFilter {
            limit: Some(MAX_PAGE),
            cursor: cursor.take(),
            ..Default::default()
        };
        let page = consents::family_list(&s.svc, actor, filter, now).await?;
        if let Some(c) = page.items.into_iter().find(|c| c.id == id) {
            return Ok(Some(c));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(None)
}

/// The confirmation page: what the consent is and, in plain words, what withdrawing it
/// changes, with the form (`reason`). `state` is `None` while it can be withdrawn.
#[allow(clippy::too_many_arguments)]
fn show_withdraw(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    tz: &str,
    own: &str,
    c: &ConsentView,
    values: Value,
    errors: Value,
) -> Response {
    let lang = page.lang;
    let state = if c.withdraws.is_some() || c.status != "active" {
        Some("me-withdraw-not-active")
    } else if !WITHDRAWABLE.contains(&c.kind.as_str()) {
        Some("me-withdraw-ask-coordinator")
    } else {
        None
    };
    let effect = match c.kind.as_str() {
        "contact" => vec![
            if named_channels(c) {
                i18n::text(
                    lang,
                    "me-withdraw-contact-effect",
                    &[("channels", json!(channel_words(lang, c)))],
                )
            } else {
                i18n::text(lang, "me-withdraw-contact-effect-all", &[])
            },
            i18n::text(lang, "me-withdraw-contact-pending", &[]),
        ],
        "publicity" => vec![
            i18n::text(lang, "me-withdraw-publicity-effect", &[]),
            i18n::text(lang, "me-withdraw-publicity-printed", &[]),
        ],
        "correspondence" => vec![i18n::text(lang, "me-withdraw-correspondence-effect", &[])],
        _ => Vec::new(),
    };
    page.render(
        s,
        status,
        "me_withdraw",
        json!({
            "title": "me-withdraw-title",
            "tz": tz,
            "c": consent_item(lang, c, own),
            "state": state,
            "effect": effect,
            "values": values,
            "errors": errors,
        }),
    )
}

async fn withdraw_confirm(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let (user, contact) = match family_of(&s, &page).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match own_consent(&s, &user.actor, &id).await {
        Ok(Some(c)) => show_withdraw(
            &s,
            &page,
            StatusCode::OK,
            &contact.timezone,
            &contact.id,
            &c,
            json!({}),
            json!({}),
        ),
        Ok(None) => page.not_found(&s),
        Err(e) => page.error(&s, e),
    }
}

async fn withdraw(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let reason = f.get("reason").unwrap_or_default();
    let done = consents::family_withdraw(&s.svc, &user.actor, &id, reason, s.now()).await;
    let (status, errors) = match done {
        Ok(_) => return page.see_other(&s, "/me/consents?withdrawn=1"),
        Err(Error::Validation(e)) => {
            let errors: Map<String, Value> = e
                .iter()
                .filter(|(k, _)| k.as_str() == "reason")
                .map(|(k, v)| (k.clone(), json!(i18n::field_message(page.lang, v))))
                .collect();
            (StatusCode::UNPROCESSABLE_ENTITY, Value::Object(errors))
        }
        // Withdrawn already (perhaps from another device): the page says so.
        Err(Error::Conflict { .. }) => (StatusCode::CONFLICT, json!({})),
        Err(e) => return page.error(&s, e),
    };
    // Shown again with what the domain said; it was found theirs, so it is in their listing.
    let (_, contact) = match family_of(&s, &page).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match own_consent(&s, &user.actor, &id).await {
        Ok(Some(c)) => show_withdraw(
            &s,
            &page,
            status,
            &contact.timezone,
            &contact.id,
            &c,
            f.values(),
            errors,
        ),
        Ok(None) => page.not_found(&s),
        Err(e) => page.error(&s, e),
    }
}

// ---------------------------------------------------------------------------------------------
// Who opened the file

#[derive(Deserialize, Default)]
struct CursorQuery {
    cursor: Option<String>,
}

async fn access_log(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<CursorQuery>,
) -> Response {
    let (user, contact) = match family_of(&s, &page).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let cursor = form::blank_none(&q.cursor);
    let limit = Some(PER_PAGE as i64);
    let listed =
        match family::access_log(&s.svc, &user.actor, cursor.as_deref(), limit, s.now()).await {
            Ok(p) => p,
            Err(Error::Validation(_)) => return page.see_other(&s, "/me/access-log"),
            Err(e) => return page.error(&s, e),
        };
    let items: Vec<Value> = listed
        .items
        .iter()
        .map(|e| {
            let key = format!("me-access-{}", e.action.replace(['.', '_'], "-"));
            let what = if i18n::has(page.lang, &key) {
                i18n::text(page.lang, &key, &[])
            } else {
                i18n::text(page.lang, "me-access-other", &[])
            };
            json!({
                "at": e.at,
                "role": e.staff_role,
                "name": e.staff_name,
                "what": what,
                "break_glass": e.break_glass,
            })
        })
        .collect();
    page.render(
        &s,
        StatusCode::OK,
        "me_access_log",
        json!({
            "title": "me-access-title",
            "tz": contact.timezone,
            "items": items,
            "next": listed.next_cursor.map(|c| {
                let mut ser = super::view::query_href("/me/access-log");
                ser.append_pair("cursor", &c);
                ser.finish()
            }),
            "first": q.cursor.is_some().then_some("/me/access-log"),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Signing out on every device

/// End every session and token of the account, this one too: a phone lost, a computer
/// shared. Then to the sign-in page.
async fn sign_out_everywhere(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = page.staff(&s, &[Role::Family]) {
        return r;
    }
    match accounts::end_all_sessions(&s.svc, &user.actor, s.now()).await {
        Ok(_) => {
            let mut resp = page.see_other(&s, "/login");
            resp.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(session::SESSION_COOKIE, "", "/", 0, s.secure_cookies),
            );
            resp
        }
        Err(e) => page.error(&s, e),
    }
}
