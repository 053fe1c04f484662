/**
 * Entry point of a child process; the pool forks `node dist/child.js` with the control channel
 * on fd 3 and the listening sockets from fd 4 on.
 */
import { readBootstrap } from './bootstrap.js';
import { ChildRuntime } from './runtime.js';

const runtime = new ChildRuntime(readBootstrap());
void runtime.start();
