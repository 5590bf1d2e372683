//! Rough speed of `filetype::detect` over 1 MiB buffers (random bytes, text with
//! many `<`): `cargo run --release -p moat-formats --example detect_speed`.

use std::time::Instant;

fn main() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let text: Vec<u8> = b"if (a <b && c < d) { x = y <z; } // <a comment\n"
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect();
    for (name, data) in [("random", &random), ("text with '<'", &text)] {
        let start = Instant::now();
        let rounds = 50;
        let mut last = None;
        for _ in 0..rounds {
            last = Some(moat_formats::filetype::detect(std::hint::black_box(data)));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: {:?}, {:.0} MB/s",
            last.unwrap(),
            rounds as f64 * data.len() as f64 / secs / 1e6
        );
    }
}
