//! MistOutAAC: one stream's audio as AAC in ADTS frames to stdout or a file; over HTTP,
//! `/$.aac` is served by MistOutHTTP with the same muxing code.

use mist_bins::http_out;

use http_out::mux::Format;

fn main() {
    let caps = http_out::standalone::capabilities(
        "AAC",
        "AAC audio (ADTS): MistOutAAC -s STREAM - writes the stream's audio to stdout; /$.aac over HTTP",
        &["/$.aac"],
        &["/*.aac"],
        Format::Aac,
    );
    std::process::exit(http_out::standalone::main("MistOutAAC", Format::Aac, caps));
}
