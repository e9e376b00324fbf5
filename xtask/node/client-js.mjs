// The JS reference client consuming a load source: node client-js.mjs <url> <count> <hz>.
// Figures cover the span from the request of the stream to its end, as for the Rust clients;
// every `t`-stamped event's latency is kept at a fixed rate, every 16th at full rate.
// Prints one JSON line of figures (see crates/bench/src/lib.rs).
import { io } from "socket.io-client";

const [url, countText, hzText] = process.argv.slice(2);
const count = Number(countText);
const hz = Number(hzText ?? 0);
const stride = hz === 0 ? 16 : 1;
const latencies = new Uint32Array(Math.floor(count / stride) + 1);
let kept = 0;
let stamped = 0;
const socket = io(url, { transports: ["websocket"], reconnection: false });
let received = 0;
let start;
let usageAtStart;
socket.on("connect", () => {
  start = process.hrtime.bigint();
  usageAtStart = process.resourceUsage();
  socket.emit("go", { count, hz });
});
socket.on("sensors", (_n, sensors) => {
  received++;
  if (sensors.t !== undefined) {
    if (stamped % stride === 0) latencies[kept++] = Number(process.hrtime.bigint() / 1000n) - sensors.t;
    stamped++;
  }
});
socket.on("done", () => {
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const end = process.resourceUsage();
  const user = (end.userCPUTime - usageAtStart.userCPUTime) / 1e6;
  const system = (end.systemCPUTime - usageAtStart.systemCPUTime) / 1e6;
  // Written with a callback: a line longer than the pipe's buffer is cut by an early exit.
  process.stdout.write(`${JSON.stringify({
    events: received, seconds, cpu_seconds: user + system, user_seconds: user, system_seconds: system,
    wakeups: end.voluntaryContextSwitches - usageAtStart.voluntaryContextSwitches,
    peak_rss_kb: end.maxRSS, latency_us: Array.from(latencies.subarray(0, kept)),
  })}\n`, () => process.exit(0));
});
