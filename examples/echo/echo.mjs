// A raw TCP echo server: every byte a client sends comes back to it. One connection per child at a
// time (children.slots 1), so the pool's size is how many clients are served at once.

/** @param {import('node:net').Socket} socket */
export function connection(socket) {
  socket.pipe(socket);
  // The connection is finished once the client has hung up; a reset is just another hang-up.
  socket.on('error', () => socket.destroy());
  return new Promise((resolve) => socket.on('close', resolve));
}
