//! `POST /api/messages` body → `UpMessage` → `Outgoing::parse`, exactly as the
//! handler does (src/http/mod.rs `send_message`). Must never panic; whatever
//! it accepts must satisfy R14–R16 and R27.

#![no_main]

use huayi_im::{
    domain::{MessageLimits, Name, Outgoing},
    protocol::UpMessage,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: MessageLimits = MessageLimits {
    max_content_bytes: 64,
    max_to: 4,
};

fuzz_target!(|data: &[u8]| {
    let Ok(up) = serde_json::from_slice::<UpMessage>(data) else {
        return;
    };
    // Once as a stranger (mostly 403), once as the claimed sender so the
    // deeper checks run too.
    let alice = Name::parse("alice").expect("valid name");
    let _ = Outgoing::parse(up.clone(), &alice, LIMITS);
    let Ok(me) = Name::parse(&up.from) else {
        return;
    };
    let Ok(msg) = Outgoing::parse(up.clone(), &me, LIMITS) else {
        return;
    };
    assert_eq!(msg.from, me);
    assert!(msg.content.len() <= LIMITS.max_content_bytes);
    assert!(msg.to.len() <= LIMITS.max_to);
    assert!(
        msg.topic.is_some() || !msg.to.is_empty(),
        "R16: a recipient"
    );
    for (i, name) in msg.to.iter().enumerate() {
        assert!(!msg.to[..i].contains(name), "R16: duplicates count once");
        assert!(up.to.iter().any(|raw| raw == name.as_str()));
    }
    // What was accepted must serialize back into a body the server accepts.
    let again: UpMessage =
        serde_json::from_str(&serde_json::to_string(&up).expect("serializes")).expect("parses");
    assert!(Outgoing::parse(again, &me, LIMITS).is_ok());
});
