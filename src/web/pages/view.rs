//! What every page shares: the viewer (language, account, CSRF token), rendering inside the
//! layout, the answers to a domain error, and the helpers templates use for words and dates.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::{json, Value};

use crate::domain::types::Role;
use crate::error::Error;
use crate::web::i18n::{self, LANG_COOKIE};
use crate::web::session::{self, MaybeUser, PageUser};
use crate::web::AppState;

/// The person looking at a page and the language they read.
pub struct Page {
    pub lang: &'static str,
    pub user: Option<PageUser>,
    /// The path and query without `lang`, for the language switch.
    here: String,
    /// A `?lang=` to remember in the cookie.
    remember: Option<&'static str>,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Error> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, s).await?;
        let query = parts.uri.query().unwrap_or("");
        let mut chosen = None;
        let mut rest = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k == "lang" {
                chosen = i18n::supported(&v);
            } else {
                rest.push((k.into_owned(), v.into_owned()));
            }
        }
        let remembered = session::cookie(&parts.headers, LANG_COOKIE).and_then(i18n::supported);
        let accepted = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(i18n::from_accept_language);
        let account = match &user {
            Some(u) => account_language(s, u).await,
            None => None,
        };
        let lang = chosen
            .or(remembered)
            .or(account)
            .or(accepted)
            .unwrap_or(i18n::DEFAULT);
        let mut here = parts.uri.path().to_string();
        if !rest.is_empty() {
            here.push('?');
            here.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rest)
                    .finish(),
            );
        }
        Ok(Page {
            lang,
            user,
            here,
            remember: chosen,
        })
    }
}

/// A family account reads in the language its contact record gives.
async fn account_language(s: &AppState, u: &PageUser) -> Option<&'static str> {
    let contact = u.actor.contact_id.as_deref()?;
    let row = s.svc.store.contact_by_id(contact).await.ok()??;
    i18n::supported(&row.language)
}

/// Where each role's work is; the first is its home.
fn nav(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Coordinator | Role::Supervisor => &[
            ("/", "nav-home"),
            ("/cases", "nav-cases"),
            ("/tasks", "nav-tasks"),
            ("/outreach", "nav-outreach"),
            ("/letters", "nav-letters"),
            ("/calendar", "nav-calendar"),
        ],
        Role::Volunteer => &[("/", "nav-my-visits"), ("/calendar", "nav-calendar")],
        _ => &[("/", "nav-home")],
    }
}

impl Page {
    /// The signed-in user, or the answer that sends the browser to sign in.
    pub fn user(&self) -> Result<&PageUser, Response> {
        self.user
            .as_ref()
            .ok_or_else(|| Redirect::to("/login").into_response())
    }

    /// Staff of one of `roles`; others see the page is not theirs.
    pub fn staff(&self, s: &AppState, roles: &[Role]) -> Result<&PageUser, Response> {
        let u = self.user()?;
        if roles.contains(&u.actor.role) {
            Ok(u)
        } else {
            Err(self.message(
                s,
                StatusCode::FORBIDDEN,
                "error-forbidden-title",
                "error-forbidden-body",
            ))
        }
    }

    pub fn t(&self, key: &str) -> String {
        i18n::text(self.lang, key, &[])
    }

    /// `template` inside the layout, with `data` and what every page needs.
    pub fn render(
        &self,
        s: &AppState,
        status: StatusCode,
        template: &str,
        data: Value,
    ) -> Response {
        let mut data = match data {
            Value::Object(m) => m,
            _ => Default::default(),
        };
        data.insert("lang".into(), json!(self.lang));
        data.insert("tz".into(), json!(s.default_timezone.as_ref()));
        let other = if self.lang == "en" { "zh-CN" } else { "en" };
        let sep = if self.here.contains('?') { '&' } else { '?' };
        data.insert(
            "switch".into(),
            json!({"href": format!("{}{sep}lang={other}", self.here), "lang": other}),
        );
        if let Some(u) = &self.user {
            let path = self.here.split('?').next().unwrap_or("/");
            let items: Vec<Value> = nav(u.actor.role)
                .iter()
                .map(|(href, key)| {
                    let current = if *href == "/" {
                        path == "/"
                    } else {
                        path.starts_with(href)
                    };
                    json!({"href": href, "key": key, "current": current})
                })
                .collect();
            data.insert(
                "viewer".into(),
                json!({"display_name": u.display_name, "role": u.actor.role, "nav": items}),
            );
            data.insert("csrf".into(), json!(u.csrf));
        }
        let mut resp = match s.templates.render(template, &Value::Object(data)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "rendering a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "page could not be rendered",
                )
                    .into_response()
            }
        };
        self.finish(&mut resp, s);
        resp
    }

    /// Personal pages are never cached; a `?lang=` is remembered for a year.
    fn finish(&self, resp: &mut Response, s: &AppState) {
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(lang) = self.remember {
            h.append(
                header::SET_COOKIE,
                session::set_cookie(LANG_COOKIE, lang, "/", 365 * 86400, s.secure_cookies),
            );
        }
    }

    /// After a successful form: 303 to the page of what was made or changed.
    pub fn see_other(&self, s: &AppState, to: &str) -> Response {
        let mut resp = Redirect::to(to).into_response();
        self.finish(&mut resp, s);
        resp
    }

    /// A page with a title and one paragraph, both catalogue keys.
    pub fn message(&self, s: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
        self.render(s, status, "message", json!({"title": title, "body": body}))
    }

    /// The page for a domain error that is not about one field.
    pub fn error(&self, s: &AppState, e: Error) -> Response {
        match e {
            Error::Unauthenticated => Redirect::to("/login").into_response(),
            Error::Forbidden => self.message(
                s,
                StatusCode::FORBIDDEN,
                "error-forbidden-title",
                "error-forbidden-body",
            ),
            Error::NotFound => self.not_found(s),
            Error::TooManyRequests { .. } => self.message(
                s,
                StatusCode::TOO_MANY_REQUESTS,
                "error-busy-title",
                "error-busy-body",
            ),
            Error::TotpEnrolmentRequired => self.message(
                s,
                StatusCode::FORBIDDEN,
                "error-totp-title",
                "error-totp-body",
            ),
            Error::Validation(_) | Error::Conflict { .. } | Error::BadRequest(_) => self.message(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "error-invalid-title",
                "error-invalid-body",
            ),
            Error::PayloadTooLarge => self.message(
                s,
                StatusCode::PAYLOAD_TOO_LARGE,
                "error-too-large-title",
                "error-too-large-body",
            ),
            Error::MethodNotAllowed => self.not_found(s),
            Error::InvalidCredentials | Error::TotpRequired => {
                Redirect::to("/login").into_response()
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "serving a page");
                self.message(
                    s,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error-internal-title",
                    "error-internal-body",
                )
            }
        }
    }

    pub fn not_found(&self, s: &AppState) -> Response {
        self.message(
            s,
            StatusCode::NOT_FOUND,
            "error-not-found-title",
            "error-not-found-body",
        )
    }

    /// The form's CSRF token matches the session's; otherwise the 403 page.
    pub fn check_csrf(&self, s: &AppState, submitted: Option<&str>) -> Result<&PageUser, Response> {
        let u = self.user()?;
        u.check_csrf(submitted).map_err(|_| {
            self.message(
                s,
                StatusCode::FORBIDDEN,
                "error-csrf-title",
                "error-csrf-body",
            )
        })?;
        Ok(u)
    }
}

fn root_str<'a>(ctx: &'a Context, key: &str, default: &'a str) -> &'a str {
    ctx.data()
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
}

fn tz_of(ctx: &Context) -> chrono_tz::Tz {
    root_str(ctx, "tz", "Asia/Shanghai")
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai)
}

/// A date as the page's language writes it.
pub fn format_date(lang: &str, d: NaiveDate) -> String {
    if lang == "en" {
        d.format("%-d %b %Y").to_string()
    } else {
        d.format("%Y年%-m月%-d日").to_string()
    }
}

/// `{{when t}}`: an RFC 3339 time in the viewer's time zone; `{{when t date=true}}` its day.
struct When;

impl HelperDef for When {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let lang = root_str(ctx, "lang", i18n::DEFAULT);
        let Some(raw) = h.param(0).and_then(|p| p.value().as_str()) else {
            return Ok(ScopedJson::Derived(json!("")));
        };
        let only_date = h
            .hash_get("date")
            .is_some_and(|v| v.value().as_bool() == Some(true));
        let text = if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
            let local = t.with_timezone(&tz_of(ctx));
            let day = format_date(lang, local.date_naive());
            if only_date {
                day
            } else {
                format!("{day} {}", local.format("%H:%M"))
            }
        } else if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            format_date(lang, d)
        } else {
            raw.to_string()
        };
        Ok(ScopedJson::Derived(json!(text)))
    }
}

/// The word for an enumerated value: key `prefix-value` (underscores as dashes), or the value.
pub fn word(lang: &str, prefix: &str, value: &str) -> String {
    let key = format!("{prefix}-{}", value.replace('_', "-"));
    if i18n::has(lang, &key) {
        i18n::text(lang, &key, &[])
    } else {
        value.to_string()
    }
}

/// `{{tv "program" value}}`: the word for an enumerated value, from key `program-<value>`.
struct TranslateValue;

impl HelperDef for TranslateValue {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let prefix = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("tv", 0))?;
        let value = match h.param(1).map(|p| p.value()) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Null) | None => return Ok(ScopedJson::Derived(json!(""))),
            Some(other) => other.to_string(),
        };
        let lang = root_str(ctx, "lang", i18n::DEFAULT);
        Ok(ScopedJson::Derived(json!(word(lang, prefix, &value))))
    }
}

/// `{{reason text}}`: why a message is held, deferred, failed or cancelled, in plain words. The
/// outbox writes a code first (`opted_out: the recipient asked…`); the code picks the words.
struct Reason;

/// The code at the start of an outbox reason.
pub fn reason_code(reason: &str) -> &str {
    reason.split([':', ' ', '(']).next().unwrap_or("").trim()
}

impl HelperDef for Reason {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let Some(raw) = h.param(0).and_then(|p| p.value().as_str()) else {
            return Ok(ScopedJson::Derived(json!("")));
        };
        let lang = root_str(ctx, "lang", i18n::DEFAULT);
        let key = format!("reason-{}", reason_code(raw).replace('_', "-"));
        let text = if i18n::has(lang, &key) {
            i18n::text(lang, &key, &[])
        } else if lang == "en" {
            raw.to_string()
        } else {
            i18n::text(lang, "reason-other", &[])
        };
        Ok(ScopedJson::Derived(json!(text)))
    }
}

/// `{{eq a b}}`, for `{{#if (eq status "held")}}`.
struct Eq;

impl HelperDef for Eq {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let a = h.param(0).map(|p| p.value());
        let b = h.param(1).map(|p| p.value());
        Ok(ScopedJson::Derived(json!(a == b)))
    }
}

/// The helpers of every page.
pub fn register(hb: &mut Handlebars<'static>) {
    hb.register_helper("t", Box::new(i18n::Translate));
    hb.register_helper("tv", Box::new(TranslateValue));
    hb.register_helper("when", Box::new(When));
    hb.register_helper("eq", Box::new(Eq));
    hb.register_helper("reason", Box::new(Reason));
    super::form::register(hb);
}
