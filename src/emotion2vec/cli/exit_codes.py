"""The one mapping from outcomes to exit codes, and the one place that prints errors.

Every command runs under :func:`guarded`, so that the same error type gives the same exit code
and the same one-line message whichever command raised it:

* 0 ``EXIT_OK``: done;
* 1 ``EXIT_FAILED``: the work ran but part of it failed (some inputs could not be processed,
  training stopped on a :class:`~emotion2vec.training.trainer.TrainingError`, an exported graph
  failed its check: :class:`~emotion2vec.errors.MismatchError`);
* 2 ``EXIT_USAGE``: a usage, configuration or input error (any other
  :class:`~emotion2vec.errors.Emotion2vecError`; argparse's own errors exit 2 as well);
* 3 ``EXIT_OUTPUT``: an output could not be written (:class:`~emotion2vec.errors.OutputError`;
  what was finished is kept);
* 130 ``EXIT_INTERRUPTED``: Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..errors import Emotion2vecError, MismatchError, OutputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: The name the job commands have always used for 1.
EXIT_FAILED_INPUTS = EXIT_FAILED


def _table() -> tuple[tuple[type[BaseException], int, str], ...]:
    """(error type, exit code, how the message starts), most specific type first."""
    from ..training.trainer import TrainingError  # imported late: it pulls in the trainer

    return (
        (OutputError, EXIT_OUTPUT, "error"),
        (TrainingError, EXIT_FAILED, "training stopped"),
        (MismatchError, EXIT_FAILED, "check failed"),
        (Emotion2vecError, EXIT_USAGE, "error"),
    )


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, message prefix) of an error; raises ``exc`` again if it is not ours."""
    for kind, code, label in _table():
        if isinstance(exc, kind):
            return code, label
    raise exc


def exit_code(exc: BaseException) -> int:
    """The exit code of one of our errors (see the module docstring)."""
    return classify(exc)[0]


def guarded(command: str, run: Callable[[], int], interrupted: str = "") -> int:
    """``run()``'s exit code, or the exit code of the error it raised, printed as one line
    ``emotion2vec COMMAND: error: ...`` on stderr. ``interrupted`` is the hint shown on
    Ctrl-C (e.g. how to resume). Errors that are not ours (bugs) keep their traceback."""
    try:
        return run()
    except Emotion2vecError as exc:
        code, label = classify(exc)
        print(f"emotion2vec {command}: {label}: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        hint = f"; {interrupted}" if interrupted else ""
        print(f"emotion2vec {command}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
