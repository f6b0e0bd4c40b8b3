//! OpenLDAP's `slapd` for the tests that need a directory (liveness, remediation).

use crate::support::*;

/// OpenLDAP's `slapd` on loopback with the ppolicy overlay, from a generated config, in a
/// temporary directory; stopped when dropped.
pub struct Slapd {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const SUFFIX: &str = "dc=agence-exemple,dc=fr";
pub const ADMIN: &str = "cn=admin,dc=agence-exemple,dc=fr";
pub const ADMIN_PW: &str = "admin-synthetic";

impl Slapd {
    pub fn start(dir: &std::path::Path) -> Slapd {
        ensure_debian_tools("slapd", &["slapd"], "the LDAP tests");
        ensure_debian_tools(
            "ldap-utils",
            &["ldapadd", "ldapmodify", "ldappasswd", "ldapsearch"],
            "the LDAP tests",
        );
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        let conf = dir.join("slapd.conf");
        // The pieces of Active Directory's schema leakwatch reads and writes (their AD
        // OIDs and syntaxes), so that the `ad` flavour is tried against a real server.
        let ad_schema = dir.join("ad.schema");
        std::fs::write(
            &ad_schema,
            "attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' \
               EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )\n\
             attributetype ( 1.2.840.113556.1.4.96 NAME 'pwdLastSet' \
               EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )\n\
             attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' \
               EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )\n\
             objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP top AUXILIARY \
               MAY ( sAMAccountName $ pwdLastSet $ userAccountControl ) )\n",
        )
        .unwrap();
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 include {ad}\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 moduleload ppolicy\n\
                 pidfile {pid}\n\
                 database mdb\n\
                 maxsize 10485760\n\
                 suffix \"{SUFFIX}\"\n\
                 rootdn \"{ADMIN}\"\n\
                 rootpw {ADMIN_PW}\n\
                 directory {db}\n\
                 overlay ppolicy\n\
                 ppolicy_default \"cn=default,ou=policies,{SUFFIX}\"\n\
                 access to attrs=userPassword by dn.exact=\"cn=leakwatch,{SUFFIX}\" read by anonymous auth by * none\n\
                 access to attrs=pwdReset,pwdAccountLockedTime,pwdLastSet,userAccountControl by dn.exact=\"cn=remediation,{SUFFIX}\" write by dn.exact=\"cn=leakwatch,{SUFFIX}\" read by * none\n\
                 access to * by dn.exact=\"cn=leakwatch,{SUFFIX}\" read by dn.exact=\"cn=remediation,{SUFFIX}\" read by * none\n",
                pid = dir.join("slapd.pid").display(),
                ad = ad_schema.display(),
                db = db.display(),
            ),
        )
        .unwrap();
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let child = std::process::Command::new("slapd")
            .args([
                "-f",
                conf.to_str().unwrap(),
                "-h",
                &format!("{url}/"),
                "-d",
                "0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start slapd");
        let slapd = Slapd { child, url };
        wait_for(20, "slapd listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        slapd
    }

    pub fn tool(&self, tool: &str, args: &[&str], stdin: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new(tool)
            .args(["-x", "-H", &self.url, "-D", ADMIN, "-w", ADMIN_PW])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn person(&self, uid: &str) -> String {
        format!("uid={uid},ou=people,{SUFFIX}")
    }

    /// The entry's attributes, operational ones included, as `ldapsearch` prints them
    /// (as the admin, who may read everything).
    pub fn entry(&self, dn: &str) -> String {
        let out = std::process::Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &self.url,
                "-D",
                ADMIN,
                "-w",
                ADMIN_PW,
                "-b",
                dn,
                "-s",
                "base",
                "(objectClass=*)",
                "*",
                "+",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ldapsearch {dn}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}
