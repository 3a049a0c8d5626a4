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
}
