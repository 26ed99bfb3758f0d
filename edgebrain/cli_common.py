"""What every part of the ``edgebrain`` command line shares: the option enums, printing a result
as text or JSON, loading a model, and turning errors into one line and an exit code."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum, IntEnum

import typer

from .errors import EdgebrainError, user_error_message


class ExitCode(IntEnum):
    """The exit status of every command, shown in ``edgebrain --help`` (:data:`EXIT_CODES_HELP`)."""

    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    NEGATIVE = 3
    PARTIAL = 4
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for a filter whose reader went away
    TERMINATED = 143  # SIGTERM, after partial outputs are removed (safeio)


_MEANING = {
    ExitCode.OK: "ok",
    ExitCode.INTERNAL: "internal error (a bug: please report it)",
    ExitCode.BAD_INPUT: "bad input or usage (one 'error:' line says what)",
    ExitCode.NEGATIVE: "the verdict is negative: devices fit says DOES NOT FIT",
    ExitCode.PARTIAL: "partial failure: a fleet deploy where some hosts failed (`deploy --fleet`)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.BROKEN_PIPE: "the reader of the output went away (e.g. '| head -1'); no message",
    ExitCode.TERMINATED: "terminated (SIGTERM)",
}
# paragraphs, not lines: typer's rich help keeps a blank-line break in every version
EXIT_CODES_HELP = "Exit codes:\n\n" + "\n\n".join(f"{int(c):>3}  {m}" for c, m in _MEANING.items())


class Precision(str, Enum):
    float = "float"
    int = "int"


class Quantize(str, Enum):
    int4 = "int4"
    int8 = "int8"
    int16 = "int16"


def echo_err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def console():
    """The rich console on stdout: wraps at a terminal's width, never when piped (see :func:`report.console`)."""
    from .report import console as make

    return make()


def show(res, json_out: bool, printer, *args, default=None) -> None:
    """``res`` as JSON with --json, else ``printer(console, *args)`` (a function of :mod:`edgebrain.report`)."""
    if json_out:
        typer.echo(json.dumps(res, indent=1, default=default))
    else:
        printer(console(), *args)


def load_model(path: str, dt=None, dialect=None, reset=None, tflite: bool | str = False):
    """The model at ``path``: a spiking model (:class:`edgebrain.model.Model`: .ebm, .nir, zoo:NAME),
    or, for a command that runs one (``tflite=True``), a TensorFlow Lite model
    (:class:`edgebrain.tflite_session.TFLiteModel`, docs/tflite.md; ``tflite="stream"``: with its sidecar,
    :func:`edgebrain.tflite_stream.stream_model`), or likewise an ONNX model (``.onnx``:
    :func:`edgebrain.apps.onnx.load_onnx`, docs/onnx.md); the other commands refuse those in one line."""
    from .onnx_io import is_onnx_file
    from .tflite_io import is_tflite_file

    if is_onnx_file(path):  # an ONNX model through ONNX Runtime, as a TFLite one (docs/onnx.md)
        from .apps.onnx import load_onnx

        return load_onnx(path, tflite, dt, dialect, reset)
    if is_tflite_file(path):
        from .errors import ModelError
        from .tflite_session import TFLiteModel

        if not tflite:
            raise ModelError("a TensorFlow Lite model; edgebrain runs those with run, stream, inspect, bench and profile "
                             "(docs/tflite.md), not with this command", file=path)
        if any(v is not None for v in (dt, dialect, reset)):
            raise ModelError("--dt, --dialect and --reset apply to NIR files; this is a TFLite model", file=path)
        if tflite == "stream":  # over windows of the stream, or stepped if stateful; with its sidecar JSON
            from .tflite_stream import stream_model

            return stream_model(path)
        return TFLiteModel.load(path)
    from .model import Model

    return Model.load(path, dt=dt, dialect=dialect, reset=reset)


class FitPrecision(str, Enum):
    auto = "auto"
    float = "float"
    int = "int"


def _click_exc(name: str) -> tuple:
    """Click's exception class ``name``: both typer's vendored copy (typer >= 0.17) and click's own."""
    out = []
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            m = __import__(mod, fromlist=[name])
        except ImportError:
            continue
        if hasattr(m, name):
            out.append(getattr(m, name))
    return tuple(out)


def _stdout_identity():
    try:
        st = os.fstat(sys.stdout.fileno())
        return st.st_dev, st.st_ino
    except (OSError, ValueError, AttributeError):
        return None


def _stdout_reader_gone(at_start) -> bool:
    """Whether stdout's reader has gone: the pipe reports an error (poll), or a library has
    already pointed stdout elsewhere (rich moves it to /dev/null; click wraps it)."""
    import select

    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    if at_start is None:
        return False
    if _stdout_identity() != at_start:
        return True
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR is always reported
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _quiet_broken_pipe():
    """Exit 141 without a word: what is left in stdout's buffer has nowhere to go, so point stdout
    at /dev/null, else the interpreter's last flush reports the same broken pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout has no file descriptor (captured by a test harness)
        pass
    sys.exit(ExitCode.BROKEN_PIPE)


def run_app(app, argv=None):
    """Run the typer ``app`` on ``argv`` and exit with an :class:`ExitCode`: a user error is one
    ``error:`` line and exit code 2."""
    stdout_at_start = _stdout_identity()
    try:
        rc = app(args=argv, standalone_mode=False)  # a typer.Exit's code, or 130 for Ctrl-C, is returned
        if rc == ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
        if isinstance(rc, int) and not isinstance(rc, bool) and rc:
            sys.exit(rc)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except SystemExit as e:  # click and rich turn a broken pipe into a bare exit 1 of their own
        if e.code == 1 and _stdout_reader_gone(stdout_at_start):
            _quiet_broken_pipe()
        raise
    except (EdgebrainError, OSError, MemoryError) as e:  # what the user can fix: one line, exit code 2
        echo_err(user_error_message(e))
        sys.exit(ExitCode.BAD_INPUT)
    except Exception as e:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if isinstance(e, _click_exc("Exit")):
            sys.exit(e.exit_code)
        if isinstance(e, _click_exc("Abort")):
            echo_err("aborted")
            sys.exit(ExitCode.INTERRUPTED)
        if isinstance(e, _click_exc("NoArgsIsHelpError")):
            help_text = e.format_message()  # (typer's rich help has already been printed)
            if help_text.strip():
                typer.echo(help_text, err=True)
            sys.exit(ExitCode.BAD_INPUT)
        if isinstance(e, _click_exc("ClickException")):  # usage errors: one line, like every other error
            msg = " ".join(e.format_message().split())
            ctx = getattr(e, "ctx", None)
            if ctx is not None:
                msg += f" (see '{ctx.command_path} --help')"
            echo_err(msg)
            sys.exit(ExitCode.BAD_INPUT)
        if os.environ.get("EDGEBRAIN_DEBUG"):
            raise
        echo_err(f"internal error ({type(e).__name__}: {e}); set EDGEBRAIN_DEBUG=1 for a traceback and "
                  "please report it")
        sys.exit(ExitCode.INTERNAL)
    except KeyboardInterrupt:
        echo_err("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
