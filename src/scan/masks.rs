//! The byte classes of a whole chunk, computed once per 64 bytes and shared by the lines
//! that cross them: newlines, and the `plain` and `@` classes every line is read by.
//!
//! Why: classifying a 64-byte window at each line's start classified every byte about
//! 1.3 times (lines average 48 bytes), at about 100 instructions a line, and found the
//! newlines in a second pass. One pass over the chunk, 32 bytes at a time where the CPU
//! has AVX2 (one call per chunk, so the check costs nothing), then two shifts per class
//! to read a line's window.

use crate::bytes::Classes;

/// The classes of 64 bytes of a chunk, as bit masks (bit `i`: byte `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Block {
    newline: u64,
    /// Letters, digits, `.`, `-`, `_`, `+` (as [`crate::bytes::classify`]).
    plain: u64,
    at: u64,
}

/// The classes of one chunk's bytes.
#[derive(Debug, Default)]
pub(crate) struct Masks {
    /// One block per 64 bytes of the chunk, then an empty one: a window may start in the
    /// last block. Bytes past the chunk's end are in no class.
    blocks: Vec<Block>,
    len: usize,
}

impl Masks {
    /// Classifies `data`.
    pub fn classify(&mut self, data: &[u8]) {
        let whole = data.len() / 64;
        self.len = data.len();
        self.blocks.clear();
        self.blocks.resize(whole + 2, Block::default());
        classify_whole(&data[..whole * 64], &mut self.blocks[..whole]);
        let tail = &data[whole * 64..];
        if !tail.is_empty() {
            let mut last = [0u8; 64];
            last[..tail.len()].copy_from_slice(tail);
            classify_whole(&last, &mut self.blocks[whole..whole + 1]);
            // The copy's zeros are in no class; only a newline could be mistaken, and
            // `b'\n'` is not zero.
        }
    }

    /// The `plain` and `at` classes of the 64 bytes from `pos` (as [`crate::bytes::classify`]
    /// of the window there, but bytes past the chunk's end are in no class).
    #[inline]
    pub fn classes_at(&self, pos: usize) -> Classes {
        let (i, shift) = (pos / 64, (pos % 64) as u32);
        let (lo, hi) = (&self.blocks[i], &self.blocks[i + 1]);
        let window = |lo: u64, hi: u64| (((hi as u128) << 64 | lo as u128) >> shift) as u64;
        Classes {
            plain: window(lo.plain, hi.plain),
            at: window(lo.at, hi.at),
            ..Classes::default()
        }
    }

    /// The positions of the chunk's newlines, in order.
    pub fn newlines(&self) -> Newlines<'_> {
        Newlines {
            blocks: &self.blocks,
            block: 0,
            mask: self.blocks.first().map_or(0, |b| b.newline),
        }
    }
}

/// The newlines of a chunk, from its masks.
pub(crate) struct Newlines<'a> {
    blocks: &'a [Block],
    /// The block `mask` is what remains of.
    block: usize,
    mask: u64,
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.block += 1;
            self.mask = self.blocks.get(self.block)?.newline;
        }
        let at = self.block * 64 + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// Classifies `data` (a multiple of 64 bytes) into `out`, one block per 64 bytes.
fn classify_whole(data: &[u8], out: &mut [Block]) {
    debug_assert_eq!(data.len(), out.len() * 64);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { x86::classify_avx2(data, out) };
        } else {
            x86::classify_sse2(data, out);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    classify_scalar(data, out);
}

/// The definition the vector versions are tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_scalar(data: &[u8], out: &mut [Block]) {
    for (bytes, block) in data.chunks_exact(64).zip(out.iter_mut()) {
        *block = Block::default();
        for (i, &c) in bytes.iter().enumerate() {
            block.newline |= ((c == b'\n') as u64) << i;
            block.plain |= ((c.is_ascii_alphanumeric() || b".-_+".contains(&c)) as u64) << i;
            block.at |= ((c == b'@') as u64) << i;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Block;

    /// Bytes ahead of the one being classified that are asked for.
    const PREFETCH: usize = 4096;

    /// Without AVX2: the per-window classes of [`crate::bytes`], and its newline mask.
    pub fn classify_sse2(data: &[u8], out: &mut [Block]) {
        for (bytes, block) in data.chunks_exact(64).zip(out.iter_mut()) {
            let window: &[u8; 64] = bytes.try_into().expect("64 bytes");
            let c = crate::bytes::classify(window);
            *block = Block {
                newline: crate::bytes::eq_mask(window, b'\n'),
                plain: c.plain,
                at: c.at,
            };
        }
    }

    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn classify_avx2(data: &[u8], out: &mut [Block]) {
        let set = |c: u8| _mm256_set1_epi8(c as i8);
        let eq = |v: __m256i, c: u8| _mm256_cmpeq_epi8(v, set(c));
        let or = |a: __m256i, b: __m256i| _mm256_or_si256(a, b);
        let range = |v: __m256i, lo: u8, span: u8| {
            let d = _mm256_sub_epi8(v, set(lo));
            _mm256_cmpeq_epi8(_mm256_min_epu8(d, set(span)), d)
        };
        let bits = |m: __m256i, k: usize| (_mm256_movemask_epi8(m) as u32 as u64) << (32 * k);
        for (bytes, block) in data.chunks_exact(64).zip(out.iter_mut()) {
            // A mapped file's bytes come from memory, not from a copy just made: asked
            // for ahead, the one-core run was 4–13 % faster (median and best, in alternation).
            // A prefetch never faults, even past the data.
            _mm_prefetch(bytes.as_ptr().wrapping_add(PREFETCH).cast(), _MM_HINT_T0);
            let mut b = Block::default();
            for k in 0..2 {
                // SAFETY: the load is within the 64 bytes.
                let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().add(32 * k).cast()) };
                let letter = range(or(v, set(0x20)), b'a', 25);
                let digit = range(v, b'0', 9);
                let punct = or(or(eq(v, b'.'), eq(v, b'-')), or(eq(v, b'_'), eq(v, b'+')));
                b.plain |= bits(or(or(letter, digit), punct), k);
                b.at |= bits(eq(v, b'@'), k);
                b.newline |= bits(eq(v, b'\n'), k);
            }
            *block = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes;

    fn random(rng: &mut crate::synth::Rng, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| match rng.below(4) {
                0 => rng.below(256) as u8,
                _ => *rng.pick(b"aZ09.-_+@:;|\t\n /`[{?#\x80"),
            })
            .collect()
    }

    #[test]
    fn every_version_gives_the_scalar_classes() {
        let mut rng = crate::synth::Rng::new(17);
        let data = random(&mut rng, 64 * 200);
        let mut want = vec![Block::default(); 200];
        classify_scalar(&data, &mut want);
        #[cfg(target_arch = "x86_64")]
        {
            let mut got = vec![Block::default(); 200];
            x86::classify_sse2(&data, &mut got);
            assert_eq!(got, want, "sse2");
            if is_x86_feature_detected!("avx2") {
                let mut got = vec![Block::default(); 200];
                // SAFETY: checked just above.
                unsafe { x86::classify_avx2(&data, &mut got) };
                assert_eq!(got, want, "avx2");
            }
        }
    }

    /// A window's classes are those of `bytes::classify` on the same bytes, with the bytes
    /// past the chunk's end in no class; the newlines are the chunk's own.
    #[test]
    fn windows_and_newlines_match_the_bytes() {
        let mut rng = crate::synth::Rng::new(5);
        let mut masks = Masks::default();
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000, 4096 + 17] {
            let data = random(&mut rng, len);
            masks.classify(&data);
            for pos in 0..len {
                let mut w = [0u8; 64];
                let n = (len - pos).min(64);
                w[..n].copy_from_slice(&data[pos..pos + n]);
                let want = bytes::classify(&w);
                let got = masks.classes_at(pos);
                let inside = bytes::bits(0, n);
                assert_eq!(got.plain, want.plain & inside, "len {len} pos {pos}");
                assert_eq!(got.at, want.at & inside, "len {len} pos {pos}");
            }
            let want: Vec<usize> = (0..len).filter(|&i| data[i] == b'\n').collect();
            assert_eq!(masks.newlines().collect::<Vec<_>>(), want, "len {len}");
        }
    }
}
