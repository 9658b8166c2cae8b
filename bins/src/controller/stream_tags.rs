//! Stream tags set at run time (INTERFACES §3.4 `tag_stream`, `untag_stream`, `stream_tags`):
//! `#tag` matchers of `push_start`, auto-push rules and their `inhibit`, and the `#tag` entries
//! of triggers' `streams` lists (§5.1) see them beside the `tags` of the stream's config. The
//! trigger file shares them with the processes that fire triggers ([`shared`]).
//!
//! As in MistServer a tag belongs to a running stream: a tag given to a stream that is not
//! active waits up to 60 s for it to start, and a stream's tags go when it stops.

use super::Controller;
use mist_core::info;
use mist_core::triggers::StreamTags;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a tag for a stream that is not active waits for it.
const QUEUED_FOR: Duration = Duration::from_secs(60);

/// The run-time tags of streams.
#[derive(Default)]
pub struct Tags {
    /// Tags of active streams (full names).
    active: HashMap<String, BTreeSet<String>>,
    /// Tags waiting for their stream to become active: (since, tags).
    queued: HashMap<String, (Instant, BTreeSet<String>)>,
    /// Tags of streams that stopped, kept a while for the triggers of their end (STREAM_END,
    /// USER_END, CONN_CLOSE …, which may fire after the controller saw the stream go): (since,
    /// tags). Not the stream's any more for `stream_tags` and pushes.
    ended: HashMap<String, (Instant, BTreeSet<String>)>,
}

impl Tags {
    /// Follows the set of active streams (the push scan, twice a second): queued tags of
    /// streams that started become theirs, streams that stopped lose their tags.
    pub fn update(&mut self, active: &HashSet<String>) {
        let now = Instant::now();
        let stopped: Vec<String> = self
            .active
            .keys()
            .filter(|s| !active.contains(*s))
            .cloned()
            .collect();
        for s in stopped {
            if let Some(t) = self.active.remove(&s) {
                self.ended.insert(s, (now, t));
            }
        }
        self.ended
            .retain(|s, (since, _)| !active.contains(s) && now.duration_since(*since) < QUEUED_FOR);
        self.queued
            .retain(|_, (since, _)| now.duration_since(*since) < QUEUED_FOR);
        let started: Vec<String> = self
            .queued
            .keys()
            .filter(|s| active.contains(*s))
            .cloned()
            .collect();
        for s in started {
            if let Some((_, t)) = self.queued.remove(&s) {
                self.active.entry(s).or_default().extend(t);
            }
        }
    }

    /// The run-time tags of `stream`.
    pub fn of(&self, stream: &str) -> impl Iterator<Item = &String> {
        self.active.get(stream).into_iter().flatten()
    }

    /// The run-time tags of every stream, active, waiting for it to start (a starting stream's
    /// first triggers, such as STREAM_PUSH, already see the tags waiting for it) or stopped
    /// less than a minute ago (the triggers of its end), by full name: what triggers match on.
    pub fn all(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, BTreeSet<&String>> = BTreeMap::new();
        let waiting = self.queued.iter().chain(&self.ended);
        for (s, t) in self.active.iter().chain(waiting.map(|(s, (_, t))| (s, t))) {
            m.entry(s.clone()).or_default().extend(t);
        }
        m.into_iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(s, t)| (s, t.into_iter().cloned().collect()))
            .collect()
    }

    fn tag(&mut self, stream: &str, tag: &str, is_active: bool) {
        if is_active {
            self.active
                .entry(stream.to_string())
                .or_default()
                .insert(tag.to_string());
        } else {
            let q = self
                .queued
                .entry(stream.to_string())
                .or_insert_with(|| (Instant::now(), BTreeSet::new()));
            q.0 = Instant::now();
            q.1.insert(tag.to_string());
        }
    }

    fn untag(&mut self, stream: &str, tag: &str) {
        if let Some(t) = self.active.get_mut(stream) {
            t.remove(tag);
        }
        for (_, t) in self
            .queued
            .get_mut(stream)
            .into_iter()
            .chain(self.ended.get_mut(stream))
        {
            t.remove(tag);
        }
    }
}

/// `{stream: tag | [tags]}` as (stream, tag) pairs; names sanitised, empty tags dropped.
fn pairs(arg: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(m) = arg.as_object() else {
        return out;
    };
    for (s, t) in m {
        let stream = mist_core::names::sanitize(s);
        if stream.is_empty() {
            continue;
        }
        let tags: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for t in tags {
            let t = t.strip_prefix('#').unwrap_or(t);
            if !t.is_empty() {
                out.push((stream.clone(), t.to_string()));
            }
        }
    }
    out
}

/// The `tags` of a stream config (a list or one string). A tag written as `#tag` is `tag`, as
/// in `tag_stream`: `#tag` is how trigger and push rules name it, and admins copy it from there.
fn config_tags(cfg: &Value) -> BTreeSet<String> {
    let tags: Vec<&str> = match cfg.get("tags") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    };
    tags.into_iter()
        .map(|t| t.strip_prefix('#').unwrap_or(t))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The tags of a stream: its config `tags` (looked up by base name) and those given at run time.
pub fn of(ctl: &Controller, stream: &str) -> Vec<String> {
    let base = mist_core::names::base_name(stream);
    let mut tags = ctl
        .cfg
        .streams
        .get(base)
        .map(config_tags)
        .unwrap_or_default();
    tags.extend(ctl.pushes.tags.of(stream).cloned());
    tags.into_iter().collect()
}

/// The streams' tags for the trigger file: config `tags` by config name, run-time tags by full
/// name (a stream's tags are both, see [`StreamTags::has`]). Empty when no trigger handler has a
/// `#tag` entry, so that tag changes nobody matches on do not rewrite the file.
pub fn shared(ctl: &Controller) -> StreamTags {
    if !mist_core::triggers::uses_tags(&ctl.cfg.config.triggers) {
        return StreamTags::default();
    }
    StreamTags {
        config: ctl
            .cfg
            .streams
            .iter()
            .map(|(name, cfg)| (name.clone(), config_tags(cfg).into_iter().collect()))
            .filter(|(_, t): &(String, Vec<String>)| !t.is_empty())
            .collect(),
        runtime: ctl.pushes.tags.all(),
    }
}

/// `tag_stream`, `untag_stream` (no answer, as MistServer) and `stream_tags` (a name, a list of
/// names, or anything else for every active stream → `{stream: [tags]}`).
pub fn api(ctl: &mut Controller, cmd: &str, arg: &Value) -> Option<Value> {
    match cmd {
        "tag_stream" => {
            let active: HashSet<String> = ctl.active_streams().into_iter().collect();
            for (s, t) in pairs(arg) {
                let on = active.contains(&s);
                info!(
                    "stream {s}: tagged #{t}{}",
                    if on { "" } else { " (when it starts)" }
                );
                ctl.pushes.tags.tag(&s, &t, on);
            }
            // Triggers fired from now on see the tags.
            ctl.sync_triggers();
            None
        }
        "untag_stream" => {
            for (s, t) in pairs(arg) {
                ctl.pushes.tags.untag(&s, &t);
            }
            ctl.sync_triggers();
            None
        }
        _ => {
            let names: Vec<String> = match arg {
                Value::String(s) if !s.is_empty() => vec![mist_core::names::sanitize(s)],
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(mist_core::names::sanitize)
                    .collect(),
                _ => {
                    let mut v: Vec<String> = ctl.active_streams();
                    v.sort();
                    v
                }
            };
            let mut m = Map::new();
            for n in names {
                let t = of(ctl, &n);
                m.insert(n, Value::from(t));
            }
            Some(Value::Object(m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_tags_wait_for_their_stream() {
        let mut t = Tags::default();
        t.tag("live+a", "x", false);
        assert_eq!(t.of("live+a").count(), 0);
        let mut active = HashSet::new();
        t.update(&active);
        active.insert("live+a".to_string());
        t.update(&active);
        assert_eq!(t.of("live+a").collect::<Vec<_>>(), ["x"]);
        t.untag("live+a", "x");
        assert_eq!(t.of("live+a").count(), 0);
        assert!(t.all().is_empty());
        t.tag("live+a", "y", true);
        t.tag("live+b", "q", false);
        t.tag("live+c", "z", true);
        t.untag("live+c", "z");
        // The trigger file's view: active and queued tags, streams without tags left out.
        let all = t.all();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all["live+a"], ["y"]);
        assert_eq!(all["live+b"], ["q"]);
        t.update(&HashSet::new());
        assert_eq!(t.of("live+a").count(), 0, "a stopped stream loses its tags");
        // … but the triggers of its end still see them, until it starts again.
        assert_eq!(t.all()["live+a"], ["y"]);
        t.update(&active);
        assert!(!t.all().contains_key("live+a"));
    }

    #[test]
    fn config_tags_are_named_with_or_without_the_hash() {
        let tags = |v: Value| config_tags(&v).into_iter().collect::<Vec<_>>();
        assert_eq!(
            tags(serde_json::json!({"tags": ["#vip", "sport", "", "#", "##x"]})),
            ["#x", "sport", "vip"]
        );
        assert_eq!(tags(serde_json::json!({"tags": "#vip"})), ["vip"]);
        assert!(tags(serde_json::json!({"tags": 5})).is_empty());
    }

    #[test]
    fn request_forms() {
        let v = serde_json::json!({"Live+a": "x", "live+b": ["#y", "", "z"], "": "q"});
        let mut p = pairs(&v);
        p.sort();
        assert_eq!(
            p,
            [
                ("live+a".to_string(), "x".to_string()),
                ("live+b".to_string(), "y".to_string()),
                ("live+b".to_string(), "z".to_string())
            ]
        );
    }
}
