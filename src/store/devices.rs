//! Infected devices: the machines stealer-log findings were stolen from.
//!
//! A device row is made the first time one of its folder's findings is recorded, keyed by
//! a keyed hash of the folder's name (so re-reading the same log finds the same row), and
//! completed from the folder's device file when it has been read. Findings point at it, so
//! admins see "3 accounts stolen from the same machine on 2025-10-12".

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

/// What is kept of a device file: family, build, date, country, and a keyed hash of the
/// machine's identifier (never the identifier).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub machine_hash: Option<[u8; 32]>,
    pub family: Option<String>,
    pub build: Option<String>,
    pub log_date: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceView {
    pub id: i64,
    /// First 12 hex digits of the machine hash (or of the folder key): enough to tell
    /// devices apart in a listing, nothing to look up.
    pub label: String,
    pub family: Option<String>,
    pub build: Option<String>,
    pub log_date: Option<String>,
    pub country: Option<String>,
}

impl DeviceView {
    pub(super) fn from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Self>> {
        let Some(id) = r.get::<_, Option<i64>>(at)? else {
            return Ok(None);
        };
        let machine: Option<Vec<u8>> = r.get(at + 1)?;
        let folder: Vec<u8> = r.get(at + 2)?;
        let key = machine.unwrap_or(folder);
        let label: String = key.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Ok(Some(DeviceView {
            id,
            label,
            family: r.get(at + 3)?,
            build: r.get(at + 4)?,
            log_date: r.get(at + 5)?,
            country: r.get(at + 6)?,
        }))
    }

    /// `Lumma build 4.0, 2025-10-12, FR, device 3fa1…`
    pub fn describe(&self) -> String {
        let mut parts = vec![match (&self.family, &self.build) {
            (Some(f), Some(b)) => format!("{f} (build {b})"),
            (Some(f), None) => f.clone(),
            (None, _) => "unknown family".to_string(),
        }];
        if let Some(d) = &self.log_date {
            parts.push(format!("infected {d}"));
        }
        if let Some(c) = &self.country {
            parts.push(c.clone());
        }
        parts.push(format!("device {}", self.label));
        parts.join(", ")
    }
}

/// Columns for [`DeviceView::from_row`], from a `LEFT JOIN devices d`.
pub(super) const DEVICE_COLUMNS: &str =
    "d.id, d.machine_hash, d.folder_key, d.family, d.build, d.log_date, d.country";

impl Store {
    /// The device of a stealer-log folder, made if new.
    pub fn device_for_folder(
        &mut self,
        folder_key: &[u8; 32],
        now: i64,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO devices (folder_key, first_seen) VALUES (?1, ?2)",
            params![&folder_key[..], now],
        )?;
        Ok(self.conn.query_row(
            "SELECT coalesce(same_as, id) FROM devices WHERE folder_key = ?1",
            [&folder_key[..]],
            |r| r.get(0),
        )?)
    }

    /// The device of a folder, if a finding already made it (an earlier run read the
    /// folder's credentials; this one reads its device file).
    pub fn device_by_folder(&self, folder_key: &[u8; 32]) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT coalesce(same_as, id) FROM devices WHERE folder_key = ?1",
                [&folder_key[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Completes a device from its device file (known fields are kept). A machine already
    /// known by its hash under another folder (the same log sold twice, renamed) is one
    /// device: this folder's findings move to it and the folder points at it. Returns the
    /// device's id.
    pub fn update_device(&mut self, id: i64, d: &DeviceRecord) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        if let Some(hash) = &d.machine_hash {
            let first: Option<i64> = tx
                .query_row(
                    "SELECT min(id) FROM devices WHERE machine_hash = ?1 AND same_as IS NULL AND id != ?2",
                    params![&hash[..], id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            if let Some(first) = first.filter(|&f| f < id) {
                tx.execute(
                    "UPDATE findings SET device_id = ?1 WHERE device_id = ?2",
                    params![first, id],
                )?;
                tx.execute(
                    "UPDATE devices SET same_as = ?1 WHERE id = ?2 OR same_as = ?2",
                    params![first, id],
                )?;
                Self::complete(&tx, first, d)?;
                tx.commit()?;
                return Ok(first);
            }
        }
        Self::complete(&tx, id, d)?;
        tx.commit()?;
        Ok(id)
    }

    fn complete(
        tx: &rusqlite::Transaction<'_>,
        id: i64,
        d: &DeviceRecord,
    ) -> Result<(), StoreError> {
        tx.execute(
            "UPDATE devices SET machine_hash = coalesce(?2, machine_hash),
                family = coalesce(?3, family), build = coalesce(?4, build),
                log_date = coalesce(?5, log_date), country = coalesce(?6, country)
             WHERE id = ?1",
            params![
                id,
                d.machine_hash.as_ref().map(|h| &h[..]),
                d.family,
                d.build,
                d.log_date,
                d.country
            ],
        )?;
        Ok(())
    }

    pub fn device(&self, id: i64) -> Result<Option<DeviceView>, StoreError> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = ?1");
        Ok(self
            .conn
            .query_row(&sql, [id], |r| DeviceView::from_row(r, 0))
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_one_device_completed_later() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = s.device_for_folder(&[1; 32], 10).unwrap();
        assert_eq!(s.device_for_folder(&[1; 32], 20).unwrap(), a);
        assert_ne!(s.device_for_folder(&[2; 32], 20).unwrap(), a);
        let v = s.device(a).unwrap().unwrap();
        assert_eq!(v.label, "010101010101");
        assert_eq!(v.describe(), "unknown family, device 010101010101");
        s.update_device(
            a,
            &DeviceRecord {
                machine_hash: Some([0xab; 32]),
                family: Some("Lumma".into()),
                build: Some("4.0".into()),
                log_date: Some("2025-10-12".into()),
                country: Some("FR".into()),
            },
        )
        .unwrap();
        // A later, emptier record keeps what was known.
        s.update_device(a, &DeviceRecord::default()).unwrap();
        // The same machine under another folder name is the same device.
        let b = s.device_for_folder(&[3; 32], 30).unwrap();
        assert_ne!(a, b);
        let same = DeviceRecord {
            machine_hash: Some([0xab; 32]),
            ..Default::default()
        };
        assert_eq!(s.update_device(b, &same).unwrap(), a);
        assert_eq!(s.device_for_folder(&[3; 32], 40).unwrap(), a);
        assert_eq!(s.device_by_folder(&[3; 32]).unwrap(), Some(a));
        let v = s.device(a).unwrap().unwrap();
        assert_eq!(
            v.describe(),
            "Lumma (build 4.0), infected 2025-10-12, FR, device abababababab"
        );
    }
}
