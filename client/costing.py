"""Moving-average cost at the edge, from the movements this device holds.

Every movement carries the unit cost it moved at (goods in at what they cost,
goods out at the average when they left), so the stock value of (site,
product) is the sum of qty x unit cost and the average is value / on hand --
the same figures HQ's valuation report computes (``schema.finance``). A
movement without a cost (an opening balance typed in, or one made by an older
till) counts at the product's standard cost, as HQ counts it.

The sums come from the stock cache (``stock_on_hand``, kept by triggers in
the transaction of every movement, see ``client.tables``): on hand, the value
of the movements with a cost, and the quantity of those without. So a sale
line costs one primary-key lookup, however many movements the product has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schema.finance import average_cost

from .edge import Edge

_SUMS = ("SELECT qty, costed_value + uncosted_qty * ? FROM stock_on_hand "
         "WHERE site = ? AND product_id = ?")


@dataclass(frozen=True)
class Valuation:
    on_hand: int
    value: int
    """Sum of qty x unit cost of the movements."""
    average: int
    """Moving-average unit cost (the standard cost when there is nothing to average)."""


def standard_cost(product: dict[str, Any] | None) -> int:
    return int((product or {}).get("cost") or 0)


def valuation(edge: Edge, site: str, product: dict[str, Any]) -> Valuation:
    """Stock value and moving-average cost of ``product`` at ``site``, now."""
    standard = standard_cost(product)
    on_hand, value = edge.conn.execute(_SUMS, (standard, site, product["id"])).fetchone() or (0, 0)
    return Valuation(int(on_hand), int(value), average_cost(int(on_hand), int(value), standard))


def unit_cost(edge: Edge, site: str, product: dict[str, Any]) -> int:
    """The moving-average unit cost goods of ``product`` leave ``site`` at."""
    return valuation(edge, site, product).average
