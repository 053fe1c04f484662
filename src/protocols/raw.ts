import type { Socket } from 'node:net';
import { PreforkError } from '../errors.js';
import type { ProtocolFactory } from '../child/types.js';
import { linger, whenEnded } from './sockets.js';

/**
 * The raw protocol: the handler's `connection(socket, ctx)` owns the socket. The connection is
 * finished once the handler's promise (if it returned one) has settled and the socket is closed or
 * the handler has ended it: the child takes its next connection then, without waiting for the
 * client to close its side (which it is given LINGER_MS to do).
 */
export const createRawProtocol: ProtocolFactory = ({ handler, ctx, reportError }) => {
  const connection = handler.connection;
  if (typeof connection !== 'function') {
    throw new PreforkError(
      'PREFORK_ERR_HANDLER_INVALID',
      'protocol "raw" needs the handler module to export a function `connection(socket, ctx)`',
    );
  }
  return {
    handle(socket) {
      // A client that resets the connection must not become an uncaught 'error' in the child: the
      // handler may not have added a listener, and one broken client must not end the others' work.
      socket.on('error', (error) => {
        if ((socket.listenerCount('error') ?? 0) <= 1) ctx.logger.debug('connection error', { error: error.message });
      });
      // A handler that ends its side without ever reading leaves the socket paused: whenEnded
      // resumes it, so that the client's EOF is read and the socket closes.
      const ended = whenEnded(socket);
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
      return Promise.all([ended, settled]).then(() => linger(socket));
    },
    stop() {
      // Raw connections belong to the handler; it decides when they end. Nothing to cut short.
    },
  };
};
