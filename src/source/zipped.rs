//! zip archives: entries read one by one as streams, encrypted ones (ZipCrypto or AES)
//! opened with the feed's `archive_passwords`.

use std::io::{Read, Seek, SeekFrom};

use crate::parse::sheet::SheetKind;

use super::budget::{Compressed, Counter, Metered, RatioReader};
use super::walk::{Flow, Walker};

impl Walker<'_, '_> {
    pub(super) fn zip<R: Read + Seek>(&mut self, name: &str, r: R, depth: u32) -> Flow {
        let consumed = Counter::default();
        let r = Metered {
            inner: r,
            count: consumed.clone(),
        };
        let mut archive = match zip::ZipArchive::new(r) {
            Ok(a) => a,
            Err(e) => {
                self.broken(name, "zip", e);
                return Flow::Failed;
            }
        };
        let declared = archive.len() as u64;
        let max = self.limits().max_archive_entries;
        if self.entries + declared > max {
            self.skip(
                name,
                format!("{declared} entries, over limits.max_archive_entries ({max})"),
            );
            return Flow::Failed;
        }
        if let Some(kind) = spreadsheet(&mut archive) {
            return self.workbook(name, kind, archive);
        }
        self.handler.listed(
            &mut archive
                .file_names()
                .map(|n| format!("{name}!{}", super::clean_name(n))),
        );
        // The password that opened the previous entry is tried first: an archive has one.
        let mut good: Option<usize> = None;
        let mut files = 0u64;
        for i in 0..archive.len() {
            if self.must_stop() || !self.count_entry(name) {
                return Flow::Stop;
            }
            let (raw_name, is_dir, encrypted, compressed, size) = match archive.by_index_raw(i) {
                Ok(e) => (
                    e.name().to_string(),
                    e.is_dir(),
                    e.encrypted(),
                    e.compressed_size(),
                    e.size(),
                ),
                Err(e) => {
                    self.skip(&format!("{name}!#{i}"), e.to_string());
                    continue;
                }
            };
            if is_dir {
                continue;
            }
            files += 1;
            let entry_name = self.entry_name(name, &raw_name);
            let entry_max = self.limits().max_entry_bytes;
            if size > entry_max {
                self.skip(
                    &entry_name,
                    format!("declares {size} bytes, over limits.max_entry_bytes ({entry_max})"),
                );
                continue;
            }
            let file = if encrypted {
                let passwords = self.opts.passwords;
                let order = good.into_iter().chain(0..passwords.len());
                let mut opened = None;
                for k in order {
                    if archive.by_index_decrypt(i, passwords[k].as_bytes()).is_ok() {
                        opened = Some(k);
                        break;
                    }
                }
                let Some(k) = opened else {
                    self.skip(
                        &entry_name,
                        format!(
                            "encrypted, and none of the {} archive_passwords opens it",
                            passwords.len()
                        ),
                    );
                    continue;
                };
                good = Some(k);
                archive.by_index_decrypt(i, passwords[k].as_bytes())
            } else {
                archive.by_index(i)
            };
            let mut file = match file {
                Ok(f) => f,
                Err(e) => {
                    let reason = match e {
                        zip::result::ZipError::UnsupportedArchive(m) => m.to_string(),
                        other => other.to_string(),
                    };
                    self.skip(&entry_name, reason);
                    continue;
                }
            };
            // The entry's compressed bytes as its reader consumes them, not as declared.
            let ratio = self.limits().max_compression_ratio;
            let mut limited = RatioReader::new(
                &mut file,
                Compressed::Since(consumed.clone(), consumed.get()),
                ratio,
                Counter::default(),
            );
            let flow = self.stream_reported(&entry_name, &mut limited, depth);
            if depth == 1 {
                self.handler.archive_progress(compressed);
            }
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        self.note_empty(name, "zip", files);
        Flow::Done
    }

    /// A workbook: checked against the limits by what its entries declare (the
    /// spreadsheet reader decompresses them itself), then handed over whole.
    fn workbook<R: Read + Seek>(
        &mut self,
        name: &str,
        kind: SheetKind,
        mut archive: zip::ZipArchive<R>,
    ) -> Flow {
        let (mut size, mut compressed) = (0u64, 0u64);
        for i in 0..archive.len() {
            if let Ok(e) = archive.by_index_raw(i) {
                size = size.saturating_add(e.size());
                compressed = compressed.saturating_add(e.compressed_size());
            }
        }
        self.entries += archive.len() as u64;
        let limits = self.limits();
        let ratio = limits.max_compression_ratio;
        if size > limits.max_entry_bytes {
            let max = limits.max_entry_bytes;
            self.skip(
                name,
                format!("spreadsheet of {size} bytes, over limits.max_entry_bytes ({max})"),
            );
            return Flow::Failed;
        }
        if size > compressed.saturating_mul(ratio).saturating_add(1 << 20) {
            self.skip(
                name,
                format!("spreadsheet of {size} bytes from {compressed}, over limits.max_compression_ratio ({ratio})"),
            );
            return Flow::Failed;
        }
        let mut input = archive.into_inner();
        let result = input
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.handler.workbook(name, kind, &mut input));
        match result {
            Ok(()) => Flow::Done,
            Err(e) => {
                self.io_failed(name, e);
                Flow::Failed
            }
        }
    }
}

/// Whether a zip archive is a spreadsheet: an XLSX workbook, or an OpenDocument one.
fn spreadsheet<R: Read + Seek>(archive: &mut zip::ZipArchive<R>) -> Option<SheetKind> {
    if archive.index_for_name("xl/workbook.xml").is_some() {
        return Some(SheetKind::Xlsx);
    }
    let mut mime = Vec::new();
    archive
        .by_name("mimetype")
        .ok()?
        .take(64)
        .read_to_end(&mut mime)
        .ok()?;
    (mime.trim_ascii() == b"application/vnd.oasis.opendocument.spreadsheet")
        .then_some(SheetKind::Ods)
}
