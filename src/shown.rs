//! Text from a dump, a feed or a remote server made safe to print on a terminal.
//!
//! A stored site, a file name inside an archive or an HTTP error can hold ESC, BEL or a
//! carriage return: printed raw, they rewrite the admin's terminal (colours, a title, a
//! line overwritten, on some terminals worse). Every human-facing listing passes such text
//! through [`shown`]; JSON output is escaped by its serialiser.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character (C0, DEL, C1) and every bidirectional override or
/// isolate written as an escape (`\x1b`, `\u{202e}`); other text as it is.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            if (c as u32) < 0x100 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_text_is_not() {
        assert_eq!(shown("sso.agence-exemple.fr"), "sso.agence-exemple.fr");
        assert_eq!(shown("é ü 日本"), "é ü 日本");
        assert_eq!(
            shown("a\u{1b}]0;owned\u{7}b\r\n\u{9b}c\u{202e}d"),
            "a\\x1b]0;owned\\x07b\\x0d\\x0a\\x9bc\\u{202e}d"
        );
    }
}
