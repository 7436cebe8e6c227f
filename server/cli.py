"""``branchline``: run the HQ server and manage device tokens."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from schema import SCHEMA

from .devices import DEFAULT_TTL_DAYS

if TYPE_CHECKING:
    from .store import Database

DEFAULT_DB = "sqlite:///branchline.db"


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=os.environ.get("BRANCHLINE_DB", DEFAULT_DB),
                   help="database URL: sqlite:///FILE (default) or "
                        "postgresql+psycopg://USER@HOST:PORT/DB (env BRANCHLINE_DB)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="branchline", description="Branchline HQ server.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("server", help="run the HQ server (sync websocket, API, console)")
    _db_arg(run)
    run.add_argument("--host", default="127.0.0.1", help="address to listen on")
    run.add_argument("--port", type=int, default=8000, help="port to listen on")
    run.add_argument("--log-level", default="info", help="uvicorn log level")
    run.add_argument("--forwarded-allow-ips",
                     default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                     help="reverse proxies (comma-separated addresses, '*' for any) whose "
                          "X-Forwarded-For HQ believes: the IT page and the console's login "
                          "throttle then see each till's and browser's own address, not the "
                          "proxy's (default: 127.0.0.1, a proxy on this machine; "
                          "FORWARDED_ALLOW_IPS). Any other client's header is ignored.")

    dev = sub.add_parser("device", help="register, revoke and list devices")
    dsub = dev.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = dsub.add_parser("add", help="register a device at a site and print its token")
    _db_arg(add)
    add.add_argument("--device", required=True, help="device id, e.g. s1-till1")
    add.add_argument("--site", required=True, help="site code the device belongs to, e.g. S1")
    add.add_argument("--expires-days", type=float, default=DEFAULT_TTL_DAYS,
                     help=f"token lifetime in days (default {DEFAULT_TTL_DAYS})")
    add.add_argument("--no-expiry", action="store_true", help="the token lives until revoked")
    add.add_argument("--move", action="store_true",
                     help="the device is registered at another site: move it to --site "
                          "(the till holding its old token is cut off)")
    rev = dsub.add_parser("revoke", help="revoke a device's token")
    _db_arg(rev)
    rev.add_argument("--device", required=True, help="device id")
    lst = dsub.add_parser("list", help="list registered devices")
    _db_arg(lst)

    user = sub.add_parser("user", help="employees: the users ops carry, with their roles")
    usub = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    hire = usub.add_parser("add", help="add (or change) an employee with a department role")
    _db_arg(hire)
    hire.add_argument("--login", required=True, help="user name, as given to the edge's --user")
    hire.add_argument("--role", required=True, help="cashier, store_manager, buyer, "
                      "procurement_manager, finance, hr, warehouse_clerk, it_admin, hq_admin")
    hire.add_argument("--site", required=True, help="site code where the employee works")
    hire.add_argument("--name", default=None, help="full name (default: the login)")
    hire.add_argument("--department", default="operations", help="department name")
    hire.add_argument("--api-token", action="store_true",
                      help="also print an API token for the REST API")
    hire.add_argument("--password-stdin", action="store_true",
                      help="also set the HQ console password, read from stdin (one line)")
    pw = usub.add_parser("password", help="set an employee's HQ console password "
                         "(read from stdin, or prompted twice on a terminal; never argv)")
    _db_arg(pw)
    pw.add_argument("login", help="the employee's login")
    ra = usub.add_parser("revoke-api", help="revoke every REST API token of an employee "
                         "(a leaver, a token shown where it should not have been)")
    _db_arg(ra)
    ra.add_argument("login", help="the employee's login")

    for name, what in (("check-stock", "the kept stock balances against the movement ledger"),
                       ("check-totals", "every kept running total (stock balances, account "
                                        "balances, site sales) against its ledger")):
        chk = sub.add_parser(name, help=f"check {what} (exit 1 if any differ)")
        _db_arg(chk)
        chk.add_argument("--rebuild", action="store_true",
                         help="rebuild them from the ledger")
    return p


def _read_password(prompt: bool) -> str:
    """One password from stdin: prompted twice on a terminal, else its first line."""
    if prompt and sys.stdin.isatty():
        import getpass

        first = getpass.getpass("new console password: ")
        if first != getpass.getpass("again: "):
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "server":
        import uvicorn

        from sync.messages import MAX_MESSAGE_BYTES

        from .app import Unusable, create_app
        from .db_health import DB_DOWN, short_reason

        logging.basicConfig(level=args.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        try:
            app = create_app(args.db)
        except Unusable as exc:
            print(f"branchline server: not started: {exc}", file=sys.stderr)
            return 2
        except DB_DOWN as exc:
            print(f"branchline server: not started: the database is unreachable: "
                  f"{short_reason(exc)}", file=sys.stderr)
            return 2
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    ws_max_size=4 * MAX_MESSAGE_BYTES, ws_ping_interval=20,
                    ws_ping_timeout=20, proxy_headers=True,
                    forwarded_allow_ips=args.forwarded_allow_ips)
        return 0

    from .admin import AdminError, hire
    from .api_auth import issue_api_token, revoke_api_tokens
    from .devices import issue_token, list_devices, revoke, site_known
    from .store import Database

    # checking or rebuilding every total may rightly run long: no statement timeout
    db = Database(args.db, SCHEMA, timeouts=args.command not in ("check-stock", "check-totals"))
    try:
        if args.command in ("check-stock", "check-totals"):
            return _check_totals(db, args.rebuild, stock_only=args.command == "check-stock")
        if args.command == "user" and args.action == "password":
            return _set_password(db, args.login, prompt=True)
        if args.command == "user" and args.action == "revoke-api":
            n = revoke_api_tokens(db, args.login)
            if not n:
                print(f"{args.login} has no API token in force", file=sys.stderr)
                return 1
            print(f"{n} API token(s) of {args.login} revoked: their requests get 401")
            return 0
        if args.command == "user":
            try:
                hire(db, args.login, args.role, args.site, args.name, args.department)
            except AdminError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 3
            print(f"user {args.login}: {args.role} at {args.site}")
            if args.password_stdin and _set_password(db, args.login, prompt=False):
                return 3
            if args.api_token:
                print(f"API token: {issue_api_token(db, args.login)}")
        elif args.action == "add":
            try:
                token = issue_token(db, args.device, args.site,
                                    None if args.no_expiry else args.expires_days, args.move)
            except ValueError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 2
            if not site_known(db, args.site):
                print(f"note: HQ has no site {args.site} yet; the device's sales are filed "
                      "under that code (add the site, or check the code)", file=sys.stderr)
            (info,) = [d for d in list_devices(db) if d.device == args.device]
            print(f"device {args.device} at site {args.site}, {info.state()}; token: {token}")
        elif args.action == "revoke":
            if not revoke(db, args.device):
                print(f"no device {args.device}", file=sys.stderr)
                return 1
            print(f"device {args.device} revoked")
        else:
            for d in list_devices(db):
                print(f"{d.device}\t{d.site}\t{d.state()}")
    finally:
        db.dispose()
    return 0


def _check_totals(db: Database, rebuild: bool, stock_only: bool) -> int:
    """Compare (or rebuild) the running totals with what their ledgers add up to."""
    from . import totals
    from .tables import ON_HAND_TABLE

    checked = [t for t in totals.kept(db.metadata) if t.table == ON_HAND_TABLE or not stock_only]
    wrong: list[totals.Drift] = []
    with db.transaction(write=rebuild) as store:
        for t in checked:
            if rebuild:
                n = totals.fill(store.conn, db.metadata, t)
                print(f"rebuilt {n} {t.table} totals from {t.entity}")
            wrong += totals.drift(store.conn, db.metadata, t)
    for d in wrong:
        spec = totals.BY_TABLE[d.table]
        names = spec.columns
        print(f"{d.table}\t" + "\t".join(d.key) + "\tkept "
              + ", ".join(f"{c} {v}" for c, v in zip(names, d.kept, strict=True))
              + f"\t{spec.entity} adds up to "
              + ", ".join(f"{c} {v}" for c, v in zip(names, d.summed, strict=True)))
    if wrong:
        print(f"{len(wrong)} total(s) differ from their ledger; run again with --rebuild",
              file=sys.stderr)
        return 1
    print("every " + ", ".join(t.table for t in checked) + " total equals its ledger")
    return 0


def _set_password(db: Database, login: str, prompt: bool) -> int:
    from .console.auth import PasswordError, set_password

    try:
        set_password(db, login, _read_password(prompt))
    except (PasswordError, ValueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    print(f"console password of {login} set; its older sessions are logged out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
