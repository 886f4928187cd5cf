//! Configuration layering (R30) on arbitrary overrides: each input line
//! `key=value` is a `--set`, with `HUAYI_`-style env lines as well. Loading
//! must either succeed with checked values or fail with a message; never
//! panic. Durations go through `parse_duration` as well.

#![no_main]

use huayi_im::config::{Config, Sources, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env = Vec::new();
    let mut overrides = Vec::new();
    for line in text.lines().take(16) {
        let Some((key, value)) = line.split_once('=') else {
            let _ = parse_duration(line);
            continue;
        };
        let _ = parse_duration(value);
        if key.starts_with("HUAYI_") {
            env.push((key.to_owned(), value.to_owned()));
        } else {
            overrides.push((key.to_owned(), value.to_owned()));
        }
    }
    if let Ok((c, _warnings)) = Config::load(Sources {
        file: None,
        env,
        overrides,
    }) {
        assert!(!c.heartbeat.pong_interval.is_zero());
        assert!(!c.heartbeat.idle_timeout.is_zero());
        assert!(!c.offline.ttl.is_zero());
        assert!(c.limits.max_to > 0 && c.limits.send_queue_frames > 0);
    }
});
