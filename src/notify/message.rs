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

/// Builds the message and returns its bytes.
pub fn build(
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
        .subject(rendered.subject.clone())
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

/// A mailbox for a directory address (the display name is optional).
pub fn mailbox(email: &str, name: Option<&str>) -> Result<Mailbox, MessageError> {
    let addr = Address::from_str(email).map_err(|_| MessageError::Address(email.to_string()))?;
    Ok(Mailbox::new(name.map(str::to_string), addr))
}
