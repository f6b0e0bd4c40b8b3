//! Stealer-log credential files (`Passwords.txt` and kin): blocks of `Key: value` lines.
//!
//! Families differ in key names (`URL`/`Host`, `Username`/`Login`/`USER`, `Password`/`PASS`),
//! case and separators between blocks, so this is one generic block parser driven by a
//! table of aliases rather than one parser per family. A block ends at a blank line, a line
//! of separator characters (`====`, `----`), or when a key it already holds comes again.

use super::{Format, Record, Sink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Url,
    Login,
    Password,
    /// Known but not kept (`Soft:`, `Application:`, `Browser:`, `Profile:` …).
    Other,
}

const ALIASES: &[(&str, Key)] = &[
    ("url", Key::Url),
    ("host", Key::Url),
    ("hostname", Key::Url),
    ("site", Key::Url),
    ("origin", Key::Url),
    ("username", Key::Login),
    ("user", Key::Login),
    ("login", Key::Login),
    ("user login", Key::Login),
    ("email", Key::Login),
    ("password", Key::Password),
    ("pass", Key::Password),
    ("pwd", Key::Password),
    ("soft", Key::Other),
    ("application", Key::Other),
    ("browser", Key::Other),
    ("profile", Key::Other),
    ("storage", Key::Other),
];

/// Splits `Key: value` (or `Key = value`) and maps the key through the alias table.
fn key_value(line: &str) -> Option<(Key, &str)> {
    let i = line.find([':', '='])?;
    let key = line[..i].trim();
    if key.is_empty() || key.len() > 16 {
        return None;
    }
    let k = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(key))?
        .1;
    Some((k, line[i + 1..].trim()))
}

/// Whether a line looks like a stealer-log key line (for format detection).
pub fn is_key_line(line: &str) -> bool {
    matches!(key_value(line.trim()), Some((k, _)) if k != Key::Other)
}

/// Accumulates one block at a time. Values are copied into small reused buffers because a
/// block spans several lines and the line buffer moves on.
#[derive(Debug, Default)]
pub struct BlockParser {
    url: Option<String>,
    login: Option<String>,
    password: Option<String>,
    last_line: u64,
}

impl BlockParser {
    pub fn line(&mut self, line: &str, no: u64, sink: &mut dyn Sink) -> u64 {
        let mut emitted = 0;
        match key_value(line) {
            Some((key, value)) => {
                // The grep floor: an address in a URL, a password or an unkept value
                // (`Application: mail of jean@…`) is an identity all the same.
                if key != Key::Login {
                    emitted += super::text::floor(value, 0, None, no, sink);
                }
                let slot = match key {
                    Key::Url => &mut self.url,
                    Key::Login => &mut self.login,
                    Key::Password => &mut self.password,
                    Key::Other => return emitted,
                };
                if slot.is_some() {
                    emitted += self.flush(sink);
                }
                let slot = match key {
                    Key::Url => &mut self.url,
                    Key::Login => &mut self.login,
                    _ => &mut self.password,
                };
                let buf = slot.get_or_insert_with(String::new);
                buf.clear();
                buf.push_str(value);
                self.last_line = no;
            }
            None => {
                if line.is_empty() || line.chars().all(|c| "=-*_#~ ".contains(c)) {
                    emitted += self.flush(sink);
                } else {
                    // A line that is no key's: its addresses are the floor's.
                    emitted += super::text::floor(line, 0, None, no, sink);
                }
            }
        }
        emitted
    }

    /// Ends the input: emits the last block. Returns the number of records emitted.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> u64 {
        self.flush(sink)
    }

    fn flush(&mut self, sink: &mut dyn Sink) -> u64 {
        let login = self.login.take();
        let url = self.url.take();
        let password = self.password.take();
        match login.as_deref().map(str::trim) {
            Some(login) if !login.is_empty() && login != "UNKNOWN" => {
                sink.record(&Record {
                    login,
                    password: password.as_deref().filter(|p| !p.is_empty()),
                    url: url.as_deref().filter(|u| !u.is_empty()),
                    line: self.last_line,
                    format: Format::Stealer,
                });
                1
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CollectSink;

    fn run(text: &str) -> Vec<(String, Option<String>, Option<String>, u64)> {
        let mut p = BlockParser::default();
        let mut sink = CollectSink::default();
        for (i, line) in text.lines().enumerate() {
            p.line(line.trim(), i as u64 + 1, &mut sink);
        }
        p.finish(&mut sink);
        sink.records
            .into_iter()
            .map(|r| (r.login, r.password, r.url, r.line))
            .collect()
    }

    #[test]
    fn layouts() {
        // RedLine-like: blocks separated by =====, Soft line first.
        let redline = "*** banner ***\n===============\nURL: https://sso.agence-exemple.fr/login\nUsername: jdupont\nPassword: pw1\nApplication: Google_[Chrome]_Default\n===============\nURL: https://mail.example.net/\nUsername: a@example.net\nPassword: pw2\n===============\n";
        assert_eq!(
            run(redline),
            vec![
                (
                    "jdupont".into(),
                    Some("pw1".into()),
                    Some("https://sso.agence-exemple.fr/login".into()),
                    5
                ),
                (
                    "a@example.net".into(),
                    Some("pw2".into()),
                    Some("https://mail.example.net/".into()),
                    10
                ),
            ]
        );
        // Raccoon/Vidar-like: lower-case keys, blank lines, HOST and LOGIN.
        let other = "soft: Chrome\nhost: https://x.example/\nLOGIN: b@example.net\nPASS: pw3\n\nHost: y.example\nlogin: c@example.net\npassword: \n";
        assert_eq!(
            run(other),
            vec![
                (
                    "b@example.net".into(),
                    Some("pw3".into()),
                    Some("https://x.example/".into()),
                    4
                ),
                ("c@example.net".into(), None, Some("y.example".into()), 8),
            ]
        );
        // No separator between blocks: a repeated key starts a new one.
        let packed = "URL: a.example\nUSER: u1\nPASS: p1\nURL: b.example\nUSER: u2\nPASS: p2\n";
        let got = run(packed);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "u2");
        assert_eq!(got[1].2.as_deref(), Some("b.example"));
    }

    #[test]
    fn key_lines() {
        assert!(is_key_line("URL: https://x"));
        assert!(is_key_line("password = x"));
        assert!(!is_key_line("Soft: Chrome"));
        assert!(!is_key_line("a@example.net:pw"));
        assert!(!is_key_line("https://x.example/:a:b"));
    }
}
