//! A client WebSocket text frame, handled as `ws::on_text` does: parse as a
//! `ClientFrame`; a ping is answered by an ack echoing its id. Must never
//! panic (R24: unknown frames are ignored), and the ack must carry the id
//! exactly as sent (R22).

#![no_main]

use huayi_im::protocol::{ClientFrame, ServerFrame};
use libfuzzer_sys::fuzz_target;

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
            assert_eq!(back, ServerFrame::Ack { ack_id: message_id });
        }
        Ok(frame @ ClientFrame::Ack { .. }) => {
            let wire = serde_json::to_string(&frame).expect("serializes");
            let back: ClientFrame = serde_json::from_str(&wire).expect("round-trips");
            assert_eq!(back, frame);
        }
        Err(_) => {}
    }
    // Clients (tests, im-bench, the web client) parse server frames with the
    // same types: that parser must not panic on anything either.
    let _ = serde_json::from_str::<ServerFrame>(text);
});
