"""Errors a user can act on. Each carries a short machine code (used in OSC error replies)
and a one-line message that names the problem."""

from __future__ import annotations


class DarcError(Exception):
    """Base class: a problem with the user's input, files or settings, shown as one line."""

    code = "error"


class InputError(DarcError):
    """Bad input: missing, unreadable, corrupt, silent, too long or otherwise unusable."""

    code = "bad_input"


class OutputError(DarcError):
    """The output cannot be written where asked (missing or read-only folder, existing file)."""

    code = "bad_output"


class CheckpointError(DarcError):
    """A model checkpoint is missing, corrupt or does not match this version."""

    code = "bad_checkpoint"


class Cancelled(DarcError):
    """The job was cancelled by the user; nothing was written."""

    code = "cancelled"
