"""The Branchline sync protocol, with no I/O.

Modules: ``hlc`` (hybrid logical clock), ``messages`` (the wire), ``merge``
(the apply decision), ``audit`` (hash-chained audit records), ``server`` and
``client`` (the two session state machines), ``replica`` (the edge's rebase),
``memory`` (reference stores).

Errors: ``messages.ProtocolError`` (a peer sent a frame we cannot decode),
``replica.LocalRejected`` (a local write refused before it was queued),
``hlc.ClockDriftError`` (a peer's clock is far ahead). Ops that are well-formed
frames but bad data are never exceptions: they are rejected with a reason in
their ``Ack``.
"""
