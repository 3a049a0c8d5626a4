//! Backups and restores: the store's records (one consistent snapshot), the sealed signed
//! forms and the erasure ledger, as JSON lines streamed through age to the keyring's
//! recipients. The format is logical (`store::dump`), so a SQLite backup restores into
//! PostgreSQL and back.
//!
//! The file, once decrypted, is one JSON value a line:
//! - a header: `{"donorcare_backup":1,"created_at":…,"backend":…,"server_recipient":…,
//!   "recipients":[…],"tables":[{"name":…,"columns":[…]}…]}`;
//! - per table `{"table":NAME}`, its rows as arrays in the header's column order (bytes in
//!   base64, times RFC 3339), then `{"end_table":NAME,"rows":N}`;
//! - after each `consent_attachments` row, its sealed file: `{"file":{"consent_id","case_id",
//!   "bytes"}}`, base64 chunks as JSON strings, `{"end_file":{"sha256":…}}` (or
//!   `{"file_missing":{…}}` if the case was erased while the backup ran);
//! - the erasure ledger: `{"erasure":{"case_id","request_id","erased_at"}}` a line;
//! - the trailer `{"end":{"rows","files","erasures","audit_seq","audit_head","sha256"}}`, the
//!   SHA-256 of every byte before it.
//!
//! age authenticates every 64 KiB chunk and marks the last, so an altered or cut file fails to
//! decrypt; the trailer's counts and digest check the content. A restore reads the whole file
//! once to check it before it writes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as J};
use sha2::{Digest, Sha256};

use crate::store::dump::{self, Item, Table, Value, TABLES};
use crate::store::{KeyringRow, Store};

/// The format's version, in the header.
pub const FORMAT: i64 = 1;
/// Raw bytes of a signed form per chunk line.
const CHUNK: usize = 48 * 1024;
/// Longest line a reader accepts (a row of sealed fields is far shorter).
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Items in flight between the database and the file.
const IN_FLIGHT: usize = 512;

// ---------------------------------------------------------------------------------------------
// The erasure ledger.

/// One approved erasure, as the ledger beside the keyring keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Erasure {
    pub case_id: String,
    #[serde(default)]
    pub request_id: Option<String>,
    pub erased_at: DateTime<Utc>,
}

/// Append an erasure to the ledger and sync it to disk.
pub fn record_erasure(ledger: &Path, e: &Erasure) -> anyhow::Result<()> {
    if let Some(dir) = ledger.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
        .with_context(|| format!("opening {}", ledger.display()))?;
    let mut line = serde_json::to_vec(e)?;
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_all()?;
    Ok(())
}

/// Every erasure in a ledger (none if the file does not exist). A line that is not an erasure
/// (a torn last line after a crash) is skipped with a warning, never fatal.
pub fn read_ledger(ledger: &Path) -> anyhow::Result<Vec<Erasure>> {
    let f = match std::fs::File::open(ledger) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", ledger.display())),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", ledger.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Erasure>(&line) {
            Ok(e) => out.push(e),
            Err(_) => {
                tracing::warn!(file = %ledger.display(), line = i + 1, "not an erasure; skipped")
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Progress.

/// Where progress lines go: standard error for the commands, the log for scheduled backups.
pub type Progress = Box<dyn FnMut(&str) + Send>;

pub fn progress_to_stderr(what: &'static str) -> Progress {
    Box::new(move |line| eprintln!("{what}: {line}"))
}

struct Ticker {
    every: Duration,
    last: Instant,
}

impl Ticker {
    fn new() -> Self {
        Ticker {
            every: Duration::from_secs(2),
            last: Instant::now(),
        }
    }

    fn due(&mut self) -> bool {
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------------
// Backup.

/// What a backup needs besides the store.
pub struct BackupSource {
    pub store: Arc<dyn Store>,
    /// `<data-dir>/attachments`.
    pub attachments: PathBuf,
    /// The erasure ledger (`KeyPaths::erasures`).
    pub ledger: PathBuf,
    /// The recipient of the server that makes the backup (a restore drops it from the
    /// keyring's recipients, since that identity may be lost with the machine).
    pub server_recipient: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupSummary {
    pub rows: u64,
    pub files: u64,
    pub erasures: u64,
    pub bytes: u64,
    pub audit_seq: i64,
    pub seconds: f64,
}

/// The recipients the keyring is sealed to (every live entry's), in their order.
pub fn keyring_recipients(rows: &[KeyringRow]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.sealed.is_some()) {
        for line in r
            .recipients
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if !out.iter().any(|x| x == line) {
                out.push(line.to_string());
            }
        }
    }
    out
}

/// Write a backup to `out` (through `<out>.partial`, renamed when complete, so `out` is never
/// a cut file), sealed to `recipients`.
pub async fn backup(
    src: &BackupSource,
    recipients: &[String],
    out: &Path,
    mut progress: Progress,
) -> anyhow::Result<BackupSummary> {
    if recipients.is_empty() {
        bail!("no recipients to seal the backup to");
    }
    let parsed = recipients
        .iter()
        .map(|r| crate::crypto::keyring::parse_recipient(r).with_context(|| r.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let partial = partial_path(out);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let started = Instant::now();
    let header = json!({
        "donorcare_backup": FORMAT,
        "created_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        "backend": src.store.backend(),
        "server_recipient": src.server_recipient,
        "recipients": recipients,
        "tables": TABLES.iter().map(|t| json!({
            "name": t.name,
            "columns": t.columns.iter().map(|c| c.name).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(IN_FLIGHT);
    let attachments = src.attachments.clone();
    let ledger = src.ledger.clone();
    let writer =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(BackupSummary, Progress)> {
            let enc =
                age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| anyhow!("age: {e}"))?;
            let sink = std::io::BufWriter::with_capacity(256 * 1024, file);
            let age_out = enc.wrap_output(sink)?;
            let mut w = LineWriter::new(age_out);
            let summary = write_body(&mut w, &header, rx, &attachments, &ledger, &mut progress)?;
            let (age_out, _) = w.into_inner();
            let mut sink = age_out.finish()?;
            sink.flush()?;
            let file = sink
                .into_inner()
                .map_err(|e| anyhow!("writing the backup: {e}"))?;
            file.sync_all()?;
            Ok((summary, progress))
        });
    let dumped = src.store.dump(tx).await;
    let written = writer
        .await
        .map_err(|e| anyhow!("the backup's writer stopped: {e}"));
    let (mut summary, mut progress) = match (dumped, written) {
        (Ok(()), Ok(Ok(s))) => s,
        (Err(e), _) => {
            let _ = std::fs::remove_file(&partial);
            return Err(anyhow::Error::from(e).context("reading the database"));
        }
        (_, Err(e)) | (_, Ok(Err(e))) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    summary.bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or_default();
    summary.seconds = started.elapsed().as_secs_f64();
    progress(&format!(
        "done: {} rows, {} signed forms, {} erasures in the ledger, {} in {:.1} s",
        summary.rows,
        summary.files,
        summary.erasures,
        mb(summary.bytes),
        summary.seconds
    ));
    Ok(summary)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// Lines out, each hashed for the trailer.
struct LineWriter<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
    line: Vec<u8>,
}

impl<W: Write> LineWriter<W> {
    fn new(inner: W) -> Self {
        LineWriter {
            inner,
            hash: Sha256::new(),
            bytes: 0,
            line: Vec::with_capacity(4096),
        }
    }

    /// Write the line in `self.line` (without its newline) and clear it.
    fn emit(&mut self) -> std::io::Result<()> {
        self.line.push(b'\n');
        self.hash.update(&self.line);
        self.inner.write_all(&self.line)?;
        self.bytes += self.line.len() as u64;
        self.line.clear();
        Ok(())
    }

    fn value(&mut self, v: &J) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.line, v)?;
        self.emit()
    }

    fn into_inner(self) -> (W, [u8; 32]) {
        (self.inner, self.hash.finalize().into())
    }
}

fn write_body<W: Write>(
    w: &mut LineWriter<W>,
    header: &J,
    mut rx: tokio::sync::mpsc::Receiver<Item>,
    attachments: &Path,
    ledger: &Path,
    progress: &mut Progress,
) -> anyhow::Result<BackupSummary> {
    let mut s = BackupSummary::default();
    let mut tick = Ticker::new();
    w.value(header)?;
    let mut table: Option<&'static Table> = None;
    let mut rows_in_table = 0u64;
    let mut audit_head: Vec<u8> = Vec::new();
    loop {
        let Some(item) = rx.blocking_recv() else {
            bail!("the database read stopped before the end");
        };
        match item {
            Item::Table(t) => {
                table = Some(t);
                rows_in_table = 0;
                w.value(&json!({ "table": t.name }))?;
            }
            Item::Row(values) => {
                let t = table.ok_or_else(|| anyhow!("a row outside any table"))?;
                w.line.push(b'[');
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        w.line.push(b',');
                    }
                    v.write_json(&mut w.line);
                }
                w.line.push(b']');
                w.emit()?;
                s.rows += 1;
                rows_in_table += 1;
                match t.name {
                    "consent_attachments" => {
                        s.files += u64::from(write_file(w, t, &values, attachments)?);
                    }
                    "audit_log" => {
                        s.audit_seq = values[0].as_int().unwrap_or_default();
                        audit_head = values[14].as_bytes().unwrap_or_default().to_vec();
                    }
                    _ => {}
                }
                if tick.due() {
                    progress(&format!(
                        "{}: {rows_in_table} rows so far ({} written)",
                        t.name,
                        mb(w.bytes)
                    ));
                }
            }
            Item::EndTable => {
                let t = table.take().ok_or_else(|| anyhow!("a table ended twice"))?;
                w.value(&json!({ "end_table": t.name, "rows": rows_in_table }))?;
                if rows_in_table > 0 {
                    progress(&format!("{}: {rows_in_table} rows", t.name));
                }
            }
            Item::Done => break,
        }
    }
    // The ledger last: an erasure made while the backup ran is in it.
    for e in read_ledger(ledger)? {
        w.value(&json!({ "erasure": e }))?;
        s.erasures += 1;
    }
    let digest = w.hash.clone().finalize();
    w.value(&json!({ "end": {
        "rows": s.rows, "files": s.files, "erasures": s.erasures,
        "audit_seq": s.audit_seq, "audit_head": hex::encode(&audit_head),
        "sha256": hex::encode(digest),
    }}))?;
    Ok(s)
}

/// The sealed file of a `consent_attachments` row, in chunks; false if it is gone (its case
/// was erased after the snapshot was taken: the ledger, written last, names it).
fn write_file<W: Write>(
    w: &mut LineWriter<W>,
    t: &Table,
    row: &[Value],
    attachments: &Path,
) -> anyhow::Result<bool> {
    let get = |c: &str| {
        t.index_of(c)
            .and_then(|i| row[i].as_text())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let (consent_id, case_id, want) = (get("consent_id"), get("case_id"), get("sealed_sha256"));
    let path = attachments.join(&case_id).join(format!("{consent_id}.dcs"));
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            w.value(&json!({ "file_missing": { "consent_id": consent_id, "case_id": case_id } }))?;
            return Ok(false);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bytes = f.metadata()?.len();
    w.value(&json!({ "file": { "consent_id": consent_id, "case_id": case_id, "bytes": bytes } }))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
        w.line.push(b'"');
        let mut enc = String::new();
        base64::engine::general_purpose::STANDARD.encode_string(&buf[..n], &mut enc);
        w.line.extend_from_slice(enc.as_bytes());
        w.line.push(b'"');
        w.emit()?;
    }
    let got = hex::encode(h.finalize());
    if got != want || total != bytes {
        bail!(
            "the signed form of consent {consent_id} ({}) does not match its record",
            path.display()
        );
    }
    w.value(&json!({ "end_file": { "sha256": got } }))?;
    Ok(true)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Reading a backup.

/// What a backup's header says.
#[derive(Debug, Clone)]
pub struct Header {
    pub created_at: DateTime<Utc>,
    pub backend: String,
    pub server_recipient: String,
    pub recipients: Vec<String>,
}

/// What a complete read found.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub rows: u64,
    pub files: u64,
    pub missing_files: Vec<String>,
    pub erasures: Vec<Erasure>,
    pub audit_seq: i64,
    pub audit_head: String,
    pub keyring: Vec<KeyringRow>,
    /// The cases the backup holds, and whether erased (ids only).
    pub cases: HeldCases,
}

/// The cases a backup holds and which of them it holds unerased: what a restore needs to know
/// which erasures to make again. Case ids are UUIDs, kept as 16 bytes each (a million cases in
/// 16 MB; a map of id and status strings took about 150 MB, which restoring a million cases
/// into PostgreSQL showed as memory that grew with the registry); any other id as given.
#[derive(Debug, Clone, Default)]
pub struct HeldCases {
    /// Unerased cases' ids, in the order read (the backup's, by id: sorted).
    unerased: Vec<u128>,
    /// Whether `unerased` is in ascending order, so a lookup may bisect it.
    out_of_order: bool,
    /// Ids that are not UUIDs, with whether the case is unerased.
    other: BTreeMap<String, bool>,
}

impl HeldCases {
    pub fn insert(&mut self, id: &str, status: &str) {
        let unerased = status != "erased";
        match uuid::Uuid::parse_str(id) {
            Ok(u) if unerased => {
                let n = u.as_u128();
                if self.unerased.last().is_some_and(|last| *last >= n) {
                    self.out_of_order = true;
                }
                self.unerased.push(n);
            }
            Ok(_) => {}
            Err(_) => {
                self.other.insert(id.to_string(), unerased);
            }
        }
    }

    /// Whether the backup holds the case, not erased.
    pub fn holds_unerased(&self, id: &str) -> bool {
        match uuid::Uuid::parse_str(id) {
            Ok(u) if self.out_of_order => self.unerased.contains(&u.as_u128()),
            Ok(u) => self.unerased.binary_search(&u.as_u128()).is_ok(),
            Err(_) => self.other.get(id).copied().unwrap_or(false),
        }
    }
}

/// What the reader hands on while it reads (nothing in the checking pass).
enum Event<'a> {
    Item(Item),
    FileStart {
        case_id: &'a str,
        consent_id: &'a str,
    },
    FileChunk(&'a [u8]),
    FileEnd,
}

/// A plain reason a backup cannot be read, for the one line the operator sees.
fn damaged(why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("the backup is damaged, cut short or was altered ({why}); nothing was restored")
}

/// Read and check a whole backup with `identity`, handing each record to `sink`.
fn read_backup(
    path: &Path,
    identity: &age::x25519::Identity,
    progress: &mut Progress,
    stage: &str,
    sink: &mut dyn FnMut(Event<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<(Header, Contents)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or_default();
    let mut magic = [0u8; 21];
    let n = read_full(&mut (&file), &mut magic)?;
    if &magic[..n] != b"age-encryption.org/v1" {
        bail!(
            "{} is not a donorcare backup (not an age file)",
            path.display()
        );
    }
    std::io::Seek::rewind(&mut (&file))?;
    let counted = CountingReader {
        inner: BufReader::with_capacity(256 * 1024, file),
        read: Arc::new(std::sync::atomic::AtomicU64::new(0)),
    };
    let read = counted.read.clone();
    let dec = age::Decryptor::new(counted).map_err(|e| match e {
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            anyhow!(
                "{} is not a donorcare backup (not an age file)",
                path.display()
            )
        }
        other => damaged(other),
    })?;
    let reader = dec
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => anyhow!(
                "this identity cannot open the backup: it is not one of the recipients the backup \
                 was sealed to"
            ),
            other => damaged(other),
        })?;
    let mut lines = BufReader::with_capacity(256 * 1024, reader);
    let mut hash = Sha256::new();
    let mut buf = Vec::new();
    let mut no = 0u64;
    let mut tick = Ticker::new();
    let mut next = |buf: &mut Vec<u8>| -> anyhow::Result<Option<J>> {
        buf.clear();
        let n = (&mut lines)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', buf)
            .map_err(damaged)?;
        if n == 0 {
            return Ok(None);
        }
        if n > MAX_LINE || buf.last() != Some(&b'\n') {
            return Err(damaged("a record without its end"));
        }
        let v: J = serde_json::from_slice(buf)
            .map_err(|e| damaged(format!("a record that is not JSON: {e}")))?;
        Ok(Some(v))
    };

    let h = next(&mut buf)?.ok_or_else(|| damaged("empty"))?;
    hash.update(&buf);
    no += 1;
    if h.get("donorcare_backup").and_then(J::as_i64) != Some(FORMAT) {
        bail!(
            "{} is not a donorcare backup of format {FORMAT}",
            path.display()
        );
    }
    let want: Vec<J> = TABLES
        .iter()
        .map(|t| json!({"name": t.name, "columns": t.columns.iter().map(|c| c.name).collect::<Vec<_>>()}))
        .collect();
    if h.get("tables") != Some(&J::Array(want)) {
        bail!("the backup was made by a donorcare whose tables differ from this one's; restore it with the same version");
    }
    let text = |k: &str| h.get(k).and_then(J::as_str).unwrap_or_default().to_string();
    let header = Header {
        created_at: DateTime::parse_from_rfc3339(&text("created_at"))
            .map_err(|_| damaged("no creation time"))?
            .with_timezone(&Utc),
        backend: text("backend"),
        server_recipient: text("server_recipient"),
        recipients: h
            .get("recipients")
            .and_then(J::as_array)
            .map(|a| a.iter().filter_map(J::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
    };

    let mut c = Contents::default();
    let mut table: Option<&'static Table> = None;
    let mut in_table = 0u64;
    let mut seen_tables = 0usize;
    let mut last_attachment: Option<(String, String, String)> = None;
    loop {
        let v = next(&mut buf)?.ok_or_else(|| damaged("it ends before its last record"))?;
        no += 1;
        if tick.due() && size > 0 {
            let at = read.load(std::sync::atomic::Ordering::Relaxed);
            progress(&format!(
                "{stage} {}% ({} of {})",
                at * 100 / size,
                mb(at),
                mb(size)
            ));
        }
        if let J::Array(values) = &v {
            let t =
                table.ok_or_else(|| damaged(format!("record {no}: a row outside any table")))?;
            if values.len() != t.columns.len() {
                return Err(damaged(format!(
                    "record {no}: a row of {} with {} values",
                    t.name,
                    values.len()
                )));
            }
            let mut row = Vec::with_capacity(values.len());
            for (col, j) in t.columns.iter().zip(values) {
                row.push(Value::from_json(col.kind, j).map_err(|why| {
                    damaged(format!("record {no}: {}.{} {why}", t.name, col.name))
                })?);
            }
            in_table += 1;
            c.rows += 1;
            remember(&mut c, t, &row, &mut last_attachment);
            sink(Event::Item(Item::Row(row)))?;
            hash.update(&buf);
            continue;
        }
        let end = v.get("end").cloned();
        if let Some(end) = end {
            let digest = hex::encode(hash.clone().finalize());
            let n = |k: &str| end.get(k).and_then(J::as_u64);
            if table.is_some() || seen_tables != TABLES.len() {
                return Err(damaged("tables are missing"));
            }
            if end.get("sha256").and_then(J::as_str) != Some(digest.as_str())
                || n("rows") != Some(c.rows)
                || n("files") != Some(c.files)
                || n("erasures") != Some(c.erasures.len() as u64)
            {
                return Err(damaged("its content does not match its last record"));
            }
            c.audit_seq = end.get("audit_seq").and_then(J::as_i64).unwrap_or_default();
            c.audit_head = end
                .get("audit_head")
                .and_then(J::as_str)
                .unwrap_or_default()
                .to_string();
            if next(&mut buf)?.is_some() {
                return Err(damaged("records after its last one"));
            }
            sink(Event::Item(Item::Done))?;
            return Ok((header, c));
        }
        hash.update(&buf);
        if let Some(name) = v.get("table").and_then(J::as_str) {
            let t = TABLES
                .get(seen_tables)
                .filter(|t| t.name == name && table.is_none())
                .ok_or_else(|| damaged(format!("record {no}: table {name} out of place")))?;
            table = Some(t);
            in_table = 0;
            sink(Event::Item(Item::Table(t)))?;
        } else if let Some(name) = v.get("end_table").and_then(J::as_str) {
            let t = table
                .take()
                .filter(|t| t.name == name)
                .ok_or_else(|| damaged(format!("record {no}: end of table {name} out of place")))?;
            if v.get("rows").and_then(J::as_u64) != Some(in_table) {
                return Err(damaged(format!(
                    "table {} has the wrong number of rows",
                    t.name
                )));
            }
            seen_tables += 1;
            if in_table > 0 {
                progress(&format!("{stage} {}: {in_table} rows", t.name));
            }
            sink(Event::Item(Item::EndTable))?;
        } else if let Some(f) = v.get("file") {
            let (consent, case, want) = last_attachment
                .take()
                .filter(|_| table.is_some_and(|t| t.name == "consent_attachments"))
                .ok_or_else(|| damaged(format!("record {no}: a file without its record")))?;
            let s = |k: &str| f.get(k).and_then(J::as_str).unwrap_or_default();
            if s("consent_id") != consent || s("case_id") != case {
                return Err(damaged(format!("record {no}: the file of another record")));
            }
            sink(Event::FileStart {
                case_id: &case,
                consent_id: &consent,
            })?;
            let mut fh = Sha256::new();
            let mut bytes = 0u64;
            loop {
                let part =
                    next(&mut buf)?.ok_or_else(|| damaged("it ends inside a signed form"))?;
                no += 1;
                match part {
                    J::String(b64) => {
                        hash.update(&buf);
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .map_err(|_| damaged(format!("record {no}: not base64")))?;
                        fh.update(&raw);
                        bytes += raw.len() as u64;
                        sink(Event::FileChunk(&raw))?;
                    }
                    other => {
                        hash.update(&buf);
                        let got = hex::encode(fh.finalize());
                        let claimed = other
                            .get("end_file")
                            .and_then(|e| e.get("sha256"))
                            .and_then(J::as_str);
                        if claimed != Some(got.as_str())
                            || got != want
                            || f.get("bytes").and_then(J::as_u64) != Some(bytes)
                        {
                            return Err(damaged(format!(
                                "the signed form of consent {consent} does not match its record"
                            )));
                        }
                        break;
                    }
                }
            }
            c.files += 1;
            sink(Event::FileEnd)?;
        } else if let Some(f) = v.get("file_missing") {
            let consent = f.get("consent_id").and_then(J::as_str).unwrap_or_default();
            c.missing_files.push(consent.to_string());
            last_attachment = None;
        } else if let Some(e) = v.get("erasure") {
            if table.is_some() || seen_tables != TABLES.len() {
                return Err(damaged(format!("record {no}: an erasure among the tables")));
            }
            let e: Erasure = serde_json::from_value(e.clone())
                .map_err(|_| damaged(format!("record {no}: not an erasure")))?;
            c.erasures.push(e);
        } else {
            return Err(damaged(format!("record {no}: unknown")));
        }
    }
}

/// Note what the restore needs later from a row: the keyring, case statuses, attachments.
fn remember(
    c: &mut Contents,
    t: &Table,
    row: &[Value],
    last_attachment: &mut Option<(String, String, String)>,
) {
    let text = |col: &str| {
        t.index_of(col)
            .and_then(|i| row[i].as_text())
            .unwrap_or_default()
            .to_string()
    };
    match t.name {
        "keyring" => {
            let time = |i: usize| match &row[i] {
                Value::Time(t) => Some(*t),
                _ => None,
            };
            c.keyring.push(KeyringRow {
                purpose: text("purpose"),
                version: row[1].as_int().unwrap_or_default(),
                created_at: time(2).unwrap_or_default(),
                retired_at: time(3),
                sealed: row[4].as_bytes().map(<[u8]>::to_vec),
                recipients: text("recipients"),
            });
        }
        "cases" => {
            c.cases.insert(&text("id"), &text("status"));
        }
        "consent_attachments" => {
            *last_attachment = Some((text("consent_id"), text("case_id"), text("sealed_sha256")));
        }
        _ => {}
    }
}

struct CountingReader<R> {
    inner: R,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.read
            .fetch_add(amt as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// Check a whole backup without writing anything: the identity opens it, every record is
/// whole and in place, the counts and digest agree.
pub async fn check(
    path: &Path,
    identity: Arc<crate::crypto::keyring::ServerIdentity>,
    mut progress: Progress,
) -> anyhow::Result<(Header, Contents, Progress)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (h, c) = read_backup(
            &path,
            identity.age(),
            &mut progress,
            "checking",
            &mut |_| Ok(()),
        )?;
        Ok((h, c, progress))
    })
    .await
    .map_err(|e| anyhow!("reading the backup: {e}"))?
}

/// Load a checked backup into an empty, migrated store, and its signed forms into
/// `attachments` (a folder that does not exist yet). All of the rows, or none.
pub async fn load(
    path: &Path,
    identity: Arc<crate::crypto::keyring::ServerIdentity>,
    store: Arc<dyn Store>,
    attachments: &Path,
    mut progress: Progress,
) -> anyhow::Result<(dump::Loaded, Progress)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(IN_FLIGHT);
    let path = path.to_path_buf();
    let dir = attachments.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<Progress> {
        let mut file: Option<(std::fs::File, PathBuf, PathBuf)> = None;
        let mut sink = |e: Event<'_>| -> anyhow::Result<()> {
            match e {
                Event::Item(item) => tx
                    .blocking_send(item)
                    .map_err(|_| anyhow!("the database stopped taking rows")),
                Event::FileStart {
                    case_id,
                    consent_id,
                } => {
                    let d = dir.join(case_id);
                    std::fs::create_dir_all(&d)
                        .with_context(|| format!("creating {}", d.display()))?;
                    let target = d.join(format!("{consent_id}.dcs"));
                    let tmp = target.with_extension("tmp");
                    file = Some((std::fs::File::create(&tmp)?, tmp, target));
                    Ok(())
                }
                Event::FileChunk(b) => match &mut file {
                    Some((f, _, _)) => Ok(f.write_all(b)?),
                    None => bail!("a chunk outside a file"),
                },
                Event::FileEnd => match file.take() {
                    Some((f, tmp, target)) => {
                        f.sync_all()?;
                        std::fs::rename(&tmp, &target)?;
                        Ok(())
                    }
                    None => bail!("a file ended twice"),
                },
            }
        };
        read_backup(&path, identity.age(), &mut progress, "restoring", &mut sink)?;
        Ok(progress)
    });
    let loaded = store.load(rx).await;
    let read = reader
        .await
        .map_err(|e| anyhow!("reading the backup: {e}"))?;
    match (loaded, read) {
        (Ok(l), Ok(p)) => Ok((l, p)),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(anyhow::Error::from(e).context("writing the restored records")),
    }
}

/// The erasures a restore must make again: those in the backup's ledger and in the ledgers
/// given, for cases the backup holds that it does not hold as erased. One per case.
pub fn erasures_to_reapply(c: &Contents, ledgers: &[Erasure]) -> Vec<Erasure> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for e in c.erasures.iter().chain(ledgers) {
        if c.cases.holds_unerased(&e.case_id) && seen.insert(e.case_id.clone()) {
            out.push(e.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_keeps_every_erasure_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("erasures.jsonl");
        assert!(read_ledger(&path).unwrap().is_empty());
        let e = |c: &str| Erasure {
            case_id: c.into(),
            request_id: Some(format!("r-{c}")),
            erased_at: Utc::now(),
        };
        record_erasure(&path, &e("a")).unwrap();
        record_erasure(&path, &e("b")).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"case_id\":\"c\",\"erased").unwrap();
        let got: Vec<String> = read_ledger(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.case_id)
            .collect();
        assert_eq!(got, ["a", "b"]);
    }

    #[test]
    fn only_the_newest_scheduled_backups_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = DateTime::parse_from_rfc3339("2026-12-01T02:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        for day in 0..5 {
            let at = base + chrono::Duration::days(day);
            assert_eq!(scheduled_time(&scheduled_name(at)), Some(at));
            std::fs::write(dir.path().join(scheduled_name(at)), b"x").unwrap();
        }
        std::fs::write(
            dir.path()
                .join("donorcare-20261210T020000.000Z.age.partial"),
            b"x",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(prune(dir.path(), 2), 3);
        let left: Vec<DateTime<Utc>> = scheduled_backups(dir.path())
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(
            left,
            [
                base + chrono::Duration::days(3),
                base + chrono::Duration::days(4)
            ]
        );
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir
            .path()
            .join("donorcare-20261210T020000.000Z.age.partial")
            .exists());
    }

    #[test]
    fn only_erasures_of_cases_the_backup_holds_unerased_are_made_again() {
        let mut c = Contents::default();
        c.cases.insert("open", "open");
        c.cases.insert("gone", "erased");
        // Case ids as they are (UUIDs), out of order too.
        let ids = [
            "01a2511b-8e2b-73e4-b688-82f5ae5eabb9",
            "01a2511b-8e2b-73e4-b688-82f5ae5eabb8",
            "01a2511b-8e2b-73e4-b688-82f5ae5eabc0",
        ];
        c.cases.insert(ids[0], "open");
        c.cases.insert(ids[1], "erased");
        c.cases.insert(ids[2], "closed");
        assert!(c.cases.holds_unerased(ids[0]) && c.cases.holds_unerased(ids[2]));
        assert!(!c.cases.holds_unerased(ids[1]));
        assert!(!c
            .cases
            .holds_unerased("01a2511b-8e2b-73e4-b688-82f5ae5eabc1"));
        let mut sorted = HeldCases::default();
        for id in [
            "01a2511b-0000-7000-8000-000000000001",
            "01a2511b-0000-7000-8000-000000000002",
        ] {
            sorted.insert(id, "open");
        }
        assert!(sorted.holds_unerased("01a2511b-0000-7000-8000-000000000002"));
        assert!(!sorted.holds_unerased("01a2511b-0000-7000-8000-000000000003"));
        let e = |id: &str| Erasure {
            case_id: id.into(),
            request_id: None,
            erased_at: Utc::now(),
        };
        c.erasures = vec![e("gone"), e("open")];
        let local = [e("open"), e("later"), e("gone")];
        let again: Vec<String> = erasures_to_reapply(&c, &local)
            .into_iter()
            .map(|e| e.case_id)
            .collect();
        assert_eq!(again, ["open"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduled backups in `serve`.

/// `DONORCARE_BACKUP_SCHEDULE`, `DONORCARE_BACKUP_DIR`, `DONORCARE_BACKUP_KEEP`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A cron expression, seconds first (the `cron` crate); none: no scheduled backups.
    pub schedule: Option<String>,
    /// Where scheduled backups go (`<data-dir>/backups` by default).
    pub dir: PathBuf,
    /// How many scheduled backups to keep; older ones are removed after a good one.
    pub keep: usize,
    /// The zone the schedule's hours are in (the office's, `DONORCARE_TIMEZONE`).
    pub tz: chrono_tz::Tz,
}

/// The name of a scheduled backup made at `at`: sorts by time.
pub fn scheduled_name(at: DateTime<Utc>) -> String {
    format!("donorcare-{}.age", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

fn scheduled_time(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix("donorcare-")?.strip_suffix(".age")?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The scheduled backups in `dir`, oldest first (complete files only: a `.partial` is not one).
pub fn scheduled_backups(dir: &Path) -> Vec<(DateTime<Utc>, PathBuf)> {
    let mut out: Vec<(DateTime<Utc>, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    scheduled_time(&name).map(|t| (t, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Remove all but the newest `keep` scheduled backups; how many went.
pub fn prune(dir: &Path, keep: usize) -> usize {
    let all = scheduled_backups(dir);
    let extra = all.len().saturating_sub(keep.max(1));
    let mut removed = 0;
    for (_, path) in all.into_iter().take(extra) {
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "removing an old backup"),
        }
    }
    removed
}

fn newest_in_folder(dir: &Path, last: &mut Last) {
    if let Some((at, path)) = scheduled_backups(dir).pop() {
        if last.ok_at.is_none_or(|t| t < at) {
            last.ok_at = Some(at);
            last.ok_bytes = std::fs::metadata(&path).ok().map(|m| m.len());
            last.ok_file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Last {
    ok_at: Option<DateTime<Utc>>,
    ok_file: Option<String>,
    ok_bytes: Option<u64>,
    error_at: Option<DateTime<Utc>>,
    error: Option<String>,
    next_at: Option<DateTime<Utc>>,
    failures: u64,
    running: bool,
}

/// What the admin's key page and `/metrics` say about backups.
pub struct Status {
    pub settings: Settings,
    schedule: Option<cron::Schedule>,
    last: std::sync::Mutex<Last>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub scheduled: bool,
    pub schedule: Option<String>,
    pub dir: String,
    pub keep: usize,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_ok_file: Option<String>,
    pub last_ok_bytes: Option<u64>,
    /// Whole hours since the last good backup.
    pub age_hours: Option<i64>,
    /// Scheduled, and the last good backup is older than the schedule allows (or there is
    /// none a full interval after start).
    pub overdue: bool,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    pub failures: u64,
    pub running: bool,
}

impl Status {
    /// The status at start: the newest scheduled backup already in the folder counts as the
    /// last good one.
    pub fn new(settings: Settings) -> anyhow::Result<Status> {
        let schedule = match &settings.schedule {
            Some(s) => Some(
                crate::schedule::plan::parse_cron(s)
                    .map_err(|why| anyhow!("DONORCARE_BACKUP_SCHEDULE {s:?} {why}"))?,
            ),
            None => None,
        };
        let mut last = Last::default();
        newest_in_folder(&settings.dir, &mut last);
        last.next_at = schedule
            .as_ref()
            .and_then(|s| s.upcoming(settings.tz).next())
            .map(|t| t.with_timezone(&Utc));
        Ok(Status {
            settings,
            schedule,
            last: std::sync::Mutex::new(last),
        })
    }

    /// The newest backup in the folder counts too (one `donorcare backup` or another instance
    /// wrote there).
    fn refresh(&self) {
        let dir = self.settings.dir.clone();
        self.with(|l| newest_in_folder(&dir, l));
    }

    fn with<T>(&self, f: impl FnOnce(&mut Last) -> T) -> T {
        match self.last.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Seconds since the last good backup, if there is one.
    pub fn age_seconds(&self, now: DateTime<Utc>) -> Option<i64> {
        self.refresh();
        self.with(|l| l.ok_at.map(|t| (now - t).num_seconds().max(0)))
    }

    pub fn last_ok(&self) -> Option<DateTime<Utc>> {
        self.with(|l| l.ok_at)
    }

    pub fn failures(&self) -> u64 {
        self.with(|l| l.failures)
    }

    pub fn view(&self, now: DateTime<Utc>) -> StatusView {
        self.refresh();
        let l = self.with(|l| l.clone());
        // The gap between two runs, and an hour's grace for the backup itself.
        let interval = self.schedule.as_ref().and_then(|s| {
            let mut it = s.after(&now.with_timezone(&self.settings.tz));
            let (a, b) = (it.next()?, it.next()?);
            Some(b - a)
        });
        let overdue = match (interval, l.ok_at) {
            (Some(i), Some(at)) => now - at > i + chrono::Duration::hours(1),
            (Some(_), None) => l.failures > 0,
            (None, _) => false,
        };
        StatusView {
            scheduled: self.schedule.is_some(),
            schedule: self.settings.schedule.clone(),
            dir: self.settings.dir.display().to_string(),
            keep: self.settings.keep,
            age_hours: l.ok_at.map(|t| (now - t).num_hours().max(0)),
            last_ok_at: l.ok_at,
            last_ok_file: l.ok_file,
            last_ok_bytes: l.ok_bytes,
            overdue,
            last_error_at: l.error_at,
            last_error: l.error,
            next_at: l.next_at,
            failures: l.failures,
            running: l.running,
        }
    }

    /// Make one scheduled backup now: into the folder, sealed to the keyring's recipients,
    /// then the oldest beyond the count kept are removed. Audited.
    pub async fn run_once(&self, svc: &crate::domain::Services) -> anyhow::Result<PathBuf> {
        let started = Utc::now();
        self.with(|l| l.running = true);
        let result = async {
            std::fs::create_dir_all(&self.settings.dir)
                .with_context(|| format!("creating {}", self.settings.dir.display()))?;
            let out = self.settings.dir.join(scheduled_name(started));
            let recipients = keyring_recipients(&svc.store.keyring_rows().await?);
            let src = BackupSource {
                store: svc.store.clone(),
                attachments: svc.attachments_dir.clone(),
                ledger: svc.keys.paths().erasures(),
                server_recipient: svc.keys.recipient(),
            };
            let progress: Progress = Box::new(|line| tracing::info!(progress = %line, "backup"));
            let s = backup(&src, &recipients, &out, progress).await?;
            let audit = crate::audit::AuditEntry::new(None, "backup.create", "backup", Utc::now())
                .reason(&format!("scheduled: {} rows, {} signed forms", s.rows, s.files));
            svc.store.append_audit(&[audit]).await?;
            let removed = prune(&self.settings.dir, self.settings.keep);
            tracing::info!(file = %out.display(), bytes = s.bytes, rows = s.rows, removed, "backup made");
            anyhow::Ok((out, s.bytes))
        }
        .await;
        let next = self.next_run();
        self.with(|l| {
            l.running = false;
            l.next_at = next;
            match &result {
                Ok((out, bytes)) => {
                    l.ok_at = Some(started);
                    l.ok_bytes = Some(*bytes);
                    l.ok_file = out.file_name().map(|n| n.to_string_lossy().into_owned());
                }
                Err(e) => {
                    l.failures += 1;
                    l.error_at = Some(Utc::now());
                    l.error = Some(format!("{e:#}"));
                }
            }
        });
        result.map(|(out, _)| out)
    }

    /// The next time the schedule fires after now.
    pub fn next_run(&self) -> Option<DateTime<Utc>> {
        self.schedule
            .as_ref()
            .and_then(|s| s.upcoming(self.settings.tz).next())
            .map(|t| t.with_timezone(&Utc))
    }
}

/// `serve`'s backup loop: at each time the schedule names, one backup; stops with the server.
pub async fn scheduled_loop(
    svc: crate::domain::Services,
    status: Arc<Status>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(next) = status.next_run() else {
            return;
        };
        status.with(|l| l.next_at = Some(next));
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = status.run_once(&svc).await {
            tracing::error!(error = %format!("{e:#}"), "scheduled backup failed");
        }
    }
}
