"""Errors a user can act on.

Each one carries a single line that names the input, says what was wrong and what to do.
The CLI prints them without a traceback and exits non-zero; inside a pipeline task they end
the task with that same line as the last line of its log.
"""

from __future__ import annotations


class SigdeployError(Exception):
    """Base class: an error whose message is meant for the user, one line."""

    exit_code = 2


class DataError(SigdeployError):
    """The input data cannot be used (missing, unreadable, or fails validation)."""


class ConfigError(SigdeployError):
    """A parameter or option has a value that cannot work."""


class RegistryError(SigdeployError):
    """The model registry or the champion in it cannot be used."""


class SchemaMismatchError(RegistryError):
    """The champion was trained on different features than the data now has."""


class ChampionMovedError(RegistryError):
    """Promotion refused: the champion is no longer the version the decision was made
    against (another deploy or a rollback came in between), so the decision no longer holds.
    Nothing was promoted and the history says why. ``reason``: that why, for the history;
    ``against`` / ``current``: the champion version then and now (None: no champion)."""

    def __init__(
        self, message: str, *, reason: str, against: str | None, current: str | None
    ) -> None:
        super().__init__(message)
        self.reason, self.against, self.current = reason, against, current


def did_you_mean(name: str, known: object) -> str:
    """' (did you mean X?)' when ``name`` is a near miss of one of ``known``, else ''.

    A difference of case alone always counts ('Churn' -> 'churn').
    """
    import difflib

    candidates = [str(k) for k in known]  # type: ignore[attr-defined]
    lowered = {k.lower(): k for k in candidates}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f" (did you mean {lowered[name.lower()]}?)"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
