//! AMF0 decoding; whatever decodes re-encodes to bytes that decode to the same encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mist_media::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok(vals) = amf0::decode_all(data) {
        let once = amf0::encode_all(&vals);
        let again = amf0::decode_all(&once).expect("our own encoding decodes");
        assert_eq!(amf0::encode_all(&again), once);
    }
    let _ = mist_media::amf0::Amf0::decode(data);
});
