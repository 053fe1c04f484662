// The `npm start` example: an HTTP handler, called once per request like an
// http.createServer listener. ctx tells which child (and which generation, after a reload) served it.

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
