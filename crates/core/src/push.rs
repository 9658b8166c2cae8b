//! Push and recording targets: `$variables` (INTERFACES §4.5) and the Mist parameters after the
//! last `?` of a target (§4.4). Pure: the clock and the custom variables are given.

use std::collections::BTreeMap;

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// The year (2026).
    pub year: i32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-60 (a leap second).
    pub second: u32,
    /// 1–7, Monday = 1.
    pub wday: u32,
    /// 1–366.
    pub yday: u32,
}

impl LocalTime {
    /// The local time of a unix time (seconds), in the system's time zone (`TZ`, else
    /// `/etc/localtime`, as `localtime_r` reads them); UTC when the zone cannot be read, the epoch
    /// for a time out of range.
    pub fn from_unix(t: i64) -> LocalTime {
        static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
        let zone = ZONE
            .get_or_init(|| jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC));
        let Ok(ts) = jiff::Timestamp::from_second(t) else {
            return LocalTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                wday: 4,
                yday: 1,
            };
        };
        let z = ts.to_zoned(zone.clone());
        LocalTime {
            year: z.year() as i32,
            month: z.month() as u32,
            day: z.day() as u32,
            hour: z.hour() as u32,
            minute: z.minute() as u32,
            second: z.second() as u32,
            wday: z.weekday().to_monday_one_offset() as u32,
            yday: z.day_of_year() as u32,
        }
    }

    /// The local time now.
    pub fn now() -> LocalTime {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        LocalTime::from_unix(t)
    }

    /// ISO 8601 week number, 1–53.
    pub fn iso_week(&self) -> u32 {
        let leap = |y: i32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let w = (self.yday as i32 - self.wday as i32 + 10) / 7;
        if w < 1 {
            // The last week of the previous year.
            let py = self.year - 1;
            let days_prev = if leap(py) { 366 } else { 365 };
            let yday_prev = self.yday as i32 + days_prev;
            return ((yday_prev - self.wday as i32 + 10) / 7) as u32;
        }
        let days = if leap(self.year) { 366 } else { 365 };
        if w == 53 {
            // Week 53 only when the Thursday of this week is still in this year.
            let thursday_yday = self.yday as i32 + (4 - self.wday as i32);
            if thursday_yday > days {
                return 1;
            }
        }
        w as u32
    }
}

/// What `$variables` expand from.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    /// Full stream name.
    pub stream: &'a str,
    /// `$source` (empty in push targets).
    pub source: &'a str,
    /// Custom variables (`config.variables[name].value`, or extra per-recording ones such as
    /// `segmentCounter`).
    pub custom: BTreeMap<String, String>,
}

/// The most nested expansions done (a variable whose value names a variable, …).
pub const MAX_DEPTH: usize = 10;
/// Custom variable names are at most this long.
pub const MAX_NAME: usize = 127;

fn builtin(name: &str, v: &Vars, t: &LocalTime) -> Option<String> {
    let base = v.stream.split('+').next().unwrap_or("");
    let wild = v.stream.split_once('+').map(|(_, w)| w).unwrap_or("");
    Some(match name {
        "stream" => v.stream.to_string(),
        "basename" => base.to_string(),
        "wildcard" => wild.to_string(),
        "pluswildcard" => {
            if wild.is_empty() {
                String::new()
            } else {
                format!("+{wild}")
            }
        }
        "source" => v.source.to_string(),
        "datetime" => format!(
            "{:04}.{:02}.{:02}.{:02}.{:02}.{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        "year" => format!("{:04}", t.year),
        "month" => format!("{:02}", t.month),
        "day" => format!("{:02}", t.day),
        "hour" => format!("{:02}", t.hour),
        "minute" => format!("{:02}", t.minute),
        "second" => format!("{:02}", t.second),
        "wday" => t.wday.to_string(),
        "yday" => format!("{:03}", t.yday),
        "week" => format!("{:02}", t.iso_week()),
        _ => return None,
    })
}

/// One pass: replaces every known `$name` / `${name}`; unknown ones stay as written.
/// Returns whether anything was replaced.
fn pass(s: &str, v: &Vars, t: &LocalTime) -> (String, bool) {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(e) => (&b[..e], e + 2),
                None => ("", 0),
            }
        } else {
            let e = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..e], e)
        };
        let value = if name.is_empty() || name.len() > MAX_NAME {
            None
        } else {
            v.custom.get(name).cloned().or_else(|| builtin(name, v, t))
        };
        match value {
            Some(val) => {
                out.push_str(&val);
                changed = true;
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, changed)
}

/// Expands `$variables` in `s`, again in the result up to [`MAX_DEPTH`] times.
pub fn expand(s: &str, v: &Vars, t: &LocalTime) -> String {
    let mut cur = s.to_string();
    for _ in 0..MAX_DEPTH {
        let (next, changed) = pass(&cur, v, t);
        cur = next;
        if !changed {
            break;
        }
    }
    cur
}

/// The Mist parameters of a target (INTERFACES §4.4) that recordings use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushParams {
    /// `video`: the video tracks to take (a track selector).
    pub video: Option<String>,
    /// `audio`: the audio tracks to take (a track selector).
    pub audio: Option<String>,
    /// Media time to start / stop at, ms.
    pub recstart: Option<i64>,
    /// See `recstart`.
    pub recstop: Option<i64>,
    /// Unix seconds (already made absolute: ≤ 36000 is relative to `now`).
    pub startunix: Option<i64>,
    /// See `startunix`.
    pub stopunix: Option<i64>,
    /// Seconds to record.
    pub duration: Option<u64>,
    /// Seconds per file, keyframe-aligned.
    pub split: Option<u64>,
    /// `append`: add to an existing file instead of replacing it.
    pub append: bool,
    /// `realtime`: send at playback speed instead of as fast as possible.
    pub realtime: bool,
    /// Every parameter as given, for those not modelled here.
    pub all: BTreeMap<String, String>,
}

/// Percent-decodes a query component (`+` is a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(c) => {
                        out.push(c);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a target into what is written to and its parameters: everything after the **last**
/// `?` is Mist parameters. `now`: unix seconds, for relative `startunix`/`stopunix`.
pub fn split_target(target: &str, now: i64) -> (String, PushParams) {
    let Some((base, query)) = target.rsplit_once('?') else {
        return (target.to_string(), PushParams::default());
    };
    let mut p = PushParams::default();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (unescape(k), unescape(v));
        let num = v.trim().parse::<i64>().ok();
        let unix = |n: i64| if n <= 36000 { now + n } else { n };
        match k.as_str() {
            "video" => p.video = Some(v.clone()),
            "audio" => p.audio = Some(v.clone()),
            "recstart" | "start" => p.recstart = num,
            "recstop" | "stop" => p.recstop = num,
            "startunix" | "unixstart" | "recstartunix" => p.startunix = num.map(unix),
            "stopunix" | "unixstop" | "recstopunix" => p.stopunix = num.map(unix),
            "duration" => p.duration = num.filter(|n| *n > 0).map(|n| n as u64),
            "split" => p.split = num.filter(|n| *n > 0).map(|n| n as u64),
            "append" => p.append = v.is_empty() || !matches!(v.as_str(), "0" | "false"),
            "realtime" => p.realtime = v.is_empty() || !matches!(v.as_str(), "0" | "false"),
            _ => {}
        }
        p.all.insert(k, v);
    }
    (base.to_string(), p)
}

/// Whether an auto-push rule's stream (`live` exact, `live+` every wildcard of `live`, or a full
/// `live+x`) applies to an active stream.
pub fn rule_matches(rule: &str, stream: &str) -> bool {
    if rule == stream {
        return true;
    }
    match rule.strip_suffix('+') {
        Some(base) => stream
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('+')),
        None => false,
    }
}

/// Whether `matcher` picks `stream`: the full name, `base+` (every wildcard stream of `base`),
/// or `#tag` (a stream carrying that tag, INTERFACES §4.1).
pub fn stream_matches(matcher: &str, stream: &str, tags: &[String]) -> bool {
    match matcher.strip_prefix('#') {
        Some(tag) => !tag.is_empty() && tags.iter().any(|t| t == tag),
        None => rule_matches(matcher, stream),
    }
}

/// The value of the variable `name` (custom first, then the built-in ones), expanded;
/// None when there is no such variable.
pub fn lookup(name: &str, v: &Vars, t: &LocalTime) -> Option<String> {
    let name = name.trim_start_matches('$');
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let raw = v
        .custom
        .get(name)
        .cloned()
        .or_else(|| builtin(name, v, t))?;
    Some(expand(&raw, v, t))
}

/// MistServer's truth of a text: `1`, `true`, `yes`, `on` (any case; a non-zero number).
fn truthy(s: &str) -> bool {
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "true" | "yes" | "y" | "on" | "t" => true,
        _ => s.parse::<f64>().is_ok_and(|n| n.abs() > 0.0),
    }
}

/// One comparison of an auto-push rule (INTERFACES §3.4 `push_auto_add`): `op` 0 true, 1
/// false, 2 ==, 3 !=, 10–13 numeric > ≥ < ≤, 20–23 lexical > ≥ < ≤. An unknown operator is
/// false.
pub fn check_condition(current: &str, op: i64, value: &str) -> bool {
    let num = |s: &str| s.trim().parse::<f64>().unwrap_or(0.0);
    match op {
        0 => truthy(current),
        1 => !truthy(current),
        2 => current == value,
        3 => current != value,
        10 => num(current) > num(value),
        11 => num(current) >= num(value),
        12 => num(current) < num(value),
        13 => num(current) <= num(value),
        20 => current > value,
        21 => current >= value,
        22 => current < value,
        23 => current <= value,
        _ => false,
    }
}

/// What an auto-push rule's `start_rule`/`end_rule` (`[variable, op, value]`) says now: the
/// variable (without `$`) compared with the value (`$variables` in it expanded). A rule that is
/// not such an array, or names no variable that exists, is false (as MistServer).
pub fn rule_holds(rule: &serde_json::Value, v: &Vars, t: &LocalTime) -> bool {
    let Some(a) = rule.as_array() else {
        return false;
    };
    let (Some(var), Some(op), Some(value)) = (a.first(), a.get(1), a.get(2)) else {
        return false;
    };
    let Some(current) = var.as_str().and_then(|n| lookup(n, v, t)) else {
        return false;
    };
    let op = op
        .as_i64()
        .or_else(|| op.as_str().and_then(|s| s.trim().parse().ok()))
        .unwrap_or(-1);
    let value = match value {
        serde_json::Value::String(s) => expand(s, v, t),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    check_condition(&current, op, &value)
}

/// Whether an auto-push rule (`{stream, target, start_rule?, end_rule?, inhibit?, …}`) lets a
/// push of `v.stream` (carrying `tags`) run now: not while its `end_rule` holds, only while
/// its `start_rule` (if any) holds. `inhibit` (a matcher or a list of them: name, `base+`,
/// `#tag`) only keeps a push from starting: see [`inhibited`].
pub fn rule_allows(rule: &serde_json::Value, v: &Vars, t: &LocalTime) -> bool {
    if rule.get("end_rule").is_some_and(|r| rule_holds(r, v, t)) {
        return false;
    }
    rule.get("start_rule").is_none_or(|r| rule_holds(r, v, t))
}

/// Whether a rule's `inhibit` keeps its push from starting on `stream`.
pub fn inhibited(rule: &serde_json::Value, stream: &str, tags: &[String]) -> bool {
    match rule.get("inhibit") {
        Some(serde_json::Value::String(m)) => !m.is_empty() && stream_matches(m, stream, tags),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|m| !m.is_empty() && stream_matches(m, stream, tags)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> LocalTime {
        LocalTime {
            year: 2024,
            month: 1,
            day: 5,
            hour: 13,
            minute: 45,
            second: 7,
            wday: 5,
            yday: 5,
        }
    }

    #[test]
    fn builtins() {
        let v = Vars {
            stream: "live+alice",
            ..Default::default()
        };
        assert_eq!(
            expand("/rec/$wildcard/$datetime.mkv", &v, &t()),
            "/rec/alice/2024.01.05.13.45.07.mkv"
        );
        assert_eq!(
            expand("$stream|$basename|$pluswildcard|${wildcard}x", &v, &t()),
            "live+alice|live|+alice|alicex"
        );
        assert_eq!(
            expand(
                "$year-$month-$day $hour:$minute:$second w$wday d$yday W$week",
                &v,
                &t()
            ),
            "2024-01-05 13:45:07 w5 d005 W01"
        );
        let plain = Vars {
            stream: "live",
            ..Default::default()
        };
        assert_eq!(
            expand("$wildcard|$pluswildcard|$source", &plain, &t()),
            "||"
        );
        // Unknown variables and lone dollars stay.
        assert_eq!(expand("$nope $ ${x", &plain, &t()), "$nope $ ${x");
    }

    #[test]
    fn custom_and_recursion() {
        let mut v = Vars {
            stream: "live+bob",
            ..Default::default()
        };
        v.custom.insert("dir".into(), "/media/$where".into());
        v.custom.insert("where".into(), "rec/$wildcard".into());
        assert_eq!(expand("$dir/x.ts", &v, &t()), "/media/rec/bob/x.ts");
        // A loop stops after MAX_DEPTH passes.
        v.custom.insert("a".into(), "<$a>".into());
        let out = expand("$a", &v, &t());
        assert_eq!(out.matches('<').count(), MAX_DEPTH);
    }

    #[test]
    fn iso_weeks() {
        let lt = |year, yday, wday| LocalTime {
            year,
            yday,
            wday,
            ..t()
        };
        // 2021-01-01 was a Friday: ISO week 53 of 2020.
        assert_eq!(lt(2021, 1, 5).iso_week(), 53);
        // 2024-12-30 Monday: week 1 of 2025.
        assert_eq!(lt(2024, 365, 1).iso_week(), 1);
        // 2020-12-31 Thursday: week 53.
        assert_eq!(lt(2020, 366, 4).iso_week(), 53);
        // 2023-06-15 Thursday (yday 166): week 24.
        assert_eq!(lt(2023, 166, 4).iso_week(), 24);
        let now = LocalTime::from_unix(1_700_000_000);
        assert!(now.year == 2023 && (1..=53).contains(&now.iso_week()));
    }

    #[test]
    fn parameters() {
        let (base, p) = split_target(
            "/rec/a.mkv?x=1?recstart=1000&recstop=5000&duration=60&split=10&append&video=maxbps&audio=none&startunix=10",
            1_000_000,
        );
        assert_eq!(base, "/rec/a.mkv?x=1");
        assert_eq!(p.recstart, Some(1000));
        assert_eq!(p.recstop, Some(5000));
        assert_eq!(p.duration, Some(60));
        assert_eq!(p.split, Some(10));
        assert!(p.append && !p.realtime);
        assert_eq!(p.video.as_deref(), Some("maxbps"));
        assert_eq!(p.audio.as_deref(), Some("none"));
        assert_eq!(p.startunix, Some(1_000_010));
        let (base, p) = split_target("/rec/b.ts", 0);
        assert_eq!((base.as_str(), p), ("/rec/b.ts", PushParams::default()));
        let (_, p) = split_target("/x?split=abc&duration=-5&audio=a%2Cb&%zz=1", 0);
        assert_eq!((p.split, p.duration), (None, None));
        assert_eq!(p.audio.as_deref(), Some("a,b"));
        assert!(p.all.contains_key("%zz"));
    }

    #[test]
    fn rules() {
        assert!(rule_matches("live+", "live+alice"));
        assert!(!rule_matches("live+", "live"));
        assert!(!rule_matches("live+", "lively+x"));
        assert!(rule_matches("live", "live"));
        assert!(!rule_matches("live", "live+alice"));
        assert!(rule_matches("live+alice", "live+alice"));
    }

    #[test]
    fn push_rules() {
        let mut v = Vars {
            stream: "live+alice",
            ..Default::default()
        };
        v.custom.insert("onair".into(), "1".into());
        v.custom.insert("viewers".into(), "12".into());
        v.custom.insert("who".into(), "$wildcard".into());
        let tags = vec!["vip".to_string()];
        assert!(stream_matches("#vip", "x", &tags));
        assert!(!stream_matches("#", "x", &tags));
        assert!(stream_matches("live+", "live+alice", &[]));
        assert!(!stream_matches("#vip", "live+alice", &[]));
        let r = |j: serde_json::Value| rule_holds(&j, &v, &t());
        assert!(r(serde_json::json!(["onair", 0, ""])));
        assert!(!r(serde_json::json!(["onair", 1, ""])));
        assert!(r(serde_json::json!(["viewers", 10, 9])));
        assert!(r(serde_json::json!(["viewers", 10, "9"])));
        assert!(!r(serde_json::json!(["viewers", 12, 9])));
        assert!(r(serde_json::json!(["viewers", 20, "100"]))); // lexical: "12" > "100"
        assert!(r(serde_json::json!(["who", 2, "alice"])));
        assert!(r(serde_json::json!(["$who", 2, "$wildcard"])));
        assert!(r(serde_json::json!(["wildcard", 3, "bob"])));
        assert!(!r(serde_json::json!(["nosuch", 1, ""])));
        assert!(!r(serde_json::json!(["onair", 99, ""])));
        assert!(!r(serde_json::json!(["onair"])));
        assert!(!r(serde_json::json!("onair")));
        let rule = serde_json::json!({"stream": "live+", "target": "/x.mkv",
            "start_rule": ["onair", 0, ""], "end_rule": ["viewers", 10, 100]});
        assert!(rule_allows(&rule, &v, &t()));
        v.custom.insert("viewers".into(), "101".into());
        assert!(!rule_allows(&rule, &v, &t()));
        v.custom.insert("viewers".into(), "1".into());
        v.custom.insert("onair".into(), "no".into());
        assert!(!rule_allows(&rule, &v, &t()));
        assert!(rule_allows(&serde_json::json!({}), &v, &t()));
        let inh = serde_json::json!({"inhibit": ["live+bob", "#vip"]});
        assert!(inhibited(&inh, "live+bob", &[]));
        assert!(inhibited(&inh, "live+carol", &tags));
        assert!(!inhibited(&inh, "live+carol", &[]));
        assert!(inhibited(
            &serde_json::json!({"inhibit": "live+"}),
            "live+x",
            &[]
        ));
        assert!(!inhibited(
            &serde_json::json!({"inhibit": ""}),
            "live+x",
            &[]
        ));
    }
}
