"""The processes under test: gunicorn as in production, and an RQ worker, on loopback."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A child process with its log file; stop() ends it and its children, nothing else."""

    def __init__(self, name: str, command: list[str], env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        self.ask_to_stop()
        self.wait_stopped()

    def ask_to_stop(self) -> None:
        if self.running():
            self.popen.send_signal(self.stop_signal)

    def wait_stopped(self) -> None:
        try:
            self.popen.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)  # its own session: only its children
            self.popen.wait(5)
        self.log.close()

    # The RQ worker finishes cleanly on SIGTERM. gunicorn is asked with SIGINT, its quick
    # shutdown; its workers then take seconds to tear the interpreter down, so once the
    # measurements are over it gets `stop_timeout` seconds before it is killed.
    stop_signal = signal.SIGTERM
    stop_timeout = 15.0


def stop_all(processes: list["Process"]) -> None:
    for process in processes:
        process.ask_to_stop()
    for process in processes:
        process.wait_stopped()


def start_web(env: dict, port: int, workers: int, log_dir: Path) -> Process:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--timeout",
        "60",
        "app:app",
    ]
    web = Process("gunicorn", command, env, log_dir / "gunicorn.log")
    web.stop_signal = signal.SIGINT
    web.stop_timeout = 1.0
    return web


def start_worker(env: dict, log_dir: Path) -> Process:
    return Process("rq worker", [sys.executable, "worker.py"], env, log_dir / "worker.log")


def wait_until_serving(web: Process, port: int, workers: int, timeout: float = 90.0) -> None:
    """Until the login page answers and every worker has booted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not web.running():
            raise RuntimeError(f"gunicorn stopped:\n{web.log_tail()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/login")
            status = connection.getresponse().status
            connection.close()
            if status == 200 and len(children(web.pid)) >= workers:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s:\n{web.log_tail()}")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (0 for one that is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict:
    """Resident memory now (VmRSS) and at its peak (VmHWM), in bytes."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
    except OSError:
        return {}
    return {"pid": pid, "rss_bytes": values.get("VmRSS"), "peak_rss_bytes": values.get("VmHWM")}
