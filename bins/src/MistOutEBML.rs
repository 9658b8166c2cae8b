//! MistOutEBML: one stream as Matroska (live mode) to stdout or a file; over HTTP, `/$.mkv` and
//! `/$.webm` are served by MistOutHTTP with the same muxing code.

use mist_bins::http_out;

use http_out::mux::Format;

fn main() {
    let caps = http_out::standalone::capabilities(
        "EBML",
        "Matroska/WebM output: MistOutEBML -s STREAM out.mkv; /$.mkv and /$.webm over HTTP",
        &["/$.mkv", "/$.webm"],
        &["/*.mkv", "/*.webm", "mkv-exec:*"],
        Format::Mkv,
    );
    std::process::exit(http_out::standalone::main("MistOutEBML", Format::Mkv, caps));
}
