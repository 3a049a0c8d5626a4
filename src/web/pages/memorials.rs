//! Memorial events in the browser. For the care team: the region's events, planning and
//! changing one, inviting families (all of one's cases at once, or one case from its page),
//! the replies and how each invitation's message stands, recording a reply heard on the phone,
//! and the names put forward for the published list; for the region's supervisor, the
//! engraver's sheet and CSV. For families: their invitations, and answering one.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::cases::options;
use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::{filtered_href, Page};
use crate::domain::from_json;
use crate::domain::memorials::{
    self, EventFilter, GuestFilter, InviteInput, MemorialEventView, NameInput, ReplyInput,
};
use crate::domain::types::Role;
use crate::error::Error;
use crate::policy::{self, Action, Resource};
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "memorials",
        include_str!("../../../templates/memorials.hbs"),
    ),
    (
        "memorial_form",
        include_str!("../../../templates/memorial_form.hbs"),
    ),
    (
        "memorial_show",
        include_str!("../../../templates/memorial_show.hbs"),
    ),
    (
        "memorial_reply",
        include_str!("../../../templates/memorial_reply.hbs"),
    ),
    (
        "memorial_names_print",
        include_str!("../../../templates/memorial_names_print.hbs"),
    ),
    (
        "me_memorials",
        include_str!("../../../templates/me_memorials.hbs"),
    ),
    (
        "me_memorial_reply",
        include_str!("../../../templates/me_memorial_reply.hbs"),
    ),
];

/// The region's care team.
const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
/// Events on one page of the list; invitations on one page of an event.
const PER_PAGE: i64 = 25;
const GUESTS_PER_PAGE: i64 = 50;

/// The event form's fields, named as the API's.
const FIELDS: &[(&str, Kind)] = &[
    ("kind", Kind::Text),
    ("title", Kind::Text),
    ("program", Kind::Text),
    ("starts_at", Kind::Text),
    ("place", Kind::Text),
    ("details", Kind::Text),
    ("reply_by", Kind::Text),
    ("reminder_days", Kind::Int),
];

/// The reply form's fields.
const REPLY_FIELDS: &[(&str, Kind)] = &[
    ("reply", Kind::Text),
    ("party_size", Kind::Int),
    ("needs", Kind::Text),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/memorials", get(list))
        .route("/memorials/new", get(new_form).post(create))
        .route("/memorials/{id}", get(show))
        .route("/memorials/{id}/edit", get(edit_form).post(update))
        .route("/memorials/{id}/cancel", post(cancel))
        .route("/memorials/{id}/invitations", post(invite))
        .route("/memorials/{id}/names", post(add_name))
        .route("/memorials/{id}/names/{case_id}/remove", post(remove_name))
        .route("/memorials/{id}/names/print", get(names_print))
        .route("/memorials/{id}/names.csv", get(names_csv))
        .route(
            "/memorial-invitations/{id}/reply",
            get(reply_form).post(save_reply),
        )
        .route("/me/memorials", get(family_list))
        .route(
            "/me/memorials/{id}/reply",
            get(family_reply_form).post(family_reply),
        )
}

fn form_options() -> Value {
    json!({
        "kind": options("memorial-kind", memorials::KINDS),
        "program": options("program", memorials::PROGRAMS),
    })
}

fn reply_options() -> Value {
    json!({"reply": options("memorial-reply", memorials::REPLIES)})
}

fn event_form(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    event_id: Option<&str>,
    values: Value,
    errors: Value,
) -> Response {
    let action = match event_id {
        Some(e) => format!("/memorials/{e}/edit"),
        None => "/memorials/new".to_string(),
    };
    page.render(
        s,
        status,
        "memorial_form",
        json!({
            "title": if event_id.is_some() { "memorial-edit-title" } else { "memorial-new-title" },
            "event_id": event_id,
            "action": action,
            "values": values,
            "errors": errors,
            "options": form_options(),
            "hint_args": {"days": memorials::DEFAULT_REMINDER_DAYS},
        }),
    )
}

/// A conflict about one field (the time is fixed once families are invited) shown beside it.
fn conflict_errors(page: &Page, field: Option<String>, message: &str) -> Option<Value> {
    let field = field?;
    let mut e = crate::error::FieldErrors::new();
    e.insert(field, message.to_string());
    Some(form::errors(page.lang, &e))
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    show: Option<String>,
    cursor: Option<String>,
}

/// The region's events: those ahead by default, or all of them (`show=all`).
async fn list(State(s): State<AppState>, page: Page, Query(q): Query<ListQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let all = q.show.as_deref() == Some("all");
    let today = crate::schedule::calendar::local_date(s.svc.schedule.default_tz, s.now());
    let filter = EventFilter {
        from: (!all).then(|| today.to_string()),
        status: blank_none(&q.status),
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    let (code, items, next, errors) =
        match memorials::list_events(&s.svc, &user.actor, filter, s.now()).await {
            Ok(p) => (StatusCode::OK, p.items, p.next_cursor, Value::Null),
            Err(Error::Validation(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                None,
                form::errors(page.lang, &e),
            ),
            Err(e) => return page.error(&s, e),
        };
    let show = if all { Some("all".to_string()) } else { None };
    let filters = [("status", &q.status), ("show", &show)];
    page.render(
        &s,
        code,
        "memorials",
        json!({
            "title": "memorial-list-title",
            "items": items,
            "all": all,
            "next": next.map(|c| filtered_href("/memorials", &filters, &[("cursor", &c)])),
            "first": q.cursor.is_some().then(|| filtered_href("/memorials", &filters, &[])),
            "values": {"status": q.status},
            "errors": errors,
            "options": {"status": options("memorial-status", memorials::STATUSES)},
        }),
    )
}

async fn new_form(State(s): State<AppState>, page: Page) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    let values = json!({"reminder_days": memorials::DEFAULT_REMINDER_DAYS.to_string()});
    event_form(&s, &page, StatusCode::OK, None, values, Value::Null)
}

async fn create(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(f.json(FIELDS, Blank::Omit)) {
        Ok(input) => memorials::create_event(&s.svc, &user.actor, input, s.now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(e) => page.see_other(&s, &format!("/memorials/{}", e.id)),
        Err(Error::Validation(e)) => event_form(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            f.values(),
            form::errors(page.lang, &e),
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn edit_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::get_event(&s.svc, &user.actor, &id, s.now()).await {
        Ok(e) => {
            let values = json!({
                "kind": e.kind, "title": e.title, "program": e.program,
                "starts_at": e.starts_local, "place": e.place, "details": e.details,
                "reply_by": e.reply_by.map(|d| d.to_string()),
                "reminder_days": e.reminder_days.to_string(),
            });
            event_form(&s, &page, StatusCode::OK, Some(&id), values, Value::Null)
        }
        Err(e) => page.error(&s, e),
    }
}

async fn update(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let patch = f.json(FIELDS, Blank::Null);
    match memorials::update_event(&s.svc, &user.actor, &id, patch, s.now()).await {
        Ok(e) => page.see_other(&s, &format!("/memorials/{}", e.id)),
        Err(Error::Validation(e)) => event_form(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&id),
            f.values(),
            form::errors(page.lang, &e),
        ),
        Err(Error::Conflict { field, message }) => {
            match conflict_errors(&page, field.clone(), &message) {
                Some(errors) => event_form(
                    &s,
                    &page,
                    StatusCode::CONFLICT,
                    Some(&id),
                    f.values(),
                    errors,
                ),
                None => page.error(&s, Error::Conflict { field, message }),
            }
        }
        Err(e) => page.error(&s, e),
    }
}

#[derive(serde::Deserialize, Default)]
struct ShowQuery {
    cursor: Option<String>,
    reply: Option<String>,
    invited: Option<String>,
    already: Option<String>,
    nobody: Option<String>,
}

fn may(user: &crate::web::session::PageUser, action: Action, e: &MemorialEventView) -> bool {
    policy::authorize(&user.actor, action, Resource::Region { region: &e.region }).is_ok()
}

/// One event: what, when, where; the head count; the families invited with their replies and
/// messages; the names put forward; and what the viewer may do next.
async fn show(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let event = match memorials::get_event(&s.svc, &user.actor, &id, now).await {
        Ok(e) => e,
        Err(e) => return page.error(&s, e),
    };
    let guests = match memorials::guests(
        &s.svc,
        &user.actor,
        &id,
        GuestFilter {
            reply: blank_none(&q.reply),
            limit: Some(GUESTS_PER_PAGE),
            cursor: blank_none(&q.cursor),
        },
        now,
    )
    .await
    {
        Ok(g) => g,
        Err(Error::Validation(_)) => return page.not_found(&s),
        Err(e) => return page.error(&s, e),
    };
    let names = match memorials::names(&s.svc, &user.actor, &id, now).await {
        Ok(n) => n,
        Err(e) => return page.error(&s, e),
    };
    let named: Vec<&str> = names.iter().map(|n| n.case_id.as_str()).collect();
    let next = guests.next_cursor.as_ref().map(|c| {
        filtered_href(
            &format!("/memorials/{id}"),
            &[("reply", &q.reply)],
            &[("cursor", c)],
        ) + "#guests"
    });
    let reply = blank_none(&q.reply);
    let c = &event.head_count;
    let filters: Vec<Value> = [
        (None, "memorial-filter-all", c.invited),
        (Some("no_reply"), "memorial-filter-no-reply", c.no_reply),
        (Some("needs"), "memorial-filter-needs", c.with_needs),
        (Some("coming"), "memorial-filter-coming", c.coming),
        (
            Some("not_coming"),
            "memorial-filter-not-coming",
            c.not_coming,
        ),
    ]
    .into_iter()
    .map(|(value, key, count)| {
        let href = match value {
            Some(v) => filtered_href(&format!("/memorials/{id}"), &[], &[("reply", v)]),
            None => format!("/memorials/{id}"),
        } + "#guests";
        json!({"href": href, "key": key, "count": count, "current": reply.as_deref() == value})
    })
    .collect();
    let guests: Vec<Value> = guests_json(&guests.items, &named);
    let planned = event.status == "planned" && event.starts_at > now;
    let invited = q.invited.as_ref().map(|n| {
        json!({
            "invited": n,
            "already": q.already.clone().unwrap_or_default(),
            "nobody": q.nobody.clone().unwrap_or_default(),
        })
    });
    page.render(
        &s,
        StatusCode::OK,
        "memorial_show",
        json!({
            "title": "memorial-show-title",
            "event": event,
            "planned": planned,
            "manage": may(user, Action::ManageMemorials, &event) && planned,
            "export": may(user, Action::ExportMemorialNames, &event),
            "guests": guests,
            "next": next,
            "first": q.cursor.is_some().then(|| {
                filtered_href(&format!("/memorials/{id}"), &[("reply", &q.reply)], &[]) + "#guests"
            }),
            "filters": filters,
            "filtered": reply.is_some(),
            "names": names,
            "invited": invited,
        }),
    )
}

/// The invitations as the event page lists them: each message's state in plain words.
fn guests_json(items: &[memorials::InvitationView], named: &[&str]) -> Vec<Value> {
    items
        .iter()
        .map(|g| {
            let mut v = json!(g);
            v["named"] = json!(named.contains(&g.case_id.as_str()));
            v
        })
        .collect()
}

async fn cancel(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::cancel_event(&s.svc, &user.actor, &id, s.now()).await {
        Ok(_) => page.see_other(&s, &format!("/memorials/{id}")),
        Err(e) => page.error(&s, e),
    }
}

/// Invite every family of the viewer's cases in the event's region and programme, or (from a
/// case's page, `case_id`) one case; back to where the invitation was sent from.
async fn invite(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let one = f.get("case_id").map(str::trim).filter(|c| !c.is_empty());
    let input = InviteInput {
        case_ids: one.map(|c| vec![c.to_string()]),
    };
    match memorials::invite(&s.svc, &user.actor, &id, input, s.now()).await {
        Ok(_) if one.is_some() => {
            page.see_other(&s, &format!("/cases/{}#memorials", one.unwrap_or_default()))
        }
        Ok(r) => page.see_other(
            &s,
            &format!(
                "/memorials/{id}?invited={}&already={}&nobody={}#guests",
                r.invited, r.already_invited, r.nobody_to_invite
            ),
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn add_name(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = NameInput {
        case_id: f.get("case_id").unwrap_or_default().trim().to_string(),
    };
    match memorials::add_name(&s.svc, &user.actor, &id, input, s.now()).await {
        Ok(_) => page.see_other(&s, &format!("/memorials/{id}#names")),
        Err(e) => page.error(&s, e),
    }
}

async fn remove_name(
    State(s): State<AppState>,
    page: Page,
    Path((id, case_id)): Path<(String, String)>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::remove_name(&s.svc, &user.actor, &id, &case_id, s.now()).await {
        Ok(()) => page.see_other(&s, &format!("/memorials/{id}#names")),
        Err(e) => page.error(&s, e),
    }
}

/// The engraver's sheet, to print: the names with publicity consent in force, nothing else.
async fn names_print(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, &[Role::Supervisor]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::engraver_list(&s.svc, &user.actor, &id, s.now()).await {
        Ok((event, names)) => page.render(
            &s,
            StatusCode::OK,
            "memorial_names_print",
            json!({"title": "memorial-names-print-title", "event": event, "names": names}),
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn names_csv(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, &[Role::Supervisor]) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::engraver_list(&s.svc, &user.actor, &id, s.now()).await {
        Ok((event, names)) => crate::web::api::consents::csv_download(
            memorials::engraver_csv(&names),
            &format!(
                "memorial-names-{}.csv",
                event.starts_local.get(..10).unwrap_or("")
            ),
        ),
        Err(e) => page.error(&s, e),
    }
}

fn reply_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    invitation: &memorials::InvitationView,
    event: &MemorialEventView,
    values: Value,
    errors: Value,
) -> Response {
    page.render(
        s,
        status,
        "memorial_reply",
        json!({
            "title": "memorial-reply-title",
            "invitation": invitation,
            "event": event,
            "values": values,
            "errors": errors,
            "options": reply_options(),
        }),
    )
}

fn reply_values(i: &memorials::InvitationView) -> Value {
    json!({
        "reply": i.reply,
        "party_size": i.party_size.map(|n| n.to_string()),
        "needs": i.needs,
    })
}

async fn reply_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::get_invitation(&s.svc, &user.actor, &id, s.now()).await {
        Ok((i, e)) => {
            let values = reply_values(&i);
            reply_page(&s, &page, StatusCode::OK, &i, &e, values, Value::Null)
        }
        Err(e) => page.error(&s, e),
    }
}

async fn save_reply(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json::<ReplyInput>(f.json(REPLY_FIELDS, Blank::Omit)) {
        Ok(input) => memorials::record_reply(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(i) => page.see_other(&s, &format!("/memorials/{}#guests", i.event_id)),
        Err(Error::Validation(errors)) => {
            match memorials::get_invitation(&s.svc, &user.actor, &id, s.now()).await {
                Ok((i, e)) => reply_page(
                    &s,
                    &page,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &i,
                    &e,
                    f.values(),
                    form::errors(page.lang, &errors),
                ),
                Err(e) => page.error(&s, e),
            }
        }
        Err(e) => page.error(&s, e),
    }
}

/// What a case's page shows of memorial events: its invitations with their replies, and the
/// events ahead it may still be invited to.
pub async fn case_section(
    s: &AppState,
    actor: &crate::policy::Actor,
    case_id: &str,
) -> crate::error::Result<Value> {
    let Some(case) = s.svc.store.case_by_id(case_id).await? else {
        return Ok(Value::Null);
    };
    if !memorials::PROGRAMS.contains(&case.program.as_str()) {
        return Ok(Value::Null);
    }
    let m = memorials::for_case(&s.svc, actor, &case, s.now()).await?;
    let invitations: Vec<Value> = m
        .invitations
        .iter()
        .map(|(i, e)| {
            json!({
                "id": i.id, "reply": i.reply, "party_size": i.party_size,
                "event": e,
            })
        })
        .collect();
    Ok(json!({"invitations": invitations, "open_events": m.open_events}))
}

// ---------------------------------------------------------------------------------------------
// The family's side

async fn family_tz(s: &AppState, actor: &crate::policy::Actor) -> Option<String> {
    crate::domain::contacts::family_view(&s.svc, actor, s.now())
        .await
        .ok()
        .map(|c| c.timezone)
}

/// The family's invitations: each event, their answer, and a link to give or change it.
async fn family_list(State(s): State<AppState>, page: Page) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    match memorials::family_invitations(&s.svc, &user.actor, s.now()).await {
        Ok(items) => {
            let mut data = json!({"title": "me-memorials-title", "items": items});
            if let Some(tz) = family_tz(&s, &user.actor).await {
                data["tz"] = json!(tz);
            }
            page.render(&s, StatusCode::OK, "me_memorials", data)
        }
        Err(e) => page.error(&s, e),
    }
}

fn family_reply_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    invitation: &memorials::FamilyInvitation,
    values: Value,
    errors: Value,
    tz: Option<String>,
) -> Response {
    let mut data = json!({
        "title": "me-memorial-reply-title",
        "invitation": invitation,
        "values": values,
        "errors": errors,
        "options": reply_options(),
    });
    if let Some(tz) = tz {
        data["tz"] = json!(tz);
    }
    page.render(s, status, "me_memorial_reply", data)
}

/// One of the family's own invitations (any other is not found).
async fn own_invitation(
    s: &AppState,
    actor: &crate::policy::Actor,
    id: &str,
) -> Result<memorials::FamilyInvitation, Error> {
    memorials::family_invitations(&s.svc, actor, s.now())
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or(Error::NotFound)
}

async fn family_reply_form(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    match own_invitation(&s, &user.actor, &id).await {
        Ok(i) => {
            let values = json!({
                "reply": i.reply,
                "party_size": i.party_size.map(|n| n.to_string()),
                "needs": i.needs,
            });
            let tz = family_tz(&s, &user.actor).await;
            family_reply_page(&s, &page, StatusCode::OK, &i, values, Value::Null, tz)
        }
        Err(e) => page.error(&s, e),
    }
}

async fn family_reply(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json::<ReplyInput>(f.json(REPLY_FIELDS, Blank::Omit)) {
        Ok(input) => memorials::family_reply(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => page.see_other(&s, &format!("/me/memorials#i-{id}")),
        Err(Error::Validation(errors)) => match own_invitation(&s, &user.actor, &id).await {
            Ok(i) => {
                let tz = family_tz(&s, &user.actor).await;
                let errors = form::errors(page.lang, &errors);
                family_reply_page(
                    &s,
                    &page,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &i,
                    f.values(),
                    errors,
                    tz,
                )
            }
            Err(e) => page.error(&s, e),
        },
        Err(e) => page.error(&s, e),
    }
}
