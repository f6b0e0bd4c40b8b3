//! Where a download waits between the network and the parser, without ever being on disk
//! in plain text.
//!
//! A dump fetched over HTTP must be read twice at most (a zip's directory is at its end)
//! and may be far larger than memory, so it goes to a file. That file would hold leaked
//! passwords, so it is encrypted with ChaCha20 under a key made for this download and kept
//! only in memory, and it is unlinked as soon as it is created: a crash or `kill -9`
//! leaves nothing behind, not even an encrypted file, and no one else can open it.
//! ChaCha20 is a seekable stream cipher, so reading at any offset costs no more than
//! reading in order.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use rand::RngCore;

pub struct Spool {
    file: File,
    writer: ChaCha20,
    reader: ChaCha20,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("len", &self.len).finish()
    }
}

impl Spool {
    /// Creates an empty spool file in `dir` (mode 0600, unlinked at once).
    pub fn create(dir: &Path) -> io::Result<Spool> {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut key);
        rand::rng().fill_bytes(&mut nonce);
        let name = dir.join(format!(".spool-{:016x}", rand::rng().next_u64()));
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&name)?
        };
        std::fs::remove_file(&name)?;
        Ok(Spool {
            file,
            writer: ChaCha20::new(&key.into(), &nonce.into()),
            reader: ChaCha20::new(&key.into(), &nonce.into()),
            len: 0,
            pos: 0,
            buf: Vec::new(),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends plaintext (encrypted on the way).
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(data);
        self.writer.apply_keystream(&mut self.buf);
        self.file.write_all_at(&self.buf, self.len)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Forgets everything written (a server that ignored a resume sends it all again).
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.pos = 0;
        self.writer.seek(0u64);
        Ok(())
    }

    /// Makes sure the bytes are in the file before the parser reads them back.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Read for Spool {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let want = out.len().min((self.len - self.pos) as usize);
        let n = self.file.read_at(&mut out[..want], self.pos)?;
        self.reader.seek(self.pos);
        self.reader.apply_keystream(&mut out[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Spool {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let new =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        self.pos = new;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_but_the_directory_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::create(dir.path()).unwrap();
        let plain: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("user{i}@example.net:pw{i}\n").into_bytes())
            .collect();
        for chunk in plain.chunks(7919) {
            s.append(chunk).unwrap();
        }
        assert_eq!(s.len(), plain.len() as u64);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the spool is unlinked"
        );
        // Reads at any offset decrypt.
        s.seek(SeekFrom::Start(12_345)).unwrap();
        let mut part = vec![0u8; 1000];
        s.read_exact(&mut part).unwrap();
        assert_eq!(part, plain[12_345..13_345]);
        s.seek(SeekFrom::End(-10)).unwrap();
        let mut tail = Vec::new();
        s.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, plain[plain.len() - 10..]);
        s.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, plain);
    }

    #[test]
    fn the_bytes_on_disk_are_not_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::create(dir.path()).unwrap();
        let plain = b"alice@agence-exemple.fr:Secret-Password-1\n".repeat(100);
        s.append(&plain).unwrap();
        let mut raw = vec![0u8; plain.len()];
        s.file.read_exact_at(&mut raw, 0).unwrap();
        assert_ne!(raw, plain);
        assert!(!raw.windows(6).any(|w| w == b"Secret"));
        s.clear().unwrap();
        s.append(b"again").unwrap();
        s.seek(SeekFrom::Start(0)).unwrap();
        let mut back = String::new();
        s.read_to_string(&mut back).unwrap();
        assert_eq!(back, "again");
    }
}
