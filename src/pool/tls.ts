import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { PreforkError, toError } from '../errors.js';
import type { Logger } from '../child/types.js';
import { checkKeys, integer, invalid, milliseconds, object } from './optionChecks.js';

/**
 * TLS of one listener (`listen: [{ host, port, tls: { cert, key } }]`). The parent reads and
 * checks the files; the handshake happens in the child, which gets the PEM data, not the paths
 * (it may run as a user that cannot read them). A subset of `tls.createSecureContext()`'s options.
 */
export interface TlsOptions {
  /** The certificate chain (PEM file: the server's certificate first, then intermediates). Relative to the config file (to `cwd` from code). */
  cert: string;
  /** The private key (PEM file) of the certificate. */
  key: string;
  /** Extra CA or intermediate certificates (PEM files) to complete the chain. */
  ca?: string | string[];
  /** The passphrase of an encrypted `key`. */
  passphrase?: string;
  /** OpenSSL cipher list (TLS 1.2 and below). @default Node's default */
  ciphers?: string;
  /** Curves for ECDHE (`"X25519:P-256"`). @default Node's default */
  ecdhCurve?: string;
  /** Diffie-Hellman parameters (PEM file) for DHE ciphers. @default none (no DHE) */
  dhparam?: string;
  /** Lowest protocol version: `"TLSv1.2"` or `"TLSv1.3"` (older ones are refused). @default "TLSv1.2" */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Highest protocol version. @default "TLSv1.3" */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Prefer the server's cipher order to the client's. @default false */
  honorCipherOrder?: boolean;
  /** Seconds a session (ticket) stays resumable. @default 300 */
  sessionTimeout?: number;
  /**
   * Milliseconds a client has to finish its handshake; then the connection is closed. For HTTP
   * `http.headersTimeout` (counted from the accept) usually cuts it first. @default 120000 (Node's tls.Server)
   */
  handshakeTimeout?: number;
}

/** What a child needs to serve one TLS listener: the PEM data, the rest of the options as given. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca?: string[];
  passphrase?: string;
  ciphers?: string;
  ecdhCurve?: string;
  dhparam?: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  maxVersion: 'TLSv1.2' | 'TLSv1.3';
  honorCipherOrder: boolean;
  sessionTimeout: number;
  handshakeTimeout: number;
}

/** The served certificate, as `prefork check` and the expiry warning tell it. */
export interface CertificateInfo {
  /** The key path of the listener's `tls` (`listen[0].tls`). */
  listener: string;
  file: string;
  subject: string;
  subjectAltName: string | null;
  validTo: string;
  fingerprint256: string;
  /** Whole days left until `validTo`. */
  expiresInDays: number;
}

/** The resolved TLS of a pool: one entry per listener (undefined: plain), and the session ticket key. */
export interface ResolvedTls {
  listeners: (TlsMaterial | undefined)[];
  certificates: CertificateInfo[];
  /**
   * 48 random bytes, made anew by each resolution of the options (start, every reload) and given
   * to every child, so that a client resumes its session on any child of the generation.
   */
  ticketKeys: Buffer;
}

/** A certificate expiring within this many days is warned about at start and on reload. */
export const EXPIRY_WARNING_DAYS = 14;

const TLS_KEYS: ReadonlySet<string> = new Set(['cert', 'key', 'ca', 'passphrase', 'ciphers', 'ecdhCurve', 'dhparam', 'minVersion', 'maxVersion', 'honorCipherOrder', 'sessionTimeout', 'handshakeTimeout']);
const VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
const DAY_MS = 86_400_000;

/** The file option names of `tls`, which a config file gives relative to itself. */
export const TLS_FILE_KEYS = ['cert', 'key', 'ca', 'dhparam'] as const;

function readPem(key: string, path: unknown, cwd: string): { file: string; pem: string } {
  if (typeof path !== 'string' || path === '') throw invalid(key, 'a PEM file path', path);
  const file = isAbsolute(path) ? path : resolve(cwd, path);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${key}: cannot read ${file}: ${toError(error).message}`, { cause: error });
  }
  if (!pem.includes('-----BEGIN ')) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${key}: ${file} is not a PEM file (no "-----BEGIN" line)`);
  return { file, pem };
}

function optionalString(key: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw invalid(key, 'a non-empty string', value);
  return value;
}

function version(key: string, value: unknown, fallback: 'TLSv1.2' | 'TLSv1.3'): 'TLSv1.2' | 'TLSv1.3' {
  if (value === undefined) return fallback;
  if (!(VERSIONS as readonly unknown[]).includes(value)) throw invalid(key, `one of ${VERSIONS.map((v) => `"${v}"`).join(', ')}`, value);
  return value as 'TLSv1.2' | 'TLSv1.3';
}

/**
 * Checks one listener's `tls` section and reads its files: a missing or unreadable file, a bad
 * PEM, a wrong passphrase, a key that does not belong to the certificate, an expired certificate
 * or an option OpenSSL refuses throw PREFORK_ERR_OPTION_INVALID naming the key path and the file.
 */
export function resolveTlsListener(prefix: string, value: unknown, cwd: string, now = Date.now()): { material: TlsMaterial; certificate: CertificateInfo } {
  const raw = object(prefix, value);
  checkKeys(`${prefix}.`, raw, TLS_KEYS);
  if (raw.cert === undefined) throw invalid(`${prefix}.cert`, 'the certificate file (PEM)', undefined);
  if (raw.key === undefined) throw invalid(`${prefix}.key`, 'the private key file (PEM)', undefined);
  const cert = readPem(`${prefix}.cert`, raw.cert, cwd);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert.pem);
  } catch (error) {
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${prefix}.cert: ${cert.file} holds no valid certificate: ${toError(error).message}`, { cause: error });
  }
  const validTo = Date.parse(x509.validTo);
  if (!(validTo > now)) throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${prefix}.cert: the certificate in ${cert.file} expired on ${x509.validTo} (subject ${x509.subject.replace(/\n/g, ', ')})`);
  const passphrase = optionalString(`${prefix}.passphrase`, raw.passphrase);
  const key = readPem(`${prefix}.key`, raw.key, cwd);
  try {
    createPrivateKey({ key: key.pem, passphrase });
  } catch (error) {
    const what = /passphrase|bad decrypt/i.test(toError(error).message) ? 'cannot be decrypted (check tls.passphrase)' : 'holds no valid private key';
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${prefix}.key: ${key.file} ${what}: ${toError(error).message}`, { cause: error });
  }
  const caPaths = raw.ca === undefined ? [] : Array.isArray(raw.ca) ? raw.ca : [raw.ca];
  const ca = caPaths.map((path, index) => readPem(Array.isArray(raw.ca) ? `${prefix}.ca[${index}]` : `${prefix}.ca`, path, cwd).pem);
  const dhparam = raw.dhparam === undefined ? undefined : readPem(`${prefix}.dhparam`, raw.dhparam, cwd).pem;
  if (raw.honorCipherOrder !== undefined && typeof raw.honorCipherOrder !== 'boolean') throw invalid(`${prefix}.honorCipherOrder`, 'true or false', raw.honorCipherOrder);
  const material: TlsMaterial = {
    cert: cert.pem,
    key: key.pem,
    ...(ca.length > 0 ? { ca } : {}),
    ...(passphrase === undefined ? {} : { passphrase }),
    ...(raw.ciphers === undefined ? {} : { ciphers: optionalString(`${prefix}.ciphers`, raw.ciphers) }),
    ...(raw.ecdhCurve === undefined ? {} : { ecdhCurve: optionalString(`${prefix}.ecdhCurve`, raw.ecdhCurve) }),
    ...(dhparam === undefined ? {} : { dhparam }),
    minVersion: version(`${prefix}.minVersion`, raw.minVersion, 'TLSv1.2'),
    maxVersion: version(`${prefix}.maxVersion`, raw.maxVersion, 'TLSv1.3'),
    honorCipherOrder: raw.honorCipherOrder === true,
    sessionTimeout: integer(`${prefix}.sessionTimeout`, raw.sessionTimeout, 300, 1, 86_400 * 7),
    handshakeTimeout: milliseconds(`${prefix}.handshakeTimeout`, raw.handshakeTimeout, 120_000, 1),
  };
  if (material.minVersion === 'TLSv1.3' && material.maxVersion === 'TLSv1.2') throw invalid(`${prefix}.minVersion`, `at most ${prefix}.maxVersion ("TLSv1.2")`, material.minVersion);
  try {
    // The child builds the same context; building it here finds what OpenSSL refuses (a key that
    // does not match the certificate, an unknown cipher or curve) before anything forks.
    createSecureContext(secureContextOptions(material, randomBytes(48)));
  } catch (error) {
    const message = toError(error).message;
    const keyPath = /key values mismatch|private key/i.test(message) ? `${prefix}.key` : /cipher/i.test(message) ? `${prefix}.ciphers` : /curve|ecdh/i.test(message) ? `${prefix}.ecdhCurve` : /dh/i.test(message) ? `${prefix}.dhparam` : prefix;
    const detail = keyPath === `${prefix}.key` ? `${key.file} does not match the certificate in ${cert.file}` : 'refused by OpenSSL';
    throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${keyPath}: ${detail}: ${message}`, { cause: error });
  }
  const certificate: CertificateInfo = {
    listener: prefix,
    file: cert.file,
    subject: x509.subject.replace(/\n/g, ', '),
    subjectAltName: x509.subjectAltName ?? null,
    validTo: new Date(validTo).toISOString(),
    fingerprint256: x509.fingerprint256,
    expiresInDays: Math.floor((validTo - now) / DAY_MS),
  };
  return { material, certificate };
}

/** The options of `tls.createSecureContext()` for one listener: the same in the parent's check and in the child. */
export function secureContextOptions(material: TlsMaterial, ticketKeys: Buffer): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ca: material.ca,
    passphrase: material.passphrase,
    ciphers: material.ciphers,
    ecdhCurve: material.ecdhCurve,
    dhparam: material.dhparam,
    minVersion: material.minVersion,
    maxVersion: material.maxVersion,
    honorCipherOrder: material.honorCipherOrder,
    sessionTimeout: material.sessionTimeout,
    ticketKeys,
    // Sessions of one pool resume on each of its children, and only there.
    sessionIdContext: 'prefork',
  };
}

/**
 * The TLS of every listener, from the listen specs as given (`tls` of an object spec). TLS serves
 * `http` (HTTPS) and `raw`; `scgi` is refused, as SCGI comes from a web server that ends TLS itself.
 */
export function resolveTls(specs: readonly unknown[], keys: readonly string[], protocol: string, cwd: string): ResolvedTls {
  const listeners: (TlsMaterial | undefined)[] = [];
  const certificates: CertificateInfo[] = [];
  specs.forEach((spec, index) => {
    const tls = spec !== null && typeof spec === 'object' ? (spec as { tls?: unknown }).tls : undefined;
    if (tls === undefined) {
      listeners.push(undefined);
      return;
    }
    const prefix = `${keys[index]}.tls`;
    if (protocol === 'scgi') {
      throw new PreforkError('PREFORK_ERR_OPTION_INVALID', `${prefix}: TLS is not available with protocol "scgi": SCGI comes from the web server in front, which ends TLS itself; drop "tls" here and configure it there`);
    }
    const { material, certificate } = resolveTlsListener(prefix, tls, cwd);
    listeners.push(material);
    certificates.push(certificate);
  });
  return { listeners, certificates, ticketKeys: randomBytes(48) };
}

/** Logs a warning for every certificate that expires within {@link EXPIRY_WARNING_DAYS} days. */
export function warnExpiringCertificates(logger: Logger, tls: ResolvedTls): void {
  for (const certificate of tls.certificates) {
    if (certificate.expiresInDays < EXPIRY_WARNING_DAYS) {
      logger.warn('the TLS certificate expires soon; renew it and reload', {
        listener: certificate.listener,
        file: certificate.file,
        subject: certificate.subject,
        validTo: certificate.validTo,
        days: certificate.expiresInDays,
      });
    }
  }
}

/** What the child reads from its TLS descriptor: the PEM data of each listener and the ticket key. */
export interface TlsBootstrap {
  listeners: (TlsMaterial | null)[];
  /** The session ticket key, base64. */
  ticketKeys: string;
}

/** The bytes written to a child's TLS descriptor, or undefined when no listener uses TLS. */
export function tlsBootstrap(tls: ResolvedTls): Buffer | undefined {
  if (tls.listeners.every((material) => material === undefined)) return undefined;
  const data: TlsBootstrap = { listeners: tls.listeners.map((material) => material ?? null), ticketKeys: tls.ticketKeys.toString('base64') };
  return Buffer.from(JSON.stringify(data));
}
