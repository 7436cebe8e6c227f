"""``branchline-edge``: a store's or warehouse's device, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
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
from .commands import parser
from .daemon import daemon_state, probe, run_daemon, sync_once
from .day_report import all_tills, day_report
from .disk import disk_trouble
from .edge import Edge, now_ms
from .errors import BadArgument, EdgeError, LocalDatabaseError, Refused, TakenOver, Unreachable
from .inventory import Inventory
from .pos import LineIn, Pos, PosError, parse_money, trial_balance
from .procurement import OrderLine, Procurement
from .progress import rich_progress


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
