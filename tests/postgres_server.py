"""A throwaway PostgreSQL server for tests: a temporary data folder, a unix socket in it, no TCP.

It asks for a password (SCRAM), as a team's server does, and the URL it gives holds none: clients
find it in the password file that ``PGPASSFILE`` names (what docs/sweeps.md tells users to do).

Debian's ``postgresql`` package (``apt-get install postgresql``; ``.ci/run`` installs it) puts the
server programs in /usr/lib/postgresql/<version>/bin. The server refuses to run as root, so as root
it runs as the ``postgres`` user the package creates.
"""

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install postgresql (bash .ci/run does)"


class Unavailable(RuntimeError):
    """No server can be started here; the message says why (a test skips with it)."""


def server_programs() -> Path:
    """The folder holding initdb and pg_ctl, the newest version's when several are installed."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise Unavailable(f"PostgreSQL's server programs (initdb, pg_ctl) are not installed: {INSTALL}")
    return found[-1].parent


def _as_server_user() -> tuple[list[str], int | None]:
    """The command prefix that runs a program as a user the server accepts, and that user's uid."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        raise Unavailable(f"running as root, and there is no 'postgres' user to run the server as: {INSTALL}") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise Unavailable("running as root, and runuser (util-linux) is missing to run the server as 'postgres'")
    return [runuser, "-u", "postgres", "--"], uid


@dataclass(frozen=True)
class Server:
    url: str       # SQLAlchemy URL of the ``postgres`` database, without the password
    passfile: str  # libpq's password file for it: set PGPASSFILE to this in every client


@contextlib.contextmanager
def throwaway_server() -> Iterator[Server]:
    """Start a server; yield where it is; stop it and delete its data."""
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's driver: the URL names it)
    except ImportError:
        raise Unavailable("the psycopg driver is not installed: pip install -e '.[test]'") from None
    programs = server_programs()
    prefix, uid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="twostream-pg-"))
    if uid is not None:
        os.chown(root, uid, -1)
    data, log = root / "data", root / "server.log"
    password = secrets.token_hex(16)
    (root / "password").write_text(password)  # initdb reads it as the server user
    if uid is not None:
        os.chown(root / "password", uid, -1)
    passfile = Path(tempfile.mkdtemp(prefix="twostream-pgpass-")) / "pgpass"
    passfile.write_text(f"*:*:*:postgres:{password}\n")
    passfile.chmod(0o600)  # libpq ignores a password file that others may read

    def run(*command: str) -> None:
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text()[-2000:] if log.exists() else ""
            raise Unavailable(f"{' '.join(command[:2])} failed: {done.stderr[-2000:]}{server_log}")

    try:
        run(str(programs / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
            f"--pwfile={root / 'password'}", "-E", "UTF8", "--no-sync")
        # only a unix socket in the temporary folder (no port to collide with); fsync off: the data is thrown away
        run(str(programs / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-k {root} -c listen_addresses='' -c fsync=off", "start")
        try:
            yield Server(f"postgresql+psycopg://postgres@/postgres?host={root}", str(passfile))
        finally:
            run(str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(passfile.parent, ignore_errors=True)
