//! MistOutHLS: one stream as HLS (MPEG-TS segments) written to a directory; over HTTP,
//! `/hls/$/index.m3u8` is served by MistOutHTTP from the same code.

use mist_bins::http_out::to_dir;

fn main() {
    let caps = to_dir::capabilities(
        "HLS",
        "HLS with MPEG-TS segments: MistOutHLS -s STREAM /var/www/live/index.m3u8 writes the playlists and segments to a directory; /hls/$/index.m3u8 over HTTP",
        &["/hls/$/index.m3u8"],
        &["/*.m3u8"],
    );
    std::process::exit(to_dir::main("MistOutHLS", "hls", caps));
}
