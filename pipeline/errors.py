"""One base for the errors the monitor raises on purpose.

Every module's own exception derives from :class:`EscmonError`, so a caller (the CLI,
a DAG task) can tell "bad input, settings or state, with a message for the user"
from a bug with one ``except``. The message names what was wrong and how to fix it.
Each subclass also derives from the built-in type it refines (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so older ``except`` clauses keep working.
"""

from __future__ import annotations


class EscmonError(Exception):
    """An error with a message meant for the user: printed as one ``Error:`` line."""
