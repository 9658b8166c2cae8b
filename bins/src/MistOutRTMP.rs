fn main() {
    eprintln!("MistOutRTMP: not built yet");
    std::process::exit(1);
}
