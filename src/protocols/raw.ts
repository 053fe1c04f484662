import type { Socket } from 'node:net';
import { PreforkError } from '../errors.js';
import type { ProtocolFactory } from '../child/types.js';

/**
 * The raw protocol: the handler's `connection(socket, ctx)` owns the socket. The connection is
 * finished once the socket is closed and the handler's promise (if it returned one) has settled.
 */
export const createRawProtocol: ProtocolFactory = ({ handler, ctx, reportError }) => {
  const connection = handler.connection;
  if (typeof connection !== 'function') {
    throw new PreforkError(
      'PREFORK_ERR_HANDLER_INVALID',
      'protocol "raw" needs the handler module to export a function `connection(socket, ctx)`',
    );
  }
  const open = new Set<Socket>();
  return {
    handle(socket) {
      open.add(socket);
      // A client that resets the connection must not become an uncaught 'error' in the child: the
      // handler may not have added a listener, and one broken client must not end the others' work.
      socket.on('error', (error) => {
        if ((socket.listenerCount('error') ?? 0) <= 1) ctx.logger.debug('connection error', { error: error.message });
      });
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      // A handler that ends its side without ever reading leaves the socket paused, so the
      // client's EOF is never read and 'close' never comes: drain what nobody will read.
      socket.once('finish', () => {
        if (socket.readableFlowing !== true) socket.resume();
      });
      let settled: Promise<unknown>;
      try {
        settled = Promise.resolve(connection(socket, ctx)).catch((error: unknown) => {
          reportError(error, 'connection');
          socket.destroy();
        });
      } catch (error) {
        reportError(error, 'connection');
        socket.destroy();
        settled = Promise.resolve();
      }
      return Promise.all([closed, settled]).then(() => {
        open.delete(socket);
      });
    },
    stop() {
      // Raw connections belong to the handler; it decides when they end. Nothing to cut short.
    },
  };
};
