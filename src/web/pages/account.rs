//! Signing in and out, the family's invitation and the first administrator's setup link.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::form::{self, FormData};
use super::view::Page;
use crate::crypto::{random_token, SecretString};
use crate::domain::accounts::{self, LoginInput, NewUserInput};
use crate::domain::family::{self, AcceptInput};
use crate::domain::types::MIN_PASSWORD;
use crate::error::{Error, FieldErrors};
use crate::web::extract::ClientAddr;
use crate::web::i18n;
use crate::web::session::{self, LOGIN_CSRF_COOKIE};
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("login", include_str!("../../../templates/login.hbs")),
    ("invite", include_str!("../../../templates/invite.hbs")),
    ("setup", include_str!("../../../templates/setup.hbs")),
    (
        "setup_done",
        include_str!("../../../templates/setup_done.hbs"),
    ),
    ("account", include_str!("../../../templates/account.hbs")),
    (
        "account_totp",
        include_str!("../../../templates/account_totp.hbs"),
    ),
    (
        "setup_password",
        include_str!("../../../templates/setup_password.hbs"),
    ),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/setup/{token}", get(setup_form).post(setup_submit))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/invite/{token}", get(invite_form).post(invite_submit))
        .route("/account", get(account_page))
        .route("/account/language", post(account_language))
        .route("/account/password", post(account_password))
        .route("/account/totp", get(totp_page))
        .route("/account/totp/begin", post(totp_begin))
        .route("/account/totp/confirm", post(totp_confirm))
}

#[derive(serde::Deserialize)]
struct AccountQuery {
    saved: Option<String>,
}

fn account_view(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    language: Option<String>,
    saved: Option<&str>,
    errors: serde_json::Value,
) -> Response {
    let role = page.user.as_ref().map(|u| u.actor.role);
    page.render(
        s,
        status,
        "account",
        json!({
            "title": "account-title",
            "role": role,
            "staff": role.is_some_and(|r| TOTP_ROLES.contains(&r)),
            "values": {"language": language.unwrap_or_else(|| page.lang.to_string())},
            "errors": errors,
            "saved": saved.filter(|k| ["language", "password"].contains(k)),
            "hint_args": {"min": MIN_PASSWORD},
            "options": {"language": super::cases::options("language", accounts::LANGUAGES)},
        }),
    )
}

/// One's own account: the language of the pages and the password.
async fn account_page(
    State(s): State<AppState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<AccountQuery>,
) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    match accounts::language(&s.svc, &user.actor).await {
        Ok(l) => account_view(&s, &page, StatusCode::OK, l, q.saved.as_deref(), json!({})),
        Err(e) => page.error(&s, e),
    }
}

async fn account_language(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let chosen = f.text("language").unwrap_or_default();
    match accounts::set_language(&s.svc, &user.actor, &chosen, s.now()).await {
        Ok(()) => {
            // The switch's cookie would otherwise outrank the new choice.
            let mut resp = page.see_other(&s, "/account?saved=language");
            resp.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(
                    i18n::LANG_COOKIE,
                    &chosen,
                    "/",
                    365 * 86400,
                    s.secure_cookies,
                ),
            );
            resp
        }
        Err(Error::Validation(e)) => account_view(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(chosen),
            None,
            form::errors(page.lang, &e),
        ),
        Err(e) => page.error(&s, e),
    }
}

/// A new password; every other session and token of the account ends, this one stays.
async fn account_password(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let again = |errors: &FieldErrors| {
        let language = Some(page.lang.to_string());
        account_view(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            language,
            None,
            form::errors(page.lang, errors),
        )
    };
    if f.get("new_password") != f.get("new_password_confirm") {
        return again(&conflict_errors(
            Some("new_password_confirm".into()),
            "does not match the password".into(),
        ));
    }
    let input = accounts::PasswordChange {
        current_password: SecretString::new(f.get("current_password").unwrap_or_default().into()),
        new_password: SecretString::new(f.get("new_password").unwrap_or_default().into()),
    };
    match accounts::change_password(&s.svc, &user.actor, user.session_hash(), input, s.now()).await
    {
        Ok(()) => page.see_other(&s, "/account?saved=password"),
        Err(Error::Validation(e)) => again(&e),
        Err(e) => page.error(&s, e),
    }
}

fn login_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    let csrf = random_token();
    let mut resp = page.render(
        s,
        status,
        "login",
        json!({"title": "login-title", "login_csrf": csrf.expose(),
               "values": {"username": username}, "error": error}),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf.expose(),
            "/login",
            3600,
            s.secure_cookies,
        ),
    );
    resp
}

async fn login_form(State(s): State<AppState>, page: Page) -> Response {
    if page.user.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&s, &page, StatusCode::OK, "", None)
}

/// Sign in with the form: CSRF (double-submit cookie), then the same checks and throttling as
/// the API, then a new session.
async fn login_submit(
    State(s): State<AppState>,
    page: Page,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    f: FormData,
) -> Response {
    let username = f.get("username").unwrap_or_default().to_string();
    let expected = session::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !session::same_token(expected, f.csrf().unwrap_or("")) {
        return login_page(
            &s,
            &page,
            StatusCode::FORBIDDEN,
            &username,
            Some("login-expired"),
        );
    }
    let input = LoginInput {
        username: username.clone(),
        password: SecretString::new(f.get("password").unwrap_or_default().to_string()),
        totp: f.text("totp"),
    };
    let now = s.now();
    match accounts::check_credentials(&s.svc, &input, client.as_deref(), now).await {
        Ok(signed) => match session::start(&s, signed, now).await {
            Ok(cookie) => {
                let mut resp = page.see_other(&s, "/");
                resp.headers_mut().append(header::SET_COOKIE, cookie);
                resp.headers_mut().append(
                    header::SET_COOKIE,
                    session::set_cookie(LOGIN_CSRF_COOKIE, "", "/login", 0, s.secure_cookies),
                );
                resp
            }
            Err(e) => page.error(&s, e),
        },
        Err(Error::TotpRequired) => login_page(
            &s,
            &page,
            StatusCode::UNAUTHORIZED,
            &username,
            Some("login-totp"),
        ),
        Err(Error::TooManyRequests { .. }) => login_page(
            &s,
            &page,
            StatusCode::TOO_MANY_REQUESTS,
            &username,
            Some("login-throttled"),
        ),
        Err(Error::InvalidCredentials) => login_page(
            &s,
            &page,
            StatusCode::UNAUTHORIZED,
            &username,
            Some("login-wrong"),
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn logout(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    match session::end(&s, user, s.now()).await {
        Ok(cookie) => {
            let mut resp = page.see_other(&s, "/login");
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp
        }
        Err(e) => page.error(&s, e),
    }
}

fn conflict_errors(field: Option<String>, message: String) -> FieldErrors {
    let mut m = FieldErrors::new();
    m.insert(field.unwrap_or_else(|| "username".into()), message);
    m
}

fn invite_gone(s: &AppState, page: &Page) -> Response {
    page.message(
        s,
        StatusCode::NOT_FOUND,
        "invite-gone-title",
        "invite-gone-body",
    )
}

async fn invite_form(State(s): State<AppState>, page: Page, Path(token): Path<String>) -> Response {
    match family::invite_valid(&s.svc, &token, s.now()).await {
        Ok(true) => page.render(
            &s,
            StatusCode::OK,
            "invite",
            json!({"title": "invite-title", "token": token, "hint_args": {"min": MIN_PASSWORD}}),
        ),
        Ok(false) => invite_gone(&s, &page),
        Err(e) => page.error(&s, e),
    }
}

async fn invite_submit(
    State(s): State<AppState>,
    page: Page,
    Path(token): Path<String>,
    f: FormData,
) -> Response {
    let again = |errors: &FieldErrors| {
        page.render(
            &s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invite",
            json!({"title": "invite-title", "token": token, "hint_args": {"min": MIN_PASSWORD},
                   "errors": form::errors(page.lang, errors), "values": f.values()}),
        )
    };
    if f.get("password") != f.get("password_confirm") {
        return again(&conflict_errors(
            Some("password_confirm".into()),
            "does not match the password".into(),
        ));
    }
    let input = AcceptInput {
        username: f.get("username").map(str::to_string),
        password: f.get("password").map(|p| SecretString::new(p.to_string())),
    };
    match family::accept(&s.svc, &token, input, s.now()).await {
        Ok(_) => page.see_other(&s, "/login"),
        Err(Error::Validation(e)) => again(&e),
        Err(Error::Conflict { field, message }) => again(&conflict_errors(field, message)),
        Err(Error::NotFound) => invite_gone(&s, &page),
        Err(e) => page.error(&s, e),
    }
}

fn link_gone(s: &AppState, page: &Page) -> Response {
    page.message(
        s,
        StatusCode::NOT_FOUND,
        "setup-gone-title",
        "setup-gone-body",
    )
}

async fn setup_form(State(s): State<AppState>, page: Page, Path(token): Path<String>) -> Response {
    match accounts::setup_link_valid(s.svc.store.as_ref(), &token, s.now()).await {
        // Not the first admin's link: perhaps an account's, to set its password.
        Ok(false) => user_setup_form(&s, &page, &token).await,
        Ok(true) => page.render(
            &s,
            StatusCode::OK,
            "setup",
            json!({"title": "setup-title", "token": token, "hint_args": {"min": MIN_PASSWORD}}),
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn setup_submit(
    State(s): State<AppState>,
    page: Page,
    Path(token): Path<String>,
    f: FormData,
) -> Response {
    let again = |errors: &FieldErrors| {
        page.render(
            &s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "setup",
            json!({"title": "setup-title", "token": token, "hint_args": {"min": MIN_PASSWORD},
                   "errors": form::errors(page.lang, errors), "values": f.values()}),
        )
    };
    match accounts::setup_link_valid(s.svc.store.as_ref(), &token, s.now()).await {
        Ok(true) => {}
        Ok(false) => return user_setup_submit(&s, &page, &token, &f).await,
        Err(e) => return page.error(&s, e),
    }
    if f.get("password") != f.get("password_confirm") {
        return again(&conflict_errors(
            Some("password_confirm".into()),
            "does not match the password".into(),
        ));
    }
    let input = NewUserInput {
        email: None,
        username: f.get("username").map(str::to_string),
        display_name: f.text("display_name"),
        role: None,
        region: None,
        password: f.get("password").map(|p| SecretString::new(p.to_string())),
    };
    match accounts::complete_setup(s.svc.store.as_ref(), &token, input, s.now()).await {
        Ok(user) => page.render(
            &s,
            StatusCode::OK,
            "setup_done",
            json!({"title": "setup-done-title", "username": user.username}),
        ),
        Err(Error::Validation(e)) => again(&e),
        Err(Error::Conflict { field, message }) => again(&conflict_errors(field, message)),
        Err(Error::NotFound) => link_gone(&s, &page),
        Err(e) => page.error(&s, e),
    }
}

/// An account's setup link (issued by an admin): the person sets their own password.
async fn user_setup_form(s: &AppState, page: &Page, token: &str) -> Response {
    match accounts::user_setup_link(s.svc.store.as_ref(), token, s.now()).await {
        Ok(Some(user)) => page.render(
            s,
            StatusCode::OK,
            "setup_password",
            json!({"title": "setup-password-title", "token": token, "username": user.username,
                   "hint_args": {"min": MIN_PASSWORD}}),
        ),
        Ok(None) => link_gone(s, page),
        Err(e) => page.error(s, e),
    }
}

async fn user_setup_submit(s: &AppState, page: &Page, token: &str, f: &FormData) -> Response {
    let user = match accounts::user_setup_link(s.svc.store.as_ref(), token, s.now()).await {
        Ok(Some(u)) => u,
        Ok(None) => return link_gone(s, page),
        Err(e) => return page.error(s, e),
    };
    let again = |errors: &FieldErrors| {
        page.render(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "setup_password",
            json!({"title": "setup-password-title", "token": token, "username": user.username,
                   "hint_args": {"min": MIN_PASSWORD}, "errors": form::errors(page.lang, errors)}),
        )
    };
    if f.get("password") != f.get("password_confirm") {
        return again(&conflict_errors(
            Some("password_confirm".into()),
            "does not match the password".into(),
        ));
    }
    let password = f.get("password").map(|p| SecretString::new(p.to_string()));
    match accounts::complete_user_setup(s.svc.store.as_ref(), token, password, s.now()).await {
        Ok(user) => page.render(
            s,
            StatusCode::OK,
            "setup_password",
            json!({"title": "setup-password-done-title", "done": true, "username": user.username}),
        ),
        Err(Error::Validation(e)) => again(&e),
        Err(Error::NotFound) => link_gone(s, page),
        Err(e) => page.error(s, e),
    }
}

/// Who enrols TOTP from the account page: staff (families sign in with a password only).
const TOTP_ROLES: &[crate::domain::types::Role] = &[
    crate::domain::types::Role::Admin,
    crate::domain::types::Role::Supervisor,
    crate::domain::types::Role::Coordinator,
    crate::domain::types::Role::EthicsReviewer,
    crate::domain::types::Role::Volunteer,
];

/// The enrolment's QR code as inline SVG (no script, no image request: the CSP allows it).
fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in HTML, without the XML declaration.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

#[derive(serde::Deserialize)]
struct TotpQuery {
    done: Option<String>,
}

/// One's own TOTP: enrolled since when; or the QR code and secret of an enrolment begun, with
/// the form that confirms it by a first code; or the button that begins one. Staff only.
async fn totp_view(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    errors: serde_json::Value,
    done: bool,
) -> Response {
    let user = match page.staff(s, TOTP_ROLES) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let state = match accounts::totp_state(&s.svc, &user.actor).await {
        Ok(st) => st,
        Err(e) => return page.error(s, e),
    };
    let mut data = json!({"title": "totp-title", "errors": errors, "done": done});
    match state {
        accounts::TotpState::Enrolled(at) => data["enrolled_at"] = json!(at),
        accounts::TotpState::Pending(e) => {
            data["pending"] = json!({
                "secret": e.secret,
                "url": e.otpauth_url,
                "qr": qr_svg(&e.otpauth_url),
            });
        }
        accounts::TotpState::None => {}
    }
    page.render(s, status, "account_totp", data)
}

async fn totp_page(
    State(s): State<AppState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<TotpQuery>,
) -> Response {
    totp_view(&s, &page, StatusCode::OK, json!({}), q.done.is_some()).await
}

/// Begin (or begin again) an enrolment: a new secret, pending until confirmed.
async fn totp_begin(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = page.staff(&s, TOTP_ROLES) {
        return r;
    }
    match accounts::totp_begin(&s.svc, &user.actor, s.now()).await {
        Ok(_) => page.see_other(&s, "/account/totp"),
        Err(Error::Conflict { .. }) => page.see_other(&s, "/account/totp"),
        Err(e) => page.error(&s, e),
    }
}

async fn totp_confirm(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = page.staff(&s, TOTP_ROLES) {
        return r;
    }
    let code = f.text("code").unwrap_or_default();
    match accounts::totp_confirm(&s.svc, &user.actor, &code, s.now()).await {
        Ok(()) => page.see_other(&s, "/account/totp?done=1"),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            totp_view(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, errors, false).await
        }
        // Already enrolled, or nothing begun: the page says where things stand.
        Err(Error::Conflict { .. }) => page.see_other(&s, "/account/totp"),
        Err(e) => page.error(&s, e),
    }
}
