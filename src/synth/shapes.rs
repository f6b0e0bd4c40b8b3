//! Dumps in every shape leak sites publish, with planted accounts: SQL (mysqldump with
//! `CREATE TABLE` and extended inserts, PostgreSQL `COPY`, inserts without a column
//! list), JSON (pretty, nested, NDJSON), tables (Windows-1252 `;` CSV with quoted fields
//! across lines, UTF-16 with and without a byte-order mark, header-less), spreadsheets
//! (XLSX, ODS), text (mail headers, mbox, LDIF, vCard, HTML, XML, a forum paste) and the
//! combo variants. Each file holds its own planted accounts among decoys: lookalike
//! domains, org addresses no account has, strangers.
//!
//! With `hostile`, a second folder holds the same kinds of file broken the ways dumps are
//! broken: an unterminated quote, a statement of many megabytes on one line, invalid
//! bytes mid-file, a truncated workbook; each still holds planted accounts before (and,
//! where the shape allows, after) the damage.

use std::io;
use std::path::Path;

use super::{
    directory, pack, stranger, word, write_directory_csv, Rng, SynthAccount, DEMO_ORG_DOMAIN,
};

/// One account planted in one file: its address, and the password next to it where the
/// shape labels one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    pub email: String,
    pub password: Option<String>,
    /// The password is a hash (a `password_hash` finding, not a `password` one).
    pub hashed: bool,
}

/// A written dump and what it holds.
#[derive(Debug, Clone)]
pub struct ShapeFile {
    /// Path relative to the scenario's folder.
    pub path: String,
    pub planted: Vec<Planted>,
    /// Whether a reader must find every planted account (not so in a truncated file).
    pub promised: bool,
}

#[derive(Debug, Clone)]
pub struct ShapesScenario {
    pub accounts: Vec<SynthAccount>,
    pub files: Vec<ShapeFile>,
    /// Every password planted (of accounts and decoys): none may reach the state.
    pub passwords: Vec<String>,
    /// Org-domain addresses no account has (unknown identities for the digest).
    pub unknown: Vec<String>,
}

/// A password with the bytes that break naive readers: quotes, backslashes, separators,
/// and sometimes an accented letter.
fn hostile_password(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const ODD: &[&str] = &["'", "\"", "\\", ",", ";", ":", "|", "é", "!", "#", "&", "<"];
    let mut p: String = (0..6 + rng.below(6))
        .map(|_| *rng.pick(CHARS) as char)
        .collect();
    for _ in 0..1 + rng.below(2) {
        let at = rng.below(p.len() as u64 + 1) as usize;
        let at = (0..=at).rev().find(|&i| p.is_char_boundary(i)).unwrap_or(0);
        p.insert_str(at, rng.pick::<&str>(ODD));
    }
    p
}

/// A plain password (for shapes where a separator would be ambiguous by design, such as
/// `addr pass`).
fn plain_password(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#";
    (0..8 + rng.below(6))
        .map(|_| *rng.pick(CHARS) as char)
        .collect()
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn json_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn csv_quote(s: &str, d: char) -> String {
    if s.contains([d, '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend([0xFF, 0xFE]);
    }
    for unit in text.encode_utf16() {
        out.extend(unit.to_le_bytes());
    }
    out
}

fn windows_1252(text: &str) -> Vec<u8> {
    encoding_rs::WINDOWS_1252.encode(text).0.into_owned()
}

/// The people of one file: planted accounts and decoys, shuffled into rows.
struct Rows {
    /// (address, password, planted).
    rows: Vec<(String, String, bool)>,
}

/// The generator's state.
struct Gen<'a> {
    rng: Rng,
    accounts: &'a [SynthAccount],
    next: usize,
    per_file: usize,
    passwords: Vec<String>,
    unknown: Vec<String>,
    files: Vec<ShapeFile>,
    dir: &'a Path,
}

impl Gen<'_> {
    /// The next `per_file` accounts, with decoys: a lookalike of one, an unknown org
    /// address, strangers. `password` draws each row's password.
    fn rows(&mut self, password: fn(&mut Rng) -> String) -> Rows {
        let mut rows = Vec::new();
        for _ in 0..self.per_file {
            let a = &self.accounts[self.next % self.accounts.len()];
            self.next += 1;
            let pw = password(&mut self.rng);
            self.passwords.push(pw.clone());
            rows.push((a.email.clone(), pw, true));
            if self.rng.chance(40) {
                let s = stranger(&mut self.rng);
                let pw = password(&mut self.rng);
                self.passwords.push(pw.clone());
                rows.push((s, pw, false));
            }
        }
        let local = rows[0].0.split('@').next().unwrap_or("x").to_string();
        let lookalike = format!("{local}@{DEMO_ORG_DOMAIN}.evil.example");
        let unknown = format!(
            "{}.inconnu{}@{DEMO_ORG_DOMAIN}",
            word(&mut self.rng, 2),
            self.files.len()
        );
        self.unknown.push(unknown.clone());
        for decoy in [lookalike, unknown] {
            let pw = password(&mut self.rng);
            self.passwords.push(pw.clone());
            let at = self.rng.below(rows.len() as u64) as usize;
            rows.insert(at, (decoy, pw, false));
        }
        Rows { rows }
    }

    fn write(
        &mut self,
        path: &str,
        bytes: &[u8],
        rows: &Rows,
        with_passwords: bool,
    ) -> io::Result<()> {
        let full = self.dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(full, bytes)?;
        self.files.push(ShapeFile {
            path: path.to_string(),
            planted: rows
                .rows
                .iter()
                .filter(|r| r.2)
                .map(|(e, p, _)| Planted {
                    email: e.clone(),
                    password: with_passwords.then(|| p.clone()),
                    hashed: with_passwords && crate::parse::hashed::classify(p).is_some(),
                })
                .collect(),
            promised: true,
        });
        Ok(())
    }

    fn name(&mut self) -> String {
        let first = word(&mut self.rng, 2);
        let last = word(&mut self.rng, 3);
        format!(
            "{}{} {}",
            &first[..1].to_uppercase(),
            &first[1..],
            last.to_uppercase()
        )
    }
}

/// Writes `dir/accounts.csv` and one dump of every shape under `dir/dumps/` (and, with
/// `hostile`, broken ones under `dir/hostile/`), `per_file` accounts planted in each.
pub fn write_shapes(
    dir: &Path,
    seed: u64,
    per_file: usize,
    hostile: bool,
) -> io::Result<ShapesScenario> {
    let mut rng = Rng::new(seed);
    let files_count = 24;
    let accounts = directory(&mut rng, per_file * files_count + 50, DEMO_ORG_DOMAIN);
    std::fs::create_dir_all(dir)?;
    write_directory_csv(
        &mut std::fs::File::create(dir.join("accounts.csv"))?,
        &accounts,
    )?;
    let mut g = Gen {
        rng,
        accounts: &accounts,
        next: 0,
        per_file: per_file.max(1),
        passwords: Vec::new(),
        unknown: Vec::new(),
        files: Vec::new(),
        dir,
    };
    sql_files(&mut g)?;
    json_files(&mut g)?;
    table_files(&mut g)?;
    sheet_files(&mut g)?;
    text_files(&mut g)?;
    combo_variants(&mut g)?;
    if hostile {
        hostile_files(&mut g)?;
    }
    let (files, passwords, unknown) = (g.files, g.passwords, g.unknown);
    Ok(ShapesScenario {
        accounts,
        files,
        passwords,
        unknown,
    })
}

fn sql_files(g: &mut Gen<'_>) -> io::Result<()> {
    // mysqldump: CREATE TABLE, then one extended INSERT without a column list.
    let rows = g.rows(hostile_password);
    let mut s = String::from(
        "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost    Database: portail\n\
/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\n\
DROP TABLE IF EXISTS `wp_users`;\nCREATE TABLE `wp_users` (\n  `ID` bigint unsigned NOT NULL AUTO_INCREMENT,\n\
  `display_name` varchar(250) NOT NULL DEFAULT '',\n  `user_email` varchar(100) NOT NULL DEFAULT '',\n\
  `user_pass` varchar(255) NOT NULL DEFAULT '',\n  `user_status` int NOT NULL DEFAULT '0',\n  `avatar` blob,\n\
  PRIMARY KEY (`ID`),\n  KEY `user_email` (`user_email`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\n\
LOCK TABLES `wp_users` WRITE;\nINSERT INTO `wp_users` VALUES ",
    );
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        let name = g.name();
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "({},{},{},{},0,{})",
            i + 1,
            sql_quote(&name),
            sql_quote(email),
            sql_quote(pw),
            if i % 2 == 0 {
                "NULL"
            } else {
                "_binary 'PNG\\0\\r\\n'"
            }
        ));
    }
    s.push_str(";\nUNLOCK TABLES;\n");
    g.write("dumps/portail.sql", s.as_bytes(), &rows, true)?;

    // pg_dump: COPY … FROM stdin.
    let rows = g.rows(hostile_password);
    let mut s = String::from(
        "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\n\
COPY public.comptes (id, nom, email, encrypted_password, derniere_connexion) FROM stdin;\n",
    );
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        let name = g.name();
        let pw = pw.replace('\\', "\\\\").replace('\t', "\\t");
        s.push_str(&format!(
            "{}\t{name}\t{email}\t{pw}\t{}\n",
            i + 1,
            if i % 3 == 0 { "\\N" } else { "2025-07-01" }
        ));
    }
    s.push_str("\\.\n\nSELECT pg_catalog.setval('public.comptes_id_seq', 42, true);\n");
    g.write("dumps/pg_dump.sql", s.as_bytes(), &rows, true)?;

    // Plain INSERTs without a column list or a CREATE TABLE: the login by content only.
    let rows = g.rows(hostile_password);
    let mut s = String::from("SET NAMES utf8;\n");
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        let name = g.name();
        s.push_str(&format!(
            "INSERT INTO inscrits VALUES ({}, {}, {}, {}, '2025-10-0{}');\n",
            i + 1,
            sql_quote(&name),
            sql_quote(email),
            sql_quote(pw),
            1 + i % 9
        ));
    }
    g.write("dumps/inscrits.sql", s.as_bytes(), &rows, false)?;

    // A forum's users with hashed passwords: bcrypt and unsalted MD5 (random digits in
    // the shape of each: no one's hash).
    let rows = g.rows(fake_hash);
    let mut s = String::from(
        "INSERT INTO `phpbb_users` (`user_id`, `username`, `user_email`, `user_password`) VALUES\n",
    );
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        let sep = if i + 1 == rows.rows.len() { ";" } else { "," };
        s.push_str(&format!(
            "({}, 'membre{i}', {}, {}){sep}\n",
            i + 2,
            sql_quote(email),
            sql_quote(pw)
        ));
    }
    g.write("dumps/forum-hashes.sql", s.as_bytes(), &rows, true)
}

/// A value in the shape of a bcrypt or an MD5 hash, of random digits.
fn fake_hash(rng: &mut Rng) -> String {
    const B64: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    if rng.chance(50) {
        let tail: String = (0..53).map(|_| *rng.pick(B64) as char).collect();
        format!("$2y$10${tail}")
    } else {
        (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
            .collect()
    }
}

fn json_files(g: &mut Gen<'_>) -> io::Result<()> {
    let rows = g.rows(hostile_password);
    let mut s = String::from("[\n");
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        let name = g.name();
        if i > 0 {
            s.push_str(",\n");
        }
        s.push_str(&format!(
            "  {{\n    \"id\": {},\n    \"user\": {{\n      \"name\": {},\n      \"contact\": {{\"mail\": {}, \"phone\": \"+33 6 00 00 00 {:02}\"}}\n    }},\n    \"auth\": {{\"pass\": {}, \"mfa\": false}},\n    \"tags\": [\"a\", 1, null]\n  }}",
            i + 1,
            json_quote(&name),
            json_quote(email),
            i % 100,
            json_quote(pw)
        ));
    }
    s.push_str("\n]\n");
    g.write("dumps/export-api.json", s.as_bytes(), &rows, true)?;

    let rows = g.rows(hostile_password);
    let mut s = String::new();
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        s.push_str(&format!(
            "{{\"uid\":{},\"email\":{},\"password\":{},\"ip\":\"192.0.2.{}\"}}\n",
            i + 1,
            json_quote(email),
            json_quote(pw),
            i % 250
        ));
        if i == 1 {
            s.push_str("{\"uid\": 999, \"email\": \"broken\n");
        }
    }
    g.write("dumps/users.ndjson", s.as_bytes(), &rows, true)
}

fn table_files(g: &mut Gen<'_>) -> io::Result<()> {
    // Windows-1252, `;`, French headers, a comment field quoted across lines.
    let rows = g.rows(hostile_password);
    let mut s = String::from("Nom;Prénom;Adresse e-mail;Mot de passe;Commentaire\r\n");
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        let comment = if i % 3 == 0 {
            "Rappeler le \"conseiller\";\r\ndossier incomplet, relancé".to_string()
        } else {
            "Hélène a validé".to_string()
        };
        s.push_str(&format!(
            "{};{};{};{};{}\r\n",
            csv_quote(&word(&mut g.rng, 3).to_uppercase(), ';'),
            csv_quote("Frédérique", ';'),
            email,
            csv_quote(pw, ';'),
            csv_quote(&comment, ';')
        ));
    }
    let bytes = windows_1252(&s);
    g.write("dumps/demandeurs-cp1252.csv", &bytes, &rows, true)?;

    // Excel's "Unicode text": UTF-16 LE with a byte-order mark, tab-separated.
    let rows = g.rows(plain_password);
    let mut s = String::from("Identifiant\tE-mail\tPassword\tVille\r\n");
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        s.push_str(&format!("u{i}\t{email}\t{pw}\tSaint-Étienne\r\n"));
    }
    g.write("dumps/excel-unicode.txt", &utf16le(&s, true), &rows, true)?;

    // UTF-16 LE without a byte-order mark, comma-separated.
    let rows = g.rows(plain_password);
    let mut s = String::from("email,pwd,created\n");
    for (email, pw, _) in &rows.rows {
        s.push_str(&format!("{email},{pw},2025-07-14\n"));
    }
    g.write("dumps/export-utf16.csv", &utf16le(&s, false), &rows, true)?;

    // No header: `id,name,email,phone`.
    let rows = g.rows(plain_password);
    let mut s = String::new();
    for (i, (email, _, _)) in rows.rows.iter().enumerate() {
        let name = g.name();
        s.push_str(&format!("{},{name},{email},06{:08}\n", 1000 + i, i * 7919));
    }
    g.write(
        "dumps/partenaire-sans-entete.csv",
        s.as_bytes(),
        &rows,
        false,
    )
}

fn sheet_files(g: &mut Gen<'_>) -> io::Result<()> {
    // XLSX: shared strings, a header by name on the first sheet, none on the second.
    let rows = g.rows(hostile_password);
    let half = rows.rows.len() / 2;
    let mut strings = Vec::new();
    let mut string = |s: &str| {
        strings.push(xml_escape(s));
        strings.len() - 1
    };
    let cell = |r: usize, c: usize, idx: usize| {
        format!(
            "<c r=\"{}{}\" t=\"s\"><v>{idx}</v></c>",
            (b'A' + c as u8) as char,
            r
        )
    };
    let mut sheet1 = String::new();
    let header = [string("Nom"), string("Courriel"), string("Mot de passe")];
    sheet1.push_str(&format!(
        "<row r=\"1\">{}</row>",
        header
            .iter()
            .enumerate()
            .map(|(c, &i)| cell(1, c, i))
            .collect::<String>()
    ));
    for (i, (email, pw, _)) in rows.rows[..half].iter().enumerate() {
        let r = i + 2;
        let cells = [string("Dupont"), string(email), string(pw)];
        sheet1.push_str(&format!(
            "<row r=\"{r}\">{}</row>",
            cells
                .iter()
                .enumerate()
                .map(|(c, &x)| cell(r, c, x))
                .collect::<String>()
        ));
    }
    let mut sheet2 = String::new();
    for (i, (email, _, _)) in rows.rows[half..].iter().enumerate() {
        let r = i + 1;
        // Inline strings and a number: both kinds of cell.
        sheet2.push_str(&format!(
            "<row r=\"{r}\"><c r=\"A{r}\"><v>{}</v></c><c r=\"B{r}\" t=\"inlineStr\"><is><t>{}</t></is></c></row>",
            1000 + i,
            xml_escape(email)
        ));
    }
    let shared = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" count=\"{n}\" uniqueCount=\"{n}\">{}</sst>",
        strings.iter().map(|s| format!("<si><t>{s}</t></si>")).collect::<String>(),
        n = strings.len()
    );
    let xlsx = xlsx(&[("Clients", &sheet1), ("Export 2", &sheet2)], &shared)?;
    // The second sheet's rows carry no password column.
    let mut planted_rows = rows.rows.clone();
    for row in planted_rows[half..].iter_mut() {
        row.1.clear();
    }
    g.write(
        "dumps/classeur.xlsx",
        &xlsx,
        &Rows {
            rows: planted_rows.clone(),
        },
        true,
    )?;
    if let Some(f) = g.files.last_mut() {
        for p in &mut f.planted {
            if p.password.as_deref() == Some("") {
                p.password = None;
            }
        }
    }

    // ODS: one sheet, header by name.
    let rows = g.rows(hostile_password);
    let mut table = String::from(
        "<table:table-row><table:table-cell office:value-type=\"string\"><text:p>email</text:p></table:table-cell><table:table-cell office:value-type=\"string\"><text:p>mdp</text:p></table:table-cell></table:table-row>",
    );
    for (email, pw, _) in &rows.rows {
        table.push_str(&format!(
            "<table:table-row><table:table-cell office:value-type=\"string\"><text:p>{}</text:p></table:table-cell><table:table-cell office:value-type=\"string\"><text:p>{}</text:p></table:table-cell></table:table-row>",
            xml_escape(email),
            xml_escape(pw)
        ));
    }
    g.write("dumps/classeur.ods", &ods("Feuille1", &table)?, &rows, true)
}

/// A minimal XLSX workbook of these sheets (their `<sheetData>` rows) and shared strings.
pub fn xlsx(sheets: &[(&str, &str)], shared_strings: &str) -> io::Result<Vec<u8>> {
    let mut entries: Vec<pack::Entry> = Vec::new();
    let overrides: String = (1..=sheets.len())
        .map(|i| format!("<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"))
        .collect();
    entries.push((
        "[Content_Types].xml".into(),
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>{overrides}<Override PartName=\"/xl/sharedStrings.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml\"/></Types>").into_bytes(),
    ));
    entries.push((
        "_rels/.rels".into(),
        b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>".to_vec(),
    ));
    let sheet_list: String = sheets
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "<sheet name=\"{}\" sheetId=\"{}\" r:id=\"rId{}\"/>",
                xml_escape(name),
                i + 1,
                i + 1
            )
        })
        .collect();
    entries.push((
        "xl/workbook.xml".into(),
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets>{sheet_list}</sheets></workbook>").into_bytes(),
    ));
    let rels: String = (1..=sheets.len())
        .map(|i| format!("<Relationship Id=\"rId{i}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>"))
        .collect();
    entries.push((
        "xl/_rels/workbook.xml.rels".into(),
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">{rels}<Relationship Id=\"rId{}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings\" Target=\"sharedStrings.xml\"/></Relationships>", sheets.len() + 1).into_bytes(),
    ));
    for (i, (_, rows)) in sheets.iter().enumerate() {
        entries.push((
            format!("xl/worksheets/sheet{}.xml", i + 1),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>{rows}</sheetData></worksheet>").into_bytes(),
        ));
    }
    entries.push((
        "xl/sharedStrings.xml".into(),
        shared_strings.as_bytes().to_vec(),
    ));
    pack::zip(&entries, pack::ZipMethod::Deflate, &pack::ZipLock::None)
}

/// A minimal OpenDocument spreadsheet of one sheet (its `<table:table-row>`s).
pub fn ods(sheet: &str, rows: &str) -> io::Result<Vec<u8>> {
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.2\"><office:body><office:spreadsheet><table:table table:name=\"{}\">{rows}</table:table></office:spreadsheet></office:body></office:document-content>",
        xml_escape(sheet)
    );
    let entries: Vec<pack::Entry> = vec![
        ("mimetype".into(), b"application/vnd.oasis.opendocument.spreadsheet".to_vec()),
        (
            "META-INF/manifest.xml".into(),
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.2\"><manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/><manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/></manifest:manifest>".to_vec(),
        ),
        ("content.xml".into(), content.into_bytes()),
    ];
    pack::zip(&entries, pack::ZipMethod::Stored, &pack::ZipLock::None)
}

fn text_files(g: &mut Gen<'_>) -> io::Result<()> {
    // Mail headers: `Display Name <addr>` and `"Last, First" <addr>`.
    let rows = g.rows(plain_password);
    let mut s = String::from("Destinataires de la campagne (export Outlook)\n\n");
    for (i, (email, _, _)) in rows.rows.iter().enumerate() {
        let name = g.name();
        if i % 2 == 0 {
            s.push_str(&format!("{name} <{email}>\n"));
        } else {
            let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
            s.push_str(&format!("\"{last}, {first}\" <{email}>;\n"));
        }
    }
    g.write("dumps/destinataires.txt", s.as_bytes(), &rows, false)?;

    // An mbox with From/To/Cc headers.
    let rows = g.rows(plain_password);
    let mut s = String::new();
    for chunk in rows.rows.chunks(3) {
        let to: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
        s.push_str(&format!(
            "From support@partenaire.example Mon Jul  7 10:00:00 2025\nFrom: Support <support@partenaire.example>\nTo: {}\nCc: {}\nSubject: Votre dossier\n\nBonjour,\nmerci de votre retour.\n\n",
            to[0],
            to[1..].join(", ")
        ));
    }
    g.write("dumps/boite.mbox", s.as_bytes(), &rows, false)?;

    // LDIF.
    let rows = g.rows(plain_password);
    let mut s = String::from("version: 1\n\n");
    for (i, (email, _, _)) in rows.rows.iter().enumerate() {
        s.push_str(&format!(
            "dn: uid=u{i},ou=people,dc=partenaire,dc=example\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: {}\nmail: {email}\n\n",
            g.name()
        ));
    }
    g.write("dumps/annuaire.ldif", s.as_bytes(), &rows, false)?;

    // vCard.
    let rows = g.rows(plain_password);
    let mut s = String::new();
    for (email, _, _) in &rows.rows {
        s.push_str(&format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{}\r\nEMAIL;TYPE=INTERNET,HOME:{email}\r\nTEL;TYPE=CELL:+33 6 00 00 00 00\r\nEND:VCARD\r\n",
            g.name()
        ));
    }
    g.write("dumps/contacts.vcf", s.as_bytes(), &rows, false)?;

    // HTML table, with mailto: links.
    let rows = g.rows(plain_password);
    let mut s = String::from("<html><body><table>\n<tr><th>Nom</th><th>Contact</th></tr>\n");
    for (email, _, _) in &rows.rows {
        s.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"mailto:{email}\">{email}</a></td></tr>\n",
            g.name()
        ));
    }
    s.push_str("</table></body></html>\n");
    g.write("dumps/export.html", s.as_bytes(), &rows, false)?;

    // XML export: read by the floor, so identities only.
    let rows = g.rows(hostile_password);
    let mut s = String::from("<?xml version=\"1.0\"?>\n<users>\n");
    for (email, pw, _) in &rows.rows {
        s.push_str(&format!(
            "  <user>\n    <email>{}</email>\n    <password>{}</password>\n  </user>\n",
            xml_escape(email),
            xml_escape(pw)
        ));
    }
    s.push_str("</users>\n");
    g.write("dumps/export.xml", s.as_bytes(), &rows, false)?;

    // A forum paste: addresses inside prose.
    let rows = g.rows(plain_password);
    let mut s = String::from("=== FRESH LEAK partenaire-portal 2025 === by anon\n\n");
    for (i, (email, _, _)) in rows.rows.iter().enumerate() {
        s.push_str(&match i % 3 {
            0 => format!(
                "contact: {email}, tel 06 12 34 56 {:02} - dossier {i}\n",
                i % 100
            ),
            1 => format!("user #{i} ({email}) last login 2025-07-0{}\n", 1 + i % 9),
            _ => format!("mail={email} statut=actif\n"),
        });
    }
    g.write("dumps/paste.txt", s.as_bytes(), &rows, false)
}

fn combo_variants(g: &mut Gen<'_>) -> io::Result<()> {
    let rows = g.rows(plain_password);
    let mut s = String::from("# combo mix 2025 (variants)\n");
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        s.push_str(&match i % 6 {
            0 => format!("mailto:{email}:{pw}\n"),
            1 => format!("{email} : {pw}\n"),
            2 => format!("{email} | {pw}\n"),
            3 => format!("\"{email}\",\"{}\"\n", pw.replace('"', "\"\"")),
            4 => format!("{email} {pw}\n"),
            _ => format!("{email}\t{pw}\n"),
        });
    }
    g.write("dumps/combo-variants.txt", s.as_bytes(), &rows, true)
}

fn hostile_files(g: &mut Gen<'_>) -> io::Result<()> {
    // A CSV whose quote never closes, with planted rows before it.
    let rows = g.rows(plain_password);
    let mut s = String::from("email,password,note\n");
    let n = rows.rows.len();
    for (email, pw, _) in &rows.rows[..n - 1] {
        s.push_str(&format!("{email},{pw},ok\n"));
    }
    s.push_str("x@example.net,pw,\"never closed\n");
    s.push_str(&"z".repeat(100_000));
    s.push('\n');
    let (email, pw, _) = &rows.rows[n - 1];
    s.push_str(&format!("{email},{pw},after\n"));
    g.write("hostile/unterminated.csv", s.as_bytes(), &rows, true)?;

    // One INSERT statement of many megabytes on one line.
    let rows = g.rows(plain_password);
    let mut s = String::from("INSERT INTO users (id, email, password, bio) VALUES ");
    let filler = "lorem ipsum ".repeat(10_000);
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "({i},{},{},{})",
            sql_quote(email),
            sql_quote(pw),
            sql_quote(&filler)
        ));
    }
    for i in 0..400 {
        s.push_str(&format!(
            ",({},'x{i}@example.org','p',{})",
            100 + i,
            sql_quote(&filler)
        ));
    }
    s.push_str(";\n");
    g.write("hostile/huge-line.sql", s.as_bytes(), &rows, true)?;

    // Invalid bytes (and a NUL) mid-file in a combo list.
    let rows = g.rows(plain_password);
    let mut bytes = Vec::new();
    for (i, (email, pw, _)) in rows.rows.iter().enumerate() {
        if i == 1 {
            bytes.extend(b"\xff\xfe\x00garbage\x81\x8d\n");
        }
        bytes.extend(format!("{email}:{pw}\n").bytes());
    }
    g.write("hostile/invalid-bytes.txt", &bytes, &rows, true)?;

    // A workbook cut in half: reported, and nothing planted in it is promised.
    let rows = g.rows(plain_password);
    let sheet: String = rows
        .rows
        .iter()
        .enumerate()
        .map(|(i, (e, _, _))| {
            format!(
                "<row r=\"{}\"><c r=\"A{}\" t=\"inlineStr\"><is><t>{}</t></is></c></row>",
                i + 1,
                i + 1,
                xml_escape(e)
            )
        })
        .collect();
    let book = xlsx(&[("S", &sheet)], "<sst/>")?;
    let cut = &book[..book.len() / 2];
    g.write("hostile/truncated.xlsx", cut, &rows, false)?;
    if let Some(f) = g.files.last_mut() {
        f.promised = false;
    }
    Ok(())
}

/// The shapes benchmark's data set, written into `dir`: `accounts.csv` (a directory of
/// `n` accounts), and about `bytes` each of a mysqldump (`dump.sql`, extended inserts of
/// 1,000 rows), an NDJSON export (`dump.ndjson`), a Windows-1252 `;` CSV
/// (`dump-cp1252.csv`) and, of `xlsx_bytes` of sheet XML, a workbook (`dump.xlsx`), with
/// `plant` accounts spread through each; `planted.txt` lists them.
pub fn write_bench(
    dir: &Path,
    seed: u64,
    n: usize,
    bytes: u64,
    xlsx_bytes: u64,
    plant: usize,
) -> io::Result<Vec<String>> {
    use std::io::Write;
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(dir)?;
    let accounts = directory(&mut rng, n, DEMO_ORG_DOMAIN);
    write_directory_csv(
        &mut io::BufWriter::new(std::fs::File::create(dir.join("accounts.csv"))?),
        &accounts,
    )?;
    let planted: Vec<&SynthAccount> = (0..plant.min(n))
        .map(|i| &accounts[i * n / plant.max(1)])
        .collect();
    let mut emails: Vec<String> = planted.iter().map(|a| a.email.clone()).collect();
    emails.sort();
    std::fs::write(dir.join("planted.txt"), emails.join("\n") + "\n")?;
    // Every `rows / plant`-th row is the next planted account.
    let row_email = |rng: &mut Rng, i: u64, rows: u64| -> String {
        let step = (rows / planted.len().max(1) as u64).max(1);
        match planted.get((i / step) as usize) {
            Some(a) if i.is_multiple_of(step) => a.email.clone(),
            _ => stranger(rng),
        }
    };
    let create = |name: &str| -> io::Result<io::BufWriter<std::fs::File>> {
        Ok(io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dir.join(name))?,
        ))
    };

    // mysqldump: rows average about 109 bytes.
    let rows = bytes / 109;
    let mut f = create("dump.sql")?;
    f.write_all(b"-- MySQL dump 10.13\n/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `users` (\n  `id` int NOT NULL,\n  `name` varchar(64),\n  `email` varchar(255),\n  `password` varchar(255),\n  `created` datetime,\n  PRIMARY KEY (`id`)\n);\n")?;
    for i in 0..rows {
        if i % 1000 == 0 {
            f.write_all(if i == 0 {
                b"INSERT INTO `users` VALUES "
            } else {
                b";\nINSERT INTO `users` VALUES "
            })?;
        } else {
            f.write_all(b",")?;
        }
        let email = row_email(&mut rng, i, rows);
        let pw = if i % 4 == 0 {
            fake_hash(&mut rng)
        } else {
            plain_password(&mut rng)
        };
        write!(
            f,
            "({i},'{} O\\'{}',{},{},'2025-07-{:02} 10:00:00')",
            word(&mut rng, 2),
            word(&mut rng, 2),
            sql_quote(&email),
            sql_quote(&pw),
            1 + i % 28
        )?;
    }
    f.write_all(b";\n")?;
    f.flush()?;

    // NDJSON: about 121 bytes a line.
    let rows = bytes / 121;
    let mut f = create("dump.ndjson")?;
    for i in 0..rows {
        let email = row_email(&mut rng, i, rows);
        writeln!(
            f,
            "{{\"id\":{i},\"name\":{},\"email\":{},\"password\":{},\"ip\":\"192.0.2.{}\"}}",
            json_quote(&word(&mut rng, 3)),
            json_quote(&email),
            json_quote(&plain_password(&mut rng)),
            i % 250
        )?;
    }
    f.flush()?;

    // Windows-1252 CSV: about 78 bytes a line.
    let rows = bytes / 78;
    let mut f = create("dump-cp1252.csv")?;
    f.write_all(&windows_1252("Nom;Prénom;Courriel;Mot de passe;Ville\r\n"))?;
    for i in 0..rows {
        let email = row_email(&mut rng, i, rows);
        let line = format!(
            "{};Hélène;{email};{};Saint-Étienne\r\n",
            word(&mut rng, 3).to_uppercase(),
            csv_quote(&plain_password(&mut rng), ';')
        );
        f.write_all(&windows_1252(&line))?;
    }
    f.flush()?;

    // XLSX: one sheet, inline strings, about 200 bytes of XML a row.
    let rows = xlsx_bytes / 200;
    let mut sheet = String::with_capacity(xlsx_bytes as usize + 1024);
    sheet.push_str("<row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>email</t></is></c><c r=\"B1\" t=\"inlineStr\"><is><t>password</t></is></c></row>");
    for i in 0..rows {
        let r = i + 2;
        let email = row_email(&mut rng, i, rows);
        sheet.push_str(&format!("<row r=\"{r}\"><c r=\"A{r}\" t=\"inlineStr\"><is><t>{}</t></is></c><c r=\"B{r}\" t=\"inlineStr\"><is><t>{}</t></is></c><c r=\"C{r}\"><v>{i}</v></c></row>", xml_escape(&email), xml_escape(&plain_password(&mut rng))));
    }
    std::fs::write(
        dir.join("dump.xlsx"),
        xlsx(&[("Export", &sheet)], "<sst/>")?,
    )?;
    Ok(emails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_plants_its_accounts() {
        let tmp = tempfile::tempdir().unwrap();
        let sc = write_shapes(tmp.path(), 3, 4, true).unwrap();
        assert!(sc.files.len() >= 22, "{}", sc.files.len());
        for f in &sc.files {
            assert!(tmp.path().join(&f.path).is_file(), "{}", f.path);
            assert_eq!(f.planted.len(), 4, "{}", f.path);
            assert_eq!(f.promised, f.path != "hostile/truncated.xlsx");
        }
        let mut all: Vec<&str> = sc
            .files
            .iter()
            .flat_map(|f| f.planted.iter().map(|p| p.email.as_str()))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "each account is planted once");
    }
}
