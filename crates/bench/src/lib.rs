//! Shared by the benchmark harness and the client binaries it runs (`src/bin/`): the figures
//! each client reports, measured from `/proc`.

use serde::{Deserialize, Serialize};

/// What one client run reports, as one JSON line.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Figures {
    /// Events counted.
    pub events: u64,
    /// Wall time from the request of the stream to its end.
    pub seconds: f64,
    /// CPU time (user + system) over the same span.
    pub cpu_seconds: f64,
    /// Peak resident set size of the whole process.
    pub peak_rss_kb: u64,
}

impl Figures {
    /// Prints the figures as the one JSON line the harness reads.
    pub fn print(&self) {
        println!(
            "{}",
            serde_json::to_string(self).expect("figures serialize")
        );
    }
}

/// CPU seconds (user + system) of this process so far, from /proc.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size (VmHWM) of this process, in KiB.
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
