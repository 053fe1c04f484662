// The part of `ws` that the tests use: the package ships no types, and @types/ws would be a second
// new devDependency for four members.
declare module 'ws' {
  import { EventEmitter } from 'node:events';

  export class WebSocket extends EventEmitter {
    constructor(address: string, options?: { ca?: string | Buffer });
    readonly readyState: number;
    send(data: string | Buffer): void;
    close(code?: number, reason?: string): void;
  }
}
