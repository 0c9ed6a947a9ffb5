//! `switchyard-loadtest`: placeholder until the load generator lands (issue: measure it).
fn main() {
    eprintln!("switchyard-loadtest: see `make bench`");
}
