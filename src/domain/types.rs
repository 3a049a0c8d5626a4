//! Validated values: parsed once at the edge, trusted afterwards. Each parser returns the reason
//! a value was refused, which becomes the message for that field.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $s)] $variant),+ }

        // Written out rather than derived: the derive cannot read a `serde(rename)` that a
        // macro passes it, and documented the variants' Rust names. These are the names
        // `parse` takes and serde writes.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema_of(&[$($s),+])
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A string schema whose values are exactly `values`.
pub fn string_schema_of(
    values: &[&str],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(values.iter().copied()))
        .into()
}

string_enum!(
    /// An account's role; see the access table in DESIGN.md.
    Role {
        Admin => "admin",
        Supervisor => "supervisor",
        Coordinator => "coordinator",
        EthicsReviewer => "ethics_reviewer",
        Volunteer => "volunteer",
        Family => "family",
    }
);

string_enum!(
    /// The care programme a case belongs to.
    Program {
        Marrow => "marrow",
        Organ => "organ",
        Body => "body",
    }
);

string_enum!(
    CaseStatus {
        Open => "open",
        Closed => "closed",
        Erased => "erased",
    }
);

string_enum!(
    Sex {
        Female => "f",
        Male => "m",
        Other => "x",
    }
);

string_enum!(
    Relationship {
        Spouse => "spouse",
        Parent => "parent",
        Child => "child",
        Sibling => "sibling",
        Other => "other",
    }
);

string_enum!(
    Channel {
        Email => "email",
        Sms => "sms",
        Letter => "letter",
        Portal => "portal",
        Wechat => "wechat",
    }
);

string_enum!(
    Language {
        ZhCn => "zh-CN",
        En => "en",
    }
);

impl Program {
    /// Donation kinds that belong to this programme.
    pub fn donation_kinds(self) -> &'static [&'static str] {
        match self {
            Program::Marrow => &["pbsc", "marrow", "lymphocytes"],
            Program::Organ => &[
                "kidney",
                "liver",
                "heart",
                "lung",
                "pancreas",
                "intestine",
                "cornea",
                "multi_organ",
            ],
            Program::Body => &["whole_body"],
        }
    }

    /// Organ and body donors are deceased; marrow donors are living.
    pub fn is_deceased_program(self) -> bool {
        !matches!(self, Program::Marrow)
    }
}

/// Parse `YYYY-MM-DD` strictly (so 2025-02-30 is refused).
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let s = s.trim();
    if s.len() != 10 {
        return Err("must be a date as YYYY-MM-DD".into());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| "not a real date (YYYY-MM-DD)".into())
}

/// An RFC 3339 time, or a date (`YYYY-MM-DD`) read as the start of that day in UTC.
pub fn parse_instant_or_date(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    parse_date(s)
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| "must be a date (YYYY-MM-DD) or an RFC 3339 time".into())
}

/// Trimmed text of at most `max` characters; empty is refused when `required`.
pub fn text(s: &str, max: usize) -> Result<String, String> {
    let t = s.trim();
    if t.chars().count() > max {
        return Err(format!("at most {max} characters"));
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

pub fn required_text(s: &str, max: usize) -> Result<String, String> {
    let t = text(s, max)?;
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(t)
}

/// How many digits a phone number has.
pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 5..=15;

/// Validate a phone number; returns it trimmed as given.
pub fn phone(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    let body = t.strip_prefix('+').unwrap_or(t);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
    {
        return Err(
            "may contain only digits, spaces, '-', '(' and ')' after an optional '+'".into(),
        );
    }
    let digits = normalise_phone(t);
    if !PHONE_DIGITS.contains(&digits.len()) {
        return Err(format!(
            "must have between {} and {} digits",
            PHONE_DIGITS.start(),
            PHONE_DIGITS.end()
        ));
    }
    if digits.len() == 11 && digits.starts_with('1') && !matches!(digits.as_bytes()[1], b'3'..=b'9')
    {
        return Err("not a valid mainland mobile number".into());
    }
    Ok(t.to_string())
}

/// How long a WeChat address is: a WeChat ID (微信号, 6 to 20 characters) or the OpenID a
/// gateway knows the person by (28).
pub const WECHAT_ID_CHARS: std::ops::RangeInclusive<usize> = 6..=64;

/// A WeChat ID or OpenID: letters, digits, '_' and '-' (what both are made of); returns it
/// trimmed as given (an OpenID is case-sensitive).
pub fn wechat_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if !WECHAT_ID_CHARS.contains(&t.len())
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(format!(
            "must be a WeChat ID: {} to {} letters, digits, '_' or '-'",
            WECHAT_ID_CHARS.start(),
            WECHAT_ID_CHARS.end()
        ));
    }
    Ok(t.to_string())
}

/// Digits of a phone number, without the +86 / 0086 country code, for the blind index.
pub fn normalise_phone(s: &str) -> String {
    let international = s.trim_start().starts_with('+');
    let mut d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if international && d.starts_with("86") && d.len() == 13 {
        d.drain(..2);
    } else if d.starts_with("0086") && d.len() == 15 {
        d.drain(..4);
    }
    d
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// A mainland resident identity number (GB 11643): 18 characters, an embedded birth date, and
/// the ISO 7064 MOD 11-2 check character. Returns it trimmed with an upper-case X.
pub fn national_id(s: &str, today: NaiveDate) -> Result<(String, NaiveDate), String> {
    let t = s.trim().to_ascii_uppercase();
    let b = t.as_bytes();
    if b.len() != 18 {
        return Err("must be 18 characters".into());
    }
    if !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
        return Err("must be 17 digits followed by a digit or X".into());
    }
    let birth = NaiveDate::parse_from_str(&t[6..14], "%Y%m%d")
        .map_err(|_| "contains an impossible birth date".to_string())?;
    if birth > today {
        return Err("contains a birth date in the future".into());
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    if ID_CHECK[(sum % 11) as usize] != b[17] {
        return Err("check digit is wrong".into());
    }
    Ok((t, birth))
}

/// The check character that completes the first 17 digits of a national ID.
pub fn national_id_check(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(ID_CHECK[(sum % 11) as usize] as char)
}

/// Upper-case form of a national ID for the blind index.
pub fn normalise_national_id(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

/// Normalised name for the blind index: NFKC, lower case, without spaces and middle dots, so
/// "张 三" finds "张三" and "Anna  LEE" finds "anna lee".
pub fn normalise_name(s: &str) -> String {
    s.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '・' | '•' | '.'))
        .collect()
}

/// The longest email address, spaces around it included.
pub const MAX_EMAIL: usize = 254;

pub fn email(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_EMAIL {
        return Err(format!("at most {MAX_EMAIL} characters"));
    }
    let t = s.trim();
    let Some((local, domain)) = t.split_once('@') else {
        return Err("must be an address like name@example.org".into());
    };
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    if !ok {
        return Err("must be an address like name@example.org".into());
    }
    Ok(t.to_string())
}

pub fn timezone(s: &str) -> Result<String, String> {
    let t = s.trim();
    t.parse::<chrono_tz::Tz>()
        .map(|_| t.to_string())
        .map_err(|_| "must be an IANA time zone such as Asia/Shanghai".into())
}

/// Account usernames: 3–64 of a–z, 0–9, '.', '_' and '-'.
/// A short name of lower-case letters, digits and a few marks (a username, a region): checked
/// here and stated by [`Token::pattern`] in the OpenAPI document from the same fields.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    pub min: usize,
    pub max: usize,
    /// The marks allowed besides a-z and 0-9.
    pub marks: &'static str,
}

pub const USERNAME: Token = Token {
    min: 3,
    max: 64,
    marks: "._-",
};
pub const REGION: Token = Token {
    min: 1,
    max: 64,
    marks: "_-",
};

impl Token {
    pub fn check(&self, s: &str) -> Result<String, String> {
        let t = s.trim();
        if !(self.min..=self.max).contains(&t.len()) {
            return Err(format!("must be {} to {} characters", self.min, self.max));
        }
        if !t
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || self.marks.contains(c))
        {
            let marks: Vec<String> = self.marks.chars().map(|c| format!("'{c}'")).collect();
            return Err(format!(
                "may contain only a-z, 0-9 and {}",
                marks.join(", ")
            ));
        }
        Ok(t.to_string())
    }

    /// The same rule as a regular expression (surrounding spaces are trimmed first).
    pub fn pattern(&self, space: &str) -> String {
        // A '-' last in a class stands for itself; '.' and '_' always do.
        let mut marks: String = self.marks.chars().filter(|c| *c != '-').collect();
        if self.marks.contains('-') {
            marks.push('-');
        }
        format!(
            "^[{space}]*[a-z0-9{marks}]{{{},{}}}[{space}]*$",
            self.min, self.max
        )
    }
}

pub fn username(s: &str) -> Result<String, String> {
    USERNAME.check(s)
}

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;

pub fn password(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!("must be at least {MIN_PASSWORD} characters"));
    }
    if n > MAX_PASSWORD {
        return Err(format!("at most {MAX_PASSWORD} characters"));
    }
    Ok(())
}

/// Region codes: 1–64 of a–z, 0–9, '_' and '-'.
pub fn region(s: &str) -> Result<String, String> {
    REGION.check(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    /// Build a valid ID from its first 17 digits.
    fn with_check(first17: &str) -> String {
        format!("{first17}{}", national_id_check(first17).unwrap())
    }

    #[test]
    fn national_id_checks_digit_date_and_length() {
        // The GB 11643 example number.
        assert!(national_id("11010519491231002X", today()).is_ok());
        assert!(national_id("11010519491231002x", today()).is_ok());
        assert_eq!(
            national_id("110105194912310021", today()).unwrap_err(),
            "check digit is wrong"
        );
        assert!(national_id(&with_check("11010519490230002"), today())
            .unwrap_err()
            .contains("impossible"));
        assert!(national_id(&with_check("11010520990101002"), today())
            .unwrap_err()
            .contains("future"));
        assert!(national_id("1101051949123100", today()).is_err());
    }

    #[test]
    fn every_single_digit_change_breaks_the_check() {
        let id = "11010519491231002X";
        for pos in 0..17 {
            for d in b'0'..=b'9' {
                let mut b = id.as_bytes().to_vec();
                if b[pos] == d {
                    continue;
                }
                b[pos] = d;
                let s = String::from_utf8(b).unwrap();
                assert!(national_id(&s, today()).is_err(), "{s}");
            }
        }
    }

    #[test]
    fn phones_normalise_to_the_same_digits() {
        assert_eq!(normalise_phone("+86 138-0013-8000"), "13800138000");
        assert_eq!(normalise_phone("0086 13800138000"), "13800138000");
        assert_eq!(normalise_phone("138 0013 8000"), "13800138000");
        assert_eq!(normalise_phone("0574-8765 4321"), "057487654321");
        assert!(phone("138001380a0").is_err());
        assert!(phone("12800138000").is_err());
        assert!(phone("123").is_err());
        assert!(phone("+44 20 7946 0958").is_ok());
    }

    #[test]
    fn wechat_ids_are_letters_digits_underscores_and_hyphens() {
        assert_eq!(wechat_id("  li_hua-1988 ").as_deref(), Ok("li_hua-1988"));
        // An OpenID keeps its case.
        assert_eq!(
            wechat_id("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").as_deref(),
            Ok("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        assert!(wechat_id("").is_err());
        assert!(wechat_id("li").is_err(), "too short");
        assert!(wechat_id(&"a".repeat(65)).is_err(), "too long");
        assert!(wechat_id("li hua").is_err());
        assert!(wechat_id("李华李华李华").is_err());
        assert!(wechat_id("li@hua.cn").is_err());
    }

    #[test]
    fn names_normalise_spacing_case_and_dots() {
        assert_eq!(normalise_name("张 三"), normalise_name("张三"));
        assert_eq!(normalise_name("Anna  LEE"), normalise_name("anna lee"));
        assert_eq!(normalise_name("买买提·艾力"), normalise_name("买买提艾力"));
        assert_eq!(normalise_name("ＡＢＣ"), "abc");
    }

    #[test]
    fn dates_are_strict() {
        assert!(parse_date("2025-02-30").is_err());
        assert!(parse_date("2024-02-29").is_ok());
        assert!(parse_date("2025-2-3").is_err());
        assert!(parse_date("yesterday").is_err());
    }
}
