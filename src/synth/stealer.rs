//! Synthetic stealer logs in each family's layout: one folder per infected machine, with
//! its credential file, device file and cookie files, as public analyses describe them.
//! Org credentials and login cookies are planted on some machines; the rest is noise
//! (strangers at reserved domains, cookies of other sites, a lookalike host).

use super::{password, stranger, word, Rng};
use crate::parse::device::Family;

/// One infected machine and what was planted on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub family: Family,
    /// The folder, as inside the archive.
    pub folder: String,
    pub date: String,
    pub country: String,
    pub build: String,
    /// Org accounts whose password is in its credential file, with the password.
    pub accounts: Vec<(String, String)>,
    /// Org hosts it has login cookies for.
    pub session_hosts: Vec<String>,
}

/// What to plant on one machine.
#[derive(Debug, Clone, Default)]
pub struct Plant {
    pub accounts: Vec<(String, String)>,
    pub session_hosts: Vec<String>,
}

/// Sites typed into on every machine (noise), with a lookalike of the org host.
const NOISE_SITES: &[&str] = &[
    "https://accounts.shop.example/signin",
    "https://www.forum.example.org/login.php",
    "https://mail.webmail.example/",
    "android://cGxheQ==@com.example.game/",
];

fn hex(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789ABCDEF"[rng.below(16) as usize]))
        .collect()
}

/// Writes one machine's folder in `family`'s layout. `login_url` is the org's sign-in page
/// planted accounts are typed into; `lookalike` a host that must not count as the org's.
pub fn device(
    rng: &mut Rng,
    family: Family,
    plant: &Plant,
    login_url: &str,
    lookalike: &str,
) -> (Device, Vec<(String, Vec<u8>)>) {
    let hwid = hex(rng, 32);
    let country = rng.pick(&["FR", "FR", "BE", "CA", "MA"]).to_string();
    let (y, m, d) = (2025, 1 + rng.below(12), 1 + rng.below(28));
    let (hh, mm) = (rng.below(24), rng.below(60));
    let date = format!("{y:04}-{m:02}-{d:02}");
    let build = format!("{}{}", word(rng, 2), rng.below(100));
    let machine = format!("DESKTOP-{}", hex(rng, 7));
    let user = word(rng, 2);
    let ip = format!("198.51.100.{}", 1 + rng.below(250));

    // Credentials: noise, then the planted ones, shuffled by position.
    let mut creds: Vec<(String, String, String)> = (0..3 + rng.below(5))
        .map(|_| {
            (
                rng.pick(NOISE_SITES).to_string(),
                stranger(rng),
                password(rng),
            )
        })
        .collect();
    creds.push((
        format!("https://{lookalike}/login"),
        stranger(rng),
        password(rng),
    ));
    for (email, pw) in &plant.accounts {
        let at = rng.below(creds.len() as u64 + 1) as usize;
        creds.insert(at, (login_url.to_string(), email.clone(), pw.clone()));
    }

    let folder = match family {
        Family::RedLine | Family::Meta => format!("{country}[{hwid}] [{date}T{hh:02}_{mm:02}_00]"),
        Family::Raccoon => format!("{country}_{}", hex(rng, 12)),
        Family::Vidar | Family::RisePro => format!("{}_{country}_{date}", hex(rng, 16)),
        Family::Lumma => format!("{country}_{ip}_{date}"),
        Family::StealC => hex(rng, 20),
        Family::Mystic => format!("[{country}]{ip}_{}", hex(rng, 8)),
        Family::Atomic | Family::Poseidon | Family::Cthulhu => {
            format!("{user}_{country}_{}", hex(rng, 8))
        }
        Family::Banshee => hex(rng, 16),
    };
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let long_date = format!("{d:02} {} {y} {hh:02}:{mm:02}:30", MONTHS[(m - 1) as usize]);
    let mac_profile = format!(
        "ProductName: macOS\nProductVersion: 14.6\nBuildVersion: 23G80\n\nHardware:\n    Model Name: MacBook Air\n    Hardware UUID: {hwid}\n    Serial Number (system): {machine}\n\nDate: {date} {hh:02}:{mm:02}:11\nCountry: {country}\nIP: {ip}\nBuild: {build}\n"
    );
    let us_date = format!(
        "{m}/{d}/{y} {}:{mm:02}:11 {}",
        1 + (hh + 11) % 12,
        if hh < 12 { "AM" } else { "PM" }
    );
    let eu_date = format!("{d:02}.{m:02}.{y} {hh:02}:{mm:02}:11");
    let iso = format!("{date} {hh:02}:{mm:02}:11");
    let mut files = Vec::new();
    let (pw_file, info_file, info) = match family {
        Family::RedLine | Family::Meta => (
            "Passwords.txt",
            "UserInformation.txt",
            format!(
                "{}Build ID: {build}\nIP: {ip}\nFileLocation: C:\\Users\\{user}\\AppData\\Local\\Temp\\setup.exe\nUserName: {user}\nMachineName: {machine}\nCountry: {country}\nZip Code: UNKNOWN\nLocation: unknown\nHWID: {hwid}\nCurrent Language: French (France)\nScreenSize: {{Width=1920, Height=1080}}\nTimeZone: (UTC+01:00) Paris\nOperation System: Windows 10 Pro x64\nUAC: AllowAll\nProcess Elevation: False\nLog date: {us_date}\n",
                if family == Family::Meta { "*** META STEALER ***\n\n" } else { "" }
            ),
        ),
        Family::Raccoon => (
            "passwords.txt",
            "System Info.txt",
            format!(
                "System Information:\n\t- Locale: French\n\t- Time zone: UTC+1\n\t- OS: Windows 10 Pro\n\t- Architecture: x64\n\t- CPU: Intel Core i5\n\t- RAM: 8044 MB\n\t- Display size: 1920x1080\n\t- Bot_ID: {hwid}\n\t- Build compiled on: {build}\n\t- Launched at: {iso}\n\t- Country: {country}\n\t- Computer name: {machine}\n"
            ),
        ),
        Family::Vidar => (
            "passwords.txt",
            "information.txt",
            format!(
                "Version: {build}\n\nDate: {eu_date}\nMachineID: {hwid}\nGUID: {{{}}}\nHWID: {hwid}\n\nPath: C:\\Users\\{user}\\Downloads\\crack.exe\nWork Dir: C:\\ProgramData\\{}\n\nWindows: Windows 10 Pro [x64]\nComputer Name: {machine}\nUser Name: {user}\nDisplay Resolution: 1920x1080\nDisplay Language: fr-FR\nKeyboard Languages: French\nLocal Time: {eu_date}\nTimeZone: UTC+1\n\n[Network]\nIP: {ip}\nCountry: {country}\n",
                hex(rng, 8),
                hex(rng, 10)
            ),
        ),
        Family::StealC => (
            "passwords.txt",
            "system_info.txt",
            format!(
                "Network Info:\n\t- IP: {ip}\n\t- Country: {country}\n\nSystem Summary:\n\t- HWID: {hwid}\n\t- OS: Windows 10 Pro\n\t- Architecture: x64\n\t- UserName: {user}\n\t- Computer Name: {machine}\n\t- Local Time: {y}/{m}/{d} {hh}:{mm}:11\n\t- Build: {build}\n"
            ),
        ),
        Family::Lumma => (
            "Passwords.txt",
            "System.txt",
            format!(
                "- LID (Lumma ID): {build}\n- Lumma Build: 4.0\n- Configuration: default\n- Path: C:\\Users\\{user}\\AppData\\Local\\Temp\\x.exe\n- Date: {iso}\n- HWID: {hwid}\n- Computer Name: {machine}\n- User Name: {user}\n- Country: {country}\n- IP: {ip}\n"
            ),
        ),
        Family::RisePro => (
            "passwords.txt",
            "information.txt",
            format!(
                "Telegram: t.me/RiseProSUPPORT\n\nBuild: {build}\nVersion: 1.6\nDate: {iso}\nMachineID: {hwid}\nHWID: {hwid}\nComputer Name: {machine}\nUser Name: {user}\n[Network]\nIP: {ip}\nCountry: {country}\n"
            ),
        ),
        Family::Mystic => (
            "Browsers/Passwords.txt",
            "UserInfo.txt",
            format!(
                "Mystic Stealer\n\nBuild tag: {build}\nInstall Date: {eu_date}\nHWID: {hwid}\nComputer Name: {machine}\nUser: {user}\nCountry: {country}\nIP: {ip}\n"
            ),
        ),
        // macOS: `sw_vers` and `system_profiler` output (Atomic and its forks), or
        // Banshee's key list.
        Family::Atomic => ("Passwords.txt", "Userinfo.txt", mac_profile.clone()),
        Family::Poseidon => (
            "Passwords.txt",
            "Userinfo.txt",
            format!("Poseidon Stealer\n\n{mac_profile}"),
        ),
        Family::Cthulhu => (
            "Passwords.txt",
            "Userinfo.txt",
            format!("Cthulhu Stealer\n\n{mac_profile}"),
        ),
        Family::Banshee => (
            "Passwords.txt",
            "System.txt",
            format!(
                "HWID: {hwid}\nLog Date: {long_date}\nBuild Name: {build}\nCountry Code: {country}\nIP: {ip}\nOS: macOS 14.6\n"
            ),
        ),
    };
    let mut pw = String::new();
    if family == Family::RedLine || family == Family::Meta {
        pw.push_str("*******************************\n*  Telegram: t.me/example_logs *\n*******************************\n\n");
    }
    for (url, login, pass) in &creds {
        match family {
            Family::RedLine | Family::Meta => pw.push_str(&format!(
                "URL: {url}\nUsername: {login}\nPassword: {pass}\nApplication: Google_[Chrome]_Default\n===============\n"
            )),
            Family::Raccoon => pw.push_str(&format!("URL:{url}\nUSER:{login}\nPASS:{pass}\n\n")),
            Family::Vidar => pw.push_str(&format!(
                "Soft: Google Chrome (Default)\nHost: {url}\nLogin: {login}\nPassword: {pass}\n\n"
            )),
            Family::StealC => pw.push_str(&format!(
                "browser: Google Chrome\nprofile: Default\nurl: {url}\nlogin: {login}\npassword: {pass}\n----------\n"
            )),
            Family::Lumma => pw.push_str(&format!(
                "Storage: Chrome_Default\nURL: {url}\nLogin: {login}\nPassword: {pass}\n\n"
            )),
            Family::RisePro => pw.push_str(&format!("url: {url}\nlogin: {login}\npassword: {pass}\n\n")),
            Family::Mystic => pw.push_str(&format!(
                "Browser: Edge\nHost: {url}\nLogin: {login}\nPassword: {pass}\n=====\n"
            )),
            Family::Atomic | Family::Poseidon | Family::Cthulhu | Family::Banshee => pw.push_str(
                &format!("Browser: Chrome (Default)\nURL: {url}\nUsername: {login}\nPassword: {pass}\n\n"),
            ),
        }
    }
    files.push((format!("{folder}/{pw_file}"), pw.into_bytes()));
    files.push((format!("{folder}/{info_file}"), info.into_bytes()));

    // Cookies: noise sites, the lookalike, and the planted org hosts. Values are random.
    let mut cookies = String::from("# Netscape HTTP Cookie File\n");
    let mut hosts: Vec<String> = vec![
        ".shop.example".into(),
        ".forum.example.org".into(),
        lookalike.to_string(),
    ];
    hosts.extend(plant.session_hosts.iter().map(|h| format!(".{h}")));
    for h in &hosts {
        for name in ["SID", "session", "_ga"] {
            cookies.push_str(&format!(
                "{h}\tTRUE\t/\tTRUE\t{}\t{name}\t{}\n",
                1_767_225_600 + rng.below(10_000_000),
                hex(rng, 40)
            ));
        }
    }
    files.push((
        format!("{folder}/Cookies/Chrome_Default.txt"),
        cookies.into_bytes(),
    ));
    files.push((
        format!("{folder}/Screenshot.jpg"),
        vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
        ],
    ));

    let dev = Device {
        family,
        folder,
        date,
        country,
        build,
        accounts: plant.accounts.clone(),
        session_hosts: plant.session_hosts.clone(),
    };
    (dev, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::device::{classify, DeviceInfo, Role};

    /// Every family's device file reads back as that family, with its date and country.
    #[test]
    fn each_family_reads_back() {
        let mut rng = Rng::new(7);
        for family in Family::ALL {
            let (dev, files) = device(
                &mut rng,
                family,
                &Plant::default(),
                "https://sso.agence-exemple.fr/",
                "sso.agence-exemple.fr.example.net",
            );
            let mut info = DeviceInfo::default();
            let mut base = "";
            for (name, data) in &files {
                if let Some(f) = classify(name) {
                    assert_eq!(f.root, dev.folder, "{name}");
                    if f.role == Role::Info {
                        base = f.base;
                        for l in String::from_utf8_lossy(data).lines() {
                            info.line(l);
                        }
                    }
                }
            }
            assert_eq!(info.family(base), Some(family), "{family:?}");
            assert_eq!(info.date.as_deref(), Some(dev.date.as_str()), "{family:?}");
            assert_eq!(
                info.country.as_deref(),
                Some(dev.country.as_str()),
                "{family:?}"
            );
            assert!(info.hwid.is_some() || info.machine.is_some(), "{family:?}");
        }
    }
}

/// A stealer-log scenario on disk: a directory, one archive per family in a different
/// packing, and what must be found.
#[derive(Debug, Clone)]
pub struct StealerScenario {
    pub accounts: Vec<super::SynthAccount>,
    /// Machines with something of the organisation's (accounts, login cookies).
    pub devices: Vec<Device>,
    /// The archive password the encrypted ones use (sellers name their channel).
    pub archive_password: String,
    /// An account whose stolen password is also in `combo.txt`, read first.
    pub in_combo_too: String,
    /// The archives, and `combo.txt`.
    pub inputs: Vec<std::path::PathBuf>,
}

/// Writes `accounts.csv`, `combo.txt` and `logs/` (one archive per family, each packed
/// differently: zip deflate, zip AES-256+bzip2, zip ZipCrypto, encrypted 7z, tar.gz,
/// zip(zstd) ⊃ 7z ⊃ tar.gz, zip(Deflate64) ⊃ tar).
pub fn write_scenario(dir: &std::path::Path, seed: u64) -> std::io::Result<StealerScenario> {
    use super::pack::{self, ZipLock, ZipMethod};
    use super::{directory, write_directory_csv, DEMO_LOGIN_HOST, DEMO_ORG_DOMAIN};
    use std::io::Write;

    let mut rng = Rng::new(seed);
    let accounts = directory(&mut rng, 40, DEMO_ORG_DOMAIN);
    let login_url = format!("https://{DEMO_LOGIN_HOST}/auth/login");
    let lookalike = format!("{DEMO_LOGIN_HOST}.secure-login.example");
    let archive_password = "t.me/synthetic_logs_cloud".to_string();
    let mut next = 0;
    let mut take = |rng: &mut Rng, n: usize| -> Vec<(String, String)> {
        let v: Vec<_> = accounts[next..next + n]
            .iter()
            .map(|a| (a.email.clone(), password(rng)))
            .collect();
        next += n;
        v
    };
    let mut devices = Vec::new();
    let mut by_family: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    for (i, family) in Family::ALL.into_iter().enumerate() {
        let mut files = Vec::new();
        let plant = Plant {
            accounts: take(&mut rng, 1 + (i % 2 == 0) as usize),
            session_hosts: if i % 2 == 0 {
                vec![DEMO_LOGIN_HOST.to_string()]
            } else {
                Vec::new()
            },
        };
        let (dev, f) = device(&mut rng, family, &plant, &login_url, &lookalike);
        devices.push(dev);
        files.extend(f);
        // A machine with nothing of ours beside it.
        let (_, f) = device(&mut rng, family, &Plant::default(), &login_url, &lookalike);
        files.extend(f);
        if family == Family::Lumma {
            // Login cookies of ours, but no credential: the account is unknown.
            let plant = Plant {
                accounts: Vec::new(),
                session_hosts: vec![DEMO_ORG_DOMAIN.to_string()],
            };
            let (dev, f) = device(&mut rng, family, &plant, &login_url, &lookalike);
            devices.push(dev);
            files.extend(f);
        }
        by_family.push(files);
    }

    std::fs::create_dir_all(dir.join("logs"))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("accounts.csv"))?);
    write_directory_csv(&mut f, &accounts)?;
    f.flush()?;
    let (in_combo_too, reused_pw) = devices[0].accounts[0].clone();
    let mut combo = String::new();
    for _ in 0..20 {
        combo.push_str(&format!("{}:{}\n", stranger(&mut rng), password(&mut rng)));
    }
    combo.push_str(&format!("{in_combo_too}:{reused_pw}\n"));
    std::fs::write(dir.join("combo.txt"), combo)?;

    let aes = ZipLock::Aes256(archive_password.clone());
    let both: Vec<_> = by_family[0].iter().chain(&by_family[1]).cloned().collect();
    let mystic_tar = pack::tar(&by_family[7])?;
    let risepro_7z = pack::sevenz(
        &[(
            "risepro.tar.gz".into(),
            pack::gzip(&pack::tar(&by_family[6])?)?,
        )],
        None,
    )?;
    let archives: Vec<(&str, Vec<u8>)> = vec![
        (
            "RedLine_META_fresh.zip",
            pack::zip(&both, ZipMethod::Deflate, &ZipLock::None)?,
        ),
        (
            "raccoon_@logs_cloud.zip",
            pack::zip(&by_family[2], ZipMethod::Bzip2, &aes)?,
        ),
        (
            "vidar-2025-10.zip",
            pack::zip_zipcrypto(&by_family[3], &archive_password, seed)?,
        ),
        (
            "lumma_private.7z",
            pack::sevenz(&by_family[4], Some(&archive_password))?,
        ),
        ("stealc.tar.gz", pack::gzip(&pack::tar(&by_family[5])?)?),
        (
            "risepro_nested.zip",
            pack::zip(
                &[("part1.7z".into(), risepro_7z)],
                ZipMethod::Zstd,
                &ZipLock::None,
            )?,
        ),
        ("mystic.zip", pack::zip_deflate64("mystic.tar", &mystic_tar)),
        // RAR, as sellers pack most (stored: no free tool compresses RAR), RAR 5 with
        // the channel's password as AES-256 (written by hand too).
        (
            "macos_amos_banshee.rar",
            pack::rar5_encrypted(&by_family[8..10].concat(), &archive_password, seed),
        ),
        (
            "macos_forks.rar",
            pack::rar4_stored(&by_family[10..].concat()),
        ),
    ];
    let mut inputs = vec![dir.join("combo.txt")];
    for (name, bytes) in archives {
        let p = dir.join("logs").join(name);
        std::fs::write(&p, bytes)?;
        inputs.push(p);
    }
    Ok(StealerScenario {
        accounts,
        devices,
        archive_password,
        in_combo_too,
        inputs,
    })
}
