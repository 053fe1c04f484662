import { resolvedProtocolOptions } from '../protocols/index.js';
import type { PoolPlugin } from '../pool/hooks.js';
import type { ListenTarget } from '../pool/options.js';
import type { ResolvedConfig } from './resolve.js';

function targetText(target: ListenTarget): string {
  switch (target.kind) {
    case 'tcp':
      return target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
    case 'unix':
      return `unix:${target.path}${target.mode === undefined ? '' : ` (mode ${target.mode.toString(8)})`}`;
    case 'fd':
      return `fd:${target.fd}`;
    case 'systemd':
      return 'systemd';
  }
}

/** A plugin as `check` and the log name it: its class and role. */
export function pluginText(plugin: PoolPlugin): string {
  const name = plugin.constructor?.name && plugin.constructor.name !== 'Object' ? plugin.constructor.name : 'plugin';
  return plugin.role ? `${name} (role ${plugin.role})` : name;
}

/**
 * The resolved configuration as `prefork check` prints it: every default made explicit, and
 * `plugins` the ones the pool would apply (the user's, then the defaults whose role none took).
 */
export function describeConfig(config: ResolvedConfig, plugins: readonly PoolPlugin[]): Record<string, unknown> {
  const options = config.resolved;
  return {
    file: config.file ?? null,
    handler: options.handler,
    listen: options.listen.map(targetText),
    // Subject, names and expiry of each served certificate: what a reload with new files would change.
    tls: options.tls.certificates.length === 0 ? null : options.tls.certificates.map(({ listener, file, subject, subjectAltName, validTo, expiresInDays, fingerprint256 }) => ({ listener, file, subject, subjectAltName, validTo, expiresInDays, fingerprint256 })),
    protocol: options.protocol,
    ...(options.protocol === 'raw' ? {} : { [options.protocol]: resolvedProtocolOptions(options.protocol, options.protocolOptions) }),
    children: options.children,
    timeouts: options.timeouts,
    overload: options.overload,
    recycle: options.recycle ?? null,
    status: options.status ? { listen: targetText(options.status) } : null,
    plugins: plugins.map(pluginText),
    user: config.user ? { name: config.user.name ?? null, uid: config.user.uid } : null,
    group: config.group ? { name: config.group.name ?? null, gid: config.group.gid } : null,
    log: { level: config.log.level, file: config.log.file ?? null, format: config.log.format },
    env: options.env,
    execArgv: options.execArgv,
    childMemoryReducer: options.childMemoryReducer,
    backlog: options.backlog,
    ordersPerWakeup: options.ordersPerWakeup,
    acceptChain: options.acceptChain,
    acceptChainChildren: options.acceptChainChildren,
    acceptChainBatchMs: options.acceptChainBatchMs,
    parentScheduling: options.parentScheduling,
    deferAccept: options.deferAccept,
    notsentLowat: options.notsentLowat,
    tickInterval: options.tickInterval,
    cwd: options.cwd,
  };
}
