"""A small line-plot PNG writer with numpy and zlib only: panels of polylines, dashed marks, a 3x5 font.

The plotted data (each curve's name, a downsampled series and its marks) is embedded as JSON in a
``tEXt`` chunk with key ``fusedsched``, so a test (or a reader) can check what was drawn without
decoding pixels.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Curve", "Panel", "TEXT_KEY", "encode_png", "render", "save_plot"]

TEXT_KEY = "fusedsched"
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127)]
INK, GRID, WHITE = (40, 40, 40), (225, 225, 225), (255, 255, 255)

# 3x5 glyphs: five rows of three bits each (an octal digit per row, 4 = left pixel).
_FONT = dict(zip(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-+:_=/(),% []?",
    "75557 26227 71747 71317 55711 74717 74757 71122 75757 75717 25755 65656 34443 65556 74647 "
    "74644 34553 55755 72227 11152 55655 44447 57755 65555 25552 65644 25563 65655 34216 72222 "
    "55557 55552 55775 55255 55222 71247 00002 00700 02720 02020 00007 07070 11244 12221 42224 "
    "00024 51245 00000 32223 62226 71202".split(),
))


@dataclass
class Curve:
    """One polyline: ``x`` and ``y`` in data units; ``marks`` are x positions drawn as dashed lines."""

    name: str
    x: np.ndarray
    y: np.ndarray
    marks: list[float] = field(default_factory=list)


@dataclass
class Panel:
    title: str
    curves: list[Curve]
    xlabel: str = "step"


def _text(img: np.ndarray, x: int, y: int, s: str, color=INK, scale: int = 2) -> int:
    """Draw ``s`` with its top-left corner at (x, y); return the x after the last glyph."""
    for ch in s.upper():
        rows = _FONT.get(ch, _FONT["?"])
        for r, digit in enumerate(rows):
            for c in range(3):
                if int(digit, 8) & (4 >> c):
                    y0, x0 = y + r * scale, x + c * scale
                    img[max(y0, 0):max(y0 + scale, 0), max(x0, 0):max(x0 + scale, 0)] = color
        x += 4 * scale
    return x


def _text_width(s: str, scale: int = 2) -> int:
    return 4 * scale * len(s) - scale


def _polyline(img: np.ndarray, px: np.ndarray, py: np.ndarray, color, box) -> None:
    """Rasterize the segments between consecutive pixel points, 2 px thick, clipped to ``box``."""
    left, top, right, bottom = box
    if len(px) == 1:
        px, py = np.repeat(px, 2), np.repeat(py, 2)
    dx, dy = np.diff(px), np.diff(py)
    n = np.ceil(np.maximum(np.abs(dx), np.abs(dy))).astype(np.int64) + 1
    seg = np.repeat(np.arange(len(n)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(np.maximum(n - 1, 1), n)
    xs = np.rint(px[:-1][seg] + t * dx[seg]).astype(np.int64)
    ys = np.rint(py[:-1][seg] + t * dy[seg]).astype(np.int64)
    for oy in (0, 1):
        keep = (xs >= left) & (xs <= right) & (ys + oy >= top) & (ys + oy <= bottom)
        img[ys[keep] + oy, xs[keep]] = color


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / count
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return "0" if abs(v) < 1e-300 else f"{v:.3g}"


def _limits(values: list[np.ndarray], pad: float) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    lo = min((float(v.min()) for v in finite), default=0.0)
    hi = max((float(v.max()) for v in finite), default=1.0)
    if hi - lo <= 1e-12 * max(abs(hi), abs(lo), 1e-300):
        lo, hi = (lo - abs(lo) * 0.1 - 1e-12, hi + abs(hi) * 0.1 + 1e-12) if lo or hi else (0.0, 1.0)
    return lo, hi + (hi - lo) * pad


def _draw_panel(img: np.ndarray, panel: Panel, box, colors) -> None:
    left, top, right, bottom = box
    x_lo, x_hi = _limits([c.x.astype(np.float64) for c in panel.curves], 0.0)
    y_lo, y_hi = _limits([c.y.astype(np.float64) for c in panel.curves], 0.08)
    y_lo = 0.0 if 0.0 <= y_lo <= 0.3 * y_hi else y_lo  # learning rates read best from zero

    def to_px(x, y):
        fx = left + (np.asarray(x, np.float64) - x_lo) / (x_hi - x_lo) * (right - left)
        fy = bottom - (np.asarray(y, np.float64) - y_lo) / (y_hi - y_lo) * (bottom - top)
        return np.clip(fx, -1e6, 1e6), np.clip(fy, -1e6, 1e6)

    for v in _nice_ticks(y_lo, y_hi):
        _, py = to_px(x_lo, v)
        img[int(round(py)), left:right + 1] = GRID
        label = _label(v)
        _text(img, left - 6 - _text_width(label), int(round(py)) - 5, label)
    for v in _nice_ticks(x_lo, x_hi):
        px, _ = to_px(v, y_lo)
        img[top:bottom + 1, int(round(px))] = GRID
        label = _label(v)
        _text(img, int(round(px)) - _text_width(label) // 2, bottom + 6, label)
    img[[top, bottom], left:right + 1] = INK
    img[top:bottom + 1, [left, right]] = INK
    _text(img, left, top - 16, panel.title)
    _text(img, right - _text_width(panel.xlabel), bottom + 20, panel.xlabel)
    for curve, color in zip(panel.curves, colors):
        dash = (np.arange(top, bottom + 1) // 5) % 2 == 0
        for mark in curve.marks:
            px, _ = to_px(mark, y_lo)
            if left < px < right:
                img[np.arange(top, bottom + 1)[dash], int(round(px))] = color
    for curve, color in zip(panel.curves, colors):
        if curve.x.size:
            px, py = to_px(curve.x, curve.y)
            ok = np.isfinite(py)
            _polyline(img, px[ok], py[ok], color, box)
    width = max((_text_width(c.name) for c in panel.curves), default=0) + 30
    lx, ly = right - width - 6, top + 6
    img[ly - 3:ly + 14 * len(panel.curves), lx - 4:right - 3] = WHITE
    for i, (curve, color) in enumerate(zip(panel.curves, colors)):
        img[ly + 14 * i + 4:ly + 14 * i + 7, lx:lx + 18] = color
        _text(img, lx + 24, ly + 14 * i, curve.name)


def render(panels: list[Panel], title: str = "", width: int = 960, panel_height: int = 300) -> np.ndarray:
    """An RGB ``uint8`` image ``[height, width, 3]`` with the panels stacked vertically."""
    margin_left, margin_right, head, gap = 90, 20, 40 if title else 10, 60
    height = head + len(panels) * (panel_height + gap)
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    if title:
        _text(img, margin_left, 10, title, scale=3)
    colors = iter(PALETTE * 100)
    for i, panel in enumerate(panels):
        top = head + 20 + i * (panel_height + gap)
        box = (margin_left, top, width - margin_right, top + panel_height - 20)
        _draw_panel(img, panel, box, [next(colors) for _ in panel.curves])
    return img


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(img: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of an RGB ``uint8`` image, with optional ``tEXt`` chunks (Latin-1 keys and values)."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    height, width, _ = img.shape
    raw = np.concatenate([np.zeros((height, 1), np.uint8), img.reshape(height, -1)], axis=1)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    out += [_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)), _chunk(b"IEND", b"")]
    return b"".join(out)


def _thin(a: np.ndarray, max_points: int) -> np.ndarray:
    return a if a.size <= max_points else a[np.linspace(0, a.size - 1, max_points).astype(np.int64)]


def save_plot(path: str | Path, panels: list[Panel], title: str = "", max_points: int = 200) -> None:
    """Render ``panels`` to ``path``; the tEXt chunk holds every curve, thinned to ``max_points``."""
    meta = {"title": title, "curves": [
        {"name": c.name, "panel": p.title, "marks": [float(m) for m in c.marks],
         "x": [float(f"{v:.9g}") for v in _thin(np.asarray(c.x), max_points)],
         "y": [float(f"{v:.6g}") if math.isfinite(v) else None for v in _thin(np.asarray(c.y), max_points)]}
        for p in panels for c in p.curves]}
    data = encode_png(render(panels, title), {TEXT_KEY: json.dumps(meta, allow_nan=False, default=str)})
    Path(path).write_bytes(data)
