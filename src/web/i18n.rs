//! The pages' words, in Fluent catalogues (`locales/zh-CN/*.ftl`, `locales/en/*.ftl`), built
//! into the binary. zh-CN is the default; `?lang=` (remembered in a cookie), the account's
//! setting and `Accept-Language` choose, in that order.
//!
//! Templates say `{{t "key"}}` or `{{t "key" name=value}}`; the answer is HTML-escaped like any
//! other value, so a name passed as an argument cannot become markup.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "zh-CN",
        // Unicode isolation marks around arguments would show as stray characters in
        // attributes and plain-text letters.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The interface languages, the default first.
pub const LANGS: &[&str] = &["zh-CN", "en"];
pub const DEFAULT: &str = "zh-CN";
/// Remembers the language switch.
pub const LANG_COOKIE: &str = "dc_lang";

/// One of [`LANGS`] for a tag such as `en-GB`, `zh`, `zh-Hans-CN`; `None` for anything else.
pub fn supported(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().to_ascii_lowercase();
    let primary = tag.split(['-', '_']).next().unwrap_or("");
    match primary {
        "zh" => Some("zh-CN"),
        "en" => Some("en"),
        _ => None,
    }
}

/// The first supported language of an `Accept-Language` header, by its q-values.
pub fn from_accept_language(header: &str) -> Option<&'static str> {
    let mut tags: Vec<(f32, &str)> = header
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then_some((q, tag))
        })
        .collect();
    // Stable: equal weights keep the header's order.
    tags.sort_by(|a, b| b.0.total_cmp(&a.0));
    tags.into_iter().find_map(|(_, t)| supported(t))
}

fn ident(lang: &str) -> LanguageIdentifier {
    lang.parse()
        .unwrap_or_else(|_| DEFAULT.parse().expect("the default language tag is valid"))
}

/// The text of `key` in `lang`, with `args`; the key itself where no catalogue has it, so a
/// missing string shows rather than breaking the page (the catalogue test catches it).
pub fn text(lang: &str, key: &str, args: &[(&str, Value)]) -> String {
    let args: HashMap<Cow<'static, str>, FluentValue> = args
        .iter()
        .map(|(k, v)| (Cow::Owned(k.to_string()), fluent_value(v)))
        .collect();
    let args = (!args.is_empty()).then_some(&args);
    LOCALES
        .try_lookup_complete(&ident(lang), key, args)
        .unwrap_or_else(|| key.to_string())
}

/// `true` when the catalogue of `lang` (or the default) holds `key`.
pub fn has(lang: &str, key: &str) -> bool {
    LOCALES.try_lookup(&ident(lang), key).is_some()
}

fn fluent_value(v: &Value) -> FluentValue<'static> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(FluentValue::from)
            .unwrap_or(FluentValue::None),
        Value::String(s) => FluentValue::from(s.clone()),
        Value::Bool(b) => FluentValue::from(if *b { "true" } else { "false" }),
        Value::Null => FluentValue::None,
        other => FluentValue::from(other.to_string()),
    }
}

/// `{{t "key" arg=value …}}`: the text in the page's language (the root `lang`), escaped.
pub struct Translate;

impl HelperDef for Translate {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let key = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
        let lang = ctx
            .data()
            .get("lang")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT);
        let args: Vec<(&str, Value)> = h
            .hash()
            .iter()
            .map(|(k, v)| (*k, v.value().clone()))
            .collect();
        // Escaped where it is written, like any value (`{{t …}}`), raw inside a subexpression.
        Ok(ScopedJson::Derived(Value::String(text(lang, key, &args))))
    }
}

/// The domain's field messages (English, as the API answers) and their catalogue keys; `{}`
/// stands for a value, passed to the message as `$a`, `$b`.
const FIELD_MESSAGES: &[(&str, &str)] = &[
    (
        "is required for a concern: say what the concern is",
        "msg-concern-note",
    ),
    (
        "must say what the concern is, in at least {} characters",
        "msg-concern-short",
    ),
    (
        "is required: donor or a contact id of this case",
        "msg-party",
    ),
    (
        "is required: save the redacted text before release",
        "msg-corr-redaction-first",
    ),
    ("is required", "msg-required"),
    ("is required{}", "msg-required"),
    ("must not be empty", "msg-required"),
    ("must be one of {}", "msg-one-of"),
    ("must be a month (YYYY-MM) or a year (YYYY)", "msg-period"),
    ("must be a year from {} to {}", "msg-period-year"),
    ("the month must be from 01 to 12", "msg-period-month"),
    (
        "a supervisor's reports are of their own region",
        "msg-report-region",
    ),
    ("must be {} to {} characters", "msg-length"),
    ("must be at most {} characters", "msg-too-long"),
    ("must be at least {} characters", "msg-too-short"),
    ("must not contain control characters", "msg-control"),
    ("is in the future", "msg-future"),
    ("must be a date as YYYY-MM-DD", "msg-date"),
    ("not a real date (YYYY-MM-DD)", "msg-date"),
    (
        "must be a date (YYYY-MM-DD) or an RFC 3339 time",
        "msg-date-time",
    ),
    (
        "must be an RFC 3339 time or a date (YYYY-MM-DD)",
        "msg-date-time",
    ),
    ("must be an address like name@example.org", "msg-email"),
    ("not a valid mainland mobile number", "msg-phone"),
    (
        "must be a WeChat ID: {} to {} letters, digits, '_' or '-'",
        "msg-wechat-id",
    ),
    ("must have between {} and {} digits", "msg-phone"),
    ("must have at least {} digits", "msg-phone"),
    ("must be 18 characters", "msg-national-id"),
    (
        "must be 17 digits followed by a digit or X",
        "msg-national-id",
    ),
    ("does not match its check digit", "msg-national-id"),
    ("is before donor.birth_date", "msg-before-birth"),
    (
        "is before donor.death_date (a deceased donation follows death)",
        "msg-before-death",
    ),
    (
        "is given but donor.deceased is not true",
        "msg-death-not-deceased",
    ),
    ("is required for a deceased donor", "msg-required"),
    ("is not an active coordinator", "msg-not-coordinator"),
    (
        "is not an active volunteer or coordinator",
        "msg-not-assignee",
    ),
    ("is not a contact of this case", "msg-not-contact"),
    (
        "must be an IANA time zone such as Asia/Shanghai",
        "msg-timezone",
    ),
    ("must be a PDF, JPEG or PNG file", "msg-file-type"),
    ("must be at most {} MB", "msg-file-too-large"),
    ("is neither donor nor a contact of this case", "msg-party"),
    ("is a document of another kind", "msg-document-kind"),
    ("is not a consent document version", "msg-document-unknown"),
    (
        "the donor cannot sign after their date of death",
        "msg-donor-after-death",
    ),
    (
        "the donor cannot sign after their death date",
        "msg-donor-after-death",
    ),
    ("is a donor's own refusal of a donation kind", "msg-refusal"),
    ("organs go with donation kinds{}", "msg-scope"),
    ("{} is not a donation kind of the {} programme", "msg-scope"),
    ("channel {}", "msg-scope"),
    (
        "must be {\"organs\": […]} or {\"channels\": […]}",
        "msg-scope",
    ),
    ("must be 1–40 characters of a-z, 0-9 and _", "msg-username"),
    ("is taken", "msg-taken"),
    ("does not match the password", "msg-password-mismatch"),
    ("is not your current password", "msg-password-wrong"),
    ("is not the current code", "msg-totp-wrong"),
    ("must be true or false", "msg-bool"),
    ("must be a whole number", "msg-number"),
    ("must be at most {}", "msg-at-most"),
    ("must be at least {}", "msg-at-least"),
    ("must be between {} and {}", "msg-between"),
    ("must be HH:MM", "msg-time"),
    ("is not after signed_at", "msg-not-after-signed"),
    (
        "cannot change; close this case and open one in the other programme",
        "msg-program-fixed",
    ),
    ("is not a known field", "msg-unknown-field"),
    (
        "must not be more than {} days before the collection ({})",
        "msg-ae-before-collection",
    ),
    ("must not be before the event", "msg-ae-reported-early"),
    ("must not be before from", "msg-range"),
    ("must be in the future", "msg-ev-future"),
    (
        "must be a time (RFC 3339, or YYYY-MM-DDTHH:MM in the office's time zone)",
        "msg-ev-time",
    ),
    ("must not be after the event", "msg-ev-reply-by"),
    ("say how many are coming (1 to 20)", "msg-ev-party"),
    (
        "families have been invited to this time; cancel the event and plan it again",
        "msg-ev-time-fixed",
    ),
    (
        "families have been invited; the programme can no longer change",
        "msg-ev-program-fixed",
    ),
    (
        "your account has no region; an admin sets it",
        "msg-ev-no-region",
    ),
    ("at most {} characters", "msg-at-most-chars"),
    (
        "the donor has died: name the relative who writes or reads",
        "msg-corr-party-died",
    ),
    (
        "is not a correspondent of this case",
        "msg-corr-not-correspondent",
    ),
    (
        "goes with letters to the recipient; this one is to the family",
        "msg-corr-author-only",
    ),
    (
        "goes with letters to the family; this one is to the recipient",
        "msg-corr-addressee-only",
    ),
    (
        "must not contain anything that identifies the family side",
        "msg-corr-label-identifies",
    ),
    (
        "needs consented_on: a consent never given cannot be withdrawn",
        "msg-corr-withdrawn-without-consent",
    ),
    (
        "must not be before consented_on",
        "msg-corr-withdrawn-early",
    ),
    (
        "this case already has a correspondent of that label",
        "msg-corr-label-taken",
    ),
    (
        "is set when the correspondent is added and does not change",
        "msg-corr-fixed",
    ),
    (
        "is not a field of a correspondent",
        "msg-corr-unknown-field",
    ),
    (
        "still contains what identifies the family side ({})",
        "msg-corr-still-identifies",
    ),
    (
        "the writer holds no correspondence consent in force",
        "msg-corr-writer-no-consent",
    ),
    (
        "the addressee holds no correspondence consent in force",
        "msg-corr-addressee-no-consent",
    ),
    (
        "the correspondent has withdrawn their consent to correspondence",
        "msg-corr-correspondent-withdrawn",
    ),
    (
        "the correspondent's consent to correspondence is not recorded",
        "msg-corr-correspondent-no-consent",
    ),
    (
        "you have no correspondence consent in force: ask your coordinator",
        "msg-corr-family-no-consent",
    ),
    ("is not someone you may write to", "msg-corr-not-yours"),
];

/// `text` when it has the shape of `pattern`, with the values that stood for its `{}`.
fn match_pattern<'a>(pattern: &str, text: &'a str) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = pattern.split("{}").collect();
    let mut rest = text.strip_prefix(parts[0])?;
    let mut values = Vec::new();
    for (i, lit) in parts.iter().enumerate().skip(1) {
        let last = i == parts.len() - 1;
        let at = if last && lit.is_empty() {
            rest.len()
        } else if last {
            rest.len()
                .checked_sub(lit.len())
                .filter(|&n| rest[n..] == **lit)?
        } else {
            rest.find(lit)?
        };
        values.push(&rest[..at]);
        rest = &rest[at + lit.len()..];
    }
    rest.is_empty().then_some(values)
}

/// A field message of the domain in `lang`: the catalogue's wording where it has the message,
/// otherwise (in zh-CN) a plain request to check the value, never English on a Chinese page.
pub fn field_message(lang: &str, msg: &str) -> String {
    for (pattern, key) in FIELD_MESSAGES {
        if let Some(values) = match_pattern(pattern, msg) {
            let names = ["a", "b", "c"];
            let args: Vec<(&str, Value)> = names
                .iter()
                .zip(values)
                .map(|(n, v)| (*n, Value::from(v.trim())))
                .collect();
            return text(lang, key, &args);
        }
    }
    if lang == "en" {
        msg.to_string()
    } else {
        text(lang, "msg-check", &[])
    }
}

/// The keys of every catalogue, by language (for the test that they agree).
pub fn catalogue_keys() -> HashMap<&'static str, std::collections::BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("locales");
    LANGS
        .iter()
        .map(|lang| {
            let mut keys = std::collections::BTreeSet::new();
            let files = std::fs::read_dir(dir.join(lang)).expect("locales folder");
            for f in files.flatten() {
                let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                for line in text.lines() {
                    let start = line.chars().next();
                    if start.is_some_and(|c| c.is_ascii_alphabetic()) {
                        if let Some((k, _)) = line.split_once('=') {
                            keys.insert(k.trim().to_string());
                        }
                    }
                }
            }
            (*lang, keys)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_tag() {
        assert_eq!(
            from_accept_language("fr, en-GB;q=0.8, zh;q=0.9"),
            Some("zh-CN")
        );
        assert_eq!(from_accept_language("en-US,en;q=0.9"), Some("en"));
        assert_eq!(from_accept_language("de, fr;q=0.5"), None);
        assert_eq!(from_accept_language("zh-Hant;q=0, en"), Some("en"));
    }

    #[test]
    fn both_catalogues_hold_the_same_keys() {
        let keys = catalogue_keys();
        let (zh, en) = (&keys["zh-CN"], &keys["en"]);
        assert!(zh.len() > 50, "the zh-CN catalogue is nearly empty");
        let only_zh: Vec<_> = zh.difference(en).collect();
        let only_en: Vec<_> = en.difference(zh).collect();
        assert!(only_zh.is_empty(), "only in zh-CN: {only_zh:?}");
        assert!(only_en.is_empty(), "only in en: {only_en:?}");
    }

    #[test]
    fn field_messages_are_matched_with_their_values() {
        assert_eq!(
            match_pattern("must be {} to {} characters", "must be 1 to 40 characters"),
            Some(vec!["1", "40"])
        );
        assert_eq!(
            match_pattern("is required", "is required for outreach"),
            None
        );
        assert_eq!(
            match_pattern("is required{}", "is required for outreach"),
            Some(vec![" for outreach"])
        );
        let zh = field_message("zh-CN", "must be one of marrow, organ, body");
        assert!(
            zh.contains("marrow, organ, body") && !zh.contains("must"),
            "{zh}"
        );
        assert!(!field_message("zh-CN", "something no catalogue has").is_ascii());
        assert_eq!(field_message("en", "something else"), "something else");
    }

    #[test]
    fn arguments_are_filled_in_and_languages_differ() {
        let zh = text("zh-CN", "nav-cases", &[]);
        let en = text("en", "nav-cases", &[]);
        assert_ne!(zh, en);
        assert_ne!(zh, "nav-cases");
        let s = text("en", "page-of", &[("page", Value::from(2))]);
        assert!(s.contains('2'), "{s}");
    }
}
