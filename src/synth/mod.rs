//! Synthetic test data: directories and dumps with planted accounts, for tests, the demo
//! and the benchmarks. Nothing here is real: names are drawn from syllables, personal
//! addresses use reserved domains (`.example`, `.test`, `example.net`), passwords are random.
//!
//! The generator is deterministic for a seed, with its own small PRNG (SplitMix64) so that
//! the shipped demo files can be checked against a fresh generation whatever version of
//! `rand` is in the lock file.

pub mod pack;
pub mod shapes;
pub mod stealer;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// SplitMix64: tiny, fast, and stable forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Up to `max` pieces drawn from `pieces`, end to end: dump-shaped random bytes for the
/// parsers' no-panic and agreement tests.
pub fn pieces(rng: &mut Rng, pieces: &[&[u8]], max: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(max) {
        out.extend_from_slice(rng.pick::<&[u8]>(pieces));
    }
    out
}

const SYLLABLES: &[&str] = &[
    "ma", "lo", "ri", "da", "ne", "to", "sa", "vi", "ber", "mon", "tal", "cha", "lu", "ro", "ge",
    "pi", "na", "fa", "del", "cor", "mi", "ja", "ul", "be",
];
/// Reserved domains only: no generated address can belong to a real person.
pub const PERSONAL_DOMAINS: &[&str] = &[
    "example.net",
    "example.org",
    "example.com",
    "courriel.example",
    "boite.test",
    "webmail.example",
];
const SITES: &[&str] = &[
    "https://www.shop.example/login",
    "https://forum.example.org/member.php",
    "http://jeux.example:8080/connexion",
    "https://mail.example.net/",
    "webmail.example/auth",
    "android://aGFzaGhhc2g=@com.example.social/",
];

pub(crate) fn word(rng: &mut Rng, syllables: u64) -> String {
    (0..syllables).map(|_| *rng.pick(SYLLABLES)).collect()
}

fn password(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!?*#:;|";
    let len = 8 + rng.below(8);
    (0..len).map(|_| *rng.pick(CHARS) as char).collect()
}

/// An account of the synthetic directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthAccount {
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub lang: &'static str,
}

/// `n` accounts: about one in five staff (org domain, with a username), the rest the
/// public with personal addresses, as for an agency that serves the public.
pub fn directory(rng: &mut Rng, n: usize, org_domain: &str) -> Vec<SynthAccount> {
    (0..n)
        .map(|i| {
            let first = word(rng, 2);
            let n = 2 + rng.below(2);
            let last = word(rng, n);
            let staff = rng.chance(20);
            let lang = if rng.chance(80) { "fr" } else { "en" };
            let name = format!("{} {}", capitalise(&first), capitalise(&last));
            if staff {
                SynthAccount {
                    email: format!("{first}.{last}{i}@{org_domain}"),
                    username: Some(format!("{}{last}{i}", &first[..1])),
                    name,
                    lang,
                }
            } else {
                SynthAccount {
                    email: format!("{first}.{last}{i}@{}", *rng.pick(PERSONAL_DOMAINS)),
                    username: None,
                    name,
                    lang,
                }
            }
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub fn write_directory_csv(w: &mut impl Write, accounts: &[SynthAccount]) -> io::Result<()> {
    writeln!(w, "email,username,name,lang,service")?;
    for a in accounts {
        writeln!(
            w,
            "{},{},{},{},{}",
            a.email,
            a.username.as_deref().unwrap_or(""),
            a.name,
            a.lang,
            if a.username.is_some() {
                "staff"
            } else {
                "public"
            }
        )?;
    }
    Ok(())
}

/// A random identity nobody in the directory has (index far beyond any directory's).
pub(crate) fn stranger(rng: &mut Rng) -> String {
    format!(
        "{}.{}{}@{}",
        word(rng, 2),
        word(rng, 3),
        1_000_000_000 + rng.below(1_000_000_000),
        rng.pick(PERSONAL_DOMAINS)
    )
}

/// One noise line of a combo/ULP list, in any of the shapes found in the wild.
pub fn noise_line(rng: &mut Rng, out: &mut String) {
    out.clear();
    let pw = password(rng);
    match rng.below(10) {
        0..=4 => {
            let sep = *rng.pick(&[':', ':', ';', '|', '\t']);
            out.push_str(&stranger(rng));
            out.push(sep);
            out.push_str(&pw);
        }
        5..=7 => {
            let sep = *rng.pick(&[':', '|', ' ']);
            let site = *rng.pick::<&str>(SITES);
            out.push_str(site);
            out.push(sep);
            let login = if rng.chance(60) {
                stranger(rng)
            } else {
                word(rng, 3)
            };
            out.push_str(&login);
            out.push(sep);
            out.push_str(&pw);
        }
        8 => {
            out.push_str(&word(rng, 3));
            out.push(':');
            out.push_str(&pw);
        }
        _ => out.push_str(rng.pick::<&str>(&[
            "==================",
            "# combo fresh private 2025",
            "",
            "--- join our channel ---",
        ])),
    }
}

/// Writes a combo/ULP list of about `bytes` bytes of noise, with `planted` lines spread
/// through it. Returns the number of lines written.
pub fn write_combo(
    w: &mut impl Write,
    rng: &mut Rng,
    bytes: u64,
    planted: &[String],
) -> io::Result<u64> {
    let mut written = 0u64;
    let mut lines = 0u64;
    let mut line = String::new();
    // Planted lines at evenly spread positions, whatever the size.
    // Noise lines average about 48 bytes.
    let approx_lines = (bytes / 48).max(planted.len() as u64 + 1);
    let step = approx_lines / (planted.len() as u64 + 1);
    let mut next_plant = 0usize;
    while written < bytes || next_plant < planted.len() {
        if next_plant < planted.len() && lines >= step * (next_plant as u64 + 1) {
            w.write_all(planted[next_plant].as_bytes())?;
            w.write_all(b"\n")?;
            written += planted[next_plant].len() as u64 + 1;
            next_plant += 1;
        } else {
            noise_line(rng, &mut line);
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            written += line.len() as u64 + 1;
        }
        lines += 1;
    }
    Ok(lines)
}

/// What a scenario planted, to check a run against.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Accounts that must get a password finding.
    pub password: Vec<String>,
    /// Accounts that must get an identity-only finding (and no password finding).
    pub identity: Vec<String>,
    /// Org-domain identities that no account holds.
    pub unknown: Vec<String>,
    /// Accounts planted only as lookalikes or on foreign hosts: must get nothing.
    pub untouched: Vec<String>,
    /// Every password in a planted line: none may ever be found in the state directory.
    pub passwords: Vec<String>,
}

fn plant_pw(rng: &mut Rng, list: &mut Vec<String>) -> String {
    let p = password(rng);
    list.push(p.clone());
    p
}

/// A complete scenario: a directory and one dump of every supported format, with planted
/// accounts, lookalikes, junk and bad bytes. Used by the demo and the end-to-end tests.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub accounts: Vec<SynthAccount>,
    pub expected: Expected,
}

pub const DEMO_ORG_DOMAIN: &str = "agence-exemple.fr";
pub const DEMO_LOGIN_HOST: &str = "sso.agence-exemple.fr";

/// Writes the scenario's files into `dir`: `accounts.csv`, `dumps/combo.txt`,
/// `dumps/ulp.txt`, `dumps/leak-site.csv`, `dumps/stealer-logs.zip`. `noise` lines of junk
/// surround the planted ones in each list.
pub fn write_scenario(dir: &Path, seed: u64, accounts: usize, noise: u64) -> io::Result<Scenario> {
    let mut rng = Rng::new(seed);
    let mut dir_accounts = directory(&mut rng, accounts.max(12), DEMO_ORG_DOMAIN);
    // The roles below need staff (with a username) and public accounts: make sure of both.
    for (i, a) in dir_accounts.iter_mut().enumerate().take(6) {
        if i % 2 == 0 && a.username.is_none() {
            let local = a.email.split('@').next().unwrap_or("x").to_string();
            a.email = format!("{local}@{DEMO_ORG_DOMAIN}");
            a.username = Some(format!("u{local}").replace('.', ""));
        }
    }
    let staff: Vec<&SynthAccount> = dir_accounts
        .iter()
        .filter(|a| a.username.is_some())
        .collect();
    let public: Vec<&SynthAccount> = dir_accounts
        .iter()
        .filter(|a| a.username.is_none())
        .collect();
    let (s0, s1, s2) = (staff[0], staff[1], staff[2]);
    let (p0, p1, p2, p3) = (public[0], public[1], public[2], public[3]);
    let local = |a: &SynthAccount| a.email.split('@').next().unwrap_or("").to_string();
    let domain = |a: &SynthAccount| a.email.split('@').nth(1).unwrap_or("").to_string();
    let mut exp = Expected::default();

    // Combo list: staff with +tag and capitals, public with a password, lookalikes.
    let combo_planted = vec![
        format!(
            "{}+rh@{}:{}",
            local(s0).to_uppercase(),
            DEMO_ORG_DOMAIN.to_uppercase(),
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "\"{}\";{}",
            p0.email,
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "{}@{}.evil.io:{}",
            local(s1),
            DEMO_ORG_DOMAIN,
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "{}@x{}:{}",
            local(s1),
            DEMO_ORG_DOMAIN,
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "fantome.inconnu@{DEMO_ORG_DOMAIN}:{}",
            plant_pw(&mut rng, &mut exp.passwords)
        ),
    ];
    exp.password.extend([s0.email.clone(), p0.email.clone()]);
    exp.unknown
        .push(format!("fantome.inconnu@{DEMO_ORG_DOMAIN}"));

    // ULP: a bare username on the SSO host, the same on a lookalike host, an email on a site.
    let ulp_planted = vec![
        format!(
            "https://{DEMO_LOGIN_HOST}:8443/auth/login:{}:{}",
            s2.username.as_deref().unwrap_or(""),
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "https://{DEMO_LOGIN_HOST}.evil.io/login|{}|{}",
            s1.username.as_deref().unwrap_or(""),
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "https://x{DEMO_LOGIN_HOST}/login {} {}",
            s1.username.as_deref().unwrap_or(""),
            plant_pw(&mut rng, &mut exp.passwords)
        ),
        format!(
            "android://aGFzaA==@com.example.app/:{}:{}",
            p1.email.to_uppercase(),
            plant_pw(&mut rng, &mut exp.passwords)
        ),
    ];
    exp.password.extend([s2.email.clone(), p1.email.clone()]);
    exp.untouched.push(s1.email.clone());

    // Leak-site table: identities only, one in mailto: form.
    let mut table = String::from("id;nom;prénom;Courriel;téléphone;ville\n");
    let table_planted = [format!("mailto:{}", p2.email), p3.email.clone()];
    for (n, i) in (1..).zip(0..(noise / 10).max(4)) {
        if i == 1 || i == 3 {
            table.push_str(&format!(
                "{n};Nom{n};Prénom{n};{};06 00 00 00 {:02};Ville\n",
                table_planted[(i / 2) as usize],
                n % 100
            ));
        } else {
            table.push_str(&format!(
                "{n};Nom{n};Prénom{n};{};06 00 00 00 {:02};Ville\n",
                stranger(&mut rng),
                n % 100
            ));
        }
    }
    exp.identity.extend([p2.email.clone(), p3.email.clone()]);

    // Stealer log: one infected device with a staff email and password.
    let staff_pw = plant_pw(&mut rng, &mut exp.passwords);
    let passwords_txt = format!(
        "*******************************\n*  Synthetic stealer log      *\n*******************************\n\nURL: https://www.shop.example/\nUsername: {}\nPassword: {}\nApplication: Google_[Chrome]_Default\n===============\nURL: https://{DEMO_LOGIN_HOST}/\nUsername: {}\nPassword: {staff_pw}\nApplication: Google_[Chrome]_Default\n===============\n",
        stranger(&mut rng),
        plant_pw(&mut rng, &mut exp.passwords),
        dir_accounts[dir_accounts.len() - 1].email
    );
    exp.password
        .push(dir_accounts[dir_accounts.len() - 1].email.clone());

    let dumps = dir.join("dumps");
    std::fs::create_dir_all(&dumps)?;
    let mut f = io::BufWriter::new(std::fs::File::create(dir.join("accounts.csv"))?);
    write_directory_csv(&mut f, &dir_accounts)?;
    f.flush()?;

    let mut f = io::BufWriter::new(std::fs::File::create(dumps.join("combo.txt"))?);
    write_combo(&mut f, &mut rng, noise * 40, &combo_planted)?;
    // Bad bytes that must be skipped, not fatal: invalid UTF-8, NUL, an over-long line.
    f.write_all(b"caf\xe9-latin1@example.net:motdepasse\n")?;
    f.write_all(b"nul\x00byte@example.net:pw\n")?;
    f.write_all(&vec![b'A'; 70 * 1024])?;
    f.write_all(b"\n")?;
    f.flush()?;
    let mut f = io::BufWriter::new(std::fs::File::create(dumps.join("ulp.txt"))?);
    write_combo(&mut f, &mut rng, noise * 40, &ulp_planted)?;
    f.flush()?;
    std::fs::write(dumps.join("leak-site.csv"), table)?;

    let zip_path = dumps.join("stealer-logs.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path)?);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    z.start_file("FR[3F2A9C]_2025_10_12/Passwords.txt", opts)?;
    z.write_all(passwords_txt.as_bytes())?;
    z.start_file("FR[3F2A9C]_2025_10_12/System.txt", opts)?;
    z.write_all(b"Build: synthetic\nCountry: FR\n")?;
    z.finish()?;

    // Keep the expectation lists tidy and free of doubles.
    for v in [
        &mut exp.password,
        &mut exp.identity,
        &mut exp.unknown,
        &mut exp.untouched,
    ] {
        v.sort();
        v.dedup();
    }
    let _ = domain;
    Ok(Scenario {
        accounts: dir_accounts,
        expected: exp,
    })
}

/// Paths of a scenario's dump files.
pub fn scenario_dumps(dir: &Path) -> Vec<PathBuf> {
    ["combo.txt", "ulp.txt", "leak-site.csv", "stealer-logs.zip"]
        .iter()
        .map(|f| dir.join("dumps").join(f))
        .collect()
}

/// The benchmark's data set, written into `dir`:
///
/// - `accounts.csv`: a directory of `n` accounts, four in five of them the public's
///   personal addresses (as at an agency that serves the public);
/// - `accounts.txt`: their addresses, one per line (for `rg -f`, the by-hand baseline);
/// - `combo.txt`: about `bytes` of combo and ULP lines in every shape the noise generator
///   knows (mixed separators, schemes, ports, `android://`, junk lines), with `plant`
///   accounts spread through it, each planted once in a shape of its own: `address<sep>pw`
///   with any separator and case, a ULP line with the address as login, or (staff) the
///   username on the SSO host;
/// - `planted.txt`: the planted accounts' addresses, sorted: what a run must find.
///
/// Returns the planted addresses.
pub fn write_bench(
    dir: &Path,
    seed: u64,
    n: usize,
    bytes: u64,
    plant: usize,
) -> io::Result<Vec<String>> {
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(dir)?;
    let accounts = directory(&mut rng, n, DEMO_ORG_DOMAIN);
    let create = |name: &str| -> io::Result<io::BufWriter<std::fs::File>> {
        Ok(io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dir.join(name))?,
        ))
    };
    let mut f = create("accounts.csv")?;
    write_directory_csv(&mut f, &accounts)?;
    f.flush()?;
    let mut f = create("accounts.txt")?;
    for a in &accounts {
        writeln!(f, "{}", a.email)?;
    }
    f.flush()?;
    let planted_accounts: Vec<&SynthAccount> = (0..plant.min(n))
        .map(|i| &accounts[i * n / plant.max(1)])
        .collect();
    let lines: Vec<String> = planted_accounts
        .iter()
        .map(|a| planted_line(&mut rng, a))
        .collect();
    let mut f = create("combo.txt")?;
    write_combo(&mut f, &mut rng, bytes, &lines)?;
    f.flush()?;
    let mut emails: Vec<String> = planted_accounts.iter().map(|a| a.email.clone()).collect();
    emails.sort();
    emails.dedup();
    std::fs::write(dir.join("planted.txt"), emails.join("\n") + "\n")?;
    Ok(emails)
}

/// A leak of the whole user base (`benches/heavy.sh`): a directory of `n` accounts and
/// `all.txt`, one `email:password` line for every one of them, in a shuffled order.
pub fn write_heavy(dir: &Path, seed: u64, n: usize) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(dir)?;
    let accounts = directory(&mut rng, n, DEMO_ORG_DOMAIN);
    let mut f = io::BufWriter::new(std::fs::File::create(dir.join("accounts.csv"))?);
    write_directory_csv(&mut f, &accounts)?;
    f.flush()?;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut f = io::BufWriter::new(std::fs::File::create(dir.join("all.txt"))?);
    for i in order {
        writeln!(f, "{}:{}", accounts[i].email, password(&mut rng))?;
    }
    f.flush()
}

/// One planted line for `a`, in one of the shapes dumps use.
fn planted_line(rng: &mut Rng, a: &SynthAccount) -> String {
    let pw = password(rng);
    let (local, domain) = a.email.split_once('@').unwrap_or((&a.email, ""));
    match (rng.below(5), &a.username) {
        (0, Some(user)) => format!("https://{DEMO_LOGIN_HOST}/auth/login|{user}|{pw}"),
        (1, _) => format!(
            "{local}@{}{}{pw}",
            domain.to_uppercase(),
            rng.pick(&[';', '|', '\t'])
        ),
        (2, _) => format!("{}:{}:{pw}", rng.pick::<&str>(SITES), a.email),
        (3, _) => format!("{}:{pw}", a.email.to_uppercase()),
        _ => format!("{}:{pw}", a.email),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_reserved_domains_only() {
        let a = directory(&mut Rng::new(7), 50, DEMO_ORG_DOMAIN);
        let b = directory(&mut Rng::new(7), 50, DEMO_ORG_DOMAIN);
        assert_eq!(a, b);
        for acc in &a {
            let d = acc.email.split('@').nth(1).unwrap();
            assert!(d == DEMO_ORG_DOMAIN || PERSONAL_DOMAINS.contains(&d), "{d}");
            assert_eq!(acc.username.is_some(), d == DEMO_ORG_DOMAIN);
        }
        assert!(a.iter().any(|x| x.username.is_some()));
        assert!(a.iter().any(|x| x.username.is_none()));
    }

    #[test]
    fn combo_has_planted_lines_and_size() {
        let planted = vec!["p1@x.example:a".to_string(), "p2@x.example:b".to_string()];
        let mut out = Vec::new();
        write_combo(&mut out, &mut Rng::new(1), 100_000, &planted).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.len() >= 100_000 && text.len() < 101_000);
        for p in &planted {
            assert_eq!(text.lines().filter(|l| l == p).count(), 1);
        }
    }
}
