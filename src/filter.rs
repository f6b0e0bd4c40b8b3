//! The organisation's identity hashes as a Bloom filter: the cheap first test of every
//! identity read from a dump.
//!
//! Fourth stage of the pipeline. A "no" from the filter is final; a "maybe" is confirmed
//! exactly against the store before anything becomes a finding, so the false-positive rate
//! costs only lookups, never a wrong mail.
//!
//! The filter is rebuilt on every directory import and saved in the state directory with
//! the directory's generation number. When it is loaded, a generation that differs from
//! the store's (a crash between the two writes, a copied state dir) means it is stale, and
//! the caller rebuilds it from the store rather than trust it.

use std::io::Write;
use std::path::{Path, PathBuf};

use bloomfilter::Bloom;
use rand::RngCore;

use crate::identity::IdentityHash;

const MAGIC: &[u8; 8] = b"LWBLOOM1";
pub const FILE_NAME: &str = "accounts.bloom";

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("cannot build a filter: {0}")]
    Build(&'static str),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a leakwatch filter file ({why})")]
    Corrupt { path: PathBuf, why: &'static str },
}

pub struct AccountFilter {
    bloom: Bloom<[u8; 20]>,
    generation: u64,
    items: u64,
}

impl std::fmt::Debug for AccountFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountFilter")
            .field("generation", &self.generation)
            .field("items", &self.items)
            .field("bits", &self.bloom.len())
            .finish()
    }
}

impl AccountFilter {
    /// Builds a filter of `hashes` sized for `fp_rate`.
    ///
    /// The seed is drawn at random: a seed whose two halves are equal makes both SipHash
    /// keys the same and was measured to raise the false-positive rate to 2.3 %.
    pub fn build(
        hashes: impl ExactSizeIterator<Item = IdentityHash>,
        fp_rate: f64,
        generation: u64,
    ) -> Result<AccountFilter, FilterError> {
        let mut f = AccountFilter::with_capacity(hashes.len() as u64, fp_rate, generation)?;
        for h in hashes {
            f.insert(&h);
        }
        Ok(f)
    }

    /// An empty filter sized for `items` hashes; fill it with [`AccountFilter::insert`].
    pub fn with_capacity(
        items: u64,
        fp_rate: f64,
        generation: u64,
    ) -> Result<AccountFilter, FilterError> {
        let mut seed = [0u8; 32];
        loop {
            rand::rng().fill_bytes(&mut seed);
            if seed[..16] != seed[16..] {
                break;
            }
        }
        let bloom = Bloom::new_for_fp_rate_with_seed(items.max(1) as usize, fp_rate, &seed)
            .map_err(FilterError::Build)?;
        Ok(AccountFilter {
            bloom,
            generation,
            items,
        })
    }

    pub fn insert(&mut self, hash: &IdentityHash) {
        self.bloom.set(&hash.0);
    }

    /// Whether `hash` may be one of the organisation's. False means certainly not.
    #[inline]
    pub fn may_contain(&self, hash: &IdentityHash) -> bool {
        self.bloom.check(&hash.0)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    pub fn size_bytes(&self) -> u64 {
        self.bloom.len() / 8
    }

    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Writes the filter atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), FilterError> {
        let io = |source| FilterError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("bloom.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(MAGIC).map_err(io)?;
        f.write_all(&self.generation.to_le_bytes()).map_err(io)?;
        f.write_all(&self.items.to_le_bytes()).map_err(io)?;
        f.write_all(&self.bloom.to_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn load(path: &Path) -> Result<AccountFilter, FilterError> {
        let bytes = std::fs::read(path).map_err(|source| FilterError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |why| FilterError::Corrupt {
            path: path.to_path_buf(),
            why,
        };
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(corrupt("bad header"));
        }
        let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let items = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let bloom = Bloom::from_bytes(bytes[24..].to_vec()).map_err(corrupt)?;
        Ok(AccountFilter {
            bloom,
            generation,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(prefix: &str, n: usize) -> Vec<IdentityHash> {
        (0..n)
            .map(|i| IdentityHash::of(&format!("{prefix}{i}@example.net")))
            .collect()
    }

    #[test]
    fn no_false_negatives_and_fp_rate_near_target() {
        let members = hashes("member", 20_000);
        let f = AccountFilter::build(members.iter().copied(), 1e-3, 7).unwrap();
        assert!(members.iter().all(|h| f.may_contain(h)));
        let outsiders = hashes("outsider", 200_000);
        let fp = outsiders.iter().filter(|h| f.may_contain(h)).count();
        // Expected about 200; 3x margin so that the test does not flake, while a broken seed
        // (2.3 % = 4600) fails it.
        assert!(fp < 600, "false positives: {fp}");
    }

    #[test]
    fn save_load_roundtrip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = AccountFilter::path_in(dir.path());
        let members = hashes("m", 100);
        let f = AccountFilter::build(members.iter().copied(), 1e-6, 42).unwrap();
        f.save(&path).unwrap();
        let g = AccountFilter::load(&path).unwrap();
        assert_eq!(g.generation(), 42);
        assert_eq!(g.items(), 100);
        assert!(members.iter().all(|h| g.may_contain(h)));
        assert!(!g.may_contain(&IdentityHash::of("nobody@example.net")));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            AccountFilter::load(&path),
            Err(FilterError::Corrupt { .. })
        ));
    }

    #[test]
    fn empty_directory_builds() {
        let f = AccountFilter::build(std::iter::empty(), 1e-6, 1).unwrap();
        assert!(!f.may_contain(&IdentityHash::of("a@example.net")));
    }
}
