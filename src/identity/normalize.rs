//! Normalisation of emails, usernames and site hosts.
//!
//! Dumps write the same address in many ways (`"Jean.Dupont@Agence-Exemple.FR "`,
//! `mailto:jean.dupont+rh@agence-exemple.fr`, IDN domains in Unicode). Normalising makes them
//! one key. Lookalikes stay different on purpose: domains and hosts are compared whole,
//! never by suffix or substring, so `agence-exemple.fr.evil.io` and `xagence-exemple.fr`
//! are other identities.

use super::{IdentityKind, LOGIN_KEY_PREFIX};
use crate::config::Organization;

/// Builds identity keys for one organisation.
#[derive(Debug, Clone)]
pub struct Normalizer {
    org_domains: Vec<String>,
    login_hosts: Vec<String>,
}

impl Normalizer {
    pub fn new(org: &Organization) -> Self {
        Normalizer {
            org_domains: org.domains.clone(),
            login_hosts: org.login_hosts.clone(),
        }
    }

    pub fn from_parts(org_domains: &[&str], login_hosts: &[&str]) -> Self {
        Normalizer {
            org_domains: org_domains.iter().map(|s| s.to_string()).collect(),
            login_hosts: login_hosts.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Writes the identity key of a login seen on `url` into `out`.
    ///
    /// An email is an identity wherever it was typed. A bare username is one only on a
    /// login host of the organisation; elsewhere it cannot be attributed to anybody.
    pub fn key_of(&self, login: &str, url: Option<&str>, out: &mut String) -> Option<IdentityKind> {
        out.clear();
        let login = trim_decorations(login);
        if login.contains('@') {
            return normalize_trimmed_email(login, &self.org_domains, out)
                .then_some(IdentityKind::Email);
        }
        let host = url.and_then(url_host)?;
        if !self.is_login_host(host) {
            return None;
        }
        self.login_key(login, out).then_some(IdentityKind::Login)
    }

    /// `login:<username>`, the key of a username on the organisation's login hosts.
    pub fn login_key(&self, username: &str, out: &mut String) -> bool {
        out.clear();
        let u = trim_decorations(username);
        if u.is_empty() || u.len() > 256 || u.contains(char::is_whitespace) {
            return false;
        }
        out.push_str(LOGIN_KEY_PREFIX);
        push_lower(u, out);
        true
    }

    /// The normalised key of an email address, for the directory import.
    pub fn email_key(&self, raw: &str, out: &mut String) -> bool {
        normalize_email(raw, &self.org_domains, out)
    }

    /// Whether a normalised email key is on one of the organisation's domains.
    pub fn is_org_email(&self, key: &str) -> bool {
        key.rsplit_once('@')
            .is_some_and(|(_, d)| self.org_domains.iter().any(|o| o == d))
    }

    pub(crate) fn org_domains(&self) -> &[String] {
        &self.org_domains
    }

    pub fn has_login_hosts(&self) -> bool {
        !self.login_hosts.is_empty()
    }

    /// Whether a host (a cookie's domain, say) is one of the organisation's: a login host,
    /// an email domain, or a subdomain of either.
    pub fn is_org_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('.');
        let ascii;
        let host = if host.is_ascii() {
            host
        } else {
            match idna::domain_to_ascii(host) {
                Ok(h) => {
                    ascii = h;
                    &ascii
                }
                Err(_) => return false,
            }
        };
        let under = |d: &String| {
            host.eq_ignore_ascii_case(d)
                || (host.len() > d.len()
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.'
                    && host[host.len() - d.len()..].eq_ignore_ascii_case(d))
        };
        self.login_hosts.iter().any(under) || self.org_domains.iter().any(under)
    }

    pub(crate) fn is_login_host(&self, host: &str) -> bool {
        if host.is_ascii() {
            return self
                .login_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host));
        }
        match idna::domain_to_ascii(host) {
            Ok(h) => self.login_hosts.contains(&h),
            Err(_) => false,
        }
    }
}

/// Trims spaces, quotes and angle brackets, and `mailto:` prefixes, until none is left
/// (so that normalising a key again gives the same key).
pub(crate) fn trim_decorations(mut s: &str) -> &str {
    let is_deco = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`');
    loop {
        s = s.trim_matches(is_deco);
        match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("mailto:") => s = &s[7..],
            _ => return s,
        }
    }
}

fn push_lower(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}

/// Normalises an email address into `out`: lower case, IDN domain to punycode, `+tag`
/// dropped on the organisation's domains. Returns false if it is not an address.
pub fn normalize_email(raw: &str, org_domains: &[String], out: &mut String) -> bool {
    normalize_trimmed_email(trim_decorations(raw), org_domains, out)
}

/// [`normalize_email`] of a login already through `trim_decorations` (the per-line path).
fn normalize_trimmed_email(raw: &str, org_domains: &[String], out: &mut String) -> bool {
    out.clear();
    let Some(at) = memchr::memrchr(b'@', raw.as_bytes()) else {
        return false;
    };
    let (local, domain) = (&raw[..at], &raw[at + 1..]);
    if local.is_empty() || local.len() > 64 || domain.len() < 3 || domain.len() > 253 {
        return false;
    }
    let ok = if raw.is_ascii() {
        ascii_email(local, domain, out)
    } else {
        unicode_email(raw, local, domain, out)
    };
    if !ok {
        out.clear();
        return false;
    }
    // Both helpers write `local@domain`, and a local part never holds an `@`.
    let at = out.rfind('@').expect("written with an @");
    if let Some(plus) = out[..at].find('+').filter(|&p| p > 0) {
        if org_domains.iter().any(|d| d.as_str() == &out[at + 1..]) {
            out.replace_range(plus..at, "");
        }
    }
    true
}

/// Bytes that never appear in the local part of an address found in a dump.
pub(crate) fn bad_local_byte(c: u8) -> bool {
    c <= b' ' || c == 0x7f || matches!(c, b'@' | b':' | b'/' | b'\\' | b';' | b',')
}

/// The common case, in one pass per part and without allocating: an ASCII address.
fn ascii_email(local: &str, domain: &str, out: &mut String) -> bool {
    if local.bytes().any(bad_local_byte) {
        return false;
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if !valid_ascii_domain(domain) {
        return false;
    }
    out.push_str(local);
    out.push('@');
    out.push_str(domain);
    out.make_ascii_lowercase();
    true
}

/// Labels of letters, digits, `-` and `_`, at least two, none empty.
pub(crate) fn valid_ascii_domain(domain: &str) -> bool {
    let mut prev_dot = true;
    let mut dots = 0;
    for c in domain.bytes() {
        if c == b'.' {
            if prev_dot {
                return false;
            }
            prev_dot = true;
            dots += 1;
        } else if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            prev_dot = false;
        } else {
            return false;
        }
    }
    dots > 0 && !prev_dot
}

/// Non-ASCII addresses: Unicode lower case, IDN domains to punycode.
fn unicode_email(raw: &str, local: &str, domain: &str, out: &mut String) -> bool {
    if raw.contains(|c: char| c.is_whitespace() || c.is_control())
        || local.bytes().any(bad_local_byte)
    {
        return false;
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    push_lower(local, out);
    out.push('@');
    // UTS 46 processing lets through characters no mail domain has (`:`, `/`): the
    // result is checked like any ASCII domain.
    match idna::domain_to_ascii(domain) {
        Ok(d) if valid_ascii_domain(&d) => out.push_str(&d),
        _ => return false,
    }
    true
}

/// The host of a URL as dumps write it: `https://user@host:port/path`, `host/path`,
/// `host:port`, `android://hash@package/`. Borrowed, not lower-cased.
pub fn url_host(url: &str) -> Option<&str> {
    // The first `://`, found from its colon: this runs on every ULP line.
    let b = url.as_bytes();
    let scheme_end = memchr::memchr_iter(b':', b).find(|&i| b[i + 1..].starts_with(b"//"));
    let rest = match scheme_end {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let end = rest
        .bytes()
        .position(|c| matches!(c, b'/' | b'?' | b'#' | b' '))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// `j•••••t@agence-exemple.fr`: enough for an admin to recognise an address they already
/// know, too little to learn one from the digest.
pub fn mask_email(key: &str) -> String {
    match key.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{}", mask(local), domain),
        None => mask(key.strip_prefix(LOGIN_KEY_PREFIX).unwrap_or(key)),
    }
}

/// First and last character around five bullets; short values are bullets only, and the
/// bullet count never tells the length.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 6 {
        return "•••••".to_string();
    }
    format!("{}•••••{}", chars[0], chars[chars.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Normalizer {
        Normalizer::from_parts(
            &["agence-exemple.fr", "xn--bcher-kva.example"],
            &["sso.agence-exemple.fr"],
        )
    }

    #[test]
    fn emails() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Jean.Dupont@Agence-Exemple.FR",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            (
                "  \"jean.dupont@agence-exemple.fr\" ",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            (
                "'jean.dupont@agence-exemple.fr'",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            (
                "MAILTO:jean.dupont@agence-exemple.fr",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            (
                "<mailto:jean.dupont@agence-exemple.fr>",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            (
                "jean.dupont+rh@agence-exemple.fr",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            (
                "jean.dupont+a+b@agence-exemple.fr",
                Some("jean.dupont@agence-exemple.fr"),
            ),
            // +tags are kept off the organisation's domains: other providers differ.
            ("jean+news@example.net", Some("jean+news@example.net")),
            ("jean@agence-exemple.fr.", Some("jean@agence-exemple.fr")),
            (
                "Élodie@Bücher.example",
                Some("élodie@xn--bcher-kva.example"),
            ),
            (
                "élodie+x@bücher.example",
                Some("élodie@xn--bcher-kva.example"),
            ),
            (
                "a@agence-exemple.fr.evil.io",
                Some("a@agence-exemple.fr.evil.io"),
            ),
            ("a@xagence-exemple.fr", Some("a@xagence-exemple.fr")),
            ("+tag@agence-exemple.fr", Some("+tag@agence-exemple.fr")),
            ("no-at-sign.example", None),
            ("@example.net", None),
            ("a@", None),
            ("a@localhost", None),
            ("a b@example.net", None),
            ("a@exa mple.net", None),
            ("a@example..net", None),
            ("a@ex/ample.net", None),
            ("a:b@example.net", None),
        ];
        let norm = n();
        let mut out = String::new();
        for (raw, want) in cases {
            let got = norm.email_key(raw, &mut out).then(|| out.clone());
            assert_eq!(got.as_deref(), *want, "{raw:?}");
        }
    }

    #[test]
    fn org_hosts_include_subdomains_but_not_lookalikes() {
        let n = Normalizer::from_parts(&["agence-exemple.fr"], &["sso.partenaire.example"]);
        assert!(n.is_org_host(".agence-exemple.fr"));
        assert!(n.is_org_host("espace.AGENCE-exemple.fr"));
        assert!(n.is_org_host("sso.partenaire.example"));
        assert!(!n.is_org_host("partenaire.example"));
        assert!(!n.is_org_host("fake-agence-exemple.fr"));
        assert!(!n.is_org_host("agence-exemple.fr.evil.example"));
    }

    #[test]
    fn logins_only_count_on_login_hosts() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "JDupont",
                Some("https://sso.agence-exemple.fr/login"),
                Some("login:jdupont"),
            ),
            (
                "jdupont",
                Some("http://SSO.Agence-Exemple.FR:8443/x"),
                Some("login:jdupont"),
            ),
            (
                "jdupont",
                Some("sso.agence-exemple.fr/login"),
                Some("login:jdupont"),
            ),
            (
                "jdupont",
                Some("sso.agence-exemple.fr"),
                Some("login:jdupont"),
            ),
            (
                "jdupont",
                Some("https://user@sso.agence-exemple.fr./"),
                Some("login:jdupont"),
            ),
            (
                "jdupont",
                Some("https://sso.agence-exemple.fr.evil.io/"),
                None,
            ),
            ("jdupont", Some("https://xsso.agence-exemple.fr/"), None),
            (
                "jdupont",
                Some("https://evil.io/sso.agence-exemple.fr"),
                None,
            ),
            (
                "jdupont",
                Some("https://evil.io/?u=sso.agence-exemple.fr"),
                None,
            ),
            ("jdupont", None, None),
            ("jdupont", Some("android://hash@fr.agence.app/"), None),
            // An email is an identity on any site.
            (
                "J@Agence-Exemple.fr",
                Some("https://evil.io/"),
                Some("j@agence-exemple.fr"),
            ),
        ];
        let norm = n();
        let mut out = String::new();
        for (login, url, want) in cases {
            let got = norm.key_of(login, *url, &mut out).map(|_| out.clone());
            assert_eq!(got.as_deref(), *want, "{login:?} on {url:?}");
        }
    }

    /// Arbitrary strings never panic, and normalising a key again gives the same key.
    #[test]
    fn arbitrary_logins_never_panic_and_keys_are_fixed_points() {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "@",
            ".",
            "+",
            "-",
            "_",
            " ",
            "\"",
            "'",
            "<",
            ">",
            "mailto:",
            "MAILTO:",
            "é",
            "Ü",
            "ß",
            "İ",
            "ﬁ",
            "xn--",
            "agence-exemple.fr",
            "bücher",
            ":",
            "/",
            "\u{0}",
            "\u{200b}",
            "..",
            "sso.agence-exemple.fr",
            "https://",
            ":8443",
        ];
        let norm = n();
        let mut rng = crate::synth::Rng::new(7);
        let (mut key, mut again) = (String::new(), String::new());
        for _ in 0..20_000 {
            let len = rng.below(12);
            let login: String = (0..len).map(|_| *rng.pick(PIECES)).collect();
            let url: String = (0..rng.below(4)).map(|_| *rng.pick(PIECES)).collect();
            let _ = url_host(&url);
            let _ = mask_email(&login);
            if let Some(kind) = norm.key_of(&login, Some(&url), &mut key) {
                let ok = match kind {
                    IdentityKind::Email => norm.email_key(&key, &mut again),
                    IdentityKind::Login => norm.login_key(&key["login:".len()..], &mut again),
                };
                assert!(
                    ok,
                    "{login:?} gave key {key:?} that does not normalise again"
                );
                assert_eq!(again, key, "{login:?}");
            }
        }
    }

    #[test]
    fn hosts_and_masks() {
        assert_eq!(url_host("https://a.example:8443/x"), Some("a.example"));
        assert_eq!(url_host("android://h==@com.app/"), Some("com.app"));
        assert_eq!(url_host("a.example"), Some("a.example"));
        assert_eq!(url_host("https://"), None);
        assert_eq!(
            mask_email("jean.dupont@agence-exemple.fr"),
            "j•••••t@agence-exemple.fr"
        );
        assert_eq!(
            mask_email("jd@agence-exemple.fr"),
            "•••••@agence-exemple.fr"
        );
        assert_eq!(mask("motdepasse"), "m•••••e");
        assert!(n().is_org_email("a@agence-exemple.fr"));
        assert!(!n().is_org_email("a@xagence-exemple.fr"));
        assert!(!n().is_org_email("a@agence-exemple.fr.evil.io"));
    }
}
