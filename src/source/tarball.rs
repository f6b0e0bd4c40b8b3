//! tar archives and gzip streams (so `.tar.gz`/`.tgz` too), read strictly in order.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::budget::{Compressed, Counter, CountingReader, RatioReader};
use super::walk::{Flow, Walker};

impl Walker<'_, '_> {
    /// A gzip layer keeps its name: `logs.tar.gz!Dev1/Passwords.txt` reads better than
    /// `logs.tar.gz!logs.tar!Dev1/Passwords.txt`.
    pub(super) fn gzip(&mut self, name: &str, input: &mut dyn Read, depth: u32) -> Flow {
        let consumed = Counter::default();
        let counted = CountingReader {
            inner: input,
            count: consumed.clone(),
        };
        let ratio = self.limits().max_compression_ratio;
        let mut out = RatioReader::new(
            MultiGzDecoder::new(counted),
            Compressed::Counted(consumed),
            ratio,
            Counter::default(),
        );
        match self.stream(name, &mut out, depth) {
            Ok(flow) => flow,
            Err(e) => {
                self.broken(name, "gzip", e);
                Flow::Failed
            }
        }
    }

    pub(super) fn tar(&mut self, name: &str, input: &mut dyn Read, depth: u32) -> Flow {
        let mut archive = tar::Archive::new(input);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.broken(name, "tar", e);
                return Flow::Failed;
            }
        };
        let mut files = 0u64;
        for entry in entries {
            if self.must_stop() || !self.count_entry(name) {
                return Flow::Stop;
            }
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    // A tar has no index: after a broken header nothing more can be found.
                    self.broken(name, "tar", e);
                    return Flow::Failed;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            files += 1;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let entry_name = self.entry_name(name, &raw);
            let flow = self.stream_reported(&entry_name, &mut entry, depth);
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        self.note_empty(name, "tar", files);
        Flow::Done
    }
}
