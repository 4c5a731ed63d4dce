//! `bgw-checker`: not built yet; see the README.
fn main() {
    if std::env::args().any(|a| a == "--version") {
        println!("bgw-checker {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    println!("bgw-checker: usage: bgw-checker [--config FILE] (not implemented yet)");
}
