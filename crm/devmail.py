"""A throwaway Dovecot IMAP server: for the mail tests and the local demo of `make run`.

Debian's dovecot-imapd, started unprivileged on a free loopback port with a generated
configuration (see /work/shared/recipes/mail-servers.md for the measured details):

    with Dovecot() as server:                      # static passdb: any user, password "testpw"
        server.append("support@example.com", raw_bytes)
        settings = server.imap_settings("support@example.com")

Everything lives in one short folder under /tmp (unix socket paths are limited to 107
bytes). Run as root, the login, auth and imap processes run as nobody; run as anybody
else, everything runs as that user. Imports nothing from pytest or Flask.
"""

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
STATIC_PASSWORD = "testpw"

_CONFIG = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = /dev/stderr
protocols = imap
listen = 127.0.0.1
{ssl}
auth_failure_delay = 0
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
passdb {{
  driver = {passdb_driver}
  args = {passdb_args}
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={mail}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
{imaps}}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

_IMAPS_LISTENER = """\
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
"""


def available() -> bool:
    """Whether Dovecot is installed here (Debian: apt-get install dovecot-imapd)."""
    return os.access(DOVECOT, os.X_OK)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DovecotError(RuntimeError):
    """Dovecot did not start, or doveadm failed; the message carries its log."""


class Dovecot:
    """One Dovecot server: start() returns once it greets; stop() ends it and its children.

    users: {name: password} for a passwd-file, or None for a static passdb where any user
    name logs in with `password` and gets a fresh, empty mailbox (test isolation).
    tls: also listen with implicit TLS on `tls_port`, with a self-signed certificate
    for 127.0.0.1 (`cafile` verifies it).
    mail_directory: where the maildirs live when they must outlive the server (a demo);
    by default inside `directory` (run as root, nobody must be able to walk to it). The
    configuration and sockets stay in `directory`, which must be short.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        port: int | None = None,
        users: dict[str, str] | None = None,
        password: str = STATIC_PASSWORD,
        tls: bool = False,
        tls_port: int | None = None,
        mail_directory: str | os.PathLike | None = None,
    ):
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="dc-"))
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.users = dict(users) if users is not None else None
        self.password = password
        self.tls = tls
        self.tls_port = (tls_port or free_port()) if tls else None
        # The maildirs (kept by stop() when given): {mail_directory}/<user>/Maildir.
        self.mail_directory = Path(mail_directory or self.directory / "mail")
        self.process: subprocess.Popen | None = None

    # ---- paths -------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.directory / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "dovecot.log"

    @property
    def cafile(self) -> str | None:
        return str(self.directory / "cert.pem") if self.tls else None

    def maildir(self, user: str) -> Path:
        return self.mail_directory / user / "Maildir"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- life --------------------------------------------------------------------

    def _identity(self) -> tuple[str, str]:
        """Who the server's processes run as: nobody as root (the master stays root)."""
        if os.geteuid() == 0:
            return "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
        return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name

    def _write_config(self) -> None:
        user, group = self._identity()
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)  # nobody walks through it to the mail folder
        mail = self.mail_directory
        mail.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(mail, user, group)
        if self.users is None:
            passdb_driver, passdb_args = "static", f"password={self.password}"
        else:
            passdb_driver, passdb_args = "passwd-file", f"scheme=PLAIN username_format=%u {d}/users"
            lines = "".join(f"{name}:{{PLAIN}}{pw}\n" for name, pw in self.users.items())
            (d / "users").write_text(lines)
        if self.tls:
            self._make_certificate()
            ssl = f"ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem"
            imaps = _IMAPS_LISTENER.format(tls_port=self.tls_port)
        else:
            ssl, imaps = "ssl = no", ""
        self.config_path.write_text(
            _CONFIG.format(
                d=d,
                mail=mail,
                port=self.port,
                user=user,
                group=group,
                ssl=ssl,
                imaps=imaps,
                passdb_driver=passdb_driver,
                passdb_args=passdb_args,
            )
        )

    def _make_certificate(self) -> None:
        d = self.directory
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start(self, timeout: float = 10.0) -> "Dovecot":
        if not available():
            raise DovecotError(f"{DOVECOT} is missing (apt-get install dovecot-imapd)")
        self._write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() can end the imap children with the master
            )
        self._wait_for_greeting(timeout)
        return self

    def _wait_for_greeting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DovecotError(f"dovecot exited ({self.process.returncode}):\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as conn:
                    if conn.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise DovecotError(f"dovecot did not greet within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
            # The imap processes of sessions still open outlive the master.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "Dovecot":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- using it ----------------------------------------------------------------

    def password_of(self, user: str) -> str:
        return self.password if self.users is None else self.users[user]

    def imap_settings(self, user: str, tls: bool = False) -> dict:
        """What a Mailbox row needs to reach `user`'s mailbox here (password in clear)."""
        return {
            "imap_host": self.host,
            "imap_port": self.tls_port if tls else self.port,
            "imap_security": "ssl" if tls else "none",
            "imap_username": user,
            "password": self.password_of(user),
        }

    def client(self, user: str):
        """An IMAPClient logged in as `user` (plain, on loopback); the caller logs out."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(user, self.password_of(user))
        return client

    def append(
        self, user: str, raw: bytes, folder: str = "INBOX", flags: tuple = (), msg_time=None
    ) -> int:
        """APPEND `raw` to `user`'s folder as is; returns its UID."""
        client = self.client(user)
        try:
            if folder != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            answer = client.append(folder, raw, flags=flags, msg_time=msg_time)
        finally:
            client.logout()
        # b"[APPENDUID <uidvalidity> <uid>] Append completed."
        return int(answer.split(b"]")[0].split()[-1])

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            [DOVEADM, "-c", str(self.config_path), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def set_uidvalidity(self, user: str, value: int, folder: str = "INBOX") -> None:
        """Change the folder's UIDVALIDITY live (UIDs kept): clients must resync.

        A session that has the folder selected is dropped by the server."""
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        out = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", folder)
        return int(out.strip().split("=")[-1])
