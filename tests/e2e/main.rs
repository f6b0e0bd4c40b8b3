//! End-to-end tests: the real `leakwatch` binary on generated data, with a real SMTP
//! server (aiosmtpd) on loopback. One binary for all of them (see Cargo.toml).

mod crash;
mod daemon;
mod dkim;
mod erasure;
mod faults;
mod feeds;
mod hostile;
mod liveness;
mod metrics;
mod pipeline;
mod remediation;
mod shapes;
mod siem;
mod slapd;
mod smtp;
mod stealer;
mod support;
mod throughput;
