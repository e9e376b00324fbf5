// The Node side of `cargo xtask bench fanout`: a socket.io 4.8 server broadcasting to every
// connected client with io.emit, driven like crema's bench server:
// POST /bench/publish?rate=R&secs=S publishes `sensors` events of about 200 bytes at R per second
// for S seconds (a 1 ms timer that catches up with the schedule), then answers {"published": N}.
// Each event carries its publication time ("t", Unix nanoseconds) for the latency figures.
// WebSocket only (as the crema side), default socket.io options otherwise.
// Prints "listening <port>"; stops when its standard input closes.
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method !== "POST" || url.pathname !== "/bench/publish") {
    res.writeHead(404).end();
    return;
  }
  const rate = Number(url.searchParams.get("rate"));
  const secs = Number(url.searchParams.get("secs"));
  const total = Math.round(rate * secs);
  const start = performance.now();
  let done = 0;
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    while (done < due) {
      done += 1;
      const t = Math.round((performance.timeOrigin + performance.now()) * 1e6);
      io.emit("sensors", { t, n: done, p: 9.12, f: 2.31, w: 18.4, g: 1.98, temp: 92.6, stage: "infusion", at: new Date().toISOString() });
    }
    if (done >= total) {
      clearInterval(timer);
      const body = JSON.stringify({ published: done });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
    }
  }, 1);
});
const io = new Server(http, { transports: ["websocket"] });
http.listen(0, "127.0.0.1", () => console.log(`listening ${http.address().port}`));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
