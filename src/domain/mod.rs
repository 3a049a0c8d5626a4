//! Domain services: cases, contacts and accounts. They take the acting user and `now` as
//! arguments, decide access through `policy::authorize`, and know nothing of HTTP.

pub mod accounts;
pub mod adverse_events;
pub mod attachments;
pub mod audit_view;
pub mod break_glass;
pub mod cases;
pub mod consents;
pub mod contacts;
pub mod correspondence;
pub mod documents;
pub mod erasure;
pub mod ethics;
pub mod family;
pub mod feeds;
pub mod findings;
pub mod honour;
pub mod keys;
pub mod memorials;
pub mod outreach;
pub mod register;
pub mod reports;
pub mod schedule;
pub mod schema;
pub mod tasks;
pub mod throttle;
pub mod types;
pub mod uses;

use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use chrono::{DateTime, Utc};

use crate::audit::{AuditEntry, Recorder};
use crate::crypto::KeyService;
use crate::error::{Error, Result};
use crate::policy::{self, Action, Actor, Resource};
use crate::store::Store;

/// What every domain operation needs.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyService>,
    /// Group commit of read and denial entries.
    pub audit: Recorder,
    /// How long a break-glass grant lasts.
    pub break_glass_for: chrono::Duration,
    pub throttle: Arc<throttle::LoginThrottle>,
    /// Roles that must enrol TOTP (`DONORCARE_REQUIRE_TOTP`).
    pub require_totp: Arc<Vec<types::Role>>,
    /// Where sealed signed forms are kept (`<data-dir>/attachments`).
    pub attachments_dir: std::path::PathBuf,
    /// Scheduling and delivery settings.
    pub schedule: Arc<schedule::ScheduleSettings>,
}

impl Services {
    pub fn new(store: Arc<dyn Store>, keys: Arc<KeyService>) -> Self {
        Services {
            audit: Recorder::start(store.clone()),
            store,
            keys,
            break_glass_for: chrono::Duration::hours(4),
            throttle: Arc::default(),
            require_totp: Arc::default(),
            attachments_dir: std::path::PathBuf::from("data/attachments"),
            schedule: Arc::default(),
        }
    }

    /// The key that seals account secrets (TOTP), derived from the keyring's index key, which
    /// is never rotated.
    pub fn secrets_key(&self) -> crate::crypto::SecretKey {
        crate::crypto::derive_key(&self.keys.ring().index, "donorcare account secrets v1")
    }

    /// Decide an access through `policy::authorize`; a denial is recorded in the audit log
    /// before it is returned. `entry` names what was attempted.
    pub async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        resource: Resource<'_>,
        entry: AuditEntry,
    ) -> Result<()> {
        match policy::authorize(actor, action, resource) {
            Ok(()) => Ok(()),
            Err(e) => {
                let why = match e {
                    Error::NotFound => "not_in_scope",
                    _ => "role",
                };
                self.audit.record(vec![entry.denied(why)]).await?;
                Err(e)
            }
        }
    }

    /// An audit entry for `actor` at `now`.
    pub fn entry(
        &self,
        actor: &Actor,
        action: Action,
        target_type: &str,
        now: DateTime<Utc>,
    ) -> AuditEntry {
        AuditEntry::new(Some(actor), action.as_str(), target_type, now)
    }
}

/// Whether `s` looks like one of our ids, so that only ids (never arbitrary input) reach the log.
pub fn is_id(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// One page of a listing; `next_cursor` is absent on the last page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;
/// The longest id the API takes (ids are UUIDs; longer is never one).
pub const MAX_ID: usize = 64;

/// Validate a page request; `limit` is 1–200 (default 50).
pub fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::field(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        )),
    }
}

/// Cut a fetched `limit + 1` rows down to a page, with the cursor of its last item.
pub fn paginate<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    id: impl Fn(&R) -> String,
    map: impl FnMut(R) -> Result<T>,
) -> Result<Page<T>> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(&id) } else { None };
    let items = rows.into_iter().map(map).collect::<Result<Vec<T>>>()?;
    Ok(Page { items, next_cursor })
}

/// Deserialize a JSON value, naming the field of the first type error.
pub fn from_json<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T> {
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde's messages name the unknown or missing field itself; keep the field as the key.
        let (field, why) = if let Some(rest) = inner.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or("");
            // The path already ends with the unknown field's name.
            let field = if path == "." { name.to_string() } else { path };
            (field, "is not a known field".to_string())
        } else if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or("");
            // The path is the object the field is missing from.
            let field = if path == "." {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            (field, "is required".to_string())
        } else {
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            (field, strip_serde_position(&inner))
        };
        Error::field(field, why)
    })
}

/// JSON has one kind of number: `3.0` is the integer 3 (as JSON Schema reads it too), so a whole
/// number written with a fraction is taken where an integer is expected.
fn whole_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // Within ±2^53 a float is exactly the integer it shows.
                if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

fn strip_serde_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// RFC 7396 JSON merge patch: `null` removes, objects merge, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Refuse the fields of a merge patch that `T` does not have. A field set to `null` vanishes in
/// the merge, so `T`'s `deny_unknown_fields` never sees it: each such field is tried alone.
pub fn known_patch_fields<T: DeserializeOwned>(patch: &serde_json::Value) -> Result<()> {
    use serde_json::{Map, Value};
    fn nulls(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let Value::Object(m) = v {
            for (k, v) in m {
                path.push(k.clone());
                if v.is_null() {
                    out.push(path.clone());
                } else {
                    nulls(v, path, out);
                }
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    nulls(patch, &mut Vec::new(), &mut found);
    for path in found {
        let mut alone = Value::Null;
        for k in path.iter().rev() {
            let mut m = Map::new();
            m.insert(k.clone(), alone);
            alone = Value::Object(m);
        }
        if let Err(Error::Validation(f)) = from_json::<T>(alone) {
            if let Some((field, why)) = f.into_iter().find(|(_, why)| why == "is not a known field")
            {
                return Err(Error::field(field, why));
            }
        }
    }
    Ok(())
}

/// Parse a `<RFC 3339 time>|<id>` listing cursor, recording an error under `cursor`.
pub fn time_cursor(
    c: Option<&str>,
    v: &mut crate::error::Validator,
) -> Option<(DateTime<Utc>, String)> {
    c.and_then(|c| {
        v.check(
            "cursor",
            c.split_once('|')
                .and_then(|(t, id)| {
                    Some((
                        DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc),
                        id.to_string(),
                    ))
                })
                .ok_or_else(|| "is not a cursor of this listing".to_string()),
        )
    })
}

/// A new time-ordered id: ids sort by creation, which is what pagination walks.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        a: Option<i64>,
        b: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        c: String,
        d: Option<i64>,
    }

    #[test]
    fn a_patch_may_clear_only_fields_that_exist() {
        assert!(known_patch_fields::<Shape>(&json!({"a": null, "b": {"d": null}})).is_ok());
        // A required field cleared is the validation's business, not an unknown field.
        assert!(known_patch_fields::<Shape>(&json!({"b": {"c": null}})).is_ok());
        for (patch, field) in [
            (json!({"\u{205f}": null}), "\u{205f}"),
            (json!({"b": {"x": null}}), "b.x"),
        ] {
            let Err(Error::Validation(f)) = known_patch_fields::<Shape>(&patch) else {
                panic!("refused: {patch}");
            };
            assert_eq!(f.keys().collect::<Vec<_>>(), [field], "{patch}");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
