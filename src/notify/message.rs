//! Building RFC 5322 messages with lettre: multipart plain text + HTML, and the digest's
//! CSV attachment. Messages are built once, stored in the queue, and delivered byte for
//! byte, so a retry sends exactly what the first attempt would have (same Message-ID).

use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{Address, Message};
use rand::RngCore;

use super::template::Rendered;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("`{0}` is not an address lettre can send to")]
    Address(String),
    #[error("cannot build message: {0}")]
    Build(#[from] lettre::error::Error),
}

pub struct CsvAttachment {
    pub name: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Builds the message and returns its bytes: marked `Auto-Submitted: auto-generated`
/// (RFC 3834: no auto-reply loops, no vacation answers), and DKIM-signed when a signer is
/// given.
pub fn build(
    from: &Mailbox,
    to: &Mailbox,
    rendered: &Rendered,
    attachment: Option<CsvAttachment>,
    now: i64,
    dkim: Option<&super::dkim::DkimSigner>,
    unsubscribe: Option<&Mailbox>,
) -> Result<Vec<u8>, MessageError> {
    let mut bytes = b"Auto-Submitted: auto-generated\r\n".to_vec();
    if let Some(u) = unsubscribe {
        // An address lettre parsed: no character that could end the header.
        bytes.extend_from_slice(
            format!(
                "List-Unsubscribe: <mailto:{}?subject=unsubscribe>\r\n",
                u.email
            )
            .as_bytes(),
        );
    }
    bytes.extend(build_plain(from, to, rendered, attachment, now)?);
    Ok(match dkim {
        Some(signer) => signer.sign(&bytes, now),
        None => bytes,
    })
}

fn build_plain(
    from: &Mailbox,
    to: &Mailbox,
    rendered: &Rendered,
    attachment: Option<CsvAttachment>,
    now: i64,
) -> Result<Vec<u8>, MessageError> {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    let domain = from.email.domain();
    let message_id = format!(
        "<leakwatch.{}@{domain}>",
        crate::identity::to_hex_upper(&id).to_lowercase()
    );
    let builder = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(display_name(&rendered.subject))
        .message_id(Some(message_id))
        .date(UNIX_EPOCH + Duration::from_secs(now.max(0) as u64));
    let body = MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone());
    let msg = match attachment {
        None => builder.multipart(body)?,
        Some(a) => builder.multipart(MultiPart::mixed().multipart(body).singlepart(
            Attachment::new(a.name).body(
                a.body,
                ContentType::parse(a.content_type).expect("static content type"),
            ),
        ))?,
    };
    Ok(msg.formatted())
}

/// A mailbox for a directory address (the display name is optional). The name is cleaned
/// by [`display_name`] here too, whatever the import did: lettre panics on a line break in
/// a display name, and with `panic = "abort"` one such name stopped all mail for good.
pub fn mailbox(email: &str, name: Option<&str>) -> Result<Mailbox, MessageError> {
    let addr = Address::from_str(email).map_err(|_| MessageError::Address(email.to_string()))?;
    let name = name.map(display_name).filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, addr))
}

/// Text fit for one header line: control characters (CR, LF, TAB, ESC, C1) and Unicode's
/// line and paragraph separators become spaces, runs of spaces one, ends trimmed; at
/// most 200 characters.
pub fn display_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars().take(200) {
        if c.is_control() || c.is_whitespace() || matches!(c, '\u{2028}' | '\u{2029}') {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory name or a subject with line breaks (and other controls) once made
    /// lettre panic, and so stopped the process; now they are one clean header line, and
    /// no header can be added through them.
    #[test]
    fn hostile_names_and_subjects_make_one_header_line() {
        let from = mailbox("secops@agence-exemple.fr", Some("Sécurité\r\nX-Evil: 1")).unwrap();
        for name in [
            "Jean\r\nBcc: victim@example.net",
            "Jean\nDupont",
            "\r\n",
            "Ma\u{1b}[31mrie\u{7}\u{85}\u{2028}Curie",
        ] {
            let to = mailbox("jean@agence-exemple.fr", Some(name)).unwrap();
            let rendered = Rendered {
                subject: format!("Alerte\r\nBcc: x@example.net {name}"),
                text: "texte".into(),
                html: "<p>texte</p>".into(),
            };
            let bytes = build(&from, &to, &rendered, None, 1_700_000_000, None, None).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let head = &text[..text.find("\r\n\r\n").unwrap()];
            for line in head.split("\r\n") {
                assert!(!line.starts_with("Bcc:"), "{name:?}: injected {line:?}");
                assert!(!line.starts_with("X-Evil:"), "{name:?}: injected {line:?}");
                assert!(!line.bytes().any(|b| b < 0x20 && b != b'\t'), "{line:?}");
            }
            assert!(head.contains("To: "), "{head}");
        }
        assert_eq!(display_name("  a\r\n\tb \u{2029} c  "), "a b c");
        assert_eq!(display_name("\r\n"), "");
    }
}
