//! Reads of the case view kept in memory (SQLite): the account behind a bearer token, and a
//! case with its assignments and contacts, each tagged with the access generation it was read
//! at (migration sqlite/0017). Only ids, codes and ciphertext are kept, never a key or a
//! decrypted field.
//!
//! An entry is served only while its generation is the newest this process has seen, and a
//! view served from entries is recorded only while the database's generation is still theirs
//! (`Store::append_reads` with `only_at`, checked in the statement that writes the audit
//! entry). A change by any process moves the database's generation, so a stale entry can
//! never make an answer: at worst the view is not recorded and is served afresh.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::{shared, AssignmentRow, CaseAssignmentRow, CaseRow, ContactRow, UserRow};
use crate::error::Result;

/// Entries kept per kind; a full map drops an arbitrary entry for each new one.
const MAX_ENTRIES: usize = 4096;

/// A case as the case view reads it.
#[derive(Debug)]
pub struct CaseBundle {
    pub row: CaseRow,
    pub assignments: Vec<AssignmentRow>,
    pub contacts: Vec<ContactRow>,
}

/// The account behind a token, and until when the token lives.
#[derive(Debug)]
pub struct TokenUser {
    pub user: UserRow,
    pub expires_at: DateTime<Utc>,
}

/// A value and the access generation it was read at.
pub type AtGeneration<T> = (Arc<T>, i64);

/// Reads tagged with the access generation, from memory while it holds (`Store::cached_reads`).
#[async_trait::async_trait]
pub trait CachedReads: Send + Sync {
    /// The active account behind a token that is live at `now`.
    async fn token_user(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<AtGeneration<TokenUser>>>;
    /// A case with its assignments and contacts.
    async fn case_bundle(&self, id: &str) -> Result<Option<AtGeneration<CaseBundle>>>;
}

struct Entry<T> {
    value: Arc<T>,
    generation: i64,
}

/// One kind of cached read.
struct Map<K, T>(Mutex<HashMap<K, Entry<T>>>);

impl<K: Eq + Hash + Clone, T> Map<K, T> {
    fn new() -> Self {
        Map(Mutex::new(HashMap::new()))
    }

    fn get<Q>(&self, key: &Q, generation: i64) -> Option<Arc<T>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let map = self.0.lock().expect("read cache");
        map.get(key)
            .filter(|e| e.generation == generation)
            .map(|e| e.value.clone())
    }

    /// Keep `value` if `generation` is still the newest seen (checked under the lock that
    /// `clear` takes, so an entry cannot outlive the generation it was read at).
    fn put(&self, key: K, value: Arc<T>, generation: i64, newest: &AtomicI64) {
        let mut map = self.0.lock().expect("read cache");
        if generation != newest.load(Ordering::Acquire) {
            return;
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(key, Entry { value, generation });
    }

    fn clear(&self) {
        self.0.lock().expect("read cache").clear();
    }
}

/// The SQLite store's cached reads.
pub struct ReadCache {
    pool: SqlitePool,
    /// The newest access generation this process has seen.
    newest: AtomicI64,
    tokens: Map<Vec<u8>, TokenUser>,
    cases: Map<String, CaseBundle>,
}

#[derive(sqlx::FromRow)]
struct TokenUserRow {
    #[sqlx(flatten)]
    user: UserRow,
    expires_at: DateTime<Utc>,
    generation: i64,
}

#[derive(sqlx::FromRow)]
struct CaseAtRow {
    #[sqlx(flatten)]
    row: CaseAssignmentRow,
    generation: i64,
}

impl ReadCache {
    pub fn new(pool: SqlitePool) -> Self {
        ReadCache {
            pool,
            newest: AtomicI64::new(i64::MIN),
            tokens: Map::new(),
            cases: Map::new(),
        }
    }

    /// Note a generation read from the database; a newer one than any before drops every entry.
    pub fn seen(&self, generation: i64) {
        if self.newest.fetch_max(generation, Ordering::AcqRel) < generation {
            self.tokens.clear();
            self.cases.clear();
        }
    }

    /// Read the database's generation now (after a view was refused as stale).
    pub async fn refresh(&self) -> Result<()> {
        let (n,): (i64,) = sqlx::query_as(shared::GENERATION_NOW)
            .fetch_one(&self.pool)
            .await?;
        self.seen(n);
        Ok(())
    }

    fn newest(&self) -> i64 {
        self.newest.load(Ordering::Acquire)
    }
}

#[async_trait::async_trait]
impl CachedReads for ReadCache {
    async fn token_user(
        &self,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<AtGeneration<TokenUser>>> {
        let generation = self.newest();
        let cached = match self.tokens.get(hash, generation) {
            Some(found) => Some((found, generation)),
            None => {
                // The generation is read first, in the same statement, so the row is at least
                // as new as the generation it is tagged with.
                let row = sqlx::query_as::<_, TokenUserRow>(&format!(
                    "select ({}) as generation, {}",
                    shared::GENERATION_NOW,
                    shared::TOKEN_USER
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    self.seen(r.generation);
                    let value = Arc::new(TokenUser {
                        user: r.user,
                        expires_at: r.expires_at,
                    });
                    self.tokens
                        .put(hash.to_vec(), value.clone(), r.generation, &self.newest);
                    (value, r.generation)
                })
            }
        };
        Ok(cached.filter(|(t, _)| t.expires_at > now))
    }

    async fn case_bundle(&self, id: &str) -> Result<Option<AtGeneration<CaseBundle>>> {
        let generation = self.newest();
        if let Some(found) = self.cases.get(id, generation) {
            return Ok(Some((found, generation)));
        }
        // Tagged with the generation of the first read: a change after it, seen by the later
        // read or not, moves the database past it, so the view is refused at its record.
        let rows = sqlx::query_as::<_, CaseAtRow>(&format!(
            "select ({}) as generation, {} {}",
            shared::GENERATION_NOW,
            shared::CASE_COLUMNS,
            shared::CASE_WITH_ASSIGNMENTS
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(generation) = rows.first().map(|r| r.generation) else {
            return Ok(None);
        };
        let Some((row, assignments)) = shared::fold_assignments(rows.into_iter().map(|r| r.row))
        else {
            return Ok(None);
        };
        let contacts = sqlx::query_as::<_, ContactRow>(&shared::contacts_of_case())
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        self.seen(generation);
        let bundle = Arc::new(CaseBundle {
            row,
            assignments,
            contacts,
        });
        self.cases
            .put(id.to_string(), bundle.clone(), generation, &self.newest);
        Ok(Some((bundle, generation)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_only_at_the_newest_generation() {
        let newest = AtomicI64::new(5);
        let map: Map<String, u32> = Map::new();
        map.put("a".into(), Arc::new(1), 5, &newest);
        // Read at an older generation than the newest seen: never kept.
        map.put("b".into(), Arc::new(2), 4, &newest);
        assert_eq!(map.get("a", 5).as_deref(), Some(&1));
        assert_eq!(map.get("b", 5), None);
        // Asked for at another generation: not served.
        assert_eq!(map.get("a", 6), None);
    }

    #[test]
    fn a_full_map_stays_at_its_bound() {
        let newest = AtomicI64::new(1);
        let map: Map<u32, u32> = Map::new();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            map.put(i, Arc::new(i), 1, &newest);
        }
        assert_eq!(map.0.lock().unwrap().len(), MAX_ENTRIES);
        // The newest entry is always kept.
        let last = MAX_ENTRIES as u32 + 9;
        assert_eq!(map.get(&last, 1).as_deref(), Some(&last));
    }

    #[tokio::test]
    async fn a_newer_generation_drops_every_entry() {
        let cache = ReadCache::new(SqlitePool::connect_lazy("sqlite::memory:").unwrap());
        cache.seen(3);
        cache
            .cases
            .put("c".into(), Arc::new(bundle()), 3, &cache.newest);
        assert!(cache.cases.get("c", cache.newest()).is_some());
        // An older generation read late changes nothing.
        cache.seen(2);
        assert_eq!(cache.newest(), 3);
        assert!(cache.cases.get("c", 3).is_some());
        cache.seen(4);
        assert_eq!(cache.newest(), 4);
        assert!(cache.cases.0.lock().unwrap().is_empty());
    }

    fn bundle() -> CaseBundle {
        let now = Utc::now();
        CaseBundle {
            row: CaseRow {
                id: "c".into(),
                program: "marrow".into(),
                region: "r".into(),
                status: "open".into(),
                created_by: "u".into(),
                created_at: now,
                updated_at: now,
                donor: Vec::new(),
                donation: Vec::new(),
                notes: None,
                key_version: None,
                wrapped_key: None,
            },
            assignments: Vec::new(),
            contacts: Vec::new(),
        }
    }
}
