//! `sympozium-memory-bench`: store throughput and search latency of the memory server at
//! growing sizes. Run with `make bench-memory` (release build); see the crate README.
//!
//! For each size N it bulk-loads N synthetic notes (one transaction per 50,000) into a fresh
//! database — or copies the one a previous run left in the cache directory (`target/bench-memory`
//! by default), since loading 1M notes takes minutes — starts the real HTTP server in-process on
//! a loopback port, then measures, through [`MemoryClient`] over HTTP: single-memory stores
//! (each one acknowledged only after its commit, from several counts of concurrent clients),
//! and searches with short keyword queries and long natural-language tasks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sympozium_memory::{Config, MemoryClient, Server, Store, StoreRequest};

#[derive(Debug, Parser)]
#[command(about = "Benchmark the memory server (store throughput, search latency)")]
struct Args {
    /// Database sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<u64>,
    /// Directory for the benchmark databases (a temporary directory when absent).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where bulk-loaded databases are kept between runs (same size = same content).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench-memory"))]
    cache: PathBuf,
    /// Load every database afresh (and do not cache it).
    #[arg(long)]
    no_cache: bool,
    /// Stores measured per size and client count.
    #[arg(long, default_value_t = 4000)]
    stores: usize,
    /// Counts of concurrent storing clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,64")]
    concurrency: Vec<usize>,
    /// Searches measured per size and query kind.
    #[arg(long, default_value_t = 300)]
    searches: usize,
    /// Keep the databases afterwards (for inspection).
    #[arg(long)]
    keep: bool,
}

/// Deterministic xorshift generator (no dependency, same corpus every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const DOMAIN: &[&str] = &[
    "pod",
    "node",
    "deployment",
    "service",
    "ingress",
    "certificate",
    "postgres",
    "replica",
    "failover",
    "kafka",
    "consumer",
    "lag",
    "redis",
    "cache",
    "eviction",
    "memory",
    "oom",
    "restart",
    "crash",
    "latency",
    "timeout",
    "dns",
    "coredns",
    "etcd",
    "defrag",
    "alarm",
    "disk",
    "pressure",
    "volume",
    "claim",
    "finalizer",
    "helm",
    "rollback",
    "release",
    "terraform",
    "lock",
    "bucket",
    "policy",
    "kms",
    "token",
    "clock",
    "skew",
    "ntp",
    "backup",
    "restore",
    "velero",
    "snapshot",
    "grafana",
    "alert",
    "pagerduty",
    "oncall",
    "deploy",
    "freeze",
    "approval",
    "quota",
    "limit",
    "throttle",
    "ratelimit",
    "envoy",
    "tls",
    "handshake",
    "jdk",
    "cronjob",
    "schedule",
    "daylight",
    "loadbalancer",
    "subnet",
    "secret",
    "rotation",
    "index",
    "query",
    "invoice",
    "report",
    "drain",
    "disruption",
    "budget",
    "flag",
    "checkout",
    "payment",
    "loki",
    "retention",
    "audit",
    "kubelet",
    "image",
    "registry",
    "pull",
    "network",
    "calico",
    "cilium",
    "vpn",
    "portal",
    "login",
    "session",
    "queue",
    "worker",
    "batch",
    "pipeline",
    "artifact",
    "upgrade",
    "migration",
    "schema",
    "runbook",
];

const STOP: &[&str] = &["the", "and", "to", "of", "is", "in", "for", "on", "with", "after"];

struct Corpus {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Corpus {
    /// Domain words plus 5,000 synthetic ones, drawn with a Zipf distribution.
    fn new(rng: &mut Rng) -> Self {
        let syllables = [
            "ka", "lo", "mi", "ten", "sor", "vel", "dra", "qui", "ban", "ret", "zu", "pho", "gan", "lex",
            "tor", "mun",
        ];
        let mut words: Vec<String> = DOMAIN.iter().map(|w| (*w).to_string()).collect();
        while words.len() < DOMAIN.len() + 5000 {
            let n = 2 + rng.below(3);
            let w: String = (0..n).map(|_| syllables[rng.below(syllables.len())]).collect();
            if !words.contains(&w) {
                words.push(w);
            }
        }
        // Shuffle so domain words are spread over the frequency ranks.
        for i in (1..words.len()).rev() {
            let j = rng.below(i + 1);
            words.swap(i, j);
        }
        let mut cumulative = Vec::with_capacity(words.len());
        let mut sum = 0.0;
        for rank in 1..=words.len() {
            sum += 1.0 / rank as f64;
            cumulative.push(sum);
        }
        Self { words, cumulative }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = rng.unit() * total;
        let i = self.cumulative.partition_point(|c| *c < u).min(self.words.len() - 1);
        &self.words[i]
    }

    fn sentence(&self, rng: &mut Rng, len: usize) -> String {
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            if rng.below(4) == 0 {
                out.push(STOP[rng.below(STOP.len())].to_string());
            } else {
                out.push(self.word(rng).to_string());
            }
        }
        out.join(" ")
    }

    fn note(&self, rng: &mut Rng) -> String {
        let len = 20 + rng.below(30);
        format!("{}.", self.sentence(rng, len))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = tempfile_dir(args.dir.clone())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let corpus = Corpus::new(&mut rng);
    let store_columns: String =
        args.concurrency.iter().map(|c| format!(" store, {c} clients: rate, p50 / p99 |")).collect();
    println!(
        "| memories | bulk load |{store_columns} search short p50 / p99 | search long p50 / p99 | db size |"
    );
    println!("|---|---|{}---|---|---|", "---|".repeat(args.concurrency.len()));
    for &size in &args.sizes {
        let db = tmp.join(format!("bench-{size}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        // Stores and queries draw from their own generator, so they are the same whether the
        // database was loaded now or copied from the cache.
        let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ size);
        let config = Config {
            port: 0,
            bind: std::net::IpAddr::from([127, 0, 0, 1]),
            db_path: db.clone(),
            seeds_path: None,
            max_entries: 0,
            max_entry_bytes: 0,
            max_total_bytes: 0,
            startup_check: false,
            readers: 4,
            auth_token: None,
        };

        let cached = args.cache.join(format!("corpus-{CORPUS_VERSION}-{size}.db"));
        let load = if !args.no_cache && cached.exists() {
            let started = Instant::now();
            std::fs::copy(&cached, &db).with_context(|| format!("copy {}", cached.display()))?;
            Load::Cached(started.elapsed())
        } else {
            let started = Instant::now();
            bulk_load(&db, &config, &corpus, size).await?;
            let load = started.elapsed();
            if !args.no_cache {
                std::fs::create_dir_all(&args.cache)
                    .with_context(|| format!("create {}", args.cache.display()))?;
                let partial = cached.with_extension("partial");
                std::fs::copy(&db, &partial).with_context(|| format!("copy to {}", partial.display()))?;
                std::fs::rename(&partial, &cached)?;
            }
            Load::Fresh(load)
        };

        let server = Server::bind(&config).await?;
        let url = format!("http://{}", server.local_addr());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async {
            let _ = stop_rx.await;
        }));
        let client = MemoryClient::new(url)?;

        // Stores over HTTP from concurrent clients.
        let mut store_cells = String::new();
        for &clients in &args.concurrency {
            let per_client = args.stores / clients.max(1);
            let notes: Vec<Vec<String>> =
                (0..clients).map(|_| (0..per_client).map(|_| corpus.note(&mut rng)).collect()).collect();
            let started = Instant::now();
            let mut tasks = Vec::new();
            for batch in notes {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(batch.len());
                    for note in batch {
                        let t = Instant::now();
                        client.store(&note, &["bench".into()]).await?;
                        lat.push(t.elapsed());
                    }
                    Ok::<_, anyhow::Error>(lat)
                }));
            }
            let mut store_lat = Vec::new();
            for t in tasks {
                store_lat.extend(t.await??);
            }
            let store_elapsed = started.elapsed();
            store_lat.sort_unstable();
            let store_rate = store_lat.len() as f64 / store_elapsed.as_secs_f64();
            store_cells.push_str(&format!(
                " {store_rate:.0}/s, {} / {} |",
                ms(percentile(&store_lat, 0.5)),
                ms(percentile(&store_lat, 0.99))
            ));
        }

        // Searches, one at a time.
        let mut short = Vec::with_capacity(args.searches);
        let mut long = Vec::with_capacity(args.searches);
        for _ in 0..args.searches {
            let q = format!("{} {}", DOMAIN[rng.below(DOMAIN.len())], DOMAIN[rng.below(DOMAIN.len())]);
            let t = Instant::now();
            client.search(&q, 5).await?;
            short.push(t.elapsed());
            let task = corpus.sentence(&mut rng, 30);
            let t = Instant::now();
            client.search(&task, 5).await?;
            long.push(t.elapsed());
        }
        short.sort_unstable();
        long.sort_unstable();
        let _ = stop_tx.send(());
        serving.await??;
        let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        let load = match load {
            Load::Fresh(took) => {
                format!("{:.1} s ({:.0}/s)", took.as_secs_f64(), size as f64 / took.as_secs_f64())
            }
            Load::Cached(took) => format!("cached (copied in {:.1} s)", took.as_secs_f64()),
        };
        println!(
            "| {size} | {load} |{store_cells} {} / {} | {} / {} | {} MiB |",
            ms(percentile(&short, 0.5)),
            ms(percentile(&short, 0.99)),
            ms(percentile(&long, 0.5)),
            ms(percentile(&long, 0.99)),
            db_bytes / (1024 * 1024),
        );
        if !args.keep {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
    }
    Ok(())
}

/// Bump when the corpus, the schema or the layout the loader leaves changes, so cached databases
/// are not reused. 2: the FTS5 index is merged after loading (see [`merge_index`]).
const CORPUS_VERSION: u32 = 2;

/// How the database of one size came to be.
enum Load {
    Fresh(Duration),
    Cached(Duration),
}

/// Loads `size` notes in transactions of 50,000, merges the FTS5 index, then checkpoints the WAL
/// into the file.
async fn bulk_load(db: &std::path::Path, config: &Config, corpus: &Corpus, size: u64) -> anyhow::Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size);
    let store = Store::open(db, config.limits(), false, 0).context("open bench db")?;
    let mut loaded = 0u64;
    while loaded < size {
        let n = (size - loaded).min(50_000);
        let batch: Vec<StoreRequest> = (0..n)
            .map(|_| StoreRequest { content: corpus.note(&mut rng), tags: vec!["bench".into()] })
            .collect();
        store.store_batch(batch).await?;
        loaded += n;
    }
    drop(store);
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || merge_index(&db)).await??;
    Ok(())
}

/// Pages of FTS5 merge work per transaction in [`merge_index`].
const MERGE_PAGES: i64 = 2000;

/// Merges the FTS5 index the way its automerge would in time (segments of a level merged once 4
/// are there) until nothing is left to merge, then checkpoints and truncates the WAL. How much a
/// load leaves unmerged depends on how many rows each of its statements inserts (FTS5 flushes a
/// segment per statement and merges in proportion to what it writes), and searches slow down
/// with the segments they must read; merged, the database is the same whatever the loader did,
/// and close to one that a server has written to for a long time.
fn merge_index(db: &std::path::Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(db).with_context(|| format!("open {}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    loop {
        let before = conn.total_changes();
        conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('merge', ?1)", [MERGE_PAGES])?;
        // FTS5's documented test: fewer than 2 changes means the merge found no work.
        if conn.total_changes() - before < 2 {
            break;
        }
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// The given directory, or a fresh one under the system temp dir.
fn tempfile_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("sympozium-memory-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
