//! The load clients: the requests every scenario sends, the latencies
//! they record ([`Sample`]).

use std::time::{Duration, Instant};

/// Latencies of one scenario.
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) count: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
}

impl Sample {
    /// The latencies the load clients recorded, since `started`.
    pub(crate) async fn of_clients(
        name: &str,
        started: Instant,
        clients: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
    ) -> Sample {
        let mut latencies = Vec::new();
        for client in clients {
            latencies.extend(client.await.expect("load client"));
        }
        Sample {
            name: name.into(),
            count: latencies.len(),
            elapsed: started.elapsed(),
            latencies,
        }
    }

    /// Adds `other`, a later sample of the same system and load.
    pub(crate) fn add(&mut self, other: Sample) {
        self.count += other.count;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    /// The latency at quantile `p` (nearest rank), if any was recorded.
    pub(crate) fn percentile(&mut self, p: f64) -> Option<Duration> {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies
            .get(i.min(self.latencies.len().saturating_sub(1)))
            .copied()
    }

    pub(crate) fn row(&mut self) -> String {
        let mut pct = |p: f64| match self.percentile(p) {
            Some(latency) => format!("{:.2}", latency.as_secs_f64() * 1000.0),
            None => "-".to_owned(),
        };
        let (p50, p99) = (pct(0.5), pct(0.99));
        format!(
            "| {} | {} | {:.3} | {:.0} | {} | {} |",
            self.name,
            self.count,
            self.elapsed.as_secs_f64(),
            self.count as f64 / self.elapsed.as_secs_f64(),
            p50,
            p99
        )
    }
}

pub(crate) fn global_id(kind: &str, id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

pub(crate) async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = client
        .post(endpoint)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let value: serde_json::Value = response.json().await.expect("JSON");
    assert!(value.get("errors").is_none(), "errors: {value}");
    value
}

/// Background load beside a latency scenario: `workers` clients, each
/// adding `"{prefix} {n % 20}"` to a pseudo-random user of `ids` (seeded
/// with `seed + worker`) until `deadline`. [`BackgroundLoad::sent`] waits
/// for them and says how many requests they sent.
pub(crate) struct BackgroundLoad(Vec<tokio::task::JoinHandle<u64>>);

/// The `addTags` mutation of the write scenarios, their loads and probes.
pub(crate) const ADD_TAGS: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";

#[allow(clippy::too_many_arguments)]
fn background_tagging(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    workers: usize,
    deadline: Instant,
    seed: u64,
    prefix: &'static str,
) -> BackgroundLoad {
    BackgroundLoad(
        (0..workers)
            .map(|worker| {
                let (client, endpoint, key, ids) = (
                    client.clone(),
                    endpoint.to_owned(),
                    key.to_owned(),
                    ids.to_vec(),
                );
                tokio::spawn(async move {
                    let mut n: u64 = seed + worker as u64;
                    let mut sent = 0u64;
                    while Instant::now() < deadline {
                        let body = load_body(&mut n, &ids, prefix);
                        post(&client, &endpoint, &key, body).await;
                        sent += 1;
                    }
                    sent
                })
            })
            .collect(),
    )
}

/// The next request of the background load from the generator state `n`:
/// `"{prefix} {n % 20}"` added to a pseudo-random user of `ids`.
fn load_body(n: &mut u64, ids: &[i64], prefix: &str) -> serde_json::Value {
    *n = n
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let id = ids[(*n >> 33) as usize % ids.len()];
    serde_json::json!({ "query": ADD_TAGS, "variables": {
        "id": global_id("User", id), "tags": [format!("{prefix} {}", *n % 20)] } })
}

impl BackgroundLoad {
    async fn sent(self) -> u64 {
        let mut sent = 0;
        for task in self.0 {
            sent += task.await.expect("load");
        }
        sent
    }
}

/// The traffic of a latency scenario, for `args.seconds`: other clients tag
/// random users in the background, while a probe every 10 ms adds `tag(n)`
/// to user `ids[n % ids.len()]`, for n = `first`, `first + 1`, ...;
/// `sending(n)` is called just before probe n goes. Returns how many
/// probes were sent and how many background requests meanwhile.
///
/// The background: with `args.load_rate`, `args.concurrency` clients of a
/// process of their own paced to that many requests per second in all,
/// for [`LEAD_SECONDS`] before the probes start and then beside them; with
/// 0, half the clients (at least one) in this process, each as fast as it
/// is answered ([`background_tagging`] with `seed` and `prefix`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn probes_under_load(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &crate::Args,
    (seed, prefix): (u64, &'static str),
    first: u64,
    tag: impl Fn(u64) -> String,
    mut sending: impl FnMut(u64),
) -> (u64, u64) {
    let lead = Duration::from_secs(if args.load_rate == 0 { 0 } else { LEAD_SECONDS });
    let deadline = Instant::now() + lead + Duration::from_secs(args.seconds);
    let probes = async {
        tokio::time::sleep(lead).await;
        let mut probe = first;
        while Instant::now() < deadline {
            let id = ids[probe as usize % ids.len()];
            sending(probe);
            let body = serde_json::json!({ "query": ADD_TAGS, "variables": {
                "id": global_id("User", id), "tags": [tag(probe)] } });
            post(client, endpoint, key, body).await;
            probe += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probe - first
    };
    if args.load_rate == 0 {
        let workers = Ord::max(args.concurrency / 2, 1);
        let load = background_tagging(client, endpoint, key, ids, workers, deadline, seed, prefix);
        let probes = probes.await;
        return (probes, load.sent().await);
    }
    // The load from a process of its own, `args.concurrency` clients
    // paced to `args.load_rate` changes per second in all.
    let mut n = seed;
    let bodies: Vec<serde_json::Value> =
        (0..4096).map(|_| load_body(&mut n, ids, prefix)).collect();
    let load = from_another_process(
        "load",
        endpoint,
        Some(key),
        &bodies,
        Load {
            concurrency: args.concurrency,
            seconds: args.seconds,
            rate: args.load_rate,
            warm_up: false,
            lead_seconds: LEAD_SECONDS,
        },
    );
    let (probes, load) = tokio::join!(probes, load);
    (probes, load.count as u64)
}

/// The time from each cause to its answer, both `tag_changes.at`, of the
/// rows `sql` selects (`cause.at`, `answer.at`): server-side timestamps.
pub(crate) async fn cause_to_answer(
    conn: &sea_orm::DatabaseConnection,
    sql: &str,
) -> Vec<Duration> {
    use sea_orm::{ConnectionTrait, Statement};
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("latencies");
    rows.iter()
        .map(|row| {
            let cause: chrono::DateTime<chrono::Utc> = row.try_get_by_index(0).expect("at");
            let answer: chrono::DateTime<chrono::Utc> = row.try_get_by_index(1).expect("at");
            (answer - cause).to_std().unwrap_or_default()
        })
        .collect()
}

/// The hidden `--client` mode: the bench run again as a load client of
/// its own, so that the load does not share the server's process (its
/// runtime, its allocator, its threads).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ClientArgs {
    /// Be a load client: post the bodies of `--bodies` to `--url` from
    /// `--concurrency` connections for `--seconds`, print the latencies as JSON.
    #[arg(long, hide = true)]
    pub(crate) client: bool,
    /// The endpoint the client posts to.
    #[arg(long, hide = true, requires = "client")]
    pub(crate) url: Option<String>,
    /// A file with a JSON array of request bodies, drawn at random.
    #[arg(long, hide = true, requires = "client")]
    pub(crate) bodies: Option<std::path::PathBuf>,
    /// Requests per second of all the client's connections together, each
    /// on a schedule of its own (0: each sends its next request as soon as
    /// the last one is answered).
    #[arg(long, hide = true, requires = "client", default_value_t = 0)]
    pub(crate) rate: u64,
    /// Send no warm-up requests before the timed ones.
    #[arg(long, hide = true, requires = "client")]
    pub(crate) no_warm_up: bool,
    /// Load for this many seconds before the timed ones, unrecorded.
    #[arg(long, hide = true, requires = "client", default_value_t = 0)]
    pub(crate) lead_seconds: u64,
}

/// How a load client of another process loads its server.
pub(crate) struct Load {
    /// Connections at once.
    pub(crate) concurrency: usize,
    pub(crate) seconds: u64,
    /// Requests per second in all (0: as fast as answered).
    pub(crate) rate: u64,
    /// A few requests before the timed ones (connections, plans).
    pub(crate) warm_up: bool,
    /// Seconds of the same load before the timed ones, unrecorded.
    pub(crate) lead_seconds: u64,
}

/// Seconds a latency scenario's background load runs before its probes
/// start: the server's pool has its connections and their prepared
/// statements, the load's tags exist (the steady state is measured, not
/// the first second of a cold server).
pub(crate) const LEAD_SECONDS: u64 = 2;

/// The environment variable that carries the API key to the client (kept
/// off its command line).
const KEY_VAR: &str = "TAGSMITH_BENCH_CLIENT_KEY";

/// What a load client prints: how many requests it made over how long,
/// and each one's latency in microseconds.
#[derive(serde::Serialize, serde::Deserialize)]
struct ClientReport {
    elapsed_seconds: f64,
    latencies_us: Vec<u64>,
}

/// Runs the load client (`--client`) and prints its report on stdout.
pub(crate) async fn external(args: &ClientArgs, seconds: u64, concurrency: u64) {
    let fail = |message: String| -> ! {
        eprintln!("load client: {message}");
        std::process::exit(2)
    };
    let (Some(url), Some(bodies)) = (&args.url, &args.bodies) else {
        fail("--client needs --url and --bodies".into())
    };
    let bodies: Vec<serde_json::Value> = std::fs::read(bodies)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", bodies.display())));
    if bodies.is_empty() {
        fail("no request bodies".into());
    }
    let key = std::env::var(KEY_VAR).ok();
    let client = reqwest::Client::new();
    let bodies = std::sync::Arc::new(bodies);
    // Warm-up: a few requests outside the timing (connections, plans).
    if !args.no_warm_up {
        for body in bodies.iter().take(5) {
            send(&client, url, key.as_deref(), body.clone())
                .await
                .unwrap_or_else(|e| fail(e));
        }
    }
    let started = Instant::now();
    let timed_from = started + Duration::from_secs(args.lead_seconds);
    let deadline = timed_from + Duration::from_secs(seconds);
    // Paced: each connection sends on a schedule of its own, offset from
    // the others'; one that falls behind sends at once, without bursts.
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(concurrency as f64 / args.rate as f64));
    let workers = (0..concurrency)
        .map(|worker| {
            let (client, bodies) = (client.clone(), bodies.clone());
            let (url, key) = (url.clone(), key.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n: u64 = 0x9E37_79B9 ^ (worker * 7919);
                let mut next =
                    interval.map(|i| started + i.mul_f64(worker as f64 / concurrency as f64));
                while Instant::now() < deadline {
                    if let (Some(at), Some(interval)) = (next.as_mut(), interval) {
                        tokio::time::sleep_until((*at).into()).await;
                        *at = Ord::max(*at + interval, Instant::now());
                    }
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let body = bodies[(n >> 33) as usize % bodies.len()].clone();
                    let t = Instant::now();
                    send(&client, &url, key.as_deref(), body).await?;
                    if t >= timed_from {
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect::<Vec<_>>();
    let mut latencies_us = Vec::new();
    for worker in workers {
        match worker.await {
            Ok(Ok(l)) => latencies_us.extend(l),
            Ok(Err(e)) => fail(e),
            Err(e) => fail(e.to_string()),
        }
    }
    let report = ClientReport {
        elapsed_seconds: timed_from.elapsed().as_secs_f64(),
        latencies_us,
    };
    println!(
        "{}",
        serde_json::to_string(&report).expect("a report is JSON")
    );
}

/// Posts one request of the load client; an error answered is an error.
async fn send(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: serde_json::Value,
) -> Result<(), String> {
    let mut request = client.post(url).json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let value: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() || value.get("errors").is_some() {
        return Err(format!("{status} {value}"));
    }
    Ok(())
}

/// Loads `url` from a load client in a process of its own (this bench run
/// again with `--client`): `concurrency` connections posting `bodies`,
/// drawn at random, for `seconds`, after a warm-up. Panics when the
/// client fails (an error answered, a refused connection).
pub(crate) async fn from_another_process(
    name: &str,
    url: &str,
    key: Option<&str>,
    bodies: &[serde_json::Value],
    load: Load,
) -> Sample {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bodies.json");
    std::fs::write(&file, serde_json::to_vec(bodies).expect("JSON")).expect("write the bodies");
    let mut command = std::process::Command::new(std::env::current_exe().expect("this bench"));
    command.args([
        "--client",
        "--url",
        url,
        "--bodies",
        &file.display().to_string(),
        "--concurrency",
        &load.concurrency.to_string(),
        "--seconds",
        &load.seconds.to_string(),
        "--rate",
        &load.rate.to_string(),
        "--lead-seconds",
        &load.lead_seconds.to_string(),
    ]);
    if !load.warm_up {
        command.arg("--no-warm-up");
    }
    match key {
        Some(key) => command.env(KEY_VAR, key),
        None => command.env_remove(KEY_VAR),
    };
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client's thread")
        .expect("start the load client");
    assert!(
        output.status.success(),
        "the load client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: ClientReport =
        serde_json::from_slice(&output.stdout).expect("the load client's report");
    Sample {
        name: name.into(),
        count: report.latencies_us.len(),
        elapsed: Duration::from_secs_f64(report.elapsed_seconds),
        latencies: report
            .latencies_us
            .into_iter()
            .map(Duration::from_micros)
            .collect(),
    }
}
