// The prefork handler module: `request` for protocol "http", `connection` for protocol "raw"
// (a minimal HTTP/1.1 responder, used only when the HTTP adapter is not available).
import { BODY, CPU_MS, CPU_PATH, burnCpu, respond } from './respond.mjs';

export { respond as request };

const HEAD_END = '\r\n\r\n';

/** The Date header's value, made at most once a second as Node's http makes it. */
let date = '';
let dateSecond = -1;
function httpDate() {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    date = new Date(now).toUTCString();
  }
  return date;
}

const BODY_TEXT = BODY.toString('latin1');

/**
 * Raw protocol: parse just the request line and Connection header of each request, answer like
 * Node's http: the same bytes, the head and the body in one write (Node corks them; two writes
 * are two system calls and, with TCP_NODELAY on, two segments).
 */
export function connection(socket) {
  let buffered = '';
  socket.setNoDelay(true);
  socket.on('error', () => {});
  socket.on('data', (chunk) => {
    buffered += chunk.toString('latin1');
    let end;
    while ((end = buffered.indexOf(HEAD_END)) >= 0) {
      const head = buffered.slice(0, end);
      buffered = buffered.slice(end + HEAD_END.length);
      const path = head.slice(head.indexOf(' ') + 1, head.indexOf(' ', head.indexOf(' ') + 1));
      const close = /\r\nconnection:\s*close/i.test(head);
      if (path === CPU_PATH) burnCpu(CPU_MS);
      const connectionHeader = close ? 'Connection: close' : 'Connection: keep-alive\r\nKeep-Alive: timeout=5';
      const answer = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\nDate: ${httpDate()}\r\n${connectionHeader}\r\n\r\n${BODY_TEXT}`;
      if (close) {
        socket.end(answer, 'latin1');
        return;
      }
      socket.write(answer, 'latin1');
    }
  });
}
