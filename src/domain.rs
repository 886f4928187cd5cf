//! Domain types: values that are valid by construction (parse, don't validate).
//!
//! A [`Name`] is a checked username or topic name (R1); an [`Outgoing`] is an
//! up-message that passed every rule of R14–R16 and the size limits of R27.
//! Nothing here touches shared state.

use std::{fmt, sync::Arc};

use crate::protocol::{MESSAGE, TEXT_PLAIN, UpMessage};

/// A username or topic name matching `^[a-zA-Z0-9_-]{4,30}$` (R1).
/// Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let ok = (4..=30).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(text.into()))
        } else {
            Err(Invalid::BadRequest(format!(
                "`{}` is not a valid name: use 4 to 30 letters, digits, `_` or `-`",
                text.escape_default().take(40).collect::<String>()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Why an input was refused, before any state was touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// 400: malformed or invalid.
    BadRequest(String),
    /// 403: `from` is not the session's user (R15).
    Forbidden(String),
    /// 413: too large (R27).
    TooLarge(String),
}

/// Size limits that apply to an up-message (R27).
#[derive(Debug, Clone, Copy)]
pub struct MessageLimits {
    pub max_content_bytes: usize,
    pub max_to: usize,
}

/// A checked up-message.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub from: Name,
    /// Recipients (one-to-one) or mentions (topic), duplicates removed, order kept.
    pub to: Vec<Name>,
    pub topic: Option<Name>,
    pub content: String,
}

impl Outgoing {
    /// Checks an up-message sent by `session_user` (R14, R15, R16, R27).
    pub fn parse(
        up: UpMessage,
        session_user: &Name,
        limits: MessageLimits,
    ) -> Result<Self, Invalid> {
        if up.message_type != MESSAGE {
            return Err(Invalid::BadRequest(format!(
                "`message-type` must be \"{MESSAGE}\""
            )));
        }
        if up.content_type != TEXT_PLAIN {
            return Err(Invalid::BadRequest(format!(
                "`content-type` must be \"{TEXT_PLAIN}\""
            )));
        }
        let from = Name::parse(&up.from)?;
        if from != *session_user {
            return Err(Invalid::Forbidden(format!(
                "`from` must be your own username ({session_user})"
            )));
        }
        if up.content.len() > limits.max_content_bytes {
            return Err(Invalid::TooLarge(format!(
                "`content` is {} bytes; the limit is {}",
                up.content.len(),
                limits.max_content_bytes
            )));
        }
        if up.to.len() > limits.max_to {
            return Err(Invalid::BadRequest(format!(
                "`to` names {} users; the limit is {}",
                up.to.len(),
                limits.max_to
            )));
        }
        // An empty `topic` means one-to-one (R16).
        let topic = match up.topic.as_deref() {
            None | Some("") => None,
            Some(t) => Some(Name::parse(t)?),
        };
        let mut to: Vec<Name> = Vec::with_capacity(up.to.len());
        for raw in &up.to {
            let name = Name::parse(raw)?;
            if !to.contains(&name) {
                to.push(name);
            }
        }
        if topic.is_none() && to.is_empty() {
            return Err(Invalid::BadRequest(
                "`to` must name at least one recipient".into(),
            ));
        }
        Ok(Self {
            from,
            to,
            topic,
            content: up.content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MessageLimits = MessageLimits {
        max_content_bytes: 16,
        max_to: 3,
    };

    fn up(to: &[&str], topic: Option<&str>, content: &str) -> UpMessage {
        UpMessage {
            message_type: MESSAGE.into(),
            from: "alice".into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            topic: topic.map(Into::into),
            content_type: TEXT_PLAIN.into(),
            content: content.into(),
        }
    }

    fn alice() -> Name {
        Name::parse("alice").expect("valid")
    }

    #[test]
    fn names_follow_r1() {
        for ok in ["abcd", "a_b-c", "ABCD1234", &"x".repeat(30)] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "abc",
            "",
            "with space",
            "émile",
            "a.b.c",
            &"x".repeat(31),
            "ab\ncd",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_to_one_needs_a_recipient() {
        // R16
        let err = Outgoing::parse(up(&[], None, "hi"), &alice(), LIMITS).expect_err("empty to");
        assert!(matches!(err, Invalid::BadRequest(_)));
        let err = Outgoing::parse(up(&[], Some(""), "hi"), &alice(), LIMITS).expect_err("empty");
        assert!(matches!(err, Invalid::BadRequest(_)));
        // A topic message may mention nobody.
        assert!(Outgoing::parse(up(&[], Some("room1"), "hi"), &alice(), LIMITS).is_ok());
    }

    #[test]
    fn duplicates_count_once() {
        // R16
        let m = Outgoing::parse(
            up(&["bobby", "carol", "bobby"], None, "x"),
            &alice(),
            LIMITS,
        )
        .expect("valid");
        assert_eq!(
            m.to,
            vec![
                Name::parse("bobby").expect("n"),
                Name::parse("carol").expect("n")
            ]
        );
    }

    #[test]
    fn from_must_be_the_session_user() {
        // R15
        let bob = Name::parse("bobby").expect("valid");
        let err = Outgoing::parse(up(&["carol"], None, "x"), &bob, LIMITS).expect_err("403");
        assert!(matches!(err, Invalid::Forbidden(_)));
    }

    #[test]
    fn types_and_limits() {
        // R14, R27
        let mut m = up(&["bobby"], None, "x");
        m.content_type = "text/html".into();
        assert!(matches!(
            Outgoing::parse(m, &alice(), LIMITS),
            Err(Invalid::BadRequest(_))
        ));
        let mut m = up(&["bobby"], None, "x");
        m.message_type = "ping".into();
        assert!(matches!(
            Outgoing::parse(m, &alice(), LIMITS),
            Err(Invalid::BadRequest(_))
        ));
        let m = up(&["bobby"], None, &"x".repeat(17));
        assert!(matches!(
            Outgoing::parse(m, &alice(), LIMITS),
            Err(Invalid::TooLarge(_))
        ));
        let m = up(&["bob1", "bob2", "bob3", "bob4"], None, "x");
        assert!(matches!(
            Outgoing::parse(m, &alice(), LIMITS),
            Err(Invalid::BadRequest(_))
        ));
        let m = up(&["no"], None, "x");
        assert!(matches!(
            Outgoing::parse(m, &alice(), LIMITS),
            Err(Invalid::BadRequest(_))
        ));
        let m = up(&["bobby"], Some("bad topic"), "x");
        assert!(matches!(
            Outgoing::parse(m, &alice(), LIMITS),
            Err(Invalid::BadRequest(_))
        ));
    }

    #[test]
    fn unknown_fields_and_wrong_types_fail_to_deserialize() {
        // R14
        let base = r#""message-type":"message","from":"alice","to":["bobby"],"content-type":"text/plain","content":"x""#;
        assert!(serde_json::from_str::<UpMessage>(&format!("{{{base}}}")).is_ok());
        assert!(serde_json::from_str::<UpMessage>(&format!("{{{base},\"extra\":1}}")).is_err());
        let wrong = base.replace(r#"["bobby"]"#, r#""bobby""#);
        assert!(serde_json::from_str::<UpMessage>(&format!("{{{wrong}}}")).is_err());
        let missing = base.replace(r#","content":"x""#, "");
        assert!(serde_json::from_str::<UpMessage>(&format!("{{{missing}}}")).is_err());
    }
}
