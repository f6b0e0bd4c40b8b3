//! Byte classes of 64 bytes at a time, as bit masks: the few vector operations the fast
//! path needs (newlines, a login's plain bytes, `.` and `+` in a domain, lower case).
//!
//! Why: the per-line work of a dump is short loops over short fields, where a `memchr`
//! call or a byte-by-byte loop costs more than the work itself. SSE2 is part of every
//! x86_64 CPU, so no detection is needed; other targets take the scalar loops, which give
//! the same answers (tested).

/// Asks the CPU to bring the cache line holding `r` in, so that a batch of look-ups in
/// large tables waits for memory once rather than once per look-up: a hint, never a read.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch cannot fault and reads nothing; `r` is a valid reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            (r as *const T).cast::<i8>(),
            std::arch::x86_64::_MM_HINT_T0,
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// A table of the bytes in `set`, for one-load membership tests in the per-byte loops.
pub const fn byte_set(set: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < set.len() {
        t[set[i] as usize] = true;
        i += 1;
    }
    t
}

/// `str::trim`, answered at once when both ends are ASCII and not whitespace (almost
/// every field of a dump): the general trim decodes characters from both ends.
#[inline]
pub fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    let solid = |c: u8| c < 0x80 && !matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) if solid(first) && solid(last) => s,
        _ => s.trim(),
    }
}

/// Bit `i` set when `data[i] == byte`, for the first 64 bytes of `data`.
#[inline]
pub fn eq_mask(data: &[u8], byte: u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= 64 {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of x86_64; the four 16-byte loads are within `data`.
        unsafe {
            let want = _mm_set1_epi8(byte as i8);
            let mut mask = 0u64;
            for k in 0..4 {
                let v = _mm_loadu_si128(data.as_ptr().add(16 * k).cast());
                mask |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, want)) as u16 as u64) << (16 * k);
            }
            return mask;
        }
    }
    data.iter()
        .take(64)
        .enumerate()
        .fold(0, |m, (i, &c)| m | (((c == byte) as u64) << i))
}

/// The byte classes of a 64-byte window that the fast path reads a line by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classes {
    /// Letters, digits, `.`, `-`, `_`, `+`: an address or a word.
    pub plain: u64,
    pub at: u64,
    /// The ULP separators `:`, `|`, space, tab.
    pub sep: u64,
    /// Where a URL's path starts: `/`, `?`, `#`.
    pub path: u64,
}

/// Classifies the 64 bytes of `w`: `plain` and `at` (what every line needs).
#[inline]
pub fn classify(w: &[u8; 64]) -> Classes {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the loads are within the 64-byte array.
        unsafe {
            let mut c = Classes::default();
            let set = |b: u8| _mm_set1_epi8(b as i8);
            let eq = |v: __m128i, b: u8| _mm_cmpeq_epi8(v, set(b));
            let or = |a: __m128i, b: __m128i| _mm_or_si128(a, b);
            // x in [lo, lo + span] (unsigned): min(x - lo, span) == x - lo.
            let range = |v: __m128i, lo: u8, span: u8| {
                let d = _mm_sub_epi8(v, set(lo));
                _mm_cmpeq_epi8(_mm_min_epu8(d, set(span)), d)
            };
            let bits = |m: __m128i, k: usize| (_mm_movemask_epi8(m) as u16 as u64) << (16 * k);
            for k in 0..4 {
                let v = _mm_loadu_si128(w.as_ptr().add(16 * k).cast());
                let letter = range(or(v, set(0x20)), b'a', 25);
                let digit = range(v, b'0', 9);
                let punct = or(or(eq(v, b'.'), eq(v, b'-')), or(eq(v, b'_'), eq(v, b'+')));
                c.plain |= bits(or(or(letter, digit), punct), k);
                c.at |= bits(eq(v, b'@'), k);
            }
            c
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut c = Classes::default();
        for (i, &b) in w.iter().enumerate() {
            c.plain |= ((b.is_ascii_alphanumeric() || b".-_+".contains(&b)) as u64) << i;
            c.at |= ((b == b'@') as u64) << i;
        }
        c
    }
}

/// Adds the ULP classes (`sep`, `path`) of `w` to `c`: only ULP lines need them.
#[inline]
pub fn classify_ulp(w: &[u8; 64], c: &mut Classes) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the loads are within the 64-byte array.
        unsafe {
            let set = |b: u8| _mm_set1_epi8(b as i8);
            let eq = |v: __m128i, b: u8| _mm_cmpeq_epi8(v, set(b));
            let or = |a: __m128i, b: __m128i| _mm_or_si128(a, b);
            let bits = |m: __m128i, k: usize| (_mm_movemask_epi8(m) as u16 as u64) << (16 * k);
            for k in 0..4 {
                let v = _mm_loadu_si128(w.as_ptr().add(16 * k).cast());
                c.sep |= bits(
                    or(or(eq(v, b':'), eq(v, b'|')), or(eq(v, b' '), eq(v, b'\t'))),
                    k,
                );
                c.path |= bits(or(eq(v, b'/'), or(eq(v, b'?'), eq(v, b'#'))), k);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (i, &b) in w.iter().enumerate() {
        c.sep |= (b":| \t".contains(&b) as u64) << i;
        c.path |= (b"/?#".contains(&b) as u64) << i;
    }
}

/// The start of a one-block SHA-1 message in one pass over `src`: its first `len` bytes
/// (`len` < 64) lower-cased (ASCII) into `dst`, byte `len` set to 0x80, the rest to 0
/// (a copy, then [`keep_and_mark`] of the lower-cased bytes, in one pass). Returns the
/// masks of `.` and `+` in `src`, which the caller's checks of a domain need.
#[inline]
pub fn lower_marked(src: &[u8; 64], len: usize, dst: &mut [u8; 64]) -> (u64, u64) {
    debug_assert!(len < 64);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; loads and stores are within the arrays.
        unsafe {
            let set = |b: u8| _mm_set1_epi8(b as i8);
            let n = set(len as u8);
            let mut idx = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let (mut dots, mut plus) = (0u64, 0u64);
            for k in 0..4 {
                let v = _mm_loadu_si128(src.as_ptr().add(16 * k).cast());
                dots |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, set(b'.'))) as u16 as u64) << (16 * k);
                plus |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, set(b'+'))) as u16 as u64) << (16 * k);
                let d = _mm_sub_epi8(v, set(b'A'));
                let upper = _mm_cmpeq_epi8(_mm_min_epu8(d, set(25)), d);
                let v = _mm_or_si128(v, _mm_and_si128(upper, set(0x20)));
                // Indices and `len` are below 128: signed compares are exact.
                let keep = _mm_cmplt_epi8(idx, n);
                let mark = _mm_and_si128(_mm_cmpeq_epi8(idx, n), set(0x80));
                let out = _mm_or_si128(_mm_and_si128(v, keep), mark);
                _mm_storeu_si128(dst.as_mut_ptr().add(16 * k).cast(), out);
                idx = _mm_add_epi8(idx, set(16));
            }
            (dots, plus)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        dst[..len].copy_from_slice(&src[..len]);
        dst[..len].make_ascii_lowercase();
        dst[len] = 0x80;
        dst[len + 1..].fill(0);
        (eq_mask(src, b'.'), eq_mask(src, b'+'))
    }
}

/// Keeps the first `len` bytes (`len` < 64), sets byte `len` to 0x80 and the rest to 0:
/// the start of SHA-1's padding.
#[inline]
pub fn keep_and_mark(w: &mut [u8; 64], len: usize) {
    debug_assert!(len < 64);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; loads and stores are within the array.
        unsafe {
            let n = _mm_set1_epi8(len as i8);
            let mut idx = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for k in 0..4 {
                let p = w.as_mut_ptr().add(16 * k).cast::<__m128i>();
                let v = _mm_loadu_si128(p);
                // Indices and `len` are below 128: signed compares are exact.
                let keep = _mm_cmplt_epi8(idx, n);
                let mark = _mm_and_si128(_mm_cmpeq_epi8(idx, n), _mm_set1_epi8(0x80u8 as i8));
                _mm_storeu_si128(p, _mm_or_si128(_mm_and_si128(v, keep), mark));
                idx = _mm_add_epi8(idx, _mm_set1_epi8(16));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        w[len] = 0x80;
        w[len + 1..].fill(0);
    }
}

/// Bits `from..to` set (`to` at most 64).
#[inline]
pub fn bits(from: usize, to: usize) -> u64 {
    if from >= to {
        return 0;
    }
    let upper = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    upper & !((1u64 << from) - 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\u{b}a\u{c}",
            "\u{a0}a",
            "a\u{a0}",
            "é",
            " é ",
            "a b",
            "\u{2003}x\u{2003}",
            "x\r",
            "\tx",
        ] {
            assert_eq!(super::trim(s), s.trim(), "{s:?}");
        }
    }

    use super::*;

    #[test]
    fn masks_match_the_scalar_definitions() {
        let mut rng = crate::synth::Rng::new(9);
        for _ in 0..20_000 {
            let mut w = [0u8; 64];
            for c in &mut w {
                *c = match rng.below(4) {
                    0 => rng.below(256) as u8,
                    _ => *rng.pick(b"aZ09.-_+@:;|\t\n /`[{?#"),
                };
            }
            let mut k = classify(&w);
            classify_ulp(&w, &mut k);
            for (i, &c) in w.iter().enumerate() {
                let want = c.is_ascii_alphanumeric() || b".-_+".contains(&c);
                assert_eq!(k.plain >> i & 1 == 1, want, "{c:#x}");
                assert_eq!(k.at >> i & 1 == 1, c == b'@');
                assert_eq!(k.sep >> i & 1 == 1, b":| \t".contains(&c));
                assert_eq!(k.path >> i & 1 == 1, b"/?#".contains(&c));
                assert_eq!(eq_mask(&w, b'\n') >> i & 1 == 1, c == b'\n');
            }
            let l = w.map(|c| c.to_ascii_lowercase());
            let len = rng.below(64) as usize;
            let mut m = [0xAA; 64];
            let (dots, plus) = lower_marked(&w, len, &mut m);
            assert_eq!(m[..len], l[..len]);
            assert_eq!(m[len], 0x80);
            assert!(m[len + 1..].iter().all(|&c| c == 0));
            assert_eq!((dots, plus), (eq_mask(&w, b'.'), eq_mask(&w, b'+')));
            let mut p = w;
            keep_and_mark(&mut p, len);
            assert_eq!(p[..len], w[..len]);
            assert_eq!(p[len], 0x80);
            assert!(p[len + 1..].iter().all(|&c| c == 0));
        }
        assert_eq!(bits(0, 64), u64::MAX);
        assert_eq!(bits(3, 5), 0b11000);
        assert_eq!(bits(5, 5), 0);
        assert_eq!(eq_mask(b"a\nb", b'\n'), 0b10);
    }
}
