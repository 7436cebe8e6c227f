"""The retail entities of Branchline at the current schema version.

Every policy of ``schema.model.Policy`` is exercised here:

============== ==========================================================
entity          policies
============== ==========================================================
site            hq-owned (master data, only HQ creates or edits)
product         price/sku/name hq-owned; description lww
stock_movement  ledger (append-only; on hand is the sum of movements)
customer        lww (name, phone, email); credit_limit manual
purchase_order  state machine draft -> approved -> received, cancel
transfer        state machine shipped -> received; named scope (both ends)
account         hq-owned chart of accounts (``schema.finance``)
journal_line    ledger: the double-entry journal (``schema.finance``)
sale, sale_line ledger: till receipts and their lines (``schema.sales``)
ticket          state machine open -> in_progress -> closed (customer service)
price_change    hq-owned ledger: a price from an effective date (``schema.sales``)
stock_count     ledger: physical counts (``schema.inventory``)
discrepancy     ledger: transfers received short; named scope (``schema.inventory``)
stock_exception state machine open -> resolved: stock driven below zero, raised by
                the server, resolved by HQ operations (``schema.inventory``)
customer_payment ledger: money a customer pays into the account at a till
customer_entry  ledger, every site: the customers' receivable sub-ledger (charges on
                account and payments), so any till knows a balance (``schema.sales``)
employee        hq-owned: users, departments, roles (``schema.people``)
supplier, ...   procurement: suppliers, reorder rules, PO lines, goods receipts,
                purchase suggestions (``schema.procurement``)
============== ==========================================================
"""

from __future__ import annotations

from .finance import ACCOUNT, JOURNAL_LINE
from .inventory import DISCREPANCY, STOCK_COUNT, STOCK_EXCEPTION
from .model import (
    MAX_LEDGER_MONEY,
    MAX_MONEY,
    Entity,
    Field,
    Kind,
    Policy,
    ProductBound,
    Rollup,
    Schema,
    Scope,
    StateMachine,
    Transition,
    Who,
)
from .people import EMPLOYEE
from .procurement import (
    GOODS_RECEIPT,
    PO_LINE,
    PURCHASE_SUGGESTION,
    REORDER_RULE,
    SUPPLIER,
    SUPPLIER_RETURN,
)
from .sales import (
    CUSTOMER_ENTRY,
    CUSTOMER_PAYMENT,
    PRICE_CHANGE,
    SALE,
    SALE_LINE,
    TICKET,
)

MAX_MOVED = 10**9
"""Most units one stock movement moves, either way. Its unit cost goes up to
``MAX_MONEY`` like a product's cost, and its value (qty x unit cost) up to
``MAX_LEDGER_MONEY``: HQ's and the edge's 64-bit stock value sums hold
thousands of even the largest movements."""

L, W, H, S, M = Policy.LEDGER, Policy.LWW, Policy.HQ_OWNED, Policy.STATE, Policy.MANUAL

SITE = Entity(
    "site",
    fields=(
        Field("code", Kind.REF, H, doc="short site id used in scopes, e.g. S1"),
        Field("name", Kind.TEXT, H),
        Field("kind", Kind.TEXT, H, doc="hq, store, warehouse or transit",
              choices=("hq", "store", "warehouse", "transit")),
    ),
    owner_hq=True,
    doc="A place that holds stock: HQ, a store, a branch warehouse.",
)

PRODUCT = Entity(
    "product",
    fields=(
        Field("sku", Kind.TEXT, H),
        Field("name", Kind.TEXT, H),
        Field("price", Kind.MONEY, H, doc="selling price in minor units", minimum=0),
        Field("description", Kind.TEXT, W, required=False),
        Field("barcode", Kind.TEXT, H, required=False),
        Field("category", Kind.TEXT, H, required=False),
        Field("unit", Kind.TEXT, H, required=False, doc="each, kg, l, ..."),
        Field("cost", Kind.MONEY, H, required=False, doc="standard unit cost", minimum=0),
        Field("tax_rate", Kind.INT, H, required=False, doc="basis points: 2000 = 20%",
              minimum=0, maximum=10_000),
    ),
    owner_hq=True,
    deletable=False,
    doc="The catalog: HQ sets prices; any site may improve the description.",
)

STOCK_MOVEMENT = Entity(
    "stock_movement",
    fields=(
        Field("site", Kind.REF, L),
        Field("product_id", Kind.UUID, L),
        Field("qty", Kind.INT, L, doc="signed: receipts positive, sales negative", nonzero=True,
              minimum=-MAX_MOVED, maximum=MAX_MOVED),
        Field("reason", Kind.TEXT, L, doc="receipt, sale, return, transfer_out, ..."),
        Field("unit_cost", Kind.MONEY, L, required=False, minimum=0, maximum=MAX_MONEY,
              doc="unit cost the goods moved at: purchase cost coming in, the moving "
                  "average going out; stock value is the sum of qty x unit_cost"),
        Field("document_id", Kind.UUID, L, required=False,
              doc="the document that moved it: a sale, a transfer, a count, ..."),
    ),
    scope=Scope.OWNER,
    site_field="site",
    deletable=False,
    bounded_products=(ProductBound(("qty", "unit_cost"), MAX_LEDGER_MONEY),),
    doc="One movement of stock; on hand at (site, product) is their sum.",
)

CUSTOMER = Entity(
    "customer",
    fields=(
        Field("name", Kind.TEXT, W),
        Field("phone", Kind.TEXT, W, required=False),
        Field("email", Kind.TEXT, W, required=False),
        Field("credit_limit", Kind.MONEY, M, required=False, minimum=0,
              doc="concurrent edits go to the conflict queue for finance"),
    ),
    doc="A customer account shared by every store.",
)

SECOND_APPROVAL_ABOVE = 500_000
"""Purchase orders over this total (minor units) need two approvers."""

PO_MACHINE = StateMachine(
    field="status",
    initial="draft",
    transitions=(
        Transition("draft", "approved", Who.HQ, at_most=("total", SECOND_APPROVAL_ABOVE),
                   records="approved_by", not_by_creator=True, checks_rollup=True),
        Transition("draft", "first_approved", Who.HQ, records="approved_by",
                   not_by_creator=True, checks_rollup=True),
        Transition("first_approved", "approved", Who.HQ, not_by="approved_by",
                   not_by_creator=True, checks_rollup=True),
        Transition("approved", "partially_received"),
        Transition("approved", "received"),
        Transition("partially_received", "received"),
        Transition("draft", "cancelled"),
        Transition("first_approved", "cancelled", Who.HQ),
        Transition("approved", "cancelled", Who.HQ),
    ),
    editable_in=("draft",),  # an approved order is what was approved
)
"""Approvals are HQ's, by someone other than the order's drafter, of an order
whose total is the sum of the lines HQ holds; above ``SECOND_APPROVAL_ABOVE``
by two different people."""

PURCHASE_ORDER = Entity(
    "purchase_order",
    fields=(
        Field("site", Kind.REF, W, doc="receiving site; fixed once created"),
        Field("supplier", Kind.TEXT, W),
        Field("total", Kind.MONEY, H, required=False, minimum=0,
              doc="the sum of its lines (qty x unit_cost), worked out by HQ from the "
                  "lines it holds; 0 while it has none"),
        Field("status", Kind.TEXT, S),
        Field("supplier_id", Kind.UUID, W, required=False),
        Field("approved_by", Kind.TEXT, W, required=False,
              doc="the first approver, recorded by the approval move only"),
        Field("drafted_by", Kind.TEXT, W, required=False,
              doc="the user who made the order, recorded by its create only; never "
                  "its approver"),
    ),
    scope=Scope.OWNER,
    site_field="site",
    machine=PO_MACHINE,
    deletable=False,
    creator_field="drafted_by",
    rollup=Rollup("total", child="po_line", link="po_id", factors=("qty", "unit_cost")),
    doc="An order to a supplier, received at one site.",
)

TRANSFER = Entity(
    "transfer",
    fields=(
        Field("from_site", Kind.REF, W),
        Field("to_site", Kind.REF, W),
        Field("product_id", Kind.UUID, W),
        Field("qty", Kind.INT, W, minimum=1),
        Field("status", Kind.TEXT, S),
        Field("qty_received", Kind.INT, W, required=False, doc="set by the receiving site",
              minimum=0),
        Field("unit_cost", Kind.MONEY, W, required=False, minimum=0,
              doc="the sender's moving-average cost; the receiver takes the goods in at it"),
    ),
    scope=Scope.NAMED,
    scope_fields=("from_site", "to_site"),
    distinct=("from_site", "to_site"),
    machine=StateMachine(
        field="status",
        initial="shipped",
        transitions=(
            Transition("shipped", "received", by_field="to_site", sets=("qty_received",)),
            Transition("shipped", "cancelled", Who.HQ),
        ),
        editable_in=(),  # what was shipped stays as shipped; the receiver counts it in
    ),
    created_by_field="from_site",  # the sender ships; nobody draws goods on another site
    deletable=False,
    doc="Goods moving between two sites; both ends see it.",
)

SCHEMA = Schema(
    version=2,  # 2: stock_exception, customer_payment, customer_entry; movement documents
    entities=(SITE, PRODUCT, STOCK_MOVEMENT, CUSTOMER, PURCHASE_ORDER, TRANSFER,
              ACCOUNT, JOURNAL_LINE, SALE, SALE_LINE, STOCK_COUNT, DISCREPANCY, EMPLOYEE,
              SUPPLIER, REORDER_RULE, PO_LINE, GOODS_RECEIPT, PURCHASE_SUGGESTION, TICKET,
              PRICE_CHANGE, SUPPLIER_RETURN, STOCK_EXCEPTION, CUSTOMER_PAYMENT, CUSTOMER_ENTRY),
)
