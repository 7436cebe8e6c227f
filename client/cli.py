"""``branchline-edge``: a store's or warehouse's device, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import signal
import sqlite3
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from schema.finance import format_money
from sync.ids import new_id
from sync.replica import LocalRejected

from .accounts import Accounts
from .daemon import daemon_state, probe, run_daemon, sync_once
from .day_report import all_tills, day_report
from .disk import disk_trouble
from .edge import Edge, now_ms
from .errors import BadArgument, EdgeError, LocalDatabaseError, Refused, TakenOver, Unreachable
from .inventory import Inventory
from .pos import LineIn, Pos, PosError, parse_money, trial_balance
from .procurement import OrderLine, Procurement
from .progress import rich_progress
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


def _rejoin(edge: Edge, args: argparse.Namespace) -> int:
    status = edge.status()
    if status.rejoining:
        print("a rejoin is under way: loading HQ's rows again")
    elif "diverged" in (status.refused or "") or args.force:
        again, oldest = edge.rejoin()
        kept = (f"queued again {again} ops HQ acknowledged since {_when(oldest)}" if again
                else "no acknowledged ops were kept to send again")
        print(f"{kept}; loading HQ's rows again")
    else:
        print("HQ has not refused this device as diverged (restored from an older backup); "
              "nothing to rejoin. `--force` rejoins anyway", file=sys.stderr)
        return 2
    with rich_progress(args.progress) as progress:
        result = asyncio.run(sync_once(edge, timeout=args.timeout, progress=progress))
    print(f"pushed {result.pushed} ops ({result.rejected} rejected), received "
          f"{result.snapshot_rows} rows by snapshot, {result.pending} pending, "
          f"cursor {result.cursor}, {result.seconds:.2f} s")
    return 0


def _sync_by_daemon(edge: Edge, note: str, timeout: float) -> int:
    """`sync` while a daemon syncs this till: a second connection of the
    device would take over from the daemon's (HQ serves one per device) and
    send it into its long wait, so wait for the daemon to send what is
    queued instead."""
    daemon = note.split(" since ")[0].removeprefix("running ")
    deadline = time.monotonic() + timeout
    while (left := edge.store.pending_count()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        print(f"the daemon ({daemon}) syncs this till; {left} ops still wait to be sent "
              f"after {timeout:g} s (`status` says why)", file=sys.stderr)
        return 5
    print(f"the daemon ({daemon}) syncs this till: everything queued here was sent and "
          "answered")
    return 0


def _day(edge: Edge, date: str | None) -> int:
    """The store's day per till, as this device holds it, and whether HQ has
    all of this device's part of it."""
    day = date or dt.date.today().isoformat()
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        raise BadArgument(f"--date must be a day yyyy-mm-dd, got {day!r}") from None
    s = edge.status()
    tills = day_report(edge.conn, s.site, day)
    print(f"{s.site} on {day}, as this device ({s.device}) holds it")
    if not tills:
        print("no receipts and no account payments")
    else:
        print("till\treceipts\treturns\tnet\ttax\ttotal\tcash\tcard\ton account"
              "\tpaid in cash\tpaid in card\tcash in drawer")
        for t in [*tills, *([all_tills(tills)] if len(tills) > 1 else [])]:
            print("\t".join([t.till, str(t.receipts), str(t.returns), *map(_money, (
                t.net, t.tax, t.total, t.cash, t.card, t.on_account, t.paid_cash, t.paid_card,
                t.drawer))]))
    others = (f"the other tills' as of the last sync, {_when(s.last_sync_ms)}"
              if s.last_sync_ms else "the other tills' as far as this device has synced")
    if s.pending:
        print(f"not at HQ yet: {s.pending} ops of this device (run `sync`); {others}")
    else:
        print(f"this device's part is at HQ; {others}")
    return 0


def _status(edge: Edge, timeout: float) -> int:
    s = edge.status()
    why = asyncio.run(probe(s.server, timeout))
    if s.bootstrapped:
        snapshot = "yes" + (f" ({s.snapshot_rows} rows)" if s.snapshot_rows else "")
    elif s.snapshot_started:
        stored = f"{s.snapshot_rows} rows" if s.snapshot_rows else "some rows"
        snapshot = f"no: under way, {stored} stored so far (the next sync goes on from there)"
    else:
        snapshot = "no"
    fresh = " (all sent, HQ's changes in)" if s.last_sync_ms else ""
    print(f"device {s.device} at site {s.site}\n"
          f"server {s.server}: reachable {'yes' if why is None else 'no'}"
          f"{'' if why is None else f' ({why})'}\n"
          f"last sync {_when(s.last_sync_ms)}{fresh}\n"
          f"snapshot taken {snapshot}\n"
          f"pending ops {s.pending}\ncursor {s.cursor}\nrejections {s.rejections}\n"
          f"kept for a rejoin: " + (f"{s.kept[0]} acked ops, since {_when(s.kept[1])}"
                                    if s.kept[0] else "none"))
    running, note = daemon_state(edge.path)
    word, _, rest = note.partition(" ")
    stopped_on_fault = False
    if running:
        print(f"daemon running ({note.split(' since ')[0].removeprefix('running ')})")
    elif word == "stopped":
        at, _, reason = rest.partition(" ")
        print(f"daemon not running: it stopped at {_when(int(at))}: {reason}")
        stopped_on_fault = reason.startswith("local fault")
    elif word == "running":  # its note says running, but it holds no lock
        print(f"daemon not running: the last one ({rest.split(' since ')[0]}) ended "
              "without saying why (killed, or the machine went down)")
    else:
        print("daemon not running")
    if not running and s.pending:
        print(f"syncing has stopped: {s.pending} ops wait to be sent "
              "(start `branchline-edge daemon`, or run `sync`)")
    trouble = disk_trouble(edge.path)
    if trouble:
        print(f"local fault: {trouble}: nothing new can be saved or synced")
    if s.rejoining:
        print("rejoin under way: HQ's rows are loading again (`sync` finishes it)")
    if (clock := s.clock_warning()) is not None:
        print(f"clock: {clock}")
    if s.taken_over:  # a cloned till shows here on both machines
        at, _, reason = s.taken_over.partition(" ")
        print(f"last take-over {_when(int(at))}: {reason}")
    if s.refused:  # the daemon stopped on it; nothing syncs until IT acts
        at, _, reason = s.refused.partition(" ")
        print(f"refused by HQ at {_when(int(at))}: {reason}")
        return 4
    return 6 if stopped_on_fault or trouble else 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _fields(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadArgument(f"expected field=value, got {pair!r}")
        out[name] = _value(value)
    return out


def _line(text: str) -> LineIn:
    code, _, rest = text.partition(":")
    qty, _, discount = rest.partition(":")
    try:
        count = int(qty or "1")
    except ValueError:
        raise PosError(f"bad line {text!r}: expected CODE:QTY[:DISCOUNT]") from None
    return LineIn(code, count, parse_money(discount) if discount else 0)


def _money(cents: int) -> str:
    return format_money(cents)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds") if ms else "never"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "daemon" else logging.WARNING,
                        format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.command == "init" and urlsplit(args.server).scheme not in ("ws", "wss"):
        print(f"--server must be a ws:// or wss:// URL, got {args.server!r}", file=sys.stderr)
        return 2
    if args.command != "init" and not os.path.exists(args.db):
        print(f"no till file at {args.db}; run `branchline-edge init` first", file=sys.stderr)
        return 2
    created = args.command == "init" and not os.path.exists(args.db)
    try:
        edge = Edge(args.db, readonly=_reads_only(args))
    except EdgeError as exc:
        print(_fault(args.db, exc) if isinstance(exc, LocalDatabaseError) else exc,
              file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        if created:
            _remove(args.db)
        print(_fault(args.db, exc, f"cannot open {args.db}"), file=sys.stderr)
        return 2
    ok = False
    try:
        code = _run(edge, args)
        ok = True
        return code
    except EdgeError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (LocalRejected, PosError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    except Refused as exc:
        print(f"refused by the server: {exc}", file=sys.stderr)
        return 4
    except TakenOver as exc:
        print(f"sync stopped: {exc}", file=sys.stderr)
        return 5
    except Unreachable as exc:
        print(f"server unreachable: {exc}; the device keeps working offline", file=sys.stderr)
        return 5
    except sqlite3.Error as exc:
        print(_fault(args.db, exc), file=sys.stderr)
        return 2
    finally:
        edge.close()
        if created and not ok:
            _remove(args.db)


READ_COMMANDS = frozenset({"status", "get", "account", "exceptions", "stock", "trial-balance",
                           "day",
                           "in-transit", "pending", "rejections", "check-stock"})
"""Commands that only read: they open the file read-only, so they work on a
full disk or a read-only medium."""


def _reads_only(args: argparse.Namespace) -> bool:
    return args.command in READ_COMMANDS and not getattr(args, "rebuild", False)


def _fault(db: str, exc: BaseException, what: str = "") -> str:
    """A local database error, with the reason in a store manager's words when
    the disk or the file's permissions explain it."""
    trouble = disk_trouble(db)
    if trouble is None:
        return f"{what or f'local database {db}'}: {exc}"
    return f"{what or f'cannot use {db}'}: {trouble} (SQLite: {exc})"


def _remove(db: str) -> None:
    """Take away what a failed `init` of a new file left: nothing half made stays."""
    for name in (db, f"{db}-wal", f"{db}-shm", f"{db}-journal"):
        with contextlib.suppress(OSError):
            os.remove(name)


def _run(edge: Edge, args: argparse.Namespace) -> int:
    match args.command:
        case "init":
            changed = edge.configure(args.server, args.device, args.site, args.token,
                                     force=args.force)
            print(f"{edge.path}: device {args.device} at site {args.site}, server {args.server}")
            for news in changed:
                print(news)
        case "sync":
            running, note = daemon_state(edge.path)
            if running:
                return _sync_by_daemon(edge, note, args.timeout)
            with rich_progress(args.progress) as progress:
                result = asyncio.run(sync_once(edge, timeout=args.timeout, progress=progress))
            print(f"pushed {result.pushed} ops ({result.rejected} rejected), received "
                  f"{result.received_rows} rows ({result.snapshot_rows} by snapshot), "
                  f"{result.pending} pending, cursor {result.cursor}, {result.seconds:.2f} s")
        case "rejoin":
            return _rejoin(edge, args)
        case "daemon":
            asyncio.run(_daemon(edge, args.progress))
            print("daemon stopped", file=sys.stderr)
        case "status":
            return _status(edge, args.timeout)
        case "put":
            op = edge.write(args.entity, args.key, _fields(args.fields), args.user)
            print(f"queued op {op.op_id}")
        case "delete":
            op = edge.delete(args.entity, args.key, args.user)
            print(f"queued op {op.op_id}")
        case "get":
            row = edge.get(args.entity, args.key, include_deleted=True)
            if row is None:
                print(f"no {args.entity} {args.key} on this device", file=sys.stderr)
                return 1
            print(json.dumps(row, indent=2, sort_keys=True))
        case "sell":
            pos = Pos(edge)
            receipt = pos.sell(
                [_line(text) for text in args.lines], cash=parse_money(args.cash),
                card=parse_money(args.card), on_account=parse_money(args.on_account),
                customer_id=args.customer, cashier=args.cashier)
            print(f"receipt {receipt.receipt_no}: total {_money(receipt.total)} "
                  f"(tax {_money(receipt.tax)}), change {_money(receipt.change)}")
        case "return":
            pos = Pos(edge)
            wanted = {}
            for text in args.lines:
                line = _line(text)
                wanted[line.code] = line.qty
            receipt = pos.return_sale(args.receipt, wanted, card=parse_money(args.card))
            print(f"return {receipt.receipt_no}: refund {_money(-receipt.total)}")
        case "exchange":
            back = {ln.code: ln.qty for ln in map(_line, args.back)}
            done = Pos(edge).exchange(args.receipt, back, [_line(t) for t in args.take],
                                      cash=parse_money(args.cash), card=parse_money(args.card),
                                      cashier=args.cashier)
            print(f"exchange: return {done.returned.receipt_no} "
                  f"{_money(-done.returned.total)}, sale {done.sold.receipt_no} "
                  f"{_money(done.sold.total)}; "
                  + (f"due {_money(done.due)}" if done.due >= 0
                     else f"refund {_money(-done.due)}")
                  + f", change {_money(done.change)}")
        case "pay":
            paid = Accounts(edge).take_payment(args.customer, cash=parse_money(args.cash),
                                               card=parse_money(args.card),
                                               cashier=args.cashier)
            print(f"payment {paid.receipt_no}: {_money(paid.amount)}; "
                  f"balance {_money(paid.balance)}")
        case "account":
            st = Accounts(edge).statement(args.customer)
            limit = "none" if st.credit_limit is None else _money(st.credit_limit)
            print(f"customer {st.name}: credit limit {limit}")
            for ln in st.lines:
                print(f"{ln.date}\t{ln.receipt_no}\t{ln.site}\t{ln.kind}\t{_money(ln.amount)}"
                      f"\t{_money(ln.balance)}")
            left = "" if st.available is None else f", available {_money(st.available)}"
            print(f"balance {_money(st.balance)}{left}")
        case "exceptions":
            site = edge.setting("site")
            for x in edge.query("stock_exception", site=site, status="open"):
                product = edge.get("product", x["product_id"]) or {}
                print(f"{x['id']}\t{product.get('sku', x['product_id'])}\t"
                      f"on hand {x['on_hand']} ({x['reason']})\t"
                      f"now {edge.stock(site, x['product_id'])}")
        case "stock":
            product = Pos(edge).product(args.code)
            print(f"{product['sku']} {product['name']}: "
                  f"{edge.stock(edge.setting('site'), product['id'])} on hand")
        case "check-stock":
            mismatched = edge.stock_mismatches()
            for site, product_id, cached, ledger in mismatched:
                print(f"{site}\t{product_id}\tcache {cached}\tledger {ledger}")
            if mismatched and args.rebuild:
                edge.rebuild_stock()
                remaining = edge.stock_mismatches()
                print(f"rebuilt the stock cache from the ledger; {len(remaining)} differences left")
                return 0 if not remaining else 1
            print(f"{len(mismatched)} differences between the stock cache and the ledger")
            return 1 if mismatched else 0
        case "trial-balance":
            for account, (debit, credit) in trial_balance(edge).items():
                print(f"{account}\t{_money(debit)}\t{_money(credit)}")
        case "day":
            return _day(edge, args.date)
        case "count":
            diff = Inventory(edge).count(args.code, args.counted)
            print(f"counted {args.counted}; adjustment {diff:+d}")
        case "ship":
            shipped = Inventory(edge).ship(args.code, args.qty, args.to)
            print(f"transfer {shipped.transfer_id}: {shipped.qty} shipped to {args.to}")
        case "receive":
            short = Inventory(edge).receive(args.transfer, args.qty)
            print(f"received {args.qty}" + (f"; {short} short, discrepancy recorded"
                                             if short else ""))
        case "in-transit":
            for t in Inventory(edge).in_transit():
                print(f"{t['id']}\t{t['from_site']} -> {t['to_site']}\t{t['qty']}")
        case "ticket":
            if args.ticket_action == "open":
                sale_id = None
                if args.receipt:
                    found = edge.query("sale", receipt_no=args.receipt)
                    if not found:
                        raise PosError(f"no sale {args.receipt} at this store")
                    sale_id = found[0]["id"]
                key = new_id(now_ms())
                edge.write("ticket", key, {"site": edge.setting("site"), "kind": args.kind,
                                           "sale_id": sale_id, "text": args.text,
                                           "status": "open"})
                print(f"ticket {key} open")
            else:
                edge.write("ticket", args.ticket, {"status": args.status})
                print(f"ticket {args.ticket}: {args.status}")
        case "po":
            proc = Procurement(edge, args.user)
            if args.po_action == "create":
                lines = []
                for text in args.lines:
                    code, qty, cost = [*text.split(":"), "", ""][:3]
                    if not qty.isdigit() or not cost:
                        raise PosError(f"bad line {text!r}: expected CODE:QTY:UNIT_COST")
                    lines.append(OrderLine(code, int(qty), parse_money(cost)))
                print(f"purchase order {proc.create(args.site, args.supplier, lines)} (draft)")
            elif args.po_action == "approve":
                print(f"purchase order {args.po}: {proc.approve(args.po)}")
            elif args.po_action == "cancel":
                proc.cancel(args.po)
                print(f"purchase order {args.po}: cancelled")
            elif args.po_action == "return":
                key = proc.return_to_supplier(args.code, args.qty, args.supplier, args.reason,
                                              args.po)
                print(f"supplier return {key}")
            else:
                got = {ln.code: ln.qty for ln in map(_line, args.lines)}
                print(f"purchase order {args.po}: {proc.receive(args.po, got)}")
        case "pending":
            for op in edge.pending():
                print(f"{op.op_id}\t{op.entity}\t{op.key}\t{json.dumps(op.fields)}")
        case "rejections":
            for r in edge.rejections():
                print(f"{r.op_id}\t{r.entity}\t{r.key}\t{_when(r.at_ms)}\t{r.reason}")
    return 0


async def _daemon(edge: Edge, progress: bool | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with rich_progress(progress) as bars:
        await run_daemon(edge, None, stop, progress=bars)


if __name__ == "__main__":
    sys.exit(main())
