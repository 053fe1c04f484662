// The same handler as examples/hello-http, served here as SCGI behind nginx: a `request(req, res,
// ctx)` handler does not know which protocol brought the request. Under SCGI, req.socket.remoteAddress
// and remotePort are the browser's (nginx's REMOTE_ADDR / REMOTE_PORT), and req.scgi holds the raw
// SCGI variables nginx sent.

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {import('prefork').ChildContext} ctx
 */
export function request(req, res, ctx) {
  const body = `Hello from child ${ctx.id} (pid ${ctx.pid}, generation ${ctx.generation}): ${req.method} ${req.url}\n`;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
