//! Stealer-log folders: which file of an infected machine's folder a stream is, what its
//! device file says, and which malware family wrote it.
//!
//! Stealers leave one folder per infected machine: a credential file (`Passwords.txt`,
//! `Browsers/Passwords_Chrome.txt` …), a device file (`UserInformation.txt`, `System.txt`,
//! `information.txt` …) and `Cookies/*.txt`. Families differ in file names, key names and
//! banners, so, as for credentials, this is one key/value reader with tables of aliases and
//! of family signatures, not one reader per family. The signatures are modelled on public
//! analyses of each family's logs; `synth::stealer` writes logs in those layouts.

/// What a file of a device folder is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Passwords,
    Info,
    Cookies,
}

/// A file recognised as part of an infected machine's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StealerFile<'a> {
    /// The device folder (`logs.zip!US[…]`), or the file itself when it has no folder.
    pub root: &'a str,
    pub role: Role,
    /// The file name, lower case (it names the family when nothing else does).
    pub base: &'static str,
}

/// Device files, by the names families give them (compared in lower case).
const INFO_FILES: &[&str] = &[
    "userinformation.txt",
    "system.txt",
    "information.txt",
    "system info.txt",
    "system_info.txt",
    "userinfo.txt",
];

/// Sub-folders a family puts its files in, below the device folder.
const SUBFOLDERS: &[&str] = &["browsers", "cookies", "passwords"];

fn split_last(s: &str) -> (&str, &str) {
    match s.rfind(['/', '\\', '!']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => ("", s),
    }
}

/// The longest folder above `name` (cut at `/`, `\\` or `!`) that `is_root` accepts: the
/// device folder a file that is not a stealer log's own (a screenshot, a history) lies in.
/// One lookup per level of the path, whatever the number of folders known.
pub fn folder_above(name: &str, is_root: impl Fn(&str) -> bool) -> Option<&str> {
    let mut end = name.len();
    while let Some(i) = name[..end].rfind(['/', '\\', '!']) {
        if is_root(&name[..i]) {
            return Some(&name[..i]);
        }
        end = i;
    }
    None
}

/// Recognises a stealer-log file by its name (`archive!folder/file` or a path).
pub fn classify(name: &str) -> Option<StealerFile<'_>> {
    let (dir, base) = split_last(name);
    let lower = base.to_ascii_lowercase();
    let (_, parent) = split_last(dir);
    let parent = parent.to_ascii_lowercase();
    let role = if lower.ends_with(".txt")
        && (lower.starts_with("passwords") || lower == "all passwords.txt")
    {
        Role::Passwords
    } else if INFO_FILES.contains(&lower.as_str()) {
        Role::Info
    } else if parent == "cookies" && lower.ends_with(".txt") {
        Role::Cookies
    } else {
        return None;
    };
    let mut root = dir;
    loop {
        let (up, last) = split_last(root);
        if SUBFOLDERS.iter().any(|s| s.eq_ignore_ascii_case(last)) && !up.is_empty() {
            root = up;
        } else {
            break;
        }
    }
    if root.is_empty() {
        root = name;
    }
    let base = INFO_FILES
        .iter()
        .find(|f| **f == lower)
        .copied()
        .unwrap_or(match role {
            Role::Passwords => "passwords.txt",
            Role::Cookies => "cookies",
            Role::Info => "",
        });
    Some(StealerFile { root, role, base })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Family {
    RedLine,
    Meta,
    Raccoon,
    Vidar,
    Lumma,
    StealC,
    RisePro,
    Mystic,
    /// Atomic macOS Stealer (AMOS) and its rebrands: `sw_vers`/`system_profiler` keys.
    Atomic,
    /// macOS: `HWID`, `Log Date` with the month's name, `Build Name`.
    Banshee,
    /// macOS, an AMOS fork.
    Poseidon,
    /// macOS, an AMOS fork.
    Cthulhu,
}

impl Family {
    pub const ALL: [Family; 12] = [
        Family::RedLine,
        Family::Meta,
        Family::Raccoon,
        Family::Vidar,
        Family::Lumma,
        Family::StealC,
        Family::RisePro,
        Family::Mystic,
        Family::Atomic,
        Family::Banshee,
        Family::Poseidon,
        Family::Cthulhu,
    ];

    /// Families that infect macOS (their logs hold a Mac's keychain and browsers).
    pub fn is_macos(self) -> bool {
        matches!(
            self,
            Family::Atomic | Family::Banshee | Family::Poseidon | Family::Cthulhu
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::RedLine => "RedLine",
            Family::Meta => "META",
            Family::Raccoon => "Raccoon",
            Family::Vidar => "Vidar",
            Family::Lumma => "Lumma",
            Family::StealC => "StealC",
            Family::RisePro => "RisePro",
            Family::Mystic => "Mystic",
            Family::Atomic => "Atomic (AMOS)",
            Family::Banshee => "Banshee",
            Family::Poseidon => "Poseidon",
            Family::Cthulhu => "Cthulhu",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The family a device file's name points to when nothing in it says more.
    fn by_file(base: &str) -> Option<Family> {
        Some(match base {
            "userinformation.txt" => Family::RedLine,
            "system info.txt" => Family::Raccoon,
            "system.txt" => Family::Lumma,
            "system_info.txt" => Family::StealC,
            "information.txt" => Family::Vidar,
            "userinfo.txt" => Family::Mystic,
            _ => return None,
        })
    }
}

/// Family names as they appear in banners and build lines (lower case), most specific
/// first: META is a RedLine fork and may mention both.
const BANNERS: &[(&str, Family)] = &[
    ("meta stealer", Family::Meta),
    ("metastealer", Family::Meta),
    ("poseidon", Family::Poseidon),
    ("cthulhu", Family::Cthulhu),
    ("banshee", Family::Banshee),
    ("atomic stealer", Family::Atomic),
    ("atomic macos", Family::Atomic),
    ("amos stealer", Family::Atomic),
    ("(amos)", Family::Atomic),
    ("risepro", Family::RisePro),
    ("mystic", Family::Mystic),
    ("stealc", Family::StealC),
    ("lumma", Family::Lumma),
    ("raccoon", Family::Raccoon),
    ("vidar", Family::Vidar),
    ("redline", Family::RedLine),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Date,
    Build,
    Country,
    Hwid,
    Machine,
    /// Keys only one family writes.
    Marker(Family),
    /// Half of a pair that marks a family only together (`MachineID` + `GUID`).
    MarkerHalf(Family, u8),
    /// A build that only one family names this way (Banshee's `Build Name`).
    BuildMarker(Family),
}

const FIELDS: &[(&str, Field)] = &[
    ("log date", Field::Date),
    ("date", Field::Date),
    ("local time", Field::Date),
    ("launched at", Field::Date),
    ("infection date", Field::Date),
    ("install date", Field::Date),
    ("build id", Field::Build),
    ("build", Field::Build),
    ("build tag", Field::Build),
    ("version", Field::Build),
    ("lid (lumma id)", Field::Build),
    ("country", Field::Country),
    ("country code", Field::Country),
    ("geo", Field::Country),
    ("hwid", Field::Hwid),
    ("machineid", Field::Hwid),
    ("machine id", Field::Hwid),
    ("guid", Field::Hwid),
    ("uuid", Field::Hwid),
    ("hardware uuid", Field::Hwid),
    ("serial number (system)", Field::Machine),
    ("productname", Field::Marker(Family::Atomic)),
    ("build name", Field::BuildMarker(Family::Banshee)),
    ("machinename", Field::Machine),
    ("machine name", Field::Machine),
    ("computer name", Field::Machine),
    ("computername", Field::Machine),
    ("pc name", Field::Machine),
    ("bot_id", Field::Marker(Family::Raccoon)),
    ("build compiled on", Field::Marker(Family::Raccoon)),
    ("lumma build", Field::Marker(Family::Lumma)),
    ("network info", Field::MarkerHalf(Family::StealC, 1)),
    ("system summary", Field::MarkerHalf(Family::StealC, 2)),
];

/// What a device file says about the infected machine. Machine identifiers are kept here
/// only until they are hashed (`Ingest` never stores them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Infection or log date, `YYYY-MM-DD` when it could be read.
    pub date: Option<String>,
    pub build: Option<String>,
    pub country: Option<String>,
    pub hwid: Option<String>,
    pub machine: Option<String>,
    banner: Option<Family>,
    marker: Option<Family>,
    halves: u8,
    machine_id_and_guid: u8,
}

/// Values are cut to this many characters: they come from the dump.
const MAX_VALUE: usize = 64;

impl DeviceInfo {
    /// Reads one line of a device file.
    pub fn line(&mut self, line: &str) {
        let line = line.trim().trim_start_matches(['-', '*', ' ', '\t']);
        if self.banner.is_none() {
            let lower = line.to_ascii_lowercase();
            self.banner = BANNERS
                .iter()
                .find(|(b, _)| lower.contains(b))
                .map(|(_, f)| *f)
                .or_else(|| {
                    // `META` alone, as a word, in upper case (not `Metadata`).
                    line.split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|w| w == "META")
                        .then_some(Family::Meta)
                });
        }
        let Some(i) = line.find(':') else { return };
        let key = line[..i].trim().to_ascii_lowercase();
        let value: String = line[i + 1..].trim().chars().take(MAX_VALUE).collect();
        let Some((_, field)) = FIELDS.iter().find(|(k, _)| *k == key) else {
            return;
        };
        if key == "machineid" || key == "guid" {
            self.machine_id_and_guid |= if key == "guid" { 2 } else { 1 };
        }
        let set = |slot: &mut Option<String>| {
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.clone());
            }
        };
        match *field {
            Field::Date => {
                if self.date.is_none() {
                    self.date = normalize_date(&value);
                }
            }
            Field::Build => set(&mut self.build),
            Field::Country => set(&mut self.country),
            Field::Hwid => set(&mut self.hwid),
            Field::Machine => set(&mut self.machine),
            Field::Marker(f) => self.marker = self.marker.or(Some(f)),
            Field::BuildMarker(f) => {
                set(&mut self.build);
                self.marker = self.marker.or(Some(f));
            }
            Field::MarkerHalf(f, bit) => {
                self.halves |= bit;
                if self.halves == 3 {
                    self.marker = self.marker.or(Some(f));
                }
            }
        }
    }

    /// The family: a banner naming it, else keys only it writes, else the file's name.
    pub fn family(&self, base: &str) -> Option<Family> {
        self.banner
            .or(self.marker)
            .or((self.machine_id_and_guid == 3).then_some(Family::Vidar))
            .or(Family::by_file(base))
    }
}

/// `2025-10-12 14:02:11`, `12.10.2025 14:02`, `10/12/2025 2:02:11 PM` → `2025-10-12`.
/// Slashed dates are read month first, as the .NET stealers (RedLine, META) write them.
pub fn normalize_date(s: &str) -> Option<String> {
    let s = s.trim();
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let token = s.split([' ', 'T']).next()?;
    let ymd = |y: &str, m: &str, d: &str| -> Option<String> {
        let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        ((1990..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d))
            .then(|| format!("{y:04}-{m:02}-{d:02}"))
    };
    // `03 September 2024 00:17:30` (Banshee), `3 Sep 2024`.
    let words: Vec<&str> = s.split_whitespace().take(3).collect();
    if let [d, month, y] = words[..] {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let lower = month.to_ascii_lowercase();
        if let Some(m) = MONTHS
            .iter()
            .position(|p| lower.len() >= 3 && lower.starts_with(p))
        {
            if digits(d) && digits(y) {
                return ymd(y, &(m + 1).to_string(), d);
            }
        }
    }
    let parts: Vec<&str> = token.split(['-', '.', '/']).collect();
    if parts.len() != 3 || !parts.iter().all(|p| digits(p)) {
        return None;
    }
    if parts[0].len() == 4 {
        ymd(parts[0], parts[1], parts[2])
    } else if token.contains('/') {
        ymd(parts[2], parts[0], parts[1])
    } else {
        ymd(parts[2], parts[1], parts[0])
    }
}

/// The domain of one Netscape cookie-file line (`domain TAB flag TAB path TAB secure TAB
/// expiry TAB name TAB value`), or `None` for comments and other lines. The value is
/// never looked at.
pub fn cookie_domain(line: &str) -> Option<&str> {
    let line = line.strip_prefix("#HttpOnly_").unwrap_or(line);
    if line.starts_with('#') {
        return None;
    }
    let mut fields = line.split('\t');
    let domain = fields.next()?.trim();
    let flag = fields.next()?.trim();
    if fields.count() < 4
        || domain.is_empty()
        || !(flag.eq_ignore_ascii_case("true") || flag.eq_ignore_ascii_case("false"))
    {
        return None;
    }
    Some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_above_a_file_is_the_longest_known() {
        let known = ["drop/FR_A", "logs.zip!FR_B", "drop/FR_A/Browsers"];
        let is = |r: &str| known.contains(&r);
        assert_eq!(folder_above("drop/FR_A/shot.jpg", is), Some("drop/FR_A"));
        assert_eq!(
            folder_above("drop/FR_A/Browsers/Chrome/History.txt", is),
            Some("drop/FR_A/Browsers")
        );
        assert_eq!(
            folder_above("logs.zip!FR_B/x.txt", is),
            Some("logs.zip!FR_B")
        );
        assert_eq!(folder_above("drop/FR_AB/x.txt", is), None);
        assert_eq!(folder_above("x.txt", is), None);
    }

    #[test]
    fn files_of_a_device_folder() {
        let c = classify("logs.zip!US[AB12] 2025-10-12/Passwords.txt").unwrap();
        assert_eq!(
            (c.root, c.role),
            ("logs.zip!US[AB12] 2025-10-12", Role::Passwords)
        );
        let c = classify("logs.zip!FR_x/Browsers/Passwords_Chrome.txt").unwrap();
        assert_eq!((c.root, c.role), ("logs.zip!FR_x", Role::Passwords));
        let c = classify("d/FR_x/Cookies/Chrome_Default.txt").unwrap();
        assert_eq!((c.root, c.role), ("d/FR_x", Role::Cookies));
        let c = classify("a.7z!b/System Info.txt").unwrap();
        assert_eq!(
            (c.root, c.role, c.base),
            ("a.7z!b", Role::Info, "system info.txt")
        );
        // A credential file given alone is its own device folder.
        let c = classify("Passwords.txt").unwrap();
        assert_eq!(c.root, "Passwords.txt");
        assert!(classify("logs.zip!x/Autofills/Chrome.txt").is_none());
        assert!(classify("combo.txt").is_none());
        assert!(classify("x/Cookies.sqlite").is_none());
    }

    fn info(text: &str) -> DeviceInfo {
        let mut i = DeviceInfo::default();
        for l in text.lines() {
            i.line(l);
        }
        i
    }

    #[test]
    fn device_fields_and_family() {
        let i = info("Build ID: sale22\nIP: 192.0.2.1\nCountry: FR\nHWID: 9F3A77\nMachineName: DESKTOP-1\nLog date: 10/12/2025 2:02:11 PM\n");
        assert_eq!(i.date.as_deref(), Some("2025-10-12"));
        assert_eq!(i.build.as_deref(), Some("sale22"));
        assert_eq!(i.country.as_deref(), Some("FR"));
        assert_eq!(i.hwid.as_deref(), Some("9F3A77"));
        assert_eq!(i.machine.as_deref(), Some("DESKTOP-1"));
        assert_eq!(i.family("userinformation.txt"), Some(Family::RedLine));
        // A banner beats the file name; META as a word, not inside `Metadata`.
        let i = info("*** META ***\nBuild ID: x\n");
        assert_eq!(i.family("userinformation.txt"), Some(Family::Meta));
        assert_eq!(
            info("Metadata: yes\n").family("userinformation.txt"),
            Some(Family::RedLine)
        );
        assert_eq!(
            info("Version: 7\nMachineID: a\nGUID: {b}\n").family("information.txt"),
            Some(Family::Vidar)
        );
        assert_eq!(
            info("Telegram: t.me/RiseProSUPPORT\n").family("information.txt"),
            Some(Family::RisePro)
        );
        assert_eq!(
            info("Network Info:\n- IP: x\nSystem Summary:\n- HWID: y\n").family(""),
            Some(Family::StealC)
        );
        assert_eq!(info("Bot_ID: 12\n").family(""), Some(Family::Raccoon));
        assert_eq!(info("nothing\n").family("notes.txt"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(
            normalize_date("2025-10-12 14:02:11").as_deref(),
            Some("2025-10-12")
        );
        assert_eq!(
            normalize_date("2025-10-12T14:02:11Z").as_deref(),
            Some("2025-10-12")
        );
        assert_eq!(
            normalize_date("12.10.2025 14:02").as_deref(),
            Some("2025-10-12")
        );
        assert_eq!(
            normalize_date("10/12/2025 2:02:11 PM").as_deref(),
            Some("2025-10-12")
        );
        assert_eq!(
            normalize_date("03 September 2024 00:17:30").as_deref(),
            Some("2024-09-03")
        );
        assert_eq!(normalize_date("3 Sep 2024").as_deref(), Some("2024-09-03"));
        assert_eq!(normalize_date("3 Smarch 2024"), None);
        assert_eq!(normalize_date("13/13/2025"), None);
        assert_eq!(normalize_date("yesterday"), None);
    }

    #[test]
    fn cookie_lines() {
        assert_eq!(
            cookie_domain(".sso.agence-exemple.fr\tTRUE\t/\tTRUE\t1767225600\tSESSION\tv"),
            Some(".sso.agence-exemple.fr")
        );
        assert_eq!(
            cookie_domain("#HttpOnly_x.example\tFALSE\t/\tFALSE\t0\tn\tv"),
            Some("x.example")
        );
        assert_eq!(cookie_domain("# Netscape HTTP Cookie File"), None);
        assert_eq!(cookie_domain("x.example\tmaybe\t/\tFALSE\t0\tn\tv"), None);
        assert_eq!(cookie_domain("x.example TRUE / FALSE 0 n v"), None);
    }
}
