//! A plain file on disk read through a memory map, so that the fast path parses the page
//! cache in place instead of having the kernel copy every byte into a buffer first.
//!
//! Why: that copy was 7 % of a warm single-core run (`perf`: the kernel's
//! `_copy_to_iter`), and on two cores the reading thread took that share of a core from
//! the workers. Mapped, the list's 2-thread run was 10–15 % faster (in alternation).
//! Only the fast path of combo/ULP lists reads the map in place (`scan::scan_mapped`);
//! other layouts read it as a stream, and archives and downloads (spooled encrypted) are
//! not mapped.
//!
//! The risk of a map is a file that shrinks under it: touching a page past the new end
//! raises `SIGBUS`, which kills the process by default, and "one bad file never stops a
//! run". So every live map is registered, and a `SIGBUS` handler that finds the faulting
//! address in a registered map puts zero pages over the rest of that map (the faulting
//! instruction then reads zeros and goes on) and marks the map as *shrunk*. The reader
//! checks [`Mapped::shrunk`] before it accepts each chunk's results, so what was read from
//! a shrinking file is dropped with an error naming the file, like a failed `read`. A
//! `SIGBUS` elsewhere goes to the handler that was there before (Rust's own, which kills
//! the process as the default would).
//!
//! Memory stays flat: pages already parsed are dropped from the process
//! ([`Mapped::release`]); they stay in the page cache, as after a `read`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Maps live at once (one per file being scanned; a run scans one file at a time, tests
/// several). When all are taken, [`Mapped::open`] fails and the caller reads the file as
/// a stream. The handler looks through them only on a `SIGBUS`.
const SLOTS: usize = 64;

struct Slot {
    taken: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    shrunk: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // the initialiser of the array below
const FREE: Slot = Slot {
    taken: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    shrunk: AtomicBool::new(false),
};

static REGISTRY: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The `SIGBUS` action found at install time, called for faults outside our maps.
struct Previous(std::cell::UnsafeCell<Option<libc::sigaction>>);
// SAFETY: written once inside `INSTALL`, before our handler is installed; only read after.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new(None));

/// Why a read of a mapped file stopped when [`Mapped::shrunk`].
pub const SHRUNK: &str =
    "the file shrank while it was read (truncated or rewritten by another program)";

/// A read-only map of a whole file, registered with the `SIGBUS` handler.
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
    slot: usize,
    released: AtomicUsize,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped({} bytes)", self.len)
    }
}

// SAFETY: the map is read-only and lives until drop; sharing `&[u8]` views is sound.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps `file` (`len` bytes, as its metadata said, more than zero). `Err` when the
    /// system refuses the map or the handler: the caller reads the file as a stream.
    pub fn open(file: &File, len: u64) -> io::Result<Mapped> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if len == 0 {
            return Err(io::Error::other("an empty file has nothing to map"));
        }
        install()?;
        let slot = REGISTRY
            .iter()
            .position(|s| {
                s.taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("too many files mapped at once"))?;
        // SAFETY: a fresh shared read-only map of an open file; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            REGISTRY[slot].taken.store(false, Ordering::Release);
            return Err(e);
        }
        let s = &REGISTRY[slot];
        s.shrunk.store(false, Ordering::SeqCst);
        s.start.store(ptr as usize, Ordering::SeqCst);
        s.end.store(ptr as usize + len, Ordering::SeqCst);
        Ok(Mapped {
            ptr,
            len,
            slot,
            released: AtomicUsize::new(0),
        })
    }

    /// The file's bytes as they were when mapped; zeros where it has shrunk since.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes at `ptr` until drop (zero pages where shrunk).
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// True once a page past the file's end was touched: the file shrank while mapped,
    /// and what was read since cannot be trusted.
    pub fn shrunk(&self) -> bool {
        REGISTRY[self.slot].shrunk.load(Ordering::SeqCst)
    }

    /// Maps the pages of bytes `from..to` into the process ahead of their reading: one
    /// call instead of a page fault every 16 pages. Best effort: errors are ignored (a
    /// shrunk file is caught by the handler when read).
    pub fn populate(&self, from: usize, to: usize) {
        let page = PAGE.load(Ordering::Relaxed);
        let (from, to) = (from & !(page - 1), to.min(self.len));
        if from >= to {
            return;
        }
        // SAFETY: a range inside our map; the advice only reads the file into it.
        unsafe {
            libc::madvise(
                (self.ptr as *mut u8).add(from) as *mut libc::c_void,
                to - from,
                libc::MADV_POPULATE_READ,
            );
        }
    }

    /// Drops the pages before byte `upto` from the process (they stay in the page cache):
    /// the resident memory of a scan does not grow with the file. Called in input order
    /// with bytes already parsed; a no-op until a few MiB have gathered.
    pub fn release(&self, upto: usize) {
        const STEP: usize = 8 << 20;
        let page = PAGE.load(Ordering::Relaxed);
        let from = self.released.load(Ordering::Relaxed);
        let to = upto.min(self.len) & !(page - 1);
        if to < from + STEP {
            return;
        }
        // SAFETY: a page-aligned range inside our map that no one reads any more. Should
        // a reader touch it again, it faults the page back in from the file.
        unsafe {
            libc::madvise(
                (self.ptr as *mut u8).add(from) as *mut libc::c_void,
                to - from,
                libc::MADV_DONTNEED,
            );
        }
        self.released.store(to, Ordering::Relaxed);
    }
}

impl Mapped {
    /// The bytes as a stream, for readers that take one: the pages read are released as
    /// the stream moves on, so that reading a large file this way keeps memory flat too.
    pub fn reader(&self) -> MappedReader<'_> {
        MappedReader { map: self, pos: 0 }
    }
}

/// See [`Mapped::reader`].
pub struct MappedReader<'m> {
    map: &'m Mapped,
    pos: usize,
}

impl std::io::Read for MappedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bytes = self.map.bytes();
        let n = buf.len().min(bytes.len() - self.pos);
        buf[..n].copy_from_slice(&bytes[self.pos..self.pos + n]);
        self.pos += n;
        // What was copied out is never read here again.
        self.map.release(self.pos);
        Ok(n)
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let s = &REGISTRY[self.slot];
        s.start.store(0, Ordering::SeqCst);
        s.end.store(0, Ordering::SeqCst);
        // SAFETY: our own map, unregistered above; no view of it outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
        s.taken.store(false, Ordering::Release);
    }
}

/// Installs the `SIGBUS` handler once per process.
fn install() -> io::Result<()> {
    INSTALL.call_once(|| {
        // SAFETY: plain libc calls; `PREVIOUS` is written before the handler can run.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            *PREVIOUS.0.get() = Some(old);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::SeqCst);
            }
        }
    });
    if INSTALLED.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(io::Error::other("cannot install the SIGBUS handler"))
    }
}

/// Only async-signal-safe work here: atomics, `mmap`, `sigaction`.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid `siginfo_t` to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for s in &REGISTRY {
        let (start, end) = (s.start.load(Ordering::SeqCst), s.end.load(Ordering::SeqCst));
        if start <= addr && addr < end {
            let from = addr & !(page - 1);
            let len = (end - from).div_ceil(page) * page;
            // SAFETY: replaces the rest of our own map with zero pages, so that the
            // faulting read is retried and succeeds.
            let p = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                s.shrunk.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
    // Not ours: what was there before (Rust's handler, or the default action).
    // SAFETY: `PREVIOUS` was written before this handler was installed.
    let previous = unsafe { *PREVIOUS.0.get() };
    match previous {
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
            // SAFETY: calling the previous handler as it was registered.
            unsafe {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(old.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                    f(sig);
                }
            }
        }
        _ => {
            // SAFETY: back to the default action; returning re-runs the faulting access,
            // which then ends the process as if no handler had been there.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        t.write_all(&data).unwrap();
        t.flush().unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn maps_the_file_as_it_is() {
        let (_t, f) = file_of(100_000);
        let m = Mapped::open(&f, 100_000).unwrap();
        assert_eq!(m.bytes().len(), 100_000);
        assert_eq!(&m.bytes()[..3], b"abc");
        assert_eq!(m.bytes()[99_999], b'a' + (99_999 % 26) as u8);
        // Released pages are read back from the file if touched again.
        m.release(100_000);
        assert_eq!(m.bytes()[50_000], b'a' + (50_000 % 26) as u8);
        assert!(!m.shrunk());
    }

    #[test]
    fn a_file_that_shrinks_under_the_map_reads_as_zeros_and_is_flagged() {
        let len = 64 * 4096;
        let (t, f) = file_of(len);
        let m = Mapped::open(&f, len as u64).unwrap();
        assert_eq!(m.bytes()[0], b'a');
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.path())
            .unwrap()
            .set_len(4096)
            .unwrap();
        // Without the handler this read would end the process with SIGBUS.
        let tail: u64 = m.bytes()[8 * 4096..].iter().map(|&b| u64::from(b)).sum();
        assert_eq!(tail, 0);
        assert!(m.shrunk());
        // The bytes still in the file are still read.
        assert_eq!(m.bytes()[1], b'b');
    }

    #[test]
    fn maps_are_independent_and_slots_come_back() {
        let (_t, f) = file_of(10_000);
        for _ in 0..SLOTS * 2 {
            let maps: Vec<Mapped> = (0..3).map(|_| Mapped::open(&f, 10_000).unwrap()).collect();
            assert!(maps.iter().all(|m| m.bytes()[2] == b'c' && !m.shrunk()));
        }
    }
}
