//! Auto-push rule conditions through the API (INTERFACES §2 `auto_push`, §3.4): a rule's
//! `start_rule` and `end_rule` on custom `$variables` (`variable_add`) start and stop its
//! pushes, `inhibit` keeps a matching stream from getting one, and `push_start` to `#tag`
//! pushes every active stream carrying the tag. ffmpeg publishes, ffprobe reads what was
//! recorded.

mod common;

use common::{publish, serial, wait_stream, wait_until, Controller, TempDir};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `(stream, state, bytes)` of every push in `push_list`.
fn pushes(c: &Controller) -> Vec<(String, String, u64)> {
    c.api(&json!({"push_list": true}))["push_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p[1].as_str().unwrap_or("").to_string(),
                p[5]["state"].as_str().unwrap_or("").to_string(),
                p[5]["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Seconds of media ffprobe finds in `file` (panics when it cannot read it).
fn duration(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (scripts/test installs it)");
    assert!(
        out.status.success(),
        "ffprobe {file:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {file:?}"))
}

#[test]
fn start_rule_end_rule_inhibit_and_tag_pushes() {
    let _g = serial();
    let c = Controller::start_edited(json!({}), |cfg| {
        cfg["streams"]["live"]["tags"] = json!(["vip"]);
        cfg["push_settings"] = json!({"wait": 1, "maxspeed": 0});
    });
    let dir = TempDir::new("pushrules");
    let v = c.api(&json!({"variable_add": ["onair", "0"]}));
    assert_eq!(v["variable_list"]["onair"]["value"], "0", "{v}");
    let _a = publish(&c.publish_url("live+a"), "320x240", 90);
    let _b = publish(&c.publish_url("live+b"), "320x240", 90);
    wait_stream(&c, "live+a");
    wait_stream(&c, "live+b");

    // `#tag` in push_start: both streams of `live` carry `vip`; no stream carries `nope`.
    let tagged = format!("{}/tag/$wildcard.ts", dir.path().display());
    c.api(&json!({"push_start": ["#nope", tagged]}));
    let v = c.api(&json!({"push_start": ["#vip", tagged]}));
    assert!(v.get("push_start_error").is_none(), "{v}");
    wait_until("a tag push per stream", Duration::from_secs(20), || {
        let mut l = pushes(&c);
        l.sort();
        l.len() == 2
            && l[0].0 == "live+a"
            && l[1].0 == "live+b"
            && l.iter().all(|(_, st, b)| st == "active" && *b > 0)
    });
    c.api(&json!({"push_stop": ["live+a", "live+b"]}));
    wait_until("the tag pushes to end", Duration::from_secs(20), || {
        pushes(&c).iter().all(|(_, st, _)| st != "active")
    });
    for w in ["a", "b"] {
        let f = dir.path().join(format!("tag/{w}.ts"));
        assert!(duration(&f) > 0.5, "{f:?}");
    }

    // A rule that holds only while $onair is 1, stops when $halt is true, and never
    // records live+b.
    let target = format!("{}/rule/$wildcard.ts", dir.path().display());
    let v = c.api(&json!({"push_auto_add": {
        "stream": "live+", "target": target,
        "start_rule": ["onair", 2, "1"], "end_rule": ["halt", 0, ""], "inhibit": "live+b"
    }}));
    assert_eq!(v["auto_push"].as_object().unwrap().len(), 1, "{v}");
    // Several scans (twice a second, wait 1 s): the start rule does not hold, nothing starts.
    std::thread::sleep(Duration::from_secs(4));
    let l = pushes(&c);
    assert!(
        l.iter()
            .all(|(_, st, _)| st != "active" && st != "starting"),
        "{l:?}"
    );
    c.api(&json!({"variable_add": {"name": "onair", "value": "1"}}));
    wait_until("the rule's push of live+a", Duration::from_secs(20), || {
        pushes(&c)
            .iter()
            .any(|(s, st, b)| s == "live+a" && st == "active" && *b > 0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let l = pushes(&c);
    assert!(
        !l.iter().any(|(s, st, _)| s == "live+b" && st == "active"),
        "inhibited: {l:?}"
    );
    // The end rule holds: the push stops and is not retried.
    c.api(&json!({"variable_add": ["halt", "yes"]}));
    wait_until("the push to stop", Duration::from_secs(20), || {
        !pushes(&c).iter().any(|(_, st, _)| st == "active")
    });
    let f = dir.path().join("rule/a.ts");
    assert!(duration(&f) > 0.5, "{f:?}");
    std::thread::sleep(Duration::from_secs(3));
    let l = pushes(&c);
    assert!(!l.iter().any(|(_, st, _)| st == "active"), "{l:?}");
    // The end rule gone: the rule records live+a again.
    let v = c.api(&json!({"variable_remove": "halt"}));
    assert!(v["variable_list"].get("halt").is_none(), "{v}");
    wait_until("the push to start again", Duration::from_secs(20), || {
        pushes(&c)
            .iter()
            .any(|(s, st, _)| s == "live+a" && st == "active")
    });
    let v: Value = c.api(&json!({"variable_list": true}));
    assert_eq!(v["variable_list"]["onair"]["value"], "1", "{v}");
}

/// The first start of each push target in a log of `(unix time, target)` lines, for the
/// targets whose file name starts with `group`.
fn first_starts(log: &Path, group: &str) -> Vec<(f64, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut firsts: Vec<(f64, String)> = Vec::new();
    for l in text.lines() {
        let Some((t, target)) = l.split_once(' ') else {
            continue;
        };
        let name = target.rsplit('/').next().unwrap_or("");
        if !name.starts_with(group) || firsts.iter().any(|(_, n)| n == target) {
            continue;
        }
        if let Ok(t) = t.parse() {
            firsts.push((t, target.to_string()));
        }
    }
    firsts
}

/// `push_settings.maxspeed` 1: three `push_start`s in a row, then three auto-push rules that
/// all apply to an active stream at once, start one a second. A PUSH_OUT_START handler (run as
/// each push starts) logs the time: the first and the last start of each three are more than a
/// second apart (two windows of one second each lie between them), where without the limit
/// all three start in the same turn of the controller's loop. The pushes still record.
#[test]
fn maxspeed_spreads_push_starts() {
    let _g = serial();
    let dir = TempDir::new("maxspeed");
    let log = dir.path().join("starts");
    let answer = format!(
        "t=$(printf '%s\\n' \"$p\" | sed -n 2p); echo \"$(date +%s.%N) $t\" >> '{}'; printf '%s' \"$t\"",
        log.display()
    );
    let h = common::handler_script(dir.path(), "push_out_start", &answer);
    let c = Controller::start_edited(json!({}), |cfg| {
        cfg["push_settings"] = json!({"wait": 0, "maxspeed": 1});
    });
    c.api(&json!({"config": {"triggers": {
        "PUSH_OUT_START": [{"handler": h, "sync": true}]
    }}}));
    let _p = publish(&c.publish_url("live+ms"), "320x240", 60);
    wait_stream(&c, "live+ms");
    let spread = |s: &[(f64, String)]| {
        let mut t: Vec<f64> = s.iter().map(|x| x.0).collect();
        t.sort_by(f64::total_cmp);
        t[t.len() - 1] - t[0]
    };

    let manual: Vec<String> = (1..=3)
        .map(|i| format!("{}/m{i}.ts?duration=2", dir.path().display()))
        .collect();
    for t in &manual {
        let v = c.api(&json!({"push_start": ["live+ms", t]}));
        assert!(v.get("push_start_error").is_none(), "{v}");
    }
    wait_until("3 push_start starts", Duration::from_secs(30), || {
        first_starts(&log, "m").len() == 3
    });
    let m = first_starts(&log, "m");
    assert!(spread(&m) >= 1.0, "push_start over maxspeed: {m:?}");
    wait_until("the push_start recordings", Duration::from_secs(30), || {
        c.push_list().iter().all(|p| p[5]["state"] == "finished")
    });
    for i in 1..=3 {
        let f = dir.path().join(format!("m{i}.ts"));
        assert!(duration(&f) > 0.5, "{f:?}");
    }

    let rules: Vec<Value> = (1..=3)
        .map(|i| {
            json!([
                "live+ms",
                format!("{}/a{i}.ts?duration=2", dir.path().display())
            ])
        })
        .collect();
    let v = c.api(&json!({ "push_auto_add": rules }));
    assert_eq!(v["auto_push"].as_object().unwrap().len(), 3, "{v}");
    wait_until("3 auto-push starts", Duration::from_secs(30), || {
        first_starts(&log, "a").len() == 3
    });
    let a = first_starts(&log, "a");
    assert!(spread(&a) >= 1.0, "auto-pushes over maxspeed: {a:?}");
}
