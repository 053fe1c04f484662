#!/usr/bin/env node
// Placeholder until the command lands (issue 4): run a pool from a JSON config file.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Pool } from './pool/Pool.js';

const args = process.argv.slice(2);
const at = args.indexOf('--config');
const file = resolve(at >= 0 ? args[at + 1]! : 'prefork.config.json');
const config = JSON.parse(readFileSync(file, 'utf8'));
const pool = new Pool({ ...config, cwd: dirname(file) });
await pool.start();
console.error(`prefork: listening on ${pool.addresses().map((a) => (a.path ? `unix:${a.path}` : `${a.address}:${a.port}`)).join(', ')} with ${pool.children().length} children, pid ${process.pid}`);
const stop = () => void pool.stop('signal');
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const outcome = await pool.wait();
process.exit(outcome.error ? 1 : 0);
