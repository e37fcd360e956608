"""Errors of the run store; each message is one line naming the file and what to do."""

from __future__ import annotations


class StoreError(Exception):
    """A run directory cannot be created, opened or read; nothing on disk was changed."""


class LockError(StoreError):
    """Another live process holds the run directory's writer lock."""
