//! Asking the API server what the user behind an admission request may do: one
//! SubjectAccessReview per (verb, group, resource, namespace), answered by the cluster's own
//! authorizers (RBAC and whatever else is configured), so the webhook never re-implements
//! RBAC matching. Answers are remembered for the length of one review.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

/// Why an object is refused because of what its author may do; the message names the
/// field, the user and the missing right.
#[derive(Debug, thiserror::Error)]
pub enum AccessDenied {
    /// The user lacks a right a rule grants ([`crate::escalation::denial`]).
    #[error("{0}")]
    MissingRight(String),
    /// The user may not read a Secret the object names ([`crate::secret_reads::denial`]).
    #[error("{0}")]
    SecretRead(String),
    /// Cluster-wide rights asked for outside the system namespace.
    #[error("{0}")]
    ClusterRights(String),
    /// A SubjectAccessReview failed, so the rights could not be checked.
    #[error("{what}: could not check the requesting user's rights (SubjectAccessReview failed): {source}")]
    Review {
        /// The field being checked.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A SkillPack a reference resolves to could not be read.
    #[error("{what}: could not read SkillPack \"{name}\": {source}")]
    ReadSkillPack {
        /// The referring field.
        what: String,
        /// The pack.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A refusal with advice on how to get past it.
    #[error("{source}{hint}")]
    Hinted {
        /// The refusal.
        #[source]
        source: Box<AccessDenied>,
        /// The advice, starting with a space.
        hint: String,
    },
}

impl AccessDenied {
    /// This refusal followed by `hint`.
    pub fn with_hint(self, hint: &str) -> Self {
        AccessDenied::Hinted { source: Box::new(self), hint: hint.to_string() }
    }
}

/// One question: may the user `verb` `resource` (in `group`, optionally `name`d) in
/// `namespace` (`None`: cluster-wide, i.e. in every namespace and for cluster-scoped kinds)?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ask {
    /// Namespace, or `None` for cluster-wide.
    pub namespace: Option<String>,
    /// Verb, e.g. `list`, `bind`, `escalate` (`*` asks for every verb).
    pub verb: String,
    /// API group (`""` is the core group).
    pub group: String,
    /// Resource, with an optional subresource after `/` (`pods/log`).
    pub resource: String,
    /// A single object's name, when the right is about one object.
    pub name: Option<String>,
}

impl Ask {
    /// A question about the `resource` of `group` in `namespace`.
    pub fn new(namespace: Option<&str>, verb: &str, group: &str, resource: &str) -> Self {
        Ask {
            namespace: namespace.map(str::to_string),
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            name: None,
        }
    }

    /// The same question about one named object.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    fn attributes(&self) -> ResourceAttributes {
        let (resource, subresource) = match self.resource.split_once('/') {
            Some((r, s)) => (r.to_string(), Some(s.to_string())),
            None => (self.resource.clone(), None),
        };
        ResourceAttributes {
            namespace: self.namespace.clone(),
            verb: Some(self.verb.clone()),
            group: Some(self.group.clone()),
            resource: Some(resource),
            subresource,
            name: self.name.clone(),
            ..Default::default()
        }
    }
}

/// The rights of one user, asked of the API server through the webhook's own client.
pub struct Access {
    client: Client,
    user: UserInfo,
    answers: Mutex<HashMap<Ask, bool>>,
}

impl Access {
    /// The rights of `user` (the `userInfo` of an admission request).
    pub fn new(client: Client, user: UserInfo) -> Self {
        Access { client, user, answers: Mutex::new(HashMap::new()) }
    }

    /// The user's name as the API server knows it.
    pub fn username(&self) -> &str {
        self.user.username.as_deref().unwrap_or("")
    }

    /// Whether the user may do `ask`. An API error is returned, never read as "allowed".
    pub async fn allowed(&self, ask: &Ask) -> Result<bool, kube::Error> {
        if let Some(known) = self.answers.lock().ok().and_then(|a| a.get(ask).copied()) {
            return Ok(known);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: self.user.username.clone(),
                groups: self.user.groups.clone(),
                uid: self.user.uid.clone(),
                extra: self.user.extra.clone(),
                resource_attributes: Some(ask.attributes()),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let allowed = answer.status.is_some_and(|s| s.allowed && s.denied != Some(true));
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(ask.clone(), allowed);
        }
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_are_asked_as_such() {
        let a = Ask::new(Some("team"), "get", "", "pods/log").attributes();
        assert_eq!((a.resource.as_deref(), a.subresource.as_deref()), (Some("pods"), Some("log")));
        assert_eq!(a.namespace.as_deref(), Some("team"));
        let c = Ask::new(None, "bind", "sympozium.ai", "skillpacks").named("k8s-ops").attributes();
        assert_eq!((c.namespace, c.subresource, c.name.as_deref()), (None, None, Some("k8s-ops")));
    }
}
