//! SHA-1 of sixteen one-block messages at once, one per 32-bit lane of AVX-512 registers.
//!
//! Why: the SHA extensions ([`super::sha_ni`]) run one `sha1rnds4` unit per core, about
//! 20 ns a block however many chains are in flight; SHA-1 was still a quarter of a
//! single-core run. With AVX-512 every round is a handful of plain vector instructions
//! (`vpternlogd` computes each round's boolean function in one, `vprold` each rotation),
//! applied to sixteen messages side by side, and a batch of the fast path is sixteen keys.
//! The blocks are turned into sixteen message-word vectors by a 16×16 transpose, and the
//! digests back into bytes by a store and a copy.
//!
//! Only used where the CPU has AVX-512 F and BW ([`available`]); checked against the
//! `sha1` crate on random messages.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::block::H0;
use super::IdentityHash;

/// Whether this CPU has what [`hash16`] needs (checked once, then cached by `std`).
#[inline]
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

const K: [u32; 4] = [0x5A82_7999, 0x6ED9_EBA1, 0x8F1B_BCDC, 0xCA62_C1D6];

/// SHA-1 of sixteen padded blocks (each a whole message).
///
/// # Safety
/// The CPU must have AVX-512 F and BW ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn hash16(blocks: &[[u8; 64]; 16], out: &mut [IdentityHash]) {
    assert!(out.len() >= 16);
    // Big-endian words: reverse the bytes of each 32-bit word.
    let swap = _mm512_broadcast_i32x4(_mm_set_epi8(
        12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
    ));
    let mut w: [__m512i; 16] = std::array::from_fn(|i| {
        // SAFETY: 64 bytes at each block.
        let row = unsafe { _mm512_loadu_si512(blocks[i].as_ptr().cast()) };
        _mm512_shuffle_epi8(row, swap)
    });
    transpose(&mut w);

    let h0: [__m512i; 5] = std::array::from_fn(|i| _mm512_set1_epi32(H0[i] as i32));
    let [mut a, mut b, mut c, mut d, mut e] = h0;
    macro_rules! rounds {
        ($from:expr, $f:literal, $k:expr) => {
            let k = _mm512_set1_epi32($k as i32);
            for t in $from..$from + 20 {
                let wt = if t < 16 {
                    w[t]
                } else {
                    // W[t] = rol1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), in a ring of 16.
                    let x = _mm512_ternarylogic_epi32::<0x96>(
                        w[(t - 3) & 15],
                        w[(t - 8) & 15],
                        w[(t - 14) & 15],
                    );
                    let x = _mm512_rol_epi32::<1>(_mm512_xor_si512(x, w[t & 15]));
                    w[t & 15] = x;
                    x
                };
                // 0xCA: b ? c : d; 0x96: b ^ c ^ d; 0xE8: majority of b, c, d.
                let f = _mm512_ternarylogic_epi32::<$f>(b, c, d);
                let sum = _mm512_add_epi32(_mm512_add_epi32(e, k), _mm512_add_epi32(wt, f));
                let t = _mm512_add_epi32(_mm512_rol_epi32::<5>(a), sum);
                e = d;
                d = c;
                c = _mm512_rol_epi32::<30>(b);
                b = a;
                a = t;
            }
        };
    }
    rounds!(0, 0xCA, K[0]);
    rounds!(20, 0x96, K[1]);
    rounds!(40, 0xE8, K[2]);
    rounds!(60, 0x96, K[3]);

    let state = [a, b, c, d, e];
    let mut words = [[0u32; 16]; 5];
    for (i, lane) in words.iter_mut().enumerate() {
        let v = _mm512_shuffle_epi8(_mm512_add_epi32(state[i], h0[i]), swap);
        // SAFETY: 64 bytes at each row of `words`.
        unsafe { _mm512_storeu_si512(lane.as_mut_ptr().cast(), v) };
    }
    for (j, hash) in out[..16].iter_mut().enumerate() {
        for (i, lane) in words.iter().enumerate() {
            hash.0[4 * i..4 * i + 4].copy_from_slice(&lane[j].to_ne_bytes());
        }
    }
}

/// Transposes sixteen rows of sixteen 32-bit words: word `t` of row `j` becomes lane `j`
/// of `rows[t]`. Unpacks within 128-bit lanes, then two shuffles of whole 128-bit lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose(rows: &mut [__m512i; 16]) {
    let r = *rows;
    // Pairs of rows, 32-bit words interleaved.
    let t: [__m512i; 16] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(x, y)
        } else {
            _mm512_unpackhi_epi32(x, y)
        }
    });
    // Fours of rows: u[4i + k], 128-bit lane L, holds word 4L + k of rows 4i..4i+3.
    let u: [__m512i; 16] = std::array::from_fn(|i| {
        let base = i & !3;
        let (x, y) = match i % 4 {
            0 | 1 => (t[base], t[base + 2]),
            _ => (t[base + 1], t[base + 3]),
        };
        if i % 2 == 0 {
            _mm512_unpacklo_epi64(x, y)
        } else {
            _mm512_unpackhi_epi64(x, y)
        }
    });
    for k in 0..4 {
        let (a, b, c, d) = (u[k], u[4 + k], u[8 + k], u[12 + k]);
        let v0 = _mm512_shuffle_i32x4::<0x44>(a, b); // a0 a1 b0 b1
        let v1 = _mm512_shuffle_i32x4::<0xEE>(a, b); // a2 a3 b2 b3
        let v2 = _mm512_shuffle_i32x4::<0x44>(c, d); // c0 c1 d0 d1
        let v3 = _mm512_shuffle_i32x4::<0xEE>(c, d); // c2 c3 d2 d3
        rows[k] = _mm512_shuffle_i32x4::<0x88>(v0, v2); // a0 b0 c0 d0
        rows[4 + k] = _mm512_shuffle_i32x4::<0xDD>(v0, v2); // a1 b1 c1 d1
        rows[8 + k] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        rows[12 + k] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::identity::block::padded;
    use sha1::{Digest, Sha1};

    #[test]
    fn sixteen_lanes_give_the_crate_digests() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: hash16 is not used here, nothing to test");
            return;
        }
        let mut rng = crate::synth::Rng::new(11);
        for round in 0..200 {
            let msgs: Vec<Vec<u8>> = (0..16)
                .map(|i| {
                    let len = if round == 0 {
                        i * 3
                    } else {
                        rng.below(56) as usize
                    };
                    (0..len).map(|_| rng.below(256) as u8).collect()
                })
                .collect();
            let blocks: [[u8; 64]; 16] = std::array::from_fn(|i| padded(&msgs[i]));
            let mut out = [IdentityHash([0; 20]); 16];
            // SAFETY: checked by `available`.
            unsafe { hash16(&blocks, &mut out) };
            for (m, h) in msgs.iter().zip(&out) {
                assert_eq!(h.0[..], Sha1::digest(m)[..], "{m:?}");
            }
        }
    }
}
