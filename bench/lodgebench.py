"""What bench/load and bench/soak share: the release binary, its environment, a running server."""

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("LODGE_BENCH_BINARY", ROOT / "target" / "release" / "lodge"))
TOKEN_LOGIN = ('query authLogin($credentials: Object) { authLogin(provider: "token", '
               'credentials: $credentials) { authId userTokens { userId } authStatus } }')


def lodge_env(db, **settings):
    """This process's environment without its LODGE_* variables, with the database at `db`,
    warnings only in the log, and `settings` as LODGE_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LODGE_")}
    env.update({"LODGE_DATABASE__PATH": str(db), "LODGE_LOG": "warn", **settings})
    return env


def lodge(env, *args, stdin=None):
    """Runs a `lodge` command; gives its standard output."""
    out = subprocess.run([BINARY, "--config", os.devnull, *args], env=env, input=stdin,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"lodge {' '.join(args)} exited with {out.returncode}: {out.stderr}")
    return out.stdout


def init(env):
    """Creates the database and the administrator `admin` (bench-admin-password): other commands
    never create one. A binary from before `lodge init` created it at its first command."""
    out = subprocess.run([BINARY, "--config", os.devnull, "init"], capture_output=True, text=True,
                         env={**env, "LODGE_ADMIN__PASSWORD": "bench-admin-password"})
    if out.returncode == 0:
        return
    if "unrecognized subcommand" in out.stderr:
        lodge(env, "user", "add", "admin", "--admin", stdin="bench-admin-password\n")
        return
    raise RuntimeError(f"lodge init exited with {out.returncode}: {out.stderr}")


def db_size(folder):
    """The database with its -wal and -shm files, in bytes."""
    return sum(f.stat().st_size for f in Path(folder).glob("lodge.db*"))


def known_settings(settings):
    """Those of `settings` (LODGE_ variables) that the binary knows: a binary from before a
    setting refuses to start with it, and the bench compares binaries of several releases."""
    known = {}
    for key, value in settings.items():
        out = subprocess.run([BINARY, "--config", os.devnull, "user", "list"],
                             env=lodge_env(Path(os.devnull) / "absent.db", **{key: value}),
                             capture_output=True, text=True)
        if "unknown key" not in out.stderr:
            known[key] = value
    return known


# What every server of the load runs with: the scoped scenarios send the original request as
# Traefik and Caddy do, in X-Forwarded-*; wrk's connections all come from 127.0.0.1, beyond the
# per-address cap.
LOAD_SETTINGS = known_settings({
    "LODGE_FORWARD_AUTH__REQUEST_HEADERS": "forwarded",
    "LODGE_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "0",
})


class Server:
    """A release lodge serving on port 0 with the database at `db` (or at a PostgreSQL URL in
    `settings`)."""

    def __init__(self, db, cwd, **settings):
        env = lodge_env(db, LODGE_SERVER__PORT="0", LODGE_ADMIN__PASSWORD="bench-admin-password",
                        **LOAD_SETTINGS, **settings)
        self.started = time.perf_counter()
        self.process = subprocess.Popen([BINARY, "--config", os.devnull, "serve"], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            if line.startswith("listening on "):
                self.url = line.split()[-1]
                break
        else:
            sys.exit("lodge stopped before listening")
        self.port = int(self.url.rsplit(":", 1)[1])

    def post(self, body, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/api/gql", body=json.dumps(body),
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = json.loads(response.read())
        conn.close()
        return response, data

    def login(self, token):
        """Logs in with an API token; gives the session cookie's value."""
        response, data = self.post({"query": TOKEN_LOGIN, "variables": {"credentials": {"token": token}}})
        if response.status != 200 or "errors" in data:
            raise RuntimeError(f"token login failed: {response.status} {data}")
        cookie = response.getheader("Set-Cookie").split(";")[0]
        return cookie.split("=", 1)[1]

    def first_login(self, token):
        """Milliseconds from starting the process to the first answered token login."""
        self.login(token)
        return (time.perf_counter() - self.started) * 1000

    def cpu_ticks(self):
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def status(self, key):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def rss(self):
        return self.status("VmRSS")

    def peak_rss(self):
        return self.status("VmHWM")

    def stop(self):
        """SIGTERM; gives the exit code."""
        self.process.terminate()
        return self.process.wait(timeout=60)


class Postgres:
    """A PostgreSQL cluster of Debian's in a temporary folder on a free 127.0.0.1 port, durable
    (fsync and synchronous commit on, its defaults), run as the `postgres` user when this is
    root; `stop()` removes it."""

    def __init__(self):
        import glob
        import shutil
        import socket
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            sys.exit("PostgreSQL is missing: apt-get install postgresql")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="lodge-bench-pg-"))
        self.data = self.dir / "data"
        self.data.mkdir()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-N",
                 "--encoding=UTF8", "--locale=C.UTF-8")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=300 -c shared_buffers=256MB")
        self.run("pg_ctl", "-D", self.data, "-o", options, "-l", self.dir / "log", "-w", "start")

    def run(self, program, *args, capture=False):
        command = [str(self.bin / program), *map(str, args)]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{program} exited with {out.returncode}: {out.stderr}")
        return out.stdout

    def url(self, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        self.run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name)
        return self.url(name)

    def cpu_ticks(self):
        """User and system ticks of every process of the cluster's server so far."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid or int(entry.name) == pid:
                ticks += int(fields[11]) + int(fields[12])
        return ticks

    def stop(self):
        import shutil

        try:
            self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
