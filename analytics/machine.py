"""A machine's signals together: one score over the levels of all of them, and the machine's incidents.

Faults show in several signals of one machine at once (a pump's current, pressure, flow and
vibration). Each signal's level (:mod:`analytics.condition`: its residual against its long-term
expectation, in sds of a normal chunk's mean, smoothed over chunks) may stay under its own
threshold while together they are far from normal. The **machine score** is Hotelling's T² of the
vector of its signals' smoothed levels,

``T² = (s - μ)ᵀ Σ⁻¹ (s - μ)``,

with ``μ`` and ``Σ`` learnt per machine in normal operation (EWMA over chunks of 8 samples, rate
``rate``, a running mean while warming up) and ``Σ`` shrunk toward its diagonal (``shrink``) and
floored (``ridge``), so that a handful of chunks gives a usable inverse. Learning pauses while the
machine or any of its signals is in alarm. The score is ``T² / q``, where ``q`` is the chi-square
quantile of ``p`` degrees of freedom (``p`` the machine's signals) at ``1 - 1e-4`` (Wilson-Hilferty):
1 means "at the threshold", like the signals' combined scores. It is 0 until ``warm_chunks``
normal chunks have been learnt since the machine's last signal became known.

Three signals shifted by 1.5 sd each give T² ≈ 3 × 1.5² × (the chunk-mean gain) although no
single signal crosses its own threshold.

An **incident** is the time during which the machine is abnormal: its own score in alarm, or any
of its signals (:class:`Incidents`); that is what ``_machine`` alarms and the replay's
``_machine_alarm`` column report.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> m = MachineScore(np.zeros(4, np.intp))
>>> for _ in range(200):
...     score = m.update(rng.normal(0, 1, 4), np.ones(4, bool), np.ones(1, bool), 8)
>>> bool(score[0] < 1.0)
True
>>> bool(m.update(np.array([3.0, 3.0, 3.0, 0.0]), np.ones(4, bool), np.ones(1, bool), 8)[0] > 1.0)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.alarms import AlarmEvent
from edge_agent.analytics.detectors.season import PERIOD

F64 = NDArray[np.float64]
#: Standard normal quantile of 1 - 1e-4: the machine score's chance per chunk in normal operation.
_Z = 3.719


def chi2_quantile(dof: NDArray[np.int64] | int, z: float = _Z) -> F64:
    """The chi-square quantile of ``dof`` degrees of freedom at the normal quantile ``z`` (Wilson-Hilferty)."""
    k = np.maximum(np.asarray(dof, np.float64), 1.0)
    c = 2.0 / (9.0 * k)
    q: F64 = k * (1.0 - c + z * np.sqrt(c)) ** 3
    return q


class MachineScore:
    """Hotelling's T² per machine over its signals' smoothed levels; state is a few arrays per machine."""

    def __init__(
        self,
        machine_of: NDArray[np.intp],
        rate: float = 1.0 / 64.0,
        shrink: float = 0.3,
        ridge: float = 0.05,
        warm_chunks: float = 16.0,
        prior: float = 32.0,
    ) -> None:
        machine_of = np.asarray(machine_of, np.intp)
        self.n_machines = int(machine_of.max()) + 1 if machine_of.shape[0] and machine_of.max() >= 0 else 0
        self.rate, self.shrink, self.ridge, self.warm_chunks, self.prior = rate, shrink, ridge, warm_chunks, prior
        n = machine_of.shape[0]
        #: Each signal's machine (-1: none).
        self.machine_of = machine_of
        counts = np.bincount(machine_of[machine_of >= 0], minlength=self.n_machines)
        width = int(counts.max()) if self.n_machines else 0
        #: ``[machines, width]`` signal indices; ``n`` (a slot that is always 0) pads.
        self.members = np.full((self.n_machines, width), n, np.intp)
        for m in range(self.n_machines):
            cols = np.flatnonzero(machine_of == m)
            self.members[m, : cols.shape[0]] = cols
        self.size = counts
        self.threshold = chi2_quantile(counts)
        self.mean = np.zeros((self.n_machines, width))
        #: Machines of up to ``FULL`` signals learn their signals' correlations; larger ones (a
        #: device with a hundred registers) their variances only: a full covariance costs its
        #: width squared per chunk, more than all its signals' models.
        self.full = width <= self.FULL
        shape = (self.n_machines, width, width) if self.full else (self.n_machines, width)
        self.cov = np.zeros(shape)
        self.chunks = np.zeros(self.n_machines)
        self.known = np.zeros(self.n_machines, np.int64)
        #: The inverse of each machine's shrunk covariance, and how many chunks it had learnt then.
        self.precision = np.zeros(shape)
        self.inverted_at = np.full(self.n_machines, -np.inf)
        #: Latest score per machine (T² / q).
        self.score = np.zeros(self.n_machines)

    def update(self, level: F64, known: NDArray[np.bool_], learn: NDArray[np.bool_], rows: int) -> F64:
        """Each machine's score for a chunk (or ``rows`` rows of one); then learn where ``learn``.

        ``level`` is per signal (smoothed, finite), ``known`` marks the signals whose level is known.
        """
        if self.n_machines == 0:
            return self.score
        s = self.of_members(np.where(known, level, 0.0), 0.0)
        now_known = self.of_members(known, False).sum(axis=1)
        grew = now_known != self.known
        if grew.any():  # a signal became known: its zeros so far say nothing of its spread
            self.chunks[grew] = 0.0
            self.inverted_at[grew] = -np.inf
            self.known = now_known
        d = s - self.mean * (self.chunks / (self.chunks + self.prior))[:, None]
        ready = (self.chunks >= self.warm_chunks) & (now_known > 1)  # one signal alone is no machine
        if ready.any():
            # The inverse is refreshed after every ``REFRESH`` chunks learnt, not at every chunk: a
            # machine of 100 signals would otherwise cost more than all its signals' models.
            stale = np.flatnonzero(ready & (self.chunks - self.inverted_at >= self.REFRESH))
            if stale.shape[0]:
                shrunk = self._shrunk(stale)
                self.precision[stale] = np.linalg.inv(shrunk) if self.full else 1.0 / shrunk
                self.inverted_at[stale] = self.chunks[stale]
            if self.full:
                t2 = (d * np.matmul(self.precision, d[..., None])[..., 0]).sum(axis=1)
            else:
                t2 = (d * d * self.precision).sum(axis=1)
            self.score = np.where(ready, t2 / self.threshold, 0.0)
        else:
            self.score = np.zeros(self.n_machines)
        # Learning skips the chunks that are already half-way to the threshold (a fault building
        # up is not learnt), and bounds each level's step: the normal moves slowly if at all.
        step = learn & (now_known > 1) & ~(ready & (self.score >= 0.5))
        if step.any():
            chunks = rows / PERIOD
            rate = np.maximum(1.0 - (1.0 - self.rate) ** chunks, chunks / (self.chunks + chunks))
            r = np.where(step, rate, 0.0)
            d = np.clip(d, -3.0, 3.0)
            self.mean += r[:, None] * d
            if self.full:
                self.cov += r[:, None, None] * (d[:, :, None] * d[:, None, :] - self.cov)
            else:
                self.cov += r[:, None] * (d * d - self.cov)
            self.chunks += step * chunks
        return self.score

    #: Chunks learnt between two inversions of a machine's covariance.
    REFRESH = 8.0
    #: The widest machine whose signals' correlations are learnt.
    FULL = 16

    def _shrunk(self, machines: NDArray[np.intp]) -> F64:
        """The covariances shrunk toward their diagonals, with a floor on the diagonal, and while few
        chunks are learnt toward the identity (the levels are in their own normal sds: about 1 each,
        independent, is the prior worth ``prior`` chunks)."""
        cov = self.cov[machines]
        chunks = self.chunks[machines]
        if not self.full:  # variances only: the floor, and the prior of 1 each
            floor_ = self.ridge * np.maximum(cov.mean(axis=1, keepdims=True), 1e-6) + 1e-9
            w_ = (chunks / (chunks + self.prior))[:, None]
            var: F64 = w_ * (cov + floor_) + (1.0 - w_)
            return var
        diag = np.einsum("mii->mi", cov)
        floor = self.ridge * np.maximum(diag.mean(axis=1, keepdims=True), 1e-6) + 1e-9
        eye = np.eye(cov.shape[1])
        shrunk = (1.0 - self.shrink) * cov + eye * (self.shrink * diag + floor)[:, None, :]
        w = (chunks / (chunks + self.prior))[:, None, None]
        blended: F64 = w * shrunk + (1.0 - w) * eye
        return blended

    def reset(self, machines: NDArray[np.intp]) -> None:
        """Learn these machines' normal afresh."""
        self.mean[machines] = 0.0
        self.cov[machines] = 0.0
        self.chunks[machines] = 0.0
        self.score[machines] = 0.0
        self.inverted_at[machines] = -np.inf

    def of_members(self, values: NDArray[Any], fill: Any) -> NDArray[Any]:
        """``values`` (signals on the last axis) as ``[..., machines, width]``: each machine's
        signals, ``fill`` where a narrower machine has none."""
        pad = np.full((*values.shape[:-1], 1), fill, values.dtype)
        gathered: NDArray[Any] = np.concatenate([values, pad], axis=-1)[..., self.members]
        return gathered

    def any_member(self, flags: NDArray[np.bool_] | NDArray[np.uint8]) -> NDArray[np.bool_]:
        """Per machine (last axis): whether any of its signals is set in ``flags`` (signals on the last axis)."""
        hit: NDArray[np.bool_] = np.asarray(self.of_members(np.asarray(flags, bool), False).any(axis=-1))
        return hit

    def to_signals(self, per_machine: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Per signal, its machine's entry of ``per_machine`` (False for a signal without one)."""
        spread: NDArray[np.bool_] = np.append(per_machine, False)[self.machine_of]
        return spread


class Incidents:
    """Per machine, the time it is abnormal (its score in alarm, or any signal), as alarm events."""

    def __init__(self, n_machines: int) -> None:
        self.active = np.zeros(n_machines, bool)
        self.start_ns = np.zeros(n_machines, np.int64)
        self.peak = np.zeros(n_machines)
        self.cause = [""] * n_machines

    def update(
        self, abnormal: NDArray[np.bool_], ts: NDArray[np.int64], peak: F64, cause: list[str]
    ) -> list[AlarmEvent]:
        """``abnormal`` ``[rows, machines]`` with the rows' times ``ts`` (same shape, UTC ns) and
        peak scores; ``cause`` names what made each machine abnormal when it first is in this block."""
        events: list[AlarmEvent] = []
        #: Per machine, the first row of its current incident in this block.
        since = np.zeros(self.active.shape[0], np.intp)
        changes = np.flatnonzero((abnormal != np.vstack([self.active[None], abnormal[:-1]])).any(axis=0))
        for m in changes.tolist():
            col = abnormal[:, m]
            started_here = False
            for i in np.flatnonzero(col != np.r_[bool(self.active[m]), col[:-1]]).tolist():
                if col[i]:
                    self.active[m], self.start_ns[m], self.peak[m] = True, ts[i, m], peak[i, m]
                    self.cause[m], since[m], started_here = cause[m], i, True
                    events.append(AlarmEvent(m, self.cause[m], int(ts[i, m]), None, float(peak[i, m])))
                    continue
                top = max(float(self.peak[m]), float(peak[since[m] : i, m].max(initial=-np.inf)))
                if started_here:  # started and ended in this block: one event, not two
                    events.pop()
                end = AlarmEvent(m, self.cause[m], int(self.start_ns[m]), int(ts[i, m]), top, started_here)
                events.append(end)
                self.active[m], started_here = False, False
        on = np.flatnonzero(self.active)
        if on.shape[0] and abnormal.shape[0]:
            rows = np.arange(abnormal.shape[0])[:, None]
            during = np.where(rows >= since[on], peak[:, on], -np.inf)
            self.peak[on] = np.maximum(self.peak[on], during.max(axis=0))
        return events

    def reset(self, machines: NDArray[np.intp], now_ns: int) -> list[AlarmEvent]:
        ended = [
            AlarmEvent(int(m), self.cause[m], int(self.start_ns[m]), now_ns, float(self.peak[m]), False)
            for m in np.asarray(machines).tolist()
            if self.active[m]
        ]
        self.active[machines] = False
        return ended
