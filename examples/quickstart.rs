//! Quick start: a supervised counter (grows as the runtime lands).
fn main() {
    println!("granary quickstart");
}
