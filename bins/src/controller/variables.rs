//! Custom `$variables` (INTERFACES §2 `variables`, §3.4 `variable_add`/`variable_remove`/
//! `variable_list`): `{name: {target?, interval?, value?, waitTime?}}` in the config, used by
//! push targets and by the `start_rule`/`end_rule` of auto-push rules.
//!
//! A variable with a fixed value is complete here; one with a `target` (a command or URL run
//! every `interval` seconds for its value) is stored and keeps the `value` it was given, the
//! target is not run yet.

use super::Controller;
use mist_core::{info, warn};
use serde_json::{Map, Value};

/// Names are cut to this length, as MistServer does.
const MAX_NAME: usize = 31;

/// A value as MistServer stores it: text.
fn text(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.clone()),
        Value::Null => Value::String(String::new()),
        other => Value::String(other.to_string()),
    }
}

fn number(v: &Value) -> Value {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
        .unwrap_or(Value::from(0))
}

fn stored(ctl: &Controller) -> Map<String, Value> {
    ctl.cfg
        .extra
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn save(ctl: &mut Controller, m: Map<String, Value>) -> Value {
    let v = Value::Object(m);
    ctl.cfg.extra.insert("variables".into(), v.clone());
    ctl.mark_dirty();
    v
}

/// `variable_list`: the variables as stored.
pub fn list(ctl: &Controller) -> Value {
    Value::Object(stored(ctl))
}

/// `variable_add`: `[name, value]`, `[name, target, interval(, value(, waitTime))]` or
/// `{name, target?, interval?, value?, waitTime?}`. Answers the list.
pub fn add(ctl: &mut Controller, arg: &Value) -> Value {
    let mut m = stored(ctl);
    let (name, fields): (String, Vec<(&str, Value)>) = match arg {
        Value::Array(a) if (2..=5).contains(&a.len()) && a[0].is_string() => {
            let name = a[0].as_str().unwrap_or_default().to_string();
            let f = if a.len() == 2 {
                vec![("value", text(&a[1]))]
            } else {
                let mut f = vec![("target", text(&a[1])), ("interval", number(&a[2]))];
                if let Some(v) = a.get(3) {
                    f.push(("value", text(v)));
                }
                if let Some(w) = a.get(4) {
                    f.push(("waitTime", number(w)));
                }
                f
            };
            (name, f)
        }
        Value::Object(o) if o.get("name").is_some_and(Value::is_string) => {
            let name = o["name"].as_str().unwrap_or_default().to_string();
            let mut f = Vec::new();
            for k in ["target", "value"] {
                if let Some(v) = o.get(k) {
                    f.push((k, text(v)));
                }
            }
            for k in ["interval", "waitTime"] {
                if let Some(v) = o.get(k) {
                    f.push((k, number(v)));
                }
            }
            (name, f)
        }
        _ => {
            warn!("variable_add: cannot read {arg}");
            return Value::Object(m);
        }
    };
    let mut name: String = name.chars().take(MAX_NAME).collect();
    name.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() {
        warn!("variable_add: no usable name in {arg}");
        return Value::Object(m);
    }
    let entry = m
        .entry(name.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(e) = entry {
        for (k, v) in fields {
            e.insert(k.into(), v);
        }
    }
    info!("variable {name} updated");
    save(ctl, m)
}

/// `variable_remove`: a name or a list of names. Answers the list.
pub fn remove(ctl: &mut Controller, arg: &Value) -> Value {
    let mut m = stored(ctl);
    let names: Vec<&str> = match arg {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for n in names {
        if m.remove(n).is_some() {
            info!("variable {n} removed");
        }
    }
    save(ctl, m)
}
