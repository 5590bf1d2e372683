//! The vector scans against the scalar one (the reference), and every scan against
//! the atoms' true occurrences (found by a naive search): same positions, same
//! windows, same order, on random buffers of every length up to 200, random sparse
//! and dense filters, and the real union filters of ../shared/sigs/clamav-real.

use super::*;

/// Every kernel this CPU runs, the scalar one first.
fn kernels() -> Vec<Kernel> {
    let mut kernels = vec![Kernel::Scalar];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        kernels.push(Kernel::Avx2);
    }
    kernels
}

fn candidates(kernel: Kernel, data: &[u8], filter: &Filter) -> Vec<(usize, u32)> {
    let mut found = Vec::new();
    for_each_candidate_with(kernel, data, filter, |window, pos| {
        found.push((pos, window))
    });
    found
}

/// Checks that every kernel gives the scalar kernel's candidates, and that these
/// include every occurrence of every atom that has four bytes left (`atoms`, the
/// ones `filter` was built from; none when the filter was built otherwise).
fn check(data: &[u8], filter: &Filter, atoms: &[Vec<u8>]) {
    let reference = candidates(Kernel::Scalar, data, filter);
    for kernel in kernels() {
        assert_eq!(
            candidates(kernel, data, filter),
            reference,
            "{kernel:?} against the scalar scan, {} bytes",
            data.len()
        );
    }
    assert!(reference.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    for &(pos, window) in &reference {
        assert_eq!(window, window_of(&data[pos..pos + 4]), "window at {pos}");
    }
    for atom in atoms {
        for pos in 0..data.len().saturating_sub(3) {
            if data[pos..].starts_with(atom) {
                assert!(
                    reference.binary_search_by_key(&pos, |c| c.0).is_ok(),
                    "atom {atom:02x?} at {pos} of {} bytes missed",
                    data.len()
                );
            }
        }
    }
}

/// A small seeded generator (xorshift64*): the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Bytes from a small alphabet when `narrow` (so that atoms recur), else any.
    fn bytes(&mut self, len: usize, narrow: bool) -> Vec<u8> {
        (0..len)
            .map(|_| match narrow {
                true => b"aeinrst "[self.below(8)],
                false => self.next() as u8,
            })
            .collect()
    }
}

/// Atoms of 2 to 4 bytes: some cut from `data` (true occurrences), the rest random.
fn atoms_for(rng: &mut Rng, data: &[u8], count: usize, narrow: bool) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            let len = MIN_ATOM + rng.below(MAX_ATOM - MIN_ATOM + 1);
            if data.len() >= len && rng.below(2) == 0 {
                let at = rng.below(data.len() - len + 1);
                data[at..at + len].to_vec()
            } else {
                rng.bytes(len, narrow)
            }
        })
        .collect()
}

fn filter_of(atoms: &[Vec<u8>]) -> Box<Filter> {
    let numbered: Vec<(Vec<u8>, u32)> = atoms.iter().cloned().zip(0..).collect();
    let prefilter = Prefilter::new(&numbered);
    let mut filter = Filter::empty();
    filter.add(&prefilter.filter);
    filter
}

#[test]
fn every_length_up_to_200_with_sparse_and_dense_filters() {
    let mut rng = Rng(0x5EED_7E57);
    let mut full = Filter::empty();
    full.coarse.fill(u64::MAX);
    for len in 0..200 {
        for narrow in [false, true] {
            let data = rng.bytes(len, narrow);
            check(&data, &Filter::empty(), &[]);
            check(&data, &full, &[]);
            // From a handful of atoms to thousands (a dense coarse map).
            for count in [1, 8, 64, 4096] {
                let atoms = atoms_for(&mut rng, &data, count, narrow);
                check(&data, &filter_of(&atoms), &atoms);
            }
            // Only 2- and 3-byte atoms: the short map alone.
            let short: Vec<Vec<u8>> = atoms_for(&mut rng, &data, 32, narrow)
                .into_iter()
                .filter(|a| a.len() < MAX_ATOM)
                .collect();
            check(&data, &filter_of(&short), &short);
        }
    }
}

#[test]
fn atoms_at_the_buffer_ends() {
    let mut rng = Rng(0xE4D5);
    for len in 4..80 {
        let mut data = rng.bytes(len, false);
        let atoms: Vec<Vec<u8>> = (MIN_ATOM..=MAX_ATOM)
            .flat_map(|n| [data[..n].to_vec(), data[len - n..].to_vec()])
            .chain([
                data[len - 4..].to_vec(),
                data[len - 5.min(len)..len - 1].to_vec(),
            ])
            .collect();
        let filter = filter_of(&atoms);
        check(&data, &filter, &atoms);
        // The same bytes at every alignment of the loads.
        data.splice(0..0, rng.bytes(7, false));
        for skip in 0..8 {
            check(&data[skip..], &filter, &atoms);
        }
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn kernels_agree(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            atoms in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 2..=4), 0..200),
            planted in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..8),
        ) {
            let mut data = data;
            for (which, at) in planted {
                if let Some(atom) = (!atoms.is_empty()).then(|| which.get(&atoms)) {
                    if data.len() >= atom.len() {
                        let at = at.index(data.len() - atom.len() + 1);
                        data[at..at + atom.len()].copy_from_slice(atom);
                    }
                }
            }
            check(&data, &filter_of(&atoms), &atoms);
        }
    }
}

/// The union filters the engine builds from all of ../shared/sigs/clamav-real, taken
/// from this thread's cache ([`with_union`]) after scanning `inputs` one by one.
fn real_unions(inputs: &[&[u8]]) -> Option<Vec<Box<Filter>>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/sigs/clamav-real"
    );
    let dir = std::path::Path::new(dir);
    if !dir.is_dir() {
        assert!(
            std::env::var("MOAT_REQUIRE_SHARED").as_deref() != Ok("1"),
            "../shared absent but MOAT_REQUIRE_SHARED=1"
        );
        println!("skipped: ../shared absent ({})", dir.display());
        return None;
    }
    let engine = crate::Engine::new(moat_sigs::Database::load(&[dir]).expect("loads"));
    let unions = inputs
        .iter()
        .map(|input| {
            engine.scan_bytes(input);
            UNION.with(|cell| {
                let cache = cell.borrow();
                let cached = cache.1.as_ref().expect("a union was built");
                let mut union = Filter::empty();
                union.add(cached);
                union
            })
        })
        .collect();
    Some(unions)
}

#[test]
fn real_signatures_union_filters() {
    let program = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let program = &program[..program.len().min(4 << 20)];
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/sigs/clamav-real"
    );
    let text = std::fs::read(format!("{dir}/daily.ndb")).unwrap_or_default();
    let pe_body: Vec<u8> = (0..1 << 16).map(|i| 0x80 | (i * 13 % 127) as u8).collect();
    let pe = moat_testkit::pe32(&pe_body);
    let Some(mut unions) = real_unions(&[program, &text, &pe]) else {
        return;
    };
    let mut all = Filter::empty();
    unions.iter().for_each(|u| all.add(u));
    unions.push(all);
    let mut rng = Rng(0x4EA1);
    for filter in &unions {
        let passing = filter.coarse.iter().map(|w| w.count_ones()).sum::<u32>();
        let short = filter.short.iter().map(|w| w.count_ones()).sum::<u32>();
        println!("a real union: {passing} coarse bits, {short} short bits set");
        // The ELF union has about 1,000 of its 2^18 coarse bits set, the text one
        // 1,300; the last union of the PE's scan 100.
        assert!(passing >= 50, "a real filter, not an empty one");
        for input in [program, &text, &pe] {
            check(input, filter, &[]);
            for _ in 0..200 {
                let (at, len) = (rng.below(input.len()), rng.below(200));
                check(&input[at..(at + len).min(input.len())], filter, &[]);
            }
        }
    }
}
