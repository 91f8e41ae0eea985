"""Terminal drawings: a braille line plot for ROC curves and half-block heatmaps for attribution maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

# Bit of each dot in a braille cell (U+2800 block), indexed [row][column] with 4 rows and 2 columns.
_BRAILLE_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))

# Stops of the heat colour scale, from no attribution (dark) to the largest (white).
_HEAT_STOPS = ((0.0, (0, 0, 0)), (0.35, (150, 20, 20)), (0.7, (240, 160, 0)), (1.0, (255, 255, 235)))


def _interpolate(x: np.ndarray, y: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Insert points along each segment so that a dot drawing reads as a line."""
    if len(x) < 2:
        return x, y
    t = np.linspace(0.0, 1.0, count)
    xs = np.concatenate([x0 + (x1 - x0) * t for x0, x1 in zip(x[:-1], x[1:])])
    ys = np.concatenate([y0 + (y1 - y0) * t for y0, y1 in zip(y[:-1], y[1:])])
    return xs, ys


def braille_plot(
    series: Sequence[tuple[np.ndarray, np.ndarray, str]],
    width: int,
    height: int,
    log_scale: bool = False,
    floor: float = 1e-3,
) -> list[Text]:
    """Draw ``(x, y, style)`` series on [0, 1] x [0, 1] into ``height`` lines of ``width`` braille cells.

    With ``log_scale`` both axes run from ``floor`` to 1 on a log scale, and
    values below ``floor`` (including 0) are drawn at ``floor``. Where series
    overlap, the later one's style wins for that cell.
    """
    width, height = max(width, 2), max(height, 2)
    dots_x, dots_y = width * 2, height * 4
    cells = np.zeros((height, width), dtype=np.int64)
    styles: dict[tuple[int, int], str] = {}

    def scale(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if log_scale:
            low = math.log10(floor)
            return (np.log10(np.clip(values, floor, 1.0)) - low) / -low
        return np.clip(values, 0.0, 1.0)

    for x, y, style in series:
        if len(x) == 0:
            continue
        sx, sy = scale(x), scale(y)
        # Interpolate in screen space so that log-scaled segments are straight on screen too.
        sx, sy = _interpolate(sx, sy, 2 * max(dots_x, dots_y) // max(len(sx) - 1, 1) + 2)
        columns = np.clip(np.rint(sx * (dots_x - 1)).astype(int), 0, dots_x - 1)
        rows = np.clip(np.rint((1.0 - sy) * (dots_y - 1)).astype(int), 0, dots_y - 1)
        for column, row in zip(columns, rows):
            cell = (row // 4, column // 2)
            cells[cell] |= _BRAILLE_DOTS[row % 4][column % 2]
            styles[cell] = style

    lines = []
    for row in range(height):
        line = Text()
        for column in range(width):
            bits = int(cells[row, column])
            line.append(chr(0x2800 + bits) if bits else " ", styles.get((row, column), ""))
        lines.append(line)
    return lines


def heat_color(value: float) -> Color:
    """Colour of ``value`` in [0, 1] on the dark-red-yellow-white heat scale."""
    value = min(max(float(value), 0.0), 1.0)
    for (start, low), (stop, high) in zip(_HEAT_STOPS[:-1], _HEAT_STOPS[1:]):
        if value <= stop:
            share = (value - start) / (stop - start)
            return Color.from_rgb(*(round(a + (b - a) * share) for a, b in zip(low, high)))
    return Color.from_rgb(*_HEAT_STOPS[-1][1])


def resize_nearest(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Resample a 2-D array to ``rows`` x ``columns`` by nearest neighbour."""
    row_index = (np.arange(rows) * image.shape[0] / rows).astype(int)
    column_index = (np.arange(columns) * image.shape[1] / columns).astype(int)
    return image[np.ix_(row_index, column_index)]


def heatmap(image: np.ndarray, max_columns: int, max_lines: int, vmax: float | None = None) -> list[Text]:
    """Draw a 2-D array as lines of upper-half blocks, two pixel rows per line, scaled by ``vmax``.

    The array is resized, keeping its aspect ratio, to fit ``max_columns``
    and ``2 * max_lines`` pixels. Pass the same ``vmax`` to maps drawn side
    by side so that equal colours mean equal values.
    """
    image = np.asarray(image, dtype=float)
    top = float(vmax if vmax is not None else image.max())
    normalized = image / top if top > 0 else np.zeros_like(image)
    factor = min(max_columns / image.shape[1], 2 * max_lines / image.shape[0])
    columns = max(1, int(image.shape[1] * factor))
    rows = max(2, int(image.shape[0] * factor) // 2 * 2)
    pixels = resize_nearest(normalized, rows, columns)
    lines = []
    for row in range(0, rows, 2):
        line = Text()
        for column in range(columns):
            style = Style(color=heat_color(pixels[row, column]), bgcolor=heat_color(pixels[row + 1, column]))
            line.append("▀", style)
        lines.append(line)
    return lines
