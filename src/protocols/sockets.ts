import type { Socket } from 'node:net';

/** The TCP socket under each TLS socket the child runtime made: what only TCP can do (a reset) is done on it. */
const tcpSockets = new WeakMap<Socket, Socket>();

/** Records that `secure` (a TLS socket) runs over `tcp`. */
export function rememberTcpSocket(secure: Socket, tcp: Socket): void {
  tcpSockets.set(secure, tcp);
}

/**
 * Closes a connection with a reset, so that what the kernel still holds for the client is dropped
 * too. A TLS socket's handle is the TLS layer, which `resetAndDestroy()` refuses with
 * ERR_INVALID_HANDLE_TYPE (thrown from a timer, it would end the child): the TCP socket under
 * it is reset, and the TLS socket destroyed.
 */
export function resetAndDestroy(socket: Socket): void {
  const tcp = tcpSockets.get(socket);
  if (tcp === undefined) {
    socket.resetAndDestroy();
    return;
  }
  tcp.resetAndDestroy();
  socket.destroy();
}
