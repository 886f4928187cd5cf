//! A client WebSocket text frame, handled as `ws::on_text` does: parse as a
//! `ClientFrame`; a ping is answered by an ack echoing its id. Must never
//! panic (R24: unknown frames are ignored), and the ack must carry the id
//! as sent (R22).

#![no_main]

use huayi_im::protocol::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;
use serde_json::Number;

/// The same number: integers by value, fractions bit for bit (serde_json's
/// `float_roundtrip` makes its parser exact; without it a fractional id came
/// back one unit in the last place off, see tests/fuzz_regressions.rs).
fn same_number(a: &Number, b: &Number) -> bool {
    if a.is_f64() || b.is_f64() {
        a.as_f64().map(f64::to_bits) == b.as_f64().map(f64::to_bits)
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
