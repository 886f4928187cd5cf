//! Inputs found by the fuzz targets in `fuzz/`, kept as tests so the fix
//! stays fixed. Each names its target and what it found.

use huayi_im::protocol::{ClientFrame, ServerFrame};

/// What the server answers to a ping frame with this `message-id` text: the
/// `ack-id` text of its ack.
fn echoed_id(raw: &str) -> String {
    let frame = format!(r#"{{"message-type":"ping","message-id":{raw},"from":"alice"}}"#);
    let Ok(ClientFrame::Ping { message_id, .. }) = serde_json::from_str(&frame) else {
        panic!("{frame} is a ping");
    };
    let ack = serde_json::to_string(&ServerFrame::Ack { ack_id: message_id }).expect("serializes");
    ack.split(r#""ack-id":"#)
        .nth(1)
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("an ack-id in {ack}"))
        .to_owned()
}

#[test]
fn integer_ping_ids_are_echoed_exactly() {
    // R22: the ack carries the ping's id. Integers keep their exact text.
    for raw in ["0", "3", "18446744073709551615", "-9223372036854775808"] {
        assert_eq!(echoed_id(raw), raw);
    }
}

#[test]
fn fractional_ping_ids_are_echoed_as_the_same_number() {
    // fuzz target `client_frame`, input
    // `{"message-type":"ping","message-id":-1.5e200}`: the ack said
    // -1.5000000000000001e200: serde_json's default float parser may be off
    // by one unit in the last place. Fixed by its `float_roundtrip` feature.
    // The reference client only sends integers, so this was cosmetic, but
    // R22 promises the id back as sent.
    // Also `client_frame`: integers beyond 64 bits are read as floats.
    let huge = format!("{}2", "9".repeat(74));
    for raw in ["-1.5e200", "0.1", "2.5", "1e-300", "123456.789", &huge] {
        let echoed: f64 = echoed_id(raw).parse().expect("a number");
        let sent: f64 = raw.parse().expect("a number");
        assert_eq!(echoed, sent, "ping id {raw} echoed as {echoed:e}");
    }
}
