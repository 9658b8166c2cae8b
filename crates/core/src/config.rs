//! The MistServer JSON config file (INTERFACES §2).
//!
//! The typed fields are the ones mist-rs acts on; every other key, at any level we model, is kept in
//! an `extra` map and written back unchanged, so a config written by MistServer or edited by hand
//! survives a load/save round trip. Stream, push and trigger details that only their consumers
//! interpret stay `serde_json::Value`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Keys of a config object that this model does not name, kept as they were read.
pub type Extra = Map<String, Value>;

/// The controller's config file (MistServer's layout), as read and written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// API accounts by user name.
    #[serde(default)]
    pub account: BTreeMap<String, Account>,
    /// The server-wide settings (`config` key).
    #[serde(default)]
    pub config: ServerConfig,
    /// Stream name → stream config (`source` plus input options).
    #[serde(default)]
    pub streams: Map<String, Value>,
    /// MistServer's `push_settings` (`wait`, `maxspeed`), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_settings: Option<Value>,
    /// Automatic pushes, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autopushes: Option<Value>,
    /// Other keys, kept as they were read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An API account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// md5 hex of the password.
    #[serde(default)]
    pub password: String,
    /// Other keys, kept as they were read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `config` object: controller, protocols, triggers and server-wide options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Where the API listens, and its user.
    #[serde(default)]
    pub controller: ControllerConfig,
    /// The connectors to run.
    #[serde(default)]
    pub protocols: Vec<Protocol>,
    /// Trigger name → handlers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub triggers: BTreeMap<String, Vec<TriggerHandler>>,
    /// This server's id, as the API reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverid: Option<String>,
    /// Log level (MistServer's debug number, 0-10).
    #[serde(
        default,
        deserialize_with = "lenient_u8",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug: Option<u8>,
    /// Path of the Prometheus endpoint on the API port (none: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// Where the access log goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accesslog: Option<String>,
    /// The stream played when a requested one does not exist.
    #[serde(
        default,
        rename = "defaultStream",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_stream: Option<String>,
    /// Reverse proxies whose forwarding headers are believed: an array or a space-separated string
    /// of addresses and `addr/prefix` subnets (loopback is always trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustedproxy: Option<Value>,
    /// Other keys, kept as they were read.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ServerConfig {
    /// The `trustedproxy` entries, from either form (array of strings, or one space-separated
    /// string).
    pub fn trusted_proxies(&self) -> Vec<String> {
        match &self.trustedproxy {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .flat_map(str::split_whitespace)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The API listener and its account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerConfig {
    /// API port ([`DEFAULT_API_PORT`] when absent).
    #[serde(
        default,
        deserialize_with = "lenient_u16",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    /// API interface address ([`DEFAULT_API_INTERFACE`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The account whose password the API asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Other keys, kept as they were read.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One configured connector. Options other than `connector` are the connector's own (from its
/// capabilities): `port`, `interface`, `pubaddr`, `cert`, `key`, `certbot`, ….
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// The connector's name (`RTMP`, `HTTP`, `HLS` …).
    pub connector: String,
    /// The connector's own options.
    #[serde(flatten)]
    pub options: Extra,
}

impl Protocol {
    /// A connector with no options.
    pub fn new(connector: &str) -> Protocol {
        Protocol {
            connector: connector.to_string(),
            options: Extra::new(),
        }
    }
    /// The same with option `key` set to `v`.
    pub fn with(mut self, key: &str, v: impl Into<Value>) -> Protocol {
        self.options.insert(key.to_string(), v.into());
        self
    }
    /// The `port` option as a number (MistServer writes numbers; strings are accepted).
    pub fn port(&self) -> Option<u16> {
        self.options.get("port").and_then(value_u16)
    }
}

/// One trigger handler: `{handler, sync, streams, default, params}`, or MistServer's older
/// array form `[handler, sync, [streams]]` (read, written back as an object).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TriggerHandler {
    /// A URL (HTTP handler) or an executable path.
    pub handler: String,
    /// Whether the trigger waits for the handler's answer.
    pub sync: bool,
    /// The streams it fires for (empty: every stream).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
    /// The answer assumed when the handler cannot be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Other keys (`params` …), kept as they were read.
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Deserialize)]
struct TriggerHandlerObject {
    #[serde(default)]
    handler: String,
    #[serde(default, deserialize_with = "lenient_bool")]
    sync: bool,
    #[serde(default)]
    streams: Vec<String>,
    #[serde(default)]
    default: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

impl<'de> Deserialize<'de> for TriggerHandler {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(a) => Ok(TriggerHandler {
                handler: a.first().and_then(Value::as_str).unwrap_or("").to_string(),
                sync: a
                    .get(1)
                    .is_some_and(|v| lenient_bool(v.clone()).unwrap_or(false)),
                streams: a
                    .get(2)
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                default: None,
                extra: Extra::new(),
            }),
            v => {
                let o: TriggerHandlerObject =
                    serde_json::from_value(v).map_err(serde::de::Error::custom)?;
                Ok(TriggerHandler {
                    handler: o.handler,
                    sync: o.sync,
                    streams: o.streams,
                    default: o.default,
                    extra: o.extra,
                })
            }
        }
    }
}

/// Reads a number that may be written as a JSON number or a string.
pub fn value_u16(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_u16<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(value_u16))
}

fn lenient_u8<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(value_u16).map(|n| n.min(10) as u8))
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Bool(b)) => b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
        }
        _ => false,
    })
}

/// The API port when the config names none.
pub const DEFAULT_API_PORT: u16 = 4242;
/// The API interface when the config names none.
pub const DEFAULT_API_INTERFACE: &str = "0.0.0.0";

/// The built-in config: API on 127.0.0.1:4242, RTMP on 1935, HTTP on 8080, a `live` stream that
/// accepts pushes from anyone.
pub fn default_config() -> Config {
    let mut c = Config::default();
    c.config.controller.port = Some(DEFAULT_API_PORT);
    c.config.controller.interface = Some("127.0.0.1".to_string());
    c.config.protocols = vec![
        Protocol::new("RTMP").with("port", 1935),
        Protocol::new("HTTP").with("port", 8080),
        // The formats MistOutHTTP serves on the HTTP port (MistServer's default enables every
        // connector it finds).
        Protocol::new("HLS"),
        Protocol::new("CMAF"),
        Protocol::new("HTTPTS"),
        Protocol::new("FLV"),
        Protocol::new("MP4"),
        Protocol::new("EBML"),
        Protocol::new("MP3"),
        Protocol::new("AAC"),
    ];
    c.config.debug = None;
    c.streams.insert(
        "live".to_string(),
        serde_json::json!({"name": "live", "source": "push://"}),
    );
    c.push_settings = Some(serde_json::json!({"wait": 3, "maxspeed": 0}));
    c
}

/// Why the config file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: String,
        /// What reading it gave.
        source: std::io::Error,
    },
    /// The file is not a config.
    #[error("{path} is not a valid config: {source}")]
    Parse {
        /// The config file.
        path: String,
        /// Where the JSON is wrong.
        source: serde_json::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The config file.
        path: String,
        /// What writing it gave.
        source: std::io::Error,
    },
}

impl Config {
    /// Parses a config file's text (empty text: the empty config).
    pub fn from_json(text: &str) -> Result<Config, serde_json::Error> {
        // An empty file is an empty config (MistServer writes "{}" for a fresh install).
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_json::from_str(text)
    }

    /// The config as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("config serialises")
    }

    /// A config from a JSON value.
    pub fn from_value(v: Value) -> Result<Config, serde_json::Error> {
        serde_json::from_value(v)
    }

    /// The config as pretty-printed JSON, as it is written to its file.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Loads a file. `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Config::from_json(&text)
            .map(Some)
            .map_err(|source| ConfigError::Parse {
                path: path.display().to_string(),
                source,
            })
    }

    /// Writes the config atomically: a temp file in the same directory, fsync, rename over the
    /// target, fsync the directory. A crash leaves either the old or the new file, never a torn one.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let mut text = self.to_json_pretty();
        text.push('\n');
        atomic_write(path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Sets (or replaces) an account with a plain-text password (stored as md5 hex by the caller).
    pub fn set_account(&mut self, user: &str, password_md5_hex: &str) {
        self.account.entry(user.to_string()).or_default().password = password_md5_hex.to_string();
    }
}

/// Atomic file replacement (see [`Config::save`]). Keeps the old file's permissions if it exists,
/// otherwise creates the file with mode 0600 (the config holds password hashes).
pub fn atomic_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let fname = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("config path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(fname);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    // O_EXCL|O_NOFOLLOW: the temp file is ours and new, never a file or symlink someone else
    // planted at that name (a stale one of ours, from a crash, is removed first; unlink does not
    // follow symlinks).
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&tmp)
    };
    let result = (|| {
        let mut f = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                create()?
            }
            r => r?,
        };
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mist-core-cfg-{}-{}", tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const MIST_CONFIG: &str = r#"{
      "account": {"admin": {"password": "21232f297a57a5a743894a0e4a801fc3", "ui": {"x": 1}}},
      "autopushes": [["live+", "/rec/$stream.mkv", 0, 0]],
      "config": {
        "accesslog": "LOG",
        "controller": {"interface": null, "port": "4242", "username": null},
        "debug": 3,
        "defaultStream": null,
        "limits": null,
        "location": {"lat": 0, "lon": 0, "name": ""},
        "prometheus": "metrics",
        "protocols": [
          {"connector": "RTMP", "port": 1935, "online": 1},
          {"connector": "HTTP", "pubaddr": ["https://x/"]},
          {"connector": "HLS", "listlimit": 0}
        ],
        "serverid": "abc",
        "sessionViewerMode": 14,
        "triggers": {"STREAM_PUSH": [{"handler": "/bin/true", "sync": true, "streams": ["live"], "default": "true"}]}
      },
      "push_settings": {"maxspeed": 0, "wait": 3},
      "streams": {"live": {"name": "live", "source": "push://", "DVR": 50000, "stop_sessions": false, "processes": []}},
      "ui_settings": {"sort": "name"},
      "variables": {"foo": {"value": "bar"}}
    }"#;

    #[test]
    fn parses_mistserver_config() {
        let c = Config::from_json(MIST_CONFIG).unwrap();
        assert_eq!(
            c.account["admin"].password,
            "21232f297a57a5a743894a0e4a801fc3"
        );
        assert_eq!(c.config.controller.port, Some(4242));
        assert_eq!(c.config.controller.interface, None);
        assert_eq!(c.config.debug, Some(3));
        assert_eq!(c.config.protocols.len(), 3);
        assert_eq!(c.config.protocols[0].connector, "RTMP");
        assert_eq!(c.config.protocols[0].port(), Some(1935));
        assert_eq!(c.config.protocols[1].port(), None);
        assert_eq!(c.config.triggers["STREAM_PUSH"][0].handler, "/bin/true");
        assert!(c.config.triggers["STREAM_PUSH"][0].sync);
        assert_eq!(c.config.prometheus.as_deref(), Some("metrics"));
        assert_eq!(c.config.serverid.as_deref(), Some("abc"));
        assert_eq!(c.streams["live"]["source"], "push://");
        assert!(c.extra.contains_key("ui_settings"));
        assert!(c.config.extra.contains_key("sessionViewerMode"));
    }

    #[test]
    fn round_trip_keeps_unknown_keys() {
        let c = Config::from_json(MIST_CONFIG).unwrap();
        let v = c.to_value();
        assert_eq!(v["ui_settings"], json!({"sort": "name"}));
        assert_eq!(v["variables"]["foo"]["value"], "bar");
        assert_eq!(v["account"]["admin"]["ui"], json!({"x": 1}));
        assert_eq!(v["config"]["sessionViewerMode"], 14);
        assert_eq!(v["config"]["location"]["name"], "");
        assert_eq!(v["config"]["protocols"][0]["online"], 1);
        assert_eq!(
            v["config"]["protocols"][1]["pubaddr"],
            json!(["https://x/"])
        );
        assert_eq!(v["config"]["protocols"][2]["listlimit"], 0);
        assert_eq!(v["streams"]["live"]["DVR"], 50000);
        assert_eq!(v["autopushes"][0][1], "/rec/$stream.mkv");
        assert_eq!(v["push_settings"]["wait"], 3);
        assert_eq!(v["config"]["triggers"]["STREAM_PUSH"][0]["default"], "true");
        // A second round trip is stable.
        let c2 = Config::from_value(v.clone()).unwrap();
        assert_eq!(c2, c);
        assert_eq!(c2.to_value(), v);
    }

    #[test]
    fn empty_and_minimal() {
        assert_eq!(Config::from_json("").unwrap(), Config::default());
        let c = Config::from_json("{}").unwrap();
        assert!(c.config.protocols.is_empty());
        assert!(Config::from_json("[1]").is_err());
        assert!(Config::from_json("{\"config\": 5}").is_err());
    }

    #[test]
    fn default_has_expected_shape() {
        let c = default_config();
        assert_eq!(c.config.controller.port, Some(4242));
        assert_eq!(c.config.controller.interface.as_deref(), Some("127.0.0.1"));
        let names: Vec<_> = c
            .config
            .protocols
            .iter()
            .map(|p| (p.connector.as_str(), p.port()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("RTMP", Some(1935)),
                ("HTTP", Some(8080)),
                ("HLS", None),
                ("CMAF", None),
                ("HTTPTS", None),
                ("FLV", None),
                ("MP4", None),
                ("EBML", None),
                ("MP3", None),
                ("AAC", None)
            ]
        );
        assert_eq!(c.streams["live"]["source"], "push://");
        let back = Config::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn temp_file_symlink_is_not_followed() {
        let d = tmpdir("symlink");
        let victim = d.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = d.join("mist.conf");
        let tmp = d.join(format!(".mist.conf.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        atomic_write(&path, b"{}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::symlink_metadata(&tmp).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn atomic_save_and_load() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("save");
        let p = d.join("mist.conf");
        assert!(Config::load(&p).unwrap().is_none());
        let mut c = default_config();
        c.set_account("admin", "abc");
        c.save(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Config::load(&p).unwrap().unwrap();
        assert_eq!(back, c);
        // Overwrite keeps permissions and leaves no temp files behind.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        c.streams.insert("two".into(), json!({"source": "push://"}));
        c.save(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let files: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(Config::load(&p)
            .unwrap()
            .unwrap()
            .streams
            .contains_key("two"));
        // Invalid files are reported as parse errors.
        std::fs::write(&p, "{nope").unwrap();
        assert!(matches!(Config::load(&p), Err(ConfigError::Parse { .. })));
        // Unwritable directory: error, no panic.
        assert!(c.save(&d.join("missing/dir/x.conf")).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
