"""The application object, the one error handler, and the helpers every command module shares."""

from __future__ import annotations

import sys
import warnings

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

# Errors that describe a bad input, a missing file or a refused operation: the library raises them with a message
# that names the input and what was expected, so the user gets that line and nothing else. Anything else (a
# TypeError, an IndexError) is a bug in mvtrack and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, MemoryError, ImportError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# click's UsageError (bad options, typer.BadParameter), as typer re-exports it (typer vendors click)
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {_one_line(message)}", err=True)


class _Commands(TyperGroup):
    """The one place where the project's errors become ``error: <message>`` on stderr and exit code 2."""

    def invoke(self, ctx: typer.Context):
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # library warnings as one line each, without source lines
            try:
                return super().invoke(ctx)
            except _UsageError as e:  # bad options, and typer.BadParameter raised by command bodies
                hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
                message = _one_line(e.format_message()) + hint
            except USER_ERRORS as e:
                if isinstance(e, OSError) and getattr(e, "errno", None) == 32:  # broken pipe: the reader left
                    raise
                message = _one_line(str(e)) or type(e).__name__
                if isinstance(e, MemoryError):
                    message = f"out of memory{': ' + message if message != 'MemoryError' else ''}"
        typer.echo(f"error: {message}", err=True)
        sys.stderr.flush()
        raise typer.Exit(2)


app = typer.Typer(
    help="mvtrack: 4D-consistent camera-controlled multi-view video generation supervised by point tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)
console = Console(stderr=True)

DEVICE_HELP = "Where to sample: auto (CUDA when present, else the CPU), cpu, cuda or cuda:N."
DTYPE_HELP = ("Weights' precision: auto (bfloat16 on CUDA, float32 on the CPU), float32, bfloat16 or float16 (Wan's "
              "float32 modules and the VAE stay float32).")
MODEL_HELP = "Model directory or preset (default: the embedded weights/mvtrack-S of a source checkout)."

# Options that several commands take, defined once (typer reads a shared default object for each command)
DEVICE = typer.Option("auto", help=DEVICE_HELP)
DTYPE = typer.Option("auto", help=DTYPE_HELP)
MODEL = typer.Option(None, help=MODEL_HELP)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


def tasks(progress: Progress):
    """The library's ``progress(description, total) -> advance()`` on a rich progress bar; a new task ends the
    open ones whose total is unknown (a phase without steps, e.g. "source geometry")."""
    def start(description: str, total: int | None):
        for t in progress.tasks:
            if t.total is None and not t.finished:
                progress.remove_task(t.id)
        task = progress.add_task(description, total=total)
        return lambda *_: progress.advance(task)

    return start


# Ranges of the numbers typed on the command line (docs/reliability.md): seeds are 32-bit, as numpy's; steps and
# frame rates what sampling and video players use.
MAX_SEED = 2**32 - 1
MAX_STEPS = 1000
MAX_FPS = 240


def parse_size(text: str) -> tuple[int, int]:
    """``128`` or ``96x128`` (H x W) to (H, W); raises ``typer.BadParameter`` on anything else."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise typer.BadParameter(
            f"expected N or HxW with positive integers, got {text!r}", param_hint="--size"
        ) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise typer.BadParameter(f"expected N or HxW with positive integers, got {text!r}", param_hint="--size")
    return parts[0], parts[1]


def device_dtype(device: str, dtype: str):
    """``(torch.device, torch.dtype)`` of --device / --dtype (a ``ValueError`` naming the option otherwise)."""
    from mvtrack.devices import resolve_device, resolve_dtype

    where = resolve_device(device)
    return where, resolve_dtype(dtype, where)


def load_pipeline(model: str, device: str = "auto", dtype: str = "auto"):
    """``mvtrack.load_pipeline`` with its errors about the model directory pinned to --model."""
    from mvtrack.api import load_pipeline as load

    device_dtype(device, dtype)  # --device / --dtype first: their errors name them
    try:
        return load(model, device, dtype)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None


def print_summary(rows: dict[str, dict], title: str) -> None:
    """One table row per evaluated method: ``rows[name] = summary``."""
    from rich.table import Table

    from mvtrack.runners.report import summary_rows

    header, body = summary_rows(rows)
    table = Table(title=title)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    console.print(table)


def report_skipped(skipped: list[dict]) -> None:
    for x in skipped:
        console.print(f"[yellow]skipped[/] {x['clip']} view {x['view']}: {x['reason']}")
