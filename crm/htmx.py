"""What htmx 4 needs from the server beyond htmx-flask's request flags.

One URL is a full page when loaded directly (bookmark, reload, new tab, boosted
navigation, history restore) and a fragment when htmx targets a part of it:
htmx 4 says which with `HX-Request-Type: partial` and names the target element
in `HX-Target` as `tag#id`. Routes list which template block answers which
target; anything else gets the whole page.
"""

import json
from collections.abc import Callable
from urllib.parse import unquote

from flask import Response, current_app, flash, g, make_response, redirect, render_template, request
from jinja2_fragments.flask import render_block, render_blocks


def is_htmx() -> bool:
    return bool(request.htmx)


def is_partial() -> bool:
    """True when htmx asked for a piece of the page rather than the whole of it."""
    return (
        bool(request.htmx)
        and request.headers.get("HX-Request-Type") == "partial"
        and not request.htmx.history_restore_request
    )


def target_id() -> str | None:
    """The id of the element htmx will swap into: `HX-Target: tbody#rows` gives "rows"."""
    target = request.headers.get("HX-Target") or ""
    _, _, element_id = target.partition("#")
    return unquote(element_id) or None


def render(
    template: str,
    partials: dict[str, str] | None = None,
    status: int = 200,
    whole_page: Callable[[], dict] | None = None,
    **context,
):
    """Render the block that answers the htmx target, or the whole page.

    `whole_page` returns what only the whole page shows (filter choices, forms): it is
    not called for a fragment, such as the rows a search or a scroll asks for.
    """
    block = (partials or {}).get(target_id()) if is_partial() else None
    if block:
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context, **(whole_page() if whole_page else {}))
    return make_response(body, status)


def render_fragment(template: str, *blocks: str, status: int = 200, **context):
    """Render these blocks, one after the other, whatever the request.

    For answers that are only ever fragments, such as the result of a POST made
    by htmx: the changed element plus <hx-partial> updates elsewhere on the page.
    """
    return make_response(render_blocks(template, list(blocks), **context), status)


def trigger(event: str, detail=None) -> None:
    """Queue a client event for the HX-Trigger header of this response."""
    g.setdefault("hx_triggers", {})[event] = detail if detail is not None else {}


def toast(message: str, level: str = "success") -> None:
    """A short confirmation: an HX-Trigger toast under htmx, a flash message otherwise."""
    if is_htmx():
        trigger("crm:toast", {"message": str(message), "level": level})
    else:
        flash(str(message), level)


def _toast_on_next_page() -> None:
    """A toast queued for a response that leaves the page would be lost with it (HX-Location
    swaps the whole body, HX-Redirect loads a new page): flash it for the next page instead."""
    event = g.get("hx_triggers", {}).pop("crm:toast", None)
    if event:
        flash(event["message"], event.get("level", "success"))


def location(url: str, status: int = 303) -> Response:
    """Send the browser to `url`: a boosted htmx navigation, or a plain redirect."""
    if is_htmx():
        _toast_on_next_page()
        response = make_response("", 200)
        response.headers["HX-Location"] = json.dumps({"path": url, "target": "body"})
        return response
    return redirect(url, status)


def full_reload(url: str) -> Response:
    """Leave the htmx page altogether (log in, log out: the whole layout changes)."""
    if is_htmx():
        _toast_on_next_page()
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)


def apply_headers(response: Response) -> Response:
    """after_request hook: HX-Trigger events, and Vary so caches keep pages and fragments apart."""
    triggers = g.pop("hx_triggers", None)
    if triggers:
        existing = response.headers.get("HX-Trigger")
        merged = json.loads(existing) if existing and existing.startswith("{") else {}
        merged.update(triggers)
        response.headers["HX-Trigger"] = json.dumps(merged)
    response.vary.add("HX-Request")
    response.vary.add("HX-Request-Type")
    return response


def error_response(status: int, message: str) -> Response:
    """An error under htmx is shown as a toast, never swapped blank into the target."""
    body = render_template("_error_toast.html", message=message, status=status)
    response = make_response(body, status)
    response.headers["HX-Retarget"] = "#toasts"
    response.headers["HX-Reswap"] = "beforeend"
    # A boosted link pushes its URL even when the answer goes elsewhere: keep the address bar
    # on the page still shown, or a reload would open the error page.
    response.headers["HX-Push-Url"] = "false"
    current_app.logger.debug("htmx error %s: %s", status, message)
    return response
