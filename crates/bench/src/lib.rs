//! Shared by the benchmark harness and the client binaries it runs (`src/bin/`): the figures
//! each client reports, measured by the kernel (`/proc/self`), and the event every load source
//! sends.

use serde::{Deserialize, Serialize};

/// What one client run reports, as one JSON line. Every figure covers the span from the request
/// of the stream to its end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Events counted.
    pub events: u64,
    /// Wall time.
    pub seconds: f64,
    /// CPU time, user plus system.
    pub cpu_seconds: f64,
    /// CPU time in the process itself.
    #[serde(default)]
    pub user_seconds: f64,
    /// CPU time in the kernel on the process's behalf (system calls: reads, waits, wake-ups).
    #[serde(default)]
    pub system_seconds: f64,
    /// Times the process went to sleep waiting (voluntary context switches): each is a wake-up.
    #[serde(default)]
    pub wakeups: u64,
    /// Peak resident set size of the whole process, over its whole life.
    pub peak_rss_kb: u64,
    /// Microseconds from emit to delivery, for the events that carried the emit's time (all of
    /// them at a fixed rate, every [`LATENCY_STRIDE`]th at full rate).
    #[serde(default)]
    pub latency_us: Vec<u32>,
}

/// At full rate every this-many-th event's latency is kept (a preallocated, small buffer).
pub const LATENCY_STRIDE: u64 = 16;

impl Figures {
    /// Prints the figures as the one JSON line the harness reads.
    pub fn print(&self) {
        println!(
            "{}",
            serde_json::to_string(self).expect("figures serialize")
        );
    }
}

/// The process's resource use so far, from `/proc/self`: the scheduler's exact CPU time of
/// every thread (`task/*/schedstat`), split into user and system as the kernel's tick accounting splits it (`stat`;
/// what `getrusage` reports), and every thread's voluntary context switches (`task/*/status`).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    user: f64,
    system: f64,
    wakeups: u64,
}

impl Usage {
    /// Now.
    pub fn now() -> Self {
        let read =
            |file: &str| std::fs::read_to_string(format!("/proc/self/{file}")).unwrap_or_default();
        // Every thread's: the runtime's, and any blocking pool's.
        let cpu_ns: f64 = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .sum();
        let stat = read("stat");
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (utime, stime) = (ticks(11), ticks(12));
        let total = cpu_ns / 1e9;
        let user_share = if utime + stime > 0.0 {
            utime / (utime + stime)
        } else {
            1.0
        };
        Self {
            user: total * user_share,
            system: total * (1.0 - user_share),
            wakeups: std::fs::read_dir("/proc/self/task")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
                .map(|status| status_kb(&status, "voluntary_ctxt_switches:"))
                .sum(),
        }
    }

    /// The figures from `self` to now.
    pub fn figures(&self, events: u64, seconds: f64, latency_us: Vec<u32>) -> Figures {
        let end = Self::now();
        let user = end.user - self.user;
        let system = end.system - self.system;
        Figures {
            events,
            seconds,
            cpu_seconds: user + system,
            user_seconds: user,
            system_seconds: system,
            wakeups: end.wakeups.saturating_sub(self.wakeups),
            peak_rss_kb: status_kb(
                &std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
                "VmHWM:",
            ),
            latency_us,
        }
    }
}

/// A number field of a `/proc/<pid>/status` text (`VmRSS:`, `VmHWM:`, counters), its `kB` unit
/// dropped; 0 when absent.
pub fn status_kb(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CLOCK_MONOTONIC in microseconds: the clock the Node load sources stamp events with
/// (`process.hrtime`), shared by every process of the host.
pub fn monotonic_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000
}

/// The `sensors` event every load source sends, as an application would type it. `t` is the
/// emit's [`monotonic_us`], from the sources that stamp it.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs, dead_code)]
pub struct Sensors {
    pub t_ext_1: f64,
    pub t_ext_2: f64,
    pub t_bar_up: f64,
    pub p: f64,
    pub m_pos: f64,
    pub w_stat: bool,
    pub motor_temp: String,
    pub weight_pred: f64,
    #[serde(default)]
    pub t: Option<u64>,
}

/// Keeps the latencies a client run reports: each `t`-stamped event at a fixed rate, every
/// [`LATENCY_STRIDE`]th at full rate.
#[derive(Debug)]
pub struct Latencies {
    stride: u64,
    seen: u64,
    samples: Vec<u32>,
}

impl Latencies {
    /// For a stream of `count` events at `hz` (0: full rate).
    pub fn new(count: u64, hz: u64) -> Self {
        let stride = if hz == 0 { LATENCY_STRIDE } else { 1 };
        let capacity = usize::try_from(count / stride + 1).unwrap_or(0);
        Self {
            stride,
            seen: 0,
            samples: Vec::with_capacity(capacity),
        }
    }

    /// One event arrived, stamped `t` (or not).
    pub fn event(&mut self, t: Option<u64>) {
        if let Some(t) = t {
            if self.seen % self.stride == 0 {
                let latency = monotonic_us().saturating_sub(t);
                self.samples
                    .push(u32::try_from(latency).unwrap_or(u32::MAX));
            }
            self.seen += 1;
        }
    }

    /// The samples.
    pub fn into_samples(self) -> Vec<u32> {
        self.samples
    }
}

/// The command line of a client binary: `URL COUNT HZ`.
pub fn client_args(program: &str) -> anyhow::Result<(String, u64, u64)> {
    use anyhow::Context as _;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, count, hz] = args.as_slice() else {
        anyhow::bail!("usage: {program} URL COUNT HZ");
    };
    Ok((
        url.clone(),
        count.parse().context("COUNT")?,
        hz.parse().context("HZ")?,
    ))
}
