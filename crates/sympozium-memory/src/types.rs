//! Wire types of the memory server's HTTP API (shared by the server and [`crate::MemoryClient`]).

use serde::{Deserialize, Serialize};

/// One stored memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Row id, assigned by the server, never reused.
    pub id: i64,
    /// The memory text.
    pub content: String,
    /// Tags (omitted from JSON when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Last modification time, RFC 3339 UTC.
    pub updated_at: String,
}

/// The JSON envelope every API response (except `/health`) is wrapped in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Whether the request succeeded.
    pub success: bool,
    /// The payload on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<T>,
    /// The error message on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Free text; words, `"quoted phrases"`.
    #[serde(default)]
    pub query: String,
    /// How many results at most (≤ 0 means 5; capped at `store::MAX_TOP_K`).
    #[serde(default)]
    pub top_k: i64,
}

/// Body of `POST /store`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreRequest {
    /// The memory text (required, non-empty).
    #[serde(default)]
    pub content: String,
    /// Optional tags; blanks are dropped, duplicates merged, commas rejected.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Payload of a successful `POST /store`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The new memory's id.
    pub id: i64,
    /// Its creation time, RFC 3339 UTC.
    pub stored_at: String,
}

/// Body of `PUT /memories/{id}`: at least one field must be present.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// New text (non-empty when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New tags, replacing the old ones (an empty list clears them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// Payload of a successful `DELETE /memories/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// The deleted memory's id.
    pub id: i64,
    /// Always true.
    pub deleted: bool,
}

/// Filter and page of `GET /list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Legacy filter: substring of the comma-joined tags (`tags=`).
    pub tags_substring: Option<String>,
    /// Exact tags, all of which a memory must carry (`tag=`, repeatable).
    pub tags: Vec<String>,
    /// Page size (≤ 0 or absent means 20; capped at `store::MAX_LIST_LIMIT`).
    pub limit: Option<i64>,
    /// How many entries to skip (newest first).
    pub offset: Option<i64>,
}
