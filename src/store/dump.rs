//! The store's records as a logical dump, the same on both backends: which tables a backup
//! holds, each column's kind, and the typed values that move between SQLite and PostgreSQL.
//! `backup.rs` frames them in the file; the backends read them in one consistent snapshot
//! ([`dump_impl`]) and write them back into an empty database in one transaction.
//!
//! Not in a backup: sign-in sessions and API tokens (everyone signs in again after a restore),
//! the audit head (rebuilt from the log), and bookkeeping of one database file
//! (`access_generation`, `bulk_dropped_indexes`, the migrations table).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// What a column holds. Times and dates are typed so that each backend stores them its own way
/// (SQLite's text, PostgreSQL's `timestamptz`), and flags are booleans on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
    Time,
    Date,
}

/// How an insert's parameters are written. PostgreSQL takes `$1, $2, …`. SQLite takes those
/// too, but sqlx looks up each numbered parameter's name, a walk along the statement's list of
/// names: quadratic in the parameters of a statement, three quarters of a restore's time at
/// 4 000 a statement. Anonymous `?` are bound in order with no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    Numbered,
    Anonymous,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The order rows are dumped and loaded in (a withdrawal after the consent it withdraws,
    /// the audit log by sequence).
    pub order_by: &'static str,
    /// A column that refers to a table loaded later: loaded empty, then set once every table
    /// is in (`users.contact_id` names a contact, whose case names its creator).
    pub deferred: Option<&'static str>,
}

impl Table {
    pub fn select_sql(&self) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        format!(
            "select {} from {} order by {}",
            cols.join(", "),
            self.name,
            self.order_by
        )
    }

    /// An insert of `rows` rows, its parameters written as the backend binds them fastest.
    pub fn insert_sql(&self, rows: usize, style: Placeholders) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        let n = cols.len();
        let mut sql = format!("insert into {} ({}) values ", self.name, cols.join(", "));
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..n {
                if c > 0 {
                    sql.push_str(", ");
                }
                match style {
                    Placeholders::Numbered => sql.push_str(&format!("${}", r * n + c + 1)),
                    Placeholders::Anonymous => sql.push('?'),
                }
            }
            sql.push(')');
        }
        sql
    }

    /// Rows per insert statement: within both backends' limits on parameters.
    pub fn rows_per_insert(&self) -> usize {
        (4000 / self.columns.len()).max(1)
    }

    pub fn index_of(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == column)
    }
}

macro_rules! table {
    ($name:literal order by $order:literal $(deferred $def:literal)? : $($col:ident $kind:ident),+ $(,)?) => {
        Table {
            name: $name,
            order_by: $order,
            deferred: table!(@def $($def)?),
            columns: &[$(Column { name: stringify!($col), kind: Kind::$kind }),+],
        }
    };
    (@def) => { None };
    (@def $d:literal) => { Some($d) };
}

/// Every table a backup holds, in the order they are loaded (a row's references before it).
pub static TABLES: &[Table] = &[
    table!("meta" order by "key": key Text, value Text),
    table!("keyring" order by "purpose, version":
        purpose Text, version Int, created_at Time, retired_at Time, sealed Bytes, recipients Text),
    table!("users" order by "id" deferred "contact_id":
        id Text, username Text, display_name Text, role Text, region Text, password_hash Text,
        disabled Bool, created_at Time, updated_at Time, totp_secret Bytes, totp_enabled_at Time,
        totp_last_step Int, contact_id Text, email Text),
    table!("account_settings" order by "user_id": user_id Text, language Text),
    table!("care_plans" order by "program, version":
        program Text, version Int, rules Text, updated_by Text, updated_at Time),
    table!("cases" order by "id":
        id Text, program Text, region Text, status Text, created_by Text, created_at Time,
        updated_at Time, donor Bytes, donation Bytes, notes Bytes),
    table!("case_keys" order by "case_id": case_id Text, key_version Int, wrapped Bytes),
    table!("case_assignments" order by "case_id, user_id":
        case_id Text, user_id Text, kind Text, assigned_at Time),
    table!("case_search" order by "case_id, source, term": term Bytes, case_id Text, source Text),
    table!("case_schedules" order by "case_id":
        case_id Text, mourning_days Bool, skip_festivals Text, plan_version Int, horizon Date,
        updated_at Time),
    table!("contacts" order by "id":
        id Text, case_id Text, relationship Text, language Text, timezone Text,
        preferred_channel Text, opted_out Bool, do_not_contact_until Date, details Bytes,
        created_at Time, updated_at Time),
    table!("consents" order by "withdraws is not null, id":
        id Text, case_id Text, kind Text, subject Text, given_by Text, method Text,
        document_id Text, document_sha256 Text, signed_at Time, expires_at Time, withdraws Text,
        sealed Bytes, created_by Text, created_at Time, content_hash Bytes),
    table!("consent_attachments" order by "consent_id":
        consent_id Text, case_id Text, media_type Text, size Int, sealed_sha256 Text,
        uploaded_by Text, uploaded_at Time),
    table!("consent_reviews" order by "id":
        id Text, consent_id Text, reviewer_id Text, finding Text, note Bytes, reviewed_at Time),
    table!("consent_uses" order by "id":
        id Text, case_id Text, kind Text, subject Text, planned_on Date, status Text, reason Text,
        sealed Bytes, created_by Text, created_at Time),
    table!("break_glass" order by "id":
        id Text, case_id Text, user_id Text, reason Bytes, granted_at Time, expires_at Time),
    table!("break_glass_reviews" order by "id":
        id Text, grant_id Text, reviewer_id Text, decision Text, note Bytes, reviewed_at Time),
    table!("adverse_events" order by "id":
        id Text, case_id Text, occurred_on Date, category Text, grade Int, relation Text,
        outcome Text, reported_on Date, description Bytes, created_by Text, created_at Time,
        updated_by Text, updated_at Time),
    table!("memorial_events" order by "id":
        id Text, region Text, kind Text, title Text, program Text, starts_at Time, place Text,
        details Text, reply_by Date, reminder_days Int, status Text, created_by Text,
        created_at Time, updated_by Text, updated_at Time),
    table!("correspondents" order by "id":
        id Text, case_id Text, label Text, role Text, reference Bytes, consented_on Date,
        consent_withdrawn_on Date, created_by Text, created_at Time, updated_at Time),
    table!("correspondence_letters" order by "id":
        id Text, case_id Text, correspondent_id Text, direction Text, author Text,
        addressee Text, received_on Date, original Bytes, redacted Bytes, status Text,
        withheld_reason Text, reviewed_by Text, reviewed_at Time, released_by Text,
        released_at Time, consent_id Text, created_by Text, created_at Time, updated_at Time),
    table!("reveals" order by "id":
        id Text, case_id Text, user_id Text, reason Bytes, revealed_at Time),
    table!("tasks" order by "id":
        id Text, case_id Text, kind Text, due_at Time, assignee_id Text, contact_id Text,
        template Text, status Text, details Bytes, created_by Text, created_at Time,
        updated_at Time, completed_at Time, completed_by Text, rule_id Text, occurrence Text,
        grace_until Time, cancel_reason Text),
    table!("outreach" order by "id":
        id Text, task_id Text, case_id Text, recipient Text, channel Text, template Text,
        status Text, reason Text, due_at Time, grace_until Time, next_attempt_at Time,
        attempts Int, lease_owner Text, lease_until Time, sent_at Time, created_at Time,
        updated_at Time),
    table!("portal_messages" order by "outreach_id":
        outreach_id Text, case_id Text, recipient Text, sealed Bytes, created_at Time),
    table!("memorial_invitations" order by "id":
        id Text, event_id Text, case_id Text, invitation_task_id Text, reminder_task_id Text,
        reply Text, party_size Int, needs Bytes, replied_at Time, replied_by Text,
        created_by Text, created_at Time),
    table!("memorial_names" order by "event_id, case_id":
        event_id Text, case_id Text, added_by Text, added_at Time),
    table!("findings" order by "id":
        id Text, case_id Text, rule Text, consent_key Text, message Text, status Text,
        opened_at Time, updated_at Time, closed_at Time, closed_by Text, decision Text,
        note Bytes),
    table!("erasure_requests" order by "id":
        id Text, case_id Text, requested_by Text, requested_at Time, status Text,
        decided_by Text, decided_at Time),
    table!("invites" order by "token_hash":
        token_hash Bytes, contact_id Text, created_by Text, created_at Time, expires_at Time,
        used_at Time),
    table!("setup_tokens" order by "token_hash":
        token_hash Bytes, created_at Time, expires_at Time, used_at Time, user_id Text),
    table!("calendar_feeds" order by "user_id": user_id Text, token_hash Bytes, created_at Time),
    table!("digests" order by "user_id, day": user_id Text, day Date, sent_at Time),
    table!("audit_log" order by "seq":
        seq Int, id Text, at Time, actor_id Text, actor_role Text, action Text,
        target_type Text, target_id Text, case_id Text, outcome Text, break_glass Bool,
        reason Text, content_hash Bytes, prev_hash Bytes, hash Bytes),
];

/// Tables of a database that a backup leaves out on purpose (see the module's comment).
pub const NOT_BACKED_UP: &[&str] = &[
    "sessions",
    "api_tokens",
    "audit_head",
    "access_generation",
    "bulk_dropped_indexes",
    "_sqlx_migrations",
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
    Time(DateTime<Utc>),
    Date(NaiveDate),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Append the value as JSON: bytes in base64, times in RFC 3339 (UTC, as precise as
    /// stored), dates as `YYYY-MM-DD`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use base64::Engine;
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Text(s) => write_json_string(out, s),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Bytes(b) => {
                out.push(b'"');
                let mut s = String::new();
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut s);
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            }
            Value::Time(t) => {
                out.push(b'"');
                out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
                out.push(b'"');
            }
            Value::Date(d) => {
                out.push(b'"');
                out.extend_from_slice(d.format("%Y-%m-%d").to_string().as_bytes());
                out.push(b'"');
            }
        }
    }

    /// Read a value of `kind` back from JSON; the reason it is not one, if not.
    pub fn from_json(kind: Kind, v: &serde_json::Value) -> Result<Value, String> {
        use base64::Engine;
        use serde_json::Value as J;
        Ok(match (kind, v) {
            (_, J::Null) => Value::Null,
            (Kind::Text, J::String(s)) => Value::Text(s.clone()),
            (Kind::Int, J::Number(n)) => Value::Int(
                n.as_i64()
                    .ok_or_else(|| format!("{n} is not a whole number"))?,
            ),
            (Kind::Bool, J::Bool(b)) => Value::Bool(*b),
            (Kind::Bytes, J::String(s)) => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| "is not base64".to_string())?,
            ),
            (Kind::Time, J::String(s)) => Value::Time(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|_| format!("{s:?} is not an RFC 3339 time"))?
                    .with_timezone(&Utc),
            ),
            (Kind::Date, J::String(s)) => Value::Date(
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| format!("{s:?} is not a date"))?,
            ),
            (k, other) => return Err(format!("expected {k:?}, found {other}")),
        })
    }
}

/// A JSON string with the escapes JSON requires.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, into the buffer.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// What the backends send and take: a table begins, a row of it (values in the table's
/// column order), the table ends; `Done` closes a complete load (a channel closed without it
/// means the backup ended early, and the load is rolled back).
#[derive(Debug)]
pub enum Item {
    Table(&'static Table),
    Row(Vec<Value>),
    EndTable,
    Done,
}

/// What a load wrote.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub rows: u64,
    pub audit_seq: i64,
    pub audit_head: Vec<u8>,
}

/// A backend's snapshot read and all-or-nothing load over the catalogue, for a store type
/// with a `pool` on database `$db`. `$snapshot` begins a read transaction that sees one
/// consistent state for its whole length.
macro_rules! dump_impl {
    ($store:ty, $db:ty, $snapshot:literal, $write:literal, $rebuilt:expr, $style:expr) => {
        impl $store {
            /// No keyring, account, case or audit entry; `tables` counts which of those four
            /// tables exist (none before the first migration).
            pub(super) async fn holds_nothing(&self, tables: &str) -> crate::error::Result<bool> {
                let (present,): (i64,) = sqlx::query_as(tables).fetch_one(&self.pool).await?;
                if present < 4 {
                    return Ok(true);
                }
                let (rows,): (i64,) = sqlx::query_as(
                    "select (select count(*) from keyring) + (select count(*) from users) \
                     + (select count(*) from cases) + (select count(*) from audit_log)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(rows == 0)
            }

            /// Send every catalogued table, row by row, from one snapshot; the receiver's
            /// capacity bounds the memory.
            pub(super) async fn dump_snapshot(
                &self,
                out: &tokio::sync::mpsc::Sender<super::dump::Item>,
            ) -> crate::error::Result<()> {
                use super::dump::{Item, Kind, Value, TABLES};
                use futures_util::TryStreamExt;
                use sqlx::Row;
                let stopped = || anyhow::anyhow!("the backup's writer stopped");
                let mut tx = self.pool.begin_with($snapshot).await?;
                for t in TABLES {
                    out.send(Item::Table(t)).await.map_err(|_| stopped())?;
                    let sql = t.select_sql();
                    let mut rows = sqlx::query(&sql).fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await? {
                        let mut values = Vec::with_capacity(t.columns.len());
                        for (i, c) in t.columns.iter().enumerate() {
                            let v = match c.kind {
                                Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
                                Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                                Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
                                Kind::Bytes => {
                                    row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes)
                                }
                                Kind::Time => row
                                    .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)?
                                    .map(Value::Time),
                                Kind::Date => row
                                    .try_get::<Option<chrono::NaiveDate>, _>(i)?
                                    .map(Value::Date),
                            };
                            values.push(v.unwrap_or(Value::Null));
                        }
                        out.send(Item::Row(values)).await.map_err(|_| stopped())?;
                    }
                    drop(rows);
                    out.send(Item::EndTable).await.map_err(|_| stopped())?;
                }
                tx.rollback().await?;
                out.send(Item::Done).await.map_err(|_| stopped())?;
                Ok(())
            }

            /// Write the items into this (empty, migrated) database in one transaction: all of
            /// them, or nothing if the stream ends before `Done` or a row is refused.
            pub(super) async fn load_items(
                &self,
                items: &mut tokio::sync::mpsc::Receiver<super::dump::Item>,
            ) -> crate::error::Result<super::dump::Loaded> {
                use super::dump::{Item, Kind, Loaded, Table, Value};
                type Query<'q> =
                    sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

                fn bind<'q>(q: Query<'q>, kind: Kind, v: &'q Value) -> Query<'q> {
                    match (v, kind) {
                        (Value::Null, Kind::Text) => q.bind(None::<String>),
                        (Value::Null, Kind::Int) => q.bind(None::<i64>),
                        (Value::Null, Kind::Bool) => q.bind(None::<bool>),
                        (Value::Null, Kind::Bytes) => q.bind(None::<Vec<u8>>),
                        (Value::Null, Kind::Time) => q.bind(None::<chrono::DateTime<chrono::Utc>>),
                        (Value::Null, Kind::Date) => q.bind(None::<chrono::NaiveDate>),
                        (Value::Text(s), _) => q.bind(s.as_str()),
                        (Value::Int(i), _) => q.bind(*i),
                        (Value::Bool(b), _) => q.bind(*b),
                        (Value::Bytes(b), _) => q.bind(b.as_slice()),
                        (Value::Time(t), _) => q.bind(*t),
                        (Value::Date(d), _) => q.bind(*d),
                    }
                }

                async fn flush(
                    tx: &mut sqlx::Transaction<'_, $db>,
                    t: &Table,
                    rows: &mut Vec<Vec<Value>>,
                ) -> crate::error::Result<()> {
                    if rows.is_empty() {
                        return Ok(());
                    }
                    let deferred = t.deferred.and_then(|d| t.index_of(d));
                    let sql = t.insert_sql(rows.len(), $style);
                    let mut q = sqlx::query(&sql);
                    for row in rows.iter() {
                        for (i, (c, v)) in t.columns.iter().zip(row).enumerate() {
                            q = if Some(i) == deferred {
                                bind(q, c.kind, &Value::Null)
                            } else {
                                bind(q, c.kind, v)
                            };
                        }
                    }
                    q.execute(&mut **tx).await?;
                    rows.clear();
                    Ok(())
                }

                let mut tx = self.pool.begin_with($write).await?;
                // Indexes (and bookkeeping triggers) the backend builds again after the rows
                // are in, sorted, rather than keeping them up to date row by row.
                let rebuilt: Vec<(String, String, String)> = match $rebuilt {
                    Some(query) => sqlx::query_as(query).fetch_all(&mut *tx).await?,
                    None => Vec::new(),
                };
                for (kind, name, _) in &rebuilt {
                    sqlx::query(&format!("drop {kind} {name}"))
                        .execute(&mut *tx)
                        .await?;
                }
                let mut loaded = Loaded::default();
                let mut table: Option<&'static Table> = None;
                let mut batch: Vec<Vec<Value>> = Vec::new();
                // (table, primary key, value) of deferred columns, set at the end.
                let mut later: Vec<(&'static Table, Value, Value)> = Vec::new();
                loop {
                    match items.recv().await {
                        Some(Item::Table(t)) => {
                            table = Some(t);
                        }
                        Some(Item::Row(values)) => {
                            let Some(t) = table else {
                                return Err(anyhow::anyhow!("a row outside any table").into());
                            };
                            if values.len() != t.columns.len() {
                                return Err(anyhow::anyhow!(
                                    "a row of {} has {} values",
                                    t.name,
                                    values.len()
                                )
                                .into());
                            }
                            if t.name == "audit_log" {
                                loaded.audit_seq = values[0].as_int().unwrap_or_default();
                                loaded.audit_head =
                                    values[14].as_bytes().unwrap_or_default().to_vec();
                            }
                            if let Some(d) = t.deferred.and_then(|d| t.index_of(d)) {
                                if values[d] != Value::Null {
                                    later.push((t, values[0].clone(), values[d].clone()));
                                }
                            }
                            loaded.rows += 1;
                            batch.push(values);
                            if batch.len() >= t.rows_per_insert() {
                                flush(&mut tx, t, &mut batch).await?;
                            }
                        }
                        Some(Item::EndTable) => {
                            if let Some(t) = table.take() {
                                flush(&mut tx, t, &mut batch).await?;
                            }
                        }
                        Some(Item::Done) => break,
                        None => {
                            return Err(
                                anyhow::anyhow!("the backup ended before its last record").into()
                            )
                        }
                    }
                }
                for (t, key, value) in &later {
                    let (Some(col), Some(pk)) = (t.deferred, t.columns.first()) else {
                        continue;
                    };
                    let sql = format!("update {} set {col} = $1 where {} = $2", t.name, pk.name);
                    let kind = t.columns[t.index_of(col).unwrap_or_default()].kind;
                    let q = bind(sqlx::query(&sql), kind, value);
                    bind(q, pk.kind, key).execute(&mut *tx).await?;
                }
                for (_, _, sql) in &rebuilt {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
                sqlx::query("update audit_head set seq = $1, hash = $2 where id = 1")
                    .bind(loaded.audit_seq)
                    .bind(if loaded.audit_seq == 0 {
                        vec![0u8; 32]
                    } else {
                        loaded.audit_head.clone()
                    })
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(loaded)
            }
        }
    };
}
pub(crate) use dump_impl;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_as_they_went() {
        let t = Utc::now();
        let cases = [
            (Kind::Text, Value::Text("林\"小满\n".into())),
            (Kind::Int, Value::Int(-42)),
            (Kind::Bool, Value::Bool(true)),
            (Kind::Bytes, Value::Bytes(vec![0, 1, 2, 255])),
            (Kind::Time, Value::Time(t)),
            (
                Kind::Date,
                Value::Date(NaiveDate::from_ymd_opt(2026, 4, 5).unwrap()),
            ),
            (Kind::Bytes, Value::Null),
        ];
        for (kind, v) in cases {
            let mut out = Vec::new();
            v.write_json(&mut out);
            let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(Value::from_json(kind, &j).unwrap(), v, "{kind:?}");
        }
        assert!(Value::from_json(Kind::Int, &serde_json::json!("7")).is_err());
        assert!(Value::from_json(Kind::Time, &serde_json::json!("yesterday")).is_err());
    }

    #[test]
    fn the_catalogue_names_each_table_once_and_keys_first() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        for t in TABLES {
            assert!(!NOT_BACKED_UP.contains(&t.name));
            if let Some(d) = t.deferred {
                assert!(t.index_of(d).is_some_and(|i| i > 0), "{}", t.name);
            }
            assert!(t.rows_per_insert() * t.columns.len() <= 4000);
        }
        let audit = table("audit_log").unwrap();
        assert_eq!(audit.index_of("seq"), Some(0));
        assert_eq!(audit.index_of("hash"), Some(14));
        assert_eq!(
            table("meta").unwrap().insert_sql(2, Placeholders::Numbered),
            "insert into meta (key, value) values ($1, $2), ($3, $4)"
        );
        assert_eq!(
            table("meta")
                .unwrap()
                .insert_sql(2, Placeholders::Anonymous),
            "insert into meta (key, value) values (?, ?), (?, ?)"
        );
    }
}
