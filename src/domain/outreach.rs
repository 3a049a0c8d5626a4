//! Outreach delivery: the worker claims due messages under a lease, checks at send time that
//! the message may go (the gate), renders it in the recipient's language and sends it with its
//! row id as the idempotency key. A crash loses nothing: an unsettled claim's lease runs out and
//! the message is taken again, under the same id (the only possible repeat).

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use handlebars::Handlebars;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, open_row, Donor};
use super::consents::contact_channels;
use super::contacts::{open_view, ContactView};
use super::schedule::ScheduleSettings;
use super::{page_limit, paginate, Page, Services};
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::Actor;
use crate::schedule::{calendar, plan};
use crate::store::{CaseScope, OutreachRow, PortalRow, Settle};

/// Every built-in outreach template: name, language and source.
pub const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "anniversary_letter",
        "en",
        include_str!("../../templates/outreach/anniversary_letter.en.hbs"),
    ),
    (
        "anniversary_letter",
        "zh-CN",
        include_str!("../../templates/outreach/anniversary_letter.zh-CN.hbs"),
    ),
    (
        "qingming",
        "en",
        include_str!("../../templates/outreach/qingming.en.hbs"),
    ),
    (
        "qingming",
        "zh-CN",
        include_str!("../../templates/outreach/qingming.zh-CN.hbs"),
    ),
    (
        "spring_festival",
        "en",
        include_str!("../../templates/outreach/spring_festival.en.hbs"),
    ),
    (
        "spring_festival",
        "zh-CN",
        include_str!("../../templates/outreach/spring_festival.zh-CN.hbs"),
    ),
    (
        "mourning_day",
        "en",
        include_str!("../../templates/outreach/mourning_day.en.hbs"),
    ),
    (
        "mourning_day",
        "zh-CN",
        include_str!("../../templates/outreach/mourning_day.zh-CN.hbs"),
    ),
    (
        "marrow_followup",
        "en",
        include_str!("../../templates/outreach/marrow_followup.en.hbs"),
    ),
    (
        "marrow_followup",
        "zh-CN",
        include_str!("../../templates/outreach/marrow_followup.zh-CN.hbs"),
    ),
    (
        "blood_donation_reminder",
        "en",
        include_str!("../../templates/outreach/blood_donation_reminder.en.hbs"),
    ),
    (
        "blood_donation_reminder",
        "zh-CN",
        include_str!("../../templates/outreach/blood_donation_reminder.zh-CN.hbs"),
    ),
    (
        "blood_donation_resume",
        "en",
        include_str!("../../templates/outreach/blood_donation_resume.en.hbs"),
    ),
    (
        "blood_donation_resume",
        "zh-CN",
        include_str!("../../templates/outreach/blood_donation_resume.zh-CN.hbs"),
    ),
    (
        "second_donation_window",
        "en",
        include_str!("../../templates/outreach/second_donation_window.en.hbs"),
    ),
    (
        "second_donation_window",
        "zh-CN",
        include_str!("../../templates/outreach/second_donation_window.zh-CN.hbs"),
    ),
    (
        "second_donation_window_closed",
        "en",
        include_str!("../../templates/outreach/second_donation_window_closed.en.hbs"),
    ),
    (
        "second_donation_window_closed",
        "zh-CN",
        include_str!("../../templates/outreach/second_donation_window_closed.zh-CN.hbs"),
    ),
    (
        "memorial_invitation",
        "en",
        include_str!("../../templates/outreach/memorial_invitation.en.hbs"),
    ),
    (
        "memorial_invitation",
        "zh-CN",
        include_str!("../../templates/outreach/memorial_invitation.zh-CN.hbs"),
    ),
    (
        "memorial_event_invitation",
        "en",
        include_str!("../../templates/outreach/memorial_event_invitation.en.hbs"),
    ),
    (
        "memorial_event_invitation",
        "zh-CN",
        include_str!("../../templates/outreach/memorial_event_invitation.zh-CN.hbs"),
    ),
    (
        "memorial_event_reminder",
        "en",
        include_str!("../../templates/outreach/memorial_event_reminder.en.hbs"),
    ),
    (
        "memorial_event_reminder",
        "zh-CN",
        include_str!("../../templates/outreach/memorial_event_reminder.zh-CN.hbs"),
    ),
    (
        "birthday",
        "en",
        include_str!("../../templates/outreach/birthday.en.hbs"),
    ),
    (
        "birthday",
        "zh-CN",
        include_str!("../../templates/outreach/birthday.zh-CN.hbs"),
    ),
];

/// The outreach templates, plain text (no HTML escaping), compiled once per process.
pub fn templates() -> Result<&'static Handlebars<'static>> {
    static COMPILED: std::sync::OnceLock<std::result::Result<Handlebars<'static>, String>> =
        std::sync::OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let mut hb = Handlebars::new();
            hb.register_escape_fn(handlebars::no_escape);
            for (name, lang, src) in TEMPLATES {
                hb.register_template_string(&format!("{name}.{lang}"), *src)
                    .map_err(|e| format!("outreach template {name}.{lang}: {e}"))?;
            }
            Ok(hb)
        })
        .as_ref()
        .map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))
}

/// A rendered message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
    pub language: String,
}

/// Who a message goes to, opened.
struct Person {
    name: String,
    email: Option<String>,
    phone: Option<String>,
    address: Option<String>,
    wechat_id: Option<String>,
    language: String,
    tz: Tz,
    preferred: String,
    opted_out: bool,
    do_not_contact_until: Option<NaiveDate>,
    deceased: bool,
}

fn person_of_donor(d: &Donor, s: &ScheduleSettings) -> Person {
    Person {
        name: d.full_name.clone(),
        email: d.email.clone(),
        phone: d.phone.clone(),
        address: d.address.clone(),
        wechat_id: None,
        language: d.language.map_or("zh-CN", |l| l.as_str()).to_string(),
        tz: d
            .timezone
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(s.default_tz),
        preferred: if d.email.is_some() { "email" } else { "sms" }.into(),
        opted_out: false,
        do_not_contact_until: None,
        deceased: d.deceased,
    }
}

fn person_of_contact(c: ContactView, s: &ScheduleSettings) -> Person {
    Person {
        tz: c.timezone.parse().unwrap_or(s.default_tz),
        name: c.full_name,
        email: c.email,
        phone: c.phone,
        address: c.address,
        wechat_id: c.wechat_id,
        language: c.language.as_str().into(),
        preferred: c.preferred_channel.as_str().into(),
        opted_out: c.opted_out,
        do_not_contact_until: c.do_not_contact_until,
        deceased: c.deceased || c.minor,
    }
}

/// How a mourning-day occurrence is named in each language, by occurrence key.
const MOURNING_NAMES: [(&str, &str, &str); 7] = [
    ("d7", "头七", "the first seventh day (头七)"),
    ("d21", "三七", "the third seventh day (三七)"),
    ("d35", "五七", "the fifth seventh day (五七)"),
    ("d49", "七七", "the forty-ninth day (七七)"),
    ("d100", "百日", "the hundredth day (百日)"),
    ("y1", "周年", "the first anniversary"),
    ("y3", "三周年", "the third anniversary"),
];

fn mourning_name(key: &str, lang: &str) -> &'static str {
    MOURNING_NAMES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, zh, en)| if lang == "zh-CN" { *zh } else { *en })
        .unwrap_or("")
}

/// Who `recipient` (`donor` or a contact id) of a case is, opened; `None` if the contact is
/// gone or not of this case.
async fn recipient(
    svc: &Services,
    key: &SecretKey,
    opened: &cases::Opened,
    case_id: &str,
    recipient: &str,
) -> Result<Option<Person>> {
    if recipient == "donor" {
        return Ok(Some(person_of_donor(&opened.donor, &svc.schedule)));
    }
    match svc.store.contact_by_id(recipient).await? {
        Some(c) if c.case_id == case_id => {
            Ok(Some(person_of_contact(open_view(key, &c)?, &svc.schedule)))
        }
        _ => Ok(None),
    }
}

/// Render a message for `to`, with what its occurrence adds (which anniversary, which day).
async fn render_row(
    svc: &Services,
    row: &OutreachRow,
    to: &Person,
    opened: &cases::Opened,
) -> Result<Rendered> {
    let task = svc.store.task_by_id(&row.task_id).await?;
    let occurrence = task.as_ref().and_then(|t| t.occurrence.as_deref());
    let event = super::memorials::facts_for(svc, occurrence, to.tz).await?;
    render(
        templates()?,
        &row.template,
        to,
        &opened.donor,
        &opened.donation,
        occurrence,
        event.as_ref(),
        row.due_at,
    )
}

/// Render `template` for `to`, from the case's opened donor and donation.
#[allow(clippy::too_many_arguments)]
fn render(
    hb: &Handlebars<'static>,
    template: &str,
    to: &Person,
    donor: &Donor,
    donation: &cases::Donation,
    occurrence: Option<&str>,
    event: Option<&super::memorials::EventFacts>,
    due: DateTime<Utc>,
) -> Result<Rendered> {
    let lang = if to.language == "en" { "en" } else { "zh-CN" };
    fill(
        hb,
        template,
        lang,
        &to.name,
        &donor.full_name,
        donation,
        occurrence,
        event,
        due.with_timezone(&to.tz).date_naive(),
    )
}

/// Fill `template` in `lang` (`zh-CN` or `en`) with the names, the donation, the occurrence
/// (which anniversary, which mourning day) and the day it goes.
#[allow(clippy::too_many_arguments)]
fn fill(
    hb: &Handlebars<'static>,
    template: &str,
    lang: &str,
    recipient_name: &str,
    donor_name: &str,
    donation: &cases::Donation,
    occurrence: Option<&str>,
    event: Option<&super::memorials::EventFacts>,
    date: NaiveDate,
) -> Result<Rendered> {
    let years = occurrence
        .and_then(|k| k.strip_prefix('y'))
        .and_then(|n| n.parse::<u32>().ok());
    let blood_until = crate::schedule::marrow::blood_until(&donation.kind, donation.date);
    // A kind that opens no window (lymphocytes) still has the date its first collection's
    // window would close; the plan sends these messages only after a first collection.
    let second_window_until = donation
        .date
        .checked_add_months(chrono::Months::new(
            crate::schedule::marrow::SECOND_WINDOW_YEARS * 12,
        ))
        .unwrap_or(donation.date);
    let ctx = serde_json::json!({
        "recipient_name": recipient_name,
        "donor_name": donor_name,
        "date": date.to_string(),
        "years": years,
        "mourning_day": occurrence.map(|k| mourning_name(k, lang)).unwrap_or(""),
        "donation_date": donation.date.to_string(),
        "blood_until": blood_until.to_string(),
        "second_window_until": second_window_until.to_string(),
        "organisation": if lang == "en" { "The Red Cross donor care team" } else { "红十字会捐献者关爱组" },
        "event_title": event.map(|e| e.title.as_str()),
        "event_date": event.map(|e| e.date.to_string()),
        "event_time": event.map(|e| e.time.as_str()),
        "event_place": event.map(|e| e.place.as_str()),
        "event_details": event.map(|e| e.details.as_str()).filter(|d| !d.is_empty()),
        "reply_by": event.and_then(|e| e.reply_by).map(|d| d.to_string()),
    });
    let text = hb
        .render(&format!("{template}.{lang}"), &ctx)
        .map_err(|e| anyhow::anyhow!("rendering {template}.{lang}: {e}"))?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let subject = first
        .strip_prefix("Subject: ")
        .unwrap_or(first)
        .trim()
        .to_string();
    Ok(Rendered {
        subject,
        body: rest.trim_start_matches('\n').to_string(),
        language: lang.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Channels

/// The email channel. A plain `smtp://host:port` relay (the usual set-up: a mail server on the
/// loopback or the local network) gets one kept-open connection with `TCP_NODELAY`: lettre's own
/// transport writes a message and its closing dot separately without it, so Nagle's algorithm
/// held the end of every message about 40 ms. Anything else (`smtps://`, credentials, options)
/// goes through lettre's pooled transport.
// One per process: the size of the kept connection does not matter.
#[allow(clippy::large_enum_variant)]
enum Mailer {
    Direct {
        addr: String,
        conn: tokio::sync::Mutex<Option<lettre::transport::smtp::client::AsyncSmtpConnection>>,
    },
    Transport(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
}

/// Why a send failed, as a message's `reason` may keep it: a server's answer is reduced to its
/// code, since its text can quote the recipient's address (and the reason is neither sealed nor
/// kept out of API answers).
fn smtp_failure(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) if e.is_permanent() => format!("smtp: the server refused the message ({code})"),
        Some(code) => format!("smtp: the server deferred the message ({code})"),
        None if e.is_response() => "smtp: the server's answer could not be read".into(),
        None if e.is_timeout() => "smtp: timed out".into(),
        None => format!("smtp: {e}"),
    }
}

impl Mailer {
    fn new(url: &str) -> anyhow::Result<Mailer> {
        if let Some(rest) = url.strip_prefix("smtp://") {
            let rest = rest.trim_end_matches('/');
            if !rest.is_empty() && !rest.contains(['@', '?', '/']) {
                let addr = if rest.contains(':') {
                    rest.to_string()
                } else {
                    format!("{rest}:25")
                };
                return Ok(Mailer::Direct {
                    addr,
                    conn: tokio::sync::Mutex::new(None),
                });
            }
        }
        Ok(Mailer::Transport(
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                .map_err(|e| anyhow::anyhow!("DONORCARE_SMTP_URL: {e}"))?
                .timeout(Some(std::time::Duration::from_secs(20)))
                .build(),
        ))
    }

    async fn send(&self, email: &lettre::Message) -> std::result::Result<(), String> {
        use lettre::transport::smtp::client::AsyncSmtpConnection;
        use lettre::transport::smtp::extension::ClientId;
        let (addr, conn) = match self {
            Mailer::Transport(t) => {
                use lettre::AsyncTransport;
                return t
                    .send(email.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| smtp_failure(&e));
            }
            Mailer::Direct { addr, conn } => (addr, conn),
        };
        let mut guard = conn.lock().await;
        // A kept connection the server has since closed fails at once; then one fresh try.
        for fresh in [false, true] {
            if fresh || guard.as_ref().is_none_or(|c| c.has_broken()) {
                let tcp = tokio::time::timeout(
                    std::time::Duration::from_secs(20),
                    tokio::net::TcpStream::connect(addr.as_str()),
                )
                .await
                .map_err(|_| format!("smtp: connecting to {addr} timed out"))?
                .map_err(|e| format!("smtp: connecting to {addr}: {e}"))?;
                tcp.set_nodelay(true).map_err(|e| format!("smtp: {e}"))?;
                let c = AsyncSmtpConnection::connect_with_transport(
                    Box::new(tcp),
                    &ClientId::default(),
                )
                .await
                .map_err(|e| smtp_failure(&e))?;
                *guard = Some(c);
            }
            let Some(c) = guard.as_mut() else { continue };
            let sent = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                c.send(email.envelope(), &email.formatted()),
            )
            .await;
            match sent {
                Ok(Ok(_)) => return Ok(()),
                // The server refused this message: a fresh connection would not help.
                Ok(Err(e)) if e.is_permanent() => {
                    *guard = None;
                    return Err(smtp_failure(&e));
                }
                Ok(Err(e)) if fresh => {
                    *guard = None;
                    return Err(smtp_failure(&e));
                }
                Err(_) if fresh => {
                    *guard = None;
                    return Err("smtp: sending timed out".into());
                }
                _ => *guard = None,
            }
        }
        Err("smtp: no connection".into())
    }
}

/// The configured channels, shared by the workers of one process.
pub struct Channels {
    settings: Arc<ScheduleSettings>,
    smtp: Option<Mailer>,
    http: reqwest::Client,
}

impl Channels {
    pub fn new(settings: Arc<ScheduleSettings>) -> anyhow::Result<Self> {
        let smtp = match &settings.smtp_url {
            None => None,
            Some(url) => Some(Mailer::new(url)?),
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()?;
        Ok(Channels {
            settings,
            smtp,
            http,
        })
    }

    /// Why `channel` cannot carry a message to `to`, if it cannot.
    fn unavailable(&self, channel: &str, to: &Person) -> Option<String> {
        match channel {
            "email" if self.smtp.is_none() => {
                Some("channel_unconfigured: email (DONORCARE_SMTP_URL is not set)".into())
            }
            "email" if to.email.is_none() => {
                Some("no_address: the recipient has no email address".into())
            }
            "sms" if self.settings.sms_url.is_none() => {
                Some("channel_unconfigured: sms (DONORCARE_SMS_URL is not set)".into())
            }
            "sms" if to.phone.is_none() => {
                Some("no_address: the recipient has no phone number".into())
            }
            "wechat" if self.settings.wechat_url.is_none() => {
                Some("channel_unconfigured: wechat (DONORCARE_WECHAT_URL is not set)".into())
            }
            "wechat" if to.wechat_id.is_none() => {
                Some("no_address: the recipient has no WeChat ID".into())
            }
            "file" if self.settings.outbox_dir.is_none() => {
                Some("channel_unconfigured: file (DONORCARE_OUTBOX_DIR is not set)".into())
            }
            "letter" if to.address.is_none() => {
                Some("no_address: the recipient has no postal address".into())
            }
            _ => None,
        }
    }

    pub fn email_configured(&self) -> bool {
        self.smtp.is_some()
    }

    /// Send a plain-text email with `Message-ID: <local@mail domain>` (the same on every try).
    pub async fn send_email(
        &self,
        local: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> std::result::Result<(), String> {
        let smtp = self.smtp.as_ref().ok_or("email is not configured")?;
        let email = lettre::Message::builder()
            .message_id(Some(format!("<{local}@{}>", self.settings.mail_domain)))
            .from(
                self.settings
                    .smtp_from
                    .parse()
                    .map_err(|e| format!("sender address: {e}"))?,
            )
            .to(to.parse().map_err(|e| format!("recipient address: {e}"))?)
            .subject(subject.to_string())
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| format!("building the email: {e}"))?;
        smtp.send(&email).await
    }

    /// Hand a message to the HTTP gateway of `channel` (sms, wechat): `POST` JSON
    /// `{"to","text","idempotency_key"}` with the message id in the body and in an
    /// `Idempotency-Key` header, the same on every try, so the gateway can drop a repeat. The
    /// text is the short rendering, subject line first. Any answer but 2xx is a failure to be
    /// retried; the reason names the status only (an answer's body may quote the recipient).
    async fn post_to_gateway(
        &self,
        channel: &str,
        url: Option<&str>,
        id: &str,
        to: &Option<String>,
        msg: &Rendered,
    ) -> std::result::Result<(), String> {
        let url = url.ok_or_else(|| format!("{channel} is not configured"))?;
        let res = self
            .http
            .post(url)
            .header("Idempotency-Key", id)
            .json(&serde_json::json!({
                "to": to,
                "text": format!("{}\n{}", msg.subject, msg.body),
                "idempotency_key": id,
            }))
            .send()
            .await
            .map_err(|e| format!("{channel} gateway: {}", e.without_url()))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("{channel} gateway answered {}", res.status()))
        }
    }

    async fn send(
        &self,
        id: &str,
        channel: &str,
        to: &Person,
        msg: &Rendered,
    ) -> std::result::Result<(), String> {
        match channel {
            "email" => {
                self.send_email(
                    &format!("outreach-{id}"),
                    to.email.as_deref().unwrap_or_default(),
                    &msg.subject,
                    &msg.body,
                )
                .await
            }
            "sms" => {
                self.post_to_gateway("sms", self.settings.sms_url.as_deref(), id, &to.phone, msg)
                    .await
            }
            "wechat" => {
                let url = self.settings.wechat_url.as_deref();
                self.post_to_gateway("wechat", url, id, &to.wechat_id, msg)
                    .await
            }
            "file" => {
                let dir = self
                    .settings
                    .outbox_dir
                    .as_ref()
                    .ok_or("file is not configured")?;
                let text = format!(
                    "Message-ID: <outreach-{id}@{}>\nTo: {}\nSubject: {}\nContent-Language: {}\n\n{}",
                    self.settings.mail_domain, to.name, msg.subject, msg.language, msg.body
                );
                let tmp = dir.join(format!(".{id}.tmp"));
                let path = dir.join(format!("{id}.txt"));
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("outbox folder: {e}"))?;
                tokio::fs::write(&tmp, text)
                    .await
                    .map_err(|e| format!("outbox file: {e}"))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| format!("outbox file: {e}"))
            }
            // Letters are rendered on demand into printable batches; portal messages are
            // stored with the settlement. Nothing to send here.
            "letter" | "portal" => Ok(()),
            other => Err(format!("unknown channel {other}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker

/// What the worker did in one run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub claimed: usize,
    pub sent: usize,
    pub held: usize,
    pub deferred: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// Claimed, but the lease had passed to another worker by the time of sending.
    pub lost: usize,
}

fn backoff(attempts: i64) -> Duration {
    let secs = 30i64.saturating_mul(1 << attempts.clamp(1, 8).saturating_sub(1));
    Duration::seconds(secs.min(3600))
}

/// Settle a claimed message: the decision of the gate or of the send.
enum Decision {
    Send {
        channel: String,
        to: Box<Person>,
        rendered: Rendered,
        portal: Option<PortalRow>,
    },
    Settle {
        status: &'static str,
        reason: String,
        next: Option<DateTime<Utc>>,
    },
}

fn settle(status: &'static str, reason: impl Into<String>) -> Decision {
    Decision::Settle {
        status,
        reason: reason.into(),
        next: None,
    }
}

fn defer(reason: impl Into<String>, until: DateTime<Utc>) -> Decision {
    Decision::Settle {
        status: "scheduled",
        reason: reason.into(),
        next: Some(until),
    }
}

/// The next instant at or after `at` inside waking hours in `tz`.
fn next_waking(at: DateTime<Utc>, tz: Tz, waking: (u32, u32)) -> DateTime<Utc> {
    let local = at.with_timezone(&tz);
    let hour = local.hour();
    if hour >= waking.0 && hour < waking.1 {
        return at;
    }
    let day = if hour < waking.0 {
        local.date_naive()
    } else {
        local.date_naive() + Duration::days(1)
    };
    calendar::local_instant(
        tz,
        day,
        chrono::NaiveTime::from_hms_opt(waking.0, 0, 0).unwrap_or_default(),
    )
}

/// The gate of DESIGN.md, checked at send time.
/// Whether a visit completed at most the rule's `skip_after_visit_days` before the message was
/// due has made it pointless (completing the visit cancels the messages pending then; this
/// catches those made later, e.g. for a contact added since).
async fn made_pointless_by_visit(svc: &Services, row: &OutreachRow, program: &str) -> Result<bool> {
    // Most messages have no recent visit before them: one read, and the rule is not looked up.
    let Some(visit) = svc.store.last_visit_done(&row.case_id).await? else {
        return Ok(false);
    };
    if visit < row.due_at - Duration::days(i64::from(plan::MAX_SKIP_AFTER_VISIT_DAYS)) {
        return Ok(false);
    }
    let Some(rule_id) = svc
        .store
        .task_by_id(&row.task_id)
        .await?
        .and_then(|t| t.rule_id)
    else {
        return Ok(false);
    };
    let Some(days) = super::schedule::rules_of(svc, program)
        .await?
        .iter()
        .find(|r| r.id == rule_id)
        .and_then(|r| r.skip_after_visit_days)
    else {
        return Ok(false);
    };
    Ok(visit >= row.due_at - Duration::days(i64::from(days)))
}

async fn decide(
    svc: &Services,
    ch: &Channels,
    row: &OutreachRow,
    now: DateTime<Utc>,
) -> Result<Decision> {
    let s = &svc.schedule;
    if now > row.grace_until {
        return Ok(settle(
            "cancelled",
            "late: past the rule's grace period, skipped",
        ));
    }
    let Some(case) = svc.store.case_by_id(&row.case_id).await? else {
        return Ok(settle("cancelled", "case_missing"));
    };
    if case.status != "open" {
        return Ok(settle("cancelled", format!("case_{}", case.status)));
    }
    let Some(key) = cases::case_key(svc, &case).await? else {
        return Ok(settle("cancelled", "case_erased"));
    };
    if made_pointless_by_visit(svc, row, &case.program).await? {
        return Ok(settle("cancelled", "visit_done"));
    }
    let opened = open_row(&key, &case)?;
    let Some(to) = recipient(svc, &key, &opened, &case.id, &row.recipient).await? else {
        return Ok(settle("cancelled", "contact_missing"));
    };
    if to.deceased {
        return Ok(settle("cancelled", "recipient_cannot_be_contacted"));
    }
    if to.opted_out {
        return Ok(settle(
            "held",
            "opted_out: the recipient asked for no contact",
        ));
    }
    if let Some(until) = to.do_not_contact_until {
        if calendar::local_date(to.tz, now) < until {
            let resume = next_waking(
                calendar::local_instant(to.tz, until, chrono::NaiveTime::MIN),
                to.tz,
                s.waking,
            );
            return Ok(if resume <= row.grace_until {
                defer(format!("do_not_contact_until {until}"), resume)
            } else {
                settle(
                    "held",
                    format!("do_not_contact_until: no contact before {until}"),
                )
            });
        }
    }
    let channel = row.channel.clone().unwrap_or_else(|| to.preferred.clone());
    let allowed = contact_channels(svc, &key, &case.id, &row.recipient, None, now).await?;
    if !allowed.contains(&channel) {
        return Ok(settle(
            "held",
            format!("no_consent: no active contact consent covers the {channel} channel"),
        ));
    }
    if let Some(why) = ch.unavailable(&channel, &to) {
        return Ok(settle("held", why));
    }
    let wake = next_waking(now, to.tz, s.waking);
    if wake > now {
        return Ok(defer("waiting for the recipient's waking hours", wake));
    }
    if svc.store.sent_since(&case.id, now - s.cap_period).await? >= s.cap {
        let later = next_waking(now + Duration::days(1), to.tz, s.waking);
        return Ok(if later <= row.grace_until {
            defer(
                "family_cap: deferred, the family had enough messages this period",
                later,
            )
        } else {
            settle(
                "held",
                "family_cap: the family had enough messages this period",
            )
        });
    }
    let rendered = render_row(svc, row, &to, &opened).await?;
    let portal = (channel == "portal").then(|| PortalRow {
        outreach_id: row.id.clone(),
        case_id: case.id.clone(),
        recipient: row.recipient.clone(),
        sealed: crypto::seal_json(&key, portal_place(&row.id), &rendered).into_bytes(),
        created_at: now,
    });
    Ok(Decision::Send {
        channel,
        to: Box::new(to),
        rendered,
        portal,
    })
}

fn portal_place(id: &str) -> Place<'_> {
    Place::new("portal_messages", "sealed", id)
}

/// Claim and deliver what is due, until nothing is; returns what happened.
pub async fn run_due(
    svc: &Services,
    ch: &Channels,
    owner: &str,
    now_fn: impl Fn() -> DateTime<Utc>,
    stopping: impl Fn() -> bool,
) -> Result<RunStats> {
    let mut stats = RunStats::default();
    loop {
        if stopping() {
            return Ok(stats);
        }
        let now = now_fn();
        if !svc.store.outreach_due(now).await? {
            return Ok(stats);
        }
        // A few at a time: a crash can repeat at most the messages in flight.
        let claimed = svc
            .store
            .claim_outreach(owner, now, now + svc.schedule.lease, 4)
            .await?;
        if claimed.is_empty() {
            return Ok(stats);
        }
        for row in claimed {
            stats.claimed += 1;
            let now = now_fn();
            let decision = match decide(svc, ch, &row, now).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(outreach_id = %row.id, error = %e, "outreach gate failed");
                    Decision::Settle {
                        status: "failed",
                        reason: "internal error at send time".into(),
                        next: Some(now + backoff(row.attempts)),
                    }
                }
            };
            let s = match decision {
                Decision::Settle {
                    status,
                    reason,
                    next,
                } => {
                    match status {
                        "held" => stats.held += 1,
                        "scheduled" => stats.deferred += 1,
                        "cancelled" => stats.cancelled += 1,
                        _ => stats.failed += 1,
                    }
                    Settle {
                        id: row.id.clone(),
                        task_id: row.task_id.clone(),
                        status: status.into(),
                        reason: Some(reason),
                        channel: None,
                        next_attempt_at: next,
                        sent_at: None,
                        portal: None,
                    }
                }
                Decision::Send {
                    channel,
                    to,
                    rendered,
                    portal,
                } => {
                    // The earlier messages of the claim may have taken long (a slow relay):
                    // send only if the lease is still this worker's, and for a whole lease more.
                    let at = now_fn();
                    if !svc
                        .store
                        .renew_outreach_lease(owner, &row.id, at, at + svc.schedule.lease)
                        .await?
                    {
                        stats.lost += 1;
                        tracing::warn!(outreach_id = %row.id, "lost the lease before sending; left to the worker that holds it");
                        continue;
                    }
                    match ch.send(&row.id, &channel, &to, &rendered).await {
                        Ok(()) => {
                            stats.sent += 1;
                            let reason = (channel == "letter")
                                .then(|| "in the printable letter batch".to_string());
                            Settle {
                                id: row.id.clone(),
                                task_id: row.task_id.clone(),
                                status: "sent".into(),
                                reason,
                                channel: Some(channel),
                                next_attempt_at: None,
                                sent_at: Some(now_fn()),
                                portal,
                            }
                        }
                        Err(e) if row.attempts >= svc.schedule.max_attempts => {
                            stats.failed += 1;
                            tracing::warn!(outreach_id = %row.id, attempts = row.attempts, "outreach dead-lettered");
                            Settle {
                                id: row.id.clone(),
                                task_id: row.task_id.clone(),
                                status: "dead".into(),
                                reason: Some(e),
                                channel: Some(channel),
                                next_attempt_at: None,
                                sent_at: None,
                                portal: None,
                            }
                        }
                        Err(e) => {
                            stats.failed += 1;
                            Settle {
                                id: row.id.clone(),
                                task_id: row.task_id.clone(),
                                status: "failed".into(),
                                reason: Some(e),
                                channel: Some(channel),
                                next_attempt_at: Some(now_fn() + backoff(row.attempts)),
                                sent_at: None,
                                portal: None,
                            }
                        }
                    }
                }
            };
            if !svc.store.settle_outreach(owner, &s, now_fn()).await? {
                tracing::warn!(outreach_id = %row.id, "lost the lease before settling");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Views

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutreachView {
    pub id: String,
    pub case_id: String,
    pub task_id: String,
    /// `donor` or a contact id.
    pub recipient: String,
    pub channel: Option<String>,
    pub template: String,
    /// `scheduled`, `sent`, `held`, `failed`, `dead` or `cancelled`.
    pub status: String,
    /// Why it is held, deferred, failed or cancelled.
    pub reason: Option<String>,
    pub due_at: DateTime<Utc>,
    pub grace_until: DateTime<Utc>,
    pub attempts: i64,
    pub sent_at: Option<DateTime<Utc>>,
    /// The message itself, for messages in the family's portal inbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Rendered>,
}

fn view(r: OutreachRow) -> OutreachView {
    OutreachView {
        id: r.id,
        case_id: r.case_id,
        task_id: r.task_id,
        recipient: r.recipient,
        channel: r.channel,
        template: r.template,
        status: r.status,
        reason: r.reason,
        due_at: r.due_at,
        grace_until: r.grace_until,
        attempts: r.attempts,
        sent_at: r.sent_at,
        message: None,
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutreachFilter {
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

async fn page(
    svc: &Services,
    case_id: &str,
    recipient: Option<&str>,
    f: OutreachFilter,
    key: Option<&SecretKey>,
) -> Result<Page<OutreachView>> {
    let mut v = Validator::new();
    let after = super::time_cursor(f.cursor.as_deref(), &mut v);
    let limit = page_limit(f.limit)?;
    v.finish()?;
    let rows = svc
        .store
        .list_outreach(case_id, recipient, after, limit + 1)
        .await?;
    let mut page = paginate(rows, limit, due_cursor, |r| Ok(view(r)))?;
    // The family's own listing carries the text of what reached their inbox.
    if let Some(k) = key {
        let ids: Vec<String> = page.items.iter().map(|i| i.id.clone()).collect();
        for p in svc.store.portal_messages(&ids).await? {
            if let Some(item) = page.items.iter_mut().find(|i| i.id == p.outreach_id) {
                item.message = Some(crypto::open_json(
                    k,
                    portal_place(&p.outreach_id),
                    &crypto::Sealed::from_bytes(p.sealed),
                )?);
            }
        }
    }
    Ok(page)
}

/// The listing cursor of a message: `<due time>|<id>`.
fn due_cursor(r: &OutreachRow) -> String {
    format!("{}|{}", r.due_at.to_rfc3339(), r.id)
}

/// What `GET /api/v1/outreach` can list.
pub const ATTENTION: &[&str] = &["held", "dead", "failed"];

fn attention_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::comma_list(ATTENTION)
}

/// Which messages `GET /api/v1/outreach` lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AttentionFilter {
    /// Comma-separated, of `held`, `dead` and `failed`; default `held,dead`.
    #[param(schema_with = attention_param)]
    pub status: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The messages that need a person in the caller's cases (a coordinator's assigned cases, a
/// supervisor's region): held with their reason, dead after the last try, or failing, in due
/// order. Codes and ids only, no personal data.
pub async fn attention(
    svc: &Services,
    actor: &Actor,
    f: AttentionFilter,
    now: DateTime<Utc>,
) -> Result<Page<OutreachView>> {
    use crate::policy::{Action, Resource};
    svc.authorize(
        actor,
        Action::ListOutreachAttention,
        Resource::System,
        svc.entry(actor, Action::ListOutreachAttention, "outreach", now),
    )
    .await?;
    let mut v = Validator::new();
    let statuses: Vec<String> = match f.status.as_deref() {
        None => vec!["held".into(), "dead".into()],
        Some(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
    };
    if statuses.is_empty() || statuses.iter().any(|s| !ATTENTION.contains(&s.as_str())) {
        v.add(
            "status",
            format!("must be {}, comma-separated", ATTENTION.join(", ")),
        );
    }
    let after = super::time_cursor(f.cursor.as_deref(), &mut v);
    let limit = page_limit(f.limit)?;
    v.finish()?;
    let scope = match actor.role {
        super::types::Role::Coordinator => CaseScope::AssignedTo(actor.user_id.clone()),
        _ => CaseScope::Region(actor.region.clone().unwrap_or_default()),
    };
    let rows = svc
        .store
        .attention_outreach(&scope, &statuses, after, limit + 1)
        .await?;
    paginate(rows, limit, due_cursor, |r| Ok(view(r)))
}

/// A case's messages, in due order, with status and reason.
pub async fn case_outreach(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    f: OutreachFilter,
    now: DateTime<Utc>,
) -> Result<Page<OutreachView>> {
    super::schedule::authorize_outreach(svc, actor, case_id, now).await?;
    page(svc, case_id, None, f, None).await
}

/// What the family's contact was sent or is due to receive, with their portal messages.
pub async fn family_outreach(
    svc: &Services,
    actor: &Actor,
    f: OutreachFilter,
    now: DateTime<Utc>,
) -> Result<Page<OutreachView>> {
    let case_id = super::family::own_case(svc, actor, now).await?;
    let contact = actor.contact_id.clone().ok_or(Error::Forbidden)?;
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = cases::case_key(svc, &case).await?;
    let page = page(svc, &case_id, Some(&contact), f, key.as_ref()).await?;
    // The inbox holds the messages' texts: reading it is a view of personal data.
    svc.audit
        .record(vec![svc
            .entry(actor, crate::policy::Action::FamilyPortal, "outreach", now)
            .target(&contact)
            .case(&case_id)])
        .await?;
    Ok(page)
}

/// Render one message as it would go out now (or went out), for its recipient.
pub async fn preview(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Rendered> {
    Ok(show(svc, actor, id, now).await?.message)
}

/// One message for the person dealing with it: where it stands, the text as it would go out
/// now (or went out) for its recipient, the recipient's name and the donor's. Audited as a
/// preview.
pub async fn show(svc: &Services, actor: &Actor, id: &str, now: DateTime<Utc>) -> Result<Shown> {
    let row = svc.store.outreach_by_id(id).await?.ok_or(Error::NotFound)?;
    let auth = super::schedule::authorize_outreach(svc, actor, &row.case_id, now).await?;
    let key = cases::case_key(svc, &auth.row)
        .await?
        .ok_or(Error::NotFound)?;
    let opened = open_row(&key, &auth.row)?;
    let to = recipient(svc, &key, &opened, &row.case_id, &row.recipient)
        .await?
        .ok_or(Error::NotFound)?;
    let message = render_row(svc, &row, &to, &opened).await?;
    svc.audit
        .record(vec![svc
            .entry(actor, crate::policy::Action::ReadOutreach, "outreach", now)
            .target(id)
            .case(&row.case_id)])
        .await?;
    Ok(Shown {
        recipient_name: to.name,
        donor_name: opened.donor.full_name.clone(),
        message,
        outreach: view(row),
    })
}

/// A message with its text, for the queue's page.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub outreach: OutreachView,
    pub message: Rendered,
    pub recipient_name: String,
    pub donor_name: String,
}

/// A message not yet planned, as it would read and when it would go: the template rendered
/// for `recipient` (`donor` or a contact of the case) in their language, and a date alone
/// taken as the start of their waking hours in their zone. Nothing is saved; the view of the
/// case is audited like a preview.
pub async fn draft(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    recipient_id: &str,
    template: &str,
    due: &str,
    now: DateTime<Utc>,
) -> Result<(Rendered, DateTime<Utc>)> {
    let auth = super::schedule::authorize_outreach(svc, actor, case_id, now).await?;
    let mut v = crate::error::Validator::new();
    if !crate::schedule::plan::TEMPLATES.contains(&template) {
        v.add(
            "template",
            format!(
                "must be one of {}",
                crate::schedule::plan::TEMPLATES.join(", ")
            ),
        );
    }
    let day = super::types::parse_date(due.trim()).ok();
    let at = match (day, DateTime::parse_from_rfc3339(due.trim())) {
        (Some(_), _) => None,
        (None, Ok(t)) => Some(t.with_timezone(&Utc)),
        (None, Err(_)) => {
            v.add("due_at", "must be an RFC 3339 time or a date (YYYY-MM-DD)");
            None
        }
    };
    let key = cases::case_key(svc, &auth.row)
        .await?
        .ok_or(Error::NotFound)?;
    let opened = open_row(&key, &auth.row)?;
    let to = recipient(svc, &key, &opened, case_id, recipient_id).await?;
    if to.is_none() {
        v.add("contact_id", "is not a contact of this case");
    }
    v.finish()?;
    let to = to.ok_or(Error::NotFound)?;
    let due = match (day, at) {
        (Some(d), _) => {
            crate::schedule::calendar::local_instant(to.tz, d, svc.schedule.waking_start())
        }
        (None, Some(t)) => t,
        (None, None) => now,
    };
    let r = render(
        templates()?,
        template,
        &to,
        &opened.donor,
        &opened.donation,
        None,
        None,
        due,
    )?;
    svc.audit
        .record(vec![svc
            .entry(actor, crate::policy::Action::ReadOutreach, "outreach", now)
            .case(case_id)
            .reason("draft")])
        .await?;
    Ok((r, due))
}

/// Put a held or dead message back in the queue (e.g. after a consent was given or a channel
/// configured); the gate decides again when it is taken.
pub async fn release(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<OutreachView> {
    settle_waiting(svc, actor, id, Waiting::Release, now).await
}

/// Cancel a held or dead message for good (the family should not get it at all); a message
/// being sent or still scheduled is left to its task.
pub async fn cancel(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<OutreachView> {
    settle_waiting(svc, actor, id, Waiting::Cancel, now).await
}

/// What a person does with a message that waits for them.
#[derive(Clone, Copy)]
enum Waiting {
    Release,
    Cancel,
}

async fn settle_waiting(
    svc: &Services,
    actor: &Actor,
    id: &str,
    what: Waiting,
    now: DateTime<Utc>,
) -> Result<OutreachView> {
    use crate::policy::Action;
    let (action, verb) = match what {
        Waiting::Release => (Action::ReleaseOutreach, "released"),
        Waiting::Cancel => (Action::CancelOutreach, "cancelled"),
    };
    let row = svc.store.outreach_by_id(id).await?.ok_or(Error::NotFound)?;
    cases::load_authorized(svc, actor, &row.case_id, action, now).await?;
    let audit = [svc
        .entry(actor, action, "outreach", now)
        .target(id)
        .case(&row.case_id)];
    let done = match what {
        Waiting::Release => svc.store.release_outreach(id, now, &audit).await?,
        Waiting::Cancel => svc.store.cancel_message(id, now, &audit).await?,
    };
    if !done {
        return Err(Error::Conflict {
            field: Some("status".into()),
            message: format!(
                "the message is {}; only held or dead messages can be {verb}",
                row.status
            ),
        });
    }
    let row = svc.store.outreach_by_id(id).await?.ok_or(Error::NotFound)?;
    Ok(view(row))
}

/// One printable letter.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    pub id: String,
    pub name: String,
    pub address: String,
    pub subject: String,
    pub body: String,
    pub language: String,
}

/// The letters that went out on `date` (in the default zone) in the caller's cases, rendered
/// now for printing; nothing rendered is stored. Each case whose letters are shown is audited.
pub async fn letters(
    svc: &Services,
    actor: &Actor,
    date: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Letter>> {
    use crate::policy::{Action, Resource};
    svc.authorize(
        actor,
        Action::PrintLetters,
        Resource::System,
        svc.entry(actor, Action::PrintLetters, "outreach", now),
    )
    .await?;
    let day = super::types::parse_date(date).map_err(|e| Error::field("date", e))?;
    let tz = svc.schedule.default_tz;
    let from = calendar::local_instant(tz, day, chrono::NaiveTime::MIN);
    let to = calendar::local_instant(tz, day + Duration::days(1), chrono::NaiveTime::MIN);
    let (assigned, region) = match actor.role {
        super::types::Role::Coordinator => (Some(actor.user_id.as_str()), None),
        _ => (None, Some(actor.region.as_deref().unwrap_or_default())),
    };
    let rows = svc
        .store
        .letters_sent(assigned, region, from, to, 1000)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut audit = Vec::new();
    let mut opened: Option<(String, Option<(SecretKey, cases::Opened)>)> = None;
    for row in rows {
        if opened.as_ref().is_none_or(|(id, _)| *id != row.case_id) {
            let case = svc
                .store
                .case_by_id(&row.case_id)
                .await?
                .ok_or(Error::NotFound)?;
            let o = match cases::case_key(svc, &case).await? {
                Some(k) => {
                    let o = open_row(&k, &case)?;
                    Some((k, o))
                }
                None => None,
            };
            audit.push(
                svc.entry(actor, Action::PrintLetters, "case", now)
                    .target(&row.case_id)
                    .case(&row.case_id),
            );
            opened = Some((row.case_id.clone(), o));
        }
        let Some((_, Some((key, o)))) = &opened else {
            continue;
        };
        let Some(to) = recipient(svc, key, o, &row.case_id, &row.recipient).await? else {
            continue;
        };
        let r = render_row(svc, &row, &to, o).await?;
        out.push(Letter {
            id: row.id,
            name: to.name,
            address: to.address.unwrap_or_default(),
            subject: r.subject,
            body: r.body,
            language: r.language,
        });
    }
    svc.audit.record(audit).await?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Templates on sample values (the admin's templates page)

/// The occurrence keys of the mourning days, in their order (`d7` … `y3`).
pub fn mourning_keys() -> impl Iterator<Item = &'static str> {
    MOURNING_NAMES.iter().map(|(k, _, _)| *k)
}

/// Made-up values to fill a template with: nobody's data. Every field is text as a form sends
/// it; blanks take the sample defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleInput {
    pub recipient_name: Option<String>,
    pub donor_name: Option<String>,
    /// The day the message goes, `YYYY-MM-DD`.
    pub date: Option<String>,
    pub donation_date: Option<String>,
    /// A donation kind (`pbsc`, `marrow`, `kidney`, …): the blood-donation pause depends on it.
    pub donation_kind: Option<String>,
    /// Which anniversary (1, 2, …), for anniversary letters.
    pub years: Option<String>,
    /// Which mourning day (`d7` … `y3`), for mourning-day messages.
    pub mourning_day: Option<String>,
}

/// `template` rendered in zh-CN and in en on sample values (admin); nothing is read or saved.
pub async fn sample_preview(
    svc: &Services,
    actor: &Actor,
    template: &str,
    input: &SampleInput,
    now: DateTime<Utc>,
) -> Result<Vec<Rendered>> {
    use crate::policy::{Action, Resource};
    svc.authorize(
        actor,
        Action::ManageTemplates,
        Resource::System,
        svc.entry(actor, Action::ManageTemplates, "template", now),
    )
    .await?;
    if !plan::TEMPLATES.contains(&template) {
        return Err(Error::NotFound);
    }
    let mut v = Validator::new();
    let text = |v: &mut Validator, name: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|s| v.check(name, super::types::required_text(s, 100)))
    };
    let date = |v: &mut Validator, name: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|s| v.check(name, super::types::parse_date(s.trim())))
    };
    let recipient_name = text(&mut v, "recipient_name", &input.recipient_name);
    let donor_name = text(&mut v, "donor_name", &input.donor_name);
    let day = date(&mut v, "date", &input.date);
    let donation_date = date(&mut v, "donation_date", &input.donation_date);
    let kinds: Vec<&str> = super::types::Program::ALL
        .iter()
        .flat_map(|p| p.donation_kinds().iter().copied())
        .collect();
    let kind = match input.donation_kind.as_deref() {
        Some(k) if !kinds.contains(&k) => {
            v.add(
                "donation_kind",
                format!("must be one of {}", kinds.join(", ")),
            );
            None
        }
        k => k.map(str::to_string),
    };
    let years = match input.years.as_deref().map(str::trim) {
        None => None,
        Some(y) => match y.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => Some(n),
            Ok(_) => {
                v.add("years", "must be between 1 and 100");
                None
            }
            Err(_) => {
                v.add("years", "must be a whole number");
                None
            }
        },
    };
    let mourning = match input.mourning_day.as_deref() {
        Some(k) if !mourning_keys().any(|m| m == k) => {
            let all: Vec<&str> = mourning_keys().collect();
            v.add("mourning_day", format!("must be one of {}", all.join(", ")));
            None
        }
        k => k.map(str::to_string),
    };
    v.finish()?;
    let today = calendar::local_date(svc.schedule.default_tz, now);
    let donation = cases::Donation {
        date: donation_date.unwrap_or(today - Duration::days(365)),
        kind: kind.unwrap_or_else(|| "pbsc".into()),
        hospital: None,
    };
    let occurrence = if template == "mourning_day" {
        Some(mourning.unwrap_or_else(|| "d7".into()))
    } else {
        years.map(|n| format!("y{n}"))
    };
    ["zh-CN", "en"]
        .into_iter()
        .map(|lang| {
            let sample = |given: &Option<String>, zh: &str, en: &str| {
                given
                    .clone()
                    .unwrap_or_else(|| if lang == "en" { en } else { zh }.to_string())
            };
            fill(
                templates()?,
                template,
                lang,
                &sample(&recipient_name, "李女士", "Ms Li"),
                &sample(&donor_name, "王先生", "Mr Wang"),
                &donation,
                occurrence.as_deref(),
                None,
                day.unwrap_or(today),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(template: &str, lang: &str, kind: &str) -> String {
        let donation = cases::Donation {
            date: NaiveDate::from_ymd_opt(2026, 3, 14).unwrap(),
            kind: kind.into(),
            hospital: None,
        };
        let day = NaiveDate::from_ymd_opt(2026, 3, 17).unwrap();
        fill(
            templates().unwrap(),
            template,
            lang,
            "Ms Li",
            "Ms Li",
            &donation,
            None,
            None,
            day,
        )
        .unwrap()
        .body
    }

    #[test]
    fn an_events_messages_name_its_day_time_place_and_reply_date() {
        let donation = cases::Donation {
            date: NaiveDate::from_ymd_opt(2025, 3, 14).unwrap(),
            kind: "kidney".into(),
            hospital: None,
        };
        let facts = super::super::memorials::EventFacts {
            title: "清明缅怀活动".into(),
            date: NaiveDate::from_ymd_opt(2027, 4, 4).unwrap(),
            time: "09:30".into(),
            place: "福泉山纪念园".into(),
            details: "上午九点集合".into(),
            reply_by: NaiveDate::from_ymd_opt(2027, 3, 25),
        };
        for template in ["memorial_event_invitation", "memorial_event_reminder"] {
            for lang in ["zh-CN", "en"] {
                let r = fill(
                    templates().unwrap(),
                    template,
                    lang,
                    "李女士",
                    "王先生",
                    &donation,
                    None,
                    Some(&facts),
                    NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
                )
                .unwrap();
                let all = format!("{}\n{}", r.subject, r.body);
                for want in ["2027-04-04", "09:30", "福泉山纪念园", "清明缅怀活动"] {
                    assert!(all.contains(want), "{template}.{lang}: {want} in {all}");
                }
                assert_eq!(
                    all.contains("2027-03-25"),
                    template == "memorial_event_invitation",
                    "{template}.{lang}"
                );
            }
        }
    }

    #[test]
    fn the_blood_donation_messages_name_the_day_the_deferral_ends_by_kind() {
        for t in ["blood_donation_reminder", "blood_donation_resume"] {
            assert!(body(t, "en", "pbsc").contains("2026-09-14"), "{t}");
            assert!(body(t, "zh-CN", "marrow").contains("2027-03-14"), "{t}");
        }
    }

    #[test]
    fn the_second_donation_window_messages_name_its_close() {
        assert!(body("second_donation_window", "en", "pbsc").contains("Until 2028-03-14"));
        assert!(body("second_donation_window", "zh-CN", "marrow").contains("2028-03-14"));
        assert!(body("second_donation_window_closed", "en", "marrow").contains("2026-03-14"));
    }
}
