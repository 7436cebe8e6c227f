"""The grammar of ``branchline-edge``: its commands, their arguments and
help texts, and the exit codes it promises (``client.cli`` runs them)."""

from __future__ import annotations

import argparse
import math
import os

from .store import KEEP_SENT_DAYS


def _seconds(text: str) -> float:
    """A number of seconds greater than 0 (argparse type): 0, negatives, nan and
    inf are bad input, refused by argparse with exit code 2."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds greater than 0, "
                                         f"got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="branchline-edge",
        description="A Branchline edge device (till, back office, warehouse handheld). "
                    "Works offline.",
        epilog="exit codes: 0 done, 1 no such row (get), 2 not set up or bad input, "
               "3 refused on this device, 4 refused by HQ, 5 HQ unreachable, "
               "6 syncing stopped on a local fault (status: disk full, read-only)")
    p.add_argument("--db", default=os.environ.get("BRANCHLINE_EDGE_DB", "edge.db"),
                   help="the device's SQLite file (env BRANCHLINE_EDGE_DB; default edge.db)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", help="set up this device: server, device id, site, token")
    init.add_argument("--server", required=True, help="sync URL, e.g. ws://hq:8000/sync")
    init.add_argument("--device", required=True, help="device id the token was issued to")
    init.add_argument("--site", required=True, help="site code of this device, e.g. S1")
    init.add_argument("--token", required=True, help="device token from `branchline device add`")
    init.add_argument("--force", action="store_true",
                      help="take over a file set up for another device or site (only with no "
                           "ops left to send; the next sync loads this site's rows again)")
    sync = sub.add_parser("sync", help="sync once: push the outbox, pull changes, then exit "
                                       "(exit code 5 if the server cannot be reached); while "
                                       "a daemon syncs this file, wait for it to send the "
                                       "outbox instead")
    sync.add_argument("--timeout", type=_seconds, default=300, help="give up after this many s")
    daemon = sub.add_parser("daemon", help="stay connected and sync continuously "
                                           "(SIGINT or SIGTERM stops it cleanly)")
    rejoin = sub.add_parser(
        "rejoin", help="after HQ was restored from an older backup and refused this device "
                       "(diverged): send HQ again what it acknowledged in the last "
                       f"{KEEP_SENT_DAYS} days, reload HQ's rows, and sync")
    rejoin.add_argument("--timeout", type=_seconds, default=300, help="give up after this many s")
    rejoin.add_argument("--force", action="store_true",
                        help="rejoin although HQ's last answer was not a refusal as diverged")
    for command in (sync, daemon, rejoin):
        command.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                             help="draw progress bars while bootstrapping or pushing a large "
                                  "backlog (default: only when stderr is a terminal)")
    status = sub.add_parser("status", help="last sync, pending ops, cursor, rejections, "
                                           "server reachable, daemon running (exit code 4 "
                                           "if HQ refused this device at its last sync, 6 "
                                           "if syncing stopped on a local fault)")
    status.add_argument("--timeout", type=_seconds, default=2,
                        help="seconds to wait for the server when checking it is reachable")
    put = sub.add_parser("put", help="write fields of a row (works offline)")
    put.add_argument("entity", help="entity name, e.g. customer")
    put.add_argument("key", help="row key (a UUID)")
    put.add_argument("fields", nargs="*", help="field=value pairs; values are JSON if they parse")
    put.add_argument("--user", default="clerk", help="user making the change")
    delete = sub.add_parser("delete", help="delete a row (works offline)")
    delete.add_argument("entity", help="entity name, e.g. customer")
    delete.add_argument("key", help="row key (a UUID)")
    delete.add_argument("--user", default="clerk", help="user making the change")
    get = sub.add_parser("get", help="show one row as this device sees it (exit code 1 if "
                                     "there is none)")
    get.add_argument("entity", help="entity name")
    get.add_argument("key", help="row key")
    sell = sub.add_parser("sell", help="ring up a sale (works offline)")
    sell.add_argument("lines", nargs="+", help="CODE:QTY or CODE:QTY:DISCOUNT; CODE is a SKU or "
                                               "barcode, DISCOUNT an amount such as 0.50")
    sell.add_argument("--cash", default="0", help="cash tendered, e.g. 20.00 (change is given)")
    sell.add_argument("--card", default="0", help="amount paid by card")
    sell.add_argument("--on-account", default="0", help="amount charged to --customer")
    sell.add_argument("--customer", default=None, help="customer id (UUID)")
    sell.add_argument("--cashier", default="cashier", help="user at the till")
    ret = sub.add_parser("return", help="take goods back against an earlier receipt")
    ret.add_argument("receipt", help="receipt number of the sale, e.g. S1-till1-000042")
    ret.add_argument("lines", nargs="+", help="CODE:QTY to take back")
    ret.add_argument("--card", default="0", help="refund this much to the card, rest in cash")
    exch = sub.add_parser("exchange", help="take goods back against a receipt and sell others "
                                           "in their place (one document group)")
    exch.add_argument("receipt", help="receipt number of the sale, e.g. S1-till1-000042")
    exch.add_argument("--back", nargs="+", required=True, metavar="CODE:QTY",
                      help="what the customer brings back")
    exch.add_argument("--take", nargs="+", required=True, metavar="CODE:QTY[:DISCOUNT]",
                      help="what the customer takes instead")
    exch.add_argument("--cash", default="0", help="cash tendered for a difference due")
    exch.add_argument("--card", default="0", help="card pays (or is refunded) this much of "
                                                 "the difference")
    exch.add_argument("--cashier", default="cashier", help="user at the till")
    pay = sub.add_parser("pay", help="a customer pays into the account (works offline)")
    pay.add_argument("customer", help="customer id (UUID)")
    pay.add_argument("--cash", default="0", help="amount paid in cash, e.g. 25.00")
    pay.add_argument("--card", default="0", help="amount paid by card")
    pay.add_argument("--cashier", default="cashier", help="user at the till")
    account = sub.add_parser("account", help="a customer's statement: charges, returns, "
                                             "payments and the balance")
    account.add_argument("customer", help="customer id (UUID)")
    sub.add_parser("exceptions", help="open stock exceptions of this site (stock below zero, "
                                      "for HQ to resolve)")
    stock = sub.add_parser("stock", help="on hand at this site for a SKU or barcode")
    stock.add_argument("code", help="SKU or barcode")
    check = sub.add_parser("check-stock", help="compare the on-hand cache with the movement "
                           "ledger (exit 1 if they differ); --rebuild recomputes the cache")
    check.add_argument("--rebuild", action="store_true", help="recompute the cache from the ledger")
    sub.add_parser("trial-balance", help="journal totals per account held on this device")
    day = sub.add_parser("day", help="the store's day per till at closing time: receipts, "
                                     "returns, net, tax, cash, card, account, and the cash "
                                     "each drawer should hold (works offline)")
    day.add_argument("--date", default=None, help="the day, yyyy-mm-dd (default: today)")
    count = sub.add_parser("count", help="record a stock count; the difference is posted")
    count.add_argument("code", help="SKU or barcode")
    count.add_argument("counted", type=int, help="units counted on the shelf")
    ship = sub.add_parser("ship", help="ship goods to another site (a transfer)")
    ship.add_argument("code", help="SKU or barcode")
    ship.add_argument("qty", type=int, help="units shipped")
    ship.add_argument("--to", required=True, help="receiving site code")
    recv = sub.add_parser("receive", help="receive a transfer, possibly short")
    recv.add_argument("transfer", help="transfer id")
    recv.add_argument("qty", type=int, help="units actually received")
    sub.add_parser("in-transit", help="transfers from or to this site still on the road")
    ticket = sub.add_parser("ticket", help="customer service: open a ticket, move it on")
    tsub = ticket.add_subparsers(dest="ticket_action", required=True, metavar="ACTION")
    topen = tsub.add_parser("open", help="open a return or complaint ticket")
    topen.add_argument("--kind", choices=["return", "complaint"], required=True,
                       help="return or complaint")
    topen.add_argument("--receipt", default=None, help="receipt number of the sale, if any")
    topen.add_argument("text", help="what the customer said")
    tmove = tsub.add_parser("move", help="move a ticket to in_progress or closed")
    tmove.add_argument("ticket", help="ticket id")
    tmove.add_argument("status", choices=["in_progress", "closed"], help="new status")
    po = sub.add_parser("po", help="purchase orders: create, approve, cancel, receive")
    posub = po.add_subparsers(dest="po_action", required=True, metavar="ACTION")
    create = posub.add_parser("create", help="a draft order (buyers, at HQ)")
    create.add_argument("--site", required=True, help="site the goods are delivered to")
    create.add_argument("--supplier", required=True, help="supplier name")
    create.add_argument("lines", nargs="+", help="CODE:QTY:UNIT_COST, e.g. OAT-1:100:1.20")
    for name, text in (("approve", "approve (twice, by two people, above the limit; not by "
                                   "its drafter)"),
                       ("cancel", "cancel the order")):
        act = posub.add_parser(name, help=text)
        act.add_argument("po", help="purchase order id")
    rcv = posub.add_parser("receive", help="receive goods against an order at this site")
    rcv.add_argument("po", help="purchase order id")
    rcv.add_argument("lines", nargs="+", help="CODE:QTY received")
    back = posub.add_parser("return", help="send goods back to a supplier")
    back.add_argument("code", help="SKU or barcode")
    back.add_argument("qty", type=int, help="units sent back")
    back.add_argument("--supplier", required=True, help="supplier name")
    back.add_argument("--reason", required=True, help="why (damaged, wrong item, ...)")
    back.add_argument("--po", default=None, help="the purchase order they came on")
    for action in (create, rcv, back, *[posub.choices[n] for n in ("approve", "cancel")]):
        action.add_argument("--user", default="clerk", help="user making the change")
    sub.add_parser("pending", help="list ops waiting to be pushed")
    sub.add_parser("rejections", help="list ops HQ refused, with the reason")
    return p
