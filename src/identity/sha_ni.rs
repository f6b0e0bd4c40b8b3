//! SHA-1 of two or four one-block messages at once with the x86 SHA extensions.
//!
//! Why: a block's 20 `sha1rnds4` steps form one dependency chain, so one block at a time
//! the unit waits on each step's latency; independent chains written side by side keep it
//! busy (`cargo bench --bench filter`: see docs/benchmarks.md). Each chain holds seven vector
//! registers and x86_64 has sixteen, so four chains spill to the stack; they still
//! measured 8 % faster than two (21.0 against 22.8 ns per block): the spills are L1 loads
//! and stores, and the SHA unit sets the pace. [`hash2`] takes the odd pairs.
//!
//! The round structure is the one the SHA extensions were designed for (Intel's white
//! paper "New Instructions Supporting the Secure Hash Algorithm on Intel Architecture
//! Processors"): four rounds per `sha1rnds4`, `sha1nexte` deriving E, `sha1msg1`/`sha1msg2`
//! extending the message schedule.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::IdentityHash;

/// Whether this CPU has what [`hash2`] needs (checked once, then cached by `std`).
#[inline]
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse4.1")
            && is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// SHA-1 of the padded blocks `a` and `b` (each a whole message).
///
/// # Safety
/// The CPU must have the SHA, SSSE3 and SSE4.1 extensions ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn hash2(blocks: [&[u8; 64]; 2], out: [&mut IdentityHash; 2]) {
    // SAFETY: the caller's promise, passed on.
    unsafe { hash_lanes(blocks, out) }
}

/// SHA-1 of four padded blocks, four chains side by side.
///
/// # Safety
/// The CPU must have the SHA, SSSE3 and SSE4.1 extensions ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn hash4(blocks: [&[u8; 64]; 4], out: [&mut IdentityHash; 4]) {
    // SAFETY: the caller's promise, passed on.
    unsafe { hash_lanes(blocks, out) }
}

/// SHA-1 of `L` padded blocks, `L` chains side by side.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[inline]
unsafe fn hash_lanes<const L: usize>(blocks: [&[u8; 64]; L], out: [&mut IdentityHash; L]) {
    // Big-endian words: reverse the bytes of each 16-byte load.
    let be = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0A0B_0C0D_0E0F);
    // The initial state, A in the high lane as `sha1rnds4` wants it, and E alone.
    let abcd = _mm_set_epi32(
        0x6745_2301_u32 as i32,
        0xEFCD_AB89_u32 as i32,
        0x98BA_DCFE_u32 as i32,
        0x1032_5476,
    );
    let e = _mm_set_epi32(0xC3D2_E1F0_u32 as i32, 0, 0, 0);
    let load = |block: &[u8; 64], i: usize| {
        // SAFETY: in bounds of the 64-byte block; `loadu` takes any alignment.
        unsafe { _mm_shuffle_epi8(_mm_loadu_si128(block.as_ptr().add(16 * i).cast()), be) }
    };
    // Per chain: the message schedule ring w[0..5] and the two round states.
    let mut w = [[_mm_setzero_si128(); 5]; L];
    let mut h0 = [abcd; L];
    let mut h1 = [e; L];
    for l in 0..L {
        for (i, wi) in w[l].iter_mut().take(4).enumerate() {
            *wi = load(blocks[l], i);
        }
        h1[l] = _mm_add_epi32(e, w[l][0]);
    }
    // Rounds 0–15: the block's own words.
    for l in 0..L {
        h1[l] = _mm_sha1rnds4_epu32(h0[l], h1[l], 0);
    }
    for l in 0..L {
        h0[l] = _mm_sha1rnds4_epu32(h1[l], _mm_sha1nexte_epu32(h0[l], w[l][1]), 0);
    }
    for l in 0..L {
        h1[l] = _mm_sha1rnds4_epu32(h0[l], _mm_sha1nexte_epu32(h1[l], w[l][2]), 0);
    }
    for l in 0..L {
        h0[l] = _mm_sha1rnds4_epu32(h1[l], _mm_sha1nexte_epu32(h0[l], w[l][3]), 0);
    }
    // Rounds 16–79: sixteen steps of four, each extending the schedule by four words
    // into the ring slot that falls out. The round function changes every 20 rounds.
    macro_rules! step {
        ($s:expr, $f:expr) => {
            for l in 0..L {
                let r = &mut w[l];
                let next = _mm_sha1msg2_epu32(
                    _mm_xor_si128(
                        _mm_sha1msg1_epu32(r[$s % 5], r[($s + 1) % 5]),
                        r[($s + 2) % 5],
                    ),
                    r[($s + 3) % 5],
                );
                r[($s + 4) % 5] = next;
                if $s % 2 == 0 {
                    h1[l] = _mm_sha1rnds4_epu32(h0[l], _mm_sha1nexte_epu32(h1[l], next), $f);
                } else {
                    h0[l] = _mm_sha1rnds4_epu32(h1[l], _mm_sha1nexte_epu32(h0[l], next), $f);
                }
            }
        };
    }
    step!(0, 0);
    step!(1, 1);
    step!(2, 1);
    step!(3, 1);
    step!(4, 1);
    step!(5, 1);
    step!(6, 2);
    step!(7, 2);
    step!(8, 2);
    step!(9, 2);
    step!(10, 2);
    step!(11, 3);
    step!(12, 3);
    step!(13, 3);
    step!(14, 3);
    step!(15, 3);
    for (l, out) in out.into_iter().enumerate() {
        let abcd = _mm_add_epi32(abcd, h0[l]);
        let e = _mm_sha1nexte_epu32(h1[l], e);
        // A..D as big-endian bytes: reverse the lanes' order, then each lane's bytes.
        let digest = _mm_shuffle_epi8(_mm_shuffle_epi32(abcd, 0b00011011), be);
        let digest = _mm_shuffle_epi32(digest, 0b00011011);
        _mm_storeu_si128(out.0.as_mut_ptr().cast(), digest);
        out.0[16..].copy_from_slice(&(_mm_extract_epi32(e, 3) as u32).to_be_bytes());
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::identity::block::padded;
    use sha1::Digest;

    #[test]
    fn two_and_four_chains_give_sha1_of_each() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for n in 0..2000usize {
            let mut msg = |len: usize| -> Vec<u8> {
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            };
            let m: Vec<Vec<u8>> = (0..4).map(|i| msg((n * (2 * i + 1) + i) % 56)).collect();
            let blocks: Vec<[u8; 64]> = m.iter().map(|m| padded(m)).collect();
            let mut two = [IdentityHash([0; 20]); 2];
            let mut four = [IdentityHash([0; 20]); 4];
            if available() {
                let [a, b] = &mut two;
                // SAFETY: `available` said yes.
                unsafe { hash2([&blocks[0], &blocks[1]], [a, b]) };
                let [a, b, c, d] = &mut four;
                // SAFETY: as above.
                unsafe {
                    hash4(
                        [&blocks[0], &blocks[1], &blocks[2], &blocks[3]],
                        [a, b, c, d],
                    )
                };
            } else {
                // Without the extensions `hash_blocks` takes the `sha1` crate's path.
                super::super::block::hash_blocks(&blocks[..2], &mut two);
                super::super::block::hash_blocks(&blocks, &mut four);
            }
            for (i, m) in m.iter().enumerate() {
                let want = <[u8; 20]>::from(sha1::Sha1::digest(m));
                assert_eq!(four[i].0, want, "four chains, {n}/{i}");
                if i < 2 {
                    assert_eq!(two[i].0, want, "two chains, {n}/{i}");
                }
            }
        }
    }
}
