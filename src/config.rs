//! The main configuration file (TOML), parsed and validated before anything runs.
//!
//! Every section denies unknown keys, so a typo is an error that names the key rather than a
//! setting silently ignored. Values that have a parsed form (mailboxes, domains, hosts) are
//! parsed here, once: the rest of the program only ever sees valid values.
//!
//! Relative paths are taken relative to the working directory, so the shipped demo config
//! works from the repository root; a production config uses absolute paths.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lettre::message::Mailbox;
use serde::{Deserialize, Deserializer};

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/leakwatch/leakwatch.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub organization: Organization,
    pub state: StateConfig,
    pub notify: NotifyConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub privacy: Privacy,
    #[serde(default)]
    pub feeds: FeedsConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub liveness: LivenessConfig,
    #[serde(default)]
    pub remediation: RemediationConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub siem: SiemConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// How long what leakwatch holds is kept (`leakwatch purge`, and once a day after a run).
/// `0` keeps forever. The reasons for the defaults are in docs/privacy.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Findings not seen again for this long (with their sightings, actions, exports).
    pub findings_days: u32,
    pub sightings_days: u32,
    /// Unknown identities on the organisation's domains not seen again for this long.
    pub unknown_days: u32,
    /// Delivered and failed mail (the log rows: bodies go at delivery), and exported
    /// SIEM events.
    pub mail_days: u32,
    pub feed_runs_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            findings_days: 730,
            sightings_days: 365,
            unknown_days: 365,
            mail_days: 90,
            feed_runs_days: 90,
        }
    }
}

impl RetentionConfig {
    pub fn cutoffs(&self, now: i64) -> crate::store::Cutoffs {
        let at = |days: u32| (days > 0).then(|| now - i64::from(days) * 86_400);
        crate::store::Cutoffs {
            findings: at(self.findings_days),
            sightings: at(self.sightings_days),
            unknowns: at(self.unknown_days),
            mail: at(self.mail_days),
            feed_runs: at(self.feed_runs_days),
        }
    }
}

/// Each new or raised finding exported as one JSON event (`siem`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiemConfig {
    /// RFC 5424 syslog: `unix:/dev/log` (the local daemon), `udp://HOST:PORT`, or
    /// `tcp://HOST:PORT` (RFC 6587 octet counting).
    pub syslog: Option<String>,
    /// An HTTPS endpoint that receives each event as a JSON POST.
    pub webhook_url: Option<String>,
    /// If set, the webhook's body is signed: `X-Leakwatch-Signature: sha256=HEX`.
    pub webhook_secret_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

impl Default for SiemConfig {
    fn default() -> Self {
        SiemConfig {
            syslog: None,
            webhook_url: None,
            webhook_secret_file: None,
            timeout_secs: 30,
        }
    }
}

/// How log lines are written (to stderr; the journal under systemd).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, its fields as keys, for journald → SIEM pipelines.
    Json,
}

/// Prometheus metrics (`metrics`): neither is on unless set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where the daemon serves `GET /metrics` (`127.0.0.1:9464`). Counts only, but an
    /// address beyond loopback shows them to whoever can reach it: `check` warns.
    pub listen: Option<std::net::SocketAddr>,
    /// A file for node_exporter's textfile collector, rewritten after each run.
    pub textfile: Option<PathBuf>,
}

/// What leakwatch does about a finding beyond telling people (`act`): nothing unless rules
/// say so, and then behind the guards a forged dump must get past.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// Record the actions the rules call for, marked `dry_run`; do none of them.
    pub dry_run: bool,
    /// Actions wait for `leakwatch actions approve` before anything is done.
    pub approval: bool,
    /// Actions started in any rolling hour. Beyond it the rest is held for approval and
    /// the admins are mailed: a flood of forged findings stops here.
    pub max_per_hour: u32,
    /// Attempts of an action before it is reported failed.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, up to an hour.
    pub retry_interval_secs: u64,
    /// Accounts (address or username) never disabled, whatever a finding says: the
    /// break-glass admins.
    pub protected: Vec<String>,
    /// Tried in order; the first whose kinds, severities and verdicts match decides.
    /// No rule, or none matching: `report` (the digest's forced-reset list, as always).
    pub rule: Vec<RemediationRule>,
    /// The directory written over LDAP (`force_change`, `disable`).
    pub ldap: Option<LdapSource>,
    pub keycloak: Option<KeycloakTarget>,
    pub graph: Option<GraphTarget>,
    pub webhook: Option<WebhookTarget>,
    pub command: Option<CommandTarget>,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            dry_run: false,
            approval: false,
            max_per_hour: 50,
            max_attempts: 5,
            retry_interval_secs: 300,
            protected: Vec::new(),
            rule: Vec::new(),
            ldap: None,
            keycloak: None,
            graph: None,
            webhook: None,
            command: None,
        }
    }
}

/// One line of the remediation policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationRule {
    /// Finding kinds it applies to (`password`, `password_hash`, `session`, `identity`);
    /// empty: all.
    #[serde(default)]
    pub kinds: Vec<crate::store::FindingKind>,
    /// `medium`, `high`, `critical`; empty: all.
    #[serde(default)]
    pub severities: Vec<crate::store::Severity>,
    /// `current`, `unknown`, `stale`, `rotated_since`. By default the two that force a
    /// reset: a password known stale or rotated since is not acted on.
    #[serde(default = "default_rule_verdicts")]
    pub verdicts: Vec<crate::liveness::Verdict>,
    /// In the order they are done.
    pub actions: Vec<ActionName>,
}

fn default_rule_verdicts() -> Vec<crate::liveness::Verdict> {
    vec![
        crate::liveness::Verdict::Current,
        crate::liveness::Verdict::Unknown,
    ]
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// Nothing beyond the digest (today's behaviour).
    Report,
    ForceChange,
    RevokeSessions,
    Disable,
    Webhook,
    Command,
}

impl ActionName {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Report => "report",
            ActionName::ForceChange => "force_change",
            ActionName::RevokeSessions => "revoke_sessions",
            ActionName::Disable => "disable",
            ActionName::Webhook => "webhook",
            ActionName::Command => "command",
        }
    }
}

/// A Keycloak realm administered through its admin REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeycloakTarget {
    /// The server's base URL (`https://sso.example.org`; `/auth` included for old versions).
    pub url: String,
    pub realm: String,
    /// A confidential client with a service account holding `manage-users`.
    pub client_id: String,
    pub client_secret_file: PathBuf,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

/// Microsoft Entra ID through Microsoft Graph.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphTarget {
    pub tenant: String,
    /// An app registration with `User.ReadWrite.All` (application permission).
    pub client_id: String,
    pub client_secret_file: PathBuf,
    #[serde(default = "default_graph_authority")]
    pub authority: String,
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_graph_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".into()
}

/// A URL that receives each action as JSON, signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    pub url: String,
    /// The HMAC-SHA256 key (a secret file or credential): `X-Leakwatch-Signature:
    /// sha256=HEX` of the body.
    pub secret_file: PathBuf,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

/// An executable run for each action, without a shell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandTarget {
    /// An absolute path.
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

/// Where leakwatch learns whether a leaked password is still live (`liveness`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessConfig {
    /// The directory's NT hashes as a pwdump export (`user:rid:lm:nt:::`), a secret file
    /// (0600) or `${CREDENTIALS_DIRECTORY}/…`: a leaked password is compared with its
    /// account's at match time, and only the verdict is kept.
    pub nt_hashes_file: Option<PathBuf>,
    /// The directory read over LDAP at each run: last password changes and salted hashes.
    pub ldap: Option<LdapSource>,
    /// The most time a run spends comparing leaked passwords with `{CRYPT}` hashes (built
    /// to be slow: a millisecond to a second each). Past it they are not compared, and
    /// their findings stay "unknown", so forced.
    pub slow_hash_budget_secs: u64,
    /// Keycloak: each user's password credential `createdDate` as the last change.
    pub keycloak: Option<KeycloakTarget>,
    /// How often Keycloak is read (one request per user): the dates are kept between reads.
    pub keycloak_refresh_secs: u64,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            nt_hashes_file: None,
            ldap: None,
            slow_hash_budget_secs: crate::liveness::ntlm::SLOW_BUDGET_DEFAULT.as_secs(),
            keycloak: None,
            keycloak_refresh_secs: 3600,
        }
    }
}

/// An LDAP directory to read accounts' last password change and `userPassword` from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSource {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    pub bind_dn: String,
    /// The bind password, a secret file (0600) or systemd credential.
    pub password_file: PathBuf,
    pub base_dn: String,
    #[serde(default = "default_ldap_filter")]
    pub filter: String,
    /// The attribute that holds an account's login (the accounts CSV's `username`):
    /// `uid` for OpenLDAP, `sAMAccountName` for Active Directory.
    #[serde(default = "default_login_attribute")]
    pub login_attribute: String,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// How the directory keeps password state when leakwatch writes it (`remediation`):
    /// `openldap` (ppolicy's `pwdReset`, `pwdAccountLockedTime`) or `ad`
    /// (`pwdLastSet`, `userAccountControl`).
    #[serde(default)]
    pub flavor: LdapFlavor,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LdapFlavor {
    #[default]
    Openldap,
    Ad,
}

fn default_ldap_filter() -> String {
    "(objectClass=*)".into()
}
fn default_login_attribute() -> String {
    "uid".into()
}

/// How dumps are read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Threads that parse and hash a combo/ULP list; 0 means one per core.
    pub threads: usize,
}

impl IngestConfig {
    /// The configured thread count, or the cores this process may use.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Where the feed definitions live and how many run at once (see `feed` and `daemon`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// A directory of `*.toml` feed files; without it the daemon has nothing to run.
    pub dir: Option<PathBuf>,
    /// Feeds running at the same time. Each feed never overlaps itself.
    pub max_concurrent: usize,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            dir: None,
            max_concurrent: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub name: String,
    /// The organisation's email domains, in ASCII (punycode) lower case after loading.
    #[serde(deserialize_with = "de_domains")]
    pub domains: Vec<String>,
    /// Hosts where a bare username is an organisation login, in ASCII lower case after loading.
    #[serde(default, deserialize_with = "de_domains")]
    pub login_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub transport: TransportKind,
    /// Where `transport = "file"` writes its `.eml` files; default `<state.dir>/outbox`.
    #[serde(default)]
    pub outbox_dir: Option<PathBuf>,
    #[serde(deserialize_with = "de_mailbox")]
    pub from: Mailbox,
    /// The sender of user mails to the public (addresses outside the organisation's
    /// domains), when it is not `from`: the public's mail often leaves from another system.
    #[serde(default, deserialize_with = "de_opt_mailbox")]
    pub from_public: Option<Mailbox>,
    /// The sender of user mails to staff (addresses on the organisation's domains).
    #[serde(default, deserialize_with = "de_opt_mailbox")]
    pub from_staff: Option<Mailbox>,
    /// The address a person writes to to stop leakwatch's mail: `List-Unsubscribe:
    /// <mailto:…>` on the public's mail (RFC 2369; no link in the body). Default: the
    /// public sender's address. Requests are acted on with `leakwatch optout add`.
    #[serde(default, deserialize_with = "de_opt_mailbox")]
    pub unsubscribe: Option<Mailbox>,
    #[serde(deserialize_with = "de_mailboxes")]
    pub admins: Vec<Mailbox>,
    /// Language of the admins' digest.
    #[serde(default = "default_lang")]
    pub admin_lang: Lang,
    /// Whether the affected users are mailed (admins always get the digest).
    #[serde(default = "yes")]
    pub users: bool,
    /// A directory whose files override the built-in templates of the same name.
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// After this many failed attempts a queued mail is marked failed and kept for `mail retry`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How often the daemon tries queued mail whose retry time has come.
    #[serde(default = "default_retry_interval")]
    pub retry_interval_secs: u64,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// DKIM-sign every message (rsa-sha256, relaxed/relaxed).
    #[serde(default)]
    pub dkim: Option<DkimConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// `d=`: the signing domain, normally the `From` address's.
    pub domain: String,
    /// `s=`: the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The RSA private key (PEM), a secret file (0600) or systemd credential.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Starttls,
    Tls,
    /// Plain text on the wire: only for a relay on loopback. `check` warns about it.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the SMTP password (never the password itself).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust, for a relay with an internal CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// SMTP sessions open at once, each kept for the next message: a million mails need
    /// more than one session at a time, and a relay accepts a few.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Messages per second to any one recipient domain (0: no limit). The relay usually
    /// paces what it passes on to the big webmail providers; set this when it does not
    /// and they throttle bursts (a leak of the public lands on a few domains).
    #[serde(default)]
    pub rate_per_domain: u32,
}

fn default_max_connections() -> u32 {
    4
}

/// Bounds on what one input may cost. Every one has a safe default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longer lines are counted as malformed and skipped.
    pub max_line_bytes: usize,
    /// Total uncompressed bytes read from one archive.
    pub max_archive_bytes: u64,
    /// Uncompressed bytes read from one archive entry.
    pub max_entry_bytes: u64,
    /// Entries looked at in one archive.
    pub max_archive_entries: u64,
    /// Uncompressed / compressed size above which an entry is treated as a bomb.
    pub max_compression_ratio: u64,
    /// Archive layers around a stream (a zip in a zip is 2; a `.tar.gz` is 2 too).
    pub max_archive_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_archive_bytes: 16 << 30,
            max_entry_bytes: 4 << 30,
            max_archive_entries: 1_000_000,
            max_compression_ratio: 200,
            max_archive_depth: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    pub false_positive_rate: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            false_positive_rate: 1e-6,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Privacy {
    /// Keep a masked hint of the leaked password (`m•••••e`) for the user's mail.
    /// It never appears in the admins' CSV.
    pub password_hint: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            password_hint: true,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_lang() -> Lang {
    Lang::Fr
}
fn default_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_smtp_timeout() -> u64 {
    30
}
fn default_max_attempts() -> u32 {
    50
}
fn default_retry_interval() -> u64 {
    60
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Config {
    /// Reads, parses and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if self.organization.name.trim().is_empty() {
            return Err(invalid("organization.name", "must not be empty".into()));
        }
        if self.organization.domains.is_empty() {
            return Err(invalid(
                "organization.domains",
                "list at least one email domain".into(),
            ));
        }
        if self.notify.admins.is_empty() {
            return Err(invalid(
                "notify.admins",
                "list at least one admin address".into(),
            ));
        }
        let fp = self.filter.false_positive_rate;
        if !(fp > 0.0 && fp <= 0.01) {
            return Err(invalid(
                "filter.false_positive_rate",
                format!("{fp} is outside (0, 0.01]"),
            ));
        }
        let l = &self.limits;
        if l.max_line_bytes < 256 || l.max_line_bytes > 16 << 20 {
            return Err(invalid(
                "limits.max_line_bytes",
                "must be between 256 and 16777216".into(),
            ));
        }
        if l.max_compression_ratio < 2 {
            return Err(invalid(
                "limits.max_compression_ratio",
                "must be at least 2".into(),
            ));
        }
        if l.max_archive_entries == 0 || l.max_archive_bytes == 0 || l.max_entry_bytes == 0 {
            return Err(invalid(
                "limits",
                "archive limits must be greater than 0".into(),
            ));
        }
        if self.ingest.threads > 256 {
            return Err(invalid(
                "ingest.threads",
                "must be between 0 (one per core) and 256".into(),
            ));
        }
        if self.feeds.max_concurrent == 0 || self.feeds.max_concurrent > 64 {
            return Err(invalid(
                "feeds.max_concurrent",
                "must be between 1 and 64".into(),
            ));
        }
        if self.notify.retry_interval_secs == 0 {
            return Err(invalid(
                "notify.retry_interval_secs",
                "must be at least 1".into(),
            ));
        }
        if self.notify.max_attempts == 0 {
            return Err(invalid("notify.max_attempts", "must be at least 1".into()));
        }
        self.validate_remediation(path)?;
        match (&self.notify.transport, &self.notify.smtp) {
            (TransportKind::Smtp, None) => {
                return Err(invalid(
                    "notify.smtp",
                    "transport = \"smtp\" needs a [notify.smtp] section".into(),
                ))
            }
            (_, Some(smtp)) => {
                if smtp.host.trim().is_empty() {
                    return Err(invalid("notify.smtp.host", "must not be empty".into()));
                }
                if smtp.username.is_some() != smtp.password_file.is_some() {
                    return Err(invalid(
                        "notify.smtp.password_file",
                        "username and password_file go together".into(),
                    ));
                }
                if smtp.timeout_secs == 0 || smtp.timeout_secs > 600 {
                    return Err(invalid(
                        "notify.smtp.timeout_secs",
                        "must be between 1 and 600".into(),
                    ));
                }
                // A password in clear may go to a relay on this machine, nowhere else.
                if smtp.tls == TlsMode::None && smtp.username.is_some() && !loopback(&smtp.host) {
                    return Err(invalid(
                        "notify.smtp.tls",
                        format!(
                            "tls = \"none\" with a username would send its password in clear to {}; use \"starttls\" or \"tls\" (plain text is for a relay on loopback)",
                            smtp.host
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn state_dir(&self) -> &Path {
        &self.state.dir
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.notify
            .outbox_dir
            .clone()
            .unwrap_or_else(|| self.state.dir.join("outbox"))
    }

    /// Non-fatal remarks for `leakwatch check`.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(smtp) = &self.notify.smtp {
            if smtp.tls == TlsMode::None {
                w.push(format!(
                    "notify.smtp.tls = \"none\": mail to {} travels in plain text; use it only for a relay on loopback",
                    smtp.host
                ));
            }
        }
        if self.organization.login_hosts.is_empty() {
            w.push("organization.login_hosts is empty: bare usernames in dumps cannot be attributed to accounts".into());
        }
        w
    }
}

/// Whether `host` is this machine: `localhost`, or a loopback address (127.0.0.0/8, ::1).
impl Config {
    /// Every action a rule names has somewhere to go, and nothing secret travels in clear
    /// beyond this machine.
    fn validate_remediation(&self, path: &Path) -> Result<(), ConfigError> {
        let r = &self.remediation;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if r.max_attempts == 0 {
            return Err(invalid(
                "remediation.max_attempts",
                "must be at least 1".into(),
            ));
        }
        if r.retry_interval_secs == 0 {
            return Err(invalid(
                "remediation.retry_interval_secs",
                "must be at least 1".into(),
            ));
        }
        for rule in &r.rule {
            if rule.actions.is_empty() {
                return Err(invalid(
                    "remediation.rule.actions",
                    "list at least one action (`report` for none)".into(),
                ));
            }
            for a in &rule.actions {
                let ok = match a {
                    ActionName::Report => true,
                    ActionName::ForceChange => {
                        r.ldap.is_some() || r.keycloak.is_some() || r.graph.is_some()
                    }
                    ActionName::RevokeSessions => r.keycloak.is_some() || r.graph.is_some(),
                    ActionName::Disable => {
                        r.ldap.is_some() || r.keycloak.is_some() || r.graph.is_some()
                    }
                    ActionName::Webhook => r.webhook.is_some(),
                    ActionName::Command => r.command.is_some(),
                };
                if !ok {
                    let needs = match a {
                        ActionName::RevokeSessions => {
                            "[remediation.keycloak] or [remediation.graph]"
                        }
                        ActionName::Webhook => "[remediation.webhook]",
                        ActionName::Command => "[remediation.command]",
                        _ => "[remediation.ldap], [remediation.keycloak] or [remediation.graph]",
                    };
                    return Err(invalid(
                        "remediation.rule.actions",
                        format!("`{}` needs {needs}", a.as_str()),
                    ));
                }
            }
        }
        let https = |key: &'static str, url: &str| -> Result<(), ConfigError> {
            let parsed =
                reqwest::Url::parse(url).map_err(|e| invalid(key, format!("`{url}`: {e}")))?;
            let host = parsed.host_str().unwrap_or_default();
            match parsed.scheme() {
                "https" => Ok(()),
                "http" if loopback(host) => Ok(()),
                _ => Err(invalid(
                    key,
                    format!("`{url}`: must be https (plain http is for loopback)"),
                )),
            }
        };
        if let Some(d) = &self.notify.dkim {
            // A DNS name of labels: the record lives at SELECTOR._domainkey.DOMAIN.
            let label = |l: &str| {
                (1..=63).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if !d.selector.split('.').all(label) {
                return Err(invalid(
                    "notify.dkim.selector",
                    format!(
                        "`{}`: letters, digits and hyphens in dot-separated labels",
                        d.selector
                    ),
                ));
            }
            if !d.domain.contains('.') || !d.domain.split('.').all(label) {
                return Err(invalid(
                    "notify.dkim.domain",
                    format!("`{}` is not a domain name", d.domain),
                ));
            }
        }
        if let Some(url) = &self.siem.webhook_url {
            https("siem.webhook_url", url)?;
        }
        if let Some(target) = &self.siem.syslog {
            if crate::siem::syslog::Target::parse(target).is_none() {
                return Err(invalid(
                    "siem.syslog",
                    format!("`{target}`: unix:/PATH, udp://HOST:PORT or tcp://HOST:PORT"),
                ));
            }
        }
        if self.siem.timeout_secs == 0 || self.siem.timeout_secs > 600 {
            return Err(invalid(
                "siem.timeout_secs",
                "must be between 1 and 600".into(),
            ));
        }
        // A bind password in clear may go to a directory on this machine, nowhere else.
        for (key, src) in [
            ("liveness.ldap.url", self.liveness.ldap.as_ref()),
            ("remediation.ldap.url", r.ldap.as_ref()),
        ] {
            let Some(src) = src else { continue };
            let parsed = reqwest::Url::parse(&src.url)
                .map_err(|e| invalid(key, format!("`{}`: {e}", src.url)))?;
            let host = parsed.host_str().unwrap_or_default();
            match parsed.scheme() {
                "ldaps" => {}
                "ldap" if src.starttls || loopback(host) => {}
                "ldap" => {
                    return Err(invalid(
                        key,
                        format!(
                            "`{}` would send the bind password in clear to {host}; use ldaps://, or starttls = true (plain ldap:// is for a directory on loopback)",
                            src.url
                        ),
                    ))
                }
                other => return Err(invalid(key, format!("`{other}`: ldap:// or ldaps://"))),
            }
        }
        if let Some(k) = &self.liveness.keycloak {
            https("liveness.keycloak.url", &k.url)?;
            if k.realm.is_empty() || k.realm.contains('/') {
                return Err(invalid(
                    "liveness.keycloak.realm",
                    "a realm name, without `/`".into(),
                ));
            }
        }
        if let Some(k) = &r.keycloak {
            https("remediation.keycloak.url", &k.url)?;
            if k.realm.is_empty() || k.realm.contains('/') {
                return Err(invalid(
                    "remediation.keycloak.realm",
                    "a realm name, without `/`".into(),
                ));
            }
        }
        if let Some(g) = &r.graph {
            https("remediation.graph.authority", &g.authority)?;
            https("remediation.graph.graph_url", &g.graph_url)?;
            if g.tenant.is_empty() || g.tenant.contains('/') {
                return Err(invalid(
                    "remediation.graph.tenant",
                    "a tenant id or domain, without `/`".into(),
                ));
            }
        }
        if let Some(w) = &r.webhook {
            https("remediation.webhook.url", &w.url)?;
        }
        if let Some(c) = &r.command {
            if !c.path.is_absolute() {
                return Err(invalid(
                    "remediation.command.path",
                    format!("{}: must be an absolute path", c.path.display()),
                ));
            }
        }
        for (key, t) in [
            (
                "remediation.ldap.timeout_secs",
                r.ldap.as_ref().map(|l| l.timeout_secs),
            ),
            (
                "remediation.keycloak.timeout_secs",
                r.keycloak.as_ref().map(|k| k.timeout_secs),
            ),
            (
                "remediation.graph.timeout_secs",
                r.graph.as_ref().map(|g| g.timeout_secs),
            ),
            (
                "remediation.webhook.timeout_secs",
                r.webhook.as_ref().map(|w| w.timeout_secs),
            ),
            (
                "remediation.command.timeout_secs",
                r.command.as_ref().map(|c| c.timeout_secs),
            ),
        ] {
            if t.is_some_and(|t| t == 0 || t > 600) {
                return Err(invalid(key, "must be between 1 and 600".into()));
            }
        }
        Ok(())
    }
}

fn loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Normalises a domain or host name: trimmed, trailing dot dropped, lower case, IDN to punycode.
pub fn normalize_domain(raw: &str) -> Result<String, String> {
    let d = raw.trim().trim_end_matches('.');
    if d.is_empty() {
        return Err("empty domain".into());
    }
    let ascii = idna::domain_to_ascii(d).map_err(|_| format!("`{raw}` is not a valid domain"))?;
    if ascii.is_empty() || ascii.contains(['/', ':', '@', ' ']) {
        return Err(format!("`{raw}` is not a valid domain"));
    }
    Ok(ascii)
}

fn de_domains<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .map(|s| normalize_domain(s).map_err(serde::de::Error::custom))
        .collect()
}

fn de_mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
    let raw = String::deserialize(d)?;
    Mailbox::from_str(&raw)
        .map_err(|e| serde::de::Error::custom(format!("`{raw}` is not a mail address: {e}")))
}

fn de_opt_mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mailbox>, D::Error> {
    de_mailbox(d).map(Some)
}

fn de_mailboxes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mailbox>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .map(|s| {
            Mailbox::from_str(s)
                .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a mail address: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[organization]
name = "Agence Exemple"
domains = ["Agence-Exemple.FR", "bücher.example"]
login_hosts = ["sso.agence-exemple.fr."]
[state]
dir = "/tmp/x"
[notify]
transport = "file"
from = "Sécurité <securite@agence-exemple.fr>"
admins = ["secops@agence-exemple.fr"]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn good_config_is_normalised() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.organization.domains,
            ["agence-exemple.fr", "xn--bcher-kva.example"]
        );
        assert_eq!(c.organization.login_hosts, ["sso.agence-exemple.fr"]);
        assert_eq!(c.limits.max_line_bytes, 65536);
        assert_eq!(c.filter.false_positive_rate, 1e-6);
        assert_eq!(c.outbox_dir(), PathBuf::from("/tmp/x/outbox"));
    }

    /// A remediation policy is refused when an action has nowhere to go, or would send a
    /// token or a signed finding in clear beyond this machine; a sound one parses with
    /// the defaults the docs give.
    #[test]
    fn remediation_needs_its_targets_and_https() {
        let rule = "\n[[remediation.rule]]\nkinds = [\"password\"]\nseverities = [\"critical\"]\nactions = ";
        let cases: &[(&str, &str)] = &[
            ("[\"disable\"]", "`disable` needs [remediation.ldap]"),
            (
                "[\"disable\"]\n[remediation.ldap]\nurl = \"ldap://dc.example\"\nbind_dn = \"cn=x\"\npassword_file = \"p\"\nbase_dn = \"dc=example\"",
                "bind password in clear",
            ),
            ("[\"revoke_sessions\"]", "`revoke_sessions` needs [remediation.keycloak]"),
            ("[\"webhook\"]", "`webhook` needs [remediation.webhook]"),
            ("[]", "remediation.rule.actions"),
            (
                "[\"webhook\"]\n[remediation.webhook]\nurl = \"http://soar.example/hook\"\nsecret_file = \"k\"",
                "must be https",
            ),
            (
                "[\"report\"]\n[notify.dkim]\ndomain = \"agence-exemple.fr\"\nselector = \"bad selector\"\nkey_file = \"k\"",
                "notify.dkim.selector",
            ),
            (
                "[\"command\"]\n[remediation.command]\npath = \"hook.sh\"",
                "absolute path",
            ),
            (
                "[\"disable\"]\n[remediation.keycloak]\nurl = \"https://sso.example\"\nrealm = \"a/b\"\nclient_id = \"c\"\nclient_secret_file = \"s\"",
                "remediation.keycloak.realm",
            ),
        ];
        for (actions, needle) in cases {
            let text = format!("{GOOD}{rule}{actions}\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{actions}: {e}");
        }
        let ok = format!(
            "{GOOD}[remediation]\napproval = true\n{}[\"force_change\", \"webhook\"]\n[remediation.webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"k\"\n[remediation.ldap]\nurl = \"ldaps://dc.example\"\nbind_dn = \"cn=x\"\npassword_file = \"p\"\nbase_dn = \"dc=example\"\nflavor = \"ad\"\n",
            rule.trim_start_matches("\n")
        );
        let c = parse(&ok).unwrap();
        let r = &c.remediation;
        assert!(r.approval && !r.dry_run);
        assert_eq!((r.max_per_hour, r.max_attempts), (50, 5));
        assert_eq!(
            r.rule[0].verdicts,
            [
                crate::liveness::Verdict::Current,
                crate::liveness::Verdict::Unknown
            ]
        );
        assert_eq!(r.ldap.as_ref().unwrap().flavor, LdapFlavor::Ad);
    }

    /// docs/configuration.md's block parses, and holds every key each section accepts:
    /// serde names them when it refuses an unknown one, so a key added to the code and
    /// not to the reference fails here.
    #[test]
    fn the_reference_lists_every_key() {
        let doc = include_str!("../docs/configuration.md");
        let start = doc.find("```toml\n").expect("a toml block") + 8;
        let block = &doc[start..start + doc[start..].find("```").unwrap()];
        parse(block).unwrap_or_else(|e| panic!("docs/configuration.md: {e}"));
        // Each section as written in the block, and its keys there.
        let mut keys: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut section = String::new();
        for line in block.lines() {
            let line = line.split('#').next().unwrap().trim();
            if let Some(h) = line.strip_prefix('[') {
                section = h.trim_matches(|c| c == '[' || c == ']').to_string();
            } else if let Some((k, _)) = line.split_once('=') {
                keys.entry(section.clone())
                    .or_default()
                    .push(k.trim().to_string());
            }
        }
        for (section, _) in keys.clone() {
            // An unknown key makes serde list the section's fields.
            let mut probe = String::new();
            let mut done = false;
            for line in block.lines() {
                probe.push_str(line);
                probe.push('\n');
                let head = line.split('#').next().unwrap().trim();
                if !done
                    && head.trim_matches(|c| c == '[' || c == ']') == section
                    && head.starts_with('[')
                {
                    probe.push_str("zz_probe = 1\n");
                    done = true;
                }
            }
            let e = parse(&probe).unwrap_err().to_string();
            let expected = e
                .split("expected one of ")
                .nth(1)
                .or_else(|| e.split("expected ").nth(1))
                .unwrap_or_else(|| panic!("[{section}]: {e}"));
            for field in expected.split(", ").map(|f| f.trim().trim_matches('`')) {
                let field = field.split('`').next().unwrap();
                let sub = format!("{section}.{field}");
                assert!(
                    keys[&section].iter().any(|k| k == field) || keys.contains_key(&sub),
                    "docs/configuration.md lacks `{field}` in [{section}]"
                );
            }
        }
        let top = parse(&format!("zz_probe = 1\n{block}"))
            .unwrap_err()
            .to_string();
        for field in top.split("expected one of ").nth(1).unwrap().split(", ") {
            let field = field.trim().trim_matches('`').split('`').next().unwrap();
            assert!(
                keys.contains_key(field),
                "docs/configuration.md lacks [{field}]"
            );
        }
    }

    /// Each broken config must be refused with the faulty key named in the message.
    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "transport = \"file\"",
                "transport = \"pigeon\"",
                "transport",
            ),
            (
                "admins = [\"secops@agence-exemple.fr\"]",
                "admins = [\"not an address\"]",
                "admins",
            ),
            ("[state]", "[state]\ncolour = 1", "colour"),
            (
                "dir = \"/tmp/x\"",
                "dir = \"/tmp/x\"\n[filter]\nfalse_positive_rate = 0.5",
                "filter.false_positive_rate",
            ),
            (
                "dir = \"/tmp/x\"",
                "dir = \"/tmp/x\"\n[ingest]\nthreads = 1000",
                "ingest.threads",
            ),
            (
                "transport = \"file\"",
                "transport = \"smtp\"",
                "notify.smtp",
            ),
            (
                "admins = [\"secops@agence-exemple.fr\"]",
                "admins = []",
                "notify.admins",
            ),
            // A password in clear to a relay elsewhere than this machine.
            (
                "admins = [\"secops@agence-exemple.fr\"]",
                "admins = [\"secops@agence-exemple.fr\"]\n[notify.smtp]\nhost = \"smtp.agence-exemple.fr\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"/run/pw\"",
                "notify.smtp.tls",
            ),
        ];
        for (from, to, key) in cases {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "case {to} did not change the config");
            let err = parse(&text).expect_err(to).to_string();
            assert!(
                err.contains(key),
                "error for {to:?} does not name {key}: {err}"
            );
            assert!(
                err.contains("test.toml"),
                "error does not name the file: {err}"
            );
        }
        // The same to this machine's relay is allowed (warned about by `check`).
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.53"] {
            let text = GOOD.replace(
                "admins = [\"secops@agence-exemple.fr\"]",
                &format!("admins = [\"secops@agence-exemple.fr\"]\n[notify.smtp]\nhost = \"{host}\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"/run/pw\""),
            );
            parse(&text).unwrap_or_else(|e| panic!("{host}: {e}"));
        }
    }
}
