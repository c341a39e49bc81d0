//! `POST /api/v1/providers/bedrock/models`: the foundation models of AWS Bedrock that answer
//! in text, asked live with the caller's AWS keys (Bedrock's `ListFoundationModels`,
//! `GET /foundation-models?byOutputModality=TEXT` on `bedrock.<region>.amazonaws.com`,
//! signed with SigV4). The keys are used for this one call and never stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::providers::ModelsResponse;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::params::Body;

/// Region when the request names none (as the original).
const DEFAULT_REGION: &str = "us-east-1";
/// Largest answer read (the full catalogue is a few hundred kilobytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The Bedrock route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/providers/bedrock/models", post(models))
}

/// AWS credentials for one model-list call.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BedrockModelsRequest {
    /// AWS region (`us-east-1` when empty).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

/// A region is a DNS label of the endpoint's host name: anything else could point the signed
/// request somewhere else.
fn check_region(region: &str) -> ApiResult<()> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "region",
            format!(
                "\"{region}\" is not an AWS region (lower-case letters, digits and hyphens, like us-east-1)"
            ),
        ))
    }
}

/// The foundation models of Bedrock in `region` whose output is text, sorted.
#[utoipa::path(post, path = "/api/v1/providers/bedrock/models", tag = "providers",
    request_body = BedrockModelsRequest,
    responses((status = 200, body = ModelsResponse), (status = 400, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn models(
    State(s): State<AppState>,
    Body(req): Body<BedrockModelsRequest>,
) -> ApiResult<Json<ModelsResponse>> {
    let access_key = crate::params::required("accessKeyId", &req.access_key_id)?;
    let secret_key = crate::params::required("secretAccessKey", &req.secret_access_key)?;
    let region =
        req.region.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or(DEFAULT_REGION).to_string();
    check_region(&region)?;
    let session_token = req.session_token.as_deref().map(str::trim).filter(|t| !t.is_empty());

    let base = match s.bedrock_endpoint.as_deref() {
        Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
        None => format!("https://bedrock.{region}.amazonaws.com"),
    };
    let url = url::Url::parse(&format!("{base}/foundation-models?byOutputModality=TEXT"))
        .map_err(|e| ApiError::Internal(format!("Bedrock endpoint {base:?}: {e}")))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(ApiError::Internal(format!("Bedrock endpoint {base:?} has no host"))),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let amz_date = sympozium_sigv4::amz_date(now);
    let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str()), ("x-amz-date", amz_date.as_str())];
    if let Some(token) = session_token {
        signed.push(("x-amz-security-token", token));
    }
    let authorization = sympozium_sigv4::sign(&sympozium_sigv4::SigningInput {
        method: "GET",
        canonical_uri: "/foundation-models",
        canonical_query: "byOutputModality=TEXT",
        headers: &signed,
        payload: b"",
        amz_date: &amz_date,
        region: &region,
        service: "bedrock",
        access_key: &access_key,
        secret_key: &secret_key,
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut request =
        http.get(url.clone()).header("authorization", authorization).header("x-amz-date", &amz_date);
    if let Some(token) = session_token {
        request = request.header("x-amz-security-token", token);
    }
    let mut res =
        request.send().await.map_err(|e| ApiError::BadGateway(format!("asking Bedrock ({region}): {e}")))?;
    let status = res.status();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| ApiError::BadGateway(e.to_string()))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ApiError::BadGateway(format!(
                "Bedrock's answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() {
        // AWS says why in `message` (`The security token included in the request is invalid.`).
        let why = value["message"].as_str().or_else(|| value["Message"].as_str()).unwrap_or("no message");
        return Err(ApiError::BadGateway(format!("Bedrock ({region}) answered {status}: {why}")));
    }
    let Some(summaries) = value["modelSummaries"].as_array() else {
        return Err(ApiError::BadGateway(format!("Bedrock ({region}) answered without modelSummaries")));
    };
    Ok(Json(ModelsResponse { models: text_models(summaries), source: "live".into() }))
}

/// Model ids whose output modalities include text (the filter is asked of Bedrock too; an
/// answer that ignores it must not list image models), sorted, once each.
fn text_models(summaries: &[serde_json::Value]) -> Vec<String> {
    let mut models: Vec<String> = summaries
        .iter()
        .filter(|m| {
            m["outputModalities"].as_array().is_some_and(|o| o.iter().any(|x| x.as_str() == Some("TEXT")))
        })
        .filter_map(|m| m["modelId"].as_str())
        .map(String::from)
        .collect();
    models.sort();
    models.dedup();
    models
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn regions_are_dns_labels() {
        for ok in ["us-east-1", "eu-central-2", "ap-southeast-4"] {
            assert!(check_region(ok).is_ok(), "{ok}");
        }
        for bad in ["evil.example.com/#", "US-EAST-1", "-x", "a b", "x".repeat(40).as_str(), "us-east-1."] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_text_models_are_listed() {
        let v: Vec<serde_json::Value> = serde_json::from_value(serde_json::json!([
            {"modelId": "b.text", "outputModalities": ["TEXT"]},
            {"modelId": "a.image", "outputModalities": ["IMAGE"]},
            {"modelId": "a.both", "outputModalities": ["IMAGE", "TEXT"]},
            {"modelId": "b.text", "outputModalities": ["TEXT"]},
            {"modelId": "c.none"}
        ]))
        .unwrap();
        assert_eq!(text_models(&v), ["a.both", "b.text"]);
    }
}
