//! MistOutFLV: one stream as FLV to stdout or a file; over HTTP, `/$.flv` is served by
//! MistOutHTTP with the same muxing code.

use mist_bins::http_out;

use http_out::mux::Format;

fn main() {
    let caps = http_out::standalone::capabilities(
        "FLV",
        "FLV output: MistOutFLV -s STREAM out.flv records the stream; /$.flv over HTTP",
        &["/$.flv"],
        &["/*.flv"],
        Format::Flv,
    );
    std::process::exit(http_out::standalone::main("MistOutFLV", Format::Flv, caps));
}
