fn main() {
    eprintln!("MistController: not built yet");
    std::process::exit(1);
}
