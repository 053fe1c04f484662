"""gunicorn settings of the benchmark (the command line sets workers, worker class and bind).

The master asks the kernel to kill it when the process that started it (bench/run.mjs) dies, so
that no gunicorn outlives the benchmark even if the runner is killed with SIGKILL; its workers
notice the master's death on their next loop turn and exit.
"""
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1

try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
except OSError:
    pass

loglevel = "warning"
accesslog = None
# Debian's /tmp may be on disk; the heartbeat file is touched on every request loop turn.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
