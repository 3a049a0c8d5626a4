//! The admin's pages: accounts (role, region, disabling, a setup link to set a password, TOTP
//! reset), care plans with a preview of the dates they make ([`plans`]), the outreach
//! templates on sample values and the keyring with its rotation ([`keys`]). Every action goes
//! through the same domain calls as the API, which decide access (admins only) and audit it.

#[path = "admin_keys.rs"]
mod keys;
#[path = "admin_plans.rs"]
mod plans;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::cases::options;
use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::{filtered_href, Page};
use crate::domain::accounts::{self, NewUserInput, UserFilter, UserPatch, UserView};
use crate::domain::from_json;
use crate::domain::types::Role;
use crate::error::{Error, FieldErrors};
use crate::web::i18n;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin_users",
        include_str!("../../../templates/admin_users.hbs"),
    ),
    (
        "admin_user_new",
        include_str!("../../../templates/admin_user_new.hbs"),
    ),
    (
        "admin_user",
        include_str!("../../../templates/admin_user.hbs"),
    ),
    (
        "admin_plans",
        include_str!("../../../templates/admin_plans.hbs"),
    ),
    (
        "admin_plan",
        include_str!("../../../templates/admin_plan.hbs"),
    ),
    (
        "admin_templates",
        include_str!("../../../templates/admin_templates.hbs"),
    ),
    (
        "admin_keys",
        include_str!("../../../templates/admin_keys.hbs"),
    ),
];

/// Accounts listed on a page.
const PER_PAGE: i64 = 50;
const ADMIN: &[Role] = &[Role::Admin];
/// The new-account form's fields, by their API names.
const NEW_FIELDS: &[(&str, Kind)] = &[
    ("username", Kind::Text),
    ("display_name", Kind::Text),
    ("role", Kind::Text),
    ("region", Kind::Text),
    ("email", Kind::Text),
];
/// The account form's fields (`PATCH /api/v1/users/{id}`); a blank region or email clears it.
const EDIT_FIELDS: &[(&str, Kind)] = &[
    ("display_name", Kind::Text),
    ("role", Kind::Text),
    ("region", Kind::Text),
    ("email", Kind::Text),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin_root))
        .route("/admin/users", get(users))
        .route("/admin/users/new", get(new_user).post(create_user))
        .route("/admin/users/{id}", get(user_page).post(update_user))
        .route("/admin/users/{id}/disabled", post(set_disabled))
        .route("/admin/users/{id}/setup-link", post(setup_link))
        .route("/admin/users/{id}/totp-reset", post(totp_reset))
        .merge(plans::routes())
        .merge(keys::routes())
}

async fn admin_root(State(s): State<AppState>, page: Page) -> Response {
    match page.staff(&s, ADMIN) {
        Ok(_) => page.see_other(&s, "/admin/users"),
        Err(r) => r,
    }
}

/// The admin signed in, or the answer (sign in; 403 for other roles).
fn admin<'a>(s: &AppState, page: &'a Page) -> Result<&'a crate::web::session::PageUser, Response> {
    page.staff(s, ADMIN)
}

/// An admin's form post: the CSRF token first, then the role.
fn admin_post<'a>(
    s: &AppState,
    page: &'a Page,
    f: &FormData,
) -> Result<&'a crate::web::session::PageUser, Response> {
    page.check_csrf(s, f.csrf())?;
    page.staff(s, ADMIN)
}

/// Conflicts the account pages explain in their own words (the domain's message otherwise).
const CONFLICTS: &[(&str, &str)] = &[
    ("this is the last active admin", "admin-last-admin"),
    (
        "the account is disabled; enable it first",
        "admin-enable-first",
    ),
    (
        "the previous rotation is still re-wrapping case keys",
        "admin-keys-busy",
    ),
];

/// A domain conflict as a field message: `{field: words}`.
fn conflict(lang: &str, field: Option<String>, message: &str, default_field: &str) -> Value {
    let words = CONFLICTS
        .iter()
        .find(|(m, _)| *m == message)
        .map(|(_, key)| i18n::text(lang, key, &[]))
        .unwrap_or_else(|| i18n::field_message(lang, message));
    let mut m = Map::new();
    m.insert(field.unwrap_or_else(|| default_field.into()), json!(words));
    Value::Object(m)
}

fn roles() -> Vec<&'static str> {
    Role::ALL.iter().map(|r| r.as_str()).collect()
}

#[derive(Deserialize, Default)]
struct UsersQuery {
    q: Option<String>,
    role: Option<String>,
    cursor: Option<String>,
}

/// The accounts: searched by username or name, filtered by role, a page at a time.
async fn users(State(s): State<AppState>, page: Page, Query(q): Query<UsersQuery>) -> Response {
    let user = match admin(&s, &page) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let filter = UserFilter {
        q: blank_none(&q.q),
        role: blank_none(&q.role),
        cursor: blank_none(&q.cursor),
        limit: Some(PER_PAGE),
    };
    let searched = filter.q.is_some() || filter.role.is_some();
    let (code, items, next, errors) =
        match accounts::search_users(&s.svc, &user.actor, filter, s.now()).await {
            Ok(p) => (StatusCode::OK, p.items, p.next_cursor, json!({})),
            Err(Error::Validation(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                None,
                form::errors(page.lang, &e),
            ),
            Err(e) => return page.error(&s, e),
        };
    let filters = [("q", &q.q), ("role", &q.role)];
    let next = next.map(|c| filtered_href("/admin/users", &filters, &[("cursor", &c)]));
    page.render(
        &s,
        code,
        "admin_users",
        json!({
            "title": "admin-users-title",
            "users": items,
            "searched": searched,
            "next": next,
            "first_page": q.cursor.is_some(),
            "values": {"q": q.q, "role": q.role},
            "errors": errors,
            "options": {"role": options("role", &roles())},
        }),
    )
}

fn new_user_form(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    page.render(
        s,
        status,
        "admin_user_new",
        json!({
            "title": "admin-user-new-title",
            "values": values,
            "errors": errors,
            "options": {"role": options("role", &roles())},
        }),
    )
}

async fn new_user(State(s): State<AppState>, page: Page) -> Response {
    if let Err(r) = admin(&s, &page) {
        return r;
    }
    new_user_form(&s, &page, StatusCode::OK, json!({}), json!({}))
}

/// Create an account with `POST /api/v1/users`'s validation; the person then sets a password
/// through a setup link issued from the account's page.
async fn create_user(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let created = match from_json::<NewUserInput>(f.json(NEW_FIELDS, Blank::Omit)) {
        Ok(input) => accounts::create_user(&s.svc, &user.actor, input, s.now()).await,
        Err(e) => Err(e),
    };
    let code = StatusCode::UNPROCESSABLE_ENTITY;
    match created {
        Ok(u) => page.see_other(&s, &format!("/admin/users/{}?created=1", u.id)),
        Err(Error::Validation(e)) => {
            new_user_form(&s, &page, code, f.values(), form::errors(page.lang, &e))
        }
        Err(Error::Conflict { field, message }) => {
            let errors = conflict(page.lang, field, &message, "username");
            new_user_form(&s, &page, StatusCode::CONFLICT, f.values(), errors)
        }
        Err(e) => page.error(&s, e),
    }
}

#[derive(Deserialize, Default)]
struct UserQuery {
    created: Option<String>,
    saved: Option<String>,
}

/// What the account page shows besides the account: the form's values and errors, a notice,
/// and a setup link just issued.
#[derive(Default)]
struct UserPageState {
    values: Option<Value>,
    errors: Value,
    notice: Option<&'static str>,
    setup_url: Option<String>,
}

/// One account with its forms: details (name, role, region, email), enable or disable, a
/// setup link, TOTP reset.
async fn show_user(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    st: UserPageState,
) -> Response {
    let user = match admin(s, page) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let u: UserView = match accounts::get_user(&s.svc, &user.actor, id, s.now()).await {
        Ok(u) => u,
        Err(e) => return page.error(s, e),
    };
    let values = st.values.unwrap_or_else(|| {
        json!({
            "display_name": u.display_name,
            "role": u.role,
            "region": u.region,
            "email": u.email,
        })
    });
    page.render(
        s,
        status,
        "admin_user",
        json!({
            "title": "admin-user-title",
            "u": u,
            "own": u.id == user.actor.user_id,
            "values": values,
            "errors": st.errors,
            "notice": st.notice,
            "setup_url": st.setup_url,
            "setup_hours": accounts::USER_SETUP_LINK_HOURS,
            "options": {"role": options("role", &roles())},
        }),
    )
}

async fn user_page(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<UserQuery>,
) -> Response {
    let notice = match (q.created.is_some(), q.saved.as_deref()) {
        (true, _) => Some("admin-user-created"),
        (_, Some("details")) => Some("admin-user-saved"),
        (_, Some("disabled")) => Some("admin-user-disabled-notice"),
        (_, Some("enabled")) => Some("admin-user-enabled-notice"),
        (_, Some("totp")) => Some("admin-user-totp-reset-notice"),
        _ => None,
    };
    let st = UserPageState {
        notice,
        ..Default::default()
    };
    show_user(&s, &page, &id, StatusCode::OK, st).await
}

/// Change the account's details with `PATCH /api/v1/users/{id}`'s validation.
async fn update_user(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match from_json::<UserPatch>(f.json(EDIT_FIELDS, Blank::Null)) {
        Ok(patch) => accounts::update_user(&s.svc, &user.actor, &id, patch, s.now()).await,
        Err(e) => Err(e),
    };
    let again = |status, errors| {
        let st = UserPageState {
            values: Some(f.values()),
            errors,
            ..Default::default()
        };
        (status, st)
    };
    let (status, st) = match done {
        Ok(_) => return page.see_other(&s, &format!("/admin/users/{id}?saved=details")),
        Err(Error::Validation(e)) => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            form::errors(page.lang, &e),
        ),
        Err(Error::Conflict { field, message }) => again(
            StatusCode::CONFLICT,
            conflict(page.lang, field, &message, "role"),
        ),
        Err(e) => return page.error(&s, e),
    };
    show_user(&s, &page, &id, status, st).await
}

/// Disable (every session and token ends at once) or enable an account.
async fn set_disabled(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let disabled = match f.get("disabled") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            let mut e = FieldErrors::new();
            e.insert("disabled".into(), "must be true or false".into());
            let st = UserPageState {
                errors: form::errors(page.lang, &e),
                ..Default::default()
            };
            return show_user(&s, &page, &id, StatusCode::UNPROCESSABLE_ENTITY, st).await;
        }
    };
    let patch = UserPatch {
        display_name: None,
        role: None,
        region: None,
        disabled: Some(disabled),
        password: None,
        email: None,
    };
    match accounts::update_user(&s.svc, &user.actor, &id, patch, s.now()).await {
        Ok(_) => {
            let saved = if disabled { "disabled" } else { "enabled" };
            page.see_other(&s, &format!("/admin/users/{id}?saved={saved}"))
        }
        Err(Error::Conflict { field, message }) => {
            refused_on_disabled(&s, &page, &id, field, &message).await
        }
        Err(e) => page.error(&s, e),
    }
}

/// The account page again, with a conflict (the last admin, a disabled account) beside the
/// field it is about (the disable control unless the domain names another).
async fn refused_on_disabled(
    s: &AppState,
    page: &Page,
    id: &str,
    field: Option<String>,
    message: &str,
) -> Response {
    let st = UserPageState {
        errors: conflict(page.lang, field, message, "disabled"),
        ..Default::default()
    };
    show_user(s, page, id, StatusCode::CONFLICT, st).await
}

/// Issue a one-time link through which the person sets their password; shown once, here.
async fn setup_link(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match accounts::issue_user_setup_link(&s.svc, &user.actor, &id, s.now()).await {
        Ok(token) => {
            let url = format!(
                "{}/setup/{}",
                s.public_url.trim_end_matches('/'),
                token.expose()
            );
            let st = UserPageState {
                setup_url: Some(url),
                ..Default::default()
            };
            show_user(&s, &page, &id, StatusCode::OK, st).await
        }
        Err(Error::Conflict { field, message }) => {
            refused_on_disabled(&s, &page, &id, field, &message).await
        }
        Err(e) => page.error(&s, e),
    }
}

/// Remove the account's TOTP enrolment (a lost phone); audited like the API's.
async fn totp_reset(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match accounts::reset_totp(&s.svc, &user.actor, &id, s.now()).await {
        Ok(_) => page.see_other(&s, &format!("/admin/users/{id}?saved=totp")),
        Err(e) => page.error(&s, e),
    }
}
