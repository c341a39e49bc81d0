//! Query parameters and body checks shared by the route groups.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::error::ApiError;

/// `?namespace=` (default `default`).
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamespaceQuery {
    /// Namespace of the objects (default `default`).
    pub namespace: Option<String>,
}

impl NamespaceQuery {
    /// The namespace asked for, checked to be a valid namespace name.
    pub fn ns(&self) -> Result<String, ApiError> {
        let ns = self.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
        check_name("namespace", ns)?;
        Ok(ns.to_string())
    }
}

/// `?namespace=&limit=&offset=` of list routes.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Namespace of the objects (default `default`; ignored by cluster-wide lists).
    pub namespace: Option<String>,
    /// At most this many items (1–1000; default all). The total is in `X-Total-Count`.
    pub limit: Option<String>,
    /// Skip this many items first (default 0).
    pub offset: Option<String>,
}

impl ListQuery {
    /// The namespace asked for (see [`NamespaceQuery::ns`]).
    pub fn ns(&self) -> Result<String, ApiError> {
        NamespaceQuery { namespace: self.namespace.clone() }.ns()
    }

    /// One page of `items` as a JSON array, with the unpaged count in `X-Total-Count`.
    pub fn page<T: Serialize>(&self, items: Vec<T>) -> Result<Response, ApiError> {
        self.page_of(items, |item| item)
    }

    /// Like [`ListQuery::page`], rendering only the items of the page with `render` (a page
    /// of 50 out of 5,000 runs serializes 50).
    pub fn page_of<S, T: Serialize>(
        &self,
        items: Vec<S>,
        render: impl FnMut(S) -> T,
    ) -> Result<Response, ApiError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Some(n),
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("\"{v}\" is not a number from 1 to 1000"),
                    ));
                }
            },
        };
        let offset = match self.offset.as_deref() {
            None | Some("") => 0,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::invalid("offset", format!("\"{v}\" is not a non-negative number")))?,
        };
        let total = items.len();
        let page: Vec<T> =
            items.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).map(render).collect();
        let mut headers = HeaderMap::new();
        headers.insert("x-total-count", HeaderValue::from(total));
        Ok((headers, Json(page)).into_response())
    }
}

/// A JSON body, or a 400 naming what is wrong with it (instead of axum's plain-text 422).
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::BadJson(e.body_text())),
        }
    }
}

/// Checks `value` is a Kubernetes object name (DNS-1123 subdomain label rules, ≤ 63).
pub fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if value.len() > 63 {
        return Err(ApiError::invalid(field, format!("\"{value}\" is longer than 63 characters")));
    }
    let ok_chars = value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_ends = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok_chars || !ok_ends {
        return Err(ApiError::invalid(
            field,
            format!(
                "\"{value}\" is not a valid name: lower-case letters, digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// `value` trimmed, or a 400 saying `field` is required.
pub fn required(field: &str, value: &Option<String>) -> Result<String, ApiError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(ApiError::invalid(field, "is required")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("name", "my-agent-1").is_ok());
        for bad in ["", "My", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_name("name", bad).is_err(), "{bad:?} accepted");
        }
    }
}
