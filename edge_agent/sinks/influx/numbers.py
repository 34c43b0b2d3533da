"""Numbers to ASCII in bulk: the value text of line-protocol points, built in numpy.

Python makes a string object per number (``repr`` of a float cost about 0.6 µs here, ``str`` of an
int about 0.3 µs). This module writes the text of a whole batch into one byte matrix instead:
digits come four at a time from a table, each piece sits in a fixed column (NUL where a point has
nothing there), and ``bytes.translate`` drops the NULs (a numpy mask over the cells took 8 times
as long).

A value is written as an integer when it is integral, else with the fewest decimals (1 to 9)
that read back as exactly the same float64: the decimal ``s / 10**k`` of an integer ``s < 2**53``
parses to the double nearest to it, which is the correctly rounded quotient ``s / 10**k`` that was
compared with the value. Values that need more digits (``0.1 + 0.2``) and non-finite values
are left to the caller (:func:`values_text` says which).

>>> import numpy as np
>>> values_text(np.array([21.5, -3.0, 0.05, 0.1 + 0.2, 7.0]), np.array([0, 0, 0, 0, 2], np.uint8))
([b'21.5', b'-3', b'0.05', b'', b'2i'], array([3]))
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_POW10 = 10 ** np.arange(20, dtype=np.uint64)
#: Integral values below this magnitude are written as integers (exact in float64).
EXACT_INT = 2.0**53
_MAX_DECIMALS = 9
#: The four ASCII digits of 0..9999 (row 0..9999); the same with NUL for leading zeros, of a
#: limb above the number's first digit (10000..19999: 0 is all NUL) and of its last limb
#: (20000..29999: 0 is "0").
_FOUR = (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1]) % 10 + ord("0")).astype(np.uint8)
_LEAD = np.where(np.arange(10_000)[:, None] >= np.array([1000, 100, 10, 1]), _FOUR, 0).astype(np.uint8)
_LAST = _LEAD.copy()
_LAST[0, 3] = ord("0")
_TABLE = np.concatenate([_FOUR, _LEAD, _LAST])
_LIMB = np.uint64(10_000)


def digit_count(u: NDArray[np.uint64]) -> NDArray[np.intp]:
    """Decimal digits of each non-negative integer (1 for 0)."""
    counts: NDArray[np.intp] = np.searchsorted(_POW10[1:], u, side="right") + 1
    return counts


def width_of(u: NDArray[np.uint64]) -> int:
    """Digits of the largest of ``u`` (0 for none)."""
    return int(digit_count(u.max(keepdims=True))[0]) if u.shape[0] else 0


def digits(u: NDArray[np.uint64], width: int, blank: bool = True) -> NDArray[np.uint8]:
    """``[n, width]`` ASCII digits of ``u``, right-aligned; leading zeros NUL when ``blank``, else "0"."""
    limbs = -(-width // 4)
    out = np.empty((u.shape[0], 4 * limbs), np.uint8)
    rest = u
    for j in range(limbs - 1, -1, -1):
        rest, limb = np.divmod(rest, _LIMB)
        if blank:
            limb = limb.astype(np.intp)
            limb += (rest == 0) * (20_000 if j == limbs - 1 else 10_000)
        out[:, 4 * j : 4 * j + 4] = _TABLE[limb]
    return out[:, 4 * limbs - width :]


def decimals(a: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
    """For finite ``a >= 0``: the fewest decimals ``k`` (0..9) with ``round(a * 10**k) / 10**k == a``
    (-1 where none), and that scaled integer."""
    k = np.full(a.shape[0], -1, np.int64)
    scaled = np.zeros(a.shape[0], np.uint64)
    left = np.flatnonzero(a < EXACT_INT)
    for places in range(_MAX_DECIMALS + 1):
        if left.shape[0] == 0:
            break
        factor = 10.0**places
        part = a[left]
        s = np.rint(part * factor)
        ok = (s / factor == part) & (s < EXACT_INT)
        if ok.all():
            k[left], scaled[left] = places, s.astype(np.uint64)
            break
        hit = left[ok]
        k[hit], scaled[hit] = places, s[ok].astype(np.uint64)
        left = left[~ok]
    return k, scaled


def values_text(value: NDArray[np.float64], bad: NDArray[np.uint8] | None) -> tuple[list[bytes], NDArray[np.intp]]:
    """The line-protocol text of every value, and the points left out (their text is ``b""``).

    ``bad`` (optional) is each point's quality code, 0 for good: a point whose code is not 0 is
    written ``CODEi`` (line protocol's integer). A point is left out when its value needs more
    digits than this writes, or is not finite: the caller writes it.
    """
    n = value.shape[0]
    good = np.ones(n, bool) if bad is None else bad == 0
    finite = np.isfinite(value)
    k, scaled = decimals(np.abs(np.where(finite, value, 0.0)))
    k[~finite] = -1
    if bad is not None:  # a bad point's text is its code: an integer, no decimals
        k[~good], scaled[~good] = 0, bad[~good].astype(np.uint64)
    left_out = k < 0
    k[left_out] = 0
    whole, fraction = np.divmod(scaled, _POW10[k])
    w_int, w_frac = width_of(whole), int(k.max())
    sign = np.signbit(value) & good & finite & (value != 0) & ~left_out
    parts = [np.where(sign, ord("-"), 0).astype(np.uint8)[:, None], digits(whole, w_int)]
    if w_frac:
        fraction_cells = digits(fraction * _POW10[w_frac - k], w_frac, blank=False)  # k digits, left-aligned
        fraction_cells *= np.arange(w_frac)[None, :] < k[:, None]
        parts += [np.where(k > 0, ord("."), 0).astype(np.uint8)[:, None], fraction_cells]
    if bad is not None:
        parts.append(np.where(good, 0, ord("i")).astype(np.uint8)[:, None])
    parts.append(np.full((n, 1), ord("\n"), np.uint8))
    cells = np.concatenate(parts, axis=1)
    cells[left_out, :-1] = 0
    texts = cells.tobytes().translate(None, b"\x00").split(b"\n", n - 1)
    texts[-1] = texts[-1][:-1]
    return texts, np.flatnonzero(left_out)
