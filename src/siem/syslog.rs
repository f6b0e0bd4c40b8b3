//! RFC 5424 syslog: the message as a collector parses it, and the three ways to send it
//! (the local daemon's socket, UDP, TCP with RFC 6587 octet counting).

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Facility `authpriv` (10): security events, readable by admins only on most systems.
const FACILITY: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(String),
    Udp(String),
    Tcp(String),
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        if let Some(p) = s.strip_prefix("unix:") {
            let p = p.trim_start_matches("//");
            return p.starts_with('/').then(|| Target::Unix(p.to_string()));
        }
        let (ctor, rest): (fn(String) -> Target, &str) = if let Some(r) = s.strip_prefix("udp://") {
            (Target::Udp, r)
        } else {
            (Target::Tcp, s.strip_prefix("tcp://")?)
        };
        let (host, port) = rest.rsplit_once(':')?;
        (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| ctor(rest.to_string()))
    }
}

/// `<PRI>1 TIMESTAMP HOSTNAME leakwatch PROCID finding - MSG`: no structured data (the
/// JSON carries it), the event's severity as syslog's.
pub fn line(severity: u8, timestamp: &str, hostname: &str, msg: &str) -> String {
    let pri = u16::from(FACILITY) * 8 + u16::from(severity.min(7));
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let host = if host.is_empty() { "-".into() } else { host };
    format!(
        "<{pri}>1 {timestamp} {host} leakwatch {} finding - {msg}",
        std::process::id()
    )
}

/// A connection for one delivery pass.
pub enum Sender {
    Unix(UnixDatagram, String),
    Udp(UdpSocket, std::net::SocketAddr),
    Tcp(TcpStream),
}

impl Sender {
    pub fn open(target: &Target, timeout: Duration) -> std::io::Result<Sender> {
        let resolve = |a: &str| {
            a.to_socket_addrs()?.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{a}: no address"))
            })
        };
        Ok(match target {
            Target::Unix(path) => Sender::Unix(UnixDatagram::unbound()?, path.clone()),
            Target::Udp(addr) => {
                let to = resolve(addr)?;
                let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                Sender::Udp(UdpSocket::bind(bind)?, to)
            }
            Target::Tcp(addr) => {
                let s = TcpStream::connect_timeout(&resolve(addr)?, timeout)?;
                s.set_write_timeout(Some(timeout))?;
                Sender::Tcp(s)
            }
        })
    }

    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Sender::Unix(s, path) => s.send_to(line.as_bytes(), path.as_str()).map(drop),
            Sender::Udp(s, to) => s.send_to(line.as_bytes(), *to).map(drop),
            Sender::Tcp(s) => {
                s.write_all(format!("{} ", line.len()).as_bytes())?;
                s.write_all(line.as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_lines() {
        assert_eq!(
            Target::parse("unix:/dev/log"),
            Some(Target::Unix("/dev/log".into()))
        );
        assert_eq!(
            Target::parse("udp://127.0.0.1:514"),
            Some(Target::Udp("127.0.0.1:514".into()))
        );
        assert_eq!(
            Target::parse("tcp://siem.example:601"),
            Some(Target::Tcp("siem.example:601".into()))
        );
        for bad in [
            "unix:dev/log",
            "udp://:514",
            "tcp://host",
            "http://x:1",
            "tcp://h:99999",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
        let l = line(2, "2026-12-03T12:00:00Z", "lw host\n", "{}");
        assert!(
            l.starts_with("<82>1 2026-12-03T12:00:00Z lwhost leakwatch "),
            "{l}"
        );
        assert!(l.ends_with(" finding - {}"), "{l}");
    }
}
