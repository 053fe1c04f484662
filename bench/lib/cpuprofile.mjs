// Reads a V8 .cpuprofile (node --cpu-prof) and sums it up: busy time, and the functions with the
// most self time and the most inclusive time, as shares of the busy (non-idle) samples.
import { readFileSync } from 'node:fs';

function frameName(callFrame) {
  const where = callFrame.url ? `${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber + 1}` : '';
  return `${callFrame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

/** Summarises a .cpuprofile file: { samples, busyMs, idleShare, self: [[name, share]], inclusive: [[name, share]] }. */
export function summariseCpuProfile(file, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const microsPerSample = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length);
  const self = new Map();
  const inclusive = new Map();
  let idle = 0;
  for (const [id, count] of hits) {
    const name = frameName(nodes.get(id).callFrame);
    if (name.startsWith('(idle)')) {
      idle += count;
      continue;
    }
    self.set(name, (self.get(name) ?? 0) + count);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const frame = frameName(nodes.get(at).callFrame);
      if (frame === '(root)' || seen.has(frame)) continue;
      seen.add(frame);
      inclusive.set(frame, (inclusive.get(frame) ?? 0) + count);
    }
  }
  const busy = profile.samples.length - idle;
  const ranked = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, count]) => [name, count / busy]);
  return {
    samples: profile.samples.length,
    busyMs: (busy * microsPerSample) / 1000,
    idleShare: idle / Math.max(1, profile.samples.length),
    self: ranked(self),
    inclusive: ranked(inclusive),
  };
}
