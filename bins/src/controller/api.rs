//! The JSON API commands (INTERFACES §3).

use super::{now_unix, shm_call, Controller};
use mist_core::config::{Protocol, ServerConfig};
use mist_core::names;
use mist_core::{info, warn};
use serde_json::{json, Map, Value};

/// Per-connection API session. A login belongs to the client address (and the browser origin)
/// that made it, not to the TCP connection: a reverse proxy reuses one upstream connection for many
/// clients, and a browser may reuse one for pages of several sites.
#[derive(Default)]
pub struct Session {
    /// The client address and `Origin` that logged in with a password on this connection.
    authorized: Option<(String, Option<String>)>,
}

impl Session {
    /// True when `host` has logged in from `origin` on this connection.
    pub fn is_authorized_from(&self, host: &str, origin: Option<&str>) -> bool {
        self.authorized
            .as_ref()
            .is_some_and(|(h, o)| h == host && o.as_deref() == origin)
    }

    /// True when anyone has logged in on this connection (it may then send large requests).
    pub fn has_login(&self) -> bool {
        self.authorized.is_some()
    }
}

/// Who sent one API request, as the gate (`super::gate`) judged it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client address (the peer, or the one a trusted proxy names).
    pub host: String,
    /// Authorised without login for this request only (local, same-origin, local `Host`).
    pub local: bool,
    /// The request's `Origin` header, if any (a login is bound to it).
    pub origin: Option<String>,
}

/// Answers one API request object. `host` is the address the request is judged as (the peer, or
/// the address named by a proxy header); `local` is true when it is authorised without login.
pub fn handle(
    ctl: &mut Controller,
    sess: &mut Session,
    host: &str,
    local: bool,
    req: &Value,
) -> Value {
    let caller = Caller {
        host: host.to_string(),
        local,
        origin: None,
    };
    handle_from(ctl, sess, &caller, req)
}

/// [`handle`] for a caller the gate judged. An auto-authorisation holds for this request only; a
/// password login holds for the rest of the connection, for the same address and origin.
pub fn handle_from(ctl: &mut Controller, sess: &mut Session, who: &Caller, req: &Value) -> Value {
    let mut out = Map::new();
    let host = who.host.as_str();
    if !who.local && !sess.is_authorized_from(host, who.origin.as_deref()) {
        let mut ok = false;
        if let Some(a) = req.get("authorize").and_then(Value::as_object) {
            let user = a.get("username").and_then(Value::as_str).unwrap_or("");
            let pass = a.get("password").and_then(Value::as_str).unwrap_or("");
            if !pass.is_empty() {
                if ctl.auth.limited(host) {
                    // Answered like any failed login (MistServer clients know no other answer).
                    warn!("API: login from {host} refused: too many failed logins");
                } else {
                    // An account without a password cannot log in: md5("" + challenge) is no secret.
                    if let Some(acc) = ctl.cfg.account.get(user).filter(|a| !a.password.is_empty())
                    {
                        ok = ctl.auth.verify(host, &acc.password, pass);
                    }
                    if !ok {
                        ctl.auth.failed(host);
                        warn!("API: failed login for {user:?} from {host}");
                    }
                }
            }
        }
        if !ok {
            out.insert(
                "authorize".into(),
                json!({"status": "CHALL", "challenge": ctl.auth.challenge(host)}),
            );
            return Value::Object(out);
        }
        info!("API: {host} logged in");
        ctl.auth.succeeded(host);
        sess.authorized = Some((host.to_string(), who.origin.clone()));
    }
    let Some(obj) = req.as_object() else {
        out.insert("error".into(), json!("request must be a JSON object"));
        return Value::Object(out);
    };
    for (cmd, arg) in obj {
        match cmd.as_str() {
            "authorize" => {
                out.insert("authorize".into(), json!({"status": "OK"}));
            }
            "config" => {
                if let Some(set) = arg.as_object() {
                    if let Err(e) = set_config(ctl, set) {
                        out.insert("config_error".into(), json!(e.to_string()));
                    }
                }
                out.insert("config".into(), ctl.config_answer());
            }
            "streams" => {
                if let Some(set) = arg.as_object() {
                    let keep: Vec<String> = set.keys().map(|k| names::sanitize(k)).collect();
                    let gone: Vec<String> = ctl
                        .cfg
                        .streams
                        .keys()
                        .filter(|k| !keep.contains(k))
                        .cloned()
                        .collect();
                    for g in gone {
                        delete_stream(ctl, &g);
                    }
                    add_streams(ctl, set);
                }
                out.insert("streams".into(), streams_answer(ctl));
            }
            "addstream" => {
                if let Some(set) = arg.as_object() {
                    add_streams(ctl, set);
                }
                out.insert("streams".into(), streams_answer(ctl));
            }
            "deletestream" => {
                let list: Vec<String> = match arg {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    Value::Object(o) => o.keys().cloned().collect(),
                    _ => vec![],
                };
                for n in list {
                    delete_stream(ctl, &n);
                }
                out.insert("streams".into(), streams_answer(ctl));
            }
            "capabilities" => {
                out.insert("capabilities".into(), ctl.caps.to_api());
            }
            "active_streams" => {
                out.insert("active_streams".into(), active_streams(ctl, arg));
            }
            "clients" => {
                out.insert("clients".into(), clients(ctl, arg));
            }
            "totals" => {
                out.insert("totals".into(), totals(ctl, arg));
            }
            "stop_sessions"
            | "stop_sessid"
            | "stop_tag"
            | "tag_sessid"
            | "invalidate_sessions"
            | "kill" => {
                out.insert(cmd.clone(), super::sessions::api(ctl, cmd, arg));
            }
            "log" => {
                let ring = ctl.logs.lock().unwrap_or_else(|e| e.into_inner());
                let v: Vec<Value> = ring.iter().map(|(t, l, m)| json!([t, l, m])).collect();
                out.insert("log".into(), Value::Array(v));
            }
            "version" => {
                out.insert("version".into(), json!(super::version_string()));
            }
            "push_list" => {
                out.insert("push_list".into(), super::push::list(ctl));
            }
            "push_start" => {
                if let Err(e) = super::push::start(ctl, arg) {
                    out.insert("push_start_error".into(), json!(e.to_string()));
                }
                out.insert("push_list".into(), super::push::list(ctl));
            }
            "push_stop" | "push_stop_graceful" => {
                super::push::stop(ctl, arg);
                out.insert("push_list".into(), super::push::list(ctl));
            }
            "push_auto_list" => out.extend(super::push::auto_list(ctl)),
            "push_auto_add" => out.extend(super::push::auto_add(ctl, arg)),
            "push_auto_remove" => out.extend(super::push::auto_remove(ctl, arg)),
            "push_status_update" => super::push::status_update(ctl, arg),
            "variable_list" => {
                out.insert("variable_list".into(), super::variables::list(ctl));
            }
            "variable_add" => {
                out.insert("variable_list".into(), super::variables::add(ctl, arg));
            }
            "variable_remove" => {
                out.insert("variable_list".into(), super::variables::remove(ctl, arg));
            }
            "recording_end" => super::push::recording_end(ctl, arg),
            "tag_stream" | "untag_stream" | "stream_tags" => {
                if let Some(v) = super::stream_tags::api(ctl, cmd, arg) {
                    out.insert(cmd.clone(), v);
                }
            }
            "push_settings" => {
                if let Some(set) = arg.as_object() {
                    let mut cur = ctl
                        .cfg
                        .push_settings
                        .take()
                        .and_then(|v| v.as_object().cloned())
                        .unwrap_or_default();
                    for (k, v) in set {
                        cur.insert(k.clone(), v.clone());
                    }
                    ctl.cfg.push_settings = Some(Value::Object(cur));
                    ctl.mark_dirty();
                }
                out.insert(
                    "push_settings".into(),
                    ctl.cfg
                        .push_settings
                        .clone()
                        .unwrap_or_else(|| json!({"wait": 3, "maxspeed": 0})),
                );
            }
            "ui_settings" => {
                if arg.is_object() {
                    ctl.cfg.extra.insert("ui_settings".into(), arg.clone());
                    ctl.mark_dirty();
                }
                out.insert(
                    "ui_settings".into(),
                    ctl.cfg
                        .extra
                        .get("ui_settings")
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                );
            }
            "addprotocol" => {
                match serde_json::from_value::<Protocol>(arg.clone()) {
                    Ok(mut p) if !p.connector.is_empty() => {
                        p.options.remove("online");
                        ctl.cfg.config.protocols.push(p);
                        protocols_changed(ctl);
                    }
                    _ => {
                        out.insert(
                            "addprotocol".into(),
                            json!({"error": "need an object with a connector"}),
                        );
                    }
                }
                out.insert("config".into(), ctl.config_answer());
            }
            "deleteprotocol" => {
                let targets: Vec<Value> = match arg {
                    Value::Array(a) => a.clone(),
                    v => vec![v.clone()],
                };
                let before = ctl.cfg.config.protocols.len();
                ctl.cfg.config.protocols.retain(|p| {
                    let pv = serde_json::to_value(p).unwrap_or(Value::Null);
                    !targets.iter().any(|t| protocol_matches(t, &pv))
                });
                if ctl.cfg.config.protocols.len() != before {
                    protocols_changed(ctl);
                }
                out.insert("config".into(), ctl.config_answer());
            }
            "updateprotocol" => {
                if let Some([old, new]) = arg.as_array().map(Vec::as_slice) {
                    if let Ok(mut np) = serde_json::from_value::<Protocol>(new.clone()) {
                        np.options.remove("online");
                        let mut changed = false;
                        for p in ctl.cfg.config.protocols.iter_mut() {
                            let pv = serde_json::to_value(&*p).unwrap_or(Value::Null);
                            if !changed && protocol_matches(old, &pv) {
                                *p = np.clone();
                                changed = true;
                            }
                        }
                        if changed {
                            protocols_changed(ctl);
                        }
                    }
                }
                out.insert("config".into(), ctl.config_answer());
            }
            "save" => {
                let r = ctl.save();
                out.insert(
                    "save".into(),
                    match r {
                        Ok(()) => json!("OK"),
                        Err(e) => {
                            mist_core::error!("save failed: {e}");
                            json!({"error": e.to_string()})
                        }
                    },
                );
            }
            "shutdown" => {
                info!("shutdown requested through the API from {host}");
                if ctl.fire_blocking("SYSTEM_STOP", None, "API shutdown").ok {
                    ctl.shutdown = true;
                    ctl.stop_fired = true;
                    out.insert("shutdown".into(), json!("Shutting down"));
                } else {
                    warn!("shutdown aborted by the SYSTEM_STOP trigger");
                    out.insert("shutdown".into(), json!("Aborted by SYSTEM_STOP trigger"));
                }
            }
            other => {
                mist_core::debug!("API: unsupported command {other}");
            }
        }
    }
    Value::Object(out)
}

/// Whether a protocol entry matches a pattern from the API (its `online` status is ignored).
fn protocol_matches(pattern: &Value, proto: &Value) -> bool {
    match (pattern.as_object(), proto.as_object()) {
        (Some(p), Some(q)) => p
            .iter()
            .filter(|(k, _)| k.as_str() != "online")
            .all(|(k, v)| q.get(k) == Some(v)),
        _ => false,
    }
}

fn protocols_changed(ctl: &mut Controller) {
    ctl.mark_dirty();
    ctl.apply_protocols();
}

/// Why a `config` change sent to the API was not applied (the answer's `config_error`).
#[derive(Debug, thiserror::Error)]
pub enum SetConfigError {
    /// The running config could not be turned into JSON to merge the change into.
    #[error("{0}")]
    Current(serde_json::Error),
    /// The config with the change merged in is not a valid config.
    #[error("invalid config: {0}")]
    Invalid(serde_json::Error),
}

fn set_config(ctl: &mut Controller, set: &Map<String, Value>) -> Result<(), SetConfigError> {
    let mut cur = serde_json::to_value(&ctl.cfg.config).map_err(SetConfigError::Current)?;
    let obj = cur.as_object_mut().expect("object");
    for (k, v) in set {
        obj.insert(k.clone(), v.clone());
    }
    let mut new: ServerConfig = serde_json::from_value(cur).map_err(SetConfigError::Invalid)?;
    for p in new.protocols.iter_mut() {
        p.options.remove("online");
    }
    let protocols_differ = new.protocols != ctl.cfg.config.protocols;
    ctl.cfg.config = new;
    if let Some(d) = ctl.opts.debug.or(ctl.cfg.config.debug) {
        mist_core::log::set_level(d);
    }
    ctl.mark_dirty();
    if protocols_differ {
        ctl.apply_protocols();
    }
    Ok(())
}

fn add_streams(ctl: &mut Controller, set: &Map<String, Value>) {
    for (k, v) in set {
        let name = names::sanitize(k);
        if !names::is_valid(&name) || name.contains('+') {
            warn!("API: ignoring invalid stream name {k:?}");
            continue;
        }
        let mut entry = v.as_object().cloned().unwrap_or_default();
        entry.insert("name".into(), json!(name));
        let entry = Value::Object(entry);
        if ctl.cfg.streams.get(&name) != Some(&entry) {
            let trig = if ctl.cfg.streams.contains_key(&name) {
                "STREAM_CONFIG"
            } else {
                "STREAM_ADD"
            };
            let payload = mist_core::triggers::payload(&[&name, &entry.to_string()]);
            if !ctl.fire_blocking(trig, Some(&name), &payload).ok {
                warn!("stream {name}: change refused by the {trig} trigger");
                continue;
            }
            info!(
                "stream {name} {}",
                if ctl.cfg.streams.contains_key(&name) {
                    "updated"
                } else {
                    "added"
                }
            );
            ctl.cfg.streams.insert(name, entry);
            ctl.mark_dirty();
        }
    }
}

fn delete_stream(ctl: &mut Controller, name: &str) {
    let name = names::sanitize(name);
    if ctl.cfg.streams.contains_key(&name)
        && !ctl.fire_blocking("STREAM_REMOVE", Some(&name), &name).ok
    {
        warn!("stream {name}: removal refused by the STREAM_REMOVE trigger");
        return;
    }
    if ctl.cfg.streams.remove(&name).is_some() {
        info!("stream {name} deleted");
        ctl.mark_dirty();
        ctl.stop_stream_inputs(&name);
    }
}

fn streams_answer(ctl: &Controller) -> Value {
    Value::Object(ctl.cfg.streams.clone())
}

/// Names of active streams: those in shared memory plus those whose input runs.
fn active_names(ctl: &Controller) -> (Vec<String>, Vec<mist_shm::StreamStatus>) {
    let shm = ctl.shm_streams().unwrap_or_default();
    let mut names: Vec<String> = shm
        .iter()
        .filter(|s| !s.ended)
        .map(|s| s.name.clone())
        .collect();
    for m in &ctl.sup.children {
        if let super::children::Role::Input(s) = &m.role {
            if m.running() && !names.contains(s) {
                names.push(s.clone());
            }
        }
    }
    names.sort();
    (names, shm)
}

fn active_streams(ctl: &Controller, arg: &Value) -> Value {
    let (names, shm) = active_names(ctl);
    let Some(req) = arg.as_object() else {
        return json!(names);
    };
    let fields: Vec<String> = req
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                "status".into(),
                "viewers".into(),
                "inputs".into(),
                "outputs".into(),
                "tracks".into(),
            ]
        });
    let longform = req
        .get("longform")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let only: Option<Vec<String>> = req.get("streams").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    });
    let stats = ctl.sessions.stream_stats();
    let mut data = Map::new();
    for n in names
        .iter()
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
    {
        let st = shm.iter().find(|s| &s.name == n);
        let users = shm_call(|| mist_shm::users(n)).unwrap_or_default();
        let input_up = ctl.input_running(n) || st.is_some_and(|s| s.writer_alive);
        let vals: Vec<Value> =
            fields
                .iter()
                .map(|f| match f.as_str() {
                    "status" => json!(if st.is_some() { "Online" } else { "Booting" }),
                    // Viewer sessions, plus readers of processes that report none.
                    "viewers" | "clients" => json!(
                        ctl.sessions.count(n)
                            + users
                                .iter()
                                .filter(|u| !ctl.sessions.reported(u.pid, n))
                                .count()
                    ),
                    "views" => json!(stats.get(n.as_str()).map_or(0, |x| x.1)),
                    "upbytes" => json!(stats.get(n.as_str()).map_or(0, |x| x.2)),
                    "downbytes" => json!(stats.get(n.as_str()).map_or(0, |x| x.3)),
                    "inputs" => json!(u32::from(input_up)),
                    "outputs" => json!(users.len()),
                    "tracks" => json!(st.map(|s| s.tracks.len()).unwrap_or(0)),
                    "firstms" => json!(st.map(|s| s.first_ms).unwrap_or(0)),
                    "lastms" => json!(st.map(|s| s.last_ms).unwrap_or(0)),
                    "live" => json!(st.map(|s| s.live).unwrap_or(true)),
                    // Input counters (`mist_shm::health`): `loss` = packets the input saw lost.
                    "loss" => json!(input_health(n).and_then(|h| h.get("loss").copied())),
                    "health" => json!(input_health(n)),
                    "tags" => json!(super::stream_tags::of(ctl, n)),
                    "source" => json!(names::lookup(&ctl.cfg.streams, n)
                        .and_then(|(_, c)| c.get("source").cloned())),
                    "downbps" | "upbps" | "down" | "up" => {
                        let (d, u) = users
                            .iter()
                            .fold((0u64, 0u64), |(d, u), x| (d + x.bytes_down, u + x.bytes_up));
                        json!(if f.starts_with("down") { d } else { u })
                    }
                    _ => Value::Null,
                })
                .collect();
        let row = if longform {
            Value::Object(fields.iter().cloned().zip(vals).collect())
        } else {
            Value::Array(vals)
        };
        data.insert(n.clone(), row);
    }
    if longform {
        Value::Object(data)
    } else {
        json!({"fields": fields, "data": data})
    }
}

/// The input health a stream's input publishes in shm (MistInTS: loss counters), if any.
fn input_health(stream: &str) -> Option<mist_shm::health::InputHealth> {
    mist_shm::health::input_health(stream)
}

fn all_users() -> Vec<(String, mist_shm::UserSlot)> {
    let streams = shm_call(mist_shm::list_streams).unwrap_or_default();
    let mut out = Vec::new();
    for s in streams {
        let name = s.name.clone();
        for u in shm_call(move || mist_shm::users(&s.name)).unwrap_or_default() {
            out.push((name.clone(), u));
        }
    }
    out
}

fn str_list(arg: &Value, key: &str) -> Option<Vec<String>> {
    arg.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

/// A `time`/`start`/`end` argument as a unix second: absent or 0 = `zero`, < 0 = that many
/// seconds ago, otherwise unix time; never after now.
fn when(arg: &Value, key: &str, now: u64, zero: u64) -> u64 {
    let v = arg
        .get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or(0);
    let t = match v {
        0 => zero,
        v if v < 0 => now.saturating_sub(v.unsigned_abs()),
        v => v as u64,
    };
    t.min(now)
}

/// `clients` at an earlier second (`time`): one row per session that existed then (current or
/// ended since), its names joined with `,` as MistServer lists them, its numbers at that second.
fn clients_at(
    ctl: &Controller,
    fields: &[String],
    t: u64,
    keep: impl Fn(&str, &str) -> bool,
) -> Value {
    let mut data = Vec::new();
    for (s, n) in ctl.sessions.at(t) {
        let (streams, conns) = (s.streams(), s.connectors());
        if !streams
            .iter()
            .any(|st| conns.iter().any(|c| keep(st.as_str(), c.as_str())))
        {
            continue;
        }
        let row: Vec<Value> = fields
            .iter()
            .map(|f| match f.as_str() {
                "host" => json!(s.hosts().join(",")),
                "stream" => json!(streams.join(",")),
                "protocol" => json!(conns.join(",")),
                "conntime" => json!(t.saturating_sub(s.first())),
                "lastactive" => json!(s.last().min(t)),
                "position" => Value::Null,
                "down" => json!(n.down),
                "up" => json!(n.up),
                "downbps" => json!(n.downbps),
                "upbps" => json!(n.upbps),
                "sessid" | "sessId" => json!(s.sid),
                "tags" => json!(s.tags.iter().collect::<Vec<_>>()),
                "token" => json!(s.token),
                "pktcount" | "pktlost" | "pktretransmit" => json!(0),
                _ => Value::Null,
            })
            .collect();
        data.push(Value::Array(row));
    }
    json!({"fields": fields, "data": data, "time": t})
}

/// `clients`: one row per viewer session and stream/protocol/host it used (the sessions the
/// outputs report, `controller::sessions`), plus the users-table readers of processes that do
/// not report sessions. `time` (unix, <0 = seconds ago, 0 = now) asks for an earlier second of
/// the last ten minutes ([`clients_at`]).
fn clients(ctl: &Controller, arg: &Value) -> Value {
    let now = now_unix();
    let default_fields = [
        "host", "stream", "protocol", "conntime", "position", "down", "up", "downbps", "upbps",
        "sessid",
    ];
    // The array form is the field list.
    let fields: Vec<String> = match arg {
        Value::Array(_) => super::sessions::strings(arg),
        _ => str_list(arg, "fields").unwrap_or_default(),
    };
    let fields = if fields.is_empty() {
        default_fields.iter().map(|s| s.to_string()).collect()
    } else {
        fields
    };
    let want_streams = str_list(arg, "streams");
    let want_protos = str_list(arg, "protocols");
    let keep = |stream: &str, proto: &str| {
        want_streams
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x == stream))
            && want_protos
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x.eq_ignore_ascii_case(proto)))
    };
    let t = when(arg, "time", now, now);
    if t + 1 < now {
        return clients_at(ctl, &fields, t, keep);
    }
    let mut data = Vec::new();
    for r in ctl.sessions.client_rows() {
        if !keep(r.stream, r.connector) {
            continue;
        }
        let row: Vec<Value> = fields
            .iter()
            .map(|f| super::sessions::client_field(&r, f, now))
            .collect();
        data.push(Value::Array(row));
    }
    for (stream, u) in all_users() {
        if ctl.sessions.reported(u.pid, &stream) || !keep(&stream, &u.connector) {
            continue;
        }
        let row: Vec<Value> = fields
            .iter()
            .map(|f| match f.as_str() {
                "host" => json!(u.host),
                "stream" => json!(stream),
                "protocol" => json!(u.connector),
                "conntime" => json!(now.saturating_sub(u.connected_unix)),
                "position" => json!(u.position_ms),
                "down" => json!(u.bytes_down),
                "up" => json!(u.bytes_up),
                "downbps" | "upbps" => json!(0),
                "sessid" | "sessId" => {
                    json!(format!("{:08x}{:08x}", u.pid, u.connected_unix as u32))
                }
                "pid" => json!(u.pid),
                "lastactive" => json!(u.last_active_unix),
                _ => Value::Null,
            })
            .collect();
        data.push(Value::Array(row));
    }
    json!({"fields": fields, "data": data, "time": now})
}

/// `totals`: one row per second from `start` to `end` (unix, <0 = seconds ago; default the last
/// ten minutes up to now) for which anything is known, and `interval` = `[[count, seconds]]`, the
/// run lengths of the steps between them (MistServer's answer). No data: `start`, `end`, `data`
/// and `interval` are null.
fn totals(ctl: &Controller, arg: &Value) -> Value {
    let now = now_unix();
    let fields = str_list(arg, "fields")
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| vec!["clients".into(), "downbps".into(), "upbps".into()]);
    let want_streams = str_list(arg, "streams");
    let want_protos = str_list(arg, "protocols");
    let oldest = now.saturating_sub(super::sessions::HISTORY);
    let start = when(arg, "start", now, oldest).max(oldest);
    let end = when(arg, "end", now, now).max(start);
    let stream_ok = |st: &str| {
        want_streams
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x == st))
    };
    let proto_ok = |c: &str| {
        want_protos
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x.eq_ignore_ascii_case(c)))
    };
    let sessions: Vec<&super::sessions::Session> = ctl
        .sessions
        .live
        .values()
        .chain(ctl.sessions.recent.iter())
        .filter(|s| {
            s.streams().iter().any(|x| stream_ok(x.as_str()))
                && s.connectors().iter().any(|c| proto_ok(c.as_str()))
        })
        .collect();
    let mut data = Vec::new();
    let mut times = Vec::new();
    for t in start..=end {
        let snaps: Vec<super::sessions::Snap> = sessions.iter().filter_map(|s| s.at(t)).collect();
        let secs = &ctl.sessions.seconds;
        let sec = secs
            .partition_point(|x| x.t <= t)
            .checked_sub(1)
            .and_then(|i| secs.get(i))
            .filter(|x| t - x.t < 2);
        if snaps.is_empty() && sec.is_none() {
            continue;
        }
        let inputs = sec.map_or(0, |x| {
            x.inputs.iter().filter(|st| stream_ok(st.as_str())).count()
        });
        let outputs = sec.map_or(0, |x| {
            x.outputs
                .iter()
                .filter(|(st, c)| stream_ok(st.as_str()) && proto_ok(c.as_str()))
                .count()
        });
        let row: Vec<Value> = fields
            .iter()
            .map(|f| match f.as_str() {
                "clients" => json!(snaps.len() + outputs),
                "inputs" => json!(inputs),
                "outputs" => json!(outputs),
                "downbps" => json!(snaps.iter().map(|n| n.downbps).sum::<u64>()),
                "upbps" => json!(snaps.iter().map(|n| n.upbps).sum::<u64>()),
                "down" => json!(snaps.iter().map(|n| n.down).sum::<u64>()),
                "up" => json!(snaps.iter().map(|n| n.up).sum::<u64>()),
                "perc_lost" | "perc_retrans" => json!(0),
                _ => Value::Null,
            })
            .collect();
        data.push(Value::Array(row));
        times.push(t);
    }
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return json!({"fields": fields, "start": null, "end": null, "data": null, "interval": null});
    };
    json!({"fields": fields, "data": data, "start": first, "end": last, "interval": intervals(&times)})
}

/// MistServer's `interval`: `[[count, step], …]`, the run lengths of the steps between
/// consecutive times; one time alone is `[[1, 0]]`.
fn intervals(times: &[u64]) -> Value {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for w in times.windows(2) {
        let step = w[1] - w[0];
        match out.last_mut() {
            Some((n, s)) if *s == step => *n += 1,
            _ => out.push((1, step)),
        }
    }
    if out.is_empty() {
        out.push((1, 0));
    }
    json!(out.iter().map(|(n, s)| json!([n, s])).collect::<Vec<_>>())
}

#[cfg(test)]
mod history_tests {
    #[test]
    fn intervals_are_run_lengths_of_steps() {
        assert_eq!(super::intervals(&[5]), serde_json::json!([[1, 0]]));
        assert_eq!(
            super::intervals(&[1, 2, 3, 5, 7, 8]),
            serde_json::json!([[2, 1], [2, 2], [1, 1]])
        );
    }

    #[test]
    fn times_are_unix_or_seconds_ago() {
        let a = serde_json::json!({"time": -10, "start": 50, "end": 5000});
        assert_eq!(super::when(&a, "time", 1000, 1000), 990);
        assert_eq!(super::when(&a, "start", 1000, 0), 50);
        assert_eq!(super::when(&a, "end", 1000, 0), 1000, "never after now");
        assert_eq!(super::when(&a, "none", 1000, 7), 7);
    }
}
