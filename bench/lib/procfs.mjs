// What the benchmark reads from /proc about a server's processes: CPU time, resident memory and
// the children of a process. Linux only, like prefork itself.
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/**
 * CPU time (user + system) a process has used so far, in nanoseconds: the sum of its threads'
 * schedstat run times (nanosecond precision), or utime + stime of /proc/<pid>/stat (10 ms ticks)
 * where schedstat is missing. Returns NaN once the process is gone.
 */
export function cpuTimeNs(pid) {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // The thread ended meanwhile.
      }
    }
    if (total > 0) return total;
  } catch {
    // No schedstat (or no task list): fall back to clock ticks below.
  }
  try {
    const fields = statFields(pid);
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    return ((Number(fields[11]) + Number(fields[12])) * 1e9) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/**
 * Context switches (voluntary + involuntary) of all threads of a process so far, or NaN once it
 * is gone. A voluntary switch is a thread going to sleep (waiting in epoll for its next event).
 */
export function contextSwitches(pid) {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        total += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        // The thread ended meanwhile.
      }
    }
    return total;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of a process in bytes (VmRSS), or NaN once it is gone. */
export function rssBytes(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The pids whose parent is `pid`. */
export function childPids(pid) {
  const children = [];
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    try {
      if (Number(statFields(entry)[1]) === pid) children.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return children;
}

/** CPU, memory and children of one server at one moment. */
export function sampleServer(pid) {
  const children = childPids(pid);
  let childrenCpuNs = 0;
  let switches = contextSwitches(pid);
  const childRss = [];
  for (const child of children) {
    const cpu = cpuTimeNs(child);
    if (!Number.isNaN(cpu)) childrenCpuNs += cpu;
    const childSwitches = contextSwitches(child);
    if (!Number.isNaN(childSwitches)) switches += childSwitches;
    const rss = rssBytes(child);
    if (!Number.isNaN(rss)) childRss.push(rss);
  }
  return { parentCpuNs: cpuTimeNs(pid), childrenCpuNs, contextSwitches: switches, parentRss: rssBytes(pid), childRss, children: children.length };
}

/**
 * Connections waiting in the accept queue of the TCP listener on 127.0.0.1:`port` (the rx_queue
 * of a LISTEN socket in /proc/net/tcp), or NaN when there is no such listener.
 */
export function listenBacklog(port) {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue ...; st 0A = LISTEN.
      if (fields[1] === local && fields[3] === '0A') return parseInt(fields[4].split(':')[1], 16);
    }
  } catch {
    // No /proc/net/tcp.
  }
  return Number.NaN;
}

/** The machine the benchmark runs on. */
export function machineInfo() {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    // Not Linux: keep "unknown".
  }
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // Keep "unknown".
  }
  return { cpuModel, kernel };
}

/** Aggregate CPU time counters of /proc/stat: [busy, total] in clock ticks. */
function cpuTicks() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
  return [total - fields[3] - fields[4], total];
}

/** How busy the machine's CPUs were over the next `ms` milliseconds, in percent (NaN where unknown). */
export async function cpuBusyPercent(ms = 1000) {
  try {
    const [busyBefore, totalBefore] = cpuTicks();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const [busyAfter, totalAfter] = cpuTicks();
    return totalAfter > totalBefore ? ((busyAfter - busyBefore) / (totalAfter - totalBefore)) * 100 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The 1-minute load average. */
export function loadAverage() {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}
