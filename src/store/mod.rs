//! Storage: one [`Store`] trait, implemented for SQLite (the embedded default) and PostgreSQL.
//!
//! The store sees only ids, plaintext metadata (program, region, status, times) and sealed
//! bytes; it never holds a key or a plaintext personal value. Each method is one transaction.

mod cached;
mod correspondence;
pub mod dump;
mod marrow;
mod memorial;
mod postgres;
mod schedule;
mod shared;
mod sqlite;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::error::Result;
pub use cached::{AtGeneration, CachedReads, CaseBundle, TokenUser};
pub use correspondence::*;
pub use marrow::*;
pub use memorial::*;
pub use schedule::*;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A keyring entry: a data-encryption key (`purpose = "data"`) or the blind-index key
/// (`purpose = "index"`), sealed with age to `recipients`. `sealed` is gone once retired.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyringRow {
    pub purpose: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub sealed: Option<Vec<u8>>,
    pub recipients: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub region: Option<String>,
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// TOTP secret sealed under the account-secrets key; set at enrolment.
    pub totp_secret: Option<Vec<u8>>,
    /// When the TOTP enrolment was confirmed; codes are required from then on.
    pub totp_enabled_at: Option<DateTime<Utc>>,
    /// The last TOTP time step accepted, so a code works once.
    pub totp_last_step: i64,
    /// For family accounts: the contact they are.
    pub contact_id: Option<String>,
    /// Where a staff member's daily digest goes.
    pub email: Option<String>,
}

/// An invitation that turns a contact into a family account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub contact_id: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ErasureRow {
    pub id: String,
    pub case_id: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// One staff access to a case, for the family's access log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub display_name: Option<String>,
    pub action: String,
    pub break_glass: bool,
}

/// A visit, call or outreach task.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub assignee_id: Option<String>,
    pub contact_id: Option<String>,
    pub template: Option<String>,
    pub status: String,
    /// Outcome and note, sealed under the case key.
    pub details: Option<Vec<u8>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
    /// The care-plan rule and occurrence that made it (`None` for a task made by hand).
    pub rule_id: Option<String>,
    pub occurrence: Option<String>,
    /// After this, the occurrence is skipped rather than done late.
    pub grace_until: Option<DateTime<Utc>>,
    /// Why it was cancelled, as a code (see migration 0015 / 0013).
    pub cancel_reason: Option<String>,
    /// The case's region (joined), for access decisions.
    pub region: String,
}

/// Which tasks a listing may return.
#[derive(Debug, Clone)]
pub enum TaskScope {
    AssignedTo(String),
    /// Tasks of the cases a coordinator is assigned to.
    CasesOf(String),
    Region(String),
}

#[derive(Debug, Clone)]
pub struct TaskQuery {
    pub scope: TaskScope,
    pub status: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub case_id: Option<String>,
    /// Continue after this (due_at, id).
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

/// A consent record as stored; `withdrawn_by` is joined in (the withdrawal that names it).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRow {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub subject: String,
    pub given_by: String,
    pub method: String,
    pub document_id: String,
    pub document_sha256: String,
    pub signed_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub withdraws: Option<String>,
    /// Witness, scope and reason, sealed under the case key.
    pub sealed: Vec<u8>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub content_hash: Vec<u8>,
    pub withdrawn_by: Option<String>,
}

/// Which consents a listing may return.
#[derive(Debug, Clone)]
pub enum ConsentScope {
    All,
    Region(String),
    AssignedTo(String),
    /// Consents a contact gave or that concern them.
    Contact(String),
}

#[derive(Debug, Clone)]
pub struct ConsentQuery {
    pub scope: ConsentScope,
    pub case_id: Option<String>,
    pub kind: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

/// A finding of the consent validity rules.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FindingRow {
    pub id: String,
    pub case_id: String,
    pub rule: String,
    /// The consent it is about, or empty for a finding about the case.
    pub consent_key: String,
    pub message: String,
    pub status: String,
    /// The case's programme.
    pub program: String,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub decision: Option<String>,
    pub note: Option<Vec<u8>>,
}

/// What the rules find now for a case: (rule, consent key, message).
pub type Found = (String, String, String);

/// Which findings a listing returns: `region` limits to cases of a region, `assigned_to` to a
/// coordinator's; `opened_before` to findings older than a time; `after` is the cursor (an id).
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    pub region: Option<String>,
    pub assigned_to: Option<String>,
    pub case_id: Option<String>,
    pub status: Option<String>,
    pub rule: Option<String>,
    pub program: Option<String>,
    pub opened_before: Option<DateTime<Utc>>,
    pub after: Option<String>,
    pub limit: i64,
}

/// An ethics reviewer's review of a consent record; the note is sealed under the case key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReviewRow {
    pub id: String,
    pub consent_id: String,
    pub reviewer_id: String,
    pub finding: String,
    pub note: Option<Vec<u8>>,
    pub reviewed_at: DateTime<Utc>,
}

/// A signed form attached to a consent record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttachmentRow {
    pub consent_id: String,
    pub case_id: String,
    pub media_type: String,
    pub size: i64,
    pub sealed_sha256: String,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
}

/// A browser session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A case as stored: metadata in the clear, personal data sealed under the case key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseRow {
    pub id: String,
    pub program: String,
    pub region: String,
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub donor: Vec<u8>,
    pub donation: Vec<u8>,
    pub notes: Option<Vec<u8>>,
    /// Keyring version wrapping the case key; `None` once the case key is destroyed.
    pub key_version: Option<i64>,
    pub wrapped_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: String,
    pub case_id: String,
    pub relationship: String,
    pub language: String,
    pub timezone: String,
    pub preferred_channel: String,
    pub opted_out: bool,
    pub do_not_contact_until: Option<chrono::NaiveDate>,
    pub details: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A case row joined with one of its assignments (none: a row of nulls).
#[derive(Debug, sqlx::FromRow)]
pub struct CaseAssignmentRow {
    #[sqlx(flatten)]
    pub case: CaseRow,
    pub a_user_id: Option<String>,
    pub a_kind: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    pub case_id: String,
    pub user_id: String,
    pub kind: String,
}

/// Blind-index terms of one source (the donor, or one contact) of a case.
#[derive(Debug, Clone)]
pub struct SearchTerms {
    pub source: String,
    pub terms: Vec<Vec<u8>>,
}

/// Which cases a listing may return.
#[derive(Debug, Clone)]
pub enum CaseScope {
    /// Every case (operator tasks and benchmarks; never an API caller).
    All,
    Region(String),
    AssignedTo(String),
}

#[derive(Debug, Clone)]
pub struct CaseQuery {
    pub scope: CaseScope,
    pub program: Option<String>,
    pub status: Option<String>,
    /// Blind-index term that a case must carry.
    pub term: Option<Vec<u8>>,
    /// Only cases holding a consent of this kind about the donor, in force at this time (not
    /// withdrawn, not expired): the honour roll's `publicity`.
    pub consent_in_force: Option<(String, DateTime<Utc>)>,
    /// Return cases whose id sorts after this one.
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct NewCase {
    pub row: CaseRow,
    pub terms: SearchTerms,
    pub assignments: Vec<AssignmentRow>,
}

/// A stored audit entry with its place in the chain.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub case_id: Option<String>,
    pub outcome: String,
    pub break_glass: bool,
    pub reason: Option<String>,
    pub content_hash: Option<Vec<u8>>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Filters of an audit listing (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub case_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only entries about cases of this region (supervisors).
    pub region: Option<String>,
    /// Entries with a sequence number below this one.
    pub before: Option<i64>,
    pub limit: i64,
}

/// A break-glass grant; the stated reason is sealed under the case key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BreakGlassRow {
    pub id: String,
    pub case_id: String,
    pub user_id: String,
    pub reason: Vec<u8>,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An ethics reviewer's word on a break-glass grant; `note` is sealed with the case's key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BreakGlassReviewRow {
    pub id: String,
    pub grant_id: String,
    pub reviewer_id: String,
    /// `acknowledged` or `concern`.
    pub decision: String,
    pub note: Option<Vec<u8>>,
    pub reviewed_at: DateTime<Utc>,
}

/// An open case and one kind of consent it holds in force (`Store::consent_coverage`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CoverageRow {
    pub case_id: String,
    pub program: String,
    pub region: String,
    pub kind: Option<String>,
}

/// How many cases of a programme and status a scope holds.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ProgramCount {
    pub program: String,
    pub status: String,
    pub count: i64,
}

/// What a report counts over (`Store::report_rows`): months given by their bounds in UTC
/// (`bounds[i]..bounds[i + 1]` is month `i`), the moment the standing figures are taken at,
/// and the cases it looks at.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub bounds: Vec<DateTime<Utc>>,
    pub at: DateTime<Utc>,
    pub program: Option<String>,
    pub region: Option<String>,
}

/// Follow-up calls and visits due in a month, by programme and region.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportTasks {
    pub program: String,
    pub region: String,
    pub bucket: i64,
    pub total: i64,
    pub done: i64,
    /// Done after their grace period had passed (without one: after the month they were due).
    pub late: i64,
    pub cancelled: i64,
}

/// A count by programme, region and month (`bucket`; -1 for a standing figure), of `what`
/// (`sent`, `not_sent`, `consent_given`, `consent_withdrawn`, `consent_active`,
/// `finding_opened`, `finding_closed`, `finding_open`, `case_new`, `case_open`), with its
/// detail: the channel, the status and reason, the consent kind.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportCount {
    pub program: String,
    pub region: String,
    pub bucket: i64,
    pub what: String,
    pub detail: String,
    pub count: i64,
}

/// Everything a report is made of, counted from metadata alone.
#[derive(Debug, Clone, Default)]
pub struct ReportRows {
    pub tasks: Vec<ReportTasks>,
    pub counts: Vec<ReportCount>,
}

/// Counts of case keys per keyring version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionCount {
    pub key_version: i64,
    pub count: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WrappedCaseKey {
    pub case_id: String,
    pub key_version: i64,
    pub wrapped: Vec<u8>,
}

#[async_trait::async_trait]
pub trait Store:
    ScheduleStore + MarrowStore + MemorialStore + CorrespondenceStore + Send + Sync + 'static
{
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> Result<()>;
    async fn close(&self);
    /// Fold the write-ahead log into the database file (SQLite; nothing on PostgreSQL), so that
    /// after a clean stop the database file alone holds everything.
    async fn checkpoint(&self) -> Result<()>;
    /// Before a pass that makes tasks and messages for many cases at once: drop the indexes
    /// whose keys (due times) such a pass scatters over the whole tree, so that they are built
    /// once, sorted, by [`Store::rebuild_bulk_indexes`]. Returns whether it dropped any
    /// (SQLite; nothing on PostgreSQL).
    async fn drop_bulk_indexes(&self) -> Result<bool> {
        Ok(false)
    }
    /// Build again the indexes [`Store::drop_bulk_indexes`] dropped (also at every start, after
    /// a crash mid-pass); returns how many.
    async fn rebuild_bulk_indexes(&self) -> Result<usize> {
        Ok(0)
    }
    async fn ping(&self) -> Result<()>;

    /// Send every table of the backup catalogue ([`dump::TABLES`]), row by row, read in one
    /// consistent snapshot while others keep writing; ends with [`dump::Item::Done`].
    async fn dump(&self, out: tokio::sync::mpsc::Sender<dump::Item>) -> Result<()>;
    /// Load a dump into this empty, migrated database in one transaction: everything up to
    /// [`dump::Item::Done`], or nothing.
    async fn load(&self, items: tokio::sync::mpsc::Receiver<dump::Item>) -> Result<dump::Loaded>;
    /// Whether the database holds no records (no keyring, account, case or audit entry); a
    /// database never migrated is empty.
    async fn is_empty(&self) -> Result<bool>;

    /// Whether a keyring exists; false also before the first migration.
    async fn keyring_exists(&self) -> Result<bool>;
    async fn keyring_rows(&self) -> Result<Vec<KeyringRow>>;
    /// Insert keyring rows; a row that already exists is a conflict and nothing is written.
    async fn insert_keyring_rows(&self, rows: &[KeyringRow], audit: &[AuditEntry]) -> Result<()>;
    /// Replace the sealed keys (new recipient set) of every live keyring row at once.
    async fn reseal_keyring(&self, rows: &[KeyringRow], audit: &[AuditEntry]) -> Result<()>;
    /// Retire a data-key version: only if no case key uses it; destroys its sealed key.
    async fn retire_key_version(
        &self,
        version: i64,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    async fn case_key_counts(&self) -> Result<Vec<VersionCount>>;
    async fn case_keys_not_at(&self, version: i64, limit: i64) -> Result<Vec<WrappedCaseKey>>;
    /// Replace a wrapped case key if it is still at `old_version`; false if it moved meanwhile.
    async fn rewrap_case_key(&self, key: &WrappedCaseKey, old_version: i64) -> Result<bool>;

    async fn count_users(&self) -> Result<i64>;
    async fn insert_user(&self, user: &UserRow, audit: &[AuditEntry]) -> Result<()>;
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>>;
    async fn list_users(&self, after: Option<&str>, limit: i64) -> Result<Vec<UserRow>>;
    /// Store changed account fields; revokes every token of the account when it is disabled.
    async fn update_user(&self, user: &UserRow, audit: &[AuditEntry]) -> Result<()>;
    async fn count_active_admins(&self) -> Result<i64>;

    async fn insert_token(
        &self,
        hash: &[u8],
        user_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn user_for_token(&self, hash: &[u8], now: DateTime<Utc>) -> Result<Option<UserRow>>;
    async fn revoke_token(&self, hash: &[u8], audit: &[AuditEntry]) -> Result<()>;

    /// Make `hash` the only valid first-admin setup link.
    async fn replace_setup_token(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    async fn setup_token_valid(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool>;
    /// Use the setup link and create the first admin in one transaction; false if the link is
    /// no longer valid or an account already exists.
    async fn consume_setup_token(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        admin: &UserRow,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    /// Make `hash` the only valid setup link of the existing account `user_id` (a person sets
    /// their own password through it); an earlier unused link of theirs stops working.
    async fn replace_user_setup_token(
        &self,
        user_id: &str,
        hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// The active account whose unused, unexpired setup link `hash` is.
    async fn user_setup_token(&self, hash: &[u8], now: DateTime<Utc>) -> Result<Option<UserRow>>;
    /// Use an account's setup link: set its password hash and end its sessions and tokens, in
    /// one transaction; the account's id, or `None` if the link is spent, expired or unknown.
    async fn consume_user_setup_token(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        password_hash: &str,
        audit: &[AuditEntry],
    ) -> Result<Option<String>>;

    async fn insert_case(&self, case: &NewCase, audit: &[AuditEntry]) -> Result<()>;
    async fn case_by_id(&self, id: &str) -> Result<Option<CaseRow>>;
    /// A case with its assignments (primary first), in one statement.
    async fn case_with_assignments(
        &self,
        id: &str,
    ) -> Result<Option<(CaseRow, Vec<AssignmentRow>)>>;
    /// Cases with their assignments, in one statement: those of `ids` that exist, in id order.
    async fn cases_with_assignments(
        &self,
        ids: &[String],
    ) -> Result<Vec<(CaseRow, Vec<AssignmentRow>)>>;
    async fn list_cases(&self, q: &CaseQuery) -> Result<Vec<CaseRow>>;
    /// The page language `user_id` chose, if any.
    async fn account_language(&self, user_id: &str) -> Result<Option<String>>;
    async fn set_account_language(
        &self,
        user_id: &str,
        language: &str,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// Give `user_id` a calendar feed token (its hash), replacing any earlier one.
    async fn set_calendar_feed(
        &self,
        user_id: &str,
        token_hash: &[u8],
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// Revoke `user_id`'s calendar feed; false when there was none.
    async fn delete_calendar_feed(&self, user_id: &str, audit: &[AuditEntry]) -> Result<bool>;
    /// The account a calendar feed token belongs to, and when the feed was made.
    async fn calendar_feed(&self, token_hash: &[u8]) -> Result<Option<(String, DateTime<Utc>)>>;
    /// When `user_id`'s feed was made, if it has one.
    async fn calendar_feed_of(&self, user_id: &str) -> Result<Option<DateTime<Utc>>>;
    /// Cases of the scope by programme and status (from metadata; nothing decrypted).
    async fn count_cases(&self, scope: &CaseScope) -> Result<Vec<ProgramCount>>;
    /// A report's counts: months of follow-ups, messages, consents, findings and new cases,
    /// and the standing figures at `q.at`; no personal field is read.
    async fn report_rows(&self, q: &ReportQuery) -> Result<ReportRows>;
    /// The regions cases are in.
    async fn case_regions(&self) -> Result<Vec<String>>;
    /// The open cases of the scope with the kinds of consent each holds in force at `now`
    /// (not withdrawn, not a withdrawal, not expired): one row per case and kind, `kind` absent
    /// for a case with none; ordered by case id, only cases after `after`, at most `limit`
    /// cases. From metadata; nothing decrypted.
    async fn consent_coverage(
        &self,
        scope: &CaseScope,
        now: DateTime<Utc>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CoverageRow>>;
    async fn update_case(
        &self,
        row: &CaseRow,
        terms: Option<&SearchTerms>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn assignments(&self, case_id: &str) -> Result<Vec<AssignmentRow>>;
    /// Make `user_id` the case's primary coordinator, replacing the previous one.
    async fn set_primary(
        &self,
        case_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// Add a coordinator to the case's team (no change if already assigned).
    async fn add_to_team(
        &self,
        case_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn is_assigned(&self, case_id: &str, user_id: &str) -> Result<bool>;

    async fn insert_contact(
        &self,
        row: &ContactRow,
        terms: &SearchTerms,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn contact_by_id(&self, id: &str) -> Result<Option<ContactRow>>;
    async fn contacts_for_case(&self, case_id: &str) -> Result<Vec<ContactRow>>;
    async fn update_contact(
        &self,
        row: &ContactRow,
        terms: &SearchTerms,
        audit: &[AuditEntry],
    ) -> Result<()>;

    /// Reads of the case view kept in memory, where the backend can tell when they go stale
    /// (SQLite: the access generation of migration 0017). PostgreSQL has none.
    fn cached_reads(&self) -> Option<&dyn CachedReads> {
        None
    }

    /// Append entries to the audit chain in a transaction of their own.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    /// Append a batch of read and denial entries: the group commit of `audit::Recorder`.
    /// With `only_at`, nothing is written unless the access generation (`CachedReads`) is
    /// still that one, so a view served from cached reads is recorded only while they are
    /// current; otherwise the answer is `Appended::Stale`.
    async fn append_reads(&self, entries: &[AuditEntry], only_at: Option<i64>) -> Result<Appended>;
    /// Make the batches `append_reads` answered `Appended::Unsynced` durable. Blocking (an
    /// fsync): call it off the async runtime. Everything appended before the call is covered.
    fn sync_reads(&self) -> Result<()>;
    /// Entries after `after_seq` in chain order.
    async fn audit_page(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>>;
    /// The recorded head: last sequence number and hash.
    async fn audit_head(&self) -> Result<(i64, Vec<u8>)>;
    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>>;

    async fn insert_break_glass(&self, row: &BreakGlassRow, audit: &[AuditEntry]) -> Result<()>;
    /// Whether `user_id` holds an unexpired break-glass grant on the case.
    async fn has_break_glass(
        &self,
        case_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Grants newest first; `region` limits to cases of a region, `unreviewed` to grants no
    /// ethics reviewer has yet acknowledged or raised a concern about.
    async fn list_break_glass(
        &self,
        region: Option<&str>,
        case_id: Option<&str>,
        unreviewed: bool,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BreakGlassRow>>;
    async fn break_glass_by_id(&self, id: &str) -> Result<Option<BreakGlassRow>>;
    async fn insert_break_glass_review(
        &self,
        row: &BreakGlassReviewRow,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// The reviews of these grants, oldest first.
    async fn break_glass_reviews(&self, grant_ids: &[String]) -> Result<Vec<BreakGlassReviewRow>>;

    /// Store a (pending or confirmed) TOTP secret, or remove it with `None`.
    async fn set_totp(
        &self,
        user_id: &str,
        secret: Option<&[u8]>,
        enabled_at: Option<DateTime<Utc>>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// Accept TOTP time step `step` once: false if it (or a later one) was used already.
    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool>;
    /// Set a new password hash and revoke every other token and session of the account.
    async fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_token: &[u8],
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;

    async fn insert_invite(
        &self,
        hash: &[u8],
        invite: &InviteRow,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn invite(&self, hash: &[u8]) -> Result<Option<InviteRow>>;
    /// Use an invitation and create the family account in one transaction; false if the
    /// invitation is spent, expired, or its contact already has an account.
    async fn accept_invite(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
        user: &UserRow,
        audit: &[AuditEntry],
    ) -> Result<bool>;

    async fn insert_erasure_request(&self, row: &ErasureRow, audit: &[AuditEntry]) -> Result<()>;
    async fn erasure_request(&self, id: &str) -> Result<Option<ErasureRow>>;
    /// Erase a case again after a restore (the erasure ledger names it): its key and search
    /// terms go, it is marked erased, and its request, if restored as pending, approved. False
    /// if there is no such case or it is already erased.
    async fn erase_again(
        &self,
        case_id: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    async fn list_erasure_requests(
        &self,
        status: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ErasureRow>>;
    /// Decide a pending request. Approval destroys the case key and its blind-index terms and
    /// marks the case erased, all in one transaction; false if it was no longer pending.
    async fn decide_erasure(
        &self,
        id: &str,
        approve: bool,
        decided_by: &str,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;

    /// Staff accesses to a case, newest first, for the family's access log.
    async fn case_access_log(
        &self,
        case_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AccessRow>>;

    async fn insert_session(
        &self,
        id_hash: &[u8],
        s: &SessionRow,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>>;
    async fn touch_session(&self, id_hash: &[u8], now: DateTime<Utc>) -> Result<()>;
    async fn delete_session(&self, id_hash: &[u8], audit: &[AuditEntry]) -> Result<()>;

    /// A task and, for an outreach, its messages, in one transaction.
    async fn insert_task(
        &self,
        row: &TaskRow,
        outreach: &[OutreachRow],
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn task_by_id(&self, id: &str) -> Result<Option<TaskRow>>;
    /// Tasks in due order.
    async fn list_tasks(&self, q: &TaskQuery) -> Result<Vec<TaskRow>>;
    /// Mark a scheduled task done and cancel, in the same transaction, the messages it makes
    /// pointless; false (and nothing written) if it was not scheduled any more.
    async fn complete_task(
        &self,
        id: &str,
        details: &[u8],
        by: &str,
        now: DateTime<Utc>,
        cancel: &[CancelOutreach],
        audit: &[AuditEntry],
    ) -> Result<bool>;

    /// Insert a consent record; a withdrawal cancels, in the same transaction, the pending
    /// messages it no longer covers. Returns how many were cancelled.
    async fn insert_consent(
        &self,
        row: &ConsentRow,
        audit: &[AuditEntry],
        cancel: Option<&Cancel>,
    ) -> Result<u64>;
    async fn consent_by_id(&self, id: &str) -> Result<Option<ConsentRow>>;
    async fn list_consents(&self, q: &ConsentQuery) -> Result<Vec<ConsentRow>>;

    /// Make the open findings of a case exactly `found`: open new ones, update messages, close
    /// (as resolved) those no longer found. Returns what was opened and closed.
    async fn sync_findings(
        &self,
        case_id: &str,
        found: &[Found],
        now: DateTime<Utc>,
    ) -> Result<(usize, usize)>;
    async fn finding_by_id(&self, id: &str) -> Result<Option<FindingRow>>;
    /// Findings by id, filtered as the query says.
    async fn list_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRow>>;
    /// A reviewer's decision closes an open finding; false if it was not open.
    async fn close_finding(
        &self,
        id: &str,
        by: &str,
        decision: &str,
        note: Option<&[u8]>,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;

    /// The reviews of a consent record, oldest first.
    async fn reviews_of_consent(&self, consent_id: &str) -> Result<Vec<ReviewRow>>;
    /// A reviewer's review of a consent record.
    async fn insert_review(&self, review: &ReviewRow, audit: &[AuditEntry]) -> Result<()>;
    /// A revealed identity with its sealed reason.
    async fn insert_reveal(
        &self,
        id: &str,
        case_id: &str,
        user_id: &str,
        reason: &[u8],
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;

    /// Record an attachment; a consent that has one already is a conflict.
    async fn insert_attachment(&self, row: &AttachmentRow, audit: &[AuditEntry]) -> Result<()>;
    async fn attachment(&self, consent_id: &str) -> Result<Option<AttachmentRow>>;
    /// Ids of the consents of a case that have a signed form.
    async fn attached_consents(&self, case_id: &str) -> Result<Vec<String>>;

    async fn meta_get(&self, key: &str) -> Result<Option<String>>;
    async fn meta_set(&self, key: &str, value: &str) -> Result<()>;

    /// End every browser session and API token of an account (signing out on every device),
    /// in one transaction with its audit entry; how many ended.
    async fn end_sessions(&self, user_id: &str, audit: &[AuditEntry]) -> Result<u64>;
}

/// What `Store::append_reads` did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Committed and on disk.
    Durable,
    /// Committed, but on disk only after the next `Store::sync_reads`.
    Unsynced,
    /// Not written: the access generation is no longer the one asked for.
    Stale,
}

/// Open the store named by `url` (`sqlite://…` or `postgres://…`).
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        let s = SqliteStore::open(url)
            .await
            .with_context(|| format!("opening SQLite database {}", redact_url(url)))?;
        Ok(Arc::new(s))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let s = PgStore::open(url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
        Ok(Arc::new(s))
    } else {
        anyhow::bail!(
            "database URL must start with sqlite:// or postgres:// (got {})",
            redact_url(url)
        )
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
