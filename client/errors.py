"""The edge's errors, in one tree; ``client.cli`` turns them into messages and exit codes.

* ``EdgeError`` -- something about this device's own database:
    * ``NotConfigured`` -- no device, site or server yet (run ``init``);
    * ``BelongsElsewhere`` -- ``init`` on a file set up for another device or site;
    * ``DatabaseTooNew`` -- the file was written by a newer edge version;
    * ``NeedsUpgrade`` -- a read-only open of a file an older version wrote;
    * ``LocalDatabaseError`` -- the file cannot be written or read (disk full,
      read-only medium): the daemon stops;
    * ``UnknownName`` -- an entity or field the schema does not declare
      (also a ``KeyError``).
* ``SyncError`` -- talking to HQ failed:
    * ``Unreachable`` -- no connection, or it broke; retrying later helps;
        * ``TakenOver`` -- HQ closed it: another connection of this device
          took over (a cloned till?); retrying soon would only take it back;
    * ``Refused`` -- HQ refused this device for good (bad or revoked token,
      wrong site, unsupported version); retrying does not help, HQ must act.

``sync.replica.LocalRejected`` (a write the server would refuse, nothing
written) passes through the edge API unchanged.
"""

from __future__ import annotations


class EdgeError(Exception):
    """A problem with this device's local database."""


class NotConfigured(EdgeError):
    """The edge database has not been initialised with a device and a site."""


class BelongsElsewhere(EdgeError):
    """``init`` for a device or site other than the one the file was set up for."""


class BadArgument(EdgeError):
    """A command's argument the edge cannot read (``put`` without ``field=value``)."""


class LocalDatabaseError(EdgeError):
    """The local database cannot be written (read-only, disk full, corrupt):
    the daemon stops rather than reconnect to HQ again and again."""


class NeedsUpgrade(EdgeError):
    """A read-only open found a file an older edge version wrote: it must be
    brought up to date, which writes."""


class AlreadyRunning(EdgeError):
    """A daemon already syncs this database file."""


class DatabaseTooNew(EdgeError):
    """The database was written by a newer version of the edge software."""


class UnknownName(EdgeError, KeyError):
    """An entity or field name the schema does not declare."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SyncError(Exception):
    """Syncing with HQ did not succeed."""


class Unreachable(SyncError):
    """The server could not be reached, or the connection dropped."""


class TakenOver(Unreachable):
    """HQ closed the connection because another connection of this device took
    over: HQ serves one per device, the newest."""


class Refused(SyncError):
    """The server refused this device for good; ``code`` is its close code or error code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code
