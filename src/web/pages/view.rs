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

/// The pages a signed-in person who must enrol TOTP (`DONORCARE_REQUIRE_TOTP`) and has not may
/// open: enrolment itself, their account (the password), and signing out. Every other page sends
/// them to enrolment, as the API answers `totp_enrolment_required`.
const ENROL_PAGES: &[&str] = &[
    "/account/totp",
    "/account/totp/begin",
    "/account/totp/confirm",
    "/account",
    "/logout",
];

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        if user.as_ref().is_some_and(|u| u.actor.must_enrol)
            && !ENROL_PAGES.contains(&parts.uri.path())
        {
            return Err(Redirect::to("/account/totp").into_response());
        }
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

/// Staff read in the language they chose on their account page; a family account in the
/// language its contact record gives.
async fn account_language(s: &AppState, u: &PageUser) -> Option<&'static str> {
    match u.actor.contact_id.as_deref() {
        Some(contact) => {
            let row = s.svc.store.contact_by_id(contact).await.ok()??;
            i18n::supported(&row.language)
        }
        None => {
            let chosen = s
                .svc
                .store
                .account_language(&u.actor.user_id)
                .await
                .ok()??;
            i18n::supported(&chosen)
        }
    }
}

/// Where each role's work is; the first is its home.
fn nav(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Coordinator => &[
            ("/", "nav-home"),
            ("/cases", "nav-cases"),
            ("/adverse-events", "nav-adverse-events"),
            ("/correspondence", "nav-correspondence"),
            ("/tasks", "nav-tasks"),
            ("/outreach", "nav-outreach"),
            ("/letters", "nav-letters"),
            ("/calendar", "nav-calendar"),
            ("/honour-roll", "nav-honour"),
            ("/memorials", "nav-memorials"),
        ],
        Role::Supervisor => &[
            ("/", "nav-home"),
            ("/cases", "nav-cases"),
            ("/adverse-events", "nav-adverse-events"),
            ("/correspondence", "nav-correspondence"),
            ("/tasks", "nav-tasks"),
            ("/outreach", "nav-outreach"),
            ("/letters", "nav-letters"),
            ("/calendar", "nav-calendar"),
            ("/honour-roll", "nav-honour"),
            ("/memorials", "nav-memorials"),
            ("/reports", "nav-reports"),
        ],
        Role::Volunteer => &[("/", "nav-my-visits"), ("/calendar", "nav-calendar")],
        Role::EthicsReviewer => &[
            ("/ethics/findings", "nav-findings"),
            ("/ethics/register", "nav-register"),
            ("/ethics/break-glass", "nav-break-glass"),
            ("/adverse-events", "nav-adverse-events"),
            ("/correspondence", "nav-correspondence"),
            ("/audit", "nav-audit"),
            ("/reports", "nav-reports"),
        ],
        Role::Admin => &[
            ("/", "nav-home"),
            ("/admin/users", "nav-admin-users"),
            ("/admin/plans", "nav-admin-plans"),
            ("/admin/templates", "nav-admin-templates"),
            ("/admin/keys", "nav-admin-keys"),
            ("/audit", "nav-audit"),
            ("/reports", "nav-reports"),
        ],
        Role::Family => &[
            ("/me", "nav-me"),
            ("/me/messages", "nav-me-messages"),
            ("/me/letters", "nav-me-letters"),
            ("/me/preferences", "nav-me-preferences"),
            ("/me/memorials", "nav-me-memorials"),
            ("/me/consents", "nav-me-consents"),
            ("/me/access-log", "nav-me-access-log"),
        ],
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
        // A page may show its dates in the viewer's own zone (a family's contact's).
        data.entry("tz")
            .or_insert_with(|| json!(s.default_timezone.as_ref()));
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
                    // A home (`/`, a family's `/me`) is current on itself only.
                    let current = if *href == "/" || *href == "/me" {
                        path == *href
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
/// Name each item of `lists` (JSON arrays of things with a `case_id`) by its case's donor, as
/// `donor_name`, so a list says whom a call or a message is for. The names are read by
/// `cases::names`: audited as a listing, and left out for cases the caller may not read.
pub async fn name_donors(
    s: &AppState,
    actor: &crate::policy::Actor,
    lists: &mut [&mut Value],
) -> Result<(), Error> {
    let ids: Vec<String> = lists
        .iter()
        .filter_map(|l| l.as_array())
        .flatten()
        .filter_map(|i| i["case_id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let names = crate::domain::cases::names(&s.svc, actor, &ids, s.now()).await?;
    for list in lists.iter_mut() {
        for item in list.as_array_mut().into_iter().flatten() {
            let name = item["case_id"]
                .as_str()
                .and_then(|id| names.get(id))
                .cloned();
            item["donor_name"] = json!(name);
        }
    }
    Ok(())
}

/// A link to `path` with a query built pair by pair (`.append_pair(…)`, then `.finish()`).
pub fn query_href(path: &str) -> form_urlencoded::Serializer<'static, String> {
    let start = path.len() + 1;
    form_urlencoded::Serializer::for_suffix(format!("{path}?"), start)
}

/// A link to `path` keeping a listing's filters (blank ones left out), then `extra` pairs
/// (a cursor, say).
pub fn filtered_href(
    path: &str,
    filters: &[(&str, &Option<String>)],
    extra: &[(&str, &str)],
) -> String {
    let mut ser = query_href(path);
    for (k, v) in filters {
        if let Some(v) = super::form::blank_none(v) {
            ser.append_pair(k, &v);
        }
    }
    for (k, v) in extra {
        ser.append_pair(k, v);
    }
    ser.finish()
}

pub fn format_date(lang: &str, d: NaiveDate) -> String {
    if lang == "en" {
        d.format("%-d %b %Y").to_string()
    } else {
        d.format("%Y年%-m月%-d日").to_string()
    }
}

/// A Chinese calendar date as the page's language writes it: 农历闰二月初十, or
/// "lunar month 2 (leap), day 10".
pub fn format_lunar(lang: &str, l: crate::schedule::calendar::LunarDate) -> String {
    const MONTHS: [&str; 12] = [
        "正月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "冬月",
        "腊月",
    ];
    const DIGITS: [&str; 10] = ["", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    if lang == "en" {
        let leap = if l.leap { " (leap)" } else { "" };
        return format!("lunar month {}{leap}, day {}", l.month, l.day);
    }
    let month = MONTHS
        .get(usize::from(l.month).saturating_sub(1))
        .copied()
        .unwrap_or("");
    let d = usize::from(l.day);
    let day = match d {
        1..=10 => format!("初{}", if d == 10 { "十" } else { DIGITS[d] }),
        11..=19 => format!("十{}", DIGITS[d - 10]),
        20 => "二十".to_string(),
        21..=29 => format!("廿{}", DIGITS[d - 20]),
        30 => "三十".to_string(),
        _ => d.to_string(),
    };
    format!("农历{}{month}{day}", if l.leap { "闰" } else { "" })
}

/// `{{lunar d}}`: the Chinese calendar date of a date (`YYYY-MM-DD`) or of a time's day in the
/// viewer's zone, for anniversaries kept by the lunar calendar.
struct Lunar;

impl HelperDef for Lunar {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let lang = root_str(ctx, "lang", i18n::DEFAULT);
        let raw = h.param(0).and_then(|p| p.value().as_str()).unwrap_or("");
        let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().or_else(|| {
            DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.with_timezone(&tz_of(ctx)).date_naive())
        });
        let text = day
            .map(|d| format_lunar(lang, crate::schedule::calendar::lunar_of(d)))
            .unwrap_or_default();
        Ok(ScopedJson::Derived(json!(text)))
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
    hb.register_helper("lunar", Box::new(Lunar));
    super::form::register(hb);
}

#[cfg(test)]
mod tests {
    use super::format_lunar;
    use crate::schedule::calendar::lunar_of;
    use chrono::NaiveDate;

    #[test]
    fn lunar_dates_read_as_a_chinese_calendar_does() {
        // 2025-03-10 is the eleventh day of the second month; 2026-02-17 is Spring Festival.
        let d = |s: &str| lunar_of(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        assert_eq!(format_lunar("zh-CN", d("2025-03-10")), "农历二月十一");
        assert_eq!(format_lunar("zh-CN", d("2026-02-17")), "农历正月初一");
        assert_eq!(format_lunar("en", d("2026-02-17")), "lunar month 1, day 1");
        // 2025 has a leap sixth month: 2025-07-25 is its first day.
        assert_eq!(format_lunar("zh-CN", d("2025-07-25")), "农历闰六月初一");
    }
}
