import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/resolve.js';
import { Pool } from '../../../index.js';
import { memoryLogger, tempDir } from '../../helpers.js';
import { fetchAnswer } from './client.js';
import { NO_NGINX, freePort, runNginx, type Nginx } from './nginx.js';
import { skipWithout } from '../../environment.js';

const SKIP = skipWithout(NO_NGINX);

// The examples/scgi-nginx files as a user runs them: prefork from its prefork.config.json, nginx
// from its nginx.conf. Only the socket path and nginx's port are moved (into a temporary
// directory and to a free port) so that the test never collides with a running example.

const example = (name: string) => fileURLToPath(new URL(`../../../examples/scgi-nginx/${name}`, import.meta.url));

/** What the example's files say, and what the test replaces it with. */
const EXAMPLE_SOCKET = '/tmp/prefork-scgi-nginx.sock';
const EXAMPLE_LISTEN = '127.0.0.1:8081';

let nginx: Nginx | undefined;
let pool: Pool | undefined;

afterEach(async () => {
  await nginx?.stop();
  await pool?.stop('test done');
  nginx = pool = undefined;
});

/** Replaces `from` (which must occur) by `to` everywhere in `text`. */
function replaceAll(text: string, from: string, to: string): string {
  expect(text, `the example's nginx.conf no longer mentions ${from}`).toContain(from);
  return text.replaceAll(from, to);
}

describe.skipIf(SKIP)('examples/scgi-nginx', () => {
  it('serves its handler as SCGI through its own nginx.conf', async () => {
    const dir = tempDir('prefork-example-scgi-');
    const socket = join(dir, 'app.sock');
    const config = await loadConfig({ file: example('prefork.config.json'), overrides: { listen: [`unix:${socket}`] } });
    expect(config.resolved.protocol).toBe('scgi');
    pool = new Pool({ ...config.pool, logger: memoryLogger() });
    await pool.start();

    const port = await freePort();
    let nginxConf = readFileSync(example('nginx.conf'), 'utf8');
    nginxConf = replaceAll(nginxConf, EXAMPLE_SOCKET, socket);
    nginxConf = replaceAll(nginxConf, EXAMPLE_LISTEN, `127.0.0.1:${port}`);
    nginxConf = replaceAll(nginxConf, 'access_log /dev/stdout;', 'access_log off;');
    // As root, nginx's workers would switch to "nobody" and be refused by the socket (mode 660).
    if (process.getuid?.() === 0) nginxConf = `user root;\n${nginxConf}`;
    writeFileSync(join(dir, 'nginx.conf'), nginxConf);
    nginx = await runNginx({ dir, config: join(dir, 'nginx.conf'), pidFile: join(dir, 'nginx.pid') });

    const get = await fetchAnswer(port, '/hello?name=nginx');
    expect(get.status).toBe(200);
    expect(get.body.toString('utf8')).toMatch(/^Hello from child \d+ \(pid \d+, generation 1\): GET \/hello\?name=nginx\n$/);
    const post = await fetchAnswer(port, '/form', { method: 'POST', body: Buffer.from('a=1') });
    expect(post.body.toString('utf8')).toMatch(/: POST \/form\n$/);
    expect(nginx.stderr()).not.toMatch(/\[(error|crit|alert|emerg)\]/);
  });
});
