//! Delivering queued messages: to `.eml` files, or over SMTP.
//!
//! The file transport writes the outbox itself instead of using lettre's `FileTransport`:
//! lettre names each file with a fresh UUID, so a crash between writing the file and
//! marking the row sent would leave a second copy on the retry. Here the file is named by
//! the queue id and written atomically (temporary file, then rename), so a retry rewrites
//! the same file: at most one `.eml` per message, whatever the timing of a crash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Config, TlsMode, TransportKind};
use crate::secret::{read_secret_file, SecretError};
use crate::store::QueuedMail;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("notify.smtp.ca_file {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("SMTP setup: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// One message's delivery over SMTP may take this many `timeout_secs`, all steps together
/// (connection, greeting, envelope, body, reply).
const DEADLINE_TIMEOUTS: u64 = 4;

/// A failed delivery; permanent ones are not retried.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    pub permanent: bool,
    /// The server stopped answering, or the outbox's disk failed: the rest of the queue
    /// waits for the next run rather than each message failing the same way.
    pub stalled: bool,
}

pub enum Transport {
    File {
        dir: PathBuf,
    },
    Smtp {
        client: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Address,
        /// The longest one message's delivery may take, connection to final reply.
        deadline: Duration,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File { dir } => write!(f, "Transport::File({})", dir.display()),
            Transport::Smtp { from, .. } => write!(f, "Transport::Smtp(from {from})"),
        }
    }
}

impl Transport {
    pub fn from_config(cfg: &Config) -> Result<Transport, TransportError> {
        match cfg.notify.transport {
            TransportKind::File => {
                let dir = cfg.outbox_dir();
                create_private_dir(&dir).map_err(|source| TransportError::Outbox {
                    path: dir.clone(),
                    source,
                })?;
                Ok(Transport::File { dir })
            }
            TransportKind::Smtp => {
                let smtp = cfg
                    .notify
                    .smtp
                    .as_ref()
                    .expect("validated: smtp section present");
                let mut b = match smtp.tls {
                    TlsMode::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?
                    }
                    TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
                    TlsMode::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    }
                };
                if let Some(ca) = &smtp.ca_file {
                    let pem = std::fs::read(ca).map_err(|e| TransportError::Ca {
                        path: ca.clone(),
                        message: e.to_string(),
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| TransportError::Ca {
                        path: ca.clone(),
                        message: e.to_string(),
                    })?;
                    let params = TlsParameters::builder(smtp.host.clone())
                        .add_root_certificate(cert)
                        .build_rustls()?;
                    b = match smtp.tls {
                        TlsMode::Starttls => b.tls(Tls::Required(params)),
                        TlsMode::Tls => b.tls(Tls::Wrapper(params)),
                        TlsMode::None => b,
                    };
                }
                if let Some(port) = smtp.port {
                    b = b.port(port);
                }
                if let (Some(user), Some(file)) = (&smtp.username, &smtp.password_file) {
                    let password = read_secret_file(file)?;
                    b = b.credentials(Credentials::new(
                        user.clone(),
                        password.expose().to_string(),
                    ));
                }
                b = b.timeout(Some(Duration::from_secs(smtp.timeout_secs)));
                Ok(Transport::Smtp {
                    client: Box::new(b.build()),
                    from: cfg.notify.from.email.clone(),
                    deadline: Duration::from_secs(smtp.timeout_secs * DEADLINE_TIMEOUTS),
                })
            }
        }
    }

    pub async fn deliver(&self, mail: &QueuedMail) -> Result<(), DeliveryError> {
        match self {
            // The outbox's failures are the local disk's (full, read-only), not the
            // message's: the rest would fail the same way, and burn their attempts.
            Transport::File { dir } => write_eml(dir, mail).map_err(|e| DeliveryError {
                message: format!("outbox {}: {e}", dir.display()),
                permanent: false,
                stalled: true,
            }),
            Transport::Smtp {
                client,
                from,
                deadline,
            } => {
                let to = Address::from_str(&mail.recipient).map_err(|e| DeliveryError {
                    message: format!("recipient: {e}"),
                    permanent: true,
                    stalled: false,
                })?;
                let envelope =
                    Envelope::new(Some(from.clone()), vec![to]).map_err(|e| DeliveryError {
                        message: format!("envelope: {e}"),
                        permanent: true,
                        stalled: false,
                    })?;
                // lettre bounds only the connection by its timeout: a server that greets
                // and then says nothing would hold the run for ever.
                match tokio::time::timeout(*deadline, client.send_raw(&envelope, &mail.message))
                    .await
                {
                    Ok(r) => r.map(|_| ()).map_err(|e| DeliveryError {
                        permanent: e.is_permanent(),
                        message: e.to_string(),
                        stalled: false,
                    }),
                    Err(_) => Err(DeliveryError {
                        message: format!(
                            "timed out: the server took more than {} s (4 × timeout_secs) over one message",
                            deadline.as_secs()
                        ),
                        permanent: false,
                        stalled: true,
                    }),
                }
            }
        }
    }
}

/// The outbox file of a queued message: `<id>-<kind>.eml`.
pub fn eml_name(mail: &QueuedMail) -> String {
    format!("{:08}-{}.eml", mail.id, mail.kind)
}

fn write_eml(dir: &Path, mail: &QueuedMail) -> std::io::Result<()> {
    let path = dir.join(eml_name(mail));
    let tmp = dir.join(format!(".{}.tmp", eml_name(mail)));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&mail.message)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}
