//! granary-bench: the benchmark binary.
fn main() {
    println!("granary-bench");
}
