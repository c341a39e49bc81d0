//! A scripted fake LLM server speaking the real wire protocols of OpenAI Chat Completions
//! (`POST /v1/chat/completions`, JSON or SSE), Anthropic Messages (`POST /v1/messages`, JSON or
//! SSE) and AWS Bedrock Converse (`POST /model/{id}/converse`).
//!
//! It is the one stand-in the tests use, because the real providers are paid remote services.
//! A test queues [`Turn`]s; each request to any endpoint takes the next turn and answers it in
//! that endpoint's format (streaming when the request asks for `"stream": true`). Every request
//! is recorded so the test can assert on what the runner actually sent: messages, tools offered,
//! headers (auth), and reasoning parameters.

mod anthropic;
mod bedrock;
mod openai;
mod script;
mod server;

pub use script::{Reply, ToolCallSpec, Turn};
pub use server::{FakeLlm, RecordedRequest};
