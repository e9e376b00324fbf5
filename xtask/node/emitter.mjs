// The field's load source: the reference socket.io 4.8 server (default options, WebSocket), whose
// handler emits `sensors` events with `socket.emit` as a telemetry server does. On
// `go {count, hz}` it emits `count` events, then `done`:
// - hz = 0: as fast as it can, in bursts of 500 per turn of the event loop, pausing while
//   engine.io holds more than 2,000 packets it could not write yet (its own backpressure);
// - hz > 0: two events every 1/hz s, back to back, as a machine streams its status and sensors.
// Every event carries `t`, the emit's CLOCK_MONOTONIC in microseconds (process.hrtime), which a
// client on the same host compares with its own clock for the latency from emit to delivery.
// Prints "listening <port>"; stops when its standard input closes or after 1800 s.
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { transports: ["websocket"] });
const now = () => Number(process.hrtime.bigint() / 1000n);
const sensors = (t) => ({
  t_ext_1: 104.94, t_ext_2: 107.19, t_bar_up: 83.05, p: 300.0, m_pos: 74.0,
  w_stat: true, motor_temp: "NaN", weight_pred: 0.0, t,
});

io.on("connection", (socket) => {
  socket.on("go", ({ count, hz }) => {
    let sent = 0;
    const finish = () => socket.emit("done", count);
    if (hz > 0) {
      // Two events per tick, as a machine sends its status and its sensors.
      const timer = setInterval(() => {
        for (let i = 0; i < 2 && sent < count; i++, sent++) socket.emit("sensors", 1, sensors(now()));
        if (sent === count) {
          clearInterval(timer);
          finish();
        }
      }, 1000 / hz);
      return;
    }
    const pump = () => {
      for (let i = 0; i < 500 && sent < count; i++, sent++) socket.emit("sensors", 1, sensors(now()));
      if (sent === count) return finish();
      if (socket.conn.writeBuffer.length > 2000) return socket.conn.once("drain", pump);
      setImmediate(pump);
    };
    pump();
  });
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 1_800_000).unref();
