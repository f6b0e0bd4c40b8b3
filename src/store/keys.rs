//! The directory's identity hashes, sorted in a file beside the database.
//!
//! Every Bloom hit is confirmed here: hash → account id. This was a `WITHOUT ROWID` table,
//! and inserting into it cost 1.3–1.6 µs per key even in hash order, 16–19 s of a 10 M
//! account import; the file is written in a fraction of a second. It holds nothing the
//! database does not: each key is a function of an account's email and username, so the
//! file carries the directory generation it was built from and is rebuilt from `accounts`
//! whenever it is missing, damaged or of another generation (a crash between the import's
//! commit and the file's rename leaves it one generation behind).
//!
//! Layout (little-endian): `LWKEYS01`, generation u64, count u64, then 65 537 u32: where
//! each 16-bit hash prefix starts in the entries (the last is `count`), then `count`
//! entries of 32 bytes: hash (20), kind (1), 3 zero bytes, account id (i64). A lookup reads
//! two fan-out words and one prefix's entries (~200 for 12 M keys): two `pread`s, no memory
//! held but the open file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::identity::{IdentityHash, IdentityKind};

const MAGIC: &[u8; 8] = b"LWKEYS01";
const FANOUT: usize = 1 << 16;
const HEADER: u64 = 24;
const FANOUT_BYTES: u64 = (FANOUT as u64 + 1) * 4;
const ENTRY: usize = 32;

/// One identity key of the directory.
pub type KeyEntry = (IdentityHash, i64, IdentityKind);

#[derive(Debug, thiserror::Error)]
pub enum KeyIndexError {
    #[error("identity index {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity index {path}: {message}")]
    Damaged { path: PathBuf, message: String },
}

/// An open index file.
#[derive(Debug)]
pub struct KeyIndex {
    file: File,
    path: PathBuf,
    generation: u64,
    count: u64,
    /// The fan-out table, read once (256 KiB): a lookup then costs one read, its
    /// bucket, not three (a leak of the whole user base confirms a million hits).
    fanout: Vec<u32>,
    /// The file mapped, so that a bucket is read without a system call. The file is
    /// only ever replaced by a rename, never rewritten in place; should it shrink all
    /// the same, the map reads zeros (see `source::mapped`) and lookups go back to reads.
    map: Option<crate::source::Mapped>,
}

fn prefix(h: &IdentityHash) -> usize {
    u16::from_be_bytes([h.0[0], h.0[1]]) as usize
}

fn kind_byte(kind: IdentityKind) -> u8 {
    match kind {
        IdentityKind::Email => 0,
        IdentityKind::Login => 1,
    }
}

fn decode(e: &[u8]) -> Option<KeyEntry> {
    let kind = match e[20] {
        0 => IdentityKind::Email,
        1 => IdentityKind::Login,
        _ => return None,
    };
    let hash = IdentityHash(e[..20].try_into().ok()?);
    Some((hash, i64::from_le_bytes(e[24..32].try_into().ok()?), kind))
}

impl KeyIndex {
    /// Writes `keys` (sorted by hash, no hash twice) to `path` atomically: a temporary file,
    /// synced, renamed over the old one. A reader holding the old file keeps reading it.
    pub fn write(path: &Path, generation: u64, keys: &[KeyEntry]) -> Result<(), KeyIndexError> {
        let io = |source| KeyIndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        debug_assert!(keys.windows(2).all(|w| w[0].0 < w[1].0));
        if u32::try_from(keys.len()).is_err() {
            return Err(KeyIndexError::Damaged {
                path: path.to_path_buf(),
                message: format!("{} keys: more than the format's 2^32", keys.len()),
            });
        }
        let tmp = path.with_extension("tmp");
        let file = File::create(&tmp).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&generation.to_le_bytes()).map_err(io)?;
        out.write_all(&(keys.len() as u64).to_le_bytes())
            .map_err(io)?;
        let mut next = 0usize;
        for p in 0..=FANOUT {
            while next < keys.len() && prefix(&keys[next].0) < p {
                next += 1;
            }
            out.write_all(&(next as u32).to_le_bytes()).map_err(io)?;
        }
        let mut entry = [0u8; ENTRY];
        for (hash, id, kind) in keys {
            entry[..20].copy_from_slice(&hash.0);
            entry[20] = kind_byte(*kind);
            entry[24..].copy_from_slice(&id.to_le_bytes());
            out.write_all(&entry).map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Opens an index and checks that its size agrees with its header.
    pub fn open(path: &Path) -> Result<KeyIndex, KeyIndexError> {
        let io = |source| KeyIndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        let damaged = |message: String| KeyIndexError::Damaged {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(io)?;
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| damaged("shorter than its header".into()))?;
        if &header[..8] != MAGIC {
            return Err(damaged("not a leakwatch identity index".into()));
        }
        let generation = u64::from_le_bytes(header[8..16].try_into().unwrap());
        let count = u64::from_le_bytes(header[16..24].try_into().unwrap());
        let expected = count
            .checked_mul(ENTRY as u64)
            .and_then(|n| n.checked_add(HEADER + FANOUT_BYTES));
        let size = file.metadata().map_err(io)?.len();
        if expected != Some(size) {
            return Err(damaged(format!(
                "{size} bytes, its header says {count} keys"
            )));
        }
        let mut table = vec![0u8; FANOUT_BYTES as usize];
        file.read_exact_at(&mut table, HEADER)
            .map_err(|_| damaged("shorter than its fan-out table".into()))?;
        let map = crate::source::Mapped::open(&file, size).ok();
        let index = KeyIndex {
            file,
            path: path.to_path_buf(),
            generation,
            count,
            map,
            fanout: table
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect(),
        };
        if index.fanout(FANOUT)? != count {
            return Err(damaged(
                "fan-out table does not end at the key count".into(),
            ));
        }
        Ok(index)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn io(&self, source: std::io::Error) -> KeyIndexError {
        KeyIndexError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn fanout(&self, p: usize) -> Result<u64, KeyIndexError> {
        self.fanout
            .get(p)
            .map(|&n| u64::from(n))
            .ok_or_else(|| KeyIndexError::Damaged {
                path: self.path.clone(),
                message: format!("fan-out entry {p} out of range"),
            })
    }

    /// Asks for `hash`'s fan-out words to be brought into cache ([`KeyIndex::prefetch`]
    /// next).
    pub fn prefetch_fanout(&self, hash: &IdentityHash) {
        if let Some(w) = self.fanout.get(prefix(hash)) {
            crate::bytes::prefetch(w);
        }
    }

    /// Asks for the entry [`KeyIndex::lookup`] will read first for `hash` (its guessed
    /// place in its bucket) to be brought into cache.
    pub fn prefetch(&self, hash: &IdentityHash) {
        let p = prefix(hash);
        let (Some(&start), Some(&end), Some(map)) =
            (self.fanout.get(p), self.fanout.get(p + 1), &self.map)
        else {
            return;
        };
        let n = end.saturating_sub(start) as usize;
        let guess = (usize::from(u16::from_be_bytes([hash.0[2], hash.0[3]])) * n) >> 16;
        let at = (HEADER + FANOUT_BYTES) as usize + (start as usize + guess) * ENTRY;
        if let Some(b) = map.bytes().get(at) {
            crate::bytes::prefetch(b);
        }
    }

    /// The account id and kind of `hash`, if it is one of the directory's keys.
    pub fn lookup(
        &self,
        hash: &IdentityHash,
    ) -> Result<Option<(i64, IdentityKind)>, KeyIndexError> {
        let p = prefix(hash);
        let (start, end) = (self.fanout(p)?, self.fanout(p + 1)?);
        if start >= end || end > self.count {
            return Ok(None);
        }
        let at = (HEADER + FANOUT_BYTES + start * ENTRY as u64) as usize;
        let len = ((end - start) as usize) * ENTRY;
        let mut read = Vec::new();
        let bucket: &[u8] = match &self.map {
            Some(m) if !m.shrunk() && m.bytes().len() >= at + len => &m.bytes()[at..at + len],
            _ => {
                read.resize(len, 0);
                self.file
                    .read_exact_at(&mut read, at as u64)
                    .map_err(|e| self.io(e))?;
                &read
            }
        };
        let entry = |i: usize| &bucket[i * ENTRY..(i + 1) * ENTRY];
        // The first 8 bytes as one integer almost always decide (a slice comparison was
        // a call to memcmp per step, a tenth of a re-read leak's time).
        let head = |b: &[u8]| u64::from_be_bytes(b[..8].try_into().unwrap_or_default());
        let want = head(&hash.0);
        let order = |i: usize| {
            let e = entry(i);
            head(e).cmp(&want).then_with(|| e[8..20].cmp(&hash.0[8..]))
        };
        let found = |i: usize| Ok(decode(entry(i)).map(|(_, id, kind)| (id, kind)));
        use std::cmp::Ordering::{Equal, Greater, Less};
        // SHA-1s are uniform: the bytes after the fan-out's say where in its bucket a hash
        // lies, to within a few entries. One guess and a short walk touch one or two cache
        // lines where a binary search touched four (a leak of the whole user base is a
        // look-up per line); a bucket that defies the guess falls back to bisection.
        let n = bucket.len() / ENTRY;
        let (mut lo, mut hi) = (0, n);
        let guess = (usize::from(u16::from_be_bytes([hash.0[2], hash.0[3]])) * n) >> 16;
        let mut i = guess.min(n - 1);
        for _ in 0..4 {
            match order(i) {
                Equal => return found(i),
                Less => {
                    lo = i + 1;
                    if lo >= hi {
                        return Ok(None);
                    }
                    i = lo;
                }
                Greater => {
                    hi = i;
                    if i == lo {
                        return Ok(None);
                    }
                    i -= 1;
                }
            }
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            match order(mid) {
                Less => lo = mid + 1,
                Greater => hi = mid,
                Equal => return found(mid),
            }
        }
        Ok(None)
    }

    /// Calls `f` with every hash, in order, reading the file once.
    pub fn for_each_hash(&self, mut f: impl FnMut(IdentityHash)) -> Result<(), KeyIndexError> {
        self.for_each(|(h, _, _)| f(h))
    }

    /// Calls `f` with every entry, in hash order, reading the file once.
    pub fn for_each(&self, mut f: impl FnMut(KeyEntry)) -> Result<(), KeyIndexError> {
        let mut file = self.file.try_clone().map_err(|e| self.io(e))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(HEADER + FANOUT_BYTES))
            .map_err(|e| self.io(e))?;
        let mut input = BufReader::with_capacity(1 << 20, file).take(self.count * ENTRY as u64);
        let mut block = vec![0u8; ENTRY * 4096];
        let mut left = self.count as usize;
        while left > 0 {
            let n = left.min(4096);
            input
                .read_exact(&mut block[..n * ENTRY])
                .map_err(|e| self.io(e))?;
            for e in block[..n * ENTRY].chunks_exact(ENTRY) {
                let entry = decode(e).ok_or_else(|| KeyIndexError::Damaged {
                    path: self.path.clone(),
                    message: format!("unknown key kind {}", e[20]),
                })?;
                f(entry);
            }
            left -= n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<KeyEntry> {
        let mut k: Vec<KeyEntry> = (0..n)
            .map(|i| {
                let kind = if i % 3 == 0 {
                    IdentityKind::Login
                } else {
                    IdentityKind::Email
                };
                (
                    IdentityHash::of(&format!("user{i}@x.example")),
                    i as i64 + 1,
                    kind,
                )
            })
            .collect();
        k.sort_unstable_by_key(|e| e.0);
        k
    }

    #[test]
    fn every_key_is_found_with_its_id_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.idx");
        let all = keys(5000);
        KeyIndex::write(&path, 7, &all).unwrap();
        let index = KeyIndex::open(&path).unwrap();
        assert_eq!((index.generation(), index.len()), (7, 5000));
        for (h, id, kind) in &all {
            assert_eq!(index.lookup(h).unwrap(), Some((*id, *kind)));
        }
        for i in 0..2000 {
            let other = IdentityHash::of(&format!("other{i}@x.example"));
            assert_eq!(index.lookup(&other).unwrap(), None);
        }
        let mut seen = Vec::new();
        index.for_each_hash(|h| seen.push(h)).unwrap();
        assert_eq!(seen, all.iter().map(|k| k.0).collect::<Vec<_>>());
    }

    /// The look-up guesses a hash's place in its bucket from the bytes after the
    /// fan-out's: buckets whose hashes defy the guess (all bunched at one end, or sharing
    /// those bytes) must still find every key and nothing else.
    #[test]
    fn crowded_and_skewed_buckets_find_every_key_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.idx");
        let mut all: Vec<KeyEntry> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Bucket 0x1234: 400 hashes whose guess bytes are all 0x0000; bucket 0x1235: 400
        // bunched at 0xffxx; bucket 0x1236: 400 spread evenly; bucket 0x1237: one.
        for (bucket, count) in [(0x1234u16, 400), (0x1235, 400), (0x1236, 400), (0x1237, 1)] {
            for _ in 0..count {
                let mut h = [0u8; 20];
                for chunk in h.chunks_mut(8) {
                    let r = next().to_le_bytes();
                    chunk.copy_from_slice(&r[..chunk.len()]);
                }
                h[..2].copy_from_slice(&bucket.to_be_bytes());
                match bucket {
                    0x1234 => h[2..4].fill(0),
                    0x1235 => h[2] = 0xff,
                    _ => {}
                }
                h[19] &= 0xfe; // even: h[19] | 1 is a miss beside each key
                all.push((IdentityHash(h), all.len() as i64 + 1, IdentityKind::Email));
            }
        }
        all.sort_unstable_by_key(|e| e.0);
        all.dedup_by_key(|e| e.0);
        KeyIndex::write(&path, 1, &all).unwrap();
        let index = KeyIndex::open(&path).unwrap();
        for (h, id, kind) in &all {
            assert_eq!(index.lookup(h).unwrap(), Some((*id, *kind)));
            let mut miss = h.0;
            miss[19] |= 1;
            assert_eq!(index.lookup(&IdentityHash(miss)).unwrap(), None);
        }
        // Below the first and above the last of a bucket, and in its ends' guess slots.
        for bucket in [0x1234u16, 0x1235, 0x1236, 0x1237] {
            for edge in [[0u8; 18], [0xff; 18]] {
                let mut h = [0u8; 20];
                h[..2].copy_from_slice(&bucket.to_be_bytes());
                h[2..].copy_from_slice(&edge);
                h[19] |= 1;
                assert_eq!(index.lookup(&IdentityHash(h)).unwrap(), None);
            }
        }
    }

    #[test]
    fn empty_index_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.idx");
        KeyIndex::write(&path, 0, &[]).unwrap();
        let index = KeyIndex::open(&path).unwrap();
        assert!(index.is_empty());
        assert_eq!(
            index.lookup(&IdentityHash::of("a@x.example")).unwrap(),
            None
        );
    }

    #[test]
    fn truncated_or_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.idx");
        KeyIndex::write(&path, 1, &keys(100)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = KeyIndex::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("keys.idx") && err.contains("100 keys"),
            "{err}"
        );
        let mut foreign = bytes.clone();
        foreign[0] = b'X';
        std::fs::write(&path, &foreign).unwrap();
        assert!(matches!(
            KeyIndex::open(&path),
            Err(KeyIndexError::Damaged { .. })
        ));
        let mut bad_fanout = bytes;
        let last = (HEADER + FANOUT_BYTES - 4) as usize;
        bad_fanout[last] ^= 1;
        std::fs::write(&path, &bad_fanout).unwrap();
        assert!(KeyIndex::open(&path).is_err());
    }
}
