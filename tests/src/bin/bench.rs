//! Benchmarks that print figures (see the README's "Performance" section).
fn main() {
    println!("bench: nothing measured yet");
}
