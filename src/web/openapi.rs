//! The OpenAPI document of `/api/v1`: built from the handlers' annotations, then completed with
//! the answers every handler of a kind can give, so the document lists each status the service
//! may send and no client meets an undocumented one.
//!
//! What the extractors and the policy answer is the same for every route, so it is added here
//! once rather than repeated on each handler: 401 and 403 on every route that needs a token, 404
//! on every route with an id in its path, 400, 413 and 422 on every route that reads a JSON body,
//! 400 and 422 on every route with query parameters.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::OpenApi as _;

use super::error;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "donorcare",
        description = "Case system for the long-term care of donors and their families."
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody))
)]
pub struct ApiDoc;

/// The document the routes are merged into.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Why each common status is sent, as its description says.
fn description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No content",
        "400" => "Malformed request: unreadable JSON, a wrong content type or a parameter of the wrong type",
        "401" => "No valid bearer token, or wrong credentials",
        "403" => "The caller's role may never do this (or must enrol TOTP first)",
        "404" => "No such record, or outside the caller's scope",
        "409" => "Conflict with the record's current state",
        "413" => "Request body too large",
        "422" => "Invalid values; `fields` names each with the reason",
        "429" => "Too many attempts; retry after `Retry-After` seconds",
        _ => "",
    }
}

fn error_response(status: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description(status))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, statuses: &[&str]) {
    for s in statuses {
        op.responses
            .responses
            .entry((*s).to_string())
            .or_insert_with(|| error_response(s));
    }
}

/// [`super::extract::ApiQuery`] takes a parameter with an empty value as one not given: say so
/// in each query parameter that lists its values.
fn empty_is_absent(op: &mut Operation) {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
    let empty = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .max_length(Some(0))
    };
    for p in op.parameters.iter_mut().flatten() {
        if !matches!(p.parameter_in, ParameterIn::Query) {
            continue;
        }
        let Some(RefOr::T(schema)) = p.schema.as_mut() else {
            continue;
        };
        match schema {
            Schema::Object(o) if o.enum_values.is_some() => {
                let values = o.enum_values.get_or_insert_with(Vec::new);
                if !values.iter().any(|v| v == "") {
                    values.push("".into());
                }
            }
            Schema::Object(o) if o.format.is_some() || o.pattern.is_some() => {
                let given = Schema::Object(o.clone());
                *schema = Schema::AnyOf(AnyOfBuilder::new().item(given).item(empty()).build());
            }
            Schema::OneOf(of) => of.items.push(empty().into()),
            _ => {}
        }
    }
}

/// A body that one route takes with more fields required than another (a case is created with
/// a programme, a donor and a donation, and patched with any of them): the creating route's
/// copy of the schema, under its own name.
pub struct Creation {
    pub path: &'static str,
    pub method: &'static str,
    /// (schema, its creating copy's name, fields required there, fields refused there).
    pub schemas: &'static [(
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
}

/// The bodies created with more required than they are changed with; the lists are the
/// domain's own, which its validation reads.
const CREATIONS: &[Creation] = &[
    Creation {
        path: "/api/v1/cases",
        method: "post",
        schemas: crate::domain::cases::ON_CREATE,
    },
    Creation {
        path: "/api/v1/cases/{id}/contacts",
        method: "post",
        schemas: crate::domain::contacts::ON_CREATE,
    },
    Creation {
        path: "/api/v1/cases/{id}/adverse-events",
        method: "post",
        schemas: crate::domain::adverse_events::ON_CREATE,
    },
    Creation {
        path: "/api/v1/memorial-events",
        method: "post",
        schemas: crate::domain::memorials::ON_CREATE,
    },
    Creation {
        path: "/api/v1/cases/{id}/correspondents",
        method: "post",
        schemas: crate::domain::correspondence::CORRESPONDENT_ON_CREATE,
    },
    Creation {
        path: "/api/v1/cases/{id}/correspondence",
        method: "post",
        schemas: crate::domain::correspondence::LETTER_ON_CREATE,
    },
];

/// The schema of a required field: as the optional one, without null.
fn without_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    if let Some(Value::Array(types)) = v.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            v["type"] = only;
        }
    }
    if let Some(Value::Array(values)) = v.get_mut("enum") {
        values.retain(|e| !e.is_null());
    }
    if let Some(Value::Array(of)) = v.get_mut("oneOf") {
        of.retain(|s| s.get("type") != Some(&Value::from("null")));
        if of.len() == 1 {
            *v = of[0].clone();
        }
    }
}

fn creations(doc: &mut serde_json::Value) {
    use serde_json::Value;
    for c in CREATIONS {
        for (name, new_name, required, refused) in c.schemas {
            let Some(mut schema) = doc["components"]["schemas"].get(*name).cloned() else {
                continue;
            };
            if let Some(Value::Object(props)) = schema.get_mut("properties") {
                for f in *refused {
                    props.remove(*f);
                }
                for f in *required {
                    if let Some(p) = props.get_mut(*f) {
                        without_null(p);
                    }
                }
                // Nested bodies point at their creating copies.
                for p in props.values_mut() {
                    let text = p.to_string();
                    for (inner, inner_new, _, _) in c.schemas {
                        let from = format!("\"#/components/schemas/{inner}\"");
                        if text.contains(&from) {
                            let to = format!("\"#/components/schemas/{inner_new}\"");
                            if let Ok(v) = serde_json::from_str(&text.replace(&from, &to)) {
                                *p = v;
                            }
                        }
                    }
                }
            }
            schema["required"] = Value::from(required.to_vec());
            doc["components"]["schemas"][*new_name] = schema;
        }
        let Some((_, first, _, _)) = c.schemas.first() else {
            continue;
        };
        let body = &mut doc["paths"][c.path][c.method]["requestBody"]["content"]
            ["application/json"]["schema"];
        if body.is_object() {
            *body = serde_json::json!({ "$ref": format!("#/components/schemas/{first}") });
        }
    }
}

/// Add the answers common to every route of a kind, and describe responses left without one.
/// Run on the merged document: a modifier of the base document would run before any route is
/// in it.
pub fn complete(doc: &mut OpenApi) {
    for (_, item) in doc.paths.paths.iter_mut() {
        let ops = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ];
        for op in ops.into_iter().flatten() {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let params = op.parameters.as_deref().unwrap_or(&[]);
            let in_path = params
                .iter()
                .any(|p| matches!(p.parameter_in, ParameterIn::Path));
            let in_query = params
                .iter()
                .any(|p| matches!(p.parameter_in, ParameterIn::Query));
            let json_body = op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"));
            if secured {
                add(op, &["401", "403"]);
            }
            if in_path {
                add(op, &["404"]);
            }
            if json_body {
                add(op, &["400", "413", "422"]);
            }
            if in_query {
                add(op, &["400", "422"]);
                empty_is_absent(op);
            }
            for (status, r) in op.responses.responses.iter_mut() {
                if let RefOr::T(r) = r {
                    if r.description.is_empty() {
                        r.description = description(status).to_string();
                    }
                }
            }
        }
    }
    if let Ok(mut v) = serde_json::to_value(&*doc) {
        creations(&mut v);
        match serde_json::from_value(v) {
            Ok(d) => *doc = d,
            Err(e) => {
                tracing::error!(error = %e, "the OpenAPI document's creating bodies were not added")
            }
        }
    }
}
