fn main() {
    eprintln!("rdlv-snap: not built yet");
    std::process::exit(2);
}
