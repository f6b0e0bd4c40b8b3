//! Is a leaked credential still live? The verdict that decides whether a finding forces a
//! reset or only advises.
//!
//! Two sources, the more precise first:
//! - **the current password** ([`ntlm`]): at match time, the leaked password's NT hash is
//!   compared with the account's from the directory's export; the finding keeps only the
//!   verdict (current or not);
//! - **rotated since**: the account's last password change (the accounts CSV's
//!   `password_changed_at`) after the credential was exposed (a stealer log's date where
//!   there is one, else when leakwatch first saw it).
//!
//! A current password is critical and goes first on the forced-reset list; a stale one,
//! or one rotated since, is advice only (the user is still told); without either source,
//! a finding forces a reset as before.

pub mod keycloak;
pub mod ldap;
pub mod ntlm;

use crate::store::FindingKind;

/// What is known of whether a finding's credential still opens the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The leaked password is the account's password now.
    Current,
    /// The leaked password is not the account's password now.
    Stale,
    /// The password was changed after the credential was exposed.
    RotatedSince,
    /// Nothing says (no source, or not a credential).
    Unknown,
}

impl Verdict {
    /// The finding's verdict: `current` from the NT hash comparison made when it was last
    /// recorded (`checked_at`), unless the password changed after that check; else the
    /// dates.
    pub fn of(
        kind: FindingKind,
        current: Option<bool>,
        checked_at: i64,
        exposed_at: i64,
        password_changed_at: Option<i64>,
    ) -> Verdict {
        if kind == FindingKind::Identity {
            return Verdict::Unknown;
        }
        // A change after the exposure, and after the last comparison if there was one:
        // whatever the comparison said then, the leaked password no longer opens the
        // account (a change between the leak and a comparison that still found it current
        // was a change back).
        let since = match current {
            Some(_) => exposed_at.max(checked_at),
            None => exposed_at,
        };
        if password_changed_at.is_some_and(|changed| changed > since) {
            return Verdict::RotatedSince;
        }
        match current {
            Some(true) => Verdict::Current,
            Some(false) => Verdict::Stale,
            None => Verdict::Unknown,
        }
    }

    /// Whether the finding belongs on the forced-reset list.
    pub fn forces_reset(self) -> bool {
        matches!(self, Verdict::Current | Verdict::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Current => "current password",
            Verdict::Stale => "stale (not the current password)",
            Verdict::RotatedSince => "rotated since",
            Verdict::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_comparison_decides_before_the_dates() {
        let p = FindingKind::Password;
        // Exposed at 10, compared at 30.
        assert_eq!(
            Verdict::of(p, Some(true), 30, 10, Some(20)),
            Verdict::Current
        );
        assert_eq!(Verdict::of(p, Some(true), 30, 10, None), Verdict::Current);
        assert_eq!(Verdict::of(p, Some(false), 30, 10, None), Verdict::Stale);
        // Changed after the comparison: it no longer holds.
        assert_eq!(
            Verdict::of(p, Some(true), 30, 10, Some(40)),
            Verdict::RotatedSince
        );
        assert_eq!(
            Verdict::of(p, None, 30, 10, Some(20)),
            Verdict::RotatedSince
        );
        assert_eq!(Verdict::of(p, None, 30, 10, Some(10)), Verdict::Unknown);
        assert_eq!(Verdict::of(p, None, 30, 10, Some(5)), Verdict::Unknown);
        assert_eq!(Verdict::of(p, None, 30, 10, None), Verdict::Unknown);
        assert_eq!(
            Verdict::of(FindingKind::Session, None, 30, 10, Some(20)),
            Verdict::RotatedSince
        );
        assert_eq!(
            Verdict::of(FindingKind::Identity, Some(true), 30, 10, Some(40)),
            Verdict::Unknown
        );
        assert!(Verdict::Current.forces_reset() && Verdict::Unknown.forces_reset());
        assert!(!Verdict::Stale.forces_reset() && !Verdict::RotatedSince.forces_reset());
    }
}
