// A client-bound load source: a minimal Engine.IO v4 / socket.io v5 server on `ws` that answers
// the handshake and the namespace CONNECT, then on 42["go",{"count":N}] sends N pre-encoded text
// frames 42["sensors",1,{...}] as fast as the socket drains, then 42["done",N].
// No per-emit work on the server: the client's cost is what is measured.
//
// `node blaster.mjs corked` (the default) writes the frames pre-framed (WebSocket header
// included), 256 to one socket write: every client reads full buffers, whatever its speed.
// `node blaster.mjs frames` calls `ws.send` once per frame, as a server does that writes each
// packet as it is produced: one WebSocket frame and one socket write per event whenever the
// reader keeps up; only a full socket buffer makes Node gather frames into one write.
//
// Prints "listening <port>"; stops when its standard input closes or after 1800 s.
import { WebSocketServer } from "ws";

const mode = process.argv[2] ?? "corked";
if (mode !== "corked" && mode !== "frames") throw new Error(`unknown mode ${mode}`);
const payload = JSON.stringify({
  t_ext_1: 104.94, t_ext_2: 107.19, t_bar_up: 83.05, p: 300.0, m_pos: 74.0,
  w_stat: true, motor_temp: "NaN", weight_pred: 0.0,
});
const text = `42["sensors",1,${payload}]`;
const frame = Buffer.from(text);
// One unmasked server-to-client text frame (FIN, opcode 1) holding `frame`.
const header = frame.length < 126
  ? Buffer.from([0x81, frame.length])
  : Buffer.from([0x81, 126, frame.length >> 8, frame.length & 0xff]);
const wsFrame = Buffer.concat([header, frame]);
const wss = new WebSocketServer({
  host: "127.0.0.1", port: Number(process.env.PORT ?? 0), path: "/socket.io/", perMessageDeflate: false,
});

function corked(ws, count) {
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
}

function frames(ws, count) {
  let sent = 0;
  const pump = () => {
    // A burst per turn of the event loop, so that the loop also runs the socket's callbacks.
    for (let i = 0; i < 512 && sent < count; i++, sent++) ws.send(frame, { binary: false });
    if (sent === count) return ws.send(`42["done",${count}]`);
    if (ws.bufferedAmount > 1 << 20) return ws._socket.once("drain", pump);
    setImmediate(pump);
  };
  pump();
}

wss.on("connection", (ws) => {
  ws.send(`0${JSON.stringify({ sid: "blaster", upgrades: [], pingInterval: 600000, pingTimeout: 600000, maxPayload: 1000000 })}`);
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text === "40" || text.startsWith("40{")) return ws.send('40{"sid":"blaster-socket"}');
    if (!text.startsWith('42["go"')) return;
    const { count } = JSON.parse(text.slice(2))[1];
    (mode === "corked" ? corked : frames)(ws, count);
  });
});

wss.on("listening", () => console.log(`listening ${wss.address().port}`));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 1_800_000).unref();
