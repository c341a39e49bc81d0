//! The JSON envelope every bus message carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `{topic, timestamp, metadata, data}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Topic, e.g. `schedule.upsert`.
    pub topic: String,
    /// When it was published (RFC 3339 with nanoseconds).
    pub timestamp: String,
    /// String metadata, e.g. `agentRunID`, `instanceName`.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Envelope {
    /// An envelope stamped with the current time.
    pub fn new(topic: &str, metadata: BTreeMap<String, String>, data: serde_json::Value) -> Self {
        Self { topic: topic.into(), timestamp: jiff::Timestamp::now().to_string(), metadata, data }
    }

    /// A metadata value, or `""`.
    pub fn meta(&self, key: &str) -> &str {
        self.metadata.get(key).map(String::as_str).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wire_shape() {
        let e = Envelope::new(
            "schedule.upsert",
            BTreeMap::from([("agentRunID".into(), "r1".into())]),
            serde_json::json!({"name": "n"}),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["topic"], "schedule.upsert");
        assert_eq!(v["metadata"]["agentRunID"], "r1");
        assert_eq!(v["data"]["name"], "n");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let back: Envelope = serde_json::from_str(r#"{"topic":"t","timestamp":"x","data":{}}"#).unwrap();
        assert!(back.metadata.is_empty());
    }
}
