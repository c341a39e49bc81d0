//! Leader election against the real API server: one of two candidates wins, the other
//! takes over only after the winner stops renewing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sympozium_kube::leader::{LeaseConfig, try_acquire_or_renew};
use sympozium_testkit::TestPlane;

fn candidate(ns: &str, id: &str) -> LeaseConfig {
    LeaseConfig {
        name: "sympozium-controller-leader".into(),
        namespace: ns.into(),
        identity: id.into(),
        lease_duration: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn one_candidate_leads_and_the_other_takes_over_after_expiry() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "leader").await.unwrap();
    let api: Api<Lease> = Api::namespaced(client, ns.name());
    let (a, b) = (candidate(ns.name(), "replica-a"), candidate(ns.name(), "replica-b"));

    assert!(try_acquire_or_renew(&api, &a).await.unwrap(), "the first candidate acquires the lease");
    assert!(!try_acquire_or_renew(&api, &b).await.unwrap(), "a held lease is not taken");
    assert!(try_acquire_or_renew(&api, &a).await.unwrap(), "the holder renews");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(try_acquire_or_renew(&api, &b).await.unwrap(), "an expired lease is taken over");
    assert!(!try_acquire_or_renew(&api, &a).await.unwrap(), "the old holder has lost it");
    let lease = api.get("sympozium-controller-leader").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}
