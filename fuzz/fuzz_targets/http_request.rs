//! The HTTP/1.1 request parser of mist-net (API, MistOutHTTP): pipelined requests out of arbitrary
//! bytes, with the query, percent-decoding and Range helpers applied to what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mist_net::http::{parse_query, parse_request, percent_decode, Limits};
use mist_net::server::parse_range;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut rest = data;
    while let Ok(Some((req, used))) = parse_request(rest, &limits) {
        assert!(used > 0 && used <= rest.len(), "parser consumed {used} of {}", rest.len());
        let _ = req.query_pairs();
        let _ = req.keep_alive();
        if let Some(r) = req.header("range") {
            if let Ok(Some((a, b))) = parse_range(r, 1000) {
                assert!(a <= b && b < 1000);
            }
        }
        rest = &rest[used..];
    }
    let text = String::from_utf8_lossy(data);
    let _ = parse_query(&text);
    let _ = percent_decode(&text, true);
});
