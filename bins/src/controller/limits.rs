//! Resource caps the controller applies before it starts an input (docs/security.md):
//!
//! - `inputs`: inputs (buffers and VoD inputs) running at once, all streams together (default
//!   1000);
//! - `live_streams`: live streams (buffers of `push://` streams) running at once, all streams
//!   together (default 1000);
//! - `wildcard_children`: streams `base+anything` running at once for one base stream (default
//!   100): without it every `live+N` a publisher invents gets its own buffer process;
//! - `file_inputs`: inputs running at once for one file (VoD) stream, the base and its `+`
//!   children together (default 10): every `vod+N` of a file stream loads the same file again
//!   (TS, FLV and Matroska files are copied whole into shared memory).
//!
//! All are read from the config's `limits` object (`{"limits": {"inputs": 50}}` under `config`);
//! 0 means no limit. Hitting one is logged and the request refused.

use serde_json::Value;

/// Default for `limits.inputs`.
pub const DEFAULT_INPUTS: usize = 1000;
/// Default for `limits.live_streams`.
pub const DEFAULT_LIVE_STREAMS: usize = 1000;
/// Default for `limits.wildcard_children`.
pub const DEFAULT_WILDCARD_CHILDREN: usize = 100;
/// Default for `limits.file_inputs`.
pub const DEFAULT_FILE_INPUTS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub inputs: usize,
    pub live_streams: usize,
    pub wildcard_children: usize,
    pub file_inputs: usize,
}

/// Which cap refused an input; the text names the config key an operator would raise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    /// `limits.inputs`: inputs running at once, all streams together.
    #[error("input limit reached ({limit} running; config limits.inputs)")]
    Inputs {
        /// The cap (as many are running).
        limit: usize,
    },
    /// `limits.live_streams`: live buffers running at once.
    #[error("live stream limit reached ({limit} running; config limits.live_streams)")]
    LiveStreams {
        /// The cap.
        limit: usize,
    },
    /// `limits.wildcard_children`: `base+…` streams of one base.
    #[error("wildcard stream limit of {base} reached ({limit} running; config limits.wildcard_children)")]
    WildcardChildren {
        /// The base stream.
        base: String,
        /// The cap.
        limit: usize,
    },
    /// `limits.file_inputs`: inputs of one file stream.
    #[error(
        "input limit of file stream {base} reached ({limit} running; config limits.file_inputs)"
    )]
    FileInputs {
        /// The base (file) stream.
        base: String,
        /// The cap.
        limit: usize,
    },
}

/// A running input as the limits see it: its stream and whether it is live (a `push://` buffer).
#[derive(Debug, Clone, Copy)]
pub struct Running<'a> {
    pub stream: &'a str,
    pub live: bool,
}

impl Limits {
    /// The limits of a config's `limits` object (missing or invalid entries: the defaults).
    pub fn from_config(limits: Option<&Value>) -> Limits {
        let get = |k: &str, d: usize| {
            limits
                .and_then(|l| l.get(k))
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .unwrap_or(d)
        };
        Limits {
            inputs: get("inputs", DEFAULT_INPUTS),
            live_streams: get("live_streams", DEFAULT_LIVE_STREAMS),
            wildcard_children: get("wildcard_children", DEFAULT_WILDCARD_CHILDREN),
            file_inputs: get("file_inputs", DEFAULT_FILE_INPUTS),
        }
    }

    /// May an input for `stream` (`live`: a `push://` buffer) start, with the inputs of
    /// `running` streams already up?
    pub fn check<'a>(
        &self,
        stream: &str,
        live: bool,
        running: impl Iterator<Item = Running<'a>>,
    ) -> Result<(), LimitReached> {
        let base = mist_core::names::base_name(stream);
        let wild = mist_core::names::wildcard(stream).is_some();
        let (mut all, mut lives, mut children, mut of_file) = (0usize, 0usize, 0usize, 0usize);
        for r in running {
            all += 1;
            lives += r.live as usize;
            let same_base = mist_core::names::base_name(r.stream) == base;
            if wild && same_base && r.stream.contains('+') {
                children += 1;
            }
            if !live && !r.live && same_base {
                of_file += 1;
            }
        }
        if self.inputs > 0 && all >= self.inputs {
            return Err(LimitReached::Inputs { limit: self.inputs });
        }
        if live && self.live_streams > 0 && lives >= self.live_streams {
            return Err(LimitReached::LiveStreams {
                limit: self.live_streams,
            });
        }
        if wild && self.wildcard_children > 0 && children >= self.wildcard_children {
            return Err(LimitReached::WildcardChildren {
                base: base.to_string(),
                limit: self.wildcard_children,
            });
        }
        if !live && self.file_inputs > 0 && of_file >= self.file_inputs {
            return Err(LimitReached::FileInputs {
                base: base.to_string(),
                limit: self.file_inputs,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(names: &[&'static str]) -> Vec<Running<'static>> {
        names
            .iter()
            .map(|s| Running {
                stream: s,
                live: true,
            })
            .collect()
    }

    #[test]
    fn wildcard_children_and_inputs_are_capped() {
        let l = Limits::from_config(Some(&json!({"inputs": 4, "wildcard_children": 2})));
        let running = live(&["live+1", "live+2", "other"]);
        assert!(l.check("live+3", true, running.iter().copied()).is_err());
        assert!(l.check("news+1", true, running.iter().copied()).is_ok());
        assert!(l.check("live", true, running.iter().copied()).is_ok());
        let full = live(&["a", "b", "c", "d"]);
        assert!(l.check("e", true, full.iter().copied()).is_err());
        let d = Limits::from_config(None);
        assert_eq!(d.wildcard_children, DEFAULT_WILDCARD_CHILDREN);
        assert_eq!(d.live_streams, DEFAULT_LIVE_STREAMS);
        assert_eq!(d.file_inputs, DEFAULT_FILE_INPUTS);
        let off = Limits::from_config(Some(
            &json!({"inputs": 0, "wildcard_children": 0, "live_streams": 0, "file_inputs": 0}),
        ));
        assert!(off.check("live+9", true, running.iter().copied()).is_ok());
    }

    #[test]
    fn live_streams_and_file_inputs_are_capped() {
        let l = Limits::from_config(Some(&json!({"live_streams": 2, "file_inputs": 2})));
        let mut running = live(&["a", "b"]);
        running.push(Running {
            stream: "vod",
            live: false,
        });
        running.push(Running {
            stream: "vod+x",
            live: false,
        });
        let e = l.check("c", true, running.iter().copied()).unwrap_err();
        assert_eq!(e, LimitReached::LiveStreams { limit: 2 });
        assert!(e.to_string().contains("limits.live_streams"), "{e}");
        // A VoD input does not count against live streams, and other file streams are apart.
        assert!(l.check("film", false, running.iter().copied()).is_ok());
        let e = l
            .check("vod+y", false, running.iter().copied())
            .unwrap_err();
        assert!(matches!(e, LimitReached::FileInputs { .. }), "{e:?}");
        assert!(e.to_string().contains("limits.file_inputs"), "{e}");
        // Live children of a base with file inputs are not file inputs.
        let l = Limits::from_config(Some(&json!({"file_inputs": 2})));
        assert!(l.check("vod+live", true, running.iter().copied()).is_ok());
    }
}
