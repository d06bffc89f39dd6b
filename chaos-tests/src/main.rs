//! `warrant-chaos`: the long tier's command line.
fn main() {}
