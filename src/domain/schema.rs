//! The OpenAPI schemas of validated input fields, written once beside the rules they describe:
//! each is built from the same limits and value lists the validators in [`super::types`] use,
//! so the document and the validation say the same thing. Handlers' input types point at these
//! with `#[schema(schema_with = …)]` and `#[param(schema_with = …)]`.
//!
//! Text is trimmed before it is checked (Rust's `char::is_whitespace`), and may hold no control
//! character but tab and line breaks; the patterns say exactly that, with the whitespace class
//! written out (a regex `\s` is a slightly different set in every language).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::RefOr;

use super::types;

/// What `str::trim` removes.
const SPACE: &str =
    r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// The control characters [`types::text`] refuses.
const CONTROL: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";

fn kind(nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    }
}

/// Text of `min..=max` characters once trimmed, without control characters.
fn text_pattern(min: usize, max: usize) -> String {
    let edge = format!("[^{SPACE}{CONTROL}]");
    let inner = format!("[^{CONTROL}]");
    let body = match (min, max) {
        (_, 0) => String::new(),
        (0 | 1, 1) => edge.clone(),
        (0 | 1, _) => format!("{edge}({inner}{{0,{}}}{edge})?", max - 2),
        (min, max) => format!("{edge}{inner}{{{},{}}}{edge}", min - 2, max - 2),
    };
    if min == 0 {
        format!("^[{SPACE}]*({body})?[{SPACE}]*$")
    } else {
        format!("^[{SPACE}]*{body}[{SPACE}]*$")
    }
}

fn built(b: ObjectBuilder) -> RefOr<Schema> {
    RefOr::T(Schema::Object(b.build()))
}

/// Optional text ([`types::text`]): absent, null, or at most `max` characters once trimmed.
pub fn text(max: usize) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(true))
            .pattern(Some(text_pattern(0, max))),
    )
}

/// Required text ([`types::required_text`]): `min..=max` characters once trimmed (`min` ≥ 1).
pub fn required_text(min: usize, max: usize) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(false))
            .pattern(Some(text_pattern(min.max(1), max))),
    )
}

/// Absent, null, or `min..=max` characters once trimmed (`min` ≥ 1).
pub fn nonempty_text(min: usize, max: usize) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(true))
            .pattern(Some(text_pattern(min.max(1), max))),
    )
}

/// A [`types::Token`] (a username, a region).
pub fn token(t: types::Token, nullable: bool) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .pattern(Some(t.pattern(SPACE))),
    )
}

/// An email address ([`types::email`]): one `@`, a dotted domain, no spaces or control
/// characters.
pub fn email(nullable: bool) -> RefOr<Schema> {
    let c = format!("[^@{SPACE}{CONTROL}]");
    let d = format!("[^@.{SPACE}{CONTROL}]");
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .max_length(Some(types::MAX_EMAIL))
            .pattern(Some(format!(
                "^[{SPACE}]*{c}+@{d}{c}*\\.{c}*{d}[{SPACE}]*$"
            ))),
    )
}

/// A phone number ([`types::phone`]): an optional `+`, then 5 to 15 digits with spaces, `-`
/// and brackets between. (Which eleven-digit numbers are mainland mobiles is not stated.)
pub fn phone(nullable: bool) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .pattern(Some(format!(
                "^[{SPACE}]*\\+?[ ()-]*([0-9][ ()-]*){{{},{}}}[{SPACE}]*$",
                types::PHONE_DIGITS.start(),
                types::PHONE_DIGITS.end()
            ))),
    )
}

/// A WeChat ID or OpenID ([`types::wechat_id`]).
pub fn wechat_id(nullable: bool) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .pattern(Some(format!(
                "^[{SPACE}]*[A-Za-z0-9_-]{{{},{}}}[{SPACE}]*$",
                types::WECHAT_ID_CHARS.start(),
                types::WECHAT_ID_CHARS.end()
            ))),
    )
}

/// A mainland resident ID ([`types::national_id`]): 17 digits and a digit or X. (The check
/// character and the embedded birth date are checked too, and cannot be stated here.)
pub fn national_id(nullable: bool) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .pattern(Some(format!("^[{SPACE}]*[0-9]{{17}}[0-9Xx][{SPACE}]*$"))),
    )
}

/// A date, `YYYY-MM-DD` ([`types::parse_date`]).
pub fn date(nullable: bool) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
    )
}

/// A time (RFC 3339) or a date alone (`YYYY-MM-DD`), as `due_at` takes.
pub fn instant_or_date(nullable: bool) -> RefOr<Schema> {
    use utoipa::openapi::schema::OneOfBuilder;
    let of = |f: KnownFormat| {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(f)))
    };
    let mut b = OneOfBuilder::new()
        .item(of(KnownFormat::DateTime))
        .item(of(KnownFormat::Date));
    if nullable {
        b = b.item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)));
    }
    RefOr::T(Schema::OneOf(b.build()))
}

/// A TOTP code: six digits.
pub fn totp_code(nullable: bool) -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .pattern(Some(format!("^[{SPACE}]*[0-9]{{6}}[{SPACE}]*$"))),
    )
}

/// One of `values`.
pub fn one_of(values: &[&str], nullable: bool) -> RefOr<Schema> {
    let mut all: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if nullable {
        all.push(serde_json::Value::Null);
    }
    built(
        ObjectBuilder::new()
            .schema_type(kind(nullable))
            .enum_values(Some(all)),
    )
}

/// An IANA time zone ([`types::timezone`]): the names the zone database knows.
pub fn timezone(nullable: bool) -> RefOr<Schema> {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    one_of(&names, nullable)
}

/// The names of a [`crate::domain::types`] enumeration (`Channel::ALL`, …).
pub fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

/// A list of values each one of `values` (or null, if `nullable`).
pub fn list_of(values: &[&str], nullable: bool) -> RefOr<Schema> {
    use utoipa::openapi::schema::ArrayBuilder;
    let items: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    RefOr::T(Schema::Array(
        ArrayBuilder::new()
            .schema_type(if nullable {
                SchemaType::from_iter([Type::Array, Type::Null])
            } else {
                SchemaType::Type(Type::Array)
            })
            .items(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some(items)),
            )
            .build(),
    ))
}

/// Null, or a comma-separated list of `values` (each trimmed).
pub fn comma_list(values: &[&str]) -> RefOr<Schema> {
    let one = format!("[{SPACE}]*({})[{SPACE}]*", values.join("|"));
    built(
        ObjectBuilder::new()
            .schema_type(kind(true))
            .pattern(Some(format!("^{one}(,{one})*$"))),
    )
}

/// A page size ([`super::page_limit`]).
pub fn limit() -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(super::MAX_PAGE)),
    )
}

/// A password ([`types::password`]).
pub fn password() -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(false))
            .min_length(Some(types::MIN_PASSWORD))
            .max_length(Some(types::MAX_PASSWORD)),
    )
}

/// Absent, null, or a password.
pub fn optional_password() -> RefOr<Schema> {
    built(
        ObjectBuilder::new()
            .schema_type(kind(true))
            .min_length(Some(types::MIN_PASSWORD))
            .max_length(Some(types::MAX_PASSWORD)),
    )
}

#[cfg(test)]
mod tests {
    use super::text_pattern;

    #[test]
    fn a_pattern_is_anchored_and_counts_characters_between_the_edges() {
        let p = text_pattern(20, 2000);
        assert!(p.starts_with('^') && p.ends_with('$'), "{p}");
        assert!(p.contains("{18,1998}"), "{p}");
        assert_eq!(
            text_pattern(0, 1).matches("{0,").count(),
            0,
            "one character needs no count"
        );
    }
}
