//! Packs synthetic files the ways stealer logs are sold: zip (every method leakwatch
//! reads, plain, ZipCrypto or AES), 7z (plain or encrypted), tar, tar.gz, gzip, nested.
//! Also the hostile shapes: bombs, truncations, `../` names, many tiny entries.

use std::io::{self, Cursor, Write};

use sevenz_rust2::encoder_options::AesEncoderOptions;
use sevenz_rust2::{ArchiveEntry, ArchiveWriter, EncoderMethod, Password};

/// A file to pack: its path inside the archive and its bytes.
pub type Entry = (String, Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZipMethod {
    Stored,
    Deflate,
    Bzip2,
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipLock {
    None,
    Aes256(String),
}

pub fn zip(entries: &[Entry], method: ZipMethod, lock: &ZipLock) -> io::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = match method {
        ZipMethod::Stored => zip::CompressionMethod::Stored,
        ZipMethod::Deflate => zip::CompressionMethod::Deflated,
        ZipMethod::Bzip2 => zip::CompressionMethod::Bzip2,
        ZipMethod::Zstd => zip::CompressionMethod::Zstd,
    };
    let base = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in entries {
        let opts = match lock {
            ZipLock::None => base,
            ZipLock::Aes256(pw) => base.with_aes_encryption(zip::AesMode::Aes256, pw),
        };
        w.start_file(name.as_str(), opts)
            .map_err(io::Error::other)?;
        w.write_all(data)?;
    }
    Ok(w.finish().map_err(io::Error::other)?.into_inner())
}

/// One entry of a zip written by hand (for what the `zip` crate cannot write).
struct RawEntry<'a> {
    name: &'a str,
    method: u16,
    flags: u16,
    crc: u32,
    size: u32,
    /// As stored: compressed, and encrypted if `flags` says so.
    data: Vec<u8>,
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

fn raw_zip(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let header = |out: &mut Vec<u8>, e: &RawEntry<'_>, central: Option<u32>| {
        out.extend(
            if central.is_some() {
                0x0201_4b50u32
            } else {
                0x0403_4b50
            }
            .to_le_bytes(),
        );
        if central.is_some() {
            out.extend(21u16.to_le_bytes()); // made by
        }
        out.extend(21u16.to_le_bytes()); // version needed (2.1: Deflate64)
        out.extend(e.flags.to_le_bytes());
        out.extend(e.method.to_le_bytes());
        out.extend(0u32.to_le_bytes()); // time, date
        out.extend(e.crc.to_le_bytes());
        out.extend((e.data.len() as u32).to_le_bytes());
        out.extend(e.size.to_le_bytes());
        out.extend((e.name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra
        if let Some(offset) = central {
            out.extend([0u8; 6]); // comment length, disk, internal attributes
            out.extend(0u32.to_le_bytes()); // external attributes
            out.extend(offset.to_le_bytes());
        }
        out.extend(e.name.as_bytes());
    };
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(out.len() as u32);
        header(&mut out, e, None);
        out.extend(&e.data);
    }
    let cd_start = out.len() as u32;
    for (e, off) in entries.iter().zip(offsets) {
        header(&mut out, e, Some(off));
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend(cd_len.to_le_bytes());
    out.extend(cd_start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A zip whose one entry uses Deflate64 (method 9), which no Rust writer produces: the
/// stream is made of stored deflate blocks, which Deflate64 reads exactly as Deflate does.
pub fn zip_deflate64(name: &str, data: &[u8]) -> Vec<u8> {
    let mut stream = Vec::new();
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        stream.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        stream.extend(len.to_le_bytes());
        stream.extend((!len).to_le_bytes());
        stream.extend_from_slice(chunk);
    }
    raw_zip(&[RawEntry {
        name,
        method: 9,
        flags: 0,
        crc: crc32(data),
        size: data.len() as u32,
        data: stream,
    }])
}

/// The traditional PKWARE cipher ("ZipCrypto"), which the `zip` crate reads but no
/// longer writes. Weak, and still what most sellers use.
struct ZipCrypto {
    keys: [u32; 3],
}

impl ZipCrypto {
    fn crc_byte(crc: u32, b: u8) -> u32 {
        let mut c = (crc ^ u32::from(b)) & 0xff;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        c ^ (crc >> 8)
    }

    fn new(password: &[u8]) -> Self {
        let mut z = ZipCrypto {
            keys: [0x1234_5678, 0x2345_6789, 0x3456_7890],
        };
        for &b in password {
            z.update(b);
        }
        z
    }

    fn update(&mut self, b: u8) {
        let k = &mut self.keys;
        k[0] = Self::crc_byte(k[0], b);
        k[1] = k[1]
            .wrapping_add(k[0] & 0xff)
            .wrapping_mul(134_775_813)
            .wrapping_add(1);
        k[2] = Self::crc_byte(k[2], (k[1] >> 24) as u8);
    }

    fn encrypt(&mut self, b: u8) -> u8 {
        let t = (self.keys[2] | 2) as u16;
        let out = b ^ ((t.wrapping_mul(t ^ 1)) >> 8) as u8;
        self.update(b);
        out
    }
}

/// A zip of deflated entries encrypted with ZipCrypto under `password`.
pub fn zip_zipcrypto(entries: &[Entry], password: &str, seed: u64) -> io::Result<Vec<u8>> {
    let mut rng = super::Rng::new(seed);
    let mut raw = Vec::new();
    for (name, data) in entries {
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(data)?;
        let compressed = d.finish()?;
        let crc = crc32(data);
        let mut header = [0u8; 12];
        for b in &mut header[..11] {
            *b = rng.below(256) as u8;
        }
        header[11] = (crc >> 24) as u8;
        let mut z = ZipCrypto::new(password.as_bytes());
        let stored: Vec<u8> = header
            .iter()
            .chain(&compressed)
            .map(|&b| z.encrypt(b))
            .collect();
        raw.push((name.as_str(), crc, data.len() as u32, stored));
    }
    let entries: Vec<RawEntry<'_>> = raw
        .into_iter()
        .map(|(name, crc, size, data)| RawEntry {
            name,
            method: 8,
            flags: 1,
            crc,
            size,
            data,
        })
        .collect();
    Ok(raw_zip(&entries))
}

/// A 7z archive, solid LZMA2, encrypted with AES-256 (file list too) when `password` is set.
pub fn sevenz(entries: &[Entry], password: Option<&str>) -> io::Result<Vec<u8>> {
    let mut w = ArchiveWriter::new(Cursor::new(Vec::new())).map_err(io::Error::other)?;
    if let Some(pw) = password {
        w.set_content_methods(vec![
            AesEncoderOptions::new(Password::from(pw)).into(),
            EncoderMethod::LZMA2.into(),
        ]);
        w.set_encrypt_header(true);
    }
    for (name, data) in entries {
        w.push_archive_entry(ArchiveEntry::new_file(name), Some(&data[..]))
            .map_err(io::Error::other)?;
    }
    Ok(w.finish()?.into_inner())
}

pub fn tar(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..])?;
    }
    b.into_inner()
}

pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    g.write_all(data)?;
    g.finish()
}

/// A zip of one deflated entry of `size` zero bytes, written without holding it in memory.
pub fn zip_bomb(size: u64) -> io::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(size > u32::MAX as u64);
    w.start_file("Passwords.txt", opts)
        .map_err(io::Error::other)?;
    let block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(w.finish().map_err(io::Error::other)?.into_inner())
}

/// A RAR 4 archive of stored (uncompressed) entries, written by hand: no free tool writes
/// RAR, and the readers must be tested on the format sellers use most. The layout is the
/// one RARLAB documents (`technote.txt`): marker, archive header, a file header and the
/// data for each entry, end of archive; header CRCs are the low 16 bits of CRC-32.
pub fn rar4_stored(entries: &[Entry]) -> Vec<u8> {
    fn header(out: &mut Vec<u8>, kind: u8, flags: u16, fields: &[u8]) {
        let mut h = vec![kind];
        h.extend(flags.to_le_bytes());
        h.extend(((7 + fields.len()) as u16).to_le_bytes());
        h.extend(fields);
        out.extend(((crc32(&h) & 0xffff) as u16).to_le_bytes());
        out.extend(h);
    }
    let mut out = b"Rar!\x1a\x07\x00".to_vec();
    header(&mut out, 0x73, 0, &[0; 6]);
    for (name, data) in entries {
        let mut f = Vec::new();
        f.extend((data.len() as u32).to_le_bytes()); // packed size
        f.extend((data.len() as u32).to_le_bytes()); // unpacked size
        f.push(2); // host OS: Windows
        f.extend(crc32(data).to_le_bytes());
        f.extend(0x5A21_0000u32.to_le_bytes()); // DOS time: 2025-01-01
        f.push(29); // version needed
        f.push(0x30); // method: store
        f.extend((name.len() as u16).to_le_bytes());
        f.extend(0x20u32.to_le_bytes()); // attributes: archive
        f.extend(name.replace('/', "\\").as_bytes());
        header(&mut out, 0x74, 0x8000, &f);
        out.extend(data);
    }
    header(&mut out, 0x7b, 0x4000, &[]);
    out
}

/// A RAR 5 archive of stored entries, written by hand (see [`rar4_stored`]): signature,
/// main header, a file header and the data for each entry, end of archive. Numbers are
/// variable-length integers; each header starts with the CRC-32 of what follows it.
pub fn rar5_stored(entries: &[Entry]) -> Vec<u8> {
    rar5(entries, None)
}

/// As [`rar5_stored`], each entry's data encrypted with `password` as RAR 5 does
/// (RARLAB's `technote.txt`, "File encryption record"): AES-256 in CBC mode, the key
/// PBKDF2-HMAC-SHA256 of the password over a salt, 2^15 rounds; the record carries the
/// salt, the IV and the password check value (the same chain 32 rounds on, folded into 8
/// bytes, and 4 bytes of its SHA-256). The headers stay clear, as `rar a -p` writes them.
/// `seed` picks the salt and IVs, so an archive is the same from run to run.
pub fn rar5_encrypted(entries: &[Entry], password: &str, seed: u64) -> Vec<u8> {
    rar5(entries, Some((password, seed)))
}

/// `(password, seed)`: see [`rar5_encrypted`].
fn rar5(entries: &[Entry], encrypt: Option<(&str, u64)>) -> Vec<u8> {
    fn vint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn block(out: &mut Vec<u8>, body: &[u8]) {
        let mut sized = Vec::new();
        vint(&mut sized, body.len() as u64);
        sized.extend(body);
        out.extend(crc32(&sized).to_le_bytes());
        out.extend(sized);
    }
    let mut rng = crate::synth::Rng::new(encrypt.map_or(0, |(_, seed)| seed));
    let mut out = b"Rar!\x1a\x07\x01\x00".to_vec();
    let mut main = Vec::new();
    vint(&mut main, 1); // main archive header
    vint(&mut main, 0); // header flags
    vint(&mut main, 0); // archive flags
    block(&mut out, &main);
    for (name, data) in entries {
        let (packed, extra) = match encrypt {
            None => (data.clone(), Vec::new()),
            Some((password, _)) => {
                let mut salt = [0u8; 16];
                let mut iv = [0u8; 16];
                for b in salt.iter_mut().chain(iv.iter_mut()) {
                    *b = rng.below(256) as u8;
                }
                let (key, check) = rar5_keys(password, &salt, RAR5_KDF_LG2);
                let mut record = Vec::new();
                vint(&mut record, 0x01); // file encryption record
                vint(&mut record, 0); // version: AES-256
                vint(&mut record, 0x01); // flags: password check present
                record.push(RAR5_KDF_LG2);
                record.extend(salt);
                record.extend(iv);
                record.extend(check);
                let mut extra = Vec::new();
                vint(&mut extra, record.len() as u64);
                extra.extend(record);
                (aes256_cbc(&key, &iv, data), extra)
            }
        };
        let mut f = Vec::new();
        vint(&mut f, 2); // file header
        if extra.is_empty() {
            vint(&mut f, 0x02); // header flags: a data area follows
        } else {
            vint(&mut f, 0x03); // header flags: an extra area, and a data area follows
            vint(&mut f, extra.len() as u64);
        }
        vint(&mut f, packed.len() as u64); // data size
        vint(&mut f, 0x04); // file flags: data CRC-32 present
        vint(&mut f, data.len() as u64); // unpacked size
        vint(&mut f, 0x20); // attributes
        f.extend(crc32(data).to_le_bytes());
        vint(&mut f, 0); // compression: version 0, store
        vint(&mut f, 0); // host OS: Windows
        vint(&mut f, name.len() as u64);
        f.extend(name.as_bytes());
        f.extend(extra);
        block(&mut out, &f);
        out.extend(packed);
    }
    let mut end = Vec::new();
    vint(&mut end, 5); // end of archive
    vint(&mut end, 0);
    vint(&mut end, 0);
    block(&mut out, &end);
    out
}

/// PBKDF2 rounds of a synthetic RAR 5 archive, as a power of two (RAR's own default).
const RAR5_KDF_LG2: u8 = 15;

/// RAR 5's key and password check value for `password` over `salt`: PBKDF2-HMAC-SHA256
/// run `2^lg2` rounds for the key, on to `+ 32` for the check value, folded to 8 bytes
/// and followed by 4 bytes of their SHA-256.
fn rar5_keys(password: &str, salt: &[u8; 16], lg2: u8) -> ([u8; 32], [u8; 12]) {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let mac = |data: &[&[u8]]| -> [u8; 32] {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(password.as_bytes())
            .expect("HMAC takes any key length");
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes().into()
    };
    let mut u = mac(&[salt, &1u32.to_be_bytes()]);
    let mut acc = u;
    let rounds = 1u32 << lg2;
    let mut key = [0u8; 32];
    for round in 2..=rounds + 32 {
        u = mac(&[&u]);
        for (a, b) in acc.iter_mut().zip(&u) {
            *a ^= b;
        }
        if round == rounds {
            key = acc;
        }
    }
    let mut check = [0u8; 12];
    for (i, b) in acc.iter().enumerate() {
        check[i % 8] ^= b;
    }
    let sum = Sha256::digest(&check[..8]);
    check[8..].copy_from_slice(&sum[..4]);
    (key, check)
}

/// `data` encrypted with AES-256 in CBC mode, padded with zeros to whole blocks.
fn aes256_cbc(key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
    let cipher = aes::Aes256::new(GenericArray::from_slice(key));
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut prev = *iv;
    for chunk in data.chunks(16) {
        let mut block = [0u8; 16];
        block[..chunk.len()].copy_from_slice(chunk);
        for (b, p) in block.iter_mut().zip(&prev) {
            *b ^= p;
        }
        let mut ga = GenericArray::from(block);
        cipher.encrypt_block(&mut ga);
        prev.copy_from_slice(&ga);
        out.extend_from_slice(&ga);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipcrypto_zip_reads_back_with_its_password_only() {
        let entries = vec![
            (
                "a/Passwords.txt".to_string(),
                b"URL: x\nLogin: y\nPassword: z\n".repeat(50),
            ),
            ("a/System.txt".to_string(), b"HWID: 1\n".to_vec()),
        ];
        let z = zip_zipcrypto(&entries, "s3cret", 1).unwrap();
        let mut a = zip::ZipArchive::new(Cursor::new(z)).unwrap();
        assert_eq!(a.len(), 2);
        for (i, (name, data)) in entries.iter().enumerate() {
            assert!(a.by_index_decrypt(i, b"wrong").is_err());
            let mut f = a.by_index_decrypt(i, b"s3cret").unwrap();
            assert_eq!(f.name(), name);
            let mut back = Vec::new();
            io::Read::read_to_end(&mut f, &mut back).unwrap();
            assert_eq!(&back, data);
        }
    }

    #[test]
    fn deflate64_zip_reads_back() {
        let data = b"URL: https://x.example/\nUsername: a@example.net\nPassword: pw\n".repeat(3000);
        let z = zip_deflate64("Passwords.txt", &data);
        let mut a = zip::ZipArchive::new(Cursor::new(z)).unwrap();
        let mut f = a.by_index(0).unwrap();
        assert_eq!(f.compression(), zip::CompressionMethod::Deflate64);
        let mut back = Vec::new();
        io::Read::read_to_end(&mut f, &mut back).unwrap();
        assert_eq!(back, data);
    }
}
