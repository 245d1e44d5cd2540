fn main() {
    println!("swh-scheduler");
}
