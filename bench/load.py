"""The load pass: many requests at once over loopback, for a bounded time.

wrk (Debian's `wrk` package) when it is installed: it is written in C and costs
the server little of the machine's two cores. Without it, a Python load generator
with threads does the same job less efficiently (its own CPU use lowers the
figure); the result says which tool produced it.
"""

import http.client
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from bench.stats import percentile

_WRK_LUA = """
local paths = {%s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""


@dataclass
class LoadResult:
    tool: str
    seconds: float
    connections: int
    requests: int
    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int  # non-2xx answers, socket errors and timeouts
    notes: list[str] = field(default_factory=list)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    port: int, paths: list[str], cookie: str, seconds: float, connections: int, use_wrk: bool = True
) -> LoadResult:
    if use_wrk and wrk_available():
        return _wrk(port, paths, cookie, seconds, connections)
    return _threads(port, paths, cookie, seconds, connections)


def _wrk(port: int, paths: list[str], cookie: str, seconds: float, connections: int) -> LoadResult:
    quoted = ", ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA % quoted)
    try:
        command = [
            "wrk",
            "--threads",
            str(min(2, connections)),
            "--connections",
            str(connections),
            "--duration",
            f"{max(int(seconds), 1)}s",
            "--timeout",
            "10s",
            "--latency",
            "--script",
            script.name,
            "--header",
            f"Cookie: {cookie}",
            "--header",
            "Accept-Language: en",
            f"http://127.0.0.1:{port}",
        ]
        output = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    return _parse_wrk(output, connections)


def _parse_wrk(output: str, connections: int) -> LoadResult:
    def number(pattern: str, default: float = 0.0) -> float:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else default

    def latency(label: str) -> float | None:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not found:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return round(float(found.group(1)) * scale, 2)

    total = int(number(r"(\d+) requests in"))
    seconds = number(r"requests in ([\d.]+)s")
    errors = int(number(r"Non-2xx or 3xx responses: (\d+)"))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket:
        # With sync workers the server closes every connection after its answer: wrk counts
        # the reads that find it closed as read errors although the answer arrived. Only
        # connect, write and timeout errors are failures.
        errors += int(socket.group(1)) + int(socket.group(3)) + int(socket.group(4))
    return LoadResult(
        tool="wrk",
        seconds=seconds,
        connections=connections,
        requests=total,
        requests_per_second=round(number(r"Requests/sec:\s+([\d.]+)"), 1),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        errors=errors,
    )


def _threads(
    port: int, paths: list[str], cookie: str, seconds: float, connections: int
) -> LoadResult:
    """One thread per connection, each looping over the paths until the time is up."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, failed, index = [], 0, offset
        headers = {"Cookie": cookie, "Accept-Language": "en"}
        while time.perf_counter() < deadline:
            path = paths[index % len(paths)]
            index += 1
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    failed += 1
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (http.client.HTTPException, OSError):
                failed += 1
                connection.close()
                continue
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return LoadResult(
        tool="python threads",
        seconds=round(elapsed, 2),
        connections=connections,
        requests=len(ordered),
        requests_per_second=round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        p50_ms=percentile(ordered, 50),
        p99_ms=percentile(ordered, 99),
        errors=errors[0],
        notes=[
            "wrk not installed: Python load generator (apt-get install wrk for the real figure)"
        ],
    )
