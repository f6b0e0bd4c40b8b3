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
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::Error as SmtpError;
use lettre::Address;

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
    File { dir: PathBuf },
    Smtp(Box<SmtpSessions>),
}

/// SMTP sessions to the relay, opened as needed and kept for the next message: a
/// million mails are a million transactions over a few sessions, not a million
/// connections. Ours rather than lettre's pool so that each socket has `TCP_NODELAY`:
/// lettre writes the message and its final `.` in two writes, and with Nagle's algorithm
/// the `.` waited for the server's delayed ACK, 40 ms a message on every session
/// (measured: 170 mails/s over 8 sessions to Postfix's smtp-sink).
pub struct SmtpSessions {
    host: String,
    port: u16,
    tls: TlsMode,
    tls_params: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    from: Address,
    /// The longest one message's delivery may take, connection to final reply.
    deadline: Duration,
    idle: tokio::sync::Mutex<Vec<AsyncSmtpConnection>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File { dir } => write!(f, "Transport::File({})", dir.display()),
            Transport::Smtp(s) => {
                write!(f, "Transport::Smtp({}:{}, from {})", s.host, s.port, s.from)
            }
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
                let tls_params = match (smtp.tls, &smtp.ca_file) {
                    (TlsMode::None, _) => None,
                    (_, None) => Some(TlsParameters::new(smtp.host.clone())?),
                    (_, Some(ca)) => {
                        let pem = std::fs::read(ca).map_err(|e| TransportError::Ca {
                            path: ca.clone(),
                            message: e.to_string(),
                        })?;
                        let cert = Certificate::from_pem(&pem).map_err(|e| TransportError::Ca {
                            path: ca.clone(),
                            message: e.to_string(),
                        })?;
                        Some(
                            TlsParameters::builder(smtp.host.clone())
                                .add_root_certificate(cert)
                                .build_rustls()?,
                        )
                    }
                };
                let credentials = match (&smtp.username, &smtp.password_file) {
                    (Some(user), Some(file)) => {
                        let password = read_secret_file(file)?;
                        Some(Credentials::new(
                            user.clone(),
                            password.expose().to_string(),
                        ))
                    }
                    _ => None,
                };
                let port = smtp.port.unwrap_or(match smtp.tls {
                    TlsMode::Tls => 465,
                    TlsMode::Starttls => 587,
                    TlsMode::None => 25,
                });
                Ok(Transport::Smtp(Box::new(SmtpSessions {
                    host: smtp.host.clone(),
                    port,
                    tls: smtp.tls,
                    tls_params,
                    credentials,
                    timeout: Duration::from_secs(smtp.timeout_secs),
                    from: cfg.notify.from.email.clone(),
                    deadline: Duration::from_secs(smtp.timeout_secs * DEADLINE_TIMEOUTS),
                    idle: tokio::sync::Mutex::new(Vec::new()),
                })))
            }
        }
    }

    pub async fn deliver(&self, mail: &QueuedMail) -> Result<(), DeliveryError> {
        match self {
            Transport::File { dir } => {
                // On a blocking thread: several files are written (and synced) at once.
                let (dir, mail) = (dir.clone(), mail.clone());
                let written = tokio::task::spawn_blocking(move || {
                    write_eml(&dir, &mail).map_err(|e| format!("outbox {}: {e}", dir.display()))
                })
                .await
                .unwrap_or_else(|e| Err(format!("outbox writer: {e}")));
                written.map_err(|message| DeliveryError {
                    message,
                    permanent: false,
                    stalled: true,
                })
            }
            Transport::Smtp(s) => s.deliver(mail).await,
        }
    }

    /// Ends the sessions kept open (`QUIT`), at the end of a flush.
    pub async fn close(&self) {
        if let Transport::Smtp(s) = self {
            let idle = std::mem::take(&mut *s.idle.lock().await);
            for mut conn in idle {
                let _ = tokio::time::timeout(s.timeout, conn.quit()).await;
            }
        }
    }
}

/// Why a session could not carry a message.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("connection: {0}")]
    Connect(String),
}

impl SessionError {
    fn is_permanent(&self) -> bool {
        matches!(self, SessionError::Smtp(e) if e.is_permanent())
    }
}

impl SmtpSessions {
    async fn deliver(&self, mail: &QueuedMail) -> Result<(), DeliveryError> {
        let to = Address::from_str(&mail.recipient).map_err(|e| DeliveryError {
            message: format!("recipient: {e}"),
            permanent: true,
            stalled: false,
        })?;
        let envelope =
            Envelope::new(Some(self.from.clone()), vec![to]).map_err(|e| DeliveryError {
                message: format!("envelope: {e}"),
                permanent: true,
                stalled: false,
            })?;
        match tokio::time::timeout(self.deadline, self.send(&envelope, &mail.message)).await {
            Ok(r) => r.map_err(|e| DeliveryError {
                permanent: e.is_permanent(),
                message: e.to_string(),
                // No session to the server at all: it is down, not this message wrong;
                // the rest waits, untried, instead of each burning an attempt.
                stalled: matches!(e, SessionError::Connect(_)),
            }),
            Err(_) => Err(DeliveryError {
                message: format!(
                    "timed out: the server took more than {} s (4 × timeout_secs) over one message",
                    self.deadline.as_secs()
                ),
                permanent: false,
                stalled: true,
            }),
        }
    }

    /// One transaction over a kept session, or a new one. A kept session the server
    /// closed meanwhile fails without a reply: the message is tried once more on a new
    /// session (no attempt is counted for a session's death).
    async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SessionError> {
        let kept = self.idle.lock().await.pop();
        let fresh = kept.is_none();
        let mut conn = match kept {
            Some(c) => c,
            None => self.open().await?,
        };
        match conn.send(envelope, message).await {
            Ok(_) => {
                self.idle.lock().await.push(conn);
                Ok(())
            }
            Err(e) if !fresh && !e.is_permanent() && !e.is_transient() => {
                let mut conn = self.open().await?;
                conn.send(envelope, message).await?;
                self.idle.lock().await.push(conn);
                Ok(())
            }
            // lettre has closed a session whose transaction failed.
            Err(e) => Err(e.into()),
        }
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, SessionError> {
        let hello = ClientId::default();
        let mut conn = match (self.tls, &self.tls_params) {
            (TlsMode::Tls, Some(params)) => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &hello,
                    Some(params.clone()),
                    None,
                )
                .await?
            }
            _ => {
                let tcp = tokio::time::timeout(
                    self.timeout,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| SessionError::Connect("connection timed out".into()))?
                .map_err(|e| SessionError::Connect(e.to_string()))?;
                // See the type's doc: without it every message waited 40 ms.
                let _ = tcp.set_nodelay(true);
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await?;
                if let (TlsMode::Starttls, Some(params)) = (self.tls, &self.tls_params) {
                    if !conn.can_starttls() {
                        conn.abort().await;
                        return Err(SessionError::Connect(
                            "the server does not offer STARTTLS (tls = \"starttls\")".into(),
                        ));
                    }
                    conn.starttls(params.clone(), &hello).await?;
                }
                conn
            }
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(conn)
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
