//! RTSP framing and the server session: the input is split in chunks of a size the first byte
//! picks; every item is decoded, every request goes through a `ServerSession` (its questions
//! answered yes), and every message must serialise and decode again to the same start line and
//! body. The decoder never holds more than a head, a body and an interleaved frame. Its limits are
//! a quarter of the defaults, so that small inputs (and fast runs) reach every one of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::rtsp::server::PlayInfo;
use mist_media::rtsp::{
    npt_range, npt_start_ms, Answer, Ask, AuthCheck, Authenticator, BasicCredentials, Decoder,
    DigestCredentials, Item, Limits, Message, ServerConfig, ServerSession, Step, Transport,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let chunk = (sel as usize % 64) + 1;
    // The default limits divided by four (the same code with smaller numbers), so that inputs of
    // a few KiB (runs use -max_len=8192) reach each of them: line, head, header count, body.
    let limits = Limits {
        max_headers: 16,
        max_line: 1024,
        max_head: 4096,
        max_body: 16384,
    };
    let mut d = Decoder::new(limits);
    let auth = (sel & 0x80 != 0).then(|| Authenticator {
        user: "u".into(),
        password: "p".into(),
        realm: "r".into(),
        nonce: "n".into(),
        allow_basic: sel & 0x40 != 0,
    });
    let mut s = ServerSession::new(ServerConfig {
        auth,
        ..ServerConfig::default()
    });
    for piece in rest.chunks(chunk) {
        d.push(piece);
        loop {
            let item = match d.next_item() {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(_) => return,
            };
            match item {
                Item::Interleaved { channel, data } => {
                    assert!(data.len() <= 65535);
                    let _ = s.channel(channel);
                }
                Item::Message(m) => {
                    let bytes = match &m {
                        Message::Request(r) => r.to_bytes(),
                        Message::Response(r) => r.to_bytes(),
                    };
                    let mut again = Decoder::new(Limits {
                        max_head: 1 << 20,
                        max_headers: 1 << 10,
                        ..limits
                    });
                    again.push(&bytes);
                    match (&m, again.next_item()) {
                        (Message::Request(a), Ok(Some(Item::Message(Message::Request(b))))) => {
                            assert_eq!(
                                (&a.method, a.version, &a.body),
                                (&b.method, b.version, &b.body)
                            );
                        }
                        (Message::Response(a), Ok(Some(Item::Message(Message::Response(b))))) => {
                            assert_eq!(
                                (a.status, a.version, &a.body),
                                (b.status, b.version, &b.body)
                            );
                        }
                        (_, other) => {
                            // A request URI with spaces is sent without them; anything else must read back.
                            if let Message::Request(r) = &m {
                                if r.uri.chars().any(char::is_whitespace) {
                                    continue;
                                }
                            }
                            panic!("{m:?} did not read back: {other:?}");
                        }
                    }
                    let Message::Request(req) = m else { continue };
                    for t in req.headers.get_all("Transport") {
                        if let Ok(list) = Transport::parse_list(t) {
                            for t in list {
                                // What we write reads back, and writing that again is stable.
                                let text = t.to_string();
                                let again = Transport::parse(&text).expect("our Transport parses");
                                assert_eq!(again.to_string(), text);
                            }
                        }
                    }
                    if let Some(a) = req.headers.get("Authorization") {
                        if let Ok(c) = DigestCredentials::parse(a) {
                            let _ = c.verify(req.method.as_str(), "p");
                        }
                        let _ = BasicCredentials::parse(a);
                        // The server-side check: whatever it says, a refusal's user name is
                        // what the header carried (bounded by the header), never more.
                        let probe = Authenticator::new("u", "p", "r", "n".into(), true);
                        if let AuthCheck::Refused {
                            user: Some(u),
                            scheme,
                        } = probe.verify(req.method.as_str(), Some(a))
                        {
                            assert!(u.len() <= a.len() * 3);
                            assert!(scheme.chars().count() <= 16);
                        }
                    }
                    for r in req.headers.get_all("Range") {
                        // A start we read back from what we write is the same start.
                        if let Ok(Some(ms)) = npt_start_ms(r) {
                            assert_eq!(npt_start_ms(&npt_range(ms)), Ok(Some(ms)));
                        }
                    }
                    let step = s.handle(&req);
                    let _ = s.take_refusal();
                    if let Step::Ask(ask) = step {
                        if sel & 0x20 != 0 {
                            // Credentials learned only now (as the edge does for a stream that
                            // wants them): either a 401 or still pending.
                            s.set_auth(Some(Authenticator::new("u", "p", "r", "m".into(), false)));
                            if let Some(r) = s.recheck_pending() {
                                assert_eq!(r.status, 401);
                                continue;
                            }
                        }
                        let answer = match ask {
                            Ask::Describe { .. } => Answer::Describe(Ok("v=0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=1\r\nm=audio 0 RTP/AVP 0\r\n".into())),
                            Ask::Announce { .. } => Answer::Announce(Ok(())),
                            Ask::Setup { transport, .. } => Answer::Setup(Ok(transport)),
                            Ask::Play { .. } => Answer::Play(Ok(PlayInfo { range: None, rtp_info: vec![(0, 1, 2), (5, 1, 2)] })),
                            Ask::Record => Answer::Record(Ok(())),
                        };
                        let r = s.answer(answer);
                        assert!(r.status >= 100);
                    }
                    while s.poll_event().is_some() {}
                    assert!(s.tracks().len() <= 32);
                }
            }
        }
        assert!(d.buffered() <= limits.max_head + limits.max_body + 65_539 + chunk);
    }
});
