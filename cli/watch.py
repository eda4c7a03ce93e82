"""`--watch` on `jobyard jobs` and `jobyard workers`: the listing redrawn in place every few
seconds until Ctrl-C, like `watch kubectl get pods`. An API that stops answering shows its
error in the frame, and the next frame tries again."""

import time
from collections.abc import Callable

import click

WATCH_OPTION = click.option(
    "-w", "--watch", "watch_s", type=click.FloatRange(min=0.2), default=None, is_flag=False,
    flag_value=2.0, metavar="[SECONDS]",
    help="Redraw every SECONDS (2 when only --watch is given) until Ctrl-C.",
)  # fmt: skip


def watch(frame: Callable[[], str], every_s: float, title: str) -> None:
    from shared.client import ApiError

    try:
        while True:
            try:
                text = frame()
            except ApiError as exc:
                text = f"error: {exc.message}"
            click.clear()  # nothing when stdout is not a terminal: frames follow each other
            click.echo(f"{title}  every {every_s:g} s  {time.strftime('%H:%M:%S')}\n\n{text}")
            time.sleep(every_s)  # the redraw interval asked for
    except KeyboardInterrupt:
        return
