//! Consent documents: the versioned texts people sign, one per kind and language, built into
//! the binary from `templates/consent/`. A record keeps the document id and the SHA-256 of its
//! text, so reading a record shows exactly what was signed.

use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

macro_rules! documents {
    ($($kind:literal, $lang:literal, $version:literal);* $(;)?) => {
        &[$(
            (
                $kind,
                $lang,
                $version,
                include_str!(concat!("../../templates/consent/", $kind, ".", $lang, ".v", $version, ".hbs")),
            )
        ),*]
    };
}

/// (kind, language, version, handlebars source)
const SOURCES: &[(&str, &str, u32, &str)] = documents!(
    "registry", "en", 1; "registry", "zh-CN", 1;
    "donation", "en", 1; "donation", "zh-CN", 1;
    "body_donation", "en", 1; "body_donation", "zh-CN", 1;
    "contact", "en", 1; "contact", "zh-CN", 1;
    "publicity", "en", 1; "publicity", "zh-CN", 1;
    "research", "en", 1; "research", "zh-CN", 1;
    "correspondence", "en", 1; "correspondence", "zh-CN", 1;
);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Document {
    /// `<kind>-<language>-v<version>`, e.g. `donation-zh-CN-v1`.
    pub id: String,
    pub kind: String,
    pub language: String,
    pub version: u32,
    /// SHA-256 (hex) of `text`.
    pub sha256: String,
    #[serde(skip)]
    pub text: String,
}

/// Every document version, rendered once.
pub fn all() -> &'static [Document] {
    static DOCS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let hb = handlebars::Handlebars::new();
        SOURCES
            .iter()
            .map(|(kind, lang, version, src)| {
                // The texts carry no placeholders: rendering only normalises them, and a template
                // that fails to render is kept as written.
                let text = hb
                    .render_template(src, &serde_json::json!({}))
                    .unwrap_or_else(|_| (*src).to_string())
                    .trim()
                    .to_string();
                Document {
                    id: format!("{kind}-{lang}-v{version}"),
                    kind: (*kind).to_string(),
                    language: (*lang).to_string(),
                    version: *version,
                    sha256: hex::encode(Sha256::digest(text.as_bytes())),
                    text,
                }
            })
            .collect()
    })
}

pub fn find(id: &str) -> Option<&'static Document> {
    all().iter().find(|d| d.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_both_languages_with_distinct_hashes() {
        for kind in [
            "registry",
            "donation",
            "body_donation",
            "contact",
            "publicity",
            "research",
        ] {
            for lang in ["en", "zh-CN"] {
                let d = find(&format!("{kind}-{lang}-v1")).expect("document");
                assert_eq!(d.sha256, hex::encode(Sha256::digest(d.text.as_bytes())));
                assert!(d.text.len() > 50);
            }
        }
        let mut hashes: Vec<_> = all().iter().map(|d| &d.sha256).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), all().len());
    }
}
