// An HTTP handler that says which child served the request, so the routing plugin's effect shows:
// with LeastRecentlyUsedPlugin consecutive requests visit the children in turn.

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {import('prefork').ChildContext} ctx
 */
export function request(req, res, ctx) {
  const body = `child ${ctx.id} (pid ${ctx.pid}) served ${ctx.connections} connection(s)\n`;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
