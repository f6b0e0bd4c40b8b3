//! Metrics for Prometheus, in its text exposition format (version 0.0.4), computed from
//! the store at each scrape: what every run read and found (counters kept in the
//! database, so they survive restarts), findings by kind and severity, feeds, mail and
//! remediation. Served by the daemon on `[metrics] listen` (`GET /metrics`, loopback by
//! default) and/or written to `[metrics] textfile` for node_exporter's textfile
//! collector after each run; `leakwatch metrics` prints them.
//!
//! The listener is hyper's HTTP/1 server. The text format is written here: it is a few
//! lines (`# HELP`, `# TYPE`, `name{labels} value`), and the one crate for it
//! (`prometheus-client`) registers metrics in process memory, which is not where these
//! live. The tests parse the output with Prometheus's own Python parser.
//!
//! Labels carry only the organisation's own names (feed names, kinds, states): never an
//! address, a dump's text or a path.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::store::{Store, StoreError};

/// The counters `ingest` keeps (`counters` table), as metric name and help.
const RUN_COUNTERS: [(&str, &str, &str); 9] = [
    (
        "bytes",
        "leakwatch_bytes_read_total",
        "Bytes of input read.",
    ),
    (
        "lines",
        "leakwatch_lines_read_total",
        "Lines of input read.",
    ),
    (
        "identities",
        "leakwatch_identities_total",
        "Identities hashed and looked up.",
    ),
    (
        "filter_passed",
        "leakwatch_filter_passed_total",
        "Identities the Bloom filter let through to the exact check.",
    ),
    (
        "matches",
        "leakwatch_matches_total",
        "Identities confirmed as the organisation's accounts.",
    ),
    (
        "new_findings",
        "leakwatch_findings_recorded_total",
        "Findings recorded (new, or raised in severity).",
    ),
    (
        "new_unknown",
        "leakwatch_unknown_identities_recorded_total",
        "Identities on the organisation's domains missing from the directory, first seen.",
    ),
    (
        "errors",
        "leakwatch_input_errors_total",
        "Inputs (files, entries) that could not be read.",
    ),
    (
        "mail_deferred",
        "leakwatch_mail_deferred_total",
        "Mail delivery attempts that failed and were queued for retry.",
    ),
];

/// A label value as the format wants it: backslash, double quote and line feed escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn value(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// Every metric, from the store.
pub fn render(store: &Store) -> Result<String, StoreError> {
    let mut o = Out(String::new());
    let counters = store.counters()?;
    let get = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    };
    for (key, name, help) in RUN_COUNTERS {
        o.head(name, "counter", help);
        o.value(name, &[], get(key));
    }
    // Observed: of the identities that are not accounts, the share the filter let
    // through (each cost a store look-up).
    let others = get("identities").saturating_sub(get("matches"));
    let passed_wrongly = get("filter_passed").saturating_sub(get("matches"));
    o.head(
        "leakwatch_filter_false_positive_ratio",
        "gauge",
        "Observed Bloom filter false-positive rate over all runs.",
    );
    o.value(
        "leakwatch_filter_false_positive_ratio",
        &[],
        passed_wrongly as f64 / others.max(1) as f64,
    );

    o.head(
        "leakwatch_findings",
        "gauge",
        "Findings held, by kind and severity.",
    );
    for (kind, severity, n) in store.finding_counts()? {
        o.value(
            "leakwatch_findings",
            &[("kind", &kind), ("severity", &severity)],
            n,
        );
    }
    o.head(
        "leakwatch_unknown_org_identities",
        "gauge",
        "Identities on the organisation's domains that match no account, held.",
    );
    o.value(
        "leakwatch_unknown_org_identities",
        &[],
        store.unknown_identity_count()?,
    );

    o.head(
        "leakwatch_feed_runs_total",
        "counter",
        "Feed runs, by feed and outcome.",
    );
    for (feed, outcome, n) in store.feed_run_counts()? {
        o.value(
            "leakwatch_feed_runs_total",
            &[("feed", &feed), ("outcome", &outcome)],
            n,
        );
    }
    o.head(
        "leakwatch_feed_last_success_timestamp_seconds",
        "gauge",
        "When each feed's last successful run ended (unix time).",
    );
    for (feed, at) in store.feed_last_successes()? {
        o.value(
            "leakwatch_feed_last_success_timestamp_seconds",
            &[("feed", &feed)],
            at,
        );
    }
    o.head(
        "leakwatch_feed_last_run_duration_seconds",
        "gauge",
        "How long each feed's last finished run took.",
    );
    for r in store.feed_runs_latest()? {
        if let Some(end) = r.finished_at {
            o.value(
                "leakwatch_feed_last_run_duration_seconds",
                &[("feed", &r.feed)],
                end - r.started_at,
            );
        }
    }

    let mail = store.mail_counts()?;
    o.head(
        "leakwatch_mail_queue_depth",
        "gauge",
        "Messages queued, not yet delivered.",
    );
    o.value("leakwatch_mail_queue_depth", &[], mail.pending);
    o.head(
        "leakwatch_mail_sent_total",
        "counter",
        "Messages delivered.",
    );
    o.value("leakwatch_mail_sent_total", &[], mail.sent);
    o.head(
        "leakwatch_mail_failed_total",
        "counter",
        "Messages given up on (permanent error or attempts used up).",
    );
    o.value("leakwatch_mail_failed_total", &[], mail.failed);

    o.head(
        "leakwatch_actions",
        "gauge",
        "Remediation actions, by state.",
    );
    for (status, n) in store.action_counts()? {
        o.value("leakwatch_actions", &[("status", status.as_str())], n);
    }

    o.head(
        "leakwatch_siem_events",
        "gauge",
        "Findings exported to the SIEM, by target and state (pending, sent, failed).",
    );
    for (target, status, n) in store.siem_counts()? {
        o.value(
            "leakwatch_siem_events",
            &[("target", &target), ("status", &status)],
            n,
        );
    }

    if let Some(d) = store.daemon()? {
        o.head(
            "leakwatch_daemon_heartbeat_timestamp_seconds",
            "gauge",
            "The daemon's last heartbeat (unix time).",
        );
        o.value(
            "leakwatch_daemon_heartbeat_timestamp_seconds",
            &[],
            d.heartbeat,
        );
    }
    Ok(o.0)
}

/// Writes the metrics to `[metrics] textfile` if set: to a temporary file beside it,
/// then renamed, so node_exporter never reads half a file. A failure is logged.
pub fn write_textfile(cfg: &Config, store: &Store) {
    let Some(path) = &cfg.metrics.textfile else {
        return;
    };
    if let Err(e) = write_to(path, store) {
        tracing::warn!(path = %path.display(), error = %e, "metrics textfile not written");
    }
}

fn write_to(path: &Path, store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    let text = render(store)?;
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text)?;
    // node_exporter runs as another user: the file is readable by all (it holds counts
    // only).
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Serves `GET /metrics` on `listener` until the runtime stops, with hyper's HTTP/1
/// server: one scrape at a time per connection, a connection's headers read within 5 s,
/// `/metrics` only (404 elsewhere, 405 for other methods).
pub async fn serve(listener: tokio::net::TcpListener, cfg: std::sync::Arc<Config>) {
    use http_body_util::Full;
    use hyper::{Method, Response, StatusCode};

    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let cfg = cfg.clone();
                    async move {
                        let (status, body) = match (req.method(), req.uri().path()) {
                            (&Method::GET, "/metrics") => {
                                let dir = cfg.state_dir().to_path_buf();
                                let text = tokio::task::spawn_blocking(move || {
                                    Store::open(&dir).and_then(|s| render(&s))
                                })
                                .await;
                                match text {
                                    Ok(Ok(t)) => (StatusCode::OK, t),
                                    Ok(Err(e)) => {
                                        tracing::warn!(error = %e, "metrics: store not read");
                                        (StatusCode::SERVICE_UNAVAILABLE, "store not read\n".into())
                                    }
                                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                                }
                            }
                            (&Method::GET, _) => (StatusCode::NOT_FOUND, "only /metrics\n".into()),
                            _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
                        };
                        let mut resp = Response::new(Full::new(bytes::Bytes::from(body)));
                        *resp.status_mut() = status;
                        resp.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .max_buf_size(16 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut o = Out(String::new());
        o.value("m", &[("feed", "x\"y"), ("k", "v")], 3);
        assert_eq!(o.0, "m{feed=\"x\\\"y\",k=\"v\"} 3\n");
    }
}
