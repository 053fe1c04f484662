import { Socket } from 'node:net';

/** What the child needs of the class of a net.Socket's handle (Node's TCP or Pipe wrap). */
interface HandleClass {
  new (type: number): { open(fd: number): number; close(): void };
}

/** The handle type of a connected socket, `SOCKET` in both Node's TCP and Pipe wraps (SERVER is 1). */
const SOCKET_HANDLE = 0;

/**
 * Makes the net.Socket of each connection the child accepted. `new Socket({ fd })` asks the
 * system what the descriptor is, every time: isatty, fstat, getsockname, getsockopt, four system
 * calls a connection. Every connection of one listener is of the same kind, so the first is made
 * that way and the handle class Node picked for it (TCP or Pipe) is kept: the others are made as
 * Node's own server makes an accepted socket, from a handle it opened on the descriptor. A class
 * that does not behave that way (a Node version whose internals differ) is given up, and every
 * socket of that listener is made from its descriptor.
 */
export class AcceptedSockets {
  /** Per listener: the handle class to use, null once given up, undefined before the first connection. */
  readonly #classes: (HandleClass | null | undefined)[] = [];

  /** The socket of accepted descriptor `fd` of listener `listener`; throws as `new Socket({ fd })` does. */
  socket(fd: number, listener: number, allowHalfOpen: boolean): Socket {
    const Class = this.#classes[listener];
    if (Class) {
      const handle = this.#open(Class, fd);
      if (handle) return new Socket({ handle, readable: true, writable: true, allowHalfOpen } as ConstructorParameters<typeof Socket>[0]);
      this.#classes[listener] = null;
    }
    const socket = new Socket({ fd, readable: true, writable: true, allowHalfOpen });
    if (Class === undefined) this.#classes[listener] = handleClassOf(socket);
    return socket;
  }

  /** A handle of `Class` open on `fd`, or undefined (the descriptor is left as it was). */
  #open(Class: HandleClass, fd: number): { open(fd: number): number; close(): void } | undefined {
    let handle: InstanceType<HandleClass> | undefined;
    try {
      handle = new Class(SOCKET_HANDLE);
      if (handle.open(fd) === 0) return handle;
    } catch {
      // Not constructible that way.
    }
    try {
      handle?.close();
    } catch {
      // Nothing was open.
    }
    return undefined;
  }
}

/** The class of a socket's handle when it is Node's TCP or Pipe wrap with an open(fd) method, else null. */
function handleClassOf(socket: Socket): HandleClass | null {
  const handle = (socket as unknown as { _handle?: { constructor?: unknown; open?: unknown } })._handle;
  const Class = handle?.constructor as (HandleClass & { name?: string }) | undefined;
  if (typeof Class !== 'function' || typeof handle?.open !== 'function') return null;
  return Class.name === 'TCP' || Class.name === 'Pipe' ? Class : null;
}
