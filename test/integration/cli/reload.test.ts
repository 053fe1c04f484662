import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { alive, childPids, killServers, project, requireBuild, Server, until, who, WHO_HANDLER } from './cli-helpers.js';

beforeAll(requireBuild);
afterEach(killServers);

/** The config of these tests; VERSION reaches the children's environment, so answers show which config they run. */
function config(version: string, extra: Record<string, unknown> = {}): object {
  return {
    handler: './who.mjs',
    listen: '127.0.0.1:0',
    children: { start: 2, min: 2, max: 8, minSpare: 1, maxSpare: 8 },
    timeouts: { stop: 5000 },
    env: { VERSION: version },
    ...extra,
  };
}

describe('SIGHUP reload', () => {
  it('replaces every child with the re-read config under steady load, with zero failed connections', async () => {
    const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.json': config('1') });
    const server = new Server([], dir);
    const { port } = await server.started();

    // 20 clients, each doing one request after another until told to stop.
    const answers: { generation: number; version: string; pid: number }[] = [];
    const failures: string[] = [];
    let loading = true;
    const clients = Array.from({ length: 20 }, async () => {
      while (loading) {
        try {
          answers.push(await who(port));
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    });
    const answered = (count: number, predicate: (answer: (typeof answers)[number]) => boolean = () => true) =>
      until(() => answers.filter(predicate).length >= count || failures.length > 0, `${count} answers`);

    try {
      await answered(200);
      const oldPids = new Set(answers.map((answer) => answer.pid));
      for (const version of ['2', '3']) {
        writeFileSync(join(dir, 'prefork.config.json'), JSON.stringify(config(version)));
        const mark = server.stderr.length;
        server.signal('SIGHUP');
        const generation = Number(version);
        await server.log((entry) => entry.msg === 'reload complete' && entry.generation === generation, mark);
        await answered(100, (answer) => answer.generation === generation);
        // Children of the previous generations answer until they retire; record them all.
        for (const answer of answers) if (answer.generation < generation) oldPids.add(answer.pid);
      }
      await answered(answers.length + 200);
      loading = false;
      await Promise.all(clients);

      expect(failures).toEqual([]);
      const last = answers.slice(-100);
      expect(last.every((answer) => answer.generation === 3 && answer.version === '3')).toBe(true);
      // The old children were retired once idle, and are gone; only the new generation is left.
      await until(() => [...oldPids].every((pid) => !alive(pid)), 'the old children to exit');
      const live = childPids(server.pid);
      expect(live.length).toBeGreaterThanOrEqual(2);
      expect(live.filter((pid) => oldPids.has(pid))).toEqual([]);
    } finally {
      loading = false;
      await Promise.all(clients);
    }
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('without a config file, starts a generation running the edited handler', async () => {
    const dir = project({ 'who.mjs': WHO_HANDLER });
    const server = new Server(['--handler', 'who.mjs', '--listen', '127.0.0.1:0', '--children', '1'], dir);
    const { port } = await server.started();
    expect(await who(port)).toMatchObject({ generation: 1, version: '-' });
    writeFileSync(join(dir, 'who.mjs'), WHO_HANDLER.replace("process.env.VERSION ?? '-'", "'edited'"));
    server.signal('SIGHUP');
    await server.log((entry) => entry.msg === 'reload complete' && entry.generation === 2);
    expect(await who(port)).toMatchObject({ generation: 2, version: 'edited' });
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });

  it('keeps the current children serving when the new config is invalid', async () => {
    const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.json': config('1') });
    const server = new Server([], dir);
    const { port } = await server.started();
    const before = childPids(server.pid).sort();

    writeFileSync(join(dir, 'prefork.config.json'), JSON.stringify(config('2', { children: { max: 'ten' } })));
    server.signal('SIGHUP');
    const logged = await server.log((entry) => String(entry.msg).startsWith('reload failed'));
    expect(logged.error).toBe('prefork.config.json: children.max: expected a positive integer, got "ten"');

    const answer = await who(port);
    expect(answer).toMatchObject({ generation: 1, version: '1' });
    expect(before).toContain(answer.pid);
    expect(childPids(server.pid).sort()).toEqual(before);

    // Fixed, the next reload goes through.
    writeFileSync(join(dir, 'prefork.config.json'), JSON.stringify(config('2')));
    server.signal('SIGHUP');
    await server.log((entry) => entry.msg === 'reload complete' && entry.generation === 2);
    await until(() => before.every((pid) => !alive(pid)), 'the old children to exit');
    expect(await who(port)).toMatchObject({ generation: 2, version: '2' });
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

describe('the signal queue', () => {
  it('never drops a SIGTERM: it goes ahead of a storm of queued reloads', async () => {
    // A config whose every load takes 800 ms, so that the HUPs below pile up behind the first.
    const slow = `await new Promise((resolve) => setTimeout(resolve, 800));
export default { handler: './who.mjs', listen: '127.0.0.1:0', children: { start: 1 } };
`;
    const dir = project({ 'who.mjs': WHO_HANDLER, 'prefork.config.mjs': slow });
    const server = new Server([], dir);
    await server.started();
    const mark = server.stderr.length;
    server.signal('SIGHUP');
    await server.log((entry) => entry.msg === 'reloading the configuration', mark);
    // Eight more HUPs fill the queue (its limit is 5) while the first reload loads. The kernel
    // keeps one pending signal of a kind, so they are spaced out for each to be delivered; no
    // event tells from outside that one was recorded.
    for (let i = 0; i < 8; i++) {
      server.signal('SIGHUP');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    server.signal('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});
