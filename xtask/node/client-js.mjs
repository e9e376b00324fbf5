// The JS reference client consuming the blaster: node client-js.mjs <url> <count>.
// CPU is counted from the moment the stream is requested, as for the Rust clients.
// Prints one JSON line: {"events","seconds","cpu_seconds","peak_rss_kb"}.
import { io } from "socket.io-client";

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
const socket = io(url, { transports: ["websocket"], reconnection: false });
let received = 0;
let start;
let cpuAtStart;
socket.on("connect", () => {
  start = process.hrtime.bigint();
  cpuAtStart = process.cpuUsage();
  socket.emit("go", { count });
});
socket.on("sensors", () => { received++; });
socket.on("done", () => {
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuAtStart);
  const rss = process.resourceUsage().maxRSS;
  console.log(JSON.stringify({ events: received, seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, peak_rss_kb: rss }));
  process.exit(0);
});
