//! Resource caps the controller applies before it starts an input (docs/security.md):
//!
//! - `inputs`: inputs (buffers and VoD inputs) running at once, all streams together (default
//!   1000);
//! - `wildcard_children`: streams `base+anything` running at once for one base stream (default
//!   100): without it every `live+N` a publisher invents gets its own buffer process.
//!
//! Both are read from the config's `limits` object (`{"limits": {"inputs": 50}}` under `config`);
//! 0 means no limit. Hitting one is logged and the request refused.

use serde_json::Value;

/// Default for `limits.inputs`.
pub const DEFAULT_INPUTS: usize = 1000;
/// Default for `limits.wildcard_children`.
pub const DEFAULT_WILDCARD_CHILDREN: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub inputs: usize,
    pub wildcard_children: usize,
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
            wildcard_children: get("wildcard_children", DEFAULT_WILDCARD_CHILDREN),
        }
    }

    /// May an input for `stream` start, with the inputs of `running` streams already up?
    pub fn check<'a>(
        &self,
        stream: &str,
        running: impl Iterator<Item = &'a str>,
    ) -> Result<(), String> {
        let base = mist_core::names::base_name(stream);
        let wild = mist_core::names::wildcard(stream).is_some();
        let (mut all, mut children) = (0usize, 0usize);
        for s in running {
            all += 1;
            if wild && mist_core::names::base_name(s) == base && s.contains('+') {
                children += 1;
            }
        }
        if self.inputs > 0 && all >= self.inputs {
            return Err(format!(
                "input limit reached ({} running; config limits.inputs)",
                self.inputs
            ));
        }
        if wild && self.wildcard_children > 0 && children >= self.wildcard_children {
            return Err(format!(
                "wildcard stream limit of {base} reached ({} running; config limits.wildcard_children)",
                self.wildcard_children
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_children_and_inputs_are_capped() {
        let l = Limits::from_config(Some(&json!({"inputs": 4, "wildcard_children": 2})));
        let running = ["live+1", "live+2", "other"];
        assert!(l.check("live+3", running.iter().copied()).is_err());
        assert!(l.check("news+1", running.iter().copied()).is_ok());
        assert!(l.check("live", running.iter().copied()).is_ok());
        let full = ["a", "b", "c", "d"];
        assert!(l.check("e", full.iter().copied()).is_err());
        let d = Limits::from_config(None);
        assert_eq!(d.wildcard_children, DEFAULT_WILDCARD_CHILDREN);
        let off = Limits::from_config(Some(&json!({"inputs": 0, "wildcard_children": 0})));
        assert!(off.check("live+9", running.iter().copied()).is_ok());
    }
}
