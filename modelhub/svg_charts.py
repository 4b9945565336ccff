"""Server-side SVG charts for the operator pages: no JavaScript, no CDN, work offline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    title: str = ""


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def bar_chart(
    bars: Sequence[Bar],
    *,
    height: int = 160,
    color: str = "#4f46e5",
    axis_format: str = "{:g}",
    label_every: int = 1,
    aria_label: str = "",
) -> SafeString:
    """Vertical bars scaled to the largest value; hovering a bar shows its title."""
    width = max(len(bars), 1) * 24 + 48
    plot_height = height - 28
    top = _nice_max(max((bar.value for bar in bars), default=0.0))
    slot = (width - 48) / max(len(bars), 1)
    rects = []
    labels = []
    for index, bar in enumerate(bars):
        bar_height = 0 if top == 0 else round(bar.value / top * (plot_height - 8), 2)
        x = round(44 + index * slot + slot * 0.15, 2)
        y = round(plot_height - bar_height, 2)
        rects.append((x, y, round(slot * 0.7, 2), bar_height, color, bar.title or bar.label))
        if index % max(label_every, 1) == 0:
            labels.append((round(x + slot * 0.35, 2), height - 8, bar.label))
    body = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" rx="2"><title>{}</title></rect>',
        rects,
    )
    texts = format_html_join(
        "", '<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>', labels
    )
    axis = format_html(
        '<line x1="42" y1="{}" x2="{}" y2="{}" class="axis"/>'
        '<text x="38" y="12" text-anchor="end" class="tick">{}</text>'
        '<text x="38" y="{}" text-anchor="end" class="tick">0</text>',
        plot_height,
        width,
        plot_height,
        axis_format.format(top),
        plot_height,
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'preserveAspectRatio="xMinYMin meet">{}{}{}</svg>',
        width,
        height,
        aria_label,
        axis,
        body,
        texts,
    )


def percent_bar(percent: float | None, *, label: str = "", levels: bool = True) -> SafeString:
    """A horizontal bar of a share, named for screen readers and on hover by ``label``
    ("42% <label>"); red past 90 %, amber past 70 % where ``levels`` (use, not comparison)."""
    if percent is None:
        return mark_safe('<span class="muted">no limit</span>')  # constant markup
    shown = max(0.0, min(float(percent), 100.0))
    level = ("high" if shown >= 90 else "mid" if shown >= 70 else "low") if levels else "low"
    text = f"{round(float(percent), 1):g}% {label}".strip()
    return format_html(
        '<div class="meter" role="img" aria-label="{}" title="{}">'
        '<div class="fill {}" style="width: {}%"></div></div>',
        text,
        text,
        level,
        round(shown, 1),
    )
