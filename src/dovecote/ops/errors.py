"""Refusals of the operations commands: one line for the operator, exit status 1."""

from __future__ import annotations

from dovecote.core.errors import DovecoteError


class Refused(DovecoteError):
    """The operation was not started (or was undone): the message says why and what to do."""

    code = "refused"
    default_message = "Refused."


class VerificationFailed(DovecoteError):
    """The copy was made but does not match its source; nothing was kept."""

    code = "verification_failed"
    default_message = "Verification failed."
