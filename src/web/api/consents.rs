use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::domain::consents::{self, ConsentFilter, ConsentInput, ConsentView};
use crate::domain::documents::{self, Document};
use crate::domain::Page;
use crate::error::{Error, Result};
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentList {
    pub items: Vec<Document>,
}

/// Every consent document version: id, kind, language, version, SHA-256 of the text.
#[utoipa::path(get, path = "/api/v1/consent-documents", tag = "consents",
    responses((status = 200, body = DocumentList)), security(("bearer" = [])))]
pub async fn list_documents(Auth(_actor): Auth) -> Json<DocumentList> {
    Json(DocumentList {
        items: documents::all().to_vec(),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentText {
    #[serde(flatten)]
    pub document: Document,
    pub text: String,
}

/// One document version with its text.
#[utoipa::path(get, path = "/api/v1/consent-documents/{id}", tag = "consents",
    params(("id" = String, Path)),
    responses((status = 200, body = DocumentText), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_document(
    Auth(_actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<DocumentText>> {
    let d = documents::find(&id).ok_or(Error::NotFound)?;
    Ok(Json(DocumentText {
        document: d.clone(),
        text: d.text.clone(),
    }))
}

/// Record a consent on a case (immutable once made).
#[utoipa::path(post, path = "/api/v1/cases/{id}/consents", tag = "consents",
    request_body = ConsentInput, params(("id" = String, Path)),
    responses((status = 201, body = ConsentView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ConsentInput>,
) -> Result<(StatusCode, Json<ConsentView>)> {
    let c = consents::record(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// The consent register in the caller's scope.
#[utoipa::path(get, path = "/api/v1/consents", tag = "consents", params(ConsentFilter),
    responses((status = 200, body = Page<ConsentView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ConsentFilter>,
) -> Result<Json<Page<ConsentView>>> {
    Ok(Json(consents::list(&s.svc, &actor, f, s.now()).await?))
}

/// One consent record with the exact text that was signed. Records are immutable: PUT, PATCH
/// and DELETE answer 405.
#[utoipa::path(get, path = "/api/v1/consents/{id}", tag = "consents", params(("id" = String, Path)),
    responses((status = 200, body = ConsentView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<ConsentView>> {
    Ok(Json(consents::get(&s.svc, &actor, &id, s.now()).await?))
}

fn withdraw_reason_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::required_text(1, crate::domain::cases::MAX_REASON)
}

fn recipient_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::required_text(1, crate::domain::MAX_ID * 2)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawInput {
    #[schema(schema_with = withdraw_reason_schema)]
    pub reason: String,
}

/// Withdraw a consent: records a withdrawal that names it.
#[utoipa::path(post, path = "/api/v1/consents/{id}/withdraw", tag = "consents",
    request_body = WithdrawInput, params(("id" = String, Path)),
    responses((status = 200, body = ConsentView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn withdraw(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<WithdrawInput>,
) -> Result<Json<ConsentView>> {
    Ok(Json(
        consents::withdraw(&s.svc, &actor, &id, &input.reason, s.now()).await?,
    ))
}

/// The family's own consents.
#[utoipa::path(get, path = "/api/v1/me/consents", tag = "family", params(ConsentFilter),
    responses((status = 200, body = Page<ConsentView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ConsentFilter>,
) -> Result<Json<Page<ConsentView>>> {
    Ok(Json(
        consents::family_list(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// A family withdraws its own contact or publicity consent.
#[utoipa::path(post, path = "/api/v1/me/consents/{id}/withdraw", tag = "family",
    request_body = WithdrawInput, params(("id" = String, Path)),
    responses((status = 200, body = ConsentView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_withdraw(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<WithdrawInput>,
) -> Result<Json<ConsentView>> {
    Ok(Json(
        consents::family_withdraw(&s.svc, &actor, &id, &input.reason, s.now()).await?,
    ))
}

/// What the consent validity rules found (ethics reviewers; supervisors for their region,
/// coordinators for their cases). `message` names what is missing.
#[utoipa::path(get, path = "/api/v1/ethics/findings", tag = "ethics",
    params(crate::domain::findings::FindingFilter),
    responses((status = 200, body = Page<crate::domain::findings::FindingView>),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn findings(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<crate::domain::findings::FindingFilter>,
) -> Result<Json<Page<crate::domain::findings::FindingView>>> {
    Ok(Json(
        crate::domain::findings::list(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// The consent register: coverage by programme and the open cases lacking a required consent
/// (ethics reviewers; supervisors for their region, coordinators for their cases). From
/// metadata; no identity is shown.
#[utoipa::path(get, path = "/api/v1/ethics/consent-register", tag = "ethics",
    params(crate::domain::register::RegisterFilter),
    responses((status = 200, body = crate::domain::register::Register),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn consent_register(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<crate::domain::register::RegisterFilter>,
) -> Result<Json<crate::domain::register::Register>> {
    Ok(Json(
        crate::domain::register::register(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// The register's gaps as CSV: `case_id,program,region,missing` (kinds separated by `;`),
/// every matching case (no paging). The download is audited.
#[utoipa::path(get, path = "/api/v1/ethics/consent-register.csv", tag = "ethics",
    params(crate::domain::register::RegisterCsvFilter),
    responses((status = 200, body = String, content_type = "text/csv"),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn consent_register_csv(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<crate::domain::register::RegisterCsvFilter>,
) -> Result<axum::response::Response> {
    let body = crate::domain::register::csv(&s.svc, &actor, f, s.now()).await?;
    Ok(register_csv_response(body))
}

/// A CSV download of the register, never cached.
pub fn register_csv_response(body: String) -> axum::response::Response {
    csv_download(body, "consent-register.csv")
}

/// A CSV download named `filename` (a plain ASCII name), never cached.
pub fn csv_download(body: String, filename: &str) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// An ethics reviewer closes a finding: `verified` or `concern`, with a note.
#[utoipa::path(post, path = "/api/v1/ethics/findings/{id}/decision", tag = "ethics",
    request_body = crate::domain::findings::Decision, params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide_finding(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(d): ApiJson<crate::domain::findings::Decision>,
) -> Result<StatusCode> {
    crate::domain::findings::decide(&s.svc, &actor, &id, d, s.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An ethics reviewer's review of a consent record: `verified` or `concern`, with a note.
#[utoipa::path(post, path = "/api/v1/consents/{id}/reviews", tag = "ethics",
    request_body = crate::domain::ethics::ReviewInput, params(("id" = String, Path)),
    responses((status = 201, body = crate::domain::ethics::ReviewView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn review(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<crate::domain::ethics::ReviewInput>,
) -> Result<(StatusCode, Json<crate::domain::ethics::ReviewView>)> {
    let r = crate::domain::ethics::review(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// An ethics reviewer sees a donor's identity after stating why (audited, shown to the family).
#[utoipa::path(post, path = "/api/v1/cases/{id}/reveal", tag = "ethics",
    request_body = crate::domain::ethics::RevealInput, params(("id" = String, Path)),
    responses((status = 200, body = crate::domain::ethics::Revealed), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reveal(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<crate::domain::ethics::RevealInput>,
) -> Result<Json<crate::domain::ethics::Revealed>> {
    Ok(Json(
        crate::domain::ethics::reveal(&s.svc, &actor, &id, &input.reason, s.now()).await?,
    ))
}

fn format_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::one_of(crate::domain::ethics::Format::NAMES, true)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    /// The reviewer's own age public key (`age1…`).
    #[schema(schema_with = recipient_schema)]
    pub recipient: String,
    /// `csv` (default) or `json`.
    #[schema(schema_with = format_schema)]
    pub format: Option<String>,
}

/// The consent register encrypted with age to the reviewer's key (`application/age`).
#[utoipa::path(post, path = "/api/v1/ethics/exports", tag = "ethics", request_body = ExportInput,
    responses((status = 200, content_type = "application/age", body = Vec<u8>),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<ExportInput>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let format = crate::domain::ethics::Format::parse(input.format.as_deref().unwrap_or("csv"))
        .map_err(|e| Error::field("format", e))?;
    let bytes =
        crate::domain::ethics::export(&s.svc, Some(&actor), &input.recipient, format, s.now())
            .await?;
    let name = match format {
        crate::domain::ethics::Format::Csv => "consents.csv.age",
        crate::domain::ethics::Format::Json => "consents.json.age",
    };
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/age".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttachmentView {
    pub consent_id: String,
    pub media_type: String,
    pub size: i64,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

/// Attach the signed form of a consent record: the raw PDF, JPEG or PNG as the body (at most
/// 10 MiB; the type is read from the content). Sealed under the case key, once per record.
#[utoipa::path(post, path = "/api/v1/consents/{id}/attachment", tag = "consents",
    params(("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/pdf"),
    responses((status = 201, body = AttachmentView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_attachment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<AttachmentView>)> {
    let bytes = axum::body::to_bytes(body, crate::domain::attachments::MAX_BYTES)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let row = crate::domain::attachments::upload(&s.svc, &actor, &id, &bytes, s.now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(AttachmentView {
            consent_id: row.consent_id,
            media_type: row.media_type,
            size: row.size,
            uploaded_at: row.uploaded_at,
        }),
    ))
}

/// Download the signed form of a consent record (audited).
#[utoipa::path(get, path = "/api/v1/consents/{id}/attachment", tag = "consents",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn download_attachment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let (media_type, bytes) =
        crate::domain::attachments::download(&s.svc, &actor, &id, s.now()).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, media_type)], bytes).into_response())
}

/// Record a planned publicity or research use of someone's data; the validity rules check it
/// against the consents of its kind.
#[utoipa::path(post, path = "/api/v1/cases/{id}/uses", tag = "consents",
    request_body = crate::domain::uses::UseInput, params(("id" = String, Path)),
    responses((status = 201, body = crate::domain::uses::UseView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_use(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<crate::domain::uses::UseInput>,
) -> Result<(StatusCode, Json<crate::domain::uses::UseView>)> {
    let u = crate::domain::uses::record(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(u)))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UseList {
    pub items: Vec<crate::domain::uses::UseView>,
}

/// A case's planned publicity and research uses, each with whether a consent covers it.
#[utoipa::path(get, path = "/api/v1/cases/{id}/uses", tag = "consents",
    params(("id" = String, Path)),
    responses((status = 200, body = UseList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_uses(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<UseList>> {
    Ok(Json(UseList {
        items: crate::domain::uses::list(&s.svc, &actor, &id, s.now()).await?,
    }))
}
