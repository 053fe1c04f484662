# The prefork addon: plain C against N-API 8, so one build serves every Node release with N-API 8,
# and libuv (through Node's headers) for watching listeners in Node's own event loop.
{
  "targets": [
    {
      "target_name": "prefork",
      "sources": [
        "src/native/prefork.c",
        "src/native/listener.c",
        "src/native/accept.c",
        "src/native/watcher.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      # Node's common.gypi silences unused parameters and asks for -O3; we want all of -Wextra and
      # -O2, which is plenty for code that is a thin layer over system calls.
      "cflags!": ["-Wno-unused-parameter", "-O3"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "configurations": {
        "Release": { "cflags!": ["-O3"] }
      }
    }
  ]
}
