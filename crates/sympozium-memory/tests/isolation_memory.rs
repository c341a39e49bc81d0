#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Memory is the instance's alone: two real memory servers (instances A and B, each with its
//! own token, as the instance controller starts them) attacked the way another tenant would
//! try — no token, a wrong token, the other instance's token, near-misses of the right token,
//! the token smuggled elsewhere than the Authorization header — on every route. Each attack
//! must be refused with 401 before it touches the database; the owner's token still works.

mod common;

use common::ServerProcess;
use serde_json::{Value, json};
use sympozium_memory::{ClientError, MemoryClient};

const TOKEN_A: &str = "8f1d0c2e5b7a4936a1c3e5f7092b4d6f8f1d0c2e5b7a4936a1c3e5f7092b4d6f";
const TOKEN_B: &str = "0b9e8d7c6b5a49382716f5e4d3c2b1a00b9e8d7c6b5a49382716f5e4d3c2b1a0";

/// What the attack is, the headers it sends, the start of the error it must get.
type Attack = (&'static str, Vec<(&'static str, String)>, &'static str);

struct Reply {
    status: u16,
    body: Value,
    www_authenticate: Option<String>,
}

/// One raw request, with the headers an attacker chooses.
async fn call(method: &str, url: &str, headers: &[(&str, String)], body: Option<Value>) -> Reply {
    let http = reqwest::Client::new();
    let mut req = http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let www_authenticate = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    let body = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
    Reply { status, body, www_authenticate }
}

/// Every data route, with a body where it takes one.
fn routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/search", Some(json!({"query": "secret"}))),
        ("POST", "/store", Some(json!({"content": "planted by an attacker", "tags": ["x"]}))),
        ("GET", "/list", None),
        ("GET", "/memories/1", None),
        ("PUT", "/memories/1", Some(json!({"content": "overwritten"}))),
        ("DELETE", "/memories/1", None),
    ]
}

fn start(dir: &tempfile::TempDir, name: &str, token: &str) -> ServerProcess {
    ServerProcess::start(&dir.path().join(format!("{name}.db")), &[("MEMORY_AUTH_TOKEN", token)])
}

#[tokio::test]
async fn another_tenant_cannot_read_or_write_an_instances_memory() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(&dir, "a", TOKEN_A);
    let b = start(&dir, "b", TOKEN_B);

    // The owner stores a memory in A with A's token.
    let owner = MemoryClient::new(a.url.clone()).unwrap().with_token(TOKEN_A);
    let stored = owner.store("the launch code is 0000", &["secret".into()]).await.unwrap();
    assert_eq!(stored.id, 1);

    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    let attacks: Vec<Attack> = vec![
        ("no credentials at all", vec![], "missing bearer token"),
        ("a made-up token", bearer("letmein"), "invalid bearer token"),
        ("instance B's token against A", bearer(TOKEN_B), "invalid bearer token"),
        ("A's token missing its last character", bearer(&TOKEN_A[..63]), "invalid bearer token"),
        ("A's token with a character appended", bearer(&format!("{TOKEN_A}0")), "invalid bearer token"),
        ("A's token in another case", bearer(&TOKEN_A.to_uppercase()), "invalid bearer token"),
        ("an empty bearer token", vec![("authorization", "Bearer ".into())], ""),
        (
            "A's token without the Bearer scheme",
            vec![("authorization", TOKEN_A.into())],
            "missing bearer token",
        ),
        (
            "A's token as a Basic password",
            vec![("authorization", format!("Basic {}", base64_of(&format!("x:{TOKEN_A}"))))],
            "missing bearer token",
        ),
        ("A's token in another header", vec![("x-auth-token", TOKEN_A.into())], "missing bearer token"),
        (
            "B's token in the service-proxy header",
            vec![("x-sympozium-memory-token", TOKEN_B.into())],
            "invalid bearer token",
        ),
        (
            "an empty service-proxy header",
            vec![("x-sympozium-memory-token", String::new())],
            "invalid bearer token",
        ),
        ("A's token as a cookie", vec![("cookie", format!("token={TOKEN_A}"))], "missing bearer token"),
    ];
    let (mut tried, mut refused) = (0, 0);
    for (what, headers, expected) in &attacks {
        for (method, path, body) in routes() {
            tried += 1;
            let reply = call(method, &format!("{}{path}", a.url), headers, body).await;
            assert_eq!(reply.status, 401, "{what}: {method} {path} must be refused: {}", reply.body);
            assert_eq!(reply.body["success"], json!(false));
            let error = reply.body["error"].as_str().unwrap();
            assert!(error.starts_with(expected), "{what}: {method} {path}: {error}");
            assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"));
            refused += 1;
        }
    }
    // The token in the query string is not a credential either.
    for (method, path, body) in routes() {
        tried += 1;
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}token={TOKEN_A}&access_token={TOKEN_A}", a.url);
        let reply = call(method, &url, &[], body).await;
        assert_eq!(reply.status, 401, "token in the query: {method} {path}");
        refused += 1;
    }

    // B's owner, with the right token for B, gets nothing of A's through B either.
    let b_owner = MemoryClient::new(b.url.clone()).unwrap().with_token(TOKEN_B);
    tried += 1;
    assert!(b_owner.search("launch code", 5).await.unwrap().is_empty(), "B's store is its own");
    refused += 1;

    // The client an agent of another instance would use: a clear 401 naming the problem.
    tried += 1;
    let err = MemoryClient::new(a.url.clone()).unwrap().with_token(TOKEN_B).list(&Default::default()).await;
    match err {
        Err(ClientError::Api { status: 401, message }) => assert!(message.contains("invalid bearer token")),
        other => panic!("another instance's token must be refused: {other:?}"),
    }
    refused += 1;

    // Nothing the attacks sent reached A's database: the memory is intact and alone.
    let all = owner.list(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 1, "no memory planted by the attacks: {all:?}");
    assert_eq!(all[0].content, "the launch code is 0000", "not overwritten, not deleted");
    assert_eq!(owner.search("launch", 5).await.unwrap().len(), 1);

    // Through the API server's service proxy (which keeps `Authorization` for itself) the
    // owner sends the token in its own header.
    let reply =
        call("GET", &format!("{}/list", a.url), &[("x-sympozium-memory-token", TOKEN_A.into())], None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Health stays open (probes and the runs' wait-for-memory step carry no token) and tells nothing.
    let health = reqwest::get(format!("{}/health", a.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");

    assert_eq!(tried, refused);
    println!("memory isolation: {tried} attacks tried, {refused} refused");
    assert!(a.stderr().contains("refused a request"), "refusals are logged for the operator");
}

#[tokio::test]
async fn a_server_without_a_token_says_so_and_the_owner_token_is_checked_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Local use without a token: open, with a warning in the log.
    let open = ServerProcess::start(&dir.path().join("open.db"), &[]);
    let client = MemoryClient::new(open.url.clone()).unwrap();
    client.store("local note", &[]).await.unwrap();
    assert!(open.stderr().contains("MEMORY_AUTH_TOKEN is not set"), "{}", open.stderr());

    // With a token: the right one works on every route.
    let a = start(&dir, "exact", TOKEN_A);
    let owner = MemoryClient::new(a.url.clone()).unwrap().with_token(TOKEN_A);
    let id = owner.store("mine", &["t".into()]).await.unwrap().id;
    assert_eq!(owner.get(id).await.unwrap().content, "mine");
    let update = sympozium_memory::UpdateRequest { content: Some("still mine".into()), tags: None };
    assert_eq!(owner.update(id, &update).await.unwrap().content, "still mine");
    assert_eq!(owner.search("mine", 5).await.unwrap().len(), 1);
    owner.delete(id).await.unwrap();
    assert!(!a.stderr().contains("MEMORY_AUTH_TOKEN is not set"));
}

/// Standard base64 (for the Basic-auth attack), without pulling in a crate for one header.
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
