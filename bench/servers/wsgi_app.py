"""Server 4: the benchmark's handler as a WSGI app for gunicorn (sync workers).

Answers the same status, Content-Type and body bytes as bench/servers/respond.mjs; the path /cpu
first burns 2 ms of the worker's own CPU time, like the Node servers.
"""
import time

BODY = b"hello\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
CPU_PATH = "/cpu"
CPU_SECONDS = 0.002


def burn_cpu(seconds):
    """Burns `seconds` of this thread's CPU time (not wall time)."""
    end = time.thread_time() + seconds
    spins = 0
    while time.thread_time() < end:
        for i in range(200):
            spins = (spins * 31 + i) & 0xFFFFFFFF
    return spins


def app(environ, start_response):
    if environ.get("PATH_INFO") == CPU_PATH:
        burn_cpu(CPU_SECONDS)
    start_response("200 OK", HEADERS)
    return [BODY]
