import { closeSync, openSync, writeSync } from 'node:fs';
import type { Logger } from '../child/types.js';
import { PreforkError } from '../errors.js';
import { createLogger, type StreamLogger } from '../logger.js';
import type { ResolvedLogConfig } from './resolve.js';

/**
 * The parent's log as the `log` section describes it: stderr, or a file opened for appending that
 * `reopen()` swaps for a fresh one after logrotate moved it (SIGUSR1). `configure()` applies a
 * reloaded `log` section (SIGHUP) in place, so the pool and its plugins keep the same logger.
 */
export class ParentLog implements Logger {
  #settings: ResolvedLogConfig;
  #fd: number | undefined;
  #logger: StreamLogger;

  /** Opens the log file, if any. Throws PREFORK_ERR_CONFIG_INVALID naming `log.file` when it cannot. */
  constructor(settings: ResolvedLogConfig) {
    this.#settings = settings;
    this.#fd = settings.file === undefined ? undefined : openLogFile(settings.file);
    this.#logger = this.#create();
  }

  /** The settings in force. */
  get settings(): Readonly<ResolvedLogConfig> {
    return this.#settings;
  }

  error(message: string, fields?: Record<string, unknown>): void {
    this.#logger.error(message, fields);
  }

  warn(message: string, fields?: Record<string, unknown>): void {
    this.#logger.warn(message, fields);
  }

  info(message: string, fields?: Record<string, unknown>): void {
    this.#logger.info(message, fields);
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.#logger.debug(message, fields);
  }

  /**
   * Opens the log file again by its name and closes the old descriptor, which still points at the
   * renamed file. Returns false (and keeps the old file) when it cannot be opened; no-op on stderr.
   */
  reopen(): boolean {
    if (this.#settings.file === undefined) return true;
    let fd: number;
    try {
      fd = openLogFile(this.#settings.file);
    } catch (error) {
      this.error('could not reopen the log file; still writing to the old one', { file: this.#settings.file, error: (error as Error).message });
      return false;
    }
    const old = this.#fd;
    this.#fd = fd;
    this.#logger.setStream(this.#stream());
    if (old !== undefined) closeSync(old);
    return true;
  }

  /** Applies new settings (a reload): level, format and file. Throws like the constructor, keeping the old ones. */
  configure(settings: ResolvedLogConfig): void {
    const fd = settings.file === undefined ? undefined : settings.file === this.#settings.file ? this.#fd : openLogFile(settings.file);
    const old = this.#fd;
    this.#settings = settings;
    this.#fd = fd;
    this.#logger = this.#create();
    if (old !== undefined && old !== fd) closeSync(old);
  }

  /** Closes the log file. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#logger = this.#create();
  }

  #create(): StreamLogger {
    return createLogger({ level: this.#settings.level, format: this.#settings.format, stream: this.#stream() });
  }

  #stream(): { write(line: string): unknown; isTTY?: boolean } {
    const fd = this.#fd;
    if (fd === undefined) return process.stderr;
    return {
      isTTY: false,
      write(line: string) {
        try {
          // Synchronous: the parent's log is small, and a line written just before exit must not be lost.
          writeSync(fd, line);
        } catch {
          // A full disk must not take the server down; the line is lost.
        }
      },
    };
  }
}

function openLogFile(file: string): number {
  try {
    return openSync(file, 'a', 0o640);
  } catch (error) {
    throw new PreforkError('PREFORK_ERR_CONFIG_INVALID', `log.file: cannot open ${file} for appending: ${(error as Error).message}`, { cause: error });
  }
}
