//! The one form convention of every page. A field's `name` is the API's JSON name, nested with
//! dots (`donor.full_name`); the submitted form becomes the JSON body the API takes and goes
//! through the same domain code, so a page and the API never disagree. A refused form comes back
//! with 422, the values kept and each message beside its field.
//!
//! Templates draw fields with `{{field "donor.full_name" "label-key" type="text"}}`, which reads
//! the page's `values` and `errors`; the helper writes the label, the hint, `aria-invalid` and
//! `aria-describedby`, so no page can forget them.

use std::collections::BTreeMap;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::{json, Map, Value};

use crate::error::FieldErrors;
use crate::web::i18n;

/// How a field's text becomes JSON.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A string; blank is absent (or null when editing).
    Text,
    /// A checkbox: `true` when ticked, `false` when not.
    Bool,
    /// A three-way choice (`true`, `false`, blank for unknown).
    MaybeBool,
    /// Repeated fields or checkboxes: an array of strings.
    List,
    /// A whole number.
    Int,
}

/// What a blank field means: absent on a new record, cleared (`null`) when editing one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Blank {
    Omit,
    Null,
}

/// A query parameter's value, trimmed, `None` when blank.
pub fn blank_none(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A submitted form, its fields in order (a name may repeat).
#[derive(Debug, Default, Clone)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed, `None` when blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn csrf(&self) -> Option<&str> {
        self.get("csrf")
    }

    /// The JSON body the API would take, from the fields of `spec`.
    pub fn json(&self, spec: &[(&str, Kind)], blank: Blank) -> Value {
        let mut root = Map::new();
        for (name, kind) in spec {
            let raw = self.get(name).map(str::trim).unwrap_or("");
            let value = match kind {
                Kind::Bool => Some(json!(matches!(raw, "true" | "on" | "1"))),
                Kind::MaybeBool => match raw {
                    "true" => Some(json!(true)),
                    "false" => Some(json!(false)),
                    _ => (blank == Blank::Null).then_some(Value::Null),
                },
                Kind::List => {
                    let items: Vec<&str> = self
                        .all(name)
                        .into_iter()
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .collect();
                    Some(json!(items))
                }
                Kind::Int if !raw.is_empty() => Some(match raw.parse::<i64>() {
                    Ok(n) => json!(n),
                    // Left as text, so the domain names the field and says why.
                    Err(_) => json!(raw),
                }),
                Kind::Text if !raw.is_empty() => Some(json!(raw)),
                Kind::Int | Kind::Text => (blank == Blank::Null).then_some(Value::Null),
            };
            if let Some(v) = value {
                insert_path(&mut root, name, v);
            }
        }
        Value::Object(root)
    }

    /// The values to show again in a refused form: name → text (or list for repeated names).
    pub fn values(&self) -> Value {
        let mut out = Map::new();
        for (k, v) in &self.0 {
            if k == "csrf" {
                continue;
            }
            match out.get_mut(k) {
                Some(Value::Array(a)) => a.push(json!(v)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = json!([first, v]);
                }
                None => {
                    out.insert(k.clone(), json!(v));
                }
            }
        }
        Value::Object(out)
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormData {
    type Rejection = crate::error::Error;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    crate::error::Error::PayloadTooLarge
                } else {
                    crate::error::Error::BadRequest("unreadable form".into())
                }
            })?;
        Ok(FormData(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// A file sent with a form: its field's name and its bytes, read up to `limit + 1` so that a
/// file too large is known as such without holding more of it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A `multipart/form-data` form: its text fields as a [`FormData`], and its files (a file field
/// left empty is no file). A form sent urlencoded is read too, with no files.
#[derive(Debug, Default)]
pub struct MultipartForm {
    pub form: FormData,
    pub files: Vec<Upload>,
}

/// The largest file a form takes, beyond which its bytes stop being read.
pub const UPLOAD_LIMIT: usize = crate::domain::attachments::MAX_BYTES;

impl MultipartForm {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.bytes.as_slice())
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for MultipartForm {
    type Rejection = crate::error::Error;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use crate::error::Error;
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            let form = FormData::from_request(req, state).await?;
            return Ok(MultipartForm {
                form,
                files: Vec::new(),
            });
        }
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|_| Error::BadRequest("unreadable form".into()))?;
        let mut out = MultipartForm::default();
        let unreadable = |e: axum::extract::multipart::MultipartError| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("unreadable form".into())
            }
        };
        while let Some(mut field) = mp.next_field().await.map_err(unreadable)? {
            let name = field.name().unwrap_or_default().to_string();
            if field.file_name().is_some() {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    let room = (UPLOAD_LIMIT + 1).saturating_sub(bytes.len());
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // A file input left empty sends a part with no name's file and no bytes.
                if !bytes.is_empty() {
                    out.files.push(Upload { name, bytes });
                }
            } else {
                let text = field.text().await.map_err(unreadable)?;
                out.form.0.push((name, text));
            }
        }
        Ok(out)
    }
}

/// Put `v` at a dotted path (`donor.full_name`) of `root`.
fn insert_path(root: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            root.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let child = root
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                insert_path(m, rest, v);
            }
        }
    }
}

/// A stored record as the flat values of its form (`donor.full_name` → text).
pub fn flatten(v: &Value) -> Value {
    fn walk(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            Value::Null => {}
            Value::String(s) => {
                out.insert(prefix.to_string(), json!(s));
            }
            Value::Array(a) => {
                out.insert(prefix.to_string(), Value::Array(a.clone()));
            }
            other => {
                out.insert(prefix.to_string(), json!(other.to_string()));
            }
        }
    }
    let mut out = Map::new();
    walk("", v, &mut out);
    Value::Object(out)
}

/// The domain's field messages in the page's language.
pub fn errors(lang: &str, errors: &FieldErrors) -> Value {
    let m: BTreeMap<&String, String> = errors
        .iter()
        .map(|(k, v)| (k, i18n::field_message(lang, v)))
        .collect();
    json!(m)
}

fn field_id(name: &str) -> String {
    format!(
        "f-{}",
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    )
}

fn esc(s: &str) -> String {
    handlebars::html_escape(s)
}

/// `{{field name label-key type=… required=… options=… hint=… autocomplete=…}}`.
struct Field;

fn value_of<'a>(ctx: &'a Context, name: &str) -> Option<&'a Value> {
    ctx.data().get("values").and_then(|v| v.get(name))
}

fn selected(current: Option<&Value>, value: &str) -> bool {
    match current {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(value)),
        Some(Value::Bool(b)) => b.to_string() == value,
        _ => false,
    }
}

impl HelperDef for Field {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("field", 0))?;
        let label_key = h
            .param(1)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("field", 1))?;
        let lang = ctx
            .data()
            .get("lang")
            .and_then(Value::as_str)
            .unwrap_or(i18n::DEFAULT);
        let t = |k: &str| esc(&i18n::text(lang, k, &[]));
        let opt = |k: &str| h.hash_get(k).map(|v| v.value().clone());
        let kind = opt("type")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "text".into());
        let required = opt("required").and_then(|v| v.as_bool()).unwrap_or(false);
        let id = field_id(name);
        let current = value_of(ctx, name);
        let text = match current {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            Some(Value::Null) | None => opt("default")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            Some(other) => other.to_string(),
        };
        let error = ctx
            .data()
            .get("errors")
            .and_then(|e| e.get(name))
            .and_then(Value::as_str);
        let hint = opt("hint").and_then(|v| v.as_str().map(str::to_string));
        let mut described = Vec::new();
        if hint.is_some() {
            described.push(format!("{id}-hint"));
        }
        if error.is_some() {
            described.push(format!("{id}-error"));
        }
        let mut aria = String::new();
        if required {
            aria.push_str(r#" aria-required="true""#);
        }
        if error.is_some() {
            aria.push_str(r#" aria-invalid="true""#);
        }
        if !described.is_empty() {
            aria.push_str(&format!(r#" aria-describedby="{}""#, described.join(" ")));
        }
        let extra = ["autocomplete", "inputmode", "min", "max", "step", "accept"]
            .iter()
            .filter_map(|k| {
                opt(k).map(|v| {
                    let v = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                    format!(r#" {k}="{}""#, esc(&v))
                })
            })
            .collect::<String>();
        let req_mark = if required {
            format!(
                r#" <span class="req" aria-hidden="true">{}</span>"#,
                t("form-required-mark")
            )
        } else {
            String::new()
        };
        let options: Vec<(String, String)> = opt("options")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|o| {
                let value = o
                    .get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let label = match (o.get("key").and_then(Value::as_str), o.get("text")) {
                    (Some(k), _) => t(k),
                    (None, Some(Value::String(s))) => esc(s),
                    _ => esc(&value),
                };
                (value, label)
            })
            .collect();
        let class = if error.is_some() {
            "field invalid"
        } else {
            "field"
        };
        let mut html = format!(r#"<div class="{class} field-{}">"#, esc(&kind));
        let n = esc(name);
        match kind.as_str() {
            "checkbox" => {
                let checked = if selected(current, "true") || text == "on" {
                    " checked"
                } else {
                    ""
                };
                html.push_str(&format!(
                    r#"<input type="checkbox" id="{id}" name="{n}" value="true"{checked}{aria}> <label for="{id}">{}</label>"#,
                    t(label_key)
                ));
            }
            "checkboxes" | "radios" => {
                let input = if kind == "radios" {
                    "radio"
                } else {
                    "checkbox"
                };
                // aria-required is allowed on a radio group, not on a plain group of checkboxes.
                let role = if kind == "radios" {
                    r#" role="radiogroup""#
                } else {
                    ""
                };
                let aria = if kind == "radios" {
                    aria.clone()
                } else {
                    aria.replace(r#" aria-required="true""#, "")
                };
                html.push_str(&format!(
                    r#"<fieldset id="{id}"{role}{aria}><legend>{}{req_mark}</legend>"#,
                    t(label_key)
                ));
                for (i, (value, label)) in options.iter().enumerate() {
                    let checked = if selected(current, value) {
                        " checked"
                    } else {
                        ""
                    };
                    html.push_str(&format!(
                        r#"<span class="choice"><input type="{input}" id="{id}-{i}" name="{n}" value="{}"{checked}> <label for="{id}-{i}">{label}</label></span>"#,
                        esc(value)
                    ));
                }
                html.push_str("</fieldset>");
            }
            "select" => {
                html.push_str(&format!(
                    r#"<label for="{id}">{}{req_mark}</label><select id="{id}" name="{n}"{aria}>"#,
                    t(label_key)
                ));
                if !required || text.is_empty() {
                    // A filter's empty choice says what it means (`blank="filter-all"`).
                    let blank = opt("blank")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "form-choose".into());
                    html.push_str(&format!(r#"<option value="">{}</option>"#, t(&blank)));
                }
                for (value, label) in &options {
                    let sel = if *value == text { " selected" } else { "" };
                    html.push_str(&format!(
                        r#"<option value="{}"{sel}>{label}</option>"#,
                        esc(value)
                    ));
                }
                html.push_str("</select>");
            }
            "textarea" => {
                html.push_str(&format!(
                    r#"<label for="{id}">{}{req_mark}</label><textarea id="{id}" name="{n}" rows="4"{aria}>{}</textarea>"#,
                    t(label_key),
                    esc(&text)
                ));
            }
            other => {
                let input = match other {
                    "date" | "email" | "tel" | "password" | "number" | "datetime-local"
                    | "search" | "time" | "file" => other,
                    _ => "text",
                };
                let value = if input == "password" || input == "file" {
                    String::new()
                } else {
                    esc(&text)
                };
                html.push_str(&format!(
                    r#"<label for="{id}">{}{req_mark}</label><input type="{input}" id="{id}" name="{n}" value="{value}"{aria}{extra}>"#,
                    t(label_key)
                ));
            }
        }
        if let Some(hint) = hint {
            // Numbers a hint names (a minimum length) come from the page's `hint_args`.
            let args: Vec<(&str, Value)> = ctx
                .data()
                .get("hint_args")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.clone())).collect())
                .unwrap_or_default();
            html.push_str(&format!(
                r#"<p class="hint" id="{id}-hint">{}</p>"#,
                esc(&i18n::text(lang, &hint, &args))
            ));
        }
        if let Some(e) = error {
            html.push_str(&format!(
                r#"<p class="error" id="{id}-error">{}</p>"#,
                esc(e)
            ));
        }
        html.push_str("</div>");
        out.write(&html)?;
        Ok(())
    }
}

handlebars::handlebars_helper!(FieldId: |name: str| field_id(name));

pub fn register(hb: &mut Handlebars<'static>) {
    hb.register_helper("field", Box::new(Field));
    hb.register_helper("field_id", Box::new(FieldId));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn dotted_names_nest_and_blanks_follow_the_mode() {
        let f = form(&[
            ("program", "organ"),
            ("donor.full_name", " 王芳 "),
            ("donor.birth_date", ""),
            ("opted_out", "true"),
            ("scope.channels", "email"),
            ("scope.channels", "sms"),
            ("mourning_days", "3"),
        ]);
        let spec = [
            ("program", Kind::Text),
            ("donor.full_name", Kind::Text),
            ("donor.birth_date", Kind::Text),
            ("donor.deceased", Kind::Bool),
            ("opted_out", Kind::Bool),
            ("scope.channels", Kind::List),
            ("mourning_days", Kind::Int),
        ];
        let new = f.json(&spec, Blank::Omit);
        assert_eq!(
            new,
            json!({"program": "organ", "donor": {"full_name": "王芳", "deceased": false},
                   "opted_out": true, "scope": {"channels": ["email", "sms"]}, "mourning_days": 3})
        );
        let edit = f.json(&spec, Blank::Null);
        assert_eq!(edit["donor"]["birth_date"], Value::Null);
    }

    #[test]
    fn a_record_flattens_to_its_form_values() {
        let v = flatten(&json!({"donor": {"full_name": "王芳", "deceased": true}, "notes": null}));
        assert_eq!(
            v,
            json!({"donor.full_name": "王芳", "donor.deceased": "true"})
        );
    }
}
