"""The edge: one device's local SQLite replica, its sync daemon and its CLI.

``tables`` (edge tables generated from the schema), ``migrate`` (upgrades of
older files), ``store`` (``SqliteLocalStore``, the ``LocalStore`` on SQLite),
``edge`` (``Edge``, the Python API), ``daemon`` (``sync_once``, ``run_daemon``
over websockets), ``progress`` (terminal progress bars), ``errors`` (the error
tree), ``cli`` (``branchline-edge``); store operations: ``pos``, ``inventory``,
``procurement``.
"""
