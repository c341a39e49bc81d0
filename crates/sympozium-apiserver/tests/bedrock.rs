//! `POST /api/v1/providers/bedrock/models` against a fake Bedrock control plane speaking
//! the real `ListFoundationModels` wire shape (`GET /foundation-models?byOutputModality=`,
//! `{"modelSummaries": [...]}`, AWS's `{"message"}` errors) that checks each request's SigV4
//! signature itself — computed here from AWS's documented algorithm, not with the server's
//! signing code — so a wrong canonical request, scope or key is refused as AWS would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use common::{Harness, TOKEN};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Access keys the fake knows: id → (secret, needs a session token).
fn keys() -> BTreeMap<&'static str, (&'static str, Option<&'static str>)> {
    BTreeMap::from([
        ("AKIDLONGTERMEXAMPLE", ("long-term/secret+key", None)),
        ("ASIATEMPORARYEXAMPLE", ("temporary-secret", Some("session-token/with+chars="))),
    ])
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Regions the requests were signed for.
type Seen = Arc<Mutex<Vec<String>>>;

/// AWS's answer to a request it refuses.
fn refuse(kind: &str, message: &str) -> (StatusCode, HeaderMap, axum::Json<Value>) {
    let mut h = HeaderMap::new();
    h.insert("x-amzn-errortype", kind.parse().unwrap());
    (StatusCode::FORBIDDEN, h, axum::Json(json!({"message": message})))
}

async fn list_foundation_models(
    State(seen): State<Seen>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> (StatusCode, HeaderMap, axum::Json<Value>) {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let auth = header("authorization");
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return refuse("MissingAuthenticationTokenException", "Missing Authentication Token");
    };
    let parts: BTreeMap<&str, &str> = rest.split(", ").filter_map(|p| p.split_once('=')).collect();
    let credential: Vec<&str> = parts.get("Credential").copied().unwrap_or_default().split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = credential[..] else {
        return refuse("IncompleteSignatureException", "Credential should be scoped correctly.");
    };
    let Some((secret, token)) = keys().get(key_id).copied() else {
        return refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    if let Some(token) = token
        && header("x-amz-security-token") != token
    {
        return refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    let signed = parts.get("SignedHeaders").copied().unwrap_or_default();
    if !signed.split(';').any(|h| h == "host") || !signed.split(';').any(|h| h == "x-amz-date") {
        return refuse("IncompleteSignatureException", "host and x-amz-date must be signed");
    }
    // The canonical request of what arrived (the query was a single, already-canonical pair).
    let canonical_headers: String =
        signed.split(';').map(|h| format!("{h}:{}\n", header(h).trim())).collect();
    let canonical = format!(
        "GET\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
        uri.path(),
        uri.query().unwrap_or_default(),
        hex::encode(Sha256::digest(b""))
    );
    let amz_date = header("x-amz-date");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    let expected = hex::encode(hmac(&k, &to_sign));
    if service != "bedrock"
        || !amz_date.starts_with(date)
        || parts.get("Signature") != Some(&expected.as_str())
    {
        return refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        );
    }
    seen.lock().unwrap().push(region.to_string());
    let catalogue = [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "Anthropic", vec!["TEXT", "IMAGE"], vec!["TEXT"]),
        ("amazon.nova-pro-v1:0", "Amazon", vec!["TEXT", "IMAGE", "VIDEO"], vec!["TEXT"]),
        ("meta.llama3-8b-instruct-v1:0", "Meta", vec!["TEXT"], vec!["TEXT"]),
        ("stability.sd3-large-v1:0", "Stability AI", vec!["TEXT"], vec!["IMAGE"]),
        ("amazon.titan-embed-text-v2:0", "Amazon", vec!["TEXT"], vec!["EMBEDDING"]),
    ];
    let wanted = q.get("byOutputModality").cloned();
    let summaries: Vec<Value> = catalogue
        .iter()
        .filter(|(_, _, _, out)| wanted.as_deref().is_none_or(|w| out.contains(&w)))
        .map(|(id, provider, input, output)| {
            json!({
                "modelArn": format!("arn:aws:bedrock:{region}::foundation-model/{id}"),
                "modelId": id, "modelName": id, "providerName": provider,
                "inputModalities": input, "outputModalities": output,
                "responseStreamingSupported": true, "customizationsSupported": [],
                "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "ACTIVE"}
            })
        })
        .collect();
    (StatusCode::OK, HeaderMap::new(), axum::Json(json!({"modelSummaries": summaries})))
}

async fn fake_bedrock() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/foundation-models", axum::routing::get(list_foundation_models))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

const PATH: &str = "/api/v1/providers/bedrock/models";

#[tokio::test]
async fn bedrock_models_are_listed_with_signed_requests_and_bad_input_names_the_field() {
    let (endpoint, seen) = fake_bedrock().await;
    let h = Harness::with_bedrock("bedrock-models", None, Some(endpoint)).await;

    let r = h
        .call(
            Method::POST,
            PATH,
            Some(json!({"region": "eu-west-1", "accessKeyId": "AKIDLONGTERMEXAMPLE", "secretAccessKey": "long-term/secret+key"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"models": ["amazon.nova-pro-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0",
                          "meta.llama3-8b-instruct-v1:0"], "source": "live"}),
        "text models only, sorted"
    );
    assert_eq!(seen.lock().unwrap().last().map(String::as_str), Some("eu-west-1"));

    // No region: us-east-1. Temporary credentials: the session token is sent and signed.
    let r = h
        .call(
            Method::POST,
            PATH,
            Some(json!({"accessKeyId": "ASIATEMPORARYEXAMPLE", "secretAccessKey": "temporary-secret",
                        "sessionToken": "session-token/with+chars="})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["models"].as_array().unwrap().len(), 3);
    assert_eq!(seen.lock().unwrap().last().map(String::as_str), Some("us-east-1"));

    // What AWS refuses comes back as 502 with AWS's reason.
    for (body, why) in [
        (json!({"accessKeyId": "AKIDLONGTERMEXAMPLE", "secretAccessKey": "wrong"}), "signature"),
        (json!({"accessKeyId": "AKIDUNKNOWN", "secretAccessKey": "x"}), "security token"),
        (
            json!({"accessKeyId": "ASIATEMPORARYEXAMPLE", "secretAccessKey": "temporary-secret"}),
            "security token",
        ),
    ] {
        let r = h.call(Method::POST, PATH, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{body}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains(why), "{body}: {}", r.text);
        assert!(!r.text.contains("temporary-secret"), "no secret echoed: {}", r.text);
    }

    // Bad input names the field; a region that is not one could aim the signed request
    // at another host, so it is refused before any request.
    let before = seen.lock().unwrap().len();
    for (body, field) in [
        (json!({"secretAccessKey": "x"}), "accessKeyId"),
        (json!({"accessKeyId": " ", "secretAccessKey": "x"}), "accessKeyId"),
        (json!({"accessKeyId": "AKIDLONGTERMEXAMPLE"}), "secretAccessKey"),
        (json!({"region": "evil.example.com/#", "accessKeyId": "a", "secretAccessKey": "b"}), "region"),
        (json!({"region": "EU-WEST-1", "accessKeyId": "a", "secretAccessKey": "b"}), "region"),
    ] {
        let r = h.call(Method::POST, PATH, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.json["field"], field, "{body}: {}", r.text);
    }
    assert_eq!(seen.lock().unwrap().len(), before);
    let r = h.raw(Method::POST, PATH, Some("{not json".into()), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = h.raw(Method::POST, PATH, Some("{}".into()), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
