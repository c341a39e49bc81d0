//! AWS credentials for Bedrock: static keys from the environment, or IRSA (EKS pod
//! identity through `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`), exchanged once per run
//! with STS `AssumeRoleWithWebIdentity` (runs are far shorter than the 1 h credential life).

use std::fmt;
use std::time::Duration;

use crate::error::LlmError;

/// Credentials and where to get them.
#[derive(Clone, Default)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// Session token (optional).
    pub session_token: String,
    /// Region.
    pub region: String,
    /// IRSA role (`AWS_ROLE_ARN`).
    pub role_arn: String,
    /// IRSA token file (`AWS_WEB_IDENTITY_TOKEN_FILE`).
    pub web_identity_token_file: String,
    /// STS endpoint override (`AWS_ENDPOINT_URL_STS`); regional STS when empty.
    pub sts_endpoint: String,
}

impl fmt::Debug for AwsCredentials {
    // Hand-written so secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("region", &self.region)
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// Whether static keys are present.
    pub fn has_static(&self) -> bool {
        !self.access_key_id.is_empty() && !self.secret_access_key.is_empty()
    }

    /// Whether IRSA is configured.
    pub fn has_web_identity(&self) -> bool {
        !self.role_arn.is_empty() && !self.web_identity_token_file.is_empty()
    }

    /// Returns static credentials, assuming the IRSA role when there are no static keys.
    pub async fn resolve(&self) -> Result<AwsCredentials, LlmError> {
        if self.has_static() {
            return Ok(self.clone());
        }
        let fail =
            |m: String| LlmError::Config(format!("Bedrock credentials (AssumeRoleWithWebIdentity): {m}"));
        let token = tokio::fs::read_to_string(&self.web_identity_token_file)
            .await
            .map_err(|e| fail(format!("reading {}: {e}", self.web_identity_token_file)))?;
        let endpoint = if self.sts_endpoint.is_empty() {
            format!("https://sts.{}.amazonaws.com", self.region)
        } else {
            self.sts_endpoint.trim_end_matches('/').to_string()
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.role_arn)
            .append_pair("RoleSessionName", "sympozium-agent-runner")
            .append_pair("WebIdentityToken", token.trim())
            .finish();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let response = client
            .post(format!("{endpoint}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            let message = xml_value(&body, "Message").unwrap_or_else(|| body.chars().take(300).collect());
            return Err(fail(format!("HTTP {}: {message}", status.as_u16())));
        }
        let get = |tag: &str| xml_value(&body, tag).ok_or_else(|| fail(format!("response has no {tag}")));
        Ok(AwsCredentials {
            access_key_id: get("AccessKeyId")?,
            secret_access_key: get("SecretAccessKey")?,
            session_token: get("SessionToken")?,
            ..self.clone()
        })
    }
}

/// The text of the first `<tag>…</tag>` (STS answers in XML; these values need no unescaping
/// beyond the few entities handled here).
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}
