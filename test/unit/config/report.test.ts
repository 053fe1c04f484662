import { describe, expect, it } from 'vitest';
import { describeConfig, pluginText } from '../../../src/config/report.js';
import type { ResolvedConfig } from '../../../src/config/resolve.js';
import { resolvePoolOptions } from '../../../src/pool/options.js';

class NamedPlugin {
  readonly role = 'overload';
  apply(): void {}
}

describe('describeConfig (prefork check)', () => {
  it('prints every resolved key, the listen addresses as written, and the plugins by class and role', () => {
    const resolved = resolvePoolOptions({
      handler: '/srv/app.mjs',
      listen: ['127.0.0.1:8080', '[::1]:8081', { path: '/run/a.sock', mode: '660' }, 'unix:/run/b.sock', 'fd:3', 'systemd'],
      protocol: 'http',
      recycle: { maxConnectionsPerChild: 5 },
      cwd: '/srv',
    });
    const config: ResolvedConfig = {
      file: '/srv/prefork.config.json',
      pool: { handler: '/srv/app.mjs', listen: [] },
      resolved,
      log: { level: 'info', file: undefined, format: 'auto' },
      user: { name: 'www', uid: 33 },
      group: { name: undefined, gid: 33 },
    };
    const printed = describeConfig(config, [new NamedPlugin(), { apply() {} }]);
    expect(printed).toEqual({
      file: '/srv/prefork.config.json',
      handler: '/srv/app.mjs',
      listen: ['127.0.0.1:8080', '[::1]:8081', 'unix:/run/a.sock (mode 660)', 'unix:/run/b.sock', 'fd:3', 'systemd'],
      tls: null,
      protocol: 'http',
      // Every key of the protocol, with its default.
      http: { keepAliveTimeout: 5000, headersTimeout: 20000, requestTimeout: 300000, bodyTimeout: 20000, sendTimeout: 20000, minDataRate: 500, maxRequestsPerConnection: 0, maxHeaderSize: 16384 },
      children: resolved.children,
      timeouts: resolved.timeouts,
      overload: { strategy: 'graceful' },
      recycle: { maxConnectionsPerChild: 5, jitter: 0, maxChildAge: 0, maxChildMemory: 0, idleChildTimeout: 0 },
      status: null,
      plugins: ['NamedPlugin (role overload)', 'plugin'],
      user: { name: 'www', uid: 33 },
      group: { name: null, gid: 33 },
      log: { level: 'info', file: null, format: 'auto' },
      env: {},
      execArgv: [],
      childMemoryReducer: false,
      backlog: 511,
      ordersPerWakeup: 1,
      acceptChain: 32,
      acceptChainChildren: resolved.acceptChainChildren,
      acceptChainBatchMs: 1,
      parentScheduling: 'batch',
      deferAccept: 0,
      notsentLowat: 65536,
      tickInterval: 1000,
      cwd: '/srv',
    });
    const raw = describeConfig({ ...config, file: undefined, user: undefined, group: undefined, resolved: { ...resolved, protocol: 'raw', recycle: undefined } }, []);
    expect(raw).toMatchObject({ file: null, user: null, group: null, recycle: null, plugins: [] });
    expect(raw).not.toHaveProperty('raw');
    expect(raw).not.toHaveProperty('http');
  });

  it('names a plugin by its class, or "plugin" for a plain object', () => {
    expect(pluginText(new NamedPlugin())).toBe('NamedPlugin (role overload)');
    expect(pluginText({ role: 'spawning', apply() {} })).toBe('plugin (role spawning)');
    expect(pluginText({ apply() {} })).toBe('plugin');
  });
});
