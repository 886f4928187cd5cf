//! Typed configuration and its layering (R30).
//!
//! Order, later wins: built-in defaults → `config.yaml` in the working
//! directory (or `--config PATH`) → `HUAYI_<SECTION>__<KEY>` environment
//! variables → command-line flags (`--listen`, `--set key=value`).
//! Every layer is merged as a YAML tree before one typed deserialization, so a
//! misspelled key or a bad value is reported once, with its dotted name.

use std::{fmt, net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use yaml_serde::{Mapping, Value};

/// Everything the server can be told. Field names are the config keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve HTTP and WebSocket on.
    pub listen: SocketAddr,
    pub heartbeat: Heartbeat,
    pub offline: Offline,
    pub limits: Limits,
    pub rate_limits: RateLimits,
    pub cors: Cors,
    pub metrics: Metrics,
    pub log: Log,
    /// How long shutdown waits for sockets and requests before exiting anyway.
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Heartbeat {
    /// Interval between server `pong` frames (R22).
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub pong_interval: Duration,
    /// Silence after which a socket is closed with 4003 and its user is offline (R23).
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Offline {
    /// How long a message waits for its recipient (R25).
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub ttl: Duration,
    /// Per-user cap on stored messages; the oldest go first (R26).
    pub max_messages_per_user: usize,
    /// Per-user cap on stored bytes (serialized frames).
    pub max_bytes_per_user: usize,
    /// Cap on stored bytes over all users.
    pub max_bytes_total: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted HTTP request body (413 above).
    pub max_body_bytes: usize,
    /// Largest message `content`, in bytes (413 above).
    pub max_content_bytes: usize,
    /// Most names in a `to` list (400 above).
    pub max_to: usize,
    /// Largest client WebSocket frame; bigger closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Frames a socket may have queued but unwritten before it is closed with 4004.
    pub send_queue_frames: usize,
    /// Bytes a socket may have queued but unwritten before it is closed with 4004.
    pub send_queue_bytes: usize,
    /// Most distinct users (logged in or only addressed) the server keeps;
    /// beyond it, messages to new names are refused with 503.
    pub max_users: usize,
    /// Fan-outs larger than this are split over several tasks.
    pub fanout_chunk: usize,
    /// tungstenite read buffer per socket (its default is 128 KiB); it grows
    /// on demand for larger frames, up to `max_frame_bytes`.
    pub ws_read_buffer: usize,
    /// Bytes tungstenite gathers before writing to the socket: frames queued
    /// together go out in one syscall.
    pub ws_write_buffer: usize,
    /// Open WebSockets over all clients; more handshakes get 503.
    pub max_sockets: usize,
    /// Open WebSockets per client IP; more handshakes get 429.
    pub max_sockets_per_ip: usize,
    /// A client must send a request's headers within this time, else the
    /// connection is closed (slowloris).
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub header_read_timeout: Duration,
    /// A request, body included, must be handled within this time, else 408.
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub request_timeout: Duration,
}

/// Token buckets: `*_per_second` refill, `*_burst` capacity; 0 turns one off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// `POST /api/login` per client IP.
    pub logins_per_second: f64,
    pub login_burst: u32,
    /// `POST /api/messages` per user.
    pub messages_per_second: f64,
    pub message_burst: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed to call the API from a browser, e.g.
    /// `["https://chat.example.com"]`; empty turns CORS off.
    pub allow_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// Serve `GET /metrics` on the main listener.
    pub enabled: bool,
    /// Also (or only, with `enabled: false`) serve it on this address.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `tracing` filter, e.g. `info` or `huayi_im=debug`; `RUST_LOG` wins if set.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// One line per HTTP request (method, route, status, duration).
    pub requests: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            heartbeat: Heartbeat::default(),
            offline: Offline::default(),
            limits: Limits::default(),
            rate_limits: RateLimits::default(),
            cors: Cors::default(),
            metrics: Metrics::default(),
            log: Log::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            pong_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Offline {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_messages_per_user: 1000,
            max_bytes_per_user: 16 << 20,
            max_bytes_total: 256 << 20,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_content_bytes: 64 << 10,
            max_to: 1000,
            max_frame_bytes: 64 << 10,
            send_queue_frames: 1024,
            send_queue_bytes: 8 << 20,
            max_users: 1_000_000,
            fanout_chunk: 2048,
            ws_read_buffer: 512,
            ws_write_buffer: 8192,
            max_sockets: 100_000,
            max_sockets_per_ip: 10_000,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            logins_per_second: 2.0,
            login_burst: 30,
            messages_per_second: 20.0,
            message_burst: 200,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            requests: true,
        }
    }
}

/// Why configuration could not be loaded.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where configuration comes from, one field per layer above the defaults.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// `--config PATH`; without it `config.yaml` is read if it exists.
    pub file: Option<&'a Path>,
    /// Environment variables as `(name, value)`; only `HUAYI_*` are read.
    pub env: Vec<(String, String)>,
    /// `key=value` overrides from the command line, dotted keys.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// Loads every layer in order (R30). Also returns warnings: environment
    /// variables named `HUAYI_*` that are no setting (other tools use the
    /// prefix too) are ignored rather than fatal; a misspelled key in the file
    /// or a flag is still an error.
    pub fn load(sources: Sources<'_>) -> Result<(Self, Vec<String>), ConfigError> {
        let known = yaml_serde::to_value(Config::default())
            .map_err(|e| ConfigError(format!("internal: {e}")))?;
        let mut warnings = Vec::new();
        let mut tree = Value::Mapping(Mapping::new());
        let file = match sources.file {
            Some(path) => Some(read_file(path)?),
            None if Path::new("config.yaml").exists() => Some(read_file(Path::new("config.yaml"))?),
            None => None,
        };
        if let Some(file) = file {
            merge(&mut tree, file);
        }
        for (name, value) in &sources.env {
            let Some(key) = name.strip_prefix("HUAYI_") else {
                continue;
            };
            let key = key.to_ascii_lowercase().replace("__", ".");
            if lookup(&known, &key).is_none() {
                warnings.push(format!("ignoring {name}: `{key}` is not a setting"));
                continue;
            }
            set(&mut tree, &key, value);
        }
        for (key, value) in &sources.overrides {
            set(&mut tree, key, value);
        }
        let config: Config = yaml_serde::from_value(tree)
            .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
        config.check()?;
        Ok((config, warnings))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "heartbeat.pong_interval",
                self.heartbeat.pong_interval.is_zero(),
            ),
            (
                "heartbeat.idle_timeout",
                self.heartbeat.idle_timeout.is_zero(),
            ),
            ("offline.ttl", self.offline.ttl.is_zero()),
            (
                "limits.send_queue_frames",
                self.limits.send_queue_frames == 0,
            ),
            ("limits.max_to", self.limits.max_to == 0),
            ("limits.fanout_chunk", self.limits.fanout_chunk == 0),
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout.is_zero(),
            ),
            (
                "limits.request_timeout",
                self.limits.request_timeout.is_zero(),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError(format!("{key} must be greater than zero")));
        }
        let r = &self.rate_limits;
        if !(r.logins_per_second >= 0.0 && r.messages_per_second >= 0.0) {
            return Err(ConfigError(
                "rate_limits rates must be 0 (off) or positive".into(),
            ));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    let value: Value = yaml_serde::from_str(&text)
        .map_err(|e| ConfigError(format!("cannot parse {}: {e}", path.display())))?;
    Ok(match value {
        Value::Null => Value::Mapping(Mapping::new()),
        other => other,
    })
}

/// The value at a dotted key, if the tree has it.
fn lookup<'a>(tree: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(tree, |node, part| node.get(part))
}

/// Deep-merges `over` into `base`: mappings merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Sets a dotted key from a string, typed as YAML would read it (`8080` is a
/// number, `true` a bool, `20s` a string).
fn set(tree: &mut Value, dotted: &str, raw: &str) {
    let value = yaml_serde::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.into()));
    let mut over = value;
    for part in dotted.rsplit('.') {
        let mut map = Mapping::new();
        map.insert(Value::String(part.to_owned()), over);
        over = Value::Mapping(map);
    }
    merge(tree, over);
}

/// Parses `250ms`, `20s`, `10m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms, 20s or 10m"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

fn show_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load_warned(env, overrides).map(|(c, _)| c)
    }

    fn load_warned(
        env: &[(&str, &str)],
        overrides: &[(&str, &str)],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        Config::load(Sources {
            file: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn defaults_match_the_spec() {
        // R27, R30
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.heartbeat.pong_interval, Duration::from_secs(20));
        assert_eq!(c.heartbeat.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.offline.ttl, Duration::from_secs(600));
        assert_eq!(c.limits.max_content_bytes, 65536);
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
        assert_eq!(c.limits.max_to, 1000);
        assert_eq!(c.offline.max_messages_per_user, 1000);
        assert_eq!(c.offline.max_bytes_total, 256 << 20);
    }

    #[test]
    fn env_then_flags_override() {
        // R30: env uses `__` nesting; flags win over env.
        let c = load(
            &[
                ("HUAYI_HEARTBEAT__PONG_INTERVAL", "1s"),
                ("HUAYI_LISTEN", "127.0.0.1:9000"),
                ("HUAYI_OFFLINE__TTL", "10m"),
                ("PATH", "/usr/bin"),
            ],
            &[("listen", "127.0.0.1:9001"), ("limits.max_to", "5")],
        )
        .expect("valid");
        assert_eq!(c.heartbeat.pong_interval, Duration::from_secs(1));
        assert_eq!(c.offline.ttl, Duration::from_secs(600));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.limits.max_to, 5);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let err = load(&[], &[("heartbeat.pong_intervl", "1s")]).expect_err("typo");
        assert!(err.to_string().contains("pong_intervl"), "{err}");
        // Environment variables that are no setting are ignored, with a warning.
        let (c, warnings) = load_warned(
            &[("HUAYI_BIN", "/x"), ("HUAYI_HEARTBEAT__PONG_INTERVL", "1s")],
            &[],
        )
        .expect("ignored");
        assert_eq!(c.heartbeat.pong_interval, Duration::from_secs(20));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].contains("heartbeat.pong_intervl"),
            "{warnings:?}"
        );
        let err = load(&[], &[("offline.ttl", "ten minutes")]).expect_err("bad duration");
        assert!(err.to_string().contains("ten minutes"), "{err}");
        let err = load(&[], &[("heartbeat.idle_timeout", "0s")]).expect_err("zero");
        assert!(err.to_string().contains("idle_timeout"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn example_file_parses_to_defaults() {
        // config.example.yaml documents every key with its default.
        let (c, warnings) = Config::load(Sources {
            file: Some(Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/config.example.yaml"
            ))),
            ..Sources::default()
        })
        .expect("example config is valid");
        assert!(warnings.is_empty());
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }
}
