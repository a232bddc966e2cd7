"""``servesim`` for the docs tests: each command runs in a fork of one warm Python process.

Starting Python and importing NumPy, SciPy, pandas and pydantic takes about a second, and
the docs run a couple of dozen commands. ``python tests/cli_server.py SOCKET`` imports
servesim once, then serves commands: the client (``client_script``, the ``servesim`` on
the tests' PATH) sends its arguments, folder and standard streams; a forked child takes
them, runs ``cli.main`` with simulations kept small, and its exit status goes back.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import traceback
from pathlib import Path

#: Requests per simulation when the docs' commands run in the test suite.
SMALL_REQUESTS = 200
#: Commands that simulate a scenario file given as their first argument.
SIMULATING = ("simulate", "plan", "report", "sweep")


def client_script(socket_path: Path) -> str:
    """The ``servesim`` executable that hands its command to the server at ``socket_path``
    (standard library only, so it starts at once)."""
    return f"""#!{sys.executable} -S
import json, os, socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
client.connect({str(socket_path)!r})
request = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}).encode()
socket.send_fds(client, [request], [0, 1, 2])
sys.exit(int(client.recv(16) or b"1"))
"""


def small(argv: list[str]) -> list[str]:
    """The command with its simulations kept small (a trace replays whole)."""
    import yaml

    if len(argv) > 1 and argv[0] in SIMULATING and Path(argv[1]).is_file():
        data = yaml.safe_load(Path(argv[1]).read_text()) or {}
        if "trace" not in (data.get("workload") or {}):
            argv = [*argv, "--set", f"workload.num_requests={SMALL_REQUESTS}"]
        if argv[0] in ("plan", "report"):
            argv = [*argv, "--set", "plan.replications=1"]
    return argv


def _run(argv: list[str]) -> int:
    import simulator.cli.main as cli

    try:
        return int(cli.main(small(argv)) or 0)
    except SystemExit as exc:  # argparse's usage errors and --help
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve(socket_path: str) -> None:
    import simulator.cli.main as cli

    for module in cli.COMMANDS.values():  # import everything once, before forking
        importlib.import_module(module)
    importlib.import_module("simulator.api")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path)
    listener.listen()
    while True:
        conn, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        request = json.loads(message)
        if request.get("stop"):
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            listener.close()
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.chdir(request["cwd"])
            os._exit(_run(request["argv"]))
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        conn.send(str(os.waitstatus_to_exitcode(status)).encode())
        conn.close()


def stop(socket_path: Path) -> None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(str(socket_path))
    socket.send_fds(client, [json.dumps({"stop": True}).encode()], [0, 1, 2])
    client.close()


if __name__ == "__main__":
    serve(sys.argv[1])
