fn main() {
    std::process::exit(swh_scheduler::cli::main());
}
