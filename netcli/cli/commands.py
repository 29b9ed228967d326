"""The command-line interface: each command parses its options, calls one library function, renders.

Nothing here imports torch at module level, so `netcli --help` starts fast;
each command imports what it needs when it runs. `main()` is the one boundary
that turns NetcliError into `FILE:LINE:COL: where: what (hint)` and exit 2.
"""

from __future__ import annotations

import contextlib
import os
import sys

# The command modules register their commands on `app` as they are imported, in the order `--help` lists them.
from netcli.cli import (
    commands_files,  # noqa: F401
    commands_network,  # noqa: F401, I001
    commands_spec,  # noqa: F401
    commands_tools,  # noqa: F401
    render,
)
from netcli.cli.app import _state, app


def _exit_code(argv) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


@contextlib.contextmanager
def _only_the_command_named(args: list[str]):
    """Let typer build the click command of the one command being run, not of all of them.

    typer turns every registered command's signature into click options before it parses
    anything: about 15 ms of each start-up for the 16 commands, a tenth of what netcli adds to
    `import torch` (bench figure 8). `netcli --help`, a misspelt command or an option first
    (`--debug build ...`) see the whole application, as before.
    """
    registered = app.registered_commands
    name = args[0] if args else None
    chosen = [info for info in registered if _command_name(info) == name]
    if chosen:
        app.registered_commands = chosen
    try:
        yield
    finally:
        app.registered_commands = registered


def _command_name(info) -> str | None:
    """The name typer gives a command: its own, else its function's with '_' as '-'."""
    if info.name:
        return info.name
    return info.callback.__name__.lower().replace("_", "-") if info.callback is not None else None


def main(argv: list[str] | None = None) -> None:
    """Run the app; print user errors as located one-liners and exit 2."""
    from netcli.core.errors import NetcliError

    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1") and not os.environ.get("NETCLI_IN_JOB"):
        # a rank of a torchrun job: join it, print on rank 0, one reported error, one exit code (SPEC §6)
        from netcli.app.jobs import run_as_rank

        os.environ["NETCLI_IN_JOB"] = "1"
        sys.exit(run_as_rank(lambda: _exit_code(argv)))
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args[:1]:
        _state["debug"] = True
    from netcli.core.safepath import drop_implicit_cwd
    from netcli.core.terminal import EscapingStream

    drop_implicit_cwd(module_run=False)  # plugins never come from the current folder by accident
    # Every plain print goes through the escaping stream: a name or value from a file cannot drive the terminal.
    real_stdout, sys.stdout = sys.stdout, EscapingStream(sys.stdout)
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    try:
        try:
            _launch_ranks(args)  # --nproc N: this process starts the ranks and exits with the job's code
            # With --json, usage errors (an unknown option, a bad value) come back here to be written as JSON too.
            with _only_the_command_named(args):
                code = app(args=args, prog_name="netcli", standalone_mode=not as_json)
        finally:
            sys.stdout = real_stdout
        _flush_stdout()
        if as_json and isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)  # typer.Exit(code) returns it when not standalone
    except _StdoutGone as exc:
        sys.exit(exc.code)
    except NetcliError as exc:
        if _state["debug"]:
            raise
        err = render.stderr()
        for problem in exc.problems:
            render.show_problem(err, problem)
        if as_json:
            render.json_problems(exc.problems)
        sys.exit(2)
    except KeyboardInterrupt:
        print("netcli: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        code = _stdout_error(exc)
        if code:
            sys.exit(code)
        if as_json and hasattr(exc, "format_message") and isinstance(exit_code := getattr(exc, "exit_code", None), int):
            render.usage_error(exc)  # typer's UsageError and the like, which standalone mode would have printed
            sys.exit(exit_code)
        print(
            f"netcli: internal error: {type(exc).__name__}: {exc}\n"
            "(run with --debug or NETCLI_DEBUG=1 to see the traceback; please report it)",
            file=sys.stderr,
        )
        if as_json:
            from netcli.core.errors import Problem

            render.json_problems(
                [
                    Problem(
                        f"internal error: {type(exc).__name__}: {exc}",
                        hint="run with --debug or NETCLI_DEBUG=1 to see the traceback; please report it",
                    )
                ]
            )
        sys.exit(1)


def _launch_ranks(args: list[str]) -> None:
    """With `--nproc N` (N > 1), run the command on N local ranks (netcli.app.jobs) and exit."""
    from netcli.cli.dist_options import split_nproc
    from netcli.core.errors import Location, NetcliError, Problem

    n, rest = split_nproc(args)
    if n is None or n == 1:
        return
    if os.environ.get("NETCLI_IN_JOB") or os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        raise NetcliError(
            Problem(
                "this is already a rank of a job; --nproc starts one",
                location=Location("--nproc"),
                hint="leave out --nproc under torchrun",
            )
        )
    from netcli.app.jobs import launch_ranks

    sys.exit(launch_ranks(n, rest))


class _StdoutGone(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _stdout_error(exc: BaseException) -> int:
    """The exit code for a failed write to stdout (a closed pipe, /dev/full), else 0: no traceback for those."""
    import errno

    if isinstance(exc, BrokenPipeError):
        with contextlib.suppress(OSError):  # the reader left (`| head`): say nothing more, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EIO, errno.EBADF):
        print(f"netcli: cannot write the output: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def _flush_stdout() -> None:
    """Flush now, where a failure can still be reported, not at interpreter exit."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as exc:
        code = _stdout_error(exc) if isinstance(exc, OSError) else 0
        if code:
            raise _StdoutGone(code) from exc
