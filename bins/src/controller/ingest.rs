//! Ingest access control before a push's stream is known (INTERFACES §7.1 steps 1 and 2):
//! `streamkeys`, then the RTMP_PUSH_REWRITE (RTMP only) and PUSH_REWRITE triggers, and the
//! controller's side of the trigger engine (the config it shares with its children).

use super::{Controller, Pending, TriggerResult};
use mist_core::control::{Request, Response};
use mist_core::triggers::{self, Engine, Shared};
use mist_core::{info, warn};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The file the controller's children read their trigger config from (next to the control
/// socket, so two controllers with their own sockets do not share it).
pub fn triggers_file() -> PathBuf {
    super::paths::control_socket_path().with_extension("triggers.json")
}

/// This controller's instance id (`X-Instance`, `MIST_INSTANCE`).
pub fn instance_id() -> &'static str {
    static IID: OnceLock<String> = OnceLock::new();
    IID.get_or_init(triggers::uuid_v4)
}

/// A push request after §7.1 steps 1–2.
pub struct Resolved {
    pub req: Request,
    /// The name was a stream key: no IP/password check, started as a push whatever its source.
    pub via_key: bool,
}

/// What [`Controller::resolve_push`] decided.
pub enum Resolve {
    /// Continue with this request now.
    Now(Resolved),
    /// Answer this now.
    Answer(Response),
    /// Rewrite triggers run off the loop; `trigger_done` continues.
    Queued,
}

/// An answer to RTMP_PUSH_REWRITE / PUSH_REWRITE as a name: the text without surrounding
/// whitespace (a script's trailing newline is not part of a stream name). Empty refuses.
fn answer_name(a: &str) -> Option<String> {
    let t = a.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Splits a (rewritten) RTMP URL into its app (the push password) and stream: the stream is the
/// text after the last `/`, the app the path before it.
fn split_rtmp_url(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    match path.rsplit_once('/') {
        Some((app, stream)) => (app.to_string(), stream.to_string()),
        None => (String::new(), path.to_string()),
    }
}

impl Controller {
    /// Puts the config's triggers, and the streams' tags when a handler matches on them, into
    /// this process's engine and the children's trigger file (only when they changed; cheap to
    /// call every loop turn).
    pub fn sync_triggers(&self) {
        let name = self.cfg.config.serverid.as_deref().unwrap_or_default();
        let sessions =
            mist_core::triggers::session_modes::SessionModes::from_config(&self.cfg.config.extra);
        let tags = super::stream_tags::shared(self);
        // Compared in place: the triggers are cloned only when something changed.
        let same = Engine::global().config_is(|c| {
            c.instance == instance_id()
                && c.name == name
                && c.triggers == self.cfg.config.triggers
                && c.sessions == sessions
                && c.tags == tags
        });
        if same {
            return;
        }
        let shared = Shared {
            instance: instance_id().to_string(),
            name: name.to_string(),
            triggers: self.cfg.config.triggers.clone(),
            sessions,
            tags,
        };
        Engine::global().set_config(shared, Some(&triggers_file()));
    }

    /// The stream a `streamkeys` entry maps `key` to.
    fn streamkey(&self, key: &str) -> Option<String> {
        self.cfg
            .extra
            .get("streamkeys")?
            .get(key)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The answer to a `StreamConfig` request: the config of the stream a play or push of
    /// `stream` would find, the push's stream key mapped first. Nothing is started, no trigger
    /// runs, nothing is logged (a client may name any stream).
    pub fn stream_config(&self, stream: &str, push: bool) -> Response {
        let mapped = if push { self.streamkey(stream) } else { None };
        let name = mist_core::names::sanitize(mapped.as_deref().unwrap_or(stream));
        let found = if mist_core::names::is_valid(&name) {
            mist_core::names::lookup(&self.cfg.streams, &name)
        } else {
            None
        };
        match found {
            Some((_, config)) => Response {
                ok: true,
                stream: name,
                error: String::new(),
                config: config.clone(),
            },
            None => Response {
                ok: false,
                stream: name,
                error: "stream not configured".into(),
                config: serde_json::Value::Null,
            },
        }
    }

    /// §7.1 steps 1 and 2 for a push request (other requests pass through).
    pub fn resolve_push(&mut self, token: mio::Token, req: Request) -> Resolve {
        let Request::Push {
            stream,
            app,
            host,
            connector,
            url,
        } = req
        else {
            return Resolve::Now(Resolved {
                req,
                via_key: false,
            });
        };
        if let Some(mapped) = self.streamkey(&stream) {
            info!("push from {host}: stream key accepted, publishing to {mapped}");
            return Resolve::Now(Resolved {
                req: Request::Push {
                    stream: mapped,
                    app,
                    host,
                    connector,
                    url,
                },
                via_key: true,
            });
        }
        let t = &self.cfg.config.triggers;
        let want_rtmp = connector == "RTMP" && triggers::exists(t, "RTMP_PUSH_REWRITE", None);
        let want_push = triggers::exists(t, "PUSH_REWRITE", None);
        if !want_rtmp && !want_push {
            return Resolve::Now(Resolved {
                req: Request::Push {
                    stream,
                    app,
                    host,
                    connector,
                    url,
                },
                via_key: false,
            });
        }
        let trig = t.clone();
        let tx = self.trig_tx.clone();
        let waker = self.spawner.waker.clone();
        let requested = stream.clone();
        let work = move || {
            let (mut stream, mut app, mut url) = (stream, app, url);
            let mut res = TriggerResult {
                ok: true,
                error: String::new(),
                source: None,
                rewritten: None,
            };
            if want_rtmp {
                let o = triggers::fire(
                    &trig,
                    "RTMP_PUSH_REWRITE",
                    None,
                    &triggers::payload(&[&url, &host]),
                );
                if o.handled {
                    match o.answer.as_deref().and_then(answer_name) {
                        Some(new) => {
                            (app, stream) = split_rtmp_url(&new);
                            url = new;
                        }
                        None => {
                            res.ok = false;
                            res.error = "refused by the RTMP_PUSH_REWRITE trigger".into();
                        }
                    }
                }
            }
            if res.ok && want_push {
                let o = triggers::fire(
                    &trig,
                    "PUSH_REWRITE",
                    None,
                    &triggers::payload(&[&url, &host, &stream]),
                );
                if o.handled {
                    match o.answer.as_deref().and_then(answer_name) {
                        Some(new) => stream = new,
                        None => {
                            res.ok = false;
                            res.error = "refused by the PUSH_REWRITE trigger".into();
                        }
                    }
                }
            }
            res.rewritten = Some((
                Request::Push {
                    stream,
                    app,
                    host,
                    connector,
                    url,
                },
                false,
            ));
            let _ = tx.send((token, res));
            let _ = waker.wake();
        };
        // One thread per waiting publisher (bounded by the engine's cap on blocking waiters):
        // a hung handler holds only this publish.
        if let Err(e) = std::thread::Builder::new()
            .name("push-rewrite".into())
            .spawn(work)
        {
            warn!("cannot run the push rewrite triggers: {e}");
            return Resolve::Answer(super::refusal(&requested, "controller busy".into()));
        }
        self.pending.push(Pending {
            token,
            stream: requested,
            config: Value::Null,
            source: String::new(),
            deadline: Instant::now() + Duration::from_secs(3600),
            since: Instant::now(),
            trigger: true,
        });
        Resolve::Queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_url_split() {
        assert_eq!(
            split_rtmp_url("rtmp://host/live/live+alice"),
            ("live".to_string(), "live+alice".to_string())
        );
        assert_eq!(
            split_rtmp_url("rtmp://host:1935/a/b/s"),
            ("a/b".to_string(), "s".to_string())
        );
        assert_eq!(
            split_rtmp_url("rtmp://host/s"),
            (String::new(), "s".to_string())
        );
        assert_eq!(answer_name(" live+alice\n").as_deref(), Some("live+alice"));
        assert_eq!(answer_name(" \n"), None);
    }
}
