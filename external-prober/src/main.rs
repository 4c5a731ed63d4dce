//! `bgw-prober`: not built yet; see the README.
fn main() {
    if std::env::args().any(|a| a == "--version") {
        println!("bgw-prober {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    println!("bgw-prober: usage: bgw-prober [--config FILE] (not implemented yet)");
}
