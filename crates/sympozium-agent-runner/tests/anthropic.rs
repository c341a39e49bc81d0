#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end runs against the fake LLM speaking Anthropic Messages and Bedrock Converse.

mod common;

use std::time::Duration;

use common::{Pod, long_answer, run_runner};
use serde_json::json;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

#[tokio::test]
async fn anthropic_tool_use_with_thinking_and_streaming() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    std::fs::write(pod.workspace.join("config.yaml"), "replicas: 2").unwrap();
    let answer = long_answer();
    fake.script([
        Turn::tool_call("read_file", json!({"path": "/workspace/config.yaml"}))
            .with_thinking("I should read the config first.")
            .with_usage(300, 50),
        Turn::tool_call("read_file", json!({"path": "/etc/shadow"}))
            .with_redacted_thinking("EncryptedBlob==")
            .with_usage(400, 60),
        Turn::text(&answer).with_usage(500, 70).streamed(4, Duration::from_millis(120)),
    ]);
    let base = fake.base_url();
    let env = [
        ("TASK", "Summarise the config."),
        ("MODEL_PROVIDER", "anthropic"),
        ("MODEL_NAME", "claude-sonnet-4-5"),
        ("MODEL_BASE_URL", base.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-secret"),
        ("TOOLS_ENABLED", "true"),
        ("THINKING_MODE", "high"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let result = out.result();
    assert_eq!(result["response"], answer.as_str());
    assert_eq!(result["metrics"]["inputTokens"], 1200);
    assert_eq!(result["metrics"]["outputTokens"], 180);
    assert_eq!(result["metrics"]["toolCalls"], 2);
    let chunks = pod.chunks();
    assert!(chunks.len() >= 3, "{chunks:?}");
    let joined: String = chunks.iter().map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(joined, answer);

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.header("x-api-key"), Some("sk-ant-secret"));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.body["thinking"], json!({"type": "enabled", "budget_tokens": 16384}));
    assert_eq!(first.body["max_tokens"], 8192 + 16384);
    assert_eq!(first.body["stream"], true);
    assert!(first.body["system"][0]["text"].as_str().unwrap().contains("## Tool Usage"));
    assert!(first.tool_names().contains(&"read_file".to_string()));
    assert!(first.body["tools"][0]["input_schema"]["type"] == "object");
    // System prompt and tool list are marked for prompt caching.
    assert_eq!(first.body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    let tools = first.body["tools"].as_array().unwrap();
    assert_eq!(tools.last().unwrap()["cache_control"], json!({"type": "ephemeral"}));
    assert!(tools[0].get("cache_control").is_none());

    // Turn 2 echoes the signed thinking block and the tool_use, and answers with tool_result.
    let second = requests[1].body["messages"].as_array().unwrap().clone();
    let assistant = &second[1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"][0]["type"], "thinking");
    assert_eq!(assistant["content"][0]["thinking"], "I should read the config first.");
    assert_eq!(assistant["content"][0]["signature"], "fake-signature");
    assert_eq!(assistant["content"][1]["type"], "tool_use");
    assert_eq!(assistant["content"][1]["input"], json!({"path": "/workspace/config.yaml"}));
    let tool_result = &second[2]["content"][0];
    assert_eq!(tool_result["type"], "tool_result");
    assert_eq!(tool_result["content"], "replicas: 2");
    assert!(tool_result.get("is_error").is_none());
    // The refused read comes back flagged as an error.
    let third = requests[2].body["messages"].as_array().unwrap().clone();
    let refused = &third[4]["content"][0];
    // Redacted thinking is echoed back verbatim with the tool call it preceded.
    assert_eq!(third[3]["content"][0], json!({"type": "redacted_thinking", "data": "EncryptedBlob=="}));
    assert_eq!(refused["is_error"], true);
    assert!(refused["content"].as_str().unwrap().starts_with("Error: access denied"));
}

#[tokio::test]
async fn anthropic_overload_then_success_without_streaming() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([Turn::error(529, "Overloaded"), Turn::text("fine").with_usage(10, 2).with_cache_read(100)]);
    let base = fake.base_url();
    let env = [
        ("TASK", "hi"),
        ("MODEL_PROVIDER", "anthropic"),
        ("MODEL_NAME", "claude-haiku"),
        ("MODEL_BASE_URL", base.as_str()),
        ("LLM_STREAM", "false"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "fine");
    // Cached prompt tokens count as input.
    assert_eq!(out.result()["metrics"]["inputTokens"], 110);
    assert_eq!(fake.requests().len(), 2);
    assert!(fake.requests()[0].body.get("thinking").is_none());
}

#[tokio::test]
async fn bedrock_converse_signed_with_sigv4_and_tool_results() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([
        Turn::tool_call("list_directory", json!({"path": "/workspace"}))
            .with_thinking("Look first.")
            .with_usage(50, 5),
        Turn::text(&long_answer()).with_usage(60, 6).streamed(4, Duration::from_millis(120)),
    ]);
    let base = fake.base_url();
    let env = [
        ("TASK", "What is in the workspace?"),
        ("MODEL_PROVIDER", "bedrock"),
        ("MODEL_NAME", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("THINKING_MODE", "medium"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("AWS_SESSION_TOKEN", "session-token"),
        ("AWS_REGION", "eu-west-1"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], long_answer().as_str());
    assert_eq!(out.result()["metrics"]["inputTokens"], 110);
    assert_eq!(out.result()["metrics"]["outputTokens"], 11);
    let chunks = pod.chunks();
    assert!(chunks.len() >= 3, "{chunks:?}");
    assert_eq!(chunks.iter().map(|c| c["content"].as_str().unwrap()).collect::<String>(), long_answer());
    let requests = fake.requests();
    let first = &requests[0];
    assert_eq!(first.path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
    let auth = first.header("authorization").unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(auth.contains("/eu-west-1/bedrock/aws4_request"));
    assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"));
    assert_eq!(first.header("x-amz-security-token"), Some("session-token"));
    assert!(first.tool_names().contains(&"list_directory".to_string()));
    assert_eq!(first.body["additionalModelRequestFields"]["thinking"]["budget_tokens"], 4096);
    let msgs = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(
        msgs[1]["content"][0]["reasoningContent"]["reasoningText"],
        json!({"text": "Look first.", "signature": "fake-signature"})
    );
    assert_eq!(msgs[1]["content"][1]["toolUse"]["name"], "list_directory");
    assert_eq!(msgs[2]["content"][0]["toolResult"]["status"], "success");
    assert_eq!(msgs[2]["content"][0]["toolResult"]["content"][0]["text"], "(empty directory)");
}

#[tokio::test]
async fn bedrock_without_credentials_fails_clearly() {
    let pod = Pod::new();
    let out = run_runner(&pod, &[("TASK", "hi"), ("MODEL_PROVIDER", "bedrock"), ("MODEL_NAME", "m")]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.error(),
        "Bedrock requires AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and \
         AWS_WEB_IDENTITY_TOKEN_FILE (IRSA)"
    );
}

#[tokio::test]
async fn bedrock_without_streaming_uses_converse() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([Turn::error(503, "ServiceUnavailable"), Turn::text("plain answer").with_usage(9, 3)]);
    let base = fake.base_url();
    let env = [
        ("TASK", "hi"),
        ("MODEL_PROVIDER", "bedrock"),
        ("MODEL_NAME", "amazon.nova-pro-v1:0"),
        ("MODEL_BASE_URL", base.as_str()),
        ("LLM_STREAM", "false"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "plain answer");
    assert_eq!(out.result()["metrics"]["outputTokens"], 3);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "the 503 is retried");
    assert_eq!(requests[1].path, "/model/amazon.nova-pro-v1%3A0/converse");
    assert!(requests[1].header("x-amz-security-token").is_none());
    assert!(requests[1].body.get("additionalModelRequestFields").is_none());
}

/// IRSA: the runner exchanges the projected service-account token with STS and signs with
/// the temporary credentials. STS is a remote AWS service, so a stub answers here.
#[tokio::test]
async fn bedrock_with_irsa_assumes_the_role_first() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let sts = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: String| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(body);
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                 <AccessKeyId>ASIATEMP</AccessKeyId><SecretAccessKey>tempsecret</SecretAccessKey>\
                 <SessionToken>temp-session</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>\
                 </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sts_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sts).await.unwrap() });

    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let token_file = pod.tmp.join("token");
    std::fs::write(&token_file, "eyJhbGciOi.projected.token\n").unwrap();
    fake.push(Turn::text("assumed"));
    let base = fake.base_url();
    let token_path = token_file.display().to_string();
    let env = [
        ("TASK", "hi"),
        ("MODEL_PROVIDER", "bedrock"),
        ("MODEL_NAME", "amazon.nova-lite-v1:0"),
        ("MODEL_BASE_URL", base.as_str()),
        ("AWS_REGION", "us-west-2"),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/agent"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path.as_str()),
        ("AWS_ENDPOINT_URL_STS", sts_url.as_str()),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "assumed");
    let form = seen.lock().unwrap()[0].clone();
    assert!(form.contains("Action=AssumeRoleWithWebIdentity"), "{form}");
    assert!(form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fagent"), "{form}");
    assert!(
        form.contains("WebIdentityToken=eyJhbGciOi.projected.token&")
            || form.ends_with("WebIdentityToken=eyJhbGciOi.projected.token"),
        "{form}"
    );
    let req = &fake.requests()[0];
    assert!(req.header("authorization").unwrap().starts_with("AWS4-HMAC-SHA256 Credential=ASIATEMP/"));
    assert_eq!(req.header("x-amz-security-token"), Some("temp-session"));
}

#[tokio::test]
async fn bedrock_thinking_high_asks_for_the_largest_budget() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("done"));
    let base = fake.base_url();
    let env = [
        ("TASK", "hi"),
        ("MODEL_PROVIDER", "bedrock"),
        ("MODEL_NAME", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("MODEL_BASE_URL", base.as_str()),
        ("THINKING_MODE", "high"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("AWS_REGION", "eu-west-1"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let thinking = &fake.requests()[0].body["additionalModelRequestFields"]["thinking"];
    assert_eq!(*thinking, json!({"type": "enabled", "budget_tokens": 16384}));
}
