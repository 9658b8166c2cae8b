//! MistOutTS: one stream as MPEG-TS to stdout or a file; over HTTP, `/$.ts` is served by
//! MistOutHTTP with the same muxing code.

use mist_bins::http_out;

use http_out::mux::Format;

fn main() {
    let caps = http_out::standalone::capabilities(
        "TS",
        "MPEG-TS output: MistOutTS -s STREAM - writes the stream to stdout; pushes to tsudp://, tsrtp://, tstcp://, http(s):// (PUT) and ts-exec:; /$.ts over HTTP",
        &["/$.ts"],
        &["/*.ts", "ts-exec:*", "tsudp://*", "tsrtp://*", "tstcp://*"],
        Format::Ts,
    );
    std::process::exit(http_out::standalone::main("MistOutTS", Format::Ts, caps));
}
