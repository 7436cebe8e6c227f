"""IT admin: devices (register with a token shown once, revoke; where each
last connected from, and one connected from two places: a cloned till), and
sync health: the head of the change sequence, devices connected, the conflict
queue and the latest audit records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import URLEncodedBody
from sqlalchemy import func, select

from sync.hlc import span

from ..api_auth import api_tokens, revoke_api_tokens
from ..devices import DEFAULT_TTL_DAYS, issue_token, list_devices, revoke, site_known, when
from ..tables import DEVICE_ACTIVITY_TABLE
from ..takeover import recent_takeovers
from .auth import Ctx
from .html import Html, hidden_csrf, id_cell, join, post_button, table, tag

AUDIT_ROWS = 30


def _when(hlc: str | None) -> str:
    try:
        ms = int(str(hlc)[:15])
    except ValueError:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(ctx: Ctx, *, token: Html | None = None, error: str | None = None,
           code: int = 200) -> Response[str]:
    db = ctx.db
    t = db.t
    audit, conflicts = t["audit"], t["conflicts"]
    own = ctx.user.site_filter  # an IT admin of a store sees that store's devices
    with db.reading() as conn:
        head = conn.execute(select(func.coalesce(func.max(t["changes"].c.seq), 0))).scalar_one()
        activity = t[DEVICE_ACTIVITY_TABLE]
        last_op = dict(conn.execute(select(activity.c.device, activity.c.hlc)).all())
        waiting = [conflicts.c.resolved.is_(False)]
        if own is not None:  # a conflict names the device that proposed it; a device its site
            devs = t["devices"]
            waiting.append(conflicts.c.device.in_(select(devs.c.device)
                                                  .where(devs.c.site == own)))
        n_conflicts = conn.execute(select(func.count()).select_from(conflicts)
                                   .where(*waiting)).scalar_one()
        open_conflicts = conn.execute(select(conflicts).where(*waiting)
                                      .order_by(conflicts.c.id.desc()).limit(20)).all()
        latest = select(audit).order_by(audit.c.id.desc()).limit(AUDIT_ROWS)
        if own is not None:
            latest = latest.where(audit.c.site == own)
        records = conn.execute(latest).all()
        devices = [d for d in list_devices(db, conn) if own is None or d.site == own]
        taken = recent_takeovers(db, conn)
        tokens = api_tokens(db, own, conn)

    def revoke_api(login: str, active: int) -> Html | str:
        if not active:
            return ""
        return post_button("/it/api-tokens/revoke", "Revoke", ctx.csrf, login=login)

    def revoke_button(d: Any) -> Html | str:
        if d.revoked_ms is not None:
            return ""
        return post_button("/it/devices/revoke", "Revoke", ctx.csrf, device=d.device)

    def refusal(d: Any) -> str:
        return "" if d.refused_ms is None else f"{when(d.refused_ms)}: {d.refused}"

    def clock(d: Any) -> str:
        ahead = d.clock_ahead_ms
        if ahead is None:
            return ""
        return f"{span(abs(ahead))} {'ahead of' if ahead > 0 else 'behind'} HQ's"

    def connection(d: Any) -> str:
        last = "" if d.conn_ms is None else f"from {d.conn_peer} at {when(d.conn_ms)}"
        over = taken.get(d.device)
        return last if over is None else f"{over}; last {last}"

    register = tag(
        "form", hidden_csrf(ctx.csrf),
        tag("label", "Device ", tag("input", name="device", required=True,
                                    placeholder="s1-till3")), " ",
        tag("label", "Site ", tag("input", name="site", required=True, placeholder="S1",
                                  size=6)), " ",
        tag("label", "Token lifetime (days) ", tag("input", name="expires_days", size=5,
                                                   value=str(DEFAULT_TTL_DAYS))), " ",
        tag("button", "Register device", type="submit"),
        method="post", action="/it/devices")
    body = [
        token or "",
        tag("h2", "Sync health"),
        table(["head of the change sequence", "devices connected now", "open conflicts"],
              [[head, ctx.hub.connected, n_conflicts]]),
        tag("h2", "Devices"),
        table(["device", "site", "token", "last change received (its clock)",
               "refused by HQ until someone acts", "clock off (at its last connection)",
               "last connection (and take-overs: one per device is served)", ""],
              [[d.device, d.site, d.state(), _when(last_op.get(d.device)), refusal(d),
                clock(d), connection(d), revoke_button(d)] for d in devices],
              empty="no devices"),
        tag("h2", "Register a device (or re-key one: its old token dies at once)"),
        register,
        tag("h2", "REST API tokens (a leaver's, or one shown where it should not be)"),
        table(["login", "site", "tokens in force", "revoked", "last issued", ""],
              [[t.login, t.site or "", t.active, t.revoked, when(t.last_ms),
                revoke_api(t.login, t.active)] for t in tokens], empty="no API tokens"),
        tag("h2", "Conflict queue"),
        table(["entity", "key", "field", "HQ value", "proposed", "device"],
              [[c.entity, id_cell(c.key), c.field, c.server_value, c.proposed_value, c.device]
               for c in open_conflicts], empty="no open conflicts"),
        tag("h2", f"Latest {AUDIT_ROWS} audit records"),
        table(["#", "when (op clock)", "user", "device", "site", "entity", "key", "status",
               "policy", "reason"],
              [[a.id, _when(a.hlc), a.user, a.device, a.site, a.entity, id_cell(a.key), a.status,
                a.policy, a.reason] for a in records]),
    ]
    return ctx.page("it", "IT admin", join(body), error=error, status=code)


@post("/it/api-tokens/revoke", sync_to_thread=True, opt={"page": "it"})
def revoke_api_token(ctx: NamedDependency[Ctx], data: URLEncodedBody[dict[str, str]]
                     ) -> Response[Any]:
    """Revoke every REST API token of a login: its next request gets 401."""
    login = data.get("login", "")
    own = ctx.user.site_filter
    if own is not None and login not in {t.login for t in api_tokens(ctx.db, own)}:
        return render(ctx, error=f"API tokens of {login} not revoked: {ctx.user.login} works "
                                 f"at {own} and revokes the tokens of its own staff only", code=403)
    if not revoke_api_tokens(ctx.db, login):
        return render(ctx, error=f"{login} has no API token in force", code=404)
    return ctx.redirect("/it", f"API tokens of {login} revoked; their requests get 401")


@get("/it", sync_to_thread=True, opt={"page": "it"})
def it_admin(ctx: NamedDependency[Ctx]) -> Response[str]:
    """Devices and sync health."""
    return render(ctx)


@post("/it/devices", sync_to_thread=True, opt={"page": "it"})
def register_device(ctx: NamedDependency[Ctx], data: URLEncodedBody[dict[str, str]]
                    ) -> Response[str]:
    """Register (or re-key) a device; its token is shown on this page only."""
    device, site = data.get("device", "").strip(), data.get("site", "").strip()
    own = ctx.user.site_filter
    if own is not None and site != own:
        return render(ctx, error=f"device not registered: {ctx.user.login} works at {own} "
                                 f"and registers its devices only, not {site!r}", code=403)
    if not site_known(ctx.db, site):
        return render(ctx, error=f"device not registered: HQ has no site {site[:20]!r} "
                                 "(add the site first, or check the code)", code=400)
    given = data.get("expires_days", "").strip()
    try:
        days = float(given or DEFAULT_TTL_DAYS)  # nan, inf: refused by issue_token
    except ValueError:
        return render(ctx, error=f"device not registered: token lifetime {given!r} is not "
                                 "a number of days", code=400)
    try:
        token = issue_token(ctx.db, device, site, days)
    except ValueError as exc:
        return render(ctx, error=f"device not registered: {exc}", code=400)
    shown = tag("div", tag("p", f"Device {device} registered at {site}. Its token is shown "
                                "once; give it to the store for branchline-edge init:"),
                tag("p", tag("code", token, id="device-token")), class_="notice")
    return render(ctx, token=shown)


@post("/it/devices/revoke", sync_to_thread=True, opt={"page": "it"})
def revoke_device(ctx: NamedDependency[Ctx], data: URLEncodedBody[dict[str, str]]
                  ) -> Response[Any]:
    """Revoke a device's token: its next sync is refused (close 4401)."""
    device = data.get("device", "")
    own = ctx.user.site_filter
    known = {d.device: d.site for d in list_devices(ctx.db)}
    if own is not None and known.get(device, own) != own:
        return render(ctx, error=f"device {device} not revoked: {ctx.user.login} works at "
                                 f"{own} and revokes its devices only", code=403)
    if not revoke(ctx.db, device):
        return render(ctx, error=f"no device {device}", code=404)
    return ctx.redirect("/it", f"device {device} revoked; its next sync is refused")
