//! MistOutMP4: one live stream as fragmented MP4 to stdout or a file; over HTTP, `/$.mp4` and
//! `/$.fmp4` are served by MistOutHTTP with the same muxing code.

use mist_bins::http_out;

use http_out::mux::Format;

fn main() {
    let caps = http_out::standalone::capabilities(
        "MP4",
        "Fragmented MP4 output: MistOutMP4 -s STREAM out.mp4; /$.mp4 and /$.fmp4 over HTTP",
        &["/$.mp4", "/$.fmp4", "/$.3gp"],
        &["/*.mp4", "/*.fmp4"],
        Format::Fmp4,
    );
    std::process::exit(http_out::standalone::main("MistOutMP4", Format::Fmp4, caps));
}
