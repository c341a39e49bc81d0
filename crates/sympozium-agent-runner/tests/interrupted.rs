#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Streams that break off after `200 OK` are retried when nothing reached the user yet.

mod common;

use common::{Pod, run_runner};
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

#[tokio::test]
async fn openai_stream_error_is_retried() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([
        Turn::stream_error("The server had an error while processing your request"),
        Turn::text("second try"),
    ]);
    let base = fake.openai_base_url();
    let out = run_runner(&pod, &[("TASK", "t"), ("MODEL_BASE_URL", base.as_str())]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "second try");
    assert_eq!(fake.requests().len(), 2);
    let text: String = pod.chunks().iter().map(|c| c["content"].as_str().unwrap().to_string()).collect();
    assert_eq!(text, "second try");
}

#[tokio::test]
async fn anthropic_overload_mid_stream_gives_up_after_the_retries() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([Turn::stream_error("Overloaded"), Turn::stream_error("Overloaded"), Turn::text("unused")]);
    let base = fake.base_url();
    let env = [
        ("TASK", "t"),
        ("MODEL_PROVIDER", "anthropic"),
        ("MODEL_BASE_URL", base.as_str()),
        ("LLM_MAX_RETRIES", "1"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.error(), "Anthropic API error: stream interrupted: Overloaded");
    assert_eq!(fake.requests().len(), 2);
    assert!(pod.chunks().is_empty());
}

#[tokio::test]
async fn bedrock_exception_frame_is_retried() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([Turn::stream_error("Bedrock is unable to process your request"), Turn::text("recovered")]);
    let base = fake.base_url();
    let env = [
        ("TASK", "t"),
        ("MODEL_PROVIDER", "bedrock"),
        ("MODEL_NAME", "amazon.nova-lite-v1:0"),
        ("MODEL_BASE_URL", base.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "recovered");
    assert_eq!(fake.requests().len(), 2);
}
