//! `bgw-agent`: not built yet; see the README.
fn main() {
    if std::env::args().any(|a| a == "--version") {
        println!("bgw-agent {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    println!("bgw-agent: usage: bgw-agent [--config FILE] (not implemented yet)");
}
