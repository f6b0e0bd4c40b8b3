//! The map of known findings kept between runs, in a file beside the database.
//!
//! Reading a million findings from SQLite takes about 0.4 s (a scan of 171 MB of rows),
//! a quarter of re-reading a leak of the whole user base; the map itself is 36 MB, read
//! back in a few tens of milliseconds. The file is a shortcut, and is trusted only while
//! nothing it says can have changed in the database:
//!
//! - it is written at the end of a run that held the map (only writers holding the state
//!   lock change findings, and such a run keeps the map exact), under a fresh token that
//!   is put in `meta` last: a crash before that leaves no token, and the file is ignored;
//! - triggers (schema 8) delete the token whenever a finding is deleted or changes in a
//!   way the map records (its sightings, severity, device, first source or key), whoever
//!   writes it: a later version of leakwatch, a retention purge, an admin's `sqlite3`;
//! - a run that saw the token deleted while it held the map does not write it back;
//! - a finding inserted after the file was written needs nothing: a key the map lacks is
//!   inserted `OR IGNORE`, and recorded the general way if SQLite had it;
//! - a database restored from a backup carries an older token than the file's;
//! - the lengths, a CRC-32 of the whole and chains that only point backwards are checked
//!   on reading: a damaged file is ignored (and the table read), never trusted or looped
//!   on.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::{Entry, Known, Slot, MAX_ACCOUNTS, MAX_KNOWN};
use crate::store::Severity;

/// The file's name in the state directory.
pub(in crate::store) const FILE: &str = "known-findings.bin";
/// Its first bytes: the format, version 1.
const MAGIC: &[u8; 8] = b"LWKNOWN1";
/// Magic, token, seed, heads' and slots' counts.
const HEADER: u64 = 8 * 5;
const SLOT_BYTES: usize = 32;
/// Bytes read or written per block: a megabyte, whatever the map's size.
const BLOCK: usize = 1 << 20;

/// Why a file was not used (logged at debug level: the table is read instead).
#[derive(Debug, thiserror::Error)]
pub(in crate::store) enum Unusable {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a known-findings file, or another version")]
    Format,
    #[error("written for another state of the database (token)")]
    Token,
    #[error("damaged: {0}")]
    Damaged(&'static str),
}

fn severity_byte(s: Severity) -> u8 {
    match s {
        Severity::Medium => 0,
        Severity::High => 1,
        Severity::Critical => 2,
    }
}

/// Writes `known` to `path` under `token`: a temporary file (0600), synced, renamed into
/// place. The caller puts the token in `meta` afterwards.
pub(super) fn save(known: &Known, path: &Path, token: i64) -> io::Result<()> {
    let tmp = path.with_extension("bin.tmp");
    let result = write_to(known, &tmp, token).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_to(known: &Known, tmp: &Path, token: i64) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut out = Out {
        file: opts.open(tmp)?,
        buf: Vec::with_capacity(BLOCK + SLOT_BYTES),
        crc: crc32fast::Hasher::new(),
    };
    out.put(MAGIC)?;
    out.put(&token.to_le_bytes())?;
    out.put(&known.seed.to_le_bytes())?;
    out.put(&(known.heads.len() as u64).to_le_bytes())?;
    out.put(&(known.slots.len() as u64).to_le_bytes())?;
    for h in &known.heads {
        out.put(&h.to_le_bytes())?;
    }
    for s in &known.slots {
        let mut b = [0u8; SLOT_BYTES];
        b[..8].copy_from_slice(&s.dedup.to_le_bytes());
        b[8..16].copy_from_slice(&s.entry.source.to_le_bytes());
        b[16..20].copy_from_slice(&s.entry.id.to_le_bytes());
        b[20..24].copy_from_slice(&s.next.to_le_bytes());
        b[24] = severity_byte(s.entry.severity);
        b[25] = u8::from(s.entry.exact);
        out.put(&b)?;
    }
    out.drain()?;
    let crc = out.crc.finalize();
    out.file.write_all(&crc.to_le_bytes())?;
    out.file.sync_all()
}

/// A buffered writer that sums what passes through it.
struct Out {
    file: std::fs::File,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Out {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= BLOCK {
            self.drain()?;
        }
        Ok(())
    }
    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// A reader that sums what it reads, a block at a time.
struct In {
    file: BufReader<std::fs::File>,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl In {
    fn block(&mut self, n: usize) -> io::Result<&[u8]> {
        self.buf.resize(n, 0);
        self.file.read_exact(&mut self.buf)?;
        self.crc.update(&self.buf);
        Ok(&self.buf)
    }
    fn u64(&mut self) -> io::Result<u64> {
        let b = self.block(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
}

fn word<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().unwrap_or([0; N])
}

/// Reads the map saved under `token`; `Ok(None)` if there is no file.
pub(super) fn load(path: &Path, token: i64) -> Result<Option<Known>, Unusable> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
    let mut r = In {
        file: BufReader::with_capacity(BLOCK, file),
        buf: Vec::new(),
        crc: crc32fast::Hasher::new(),
    };
    if size < HEADER + 4 || r.block(8)? != MAGIC {
        return Err(Unusable::Format);
    }
    if r.u64()? as i64 != token {
        return Err(Unusable::Token);
    }
    let seed = r.u64()?;
    let (heads, slots) = (r.u64()?, r.u64()?);
    // Checked before anything is allocated from them.
    if heads == 0 || heads > MAX_ACCOUNTS as u64 + 1 || slots > MAX_KNOWN as u64 {
        return Err(Unusable::Damaged("counts out of range"));
    }
    if size != HEADER + heads * 4 + slots * SLOT_BYTES as u64 + 4 {
        return Err(Unusable::Damaged("length"));
    }
    let (heads, slots) = (heads as usize, slots as usize);
    let mut known = Known {
        heads: Vec::with_capacity(heads),
        slots: Vec::with_capacity((slots + (1 << 16)).min(MAX_KNOWN)),
        seed,
        token,
        dirty: false,
    };
    while known.heads.len() < heads {
        let n = (heads - known.heads.len()).min(BLOCK / 4);
        let b = r.block(n * 4)?;
        for h in b.chunks_exact(4) {
            let h = u32::from_le_bytes(word(h, 0));
            if h as usize > slots {
                return Err(Unusable::Damaged("a head past the findings"));
            }
            known.heads.push(h);
        }
    }
    while known.slots.len() < slots {
        let n = (slots - known.slots.len()).min(BLOCK / SLOT_BYTES);
        let first = known.slots.len();
        let b = r.block(n * SLOT_BYTES)?;
        for (i, s) in b.chunks_exact(SLOT_BYTES).enumerate() {
            let next = u32::from_le_bytes(word(s, 20));
            // A chain only points at earlier findings (as `put` builds it), so that a
            // look-up always ends.
            if next as usize > first + i {
                return Err(Unusable::Damaged("a chain pointing forwards"));
            }
            let severity = match s[24] {
                0 => Severity::Medium,
                1 => Severity::High,
                2 => Severity::Critical,
                _ => return Err(Unusable::Damaged("severity")),
            };
            if s[25] > 1 {
                return Err(Unusable::Damaged("flag"));
            }
            known.slots.push(Slot {
                dedup: i64::from_le_bytes(word(s, 0)),
                entry: Entry {
                    source: u64::from_le_bytes(word(s, 8)),
                    id: u32::from_le_bytes(word(s, 16)),
                    severity,
                    exact: s[25] == 1,
                },
                next,
            });
        }
    }
    let sum = r.crc.clone().finalize();
    let mut stored = [0u8; 4];
    r.file.read_exact(&mut stored)?;
    if u32::from_le_bytes(stored) != sum {
        return Err(Unusable::Damaged("checksum"));
    }
    Ok(Some(known))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FindingKind;

    fn sample() -> Known {
        let mut known = Known {
            heads: vec![0; 10],
            slots: Vec::new(),
            seed: 0x1234_5678_9abc_def1,
            token: 0,
            dirty: false,
        };
        for n in 0..40u8 {
            let key = Known::key(i64::from(n % 7) + 1, FindingKind::Password, &[n; 32]);
            let (severity, source) = match n % 3 {
                0 => (Severity::Medium, None),
                1 => (Severity::High, Some(u64::from(n) << 40)),
                _ => (Severity::Critical, Some(u64::MAX - u64::from(n))),
            };
            assert!(known.put(key, i64::from(n) * 3 + 1, severity, source));
        }
        known
    }

    fn entries(known: &Known) -> Vec<String> {
        (0..40u8)
            .map(|n| {
                let key = Known::key(i64::from(n % 7) + 1, FindingKind::Password, &[n; 32]);
                format!("{:?}", known.get(&key))
            })
            .collect()
    }

    /// What is saved is read back entry for entry, with its seed (the sources' hashes
    /// depend on it), and only under its own token.
    #[test]
    fn the_map_is_read_back_as_saved_and_only_under_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(
            load(&path, 5).unwrap().is_none(),
            "no file: the table is read"
        );
        let known = sample();
        save(&known, &path, 77).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
        let back = load(&path, 77).unwrap().unwrap();
        assert_eq!(entries(&back), entries(&known));
        assert_eq!(back.seed, known.seed);
        assert_eq!(back.source_hash("f.txt:3"), known.source_hash("f.txt:3"));
        assert!((back.token, back.dirty) == (77, false));
        assert!(matches!(load(&path, 78), Err(Unusable::Token)));
    }

    /// Any byte changed, or the file cut short, and the file is not used; a chain that
    /// points forwards (which could loop) is refused before the checksum is reached.
    #[test]
    fn a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        save(&sample(), &path, 9).unwrap();
        let good = std::fs::read(&path).unwrap();
        let slots_at = HEADER as usize + 10 * 4;
        for at in [
            16,
            24,
            HEADER as usize + 4,
            slots_at + 3,
            slots_at + 8,
            good.len() - 2,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(load(&path, 9), Err(Unusable::Damaged(_))),
                "byte {at}: {:?}",
                load(&path, 9).err()
            );
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(load(&path, 9), Err(Unusable::Damaged("length"))));
        let mut forward = good.clone();
        // The first finding's chain pointing at the second.
        forward[slots_at + 20..slots_at + 24].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&path, &forward).unwrap();
        assert!(matches!(
            load(&path, 9),
            Err(Unusable::Damaged("a chain pointing forwards"))
        ));
        let mut other = good.clone();
        other[..8].copy_from_slice(b"LWKNOWN2");
        std::fs::write(&path, &other).unwrap();
        assert!(matches!(load(&path, 9), Err(Unusable::Format)));
        std::fs::write(&path, &good).unwrap();
        assert!(load(&path, 9).unwrap().is_some());
    }
}
