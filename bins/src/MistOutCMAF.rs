//! MistOutCMAF: one stream as CMAF (DASH MPD + fMP4 HLS, one set of fragments) written to a
//! directory; over HTTP, `/cmaf/$/index.mpd` and `/cmaf/$/index.m3u8` are served by MistOutHTTP
//! from the same code.

use mist_bins::http_out::to_dir;

fn main() {
    let caps = to_dir::capabilities(
        "CMAF",
        "CMAF (DASH and fMP4 HLS): MistOutCMAF -s STREAM /var/www/live/index.mpd writes the manifests and fragments to a directory; /cmaf/$/index.mpd and /cmaf/$/index.m3u8 over HTTP",
        &["/cmaf/$/index.mpd", "/cmaf/$/index.m3u8"],
        &["/*.mpd"],
    );
    std::process::exit(to_dir::main("MistOutCMAF", "cmaf", caps));
}
