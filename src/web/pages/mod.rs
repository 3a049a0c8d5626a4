//! Server-rendered pages, one module per area of work. Each module lists its templates and
//! routes; [`view`] holds what they share and [`form`] the one form convention.

// A refused page is answered at once: the `Err` of a page helper is that answer, returned
// straight to axum, so its size is never copied around.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod admin;
pub mod audit;
pub mod calendar;
pub mod cases;
pub mod consents;
pub mod correspondence;
pub mod ethics;
pub mod family;
pub mod form;
pub mod home;
pub mod honour;
pub mod letters;
pub mod marrow;
pub mod memorials;
pub mod outreach;
pub mod reports;
pub mod tasks;
pub mod view;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// Templates every page uses: the layout and the one-paragraph message page.
const SHARED: &[(&str, &str)] = &[
    ("base", include_str!("../../../templates/base.hbs")),
    ("message", include_str!("../../../templates/message.hbs")),
    (
        "form_errors",
        include_str!("../../../templates/form_errors.hbs"),
    ),
];

/// Every page template, by name.
pub fn templates() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    SHARED
        .iter()
        .chain(account::TEMPLATES)
        .chain(home::TEMPLATES)
        .chain(cases::TEMPLATES)
        .chain(marrow::TEMPLATES)
        .chain(correspondence::TEMPLATES)
        .chain(tasks::TEMPLATES)
        .chain(outreach::TEMPLATES)
        .chain(calendar::TEMPLATES)
        .chain(letters::TEMPLATES)
        .chain(consents::TEMPLATES)
        .chain(ethics::TEMPLATES)
        .chain(family::TEMPLATES)
        .chain(audit::TEMPLATES)
        .chain(admin::TEMPLATES)
        .chain(reports::TEMPLATES)
        .chain(honour::TEMPLATES)
        .chain(memorials::TEMPLATES)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/app.css", get(css))
        .merge(account::routes())
        .merge(home::routes())
        .merge(cases::routes())
        .merge(marrow::routes())
        .merge(correspondence::routes())
        .merge(tasks::routes())
        .merge(outreach::routes())
        .merge(calendar::routes())
        .merge(letters::routes())
        .merge(consents::routes())
        .merge(ethics::routes())
        .merge(family::routes())
        .merge(audit::routes())
        .merge(admin::routes())
        .merge(reports::routes())
        .merge(honour::routes())
        .merge(memorials::routes())
}

/// The stylesheet of every page (screen and print): the shared rules, then each area's.
pub const APP_CSS: &str = concat!(
    include_str!("../../../templates/static/app.css"),
    include_str!("../../../templates/static/tasks.css"),
    include_str!("../../../templates/static/outreach.css"),
    include_str!("../../../templates/static/ethics.css"),
    include_str!("../../../templates/static/family.css"),
    include_str!("../../../templates/static/admin.css"),
    include_str!("../../../templates/static/correspondence.css"),
    include_str!("../../../templates/static/print.css"),
);

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        APP_CSS,
    )
        .into_response()
}

/// The 404 page for a path no route has.
pub async fn not_found_page(s: &AppState, parts: &mut axum::http::request::Parts) -> Response {
    use axum::extract::FromRequestParts;
    match view::Page::from_request_parts(parts, s).await {
        Ok(page) => page.not_found(s),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    //! Templates hold no interface text of their own: every word comes from the catalogues
    //! (`locales/*/common.ftl`) through `{{t}}`, so both languages always have it.

    /// Attributes a person reads or hears: their values must come from `{{t}}`/`{{tv}}`.
    const READ_ATTRIBUTES: &[&str] = &["placeholder", "title", "alt", "aria-label"];
    /// A `{{t …}}`/`{{tv …}}` expression, after [`mask`].
    const TRANSLATED: char = '\u{1}';
    /// Any other `{{…}}` expression, after [`mask`].
    const EXPRESSION: char = '\u{2}';

    /// The template with comments dropped and each `{{…}}` replaced by one marker character,
    /// so that quotes and `>` inside expressions no longer confuse what follows.
    fn mask(src: &str) -> String {
        let mut out = String::new();
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("<!--") {
                rest = r.find("-->").map_or("", |i| &r[i + 3..]);
            } else if let Some(r) = rest.strip_prefix("{{!--") {
                rest = r.find("--}}").map_or("", |i| &r[i + 4..]);
            } else if let Some(r) = rest.strip_prefix("{{") {
                let end = r.find("}}").map_or(r.len(), |i| i + 2);
                let inner = r[..end.saturating_sub(2)].trim_start_matches(['{', '~', ' ']);
                if !inner.starts_with('!') {
                    let translated = inner.starts_with("t ") || inner.starts_with("tv ");
                    out.push(if translated { TRANSLATED } else { EXPRESSION });
                }
                rest = r[end..].trim_start_matches('}');
            } else {
                let c = rest.chars().next().unwrap();
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// What in a template is interface text written into it: words outside tags and
    /// expressions, and read attributes whose value is not a translation. Empty when clean.
    pub(super) fn literal_text(src: &str) -> Vec<String> {
        let masked = mask(src);
        let mut found = Vec::new();
        let has_words = |s: &str| s.chars().any(char::is_alphabetic);
        // Attributes: inside each tag, `name="value"`.
        let mut text = String::new();
        let mut rest = masked.as_str();
        while let Some(i) = rest.find('<') {
            text.push_str(&rest[..i]);
            let after = &rest[i..];
            let end = after.find('>').map_or(after.len(), |j| j + 1);
            let tag = &after[..end];
            for attr in READ_ATTRIBUTES {
                for (k, _) in tag.match_indices(&format!("{attr}=")) {
                    let before = tag[..k].chars().last();
                    if !before.is_some_and(char::is_whitespace) {
                        continue;
                    }
                    let v = &tag[k + attr.len() + 1..];
                    let value = match v.chars().next() {
                        Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
                        _ => v.split([' ', '>']).next().unwrap_or(""),
                    };
                    if !value.contains(TRANSLATED) || has_words(value) {
                        found.push(format!("{attr}={value:?}"));
                    }
                }
            }
            rest = &after[end..];
        }
        text.push_str(rest);
        // Text: what is left once character references are gone.
        for piece in text.split([TRANSLATED, EXPRESSION]) {
            let mut plain = String::new();
            let mut r = piece;
            while let Some(i) = r.find('&') {
                plain.push_str(&r[..i]);
                let a = &r[i..];
                match a.find(';') {
                    Some(j)
                        if j <= 10 && a[1..j].chars().all(|c| c.is_alphanumeric() || c == '#') =>
                    {
                        r = &a[j + 1..];
                    }
                    _ => {
                        plain.push('&');
                        r = &a[1..];
                    }
                }
            }
            plain.push_str(r);
            if has_words(&plain) {
                found.push(plain.trim().to_string());
            }
        }
        found
    }

    #[test]
    fn templates_hold_no_interface_text_of_their_own() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut checked = 0;
        let mut failures = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // The API's letters are documents in the family's language, not interface.
            if !name.ends_with(".hbs") || name == "letters.hbs" {
                continue;
            }
            checked += 1;
            let found = literal_text(&std::fs::read_to_string(&path).unwrap());
            if !found.is_empty() {
                failures.push(format!("{name}: {found:?}"));
            }
        }
        assert!(checked >= 10, "the templates were found ({checked})");
        assert!(
            failures.is_empty(),
            "text written into templates (move it to locales/*/common.ftl):\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn the_check_finds_words_and_untranslated_attributes() {
        assert_eq!(literal_text("<p>Hello</p>"), vec!["Hello"]);
        assert_eq!(literal_text("<p>你好</p>"), vec!["你好"]);
        assert_eq!(
            literal_text(r#"<input placeholder="Name">"#),
            vec![r#"placeholder="Name""#]
        );
        assert_eq!(
            literal_text(r#"<img alt="{{name}}">"#),
            vec![r#"alt="\u{2}""#]
        );
        assert!(literal_text(
            r#"{{!-- a comment --}}<!-- note --><nav aria-label="{{t "nav-label"}}"><a title='{{t "x"}}' href="/a">{{t "home"}}</a> · 3 → {{when at}}&nbsp;/ :</nav>{{> form_errors}}{{#if a}}{{/if}}"#
        )
        .is_empty());
    }
}
