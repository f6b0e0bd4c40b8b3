//! The per-identity costs behind the filter choice, measured: SHA-1 through the `Digest`
//! API against one padded block through the compression function, and a lookup in the
//! `bloomfilter` crate against leakwatch's blocked filter, at the same false-positive rate
//! and directory size.
//!
//!     cargo bench --bench filter            # 1,000,000 accounts
//!     cargo bench --bench filter -- 10000000
//!
//! Prints ns per operation and each filter's observed false-positive rate.

use std::hint::black_box;
use std::time::Instant;

use leakwatch::filter::AccountFilter;
use leakwatch::identity::block::hash_blocks;
use leakwatch::identity::IdentityHash;

const LOOKUPS: usize = 10_000_000;
const RATE: f64 = 1e-6;

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}.{i}@example.net")
}

fn ns_per(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let accounts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let members: Vec<IdentityHash> = (0..accounts)
        .map(|i| IdentityHash::of(&key("m", i)))
        .collect();
    let outsiders: Vec<IdentityHash> = (0..LOOKUPS)
        .map(|i| IdentityHash::of(&key("o", i)))
        .collect();
    let keys: Vec<String> = (0..LOOKUPS / 10).map(|i| key("k", i)).collect();

    // SHA-1 of the same keys, both ways.
    let digest = ns_per(keys.len(), || {
        for k in &keys {
            black_box(IdentityHash::of(black_box(k)));
        }
    });
    let blocks: Vec<[u8; 64]> = keys
        .iter()
        .map(|k| {
            let mut b = [0u8; 64];
            b[..k.len()].copy_from_slice(k.as_bytes());
            b[k.len()] = 0x80;
            b[56..].copy_from_slice(&(k.len() as u64 * 8).to_be_bytes());
            b
        })
        .collect();
    let mut out = [IdentityHash([0; 20]); 16];
    let block = ns_per(keys.len(), || {
        for chunk in blocks.chunks(16) {
            hash_blocks(black_box(chunk), &mut out);
            black_box(&out);
        }
    });
    // The same blocks one compression at a time, as `hash_blocks` does without the SHA
    // extensions' two-chain path.
    let mut state_out = [0u32; 5];
    let single = ns_per(keys.len(), || {
        for b in &blocks {
            let mut state = [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ];
            sha1::block_api::compress(&mut state, std::slice::from_ref(black_box(b)));
            state_out = black_box(state);
        }
    });
    black_box(state_out);
    // The SHA extensions' paths by themselves: two chains and four chains side by side.
    let (mut two, mut four, mut sixteen) = (f64::NAN, f64::NAN, f64::NAN);
    #[cfg(target_arch = "x86_64")]
    if leakwatch::identity::sha_ni::available() {
        use leakwatch::identity::sha_ni::{hash2, hash4};
        let [o0, o1, o2, o3] = &mut out[..4] else {
            unreachable!()
        };
        two = ns_per(keys.len(), || {
            for b in blocks.chunks_exact(2) {
                // SAFETY: `available` said yes.
                unsafe { hash2([&b[0], &b[1]], [o0, o1]) };
                black_box(&o0);
            }
        });
        four = ns_per(keys.len(), || {
            for b in blocks.chunks_exact(4) {
                // SAFETY: `available` said yes.
                unsafe { hash4([&b[0], &b[1], &b[2], &b[3]], [o0, o1, o2, o3]) };
                black_box(&o0);
            }
        });
    }
    #[cfg(target_arch = "x86_64")]
    if leakwatch::identity::sha_x16::available() {
        sixteen = ns_per(keys.len(), || {
            for b in blocks.chunks_exact(16) {
                let b: &[[u8; 64]; 16] = b.try_into().expect("16");
                // SAFETY: `available` said yes.
                unsafe { leakwatch::identity::sha_x16::hash16(b, &mut out) };
                black_box(&out);
            }
        });
    }
    let mut check = [IdentityHash([0; 20])];
    hash_blocks(&blocks[..1], &mut check);
    assert_eq!(
        check[0],
        IdentityHash::of(&keys[0]),
        "block hashing is SHA-1"
    );

    // The named crate.
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(b"leakwatch-bench-");
    seed[16..].copy_from_slice(b"bloomfilter-seed");
    let mut bloom =
        bloomfilter::Bloom::<[u8; 20]>::new_for_fp_rate_with_seed(accounts, RATE, &seed)
            .expect("bloom");
    for h in &members {
        bloom.set(&h.0);
    }
    let mut fp_crate = 0;
    let crate_ns = ns_per(outsiders.len(), || {
        for h in &outsiders {
            fp_crate += bloom.check(black_box(&h.0)) as usize;
        }
    });

    // Ours, looked up in batches of 16 with prefetch as the scan does.
    let ours = AccountFilter::build(members.iter().copied(), RATE, 1).expect("filter");
    let mut fp_ours = 0;
    let ours_ns = ns_per(outsiders.len(), || {
        for batch in outsiders.chunks(16) {
            for h in batch {
                ours.prefetch(h);
            }
            for h in batch {
                fp_ours += ours.may_contain(black_box(h)) as usize;
            }
        }
    });
    assert!(members.iter().all(|h| ours.may_contain(h)));

    println!("{accounts} accounts, false-positive rate {RATE:e}, {LOOKUPS} lookups of strangers");
    println!("| operation                               | ns/op | memory   | observed rate |");
    println!("|-----------------------------------------|-------|----------|---------------|");
    println!(
        "| SHA-1, Digest API (`Sha1::digest`)      | {digest:5.1} |          |               |"
    );
    println!(
        "| SHA-1, padded block, one at a time      | {single:5.1} |          |               |"
    );
    println!("| SHA-1, SHA-NI, two chains               | {two:5.1} |          |               |");
    println!("| SHA-1, SHA-NI, four chains              | {four:5.1} |          |               |");
    println!(
        "| SHA-1, AVX-512, sixteen lanes           | {sixteen:5.1} |          |               |"
    );
    println!(
        "| SHA-1, padded blocks, `hash_blocks`     | {block:5.1} |          |               |"
    );
    println!(
        "| lookup, `bloomfilter` crate (SipHash)   | {crate_ns:5.1} | {:5.1} MB | {:13.1e} |",
        bloom.len() as f64 / 8e6,
        fp_crate as f64 / LOOKUPS as f64
    );
    println!(
        "| lookup, leakwatch blocked filter (k={:2}) | {ours_ns:5.1} | {:5.1} MB | {:13.1e} |",
        ours.hashes_per_key(),
        ours.size_bytes() as f64 / 1e6,
        fp_ours as f64 / LOOKUPS as f64
    );
}
