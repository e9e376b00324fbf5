//! The Redis Streams broker: many gateway instances, one stream of events per machine.
//!
//! - **Publishing.** The instance that records a machine (it holds the machine's lease in the
//!   shared store) publishes each event once, with [`Broker::publisher`]: a script on the Redis
//!   server checks the lease's fencing token, numbers the event with the topic's counter, adds
//!   it to the topic's stream (bounded, `MAXLEN`) under the id `<seq>-0` and keeps it as the
//!   latest of its name (a hash). The number, the time and so the frame are the deployment's:
//!   the same on every instance. An instance that lost the lease has a smaller token than the
//!   one the new holder wrote, and its late events are refused (`FENCED`).
//! - **Reading.** Every instance reads every stream it serves with plain `XREAD` (no consumer
//!   group: every instance wants every event, and a group would only add per-instance state in
//!   Redis to acknowledge and clean up) into its own [`fanout::Hub`] with [`Hub::accept`]; its
//!   browsers are served from that hub exactly as without a broker (snapshot, replay ring,
//!   `gap`, slow clients). An event at or below the hub's number is never taken twice.
//! - **Losing events on the way** (a Redis restart, a reader away longer than the stream
//!   keeps): the reader catches up from the stream; what the stream no longer holds becomes a
//!   gap (the hub clears its ring and tells subscribers), and the latest event of each name
//!   comes from the hash, so the snapshot stays the deployment's. The counter survives a Redis
//!   restart without persistence: the publisher passes the number it last saw, and the script
//!   starts a lost counter there, so numbers never go back and SSE ids stay valid.
//! - **The epoch** of SSE ids is the deployment's ([`Broker::epoch`]): kept in Redis, set by
//!   the first instance, and set again by every reader that reconnects.
//!
//! Redis down: the publisher drops what it cannot send (the store still records every shot;
//! the live view pauses) and both tasks reconnect with backoff; [`Broker::health`] says so
//! while it lasts, and a line is logged when it starts and when it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fanout::Hub;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many events each topic's stream keeps: how far behind a reader may fall (a slow or
/// reconnecting instance) before it loses events; about three minutes of a machine's 20
/// events a second, some 1.5 MiB of Redis memory per machine.
pub const STREAM_LEN: usize = 4096;

/// How many entries one `XRANGE` or `XREAD` answers at most.
const PAGE: usize = 1024;

/// Events waiting to be published, over every topic of the instance (about 20 s of ten
/// machines): past that, the newest are dropped and counted.
const QUEUE: usize = 4096;

/// How long the reader waits on `XREAD` before it asks again.
const BLOCK: Duration = Duration::from_millis(1000);

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The URL is not a Redis URL.
    #[error("{url} is not a Redis URL (redis://host:port/db): {source}")]
    Url {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: redis::RedisError,
    },
    /// Redis could not be reached or answered an error.
    #[error("Redis at {url}: {source}")]
    Redis {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: redis::RedisError,
    },
}

/// How the broker is doing, for `/healthz` and `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    /// Whether the publisher's connection works now.
    pub publishing: AtomicBool,
    /// Whether the reader's connection works now.
    pub reading: AtomicBool,
    /// Events published.
    pub published: AtomicU64,
    /// Events that could not be published (Redis unreachable or refusing).
    pub failed: AtomicU64,
    /// Events dropped because too many were waiting.
    pub dropped: AtomicU64,
    /// Events refused because a newer holder of the machine's lease publishes now.
    pub fenced: AtomicU64,
    /// Events read into the hub.
    pub received: AtomicU64,
    /// Holes found while reading (events the stream no longer held).
    pub gaps: AtomicU64,
}

/// One event on its way to Redis.
#[derive(Debug)]
struct Outgoing {
    topic: Arc<str>,
    token: u64,
    name: String,
    at: String,
    data: String,
}

/// A connection to the deployment's broker: the publisher and the reader of this instance.
#[derive(Debug)]
pub struct Broker {
    url: String,
    prefix: String,
    health: Arc<Health>,
    outgoing: mpsc::Sender<Outgoing>,
}

/// The URL without its password (nor a query that may carry one: `?pass=`), for log lines.
fn redact(url: &str) -> String {
    if let Some((place, query)) = url.split_once('?')
        && query.to_ascii_lowercase().contains("pass")
    {
        return format!("{}?…", redact(place));
    }
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, place)) => format!("{scheme}://…@{place}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn keys(prefix: &str, topic: &str) -> [String; 4] {
    [
        format!("{prefix}:{topic}:events"),
        format!("{prefix}:{topic}:seq"),
        format!("{prefix}:{topic}:fence"),
        format!("{prefix}:{topic}:latest"),
    ]
}

/// Checks the fence, numbers, appends, remembers the latest of the name; answers the number.
const PUBLISH: &str = r"
local fence = tonumber(redis.call('GET', KEYS[3]) or '0')
local token = tonumber(ARGV[1])
if token < fence then
  return redis.error_reply('FENCED the machine is published by a newer lease holder')
end
if token > fence then redis.call('SET', KEYS[3], ARGV[1]) end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local start = tonumber(ARGV[2])
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if last[1] then
    local n = tonumber(string.match(last[1][1], '^(%d+)'))
    if n > start then start = n end
  end
  redis.call('SET', KEYS[2], start)
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], seq .. '-0', 'n', ARGV[3], 'a', ARGV[4], 'd', ARGV[5])
redis.call('HSET', KEYS[4], ARGV[3], seq .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])
return seq
";

async fn connect(client: &Client, timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// What a recording calls with each event (the machine lease's token, the name, the data).
pub type Sink = Arc<dyn Fn(u64, &str, &RawValue) + Send + Sync>;

/// Where a gateway's events of `topic` go: through `broker` when there is one (every gateway's
/// hub gets them from there), else straight into this process's `hub`.
pub fn sink(broker: Option<&Broker>, hub: &Arc<Hub>, topic: &str) -> Sink {
    match broker {
        Some(broker) => Arc::new(broker.publisher(topic)),
        None => {
            let (hub, topic) = (hub.clone(), topic.to_owned());
            Arc::new(move |_, name, data| {
                hub.publish(&topic, name, data, SystemTime::now());
            })
        }
    }
}

/// The epoch of a gateway's SSE ids: the deployment's with a broker ([`Broker::epoch`]), else
/// this start's time in milliseconds.
pub async fn epoch(broker: Option<&str>, prefix: &str) -> Result<u64, BrokerError> {
    match broker {
        Some(url) => Broker::epoch(url, prefix).await,
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)),
    }
}

impl Broker {
    /// The deployment's epoch for SSE ids, from Redis (set by the first instance); waits up to
    /// 10 s for Redis to answer.
    pub async fn epoch(url: &str, prefix: &str) -> Result<u64, BrokerError> {
        let client = Client::open(url).map_err(|source| BrokerError::Url {
            url: redact(url),
            source,
        })?;
        let started = Instant::now();
        loop {
            match Self::read_epoch(&client, prefix).await {
                Ok(epoch) => return Ok(epoch),
                Err(source) if started.elapsed() > Duration::from_secs(10) => {
                    return Err(BrokerError::Redis {
                        url: redact(url),
                        source,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn read_epoch(client: &Client, prefix: &str) -> redis::RedisResult<u64> {
        let mut conn = connect(client, Duration::from_secs(2)).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let key = format!("{prefix}:epoch");
        let _: Value = redis::cmd("SET")
            .arg(&key)
            .arg(now)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        redis::cmd("GET").arg(&key).query_async(&mut conn).await
    }

    /// Starts this instance's publisher and its reader of `topics` into `hub` (whose epoch
    /// is [`Broker::epoch`]), until `stop`.
    pub fn start(
        url: &str,
        prefix: &str,
        hub: Arc<Hub>,
        topics: Vec<String>,
        stop: CancellationToken,
    ) -> Result<Broker, BrokerError> {
        let client = Client::open(url).map_err(|source| BrokerError::Url {
            url: redact(url),
            source,
        })?;
        let health = Arc::new(Health::default());
        let (outgoing, queue) = mpsc::channel(QUEUE);
        let broker = Broker {
            url: redact(url),
            prefix: prefix.to_owned(),
            health: health.clone(),
            outgoing,
        };
        tokio::spawn(publish_loop(
            client.clone(),
            broker.url.clone(),
            prefix.to_owned(),
            hub.clone(),
            queue,
            health.clone(),
            stop.clone(),
        ));
        tokio::spawn(read_loop(
            client,
            broker.url.clone(),
            prefix.to_owned(),
            hub,
            topics,
            health,
            stop,
        ));
        Ok(broker)
    }

    /// What the recording of `topic` calls with each event: the machine lease's fencing
    /// token, the event's name and its data. Never waits: the event is queued for the
    /// publisher (dropped and counted when too many wait).
    pub fn publisher(
        &self,
        topic: &str,
    ) -> impl Fn(u64, &str, &RawValue) + Send + Sync + 'static + use<> {
        let topic: Arc<str> = topic.into();
        let outgoing = self.outgoing.clone();
        let health = self.health.clone();
        move |token, name, data| {
            let event = Outgoing {
                topic: topic.clone(),
                token,
                name: name.to_owned(),
                at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                data: data.get().to_owned(),
            };
            if outgoing.try_send(event).is_err() {
                health.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How it is doing.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether both connections work now.
    pub fn healthy(&self) -> bool {
        self.health.publishing.load(Ordering::Relaxed)
            && self.health.reading.load(Ordering::Relaxed)
    }

    /// The URL without its password, and the key prefix.
    pub fn describe(&self) -> String {
        format!("{} (keys {}:…)", self.url, self.prefix)
    }
}

/// The broker's families for `/metrics` and OTLP: its connections, and what became of the
/// events.
#[derive(Debug)]
pub struct Metrics(pub Arc<Broker>);

impl telemetry::Source for Metrics {
    fn collect(&self, m: &mut telemetry::Families) {
        let h = self.0.health();
        let up = |b: &AtomicBool| u64::from(b.load(Ordering::Relaxed));
        m.gauge(
            "crema_broker_up",
            "Whether the Redis connection of each role works.",
        )
        .sample(&[("role", "publish")], up(&h.publishing))
        .sample(&[("role", "read")], up(&h.reading));
        let family = m.counter("crema_broker_events", "Events by what became of them.");
        for (outcome, n) in [
            ("published", &h.published),
            ("failed", &h.failed),
            ("dropped", &h.dropped),
            ("fenced", &h.fenced),
            ("received", &h.received),
        ] {
            family.sample(&[("outcome", outcome)], n.load(Ordering::Relaxed));
        }
        m.counter(
            "crema_broker_gaps",
            "Holes found while reading (events the stream no longer held).",
        )
        .sample(&[], h.gaps.load(Ordering::Relaxed));
    }
}

/// Says once when a connection fails and once when it works again.
struct Outage {
    what: &'static str,
    url: String,
    since: Option<Instant>,
}

impl Outage {
    fn failed(&mut self, flag: &AtomicBool, error: &redis::RedisError) {
        flag.store(false, Ordering::Relaxed);
        if self.since.is_none() {
            self.since = Some(Instant::now());
            tracing::error!(
                "the broker's {} connection to Redis at {} failed: {error}; live events wait or are dropped until it is back (shots are still recorded)",
                self.what,
                self.url
            );
        }
    }

    fn ok(&mut self, flag: &AtomicBool) {
        flag.store(true, Ordering::Relaxed);
        if let Some(since) = self.since.take() {
            tracing::info!(
                "the broker's {} connection to Redis at {} works again after {:.1} s",
                self.what,
                self.url,
                since.elapsed().as_secs_f64()
            );
        }
    }
}

fn backoff(tries: u32) -> Duration {
    Duration::from_millis((100u64 << tries.min(5)).min(2000))
}

async fn publish_loop(
    client: Client,
    url: String,
    prefix: String,
    hub: Arc<Hub>,
    mut queue: mpsc::Receiver<Outgoing>,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let script = redis::Script::new(PUBLISH);
    let mut outage = Outage {
        what: "publishing",
        url,
        since: None,
    };
    let mut conn: Option<MultiplexedConnection> = None;
    let mut tries = 0;
    // The last number this publisher was answered, per topic: the start of a lost counter.
    let mut last: HashMap<Arc<str>, u64> = HashMap::new();
    let mut batch = Vec::with_capacity(256);
    loop {
        if conn.is_none() {
            let connected = async {
                let mut c = connect(&client, Duration::from_secs(2)).await?;
                // Pipelined invocations do not load the script themselves.
                let _: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(PUBLISH)
                    .query_async(&mut c)
                    .await?;
                Ok::<_, redis::RedisError>(c)
            };
            match connected.await {
                Ok(c) => {
                    conn = Some(c);
                    tries = 0;
                    outage.ok(&health.publishing);
                }
                Err(e) => {
                    outage.failed(&health.publishing, &e);
                    tries += 1;
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff(tries)) => continue,
                    }
                }
            }
        }
        let n = tokio::select! {
            () = stop.cancelled() => return,
            n = queue.recv_many(&mut batch, 256) => n,
        };
        if n == 0 {
            return;
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut pipe = redis::pipe();
        for event in &batch {
            let [stream, seq, fence, latest] = keys(&prefix, &event.topic);
            let hint = last
                .get(&event.topic)
                .copied()
                .unwrap_or(0)
                .max(hub.last_seq(&event.topic));
            let mut invocation = script.key(stream);
            invocation
                .key(seq)
                .key(fence)
                .key(latest)
                .arg(event.token)
                .arg(hint)
                .arg(&event.name)
                .arg(&event.at)
                .arg(&event.data)
                .arg(STREAM_LEN);
            pipe.invoke_script(&invocation);
        }
        let mut reload = false;
        match pipe.ignore_errors().query_async::<Vec<Value>>(c).await {
            Ok(answers) => {
                outage.ok(&health.publishing);
                for (event, answer) in batch.iter().zip(answers) {
                    match answer {
                        Value::Int(seq) => {
                            health.published.fetch_add(1, Ordering::Relaxed);
                            last.insert(event.topic.clone(), seq.max(0) as u64);
                        }
                        Value::ServerError(e) if e.code() == "FENCED" => {
                            health.fenced.fetch_add(1, Ordering::Relaxed);
                        }
                        Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                            // The server forgot the script (SCRIPT FLUSH): load it again.
                            health.failed.fetch_add(1, Ordering::Relaxed);
                            reload = true;
                        }
                        other => {
                            health.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(topic = %event.topic, "Redis refused an event: {other:?}");
                        }
                    }
                }
            }
            Err(e) => {
                health
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                outage.failed(&health.publishing, &e);
                conn = None;
            }
        }
        if reload {
            conn = None;
        }
        batch.clear();
    }
}

/// Where the reader is in each topic.
struct Reading {
    topics: Vec<String>,
    streams: Vec<String>,
}

async fn read_loop(
    client: Client,
    url: String,
    prefix: String,
    hub: Arc<Hub>,
    topics: Vec<String>,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let reading = Reading {
        streams: topics.iter().map(|t| keys(&prefix, t)[0].clone()).collect(),
        topics,
    };
    let mut outage = Outage {
        what: "reading",
        url,
        since: None,
    };
    let mut tries = 0;
    loop {
        let result = tokio::select! {
            () = stop.cancelled() => return,
            r = read_session(&client, &prefix, &hub, &reading, &health, &mut outage) => r,
        };
        if let Err(e) = result {
            outage.failed(&health.reading, &e);
            tries += 1;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff(tries)) => {}
            }
        } else {
            tries = 0;
        }
    }
}

/// One connection's reading: the epoch set again, every topic caught up, then `XREAD` until
/// the connection fails.
async fn read_session(
    client: &Client,
    prefix: &str,
    hub: &Hub,
    reading: &Reading,
    health: &Health,
    outage: &mut Outage,
) -> redis::RedisResult<()> {
    let mut conn = connect(client, BLOCK + Duration::from_secs(2)).await?;
    let _: Value = redis::cmd("SET")
        .arg(format!("{prefix}:epoch"))
        .arg(hub.epoch())
        .arg("NX")
        .query_async(&mut conn)
        .await?;
    for topic in &reading.topics {
        catch_up(&mut conn, prefix, hub, topic, health).await?;
    }
    outage.ok(&health.reading);
    loop {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        for stream in &reading.streams {
            cmd.arg(stream);
        }
        for topic in &reading.topics {
            cmd.arg(format!("{}-0", hub.last_seq(topic)));
        }
        let answer: Value = cmd.query_async(&mut conn).await?;
        for (stream, entries) in streams(answer) {
            let Some(i) = reading.streams.iter().position(|s| *s == stream) else {
                continue;
            };
            let topic = &reading.topics[i];
            for entry in entries {
                if entry.seq > hub.last_seq(topic) + 1 {
                    // The stream moved on past us: catch up from what it still holds.
                    catch_up(&mut conn, prefix, hub, topic, health).await?;
                    break;
                }
                take(hub, topic, entry, health);
            }
        }
    }
}

/// One stream entry.
struct Entry {
    seq: u64,
    name: String,
    at: String,
    data: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn entry(v: &Value) -> Option<Entry> {
    let Value::Array(parts) = v else { return None };
    let id = text(parts.first()?)?;
    let seq = id.split('-').next()?.parse().ok()?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let mut e = Entry {
        seq,
        name: String::new(),
        at: String::new(),
        data: String::new(),
    };
    for pair in fields.chunks(2) {
        let (Some(k), Some(v)) = (pair.first().and_then(text), pair.get(1).and_then(text)) else {
            continue;
        };
        match k.as_str() {
            "n" => e.name = v,
            "a" => e.at = v,
            "d" => e.data = v,
            _ => {}
        }
    }
    Some(e)
}

fn entries(v: &Value) -> Vec<Entry> {
    match v {
        Value::Array(items) => items.iter().filter_map(entry).collect(),
        _ => Vec::new(),
    }
}

/// `XREAD`'s answer: each stream's name and entries (RESP2 arrays or a RESP3 map).
fn streams(answer: Value) -> Vec<(String, Vec<Entry>)> {
    match answer {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| {
                let Value::Array(pair) = item else {
                    return None;
                };
                Some((text(pair.first()?)?, entries(pair.get(1)?)))
            })
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, entries(v))))
            .collect(),
        _ => Vec::new(),
    }
}

fn take(hub: &Hub, topic: &str, entry: Entry, health: &Health) {
    let Ok(data) = RawValue::from_string(entry.data) else {
        tracing::warn!(%topic, seq = entry.seq, "a broker event is not JSON; skipped");
        return;
    };
    if let Some(event) = hub.accept(topic, entry.seq, &entry.name, &data, &entry.at) {
        health.received.fetch_add(1, Ordering::Relaxed);
        if event.skipped > 0 {
            health.gaps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %topic,
                "{} event(s) of {topic} never reached this instance (Redis lost them or kept too few); its browsers are told of a gap",
                event.skipped
            );
        }
    }
}

/// Brings `topic` up to what the stream holds: the entries after the hub's number, and when
/// the stream no longer holds the next one, the latest of each name from the hash first.
async fn catch_up(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    hub: &Hub,
    topic: &str,
    health: &Health,
) -> redis::RedisResult<()> {
    let [stream, _, _, latest] = keys(prefix, topic);
    loop {
        let from = hub.last_seq(topic) + 1;
        let answer: Value = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(format!("{from}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await?;
        let got = entries(&answer);
        let Some(first) = got.first().map(|e| e.seq) else {
            return Ok(());
        };
        if first > from {
            // A hole: the snapshot's events older than what the stream holds, from the hash.
            let names: Value = redis::cmd("HGETALL").arg(&latest).query_async(conn).await?;
            for (name, value) in pairs(names) {
                let mut parts = value.splitn(3, ' ');
                let (Some(seq), Some(at), Some(data)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let (Ok(seq), Ok(data)) =
                    (seq.parse::<u64>(), RawValue::from_string(data.to_owned()))
                else {
                    continue;
                };
                if seq < first {
                    hub.remember(topic, seq, &name, &data, at);
                }
            }
        }
        let full = got.len() >= PAGE;
        for entry in got {
            take(hub, topic, entry, health);
        }
        if !full {
            return Ok(());
        }
    }
}

/// `HGETALL`'s answer as (field, value) pairs.
fn pairs(answer: Value) -> Vec<(String, String)> {
    match answer {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|p| Some((text(p.first()?)?, text(p.get(1)?)?)))
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_told_without_its_password() {
        assert_eq!(
            super::redact("redis://:s3cret@redis.internal:6379/2"),
            "redis://…@redis.internal:6379/2"
        );
        assert_eq!(
            super::redact("redis+unix:///run/redis.sock?db=2&pass=s3cret"),
            "redis+unix:///run/redis.sock?…"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
