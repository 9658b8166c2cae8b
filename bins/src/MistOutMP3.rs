//! MistOutMP3: one stream's audio as MP3 frames to stdout or a file; over HTTP,
//! `/$.mp3` is served by MistOutHTTP with the same muxing code.

use mist_bins::http_out;

use http_out::mux::Format;

fn main() {
    let caps = http_out::standalone::capabilities(
        "MP3",
        "MP3 audio: MistOutMP3 -s STREAM - writes the stream's audio to stdout; /$.mp3 over HTTP",
        &["/$.mp3"],
        &["/*.mp3"],
        Format::Mp3,
    );
    std::process::exit(http_out::standalone::main("MistOutMP3", Format::Mp3, caps));
}
