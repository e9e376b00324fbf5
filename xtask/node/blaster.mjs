// A client-bound load source: a minimal Engine.IO v4 / socket.io v5 server on `ws` that answers
// the handshake and the namespace CONNECT, then on 42["go",{"count":N}] sends N pre-encoded text
// frames 42["sensors",1,{...}] as fast as the socket drains, then 42["done",N].
// No per-emit work on the server: the client's cost is what is measured.
// Prints "listening <port>"; stops when its standard input closes or after 600 s.
import { WebSocketServer } from "ws";

const payload = JSON.stringify({
  t_ext_1: 104.94, t_ext_2: 107.19, t_bar_up: 83.05, p: 300.0, m_pos: 74.0,
  w_stat: true, motor_temp: "NaN", weight_pred: 0.0,
});
const frame = Buffer.from(`42["sensors",1,${payload}]`);
// One unmasked server-to-client text frame (FIN, opcode 1) holding `frame`.
const header = frame.length < 126
  ? Buffer.from([0x81, frame.length])
  : Buffer.from([0x81, 126, frame.length >> 8, frame.length & 0xff]);
const wsFrame = Buffer.concat([header, frame]);
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.env.PORT ?? 0), path: "/socket.io/" });

wss.on("connection", (ws) => {
  ws.send(`0${JSON.stringify({ sid: "blaster", upgrades: [], pingInterval: 600000, pingTimeout: 600000, maxPayload: 1000000 })}`);
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text === "40" || text.startsWith("40{")) return ws.send('40{"sid":"blaster-socket"}');
    if (!text.startsWith('42["go"')) return;
    const { count } = JSON.parse(text.slice(2))[1];
    // The frames are written pre-framed (WebSocket header included), 256 to a buffer, straight
    // to the socket: the server spends almost nothing per frame, so every client is measured at
    // the rate it can read, with full reads, whatever the server's own speed.
    const batch = Buffer.concat(Array.from({ length: 256 }, () => wsFrame));
    let sent = 0;
    const pump = () => {
      while (sent + 256 <= count) {
        if (ws._socket.writableLength > 1 << 20) return ws._socket.once("drain", pump);
        ws._socket.write(batch);
        sent += 256;
      }
      const rest = count - sent;
      sent = count;
      ws._socket.write(Buffer.concat(Array.from({ length: rest }, () => wsFrame)));
      ws.send(`42["done",${count}]`);
    };
    pump();
  });
});

wss.on("listening", () => console.log(`listening ${wss.address().port}`));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 600_000).unref();
