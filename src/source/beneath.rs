//! The drop directory's files opened, listed and moved relative to directory descriptors,
//! never by path, so that whoever can write the drop directory cannot lead the daemon out
//! of it.
//!
//! Paths are checked and then used; between the two, an uploader can swap a file for a
//! symbolic link to `/etc/shadow`, a folder for a link to `/`, or a file for a FIFO that
//! blocks `open` forever. Here every step below the drop directory is `openat` with
//! `O_NOFOLLOW` from the descriptor of the folder above it, so that a link met at any
//! level is refused (`ELOOP`) rather than followed. Files are opened `O_NONBLOCK` and kept
//! only if `fstat` says they are regular. Moves are `renameat` between two such folders,
//! without replacing. The drop directory itself and a `processed_dir` outside it are the
//! admin's own paths and are followed like any configured path.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Why an entry of the drop directory was not read or not moved: said in the run's row.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("refused: a symbolic link, not followed")]
    Link,
    #[error("refused: {0}, not a regular file")]
    Special(&'static str),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl Refused {
    /// The refusal as the walk reports it, for the file `path`.
    pub fn at(self, path: String) -> super::SourceError {
        match self {
            Refused::Io(source) => super::SourceError::Io { path, source },
            r => super::SourceError::Skipped {
                path,
                reason: r.to_string(),
            },
        }
    }
}

impl From<Errno> for Refused {
    fn from(e: Errno) -> Refused {
        // `O_NOFOLLOW` on a link gives ELOOP (with `O_DIRECTORY`, ENOTDIR: `sub_dir`
        // tells which).
        if e == Errno::LOOP {
            Refused::Link
        } else {
            Refused::Io(e.into())
        }
    }
}

/// What a file type is called in a refusal.
pub fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symbolic link",
        FileType::Directory => "a directory",
        FileType::RegularFile => "a regular file",
        _ => "an unknown kind of file",
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A folder tree held by the descriptor of its top.
pub struct Tree {
    root: OwnedFd,
}

/// One entry of a folder, as listed: its name and its type, links not followed.
pub struct Entry {
    pub name: std::ffi::OsString,
    pub kind: FileType,
    pub size: u64,
    pub mtime: i64,
    /// Device and inode, to know a folder (the processed one) whatever its path.
    pub id: (u64, u64),
}

impl Tree {
    /// Opens the top of the tree: the admin's path, links in it followed.
    pub fn open(path: &Path) -> io::Result<Tree> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Tree { root })
    }

    /// The folder at `rel` below the top, every level opened without following a link.
    pub fn dir(&self, rel: &Path) -> Result<OwnedFd, Refused> {
        let mut fd = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for name in parts(rel)? {
            fd = sub_dir(&fd, name)?;
        }
        Ok(fd)
    }

    /// The folder at `rel`, made (0700) where a level is missing; a link at any level is
    /// refused, so a move can never land outside.
    pub fn dir_made(&self, rel: &Path) -> Result<OwnedFd, Refused> {
        let mut fd = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for name in parts(rel)? {
            fd = match sub_dir(&fd, name) {
                Err(Refused::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&fd, name, Mode::RWXU) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    sub_dir(&fd, name)?
                }
                r => r?,
            };
        }
        Ok(fd)
    }

    /// Opens the regular file at `rel` for reading: no link followed at any level, and a
    /// FIFO, socket or device refused without blocking on it.
    pub fn file(&self, rel: &Path) -> Result<File, Refused> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent)?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        regular(fd)
    }

    /// The entries of the folder at `rel`, each typed without following it. `.` and `..`
    /// left out.
    pub fn list(&self, rel: &Path) -> Result<Vec<Entry>, Refused> {
        let dir = self.dir(rel)?;
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(&dir)? {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let st = rustix::fs::statat(&dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW)?;
            out.push(Entry {
                name: OsStr::from_bytes(name).to_os_string(),
                kind: FileType::from_raw_mode(st.st_mode),
                size: st.st_size as u64,
                mtime: st.st_mtime,
                id: (st.st_dev, st.st_ino),
            });
        }
        Ok(out)
    }

    /// Moves the file at `rel` into `to` (another tree, or a folder of this one) at the
    /// same relative place, never replacing anything: a name taken gets `.1`, `.2`, …
    /// Returns where it went, relative to `to`.
    pub fn move_to(&self, rel: &Path, to: &Tree) -> Result<PathBuf, Refused> {
        let (parent, name) = split(rel)?;
        let from = self.dir(parent)?;
        let dest = to.dir_made(parent)?;
        let mut target = name.to_os_string();
        for n in 1..=10_000u32 {
            match rename_noreplace(&from, name, &dest, &target) {
                Ok(()) => return Ok(parent.join(target)),
                Err(Errno::EXIST) => {
                    target = name.to_os_string();
                    target.push(format!(".{n}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Refused::Io(io::Error::other(
            "10,000 files of that name already in processed_dir",
        )))
    }

    /// A tree for the folder at `rel` below this one, made if missing.
    pub fn subtree_made(&self, rel: &Path) -> Result<Tree, Refused> {
        Ok(Tree {
            root: self.dir_made(rel)?,
        })
    }

    /// The device and inode of the top.
    pub fn id(&self) -> io::Result<(u64, u64)> {
        let st = rustix::fs::fstat(&self.root)?;
        Ok((st.st_dev, st.st_ino))
    }
}

/// The folder `name` in `dir`, not followed if it is a link.
fn sub_dir(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Refused> {
    match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // A link with `O_NOFOLLOW | O_DIRECTORY` fails as "not a directory".
        Err(Errno::NOTDIR) => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                Err(Refused::Link)
            }
            _ => Err(Errno::NOTDIR.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Opens a file named by the admin (`leakwatch ingest PATH`): links are followed, as for
/// any path given on the command line, but a FIFO or device is refused without blocking.
pub fn open_regular(path: &Path) -> Result<File, Refused> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    regular(fd)
}

fn regular(fd: OwnedFd) -> Result<File, Refused> {
    let st = rustix::fs::fstat(&fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(Refused::Special(kind_name(kind)));
    }
    // Reads of a regular file never block; the flag is cleared so that nothing later
    // mistakes a short read for `EAGAIN`.
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)?;
    Ok(File::from(fd))
}

/// `renameat2(RENAME_NOREPLACE)`; where the filesystem lacks it (EINVAL), a check then a
/// plain rename: the window is the uploader's own file name, inside processed_dir.
fn rename_noreplace(
    from: impl AsFd,
    name: &OsStr,
    to: impl AsFd,
    target: &OsStr,
) -> Result<(), Errno> {
    match rustix::fs::renameat_with(&from, name, &to, target, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) => {
            match rustix::fs::statat(&to, target, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => return Err(Errno::EXIST),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
            rustix::fs::renameat(&from, name, &to, target)
        }
        r => r,
    }
}

/// The names of a relative path's levels; anything but plain names (`..`, a root) is an
/// error, so a path can only go down.
fn parts(rel: &Path) -> Result<Vec<&OsStr>, Refused> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(Refused::Io(io::Error::other(format!(
                "{}: not a path below the drop directory",
                rel.display()
            )))),
        })
        .collect()
}

fn split(rel: &Path) -> Result<(&Path, &OsStr), Refused> {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(Refused::Io(io::Error::other(format!(
            "{}: not a file below the drop directory",
            rel.display()
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn read(mut f: File) -> String {
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn links_at_any_level_are_refused_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        let top = d.path().join("drop");
        std::fs::create_dir_all(top.join("sub")).unwrap();
        std::fs::write(top.join("sub/ok.txt"), "inside").unwrap();
        symlink(outside.path().join("secret"), top.join("sub/link.txt")).unwrap();
        symlink(outside.path(), top.join("dirlink")).unwrap();
        let t = Tree::open(&top).unwrap();
        assert_eq!(read(t.file(Path::new("sub/ok.txt")).unwrap()), "inside");
        assert!(matches!(
            t.file(Path::new("sub/link.txt")),
            Err(Refused::Link)
        ));
        assert!(matches!(
            t.file(Path::new("dirlink/secret")),
            Err(Refused::Link)
        ));
        assert!(t.file(Path::new("../drop/sub/ok.txt")).is_err());
        let kinds: Vec<(String, FileType)> = t
            .list(Path::new("sub"))
            .unwrap()
            .into_iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.kind))
            .collect();
        assert!(kinds.contains(&("link.txt".into(), FileType::Symlink)));
        assert!(kinds.contains(&("ok.txt".into(), FileType::RegularFile)));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("pipe.txt"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let t = Tree::open(d.path()).unwrap();
        // A plain `File::open` would wait here for a writer, forever.
        match t.file(Path::new("pipe.txt")) {
            Err(Refused::Special(k)) => assert_eq!(k, "a FIFO"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            open_regular(&d.path().join("pipe.txt")),
            Err(Refused::Special("a FIFO"))
        ));
    }

    #[test]
    fn moves_never_leave_through_a_link_nor_replace() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let top = d.path().join("drop");
        std::fs::create_dir_all(top.join("a")).unwrap();
        std::fs::create_dir_all(top.join("processed")).unwrap();
        std::fs::write(top.join("a/one.txt"), "1").unwrap();
        std::fs::write(top.join("two.txt"), "2").unwrap();
        // An uploader plants processed/a -> outside: the move must not follow it.
        symlink(outside.path(), top.join("processed/a")).unwrap();
        let t = Tree::open(&top).unwrap();
        let p = t.subtree_made(Path::new("processed")).unwrap();
        assert!(matches!(
            t.move_to(Path::new("a/one.txt"), &p),
            Err(Refused::Link)
        ));
        assert!(top.join("a/one.txt").exists());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A name taken gets a suffix.
        std::fs::write(top.join("processed/two.txt"), "old").unwrap();
        let to = t.move_to(Path::new("two.txt"), &p).unwrap();
        assert_eq!(to, Path::new("two.txt.1"));
        assert_eq!(
            std::fs::read_to_string(top.join("processed/two.txt")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(top.join("processed/two.txt.1")).unwrap(),
            "2"
        );
        // A processed folder that is itself a link is refused too.
        std::fs::remove_dir_all(top.join("processed")).unwrap();
        symlink(outside.path(), top.join("processed")).unwrap();
        assert!(matches!(
            t.subtree_made(Path::new("processed")),
            Err(Refused::Link)
        ));
    }
}
