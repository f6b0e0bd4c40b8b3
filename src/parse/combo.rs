//! Combo lines: `email<sep>password`, with `:`, `;`, `|` or tab as separator.
//!
//! The password is everything after the first separator, so passwords that contain
//! separators survive. A line with no separator that holds an `@` is a bare identity (email
//! lists are common in leak-site dumps). `login:password` lines without an `@` are returned
//! too: they carry no host, so the identity stage will not attribute them, but they are
//! well-formed and must not be counted as malformed.

const SEPARATORS: &[u8] = b":;|\t";

/// Splits a trimmed combo line into (login, password). `None` if it has no credential shape.
pub fn split_combo(line: &str) -> Option<(&str, Option<&str>)> {
    let bytes = line.as_bytes();
    match bytes.iter().position(|b| SEPARATORS.contains(b)) {
        Some(i) => {
            let login = line[..i].trim();
            if login.is_empty() {
                return None;
            }
            let password = &line[i + 1..];
            let password = (!password.is_empty()).then_some(password);
            Some((login, password))
        }
        None => {
            // A bare identity: one token with an `@` that is neither first nor last.
            let at = line.find('@')?;
            if at == 0 || at + 1 == line.len() || line.contains(char::is_whitespace) {
                return None;
            }
            Some((line, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        type Want<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: &[(&str, Want)] = &[
            ("a@example.net:pw", Some(("a@example.net", Some("pw")))),
            ("a@example.net;pw", Some(("a@example.net", Some("pw")))),
            ("a@example.net|pw", Some(("a@example.net", Some("pw")))),
            ("a@example.net\tpw", Some(("a@example.net", Some("pw")))),
            (
                "a@example.net:p:w;|x",
                Some(("a@example.net", Some("p:w;|x"))),
            ),
            ("a@example.net:", Some(("a@example.net", None))),
            ("a@example.net", Some(("a@example.net", None))),
            (
                "\"a@example.net\" :pw",
                Some(("\"a@example.net\"", Some("pw"))),
            ),
            ("jdupont:secret", Some(("jdupont", Some("secret")))),
            (":nologin", None),
            ("no separator here", None),
            ("=====", None),
            ("@", None),
        ];
        for (line, want) in cases {
            assert_eq!(split_combo(line), *want, "line {line:?}");
        }
    }
}
