"""JSON request bodies are decoded strictly: each value must have the JSON
type its field declares. A price sent as the string ``"12"``, a flag as
``"true"``, a quantity as ``3.0`` is a 400 naming the field and the type
expected, as a client bug should be; nothing is converted behind its back.

Litestar reads a handler's ``data`` as plain JSON and then converts it, with
the handler's other arguments, in lax mode (``msgspec.convert(...,
strict=False)`` in ``litestar._signature.model``): right for query and path
parameters, which arrive as text (``?limit=50``), but it also took ``"12"``
for the integer 12 in a body. The app's request class (``StrictJsonRequest``)
checks the body against the type of ``data`` in strict mode when Litestar
reads it, so the lax conversion that follows only ever sees a body that is
right as sent; query parameters are untouched.

The 400 has the shape of Litestar's own (``detail`` "Validation failed for
POST /path", ``extra``: ``message``, ``key``, ``source: body``), which the HQ
API's ``hq_api.explain`` completes for amounts.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import Empty

AT = re.compile(r"^(?P<message>.*) - at `\$(?:\.(?P<key>.+))?`$")
"""msgspec's message: what was wrong, then where (``$.lines[0].qty``)."""


def body_type(request: Request[Any, Any, Any]) -> Any:
    """The declared type of the handler's ``data`` (``Empty``: it takes no body)."""
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    return Empty if field is None or field.is_any else field.annotation


def body_error(request: Request[Any, Any, Any], exc: msgspec.ValidationError
               ) -> ValidationException:
    """A 400 saying which field of the body is wrong and what it should be."""
    found = AT.match(str(exc))
    item: dict[str, str] = {"message": found["message"] if found else str(exc),
                            "source": "body"}
    if found and found["key"]:
        item["key"] = found["key"]
    return ValidationException(f"Validation failed for {request.method} {request.url.path}",
                               extra=[item])


class StrictJsonRequest(Request[Any, Any, Any]):
    """A request whose JSON body must match the handler's body type as sent."""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError:
            raise ValidationException(
                f"Validation failed for {self.method} {self.url.path}: the JSON body nests "
                "deeper than any request of this API; nothing was done") from None
        target = body_type(self)
        if target is not Empty:
            try:
                msgspec.convert(value, target, strict=True)
            except msgspec.ValidationError as exc:
                raise body_error(self, exc) from exc
        return value
