//! Who may talk to an instance through a channel (the instance channel's `accessControl`).

use sympozium_api::SympoziumInstanceSpec;
use sympozium_bus::payloads::InboundMessage;

/// The access decision for one inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// The message becomes a run.
    Allow,
    /// The message is refused; `reply` is the deny message to send back, if any.
    Deny {
        /// Which rule refused it (for the log).
        reason: &'static str,
        /// The instance's `denyMessage`, when set and non-empty.
        reply: Option<String>,
    },
}

/// Applies the channel's access control, in order: `allowedChats`, `allowedSenders`,
/// `deniedSenders` (which wins over the allow list). No channel entry of the message's
/// type, or no `accessControl`, allows everything. Matches are exact.
pub fn check(spec: &SympoziumInstanceSpec, msg: &InboundMessage) -> Access {
    let Some(ac) = spec
        .channels
        .iter()
        .find(|c| c.type_.as_str() == msg.channel)
        .and_then(|c| c.access_control.as_ref())
    else {
        return Access::Allow;
    };
    let deny =
        |reason| Access::Deny { reason, reply: ac.deny_message.clone().filter(|m| !m.trim().is_empty()) };
    if !ac.allowed_chats.is_empty() && !ac.allowed_chats.contains(&msg.chat_id) {
        return deny("chat not in allowedChats");
    }
    if !ac.allowed_senders.is_empty() && !ac.allowed_senders.contains(&msg.sender_id) {
        return deny("sender not in allowedSenders");
    }
    if ac.denied_senders.contains(&msg.sender_id) {
        return deny("sender in deniedSenders");
    }
    Access::Allow
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn spec(access: serde_json::Value) -> SympoziumInstanceSpec {
        serde_json::from_value(json!({
            "agents": {"default": {"model": "m"}},
            "channels": [{"type": "telegram", "configRef": {"secret": "s"}, "accessControl": access},
                         {"type": "slack", "configRef": {"secret": "s"}}]
        }))
        .unwrap()
    }

    fn msg(channel: &str, sender: &str, chat: &str) -> InboundMessage {
        InboundMessage {
            channel: channel.into(),
            sender_id: sender.into(),
            chat_id: chat.into(),
            text: "hi".into(),
            ..Default::default()
        }
    }

    fn denied(a: Access) -> &'static str {
        match a {
            Access::Deny { reason, .. } => reason,
            Access::Allow => "allowed",
        }
    }

    #[test]
    fn no_access_control_allows_everyone() {
        let s = spec(json!({"allowedSenders": ["1"]}));
        assert_eq!(check(&s, &msg("slack", "x", "c")), Access::Allow);
        assert_eq!(check(&s, &msg("discord", "x", "c")), Access::Allow, "no channel entry");
    }

    #[test]
    fn allowed_chats_come_first() {
        let s = spec(json!({"allowedChats": ["c1"], "allowedSenders": ["u1"]}));
        assert_eq!(check(&s, &msg("telegram", "u1", "c1")), Access::Allow);
        assert_eq!(denied(check(&s, &msg("telegram", "u2", "c2"))), "chat not in allowedChats");
        assert_eq!(denied(check(&s, &msg("telegram", "u2", "c1"))), "sender not in allowedSenders");
    }

    #[test]
    fn the_deny_list_wins_over_the_allow_list() {
        let s =
            spec(json!({"allowedSenders": ["u1", "u2"], "deniedSenders": ["u2"], "denyMessage": "Not you."}));
        assert_eq!(check(&s, &msg("telegram", "u1", "c")), Access::Allow);
        assert_eq!(
            check(&s, &msg("telegram", "u2", "c")),
            Access::Deny { reason: "sender in deniedSenders", reply: Some("Not you.".into()) }
        );
        let s = spec(json!({"deniedSenders": ["u3"]}));
        assert_eq!(check(&s, &msg("telegram", "u1", "c")), Access::Allow);
        assert_eq!(
            check(&s, &msg("telegram", "u3", "c")),
            Access::Deny { reason: "sender in deniedSenders", reply: None }
        );
    }

    #[test]
    fn matches_are_exact() {
        let s = spec(json!({"allowedSenders": ["123"], "denyMessage": "  "}));
        assert_eq!(
            check(&s, &msg("telegram", "1234", "c")),
            Access::Deny { reason: "sender not in allowedSenders", reply: None }
        );
        assert_eq!(check(&s, &msg("telegram", "123", "c")), Access::Allow);
    }
}
