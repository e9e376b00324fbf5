// The reference socket.io server (npm socket.io 4.8) with the handlers of the official
// socket.io-protocol test-suite server, plus hooks for the client's own cases.
// pingInterval 300, pingTimeout 200, connectTimeout 1000; connection state recovery on.
// Prints "listening <port>" once ready; stops when its standard input closes or after 120 s.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { Server } from "socket.io";

// TLS_CERT and TLS_KEY (PEM files) serve https/wss instead of http/ws.
const http = process.env.TLS_CERT
  ? createTlsServer({ cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) })
  : createServer();
const io = new Server(http, {
  pingInterval: Number(process.env.PING_INTERVAL ?? 300),
  pingTimeout: Number(process.env.PING_TIMEOUT ?? 200),
  connectTimeout: 1000,
  connectionStateRecovery: { maxDisconnectionDuration: 60_000, skipMiddlewares: true },
});

function handlers(socket) {
  socket.emit("auth", socket.handshake.auth);
  socket.on("message", (...args) => socket.emit("message-back", ...args));
  socket.on("message-with-ack", (...args) => {
    const ack = args.pop();
    ack(...args);
  });
  socket.on("server-ack", (...args) => {
    socket.emit("ask", ...args, (...answer) => socket.emit("answer", ...answer));
  });
  socket.on("no-args", () => socket.emit("done"));
  socket.on("disconnect-me", () => socket.disconnect());
  // Connection state recovery: drop the transport, then broadcast while the client is away.
  socket.on("drop-and-broadcast", (n) => {
    socket.conn.close();
    setTimeout(() => {
      for (let i = 0; i < n; i++) io.emit("missed", i);
    }, 20);
  });
  socket.on("broadcast", (n) => {
    for (let i = 0; i < n; i++) io.emit("live", i);
  });
}

io.on("connection", handlers);
io.of("/custom").on("connection", handlers);
io.of("/refuse").use((socket, next) => {
  const err = new Error("Not authorized");
  err.data = { code: 7 };
  next(err);
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 120_000).unref();
