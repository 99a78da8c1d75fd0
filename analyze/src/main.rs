fn main() {
    eprintln!("rdlv: not built yet");
    std::process::exit(2);
}
