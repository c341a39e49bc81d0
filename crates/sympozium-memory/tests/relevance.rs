#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Relevance on a small realistic corpus of incident notes and runbook snippets: for
//! natural-language tasks the expected memory is in the top 3, where the original server's
//! AND-of-every-word query finds nothing.

mod common;

use common::ServerProcess;
use rusqlite::Connection;
use sympozium_memory::query::legacy_and_query;

const CORPUS: &[(&str, &str)] = &[
    (
        "pg-failover",
        "Runbook: Postgres primary failover. If the primary is unreachable for more than 60s, promote the replica with `pg_ctl promote`, then update the `db-primary` Service selector and restart the connection poolers (pgbouncer).",
    ),
    (
        "pg-disk",
        "Incident 2024-03-02: Postgres ran out of disk because WAL archiving to S3 was failing silently. Fix: repair the archive_command credentials and delete old WAL segments only after archiving succeeds.",
    ),
    (
        "nginx-oom",
        "Incident: ingress-nginx controller pods were OOMKilled during a traffic spike; memory limit raised from 512Mi to 1Gi and HPA added on CPU.",
    ),
    (
        "cert-manager",
        "Certificates are issued by cert-manager with the letsencrypt-prod ClusterIssuer. If a certificate is stuck in Pending, check the ACME challenge and the DNS01 solver's Route53 credentials.",
    ),
    (
        "dns-coredns",
        "CoreDNS latency spikes were caused by ndots:5 in pod resolv.conf; setting dnsConfig ndots:2 on chatty services cut lookup volume by 70%.",
    ),
    (
        "kafka-lag",
        "Kafka consumer lag on the orders topic grows when the payment service rebalances too often; increase session.timeout.ms to 45s and use cooperative-sticky assignment.",
    ),
    (
        "redis-evict",
        "Redis cache eviction storm after maxmemory was lowered; restore maxmemory to 6GB and use allkeys-lru, never volatile-ttl, for the session cache.",
    ),
    (
        "deploy-freeze",
        "Change policy: production deploys are frozen on Fridays after 15:00 UTC and during the last week of the quarter. Emergency fixes need approval from the on-call lead.",
    ),
    (
        "node-pressure",
        "Nodes in the batch pool hit DiskPressure because container images were never garbage collected; lowered kubelet imageGCHighThresholdPercent to 70.",
    ),
    (
        "terraform-lock",
        "Terraform state lock stuck after a cancelled CI job: run `terraform force-unlock <id>` only after confirming no apply is running in the pipeline.",
    ),
    (
        "s3-403",
        "Uploads to the artifacts bucket failed with 403 AccessDenied after the bucket policy started requiring TLS and the KMS key policy lacked the CI role.",
    ),
    (
        "helm-rollback",
        "Runbook: to roll back a bad release use `helm rollback <release> <revision>`; check `helm history` first and never roll back CRDs with helm.",
    ),
    (
        "grafana-alerts",
        "Grafana alert rules live in the observability repo under alerts/; the on-call rotation is paged through PagerDuty by the critical severity label.",
    ),
    (
        "vpn-cert",
        "The office VPN client certificate expires every 90 days; renew it from the IT portal before it lapses or remote access stops working.",
    ),
    (
        "jwt-clock",
        "Login failures with 'token used before issued' were clock skew on two nodes where chrony was disabled; re-enabled NTP sync.",
    ),
    (
        "etcd-defrag",
        "etcd database size alarm (mvcc: database space exceeded): compact the revision history and run etcdctl defrag on each member, one at a time.",
    ),
    (
        "pvc-stuck",
        "A PersistentVolumeClaim stuck in Terminating is held by the kubernetes.io/pvc-protection finalizer while a pod still mounts it; delete the pod first.",
    ),
    (
        "image-pull",
        "ImagePullBackOff on new nodes: the registry pull secret was missing from the namespace's default ServiceAccount imagePullSecrets.",
    ),
    (
        "rate-limit",
        "The public API returns 429 Too Many Requests when a tenant exceeds 100 requests per second; the limit is configured in the Envoy ratelimit service.",
    ),
    (
        "backup-restore",
        "Nightly backups are Velero snapshots kept 14 days; restoring a namespace requires `velero restore create --from-backup` and re-running the sealed-secrets controller.",
    ),
    (
        "memory-leak",
        "The recommendation service leaks memory through an unbounded in-process LRU cache; it restarts roughly every 36 hours. Cap the cache size.",
    ),
    (
        "ssl-handshake",
        "Intermittent SSL handshake failures from the Java clients were TLS 1.3 session resumption bugs in an old JDK; upgraded to 17.0.9.",
    ),
    (
        "cron-timezone",
        "CronJobs run in UTC; the billing export that should run at 02:00 Berlin time is scheduled as 0 1 * * * in winter and must be adjusted for daylight saving.",
    ),
    (
        "load-balancer",
        "The AWS load balancer controller needs the subnets tagged kubernetes.io/role/elb=1, otherwise Services of type LoadBalancer stay pending.",
    ),
    (
        "git-secrets",
        "A leaked API key in git history must be rotated first, then purged with git filter-repo; rotating is the part that actually matters.",
    ),
    (
        "slow-queries",
        "Slow queries on the reports database were missing an index on invoices(customer_id, created_at); add indexes concurrently to avoid locking the table.",
    ),
    (
        "oncall-handoff",
        "On-call handoff happens Mondays at 10:00 UTC in the #ops channel with a written summary of open incidents.",
    ),
    (
        "node-drain",
        "Draining nodes hangs when a PodDisruptionBudget allows zero disruptions; scale the deployment up first or temporarily relax the PDB.",
    ),
    (
        "feature-flags",
        "Feature flags are managed in Unleash; kill switches for checkout are under the payments project and take effect within 15 seconds.",
    ),
    (
        "log-retention",
        "Application logs are kept 30 days in Loki; audit logs go to S3 with object lock for 7 years.",
    ),
];

/// (task, key of the memory that must be in the top 3)
const TASKS: &[(&str, &str)] = &[
    (
        "The primary Postgres database is not responding and the application cannot connect, please fail over to the standby and get writes working again",
        "pg-failover",
    ),
    (
        "Our ingress pods keep getting killed for running out of memory whenever traffic goes up, investigate and stop the restarts",
        "nginx-oom",
    ),
    (
        "A TLS certificate for the customer portal has been pending for hours and the ACME challenge seems to never complete, figure out why",
        "cert-manager",
    ),
    (
        "Consumers of the orders topic are falling behind badly and lag keeps growing during peak hours, find the cause",
        "kafka-lag",
    ),
    (
        "I need to ship an urgent release to production this Friday afternoon, tell me whether deploys are allowed and who must approve it",
        "deploy-freeze",
    ),
    (
        "The etcd cluster raised a database space exceeded alarm and the API server rejects writes, what is the recovery procedure",
        "etcd-defrag",
    ),
    (
        "Pods on the freshly added nodes are stuck with ImagePullBackOff errors while pulling from our private registry",
        "image-pull",
    ),
    (
        "Draining a node for maintenance never finishes because pods refuse to be evicted, help me complete the node drain",
        "node-drain",
    ),
    (
        "Users report that logins fail intermittently with an error saying the token was used before it was issued",
        "jwt-clock",
    ),
    (
        "The monthly reports page is extremely slow and the database shows long running queries over the invoices table",
        "slow-queries",
    ),
];

/// What the original server found: its FTS expression, or when that is a syntax error, its
/// fallback `content LIKE %query%`.
fn original_search_count(conn: &Connection, task: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?1",
        [legacy_and_query(task)],
        |r| r.get(0),
    )
    .or_else(|_| {
        conn.query_row("SELECT count(*) FROM memories WHERE content LIKE '%' || ?1 || '%'", [task], |r| {
            r.get(0)
        })
    })
    .unwrap()
}

#[tokio::test]
async fn natural_language_tasks_find_the_right_memory_where_the_original_query_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let server = ServerProcess::start(&db, &[]);
    let client = server.client();
    let mut ids = std::collections::HashMap::new();
    for (key, content) in CORPUS {
        let stored = client.store(content, &["corpus".into()]).await.unwrap();
        ids.insert(*key, stored.id);
    }
    let conn = Connection::open(&db).unwrap();
    let mut failures = Vec::new();
    for (task, key) in TASKS {
        let found = client.search(task, 3).await.unwrap();
        let top: Vec<i64> = found.iter().map(|e| e.id).collect();
        if !top.contains(&ids[key]) {
            let top_keys: Vec<&str> = top
                .iter()
                .map(|id| ids.iter().find(|(_, v)| *v == id).map(|(k, _)| *k).unwrap_or("?"))
                .collect();
            failures.push(format!("{key:?} not in top 3 {top_keys:?} for {task:?}"));
        }
        // The original server's query (AND of every word as a prefix) finds nothing.
        let legacy = original_search_count(&conn, task);
        assert_eq!(legacy, 0, "the original query unexpectedly matched {task:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn phrases_and_all_terms_rank_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("memory.db"), &[]);
    let client = server.client();
    for (_, content) in CORPUS {
        client.store(content, &[]).await.unwrap();
    }
    // A quoted phrase must match as a phrase.
    let found = client.search("\"database space exceeded\" recovery", 5).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].content.starts_with("etcd database size alarm"));
    // Stemming: "rolling back releases" finds "roll back a bad release".
    let found = client.search("rolling back releases", 3).await.unwrap();
    assert!(found[0].content.starts_with("Runbook: to roll back"), "{found:?}");
    // Recency breaks ties between otherwise identical matches.
    let older = client.store("duplicate note about canary analysis", &[]).await.unwrap();
    let newer = client.store("duplicate note about canary analysis", &[]).await.unwrap();
    let found = client.search("canary analysis", 2).await.unwrap();
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), vec![newer.id, older.id]);
}
