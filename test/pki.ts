import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { tempDir } from './helpers.js';

/** A certificate and its key, as files. */
export interface Issued {
  cert: string;
  key: string;
}

/** What {@link TestPki.issue} puts in a certificate. */
export interface IssueOptions {
  /** Common name. @default "localhost" */
  cn?: string;
  /** subjectAltName. @default "DNS:localhost,IP:127.0.0.1" */
  san?: string;
  /** Days of validity from now. @default 30 */
  days?: number;
  /** Explicit validity (`YYYYMMDDHHMMSSZ`), e.g. for an expired certificate. */
  startdate?: string;
  enddate?: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `YYYYMMDDHHMMSSZ` for a time `days` from now (negative: in the past). */
export function opensslDate(days: number): string {
  return `${new Date(Date.now() + days * 86_400_000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/**
 * A certificate authority of one test, made with the system's `openssl` in a temp directory:
 * `ca` is its certificate (for `curl --cacert`); `issue()` signs server certificates with
 * `openssl ca`, which can set any validity (OpenSSL 3.0's `x509 -req` cannot date one in the past).
 */
export class TestPki {
  readonly dir = tempDir('prefork-pki-');
  readonly ca = join(this.dir, 'ca.pem');
  readonly #caKey = join(this.dir, 'ca.key');
  readonly #config = join(this.dir, 'ca.cnf');

  constructor() {
    const dir = this.dir;
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
    writeFileSync(join(dir, 'serial'), '1000\n');
    writeFileSync(
      this.#config,
      [
        '[ca]', 'default_ca = test',
        '[test]', `dir = ${dir}`, `database = ${dir}/index.txt`, `new_certs_dir = ${dir}`, `serial = ${dir}/serial`,
        'default_md = sha256', 'policy = anything', 'copy_extensions = copy', 'x509_extensions = server',
        '[anything]', 'commonName = supplied',
        '[server]', 'basicConstraints = CA:FALSE', 'keyUsage = digitalSignature,keyEncipherment', 'extendedKeyUsage = serverAuth',
        '',
      ].join('\n'),
    );
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', this.#caKey, '-out', this.ca, '-subj', '/CN=prefork test CA', '-days', '30'], dir);
  }

  /** Signs a new server certificate with a new key; both written as `NAME.pem` / `NAME.key`. */
  issue(name: string, options: IssueOptions = {}): Issued {
    const cert = join(this.dir, `${name}.pem`);
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cn = options.cn ?? 'localhost';
    const san = options.san ?? 'DNS:localhost,IP:127.0.0.1';
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`], this.dir);
    const validity = options.startdate || options.enddate
      ? ['-startdate', options.startdate ?? opensslDate(-1), '-enddate', options.enddate ?? opensslDate(30)]
      : ['-days', String(options.days ?? 30)];
    openssl(['ca', '-batch', '-notext', '-config', this.#config, '-cert', this.ca, '-keyfile', this.#caKey, '-in', csr, '-out', cert, ...validity], this.dir);
    return { cert, key };
  }
}

/** What a finished command printed and its exit code. */
export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command (curl, openssl s_client) to completion without blocking the event loop (a pool
 * of the test may run in this process), writing `input` to its stdin; killed after `ms`.
 */
export function run(command: string, args: string[], input = '', ms = 15_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    proc.stdin.on('error', () => {});
    proc.stdin.end(input);
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One TLS connection to 127.0.0.1:`port` (SNI localhost), trusting `ca`: resolves once the handshake is done. */
export async function tlsConnect(port: number, ca: string): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca) });
  await once(socket, 'secureConnect');
  return socket;
}

/** Reads a socket to its end. */
export async function readAll(socket: TLSSocket): Promise<string> {
  let text = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) text += chunk as string;
  return text;
}
