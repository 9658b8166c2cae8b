//! Token propagation (`tknMode` bit 4, INTERFACES §2.1): an HLS or DASH player that was given
//! `?tkn=X` asks for its playlists and segments by the URLs in the playlists it got. Each
//! playlist and manifest served to a request with a token gets that token appended to the URLs it
//! lists, so the player's later requests carry it and stay in its viewer session (one USER_NEW,
//! one line in `clients`). With bit 8 the answer also sets a `tkn` cookie.

use mist_core::triggers::session_modes::{encode_token, TKN_APPEND};

/// HLS playlists.
pub const M3U8: &str = "application/vnd.apple.mpegurl";
/// DASH manifests.
pub const MPD: &str = "application/dash+xml";

/// `url` with `tkn=<token>` added to its query (unless it already has a `tkn`); `amp` separates
/// it from other parameters (`&amp;` in XML).
fn with_token(url: &str, enc: &str, amp: &str) -> String {
    if url.is_empty() {
        return url.to_string();
    }
    let (path, frag) = match url.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (url, None),
    };
    let mut o = String::with_capacity(url.len() + enc.len() + 5);
    o.push_str(path);
    match path.split_once('?') {
        Some((_, q))
            if q.split('&').any(|kv| {
                matches!(kv.strip_prefix("amp;").unwrap_or(kv), "tkn")
                    || kv.strip_prefix("amp;").unwrap_or(kv).starts_with("tkn=")
            }) => {}
        Some((_, "")) => {
            o.push_str("tkn=");
            o.push_str(enc);
        }
        Some(_) => {
            o.push_str(amp);
            o.push_str("tkn=");
            o.push_str(enc);
        }
        None => {
            o.push_str("?tkn=");
            o.push_str(enc);
        }
    }
    if let Some(f) = frag {
        o.push('#');
        o.push_str(f);
    }
    o
}

/// Appends the token to every `ATTR="…"` value of `line` whose attribute is in `attrs`.
fn quoted_attrs(line: &str, attrs: &[&str], enc: &str, amp: &str) -> String {
    let mut out = String::with_capacity(line.len() + 32);
    let mut rest = line;
    loop {
        // The nearest `NAME="` of the wanted attributes, preceded by a separator.
        let hit = attrs
            .iter()
            .filter_map(|a| {
                let pat = format!("{a}=\"");
                let mut from = 0;
                while let Some(i) = rest[from..].find(&pat) {
                    let at = from + i;
                    let sep_ok = at == 0
                        || matches!(
                            rest.as_bytes()[at - 1],
                            b' ' | b',' | b':' | b'\t' | b'\n' | b'<'
                        );
                    if sep_ok {
                        return Some((at, pat.len()));
                    }
                    from = at + pat.len();
                }
                None
            })
            .min();
        let Some((at, plen)) = hit else {
            out.push_str(rest);
            return out;
        };
        let vstart = at + plen;
        let Some(vlen) = rest[vstart..].find('"') else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..vstart]);
        out.push_str(&with_token(&rest[vstart..vstart + vlen], enc, amp));
        rest = &rest[vstart + vlen..];
    }
}

/// An HLS playlist with `tkn` on each URI line and each `URI="…"` attribute.
pub fn m3u8(body: &str, token: &str) -> String {
    let enc = encode_token(token);
    let mut out = String::with_capacity(body.len() + 64);
    for line in body.split_inclusive('\n') {
        let (text, eol) = match line.strip_suffix("\r\n") {
            Some(t) => (t, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            },
        };
        if text.starts_with('#') {
            if text.contains("URI=\"") {
                out.push_str(&quoted_attrs(text, &["URI"], &enc, "&"));
            } else {
                out.push_str(text);
            }
        } else if text.trim().is_empty() {
            out.push_str(text);
        } else {
            out.push_str(&with_token(text.trim(), &enc, "&"));
        }
        out.push_str(eol);
    }
    out
}

/// A DASH manifest with `tkn` on its segment template URLs (`media`, `initialization`) and
/// segment URLs (`SegmentURL media`, `sourceURL`).
pub fn mpd(body: &str, token: &str) -> String {
    let enc = encode_token(token);
    quoted_attrs(
        body,
        &["media", "initialization", "sourceURL"],
        &enc,
        "&amp;",
    )
}

/// The body to send for a playlist/manifest answer of a request with `token`, when `tknMode`
/// asks for propagation; `None` leaves the answer as it is.
pub fn propagate(ctype: &str, body: &[u8], token: &str, tkn_mode: u8) -> Option<String> {
    if token.is_empty() || tkn_mode & TKN_APPEND == 0 {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    match ctype {
        M3U8 => Some(m3u8(text, token)),
        MPD => Some(mpd(text, token)),
        _ => None,
    }
}

/// The `Set-Cookie` value of `tknMode` bit 8.
pub fn cookie(token: &str) -> String {
    format!(
        "tkn={}; Max-Age={}",
        encode_token(token),
        mist_core::triggers::session_modes::TKN_COOKIE_AGE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_and_media_playlists_carry_the_token() {
        let master = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"2/index.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\n1_2/index.m3u8\r\n";
        let out = m3u8(master, "v 1");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"2/index.m3u8?tkn=v%201\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\n1_2/index.m3u8?tkn=v%201\r\n"
        );
        let media = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PART:DURATION=0.5,URI=\"0.0.m4s\",INDEPENDENT=YES\n#EXTINF:2.0,\n5_1000.ts\nseg.ts?a=1\nx.ts?tkn=old\n";
        let out = m3u8(media, "t");
        assert!(out.contains("#EXT-X-MAP:URI=\"init.mp4?tkn=t\"\n"), "{out}");
        assert!(
            out.contains("URI=\"0.0.m4s?tkn=t\",INDEPENDENT=YES"),
            "{out}"
        );
        assert!(out.contains("\n5_1000.ts?tkn=t\n"), "{out}");
        assert!(out.contains("\nseg.ts?a=1&tkn=t\n"), "{out}");
        assert!(out.contains("\nx.ts?tkn=old\n"), "{out}");
        // GROUP-ID and NAME are not URLs.
        assert!(!out.contains("GROUP-ID=\"a?"), "{out}");
    }

    #[test]
    fn manifests_carry_the_token() {
        let m = r#"<SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Time$.m4s" startNumber="0"/>"#;
        let out = mpd(m, "t");
        assert!(
            out.contains(r#"initialization="$RepresentationID$/init.mp4?tkn=t""#),
            "{out}"
        );
        assert!(
            out.contains(r#"media="$RepresentationID$/$Time$.m4s?tkn=t""#),
            "{out}"
        );
        let out = mpd(r#"<SegmentURL media="a.m4s?x=1"/>"#, "t");
        assert_eq!(out, r#"<SegmentURL media="a.m4s?x=1&amp;tkn=t"/>"#);
        // mimeType is no media attribute.
        let out = mpd(r#"<AdaptationSet mimeType="video/mp4">"#, "t");
        assert_eq!(out, r#"<AdaptationSet mimeType="video/mp4">"#);
    }

    #[test]
    fn only_with_a_token_and_bit_4() {
        assert!(propagate(M3U8, b"a.ts\n", "", 15).is_none());
        assert!(propagate(M3U8, b"a.ts\n", "t", 11).is_none());
        assert!(propagate("video/mp2t", b"a.ts\n", "t", 15).is_none());
        assert_eq!(
            propagate(M3U8, b"a.ts\n", "t", 4).as_deref(),
            Some("a.ts?tkn=t\n")
        );
        assert_eq!(cookie("a b"), "tkn=a%20b; Max-Age=600");
    }
}
