//! The tamper-evident audit log.
//!
//! Every write, every view of personal data, every denial and every break-glass becomes an
//! entry. Entries form a SHA-256 hash chain: each hash covers the previous hash and the entry's
//! canonical encoding (ids, codes and ciphertext hashes, never plaintext), so erasing a case
//! leaves the chain verifiable. Writes append their entry in the same transaction as the change;
//! reads and denials go through the [`Recorder`], which group-commits them and answers each
//! request only once its entry is durable. Signed checkpoints of the head are written outside
//! the database, so a rewritten or truncated log fails against the last checkpoint.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::policy::Actor;
use crate::store::{Appended, AuditRow, Store};

/// Hash that precedes the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
        }
    }
}

/// An entry about to be appended (its sequence number and hashes come from the store).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub case_id: Option<String>,
    pub outcome: Outcome,
    pub break_glass: bool,
    /// A system reason code (`not_in_scope`, `role`, `throttled`…); never free text.
    pub reason: Option<String>,
    /// SHA-256 of the content a record carries (consents), so an edited row fails verification.
    pub content_hash: Option<Vec<u8>>,
}

impl AuditEntry {
    pub fn new(actor: Option<&Actor>, action: &str, target_type: &str, now: DateTime<Utc>) -> Self {
        AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            // PostgreSQL keeps microseconds: hash what can be stored.
            at: now.trunc_subsecs(6),
            actor_id: actor.map(|a| a.user_id.clone()),
            actor_role: actor.map(|a| a.role.as_str().to_string()),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id: None,
            case_id: None,
            outcome: Outcome::Allowed,
            break_glass: false,
            reason: None,
            content_hash: None,
        }
    }

    pub fn target(mut self, id: &str) -> Self {
        self.target_id = Some(id.to_string());
        self
    }

    pub fn case(mut self, id: &str) -> Self {
        self.case_id = Some(id.to_string());
        self
    }

    pub fn denied(mut self, reason: &str) -> Self {
        self.outcome = Outcome::Denied;
        self.reason = Some(reason.to_string());
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn break_glass(mut self, on: bool) -> Self {
        self.break_glass = on;
        self
    }

    pub fn content_hash(mut self, hash: Vec<u8>) -> Self {
        self.content_hash = Some(hash);
        self
    }
}

fn put(h: &mut Sha256, field: Option<&[u8]>) {
    match field {
        None => h.update(u32::MAX.to_be_bytes()),
        Some(b) => {
            h.update((b.len() as u32).to_be_bytes());
            h.update(b);
        }
    }
}

/// The chain hash of entry `seq` after `prev`: SHA-256 over the previous hash and each field,
/// length-prefixed in a fixed order.
pub fn chain_hash(prev: &[u8], seq: i64, e: &AuditEntry) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"donorcare-audit-v1");
    put(&mut h, Some(prev));
    put(&mut h, Some(&seq.to_be_bytes()));
    put(&mut h, Some(e.id.as_bytes()));
    put(&mut h, Some(&e.at.timestamp_micros().to_be_bytes()));
    put(&mut h, e.actor_id.as_deref().map(str::as_bytes));
    put(&mut h, e.actor_role.as_deref().map(str::as_bytes));
    put(&mut h, Some(e.action.as_bytes()));
    put(&mut h, Some(e.target_type.as_bytes()));
    put(&mut h, e.target_id.as_deref().map(str::as_bytes));
    put(&mut h, e.case_id.as_deref().map(str::as_bytes));
    put(&mut h, Some(e.outcome.as_str().as_bytes()));
    put(&mut h, Some(&[u8::from(e.break_glass)]));
    put(&mut h, e.reason.as_deref().map(str::as_bytes));
    put(&mut h, e.content_hash.as_deref());
    h.finalize().to_vec()
}

impl AuditRow {
    pub fn entry(&self) -> Result<AuditEntry> {
        Ok(AuditEntry {
            id: self.id.clone(),
            at: self.at,
            actor_id: self.actor_id.clone(),
            actor_role: self.actor_role.clone(),
            action: self.action.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            case_id: self.case_id.clone(),
            outcome: match self.outcome.as_str() {
                "allowed" => Outcome::Allowed,
                "denied" => Outcome::Denied,
                other => {
                    return Err(Error::Internal(anyhow::anyhow!(
                        "audit entry {} has outcome {other:?}",
                        self.seq
                    )))
                }
            },
            break_glass: self.break_glass,
            reason: self.reason.clone(),
            content_hash: self.content_hash.clone(),
        })
    }
}

/// SHA-256 of a consent record's stored content (sealed bytes included), entered in the audit
/// chain when the record is made, so an edited row no longer matches.
pub fn consent_hash(r: &crate::store::ConsentRow) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"donorcare-consent-v1");
    for f in [
        Some(r.id.as_bytes()),
        Some(r.case_id.as_bytes()),
        Some(r.kind.as_bytes()),
        Some(r.subject.as_bytes()),
        Some(r.given_by.as_bytes()),
        Some(r.method.as_bytes()),
        Some(r.document_id.as_bytes()),
        Some(r.document_sha256.as_bytes()),
        r.withdraws.as_deref().map(str::as_bytes),
        Some(r.sealed.as_slice()),
        Some(r.created_by.as_bytes()),
    ] {
        put(&mut h, f);
    }
    put(&mut h, Some(&r.signed_at.timestamp_micros().to_be_bytes()));
    put(
        &mut h,
        r.expires_at
            .map(|t| t.timestamp_micros().to_be_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    put(&mut h, Some(&r.created_at.timestamp_micros().to_be_bytes()));
    h.finalize().to_vec()
}

/// Answers a request of the recorder: `true` once its entries are durable, `false` when they
/// were recorded against an access generation that has moved on (and so not written).
type Waiter = oneshot::Sender<Result<bool>>;

struct Request {
    entries: Vec<AuditEntry>,
    only_at: Option<i64>,
    done: Waiter,
}

/// Requests taken into one batch at most.
const MAX_BATCH: usize = 512;

/// Group commit of read and denial entries: requests queue their entries, one statement
/// appends everything queued, and each request continues only after that commit is on disk.
/// Where the store leaves the fsync to the caller (SQLite: `Store::sync_reads`), a thread of
/// its own syncs while the next batch is written, and releases the requests it covers.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Request>,
}

impl Recorder {
    /// Start the committing thread and the sync thread (called within a Tokio runtime).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Request>(4096);
        let syncer = Syncer::start(store.clone());
        let work = async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                commit(store.as_ref(), batch, &syncer).await;
            }
        };
        // Every view waits for this loop, so it runs on a thread of its own rather than
        // queued behind the requests on the server's workers (benches/http.rs).
        run_on_own_thread("audit-recorder", work);
        Recorder { tx }
    }

    /// Append entries and wait until they are committed.
    pub async fn record(&self, entries: Vec<AuditEntry>) -> Result<()> {
        self.submit(entries, None).await.map(|_| ())
    }

    /// Append entries that record reads made at access generation `generation`
    /// (`store::CachedReads`), and wait until they are committed: `false`, with nothing
    /// written, when the generation has moved since, so what was read may be out of date.
    pub async fn record_at(&self, entries: Vec<AuditEntry>, generation: i64) -> Result<bool> {
        self.submit(entries, Some(generation)).await
    }

    async fn submit(&self, entries: Vec<AuditEntry>, only_at: Option<i64>) -> Result<bool> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request {
                entries,
                only_at,
                done,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the audit recorder has stopped"))?;
        wait.await
            .map_err(|_| anyhow::anyhow!("the audit recorder dropped a batch"))?
    }
}

/// Run `work` on a thread of its own with a single-threaded runtime; where that thread cannot
/// start, as a task of the current runtime.
fn run_on_own_thread<F>(name: &str, work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (hand, take) = std::sync::mpsc::channel::<F>();
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    if let Ok(work) = take.recv() {
                        runtime.block_on(work);
                    }
                })
        });
    let work = match started {
        Ok(_) => match hand.send(work) {
            Ok(()) => return,
            Err(std::sync::mpsc::SendError(work)) => work,
        },
        Err(e) => {
            tracing::error!(error = %e, thread = name, "cannot start a thread; running as a task");
            work
        }
    };
    tokio::spawn(work);
}

/// Write one batch. Requests made at an older generation than the newest in the batch are
/// stale at once (generations only grow); the rest are written in one statement checked
/// against that newest generation, and if it has moved, the unchecked ones are written alone.
async fn commit(store: &dyn Store, batch: Vec<Request>, syncer: &Syncer) {
    let newest = batch.iter().filter_map(|r| r.only_at).max();
    let mut current = Vec::with_capacity(batch.len());
    let mut unchecked = Vec::new();
    for r in batch {
        match r.only_at {
            None => unchecked.push(r),
            Some(g) if Some(g) == newest => current.push(r),
            Some(_) => {
                let _ = r.done.send(Ok(false));
            }
        }
    }
    // The entries leave their requests (no copy): the checked ones first, the others after.
    let mut entries = Vec::new();
    for r in current.iter_mut() {
        entries.append(&mut r.entries);
    }
    let checked = entries.len();
    for r in unchecked.iter_mut() {
        entries.append(&mut r.entries);
    }
    if let Some(generation) = newest {
        match store.append_reads(&entries, Some(generation)).await {
            Ok(Appended::Stale) => {
                for r in current {
                    let _ = r.done.send(Ok(false));
                }
                entries.drain(..checked);
            }
            result => {
                current.extend(unchecked);
                settle(result, current, syncer);
                return;
            }
        }
    }
    if !unchecked.is_empty() {
        let result = store.append_reads(&entries, None).await;
        settle(result, unchecked, syncer);
    }
}

/// Answer the requests of a written batch, or hand them to the sync thread.
fn settle(result: Result<Appended>, requests: Vec<Request>, syncer: &Syncer) {
    let waiters = requests.into_iter().map(|r| r.done);
    match result {
        Ok(Appended::Durable) => waiters.for_each(|w| {
            let _ = w.send(Ok(true));
        }),
        Ok(Appended::Unsynced) => syncer.after_sync(waiters.collect()),
        Ok(Appended::Stale) => waiters.for_each(|w| {
            let _ = w.send(Ok(false));
        }),
        Err(e) => {
            tracing::error!(error = %e, "audit append failed");
            waiters.for_each(|w| {
                let _ = w.send(Err(Error::Internal(anyhow::anyhow!("audit append: {e}"))));
            });
        }
    }
}

/// The thread that makes unsynced batches durable: it takes every waiting request, syncs once
/// for all of them, and answers them.
struct Syncer {
    tx: std::sync::mpsc::Sender<Vec<Waiter>>,
}

impl Syncer {
    fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Waiter>>();
        let spawned = std::thread::Builder::new()
            .name("audit-sync".into())
            .spawn(move || {
                while let Ok(mut waiters) = rx.recv() {
                    while let Ok(more) = rx.try_recv() {
                        waiters.extend(more);
                    }
                    let synced = store.sync_reads();
                    if let Err(e) = &synced {
                        tracing::error!(error = %e, "audit sync failed");
                    }
                    for w in waiters {
                        let _ = w.send(match &synced {
                            Ok(()) => Ok(true),
                            Err(e) => Err(Error::Internal(anyhow::anyhow!("audit sync: {e}"))),
                        });
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the audit sync thread");
        }
        Syncer { tx }
    }

    /// Answer `waiters` after the next sync; if the thread is gone, answer them with an error.
    fn after_sync(&self, waiters: Vec<Waiter>) {
        if let Err(std::sync::mpsc::SendError(waiters)) = self.tx.send(waiters) {
            for w in waiters {
                let _ = w.send(Err(Error::Internal(anyhow::anyhow!(
                    "the audit sync thread has stopped"
                ))));
            }
        }
    }
}

/// The result of `audit verify`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub entries: i64,
    /// Hex of the head hash.
    pub head: String,
    /// The first entry (sequence number) that does not match, with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// How many signed checkpoints were checked.
    pub checkpoints: usize,
}

/// Recompute the whole chain; name the first entry that does not match. With `checkpoints`,
/// every signed checkpoint must lie on the chain and the chain must reach the last one.
pub async fn verify(store: &dyn Store, checkpoints: Option<&Checkpoints>) -> Result<Verification> {
    let mut prev = GENESIS.to_vec();
    let mut expected_seq = 1i64;
    let mut hashes_at: std::collections::HashMap<i64, Vec<u8>> = Default::default();
    // A checkpoint file that cannot be read or whose signatures fail is a failed verification,
    // reported after the chain itself has been checked, not an error of the command.
    let (wanted, untrusted): (Vec<Checkpoint>, Option<String>) = match checkpoints {
        Some(c) => match c.read().and_then(|mut all| {
            all.extend(c.read_latest()?);
            Ok(all)
        }) {
            Ok(all) => (all, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        None => (Vec::new(), None),
    };
    let want_seqs: std::collections::HashSet<i64> = wanted.iter().map(|c| c.seq).collect();
    // Consent id -> (entry, content hash) as recorded when the consent was made.
    let mut consents: std::collections::HashMap<String, (i64, Vec<u8>)> = Default::default();
    let bad = |seq: i64, why: String, prev: &[u8], n: i64, cps: usize| Verification {
        ok: false,
        entries: n,
        head: hex::encode(prev),
        first_bad: Some(seq),
        problem: Some(why),
        checkpoints: cps,
    };
    // Pages of 5 000; where one cannot be read (a value edited into another type), entry by
    // entry from there, so that the first unreadable entry is the one named.
    let mut page_size = 5000;
    loop {
        let page = match readable(store.audit_page(expected_seq - 1, page_size).await)? {
            Ok(page) => page,
            Err(_) if page_size > 1 => {
                page_size = 1;
                continue;
            }
            Err(what) => {
                let after = expected_seq - 1;
                let why = format!(
                    "the entry after {after} cannot be read ({what}): a stored value was changed"
                );
                return Ok(bad(expected_seq, why, &prev, after, 0));
            }
        };
        if page.is_empty() {
            break;
        }
        for row in page {
            if row.seq != expected_seq {
                return Ok(bad(
                    expected_seq,
                    format!("entry {expected_seq} is missing (next is {})", row.seq),
                    &prev,
                    expected_seq - 1,
                    0,
                ));
            }
            if row.prev_hash != prev {
                return Ok(bad(
                    row.seq,
                    "its previous-hash link is broken".into(),
                    &prev,
                    row.seq - 1,
                    0,
                ));
            }
            let entry = row.entry()?;
            let h = chain_hash(&prev, row.seq, &entry);
            if h != row.hash {
                return Ok(bad(
                    row.seq,
                    "its content does not match its hash".into(),
                    &prev,
                    row.seq - 1,
                    0,
                ));
            }
            if want_seqs.contains(&row.seq) {
                hashes_at.insert(row.seq, h.clone());
            }
            if row.target_type == "consent" && row.content_hash.is_some() {
                if let Some(id) = &row.target_id {
                    consents.insert(
                        id.clone(),
                        (row.seq, row.content_hash.clone().unwrap_or_default()),
                    );
                }
            }
            prev = h;
            expected_seq += 1;
        }
    }
    let count = expected_seq - 1;
    let (head_seq, head_hash) = match readable(store.audit_head().await)? {
        Ok(head) => head,
        Err(what) => {
            let why = format!("the recorded head is missing or cannot be read ({what})");
            return Ok(bad(count + 1, why, &prev, count, 0));
        }
    };
    if head_seq != count || head_hash != prev {
        return Ok(bad(
            count + 1,
            format!("the recorded head (entry {head_seq}) does not match the log (entry {count}); entries were removed or added"),
            &prev,
            count,
            0,
        ));
    }
    if let Some(why) = untrusted {
        return Ok(Verification {
            ok: false,
            entries: count,
            head: hex::encode(&prev),
            first_bad: None,
            problem: Some(format!("the signed checkpoints cannot be trusted: {why}")),
            checkpoints: 0,
        });
    }
    for cp in &wanted {
        match hashes_at.get(&cp.seq) {
            None => {
                return Ok(bad(
                    count.min(cp.seq),
                    format!("signed checkpoint at entry {} is beyond the log's end ({count}): the log was cut", cp.seq),
                    &prev,
                    count,
                    wanted.len(),
                ))
            }
            Some(h) if hex::encode(h) != cp.hash => {
                return Ok(bad(
                    cp.seq,
                    "differs from the signed checkpoint: the log was rewritten".into(),
                    &prev,
                    count,
                    wanted.len(),
                ))
            }
            Some(_) => {}
        }
    }
    // Every consent row must match the hash its audit entry recorded; none may be missing.
    let mut after: Option<String> = None;
    loop {
        let listed = store
            .list_consents(&crate::store::ConsentQuery {
                scope: crate::store::ConsentScope::All,
                case_id: None,
                kind: None,
                after: after.clone(),
                limit: 5000,
            })
            .await;
        let page = match readable(listed)? {
            Ok(page) => page,
            Err(what) => {
                let why =
                    format!("a consent row cannot be read ({what}): a stored value was changed");
                return Ok(bad(count + 1, why, &prev, count, wanted.len()));
            }
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for r in &page {
            match consents.remove(&r.id) {
                None => {
                    return Ok(bad(
                        count + 1,
                        format!("consent {} has no audit entry: it was inserted outside the service", r.id),
                        &prev,
                        count,
                        wanted.len(),
                    ))
                }
                Some((seq, h)) if h != consent_hash(r) => {
                    return Ok(bad(
                        seq,
                        format!("consent {} no longer matches the hash recorded in entry {seq}: it was edited", r.id),
                        &prev,
                        count,
                        wanted.len(),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    if let Some((id, (seq, _))) = consents.into_iter().min_by_key(|(_, (s, _))| *s) {
        return Ok(bad(
            seq,
            format!("consent {id}, recorded in entry {seq}, is missing: it was deleted"),
            &prev,
            count,
            wanted.len(),
        ));
    }
    Ok(Verification {
        ok: true,
        entries: count,
        head: hex::encode(&prev),
        first_bad: None,
        problem: None,
        checkpoints: wanted.len(),
    })
}

/// A read for `verify`, with the errors that say a stored row could not be read as the types
/// the service writes (a value edited in the database, or a row that is gone) turned into
/// `Ok(Err(what))`, naming the column, never the value. Other errors, such as a database that
/// cannot be reached, stay errors.
fn readable<T>(read: Result<T>) -> Result<std::result::Result<T, String>> {
    let e = match read {
        Ok(v) => return Ok(Ok(v)),
        Err(e) => e,
    };
    let what = match &e {
        Error::Internal(a) => match a.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::ColumnDecode { index, .. }) => format!("column {index}"),
            Some(sqlx::Error::Decode(_)) => "a value of another type".into(),
            Some(sqlx::Error::RowNotFound) => "no row".into(),
            _ => return Err(e),
        },
        _ => return Err(e),
    };
    Ok(Err(what))
}

/// A listing of audit entries (the audit log, a family's access log) whose page holds a row
/// that cannot be read as the types the service writes: the row was changed outside donorcare.
/// That is a conflict with the stored state, answered with `message` (409, naming no stored
/// value) and logged for the office, rather than an internal error.
pub(crate) fn listed<T>(read: Result<T>, listing: &str, message: &str) -> Result<T> {
    match readable(read)? {
        Ok(v) => Ok(v),
        Err(what) => {
            tracing::error!(
                listing,
                unreadable = %what,
                "an audit entry cannot be read: it was changed outside donorcare; run `donorcare audit verify`"
            );
            Err(Error::Conflict {
                field: None,
                message: format!("{message} ({what})"),
            })
        }
    }
}

/// One signed checkpoint: a line of JSON in the checkpoint file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// Hex Ed25519 signature over `donorcare-checkpoint-v1:<seq>:<hash>:<at>`.
    pub signature: String,
}

fn checkpoint_message(seq: i64, hash: &str, at: &DateTime<Utc>) -> Vec<u8> {
    format!("donorcare-checkpoint-v1:{seq}:{hash}:{}", at.to_rfc3339()).into_bytes()
}

/// Bytes read from the end of the checkpoint file to find the newest checkpoint.
const LAST_LINE_MAX: u64 = 4096;

/// Write `cp` as one line to `file` (created, with its folder, where missing), appended to it or
/// replacing what it held, and sync it. The line is one `write`: the server and a command may
/// append at the same time, and appends of one write each do not interleave.
fn write_line(file: &std::path::Path, cp: &Checkpoint, append: bool) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut line = serde_json::to_string(cp).map_err(anyhow::Error::from)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(file)
        .map_err(io)?;
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// The checkpoint file and the key that signs it. The signing key is derived from the server's
/// identity, so it lives wherever the identity does, never in the database.
pub struct Checkpoints {
    pub path: PathBuf,
    key: SigningKey,
}

impl Checkpoints {
    pub fn new(path: PathBuf, seed: [u8; 32]) -> Self {
        Checkpoints {
            path,
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Sign the current head and append it to the file (skipped when nothing changed).
    pub async fn write(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<Option<Checkpoint>> {
        let (seq, hash) = store.audit_head().await?;
        self.append(seq, &hash, now)
    }

    /// Sign the head (`seq`, `hash`) and append it to the file, unless it is the last there.
    fn append(&self, seq: i64, hash: &[u8], now: DateTime<Utc>) -> Result<Option<Checkpoint>> {
        if seq == 0 || self.last()?.is_some_and(|c| c.seq == seq) {
            return Ok(None);
        }
        let cp = self.sign(seq, hex::encode(hash), now);
        write_line(&self.path, &cp, true)?;
        Ok(Some(cp))
    }

    /// The server's tick: the head is read once and signed into the latest file and, with
    /// `history`, appended to the checkpoint file; the appended checkpoint, if any. Both are
    /// attempted even if one fails; the first failure is returned.
    pub async fn sign_head(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
        history: bool,
    ) -> Result<Option<Checkpoint>> {
        let (seq, hash) = store.audit_head().await?;
        let appended = if history {
            self.append(seq, &hash, now)
        } else {
            Ok(None)
        };
        self.replace_latest(seq, &hash, now)?;
        appended
    }

    fn sign(&self, seq: i64, hash: String, now: DateTime<Utc>) -> Checkpoint {
        let at = now.trunc_subsecs(0);
        let sig = self.key.sign(&checkpoint_message(seq, &hash, &at));
        Checkpoint {
            seq,
            hash,
            at,
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// The file that holds only the newest signed head, replaced every few seconds while the
    /// head moves (the checkpoint file beside it gets a line a minute, so it stays small).
    pub fn latest_path(&self) -> PathBuf {
        let mut p = self.path.as_os_str().to_owned();
        p.push(".latest");
        p.into()
    }

    /// Sign the current head into the latest file, replacing it whole (a new file renamed over
    /// the old, so a reader sees one or the other); skipped when it already holds this head.
    pub async fn write_latest(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>> {
        let (seq, hash) = store.audit_head().await?;
        self.replace_latest(seq, &hash, now)
    }

    /// `write_latest` for the head (`seq`, `hash`).
    fn replace_latest(
        &self,
        seq: i64,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>> {
        if seq == 0 || self.read_latest()?.is_some_and(|c| c.seq == seq) {
            return Ok(None);
        }
        let cp = self.sign(seq, hex::encode(hash), now);
        let latest = self.latest_path();
        let mut tmp = latest.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        write_line(&tmp, &cp, false)?;
        std::fs::rename(&tmp, &latest).map_err(|e| anyhow::anyhow!("{}: {e}", latest.display()))?;
        Ok(Some(cp))
    }

    /// The checkpoint in the latest file, its signature checked; `None` if there is none yet.
    pub fn read_latest(&self) -> Result<Option<Checkpoint>> {
        let latest = self.latest_path();
        match std::fs::read_to_string(&latest) {
            Ok(t) if t.trim().is_empty() => Ok(None),
            Ok(t) => self.parse_line(&latest, t.trim(), "1").map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", latest.display()).into()),
        }
    }

    /// The newest checkpoint, read from the end of the file (its signature checked), so signing
    /// costs the same after years of checkpoints as on the first day.
    pub fn last(&self) -> Result<Option<Checkpoint>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", self.path.display()).into()),
        };
        let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", self.path.display());
        let len = f.metadata().map_err(io)?.len();
        // A line is about 250 bytes. One byte more than the longest line read is enough to see
        // the newline before it, which shows that the line is whole.
        let start = len.saturating_sub(LAST_LINE_MAX + 1);
        f.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).map_err(io)?;
        let text = String::from_utf8_lossy(&tail);
        let body = text.trim_end();
        if body.trim().is_empty() {
            return Ok(None);
        }
        match body.rfind('\n') {
            Some(nl) => self
                .parse_line(&self.path, &body[nl + 1..], "last line")
                .map(Some),
            None if start == 0 => self.parse_line(&self.path, body, "last line").map(Some),
            None => Err(anyhow::anyhow!(
                "{}: the last line is longer than {LAST_LINE_MAX} bytes",
                self.path.display()
            )
            .into()),
        }
    }

    /// One checkpoint line of `file`, its signature checked; `place` names the line in errors.
    fn parse_line(&self, file: &std::path::Path, line: &str, place: &str) -> Result<Checkpoint> {
        let path = file.display();
        let cp: Checkpoint =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{path}:{place}: {e}"))?;
        let sig = hex::decode(&cp.signature)
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .ok_or_else(|| anyhow::anyhow!("{path}:{place}: malformed signature"))?;
        self.verifying_key()
            .verify(&checkpoint_message(cp.seq, &cp.hash, &cp.at), &sig)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{path}:{place}: checkpoint signature does not verify with this server's key"
                )
            })?;
        Ok(cp)
    }

    /// Every checkpoint in the file; a line with a bad signature is an error.
    pub fn read(&self) -> Result<Vec<Checkpoint>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", self.path.display()).into()),
        };
        let mut out = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let cp = self.parse_line(&self.path, line, &(i + 1).to_string())?;
            out.push(cp);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(c: &Checkpoints, seq: i64) -> String {
        let hash = hex::encode(Sha256::digest(seq.to_be_bytes()));
        serde_json::to_string(&c.sign(seq, hash, Utc::now())).unwrap() + "\n"
    }

    #[test]
    fn the_last_checkpoint_is_read_from_the_end_of_a_long_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::new(dir.path().join("cps.jsonl"), [7; 32]);
        assert!(c.last().unwrap().is_none(), "no file yet");
        std::fs::write(&c.path, "").unwrap();
        assert!(c.last().unwrap().is_none(), "an empty file");

        // Far more than the tail that is read, so the last line is found from the end.
        let text: String = (1..=2_000).map(|seq| signed(&c, seq)).collect();
        assert!(text.len() as u64 > 50 * LAST_LINE_MAX);
        std::fs::write(&c.path, &text).unwrap();
        assert_eq!(c.last().unwrap().unwrap().seq, 2_000);
        assert_eq!(c.read().unwrap().len(), 2_000);

        // A last line exactly as long as the tail read, with no newline before it in the tail.
        let one = signed(&c, 1);
        let pad = " ".repeat(LAST_LINE_MAX as usize - one.len());
        std::fs::write(&c.path, format!("{}{pad}{one}", signed(&c, 9))).unwrap();
        assert_eq!(c.last().unwrap().unwrap().seq, 1);

        // A forged last line fails, as in the whole read.
        let other = Checkpoints::new(c.path.clone(), [8; 32]);
        std::fs::write(&c.path, format!("{}{}", signed(&c, 1), signed(&other, 2))).unwrap();
        let e = c.last().unwrap_err().to_string();
        assert!(e.contains("does not verify"), "{e}");
        assert!(c.read().is_err());

        // A last line longer than the tail is refused, not half-read.
        let long = format!("{}{}\n", signed(&c, 1), "x".repeat(LAST_LINE_MAX as usize));
        std::fs::write(&c.path, long).unwrap();
        assert!(c.last().unwrap_err().to_string().contains("longer than"));
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = AuditEntry::new(None, "case.view", "case", Utc::now())
            .target("t")
            .case("c");
        let h = chain_hash(&GENESIS, 1, &base);
        let variants: Vec<AuditEntry> = vec![
            AuditEntry {
                action: "case.update".into(),
                ..base.clone()
            },
            AuditEntry {
                target_id: Some("u".into()),
                ..base.clone()
            },
            AuditEntry {
                case_id: None,
                ..base.clone()
            },
            base.clone().denied("role"),
            base.clone().break_glass(true),
            base.clone().content_hash(vec![1]),
            AuditEntry {
                actor_id: Some("a".into()),
                ..base.clone()
            },
            AuditEntry {
                at: base.at + chrono::Duration::microseconds(1),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(chain_hash(&GENESIS, 1, &v), h, "{v:?}");
        }
        assert_ne!(chain_hash(&GENESIS, 2, &base), h);
        assert_ne!(chain_hash(&[1; 32], 1, &base), h);
        // None and empty differ.
        let empty = AuditEntry {
            target_id: Some(String::new()),
            ..base.clone()
        };
        let none = AuditEntry {
            target_id: None,
            ..base
        };
        assert_ne!(
            chain_hash(&GENESIS, 1, &empty),
            chain_hash(&GENESIS, 1, &none)
        );
    }
}
