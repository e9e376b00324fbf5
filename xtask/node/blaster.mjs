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
const frame = `42["sensors",1,${payload}]`;
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.env.PORT ?? 0), path: "/socket.io/" });

wss.on("connection", (ws) => {
  ws.send(`0${JSON.stringify({ sid: "blaster", upgrades: [], pingInterval: 600000, pingTimeout: 600000, maxPayload: 1000000 })}`);
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text === "40" || text.startsWith("40{")) return ws.send('40{"sid":"blaster-socket"}');
    if (!text.startsWith('42["go"')) return;
    const { count } = JSON.parse(text.slice(2))[1];
    let sent = 0;
    // Frames are written in corked batches of 256, so the server spends little per frame and
    // the client reads many frames per system call, as from any busy server.
    const pump = () => {
      while (sent < count) {
        if (ws.bufferedAmount > 1 << 20) return setImmediate(pump);
        ws._socket.cork();
        for (let i = 0; i < 256 && sent < count; i++, sent++) ws.send(frame);
        ws._socket.uncork();
      }
      ws.send(`42["done",${count}]`);
    };
    pump();
  });
});

wss.on("listening", () => console.log(`listening ${wss.address().port}`));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 600_000).unref();
