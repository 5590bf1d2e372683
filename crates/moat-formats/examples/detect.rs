//! Prints each file's type as `moat_formats::filetype::detect` decides it from the
//! whole file: `cargo run -p moat-formats --example detect -- FILE...`.

fn main() {
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(data) => {
                let ty = moat_formats::filetype::detect(&data);
                println!("{path}: {} (target {})", ty.clamav_name(), ty.target());
            }
            Err(e) => println!("{path}: {e}"),
        }
    }
}
