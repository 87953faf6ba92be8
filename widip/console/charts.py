"""Small server-drawn SVG charts (no JavaScript needed to see them)."""

from __future__ import annotations

from markupsafe import Markup, escape

from widip.console.render import when

COLOURS = {"ok": "#2e7d32", "degraded": "#ef6c00", "down": "#c62828"}
WIDTH, HEIGHT, GAP = 600, 120, 1


def glpi_probes(probes: list[dict], *, slow_ms: int) -> Markup:
    """One bar per probe, oldest on the left: height = latency (a failed probe fills the height), colour = status.

    `probes` are glpi_health.history()["recent"] rows, newest first.
    """
    rows = list(reversed(probes))
    if not rows:
        return Markup("")
    ceiling = max([slow_ms * 1.5] + [float(r["latency_ms"]) for r in rows if r.get("latency_ms") is not None])
    step = WIDTH / len(rows)
    bars = []
    for i, row in enumerate(rows):
        latency = row.get("latency_ms")
        height = HEIGHT if latency is None else max(3.0, HEIGHT * float(latency) / ceiling)
        status = row.get("status", "unknown")
        tip = f"{when(row.get('checked_at'))} · {status}" + (f" · {latency:.0f} ms" if latency is not None else
                                                              f" · {row.get('error') or 'sans réponse'}")
        bars.append(f'<rect x="{i * step:.1f}" y="{HEIGHT - height:.1f}" width="{max(1.0, step - GAP):.1f}" '
                    f'height="{height:.1f}" fill="{COLOURS.get(status, "#757575")}" class="bar-{escape(status)}">'
                    f"<title>{escape(tip)}</title></rect>")
    threshold = HEIGHT - HEIGHT * slow_ms / ceiling
    counts = {s: sum(1 for r in rows if r.get("status") == s) for s in COLOURS}
    summary = (f"Sondes GLPI récentes : {len(rows)} — {counts['ok']} OK, {counts['degraded']} lentes, "
               f"{counts['down']} en échec")
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>{"".join(bars)}'
        f'<line x1="0" x2="{WIDTH}" y1="{threshold:.1f}" y2="{threshold:.1f}" stroke="#555" '
        f'stroke-dasharray="4 4" stroke-width="1"><title>seuil de lenteur {slow_ms} ms</title></line></svg>')
