// The side channel between bench/run.mjs and a Node server script: Node's IPC channel (never on a
// server's hot path). The runner sends {type:'stats', id} and {type:'stop'}; the server answers
// {type:'ready', ...} once, {type:'stats', id, stats} per request, {type:'error', message} on failure.
// bench/profile.mjs also sends {type:'profile-start', intervalUs} and {type:'profile-stop', file}:
// the server's main thread is CPU-profiled (V8's sampling profiler, through node:inspector) between
// the two, and the .cpuprofile is written to `file` before the {type:'profile', file} answer.
// A server stops when told to, on SIGTERM/SIGINT, and when the runner goes away (the channel
// disconnects), so none outlives the benchmark. Started by hand (no IPC channel, e.g. under
// `node --cpu-prof` or `strace`), a server prints its ready line as JSON on stdout and prints its
// stats as one JSON line on SIGUSR2.

/**
 * Wires a server script to the runner. `getStats` returns the server's own counters (or null);
 * `stop` shuts the server down and resolves when it may exit.
 */
export function serveControl({ getStats = () => null, stop }) {
  let profiler;
  let stopping = false;
  const shutdown = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => process.exit(code || 1), 10_000);
    timer.unref();
    try {
      await stop();
    } catch (error) {
      process.stderr.write(`bench server ${process.pid}: stop failed: ${error?.stack ?? error}\n`);
      code = 1;
    }
    process.exit(code);
  };
  process.on('message', (message) => {
    if (message?.type === 'stats') process.send?.({ type: 'stats', id: message.id, stats: getStats() });
    else if (message?.type === 'stop') void shutdown(0);
    else if (message?.type === 'profile-start') {
      void startProfile(message.intervalUs).then((session) => {
        profiler = session;
        process.send?.({ type: 'profile-started' });
      });
    } else if (message?.type === 'profile-stop' && profiler) {
      void stopProfile(profiler, message.file).then(() => process.send?.({ type: 'profile', file: message.file }));
      profiler = undefined;
    }
  });
  process.on('disconnect', () => void shutdown(0));
  process.on('SIGUSR2', () => process.stdout.write(`${JSON.stringify({ type: 'stats', stats: getStats() })}\n`));
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
  return { shutdown };
}

async function startProfile(intervalUs = 100) {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: intervalUs });
  await post('Profiler.start');
  return { session, post };
}

async function stopProfile({ session, post }, file) {
  const { writeFileSync } = await import('node:fs');
  const { profile } = await post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
}

/** Reports that the server listens; `info` must include `port`. */
export function reportReady(info) {
  const message = { type: 'ready', pid: process.pid, ...info };
  if (process.send) process.send(message);
  else process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Reports a fatal start-up error and exits. */
export function reportFailure(error) {
  const message = error?.message ?? String(error);
  process.stderr.write(`bench server ${process.pid}: ${error?.stack ?? message}\n`);
  if (process.send && process.connected) process.send({ type: 'error', message }, () => process.exit(1));
  else process.exit(1);
}

/** Reads `--name value` pairs of argv into an object of strings. */
export function parseServerArgs(argv = process.argv.slice(2)) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--')) throw new Error(`bench server: unexpected argument ${JSON.stringify(argv[i])}`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  return args;
}
