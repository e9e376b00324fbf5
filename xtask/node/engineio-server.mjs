// The reference Engine.IO server (npm engine.io 6.6) configured as the official test suite wants
// it (pingInterval 300, pingTimeout 200, maxPayload 1e6), echoing every message.
// Prints "listening <port>" once ready. Stops by itself when its standard input closes (the test
// that started it is gone) or after 120 s.
import { createServer } from "node:http";
import { attach } from "engine.io";

const http = createServer();
const server = attach(http, {
  pingInterval: Number(process.env.PING_INTERVAL ?? 300),
  pingTimeout: Number(process.env.PING_TIMEOUT ?? 200),
  maxPayload: 1e6,
});

server.on("connection", (socket) => {
  socket.on("message", (data) => {
    // Test hooks: "close" makes the server close the session; "stop-pings" silences the heartbeat.
    if (data === "close") return socket.close();
    if (data === "stop-pings") {
      clearTimeout(socket.pingTimeoutTimer);
      clearTimeout(socket.pingIntervalTimer);
      socket.pingTimeoutTimer = null;
      socket.pingIntervalTimer = { refresh() {} };
      socket.schedulePing = () => {};
      socket.resetPingTimeout = () => {};
      return;
    }
    socket.send(data);
  });
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 120_000).unref();
