//! `send_channel_message`: queues a chat message in `<ipc>/messages/` for the IPC bridge.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::util::{unix_nanos, write_json_atomic};
use sympozium_protocol::ipc;

const CHANNELS: [&str; 4] = ["whatsapp", "telegram", "discord", "slack"];

/// The tool.
pub struct SendChannelMessage {
    /// `<ipc>/messages`.
    pub dir: PathBuf,
}

impl Tool for SendChannelMessage {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "send_channel_message".into(),
            description: "Send a message through a connected chat channel. chatId: WhatsApp number \
                          without +, Telegram numeric id, Discord/Slack channel id; empty = the owner."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "channel": {"type": "string", "enum": CHANNELS},
                "text": {"type": "string"},
                "chatId": {"type": "string"}},
                "required": ["channel", "text"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let channel = match required(&args, "channel") {
                Ok(c) => c,
                Err(e) => return e,
            };
            if !CHANNELS.contains(&channel) {
                return ToolOutput::err(format!(
                    "unknown channel {channel:?}; use one of {}",
                    CHANNELS.join(", ")
                ));
            }
            let text = match required(&args, "text") {
                Ok(t) => t,
                Err(e) => return e,
            };
            let mut message = json!({"channel": channel, "text": text});
            if let Some(chat) = str_arg(&args, "chatId").filter(|c| !c.is_empty()) {
                message["chatId"] = json!(chat);
            }
            let path = self.dir.join(ipc::send_message(unix_nanos()));
            match write_json_atomic(&path, &message, false) {
                Ok(()) => ToolOutput::Ok(format!("Message queued for sending via {channel}.")),
                Err(e) => ToolOutput::err(format!("queueing message: {e}")),
            }
        })
    }
}
