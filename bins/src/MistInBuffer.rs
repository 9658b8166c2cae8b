fn main() {
    eprintln!("MistInBuffer: not built yet");
    std::process::exit(1);
}
