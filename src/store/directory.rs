//! The organisation's directory: accounts and their identity hashes.

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::config::Lang;
use crate::identity::{IdentityHash, IdentityKind};

/// An account as imported, with the hashes of its identity keys.
#[derive(Debug, Clone)]
pub struct DirectoryAccount {
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub lang: Lang,
    pub keys: Vec<(IdentityHash, IdentityKind)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub lang: Lang,
}

const GENERATION: &str = "directory_generation";
/// SQLite's page cache during an import (negative: KiB), and its default after.
const IMPORT_CACHE_KIB: i64 = -512 * 1024;
const DEFAULT_CACHE_KIB: i64 = -2000;

impl Store {
    /// Replaces the directory in one transaction: accounts absent from `accounts` are
    /// deactivated (their findings stay, they stop matching), ids of accounts that remain
    /// are kept so their history stays attached. Returns the new directory generation.
    pub fn replace_directory(&mut self, accounts: &[DirectoryAccount]) -> Result<u64, StoreError> {
        // Millions of rows go into two B-trees: in key order, each insert appends to the
        // last page instead of touching a random one, and a large page cache holds the
        // rest (measured: 1 M accounts took 37 s in file order with the default cache).
        let mut order: Vec<&DirectoryAccount> = accounts.iter().collect();
        order.sort_unstable_by(|a, b| a.email.cmp(&b.email));
        self.conn
            .pragma_update(None, "cache_size", IMPORT_CACHE_KIB)?;
        let result = self.replace_directory_sorted(&order);
        self.conn
            .pragma_update(None, "cache_size", DEFAULT_CACHE_KIB)?;
        result
    }

    fn replace_directory_sorted(
        &mut self,
        accounts: &[&DirectoryAccount],
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("UPDATE accounts SET active = 0", [])?;
        tx.execute("DELETE FROM identity_keys", [])?;
        let mut keys = Vec::with_capacity(accounts.len() * 2);
        {
            let mut upsert = tx.prepare(
                "INSERT INTO accounts (email, username, name, lang, active) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT(email) DO UPDATE SET username = ?2, name = ?3, lang = ?4, active = 1
                 RETURNING id",
            )?;
            for a in accounts {
                let id: i64 = upsert
                    .query_row(params![a.email, a.username, a.name, a.lang.code()], |r| {
                        r.get(0)
                    })?;
                keys.extend(a.keys.iter().map(|(h, kind)| (*h, id, *kind)));
            }
            keys.sort_unstable_by_key(|k| k.0);
            let mut key = tx.prepare(
                "INSERT INTO identity_keys (hash, account_id, kind) VALUES (?1, ?2, ?3)",
            )?;
            for (h, id, kind) in &keys {
                key.execute(params![&h.0[..], id, kind.as_str()])?;
            }
        }
        let generation: i64 = tx.query_row(
            "INSERT INTO meta (key, value) VALUES (?1, 1)
                 ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
            [GENERATION],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(generation as u64)
    }

    /// Bumped by every import; the Bloom filter file carries the generation it was built from.
    pub fn directory_generation(&self) -> Result<u64, StoreError> {
        Ok(self.meta_get(GENERATION)? as u64)
    }

    pub fn identity_key_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM identity_keys", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    pub fn active_account_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM accounts WHERE active = 1", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Calls `f` with every identity hash of the directory (to build the Bloom filter)
    /// without holding them all in memory.
    pub fn for_each_identity_hash(
        &self,
        mut f: impl FnMut(IdentityHash),
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("SELECT hash FROM identity_keys")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(0)?;
            if let Some(h) = IdentityHash::from_slice(&blob) {
                f(h);
            }
        }
        Ok(())
    }

    /// Exact confirmation of a Bloom hit: the active account this hash belongs to, if any.
    pub fn confirm(&self, hash: &IdentityHash) -> Result<Option<AccountRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.email, a.username, a.name, a.lang
             FROM identity_keys k JOIN accounts a ON a.id = k.account_id
             WHERE k.hash = ?1 AND a.active = 1",
        )?;
        Ok(stmt.query_row([&hash.0[..]], account_row).optional()?)
    }
}

pub(super) fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    let lang: String = r.get(4)?;
    Ok(AccountRow {
        id: r.get(0)?,
        email: r.get(1)?,
        username: r.get(2)?,
        name: r.get(3)?,
        lang: Lang::parse(&lang).unwrap_or(Lang::Fr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(email: &str, username: Option<&str>) -> DirectoryAccount {
        let mut keys = vec![(IdentityHash::of(email), IdentityKind::Email)];
        if let Some(u) = username {
            keys.push((IdentityHash::of(&format!("login:{u}")), IdentityKind::Login));
        }
        DirectoryAccount {
            email: email.into(),
            username: username.map(str::to_string),
            name: None,
            lang: Lang::En,
            keys,
        }
    }

    #[test]
    fn reimport_replaces_and_keeps_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.directory_generation().unwrap(), 0);
        let g1 = s
            .replace_directory(&[acct("a@x.example", Some("a")), acct("b@x.example", None)])
            .unwrap();
        assert_eq!(g1, 1);
        assert_eq!(s.identity_key_count().unwrap(), 3);
        let a = s
            .confirm(&IdentityHash::of("a@x.example"))
            .unwrap()
            .unwrap();
        assert_eq!(
            s.confirm(&IdentityHash::of("login:a")).unwrap().unwrap().id,
            a.id
        );
        let g2 = s.replace_directory(&[acct("a@x.example", None)]).unwrap();
        assert_eq!(g2, 2);
        assert_eq!(
            s.confirm(&IdentityHash::of("a@x.example"))
                .unwrap()
                .unwrap()
                .id,
            a.id
        );
        assert!(s.confirm(&IdentityHash::of("login:a")).unwrap().is_none());
        assert!(s
            .confirm(&IdentityHash::of("b@x.example"))
            .unwrap()
            .is_none());
        assert_eq!(s.active_account_count().unwrap(), 1);
        let mut n = 0;
        s.for_each_identity_hash(|_| n += 1).unwrap();
        assert_eq!(n, 1);
    }
}
