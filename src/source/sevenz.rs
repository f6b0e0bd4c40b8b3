//! 7z archives, encrypted or not, solid or not.
//!
//! A 7z archive's password covers the whole archive (and often its file list), so the
//! passwords are tried on the archive, not per entry: no password first, then each of
//! the feed's `archive_passwords`, until one reads the first entry. The ratio limit is
//! on the whole archive, since a solid block's entries have no compressed size of their own.

use std::io::{Read, Seek, SeekFrom};

use sevenz_rust2::{ArchiveReader, EntryDecision, Password};

use super::budget::{Compressed, Counter, RatioReader};
use super::walk::{Flow, Walker};

impl Walker<'_, '_> {
    pub(super) fn sevenz<R: Read + Seek>(&mut self, name: &str, mut r: R, depth: u32) -> Flow {
        let size = match r.seek(SeekFrom::End(0)) {
            Ok(s) => s,
            Err(e) => {
                self.io_failed(name, e);
                return Flow::Failed;
            }
        };
        let passwords = self.opts.passwords;
        let mut last_error = String::new();
        for attempt in 0..=passwords.len() {
            if r.seek(SeekFrom::Start(0)).is_err() {
                break;
            }
            let password = match attempt {
                0 => Password::empty(),
                k => Password::from(passwords[k - 1].as_str()),
            };
            let mut reader = match ArchiveReader::new(&mut r, password) {
                Ok(reader) => reader,
                Err(
                    e @ (sevenz_rust2::Error::PasswordRequired
                    | sevenz_rust2::Error::MaybeBadPassword(_)),
                ) => {
                    last_error = e.to_string();
                    continue;
                }
                Err(e) => {
                    // An encrypted file list read with a wrong key looks corrupt.
                    if attempt < passwords.len() {
                        last_error = e.to_string();
                        continue;
                    }
                    self.broken(name, "7z", e);
                    return Flow::Failed;
                }
            };
            self.handler.listed(
                &mut reader
                    .archive()
                    .files
                    .iter()
                    .filter(|f| f.has_stream && !f.is_directory)
                    .map(|f| format!("{name}!{}", super::clean_name(f.name()))),
            );
            reader.set_thread_count(1);
            let produced = Counter::default();
            let ratio = self.limits().max_compression_ratio;
            let mut delivered = 0u64;
            let mut files = 0u64;
            let mut flow = Flow::Done;
            let result = reader.for_each_entries_with_decision(|entry, rd| {
                if entry.is_directory || !entry.has_stream {
                    return Ok(EntryDecision::Continue);
                }
                if self.must_stop() || !self.count_entry(name) {
                    flow = Flow::Stop;
                    return Ok(EntryDecision::Stop);
                }
                files += 1;
                let entry_name = self.entry_name(name, &entry.name);
                let mut limited =
                    RatioReader::new(rd, Compressed::Fixed(size), ratio, produced.clone());
                match self.stream(&entry_name, &mut limited, depth) {
                    // The first bytes of the first entry did not decode: a wrong password
                    // (or a corrupt archive), told apart by the next attempt.
                    Err(e) if delivered == 0 => Err(sevenz_rust2::Error::MaybeBadPassword(e)),
                    Err(e) => {
                        self.io_failed(&entry_name, e);
                        Ok(EntryDecision::SkipBlock)
                    }
                    Ok(Flow::Stop) => {
                        flow = Flow::Stop;
                        Ok(EntryDecision::Stop)
                    }
                    Ok(Flow::Failed) => {
                        delivered += 1;
                        // Do not decode the rest of a block whose entry broke a limit.
                        Ok(EntryDecision::SkipBlock)
                    }
                    Ok(Flow::Done) => {
                        delivered += 1;
                        Ok(EntryDecision::Continue)
                    }
                }
            });
            match result {
                Ok(()) => {
                    self.note_empty(name, "7z", files);
                    return flow;
                }
                Err(e) if delivered == 0 && attempt < passwords.len() => {
                    last_error = e.to_string();
                }
                Err(e) => {
                    let message = if delivered == 0 && attempt > 0 {
                        format!(
                            "none of the {} archive_passwords opens it ({e})",
                            passwords.len()
                        )
                    } else {
                        e.to_string()
                    };
                    self.broken(name, "7z", message);
                    return Flow::Failed;
                }
            }
        }
        let message = format!(
            "encrypted, and none of the {} archive_passwords opens it ({last_error})",
            passwords.len()
        );
        self.broken(name, "7z", message);
        Flow::Failed
    }
}
