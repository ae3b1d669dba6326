"""The offline judge's trained head: standardised features -> L2-regularised logistic regression,
fitted by Newton's method in numpy (a few hundred labelled items; no ML framework needed).

A head is stored as one small `.npz` (weights, feature means/scales, threshold) plus its
metadata as JSON inside it: what it was trained on, how it was measured, by which code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judges.offline.features import HAND_FEATURES, EmbeddingSpec

FORMAT = "siegeflow-offline-judge/2"  # /2: the embedding spec is stored in `meta`


@dataclass(frozen=True, kw_only=True)
class Head:
    """Logistic regression over standardised features; `threshold` on P(success)."""

    weights: Any  # (d,) float64
    bias: float
    mean: Any  # (d,)
    scale: Any  # (d,)
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding(self) -> EmbeddingSpec:
        """What to embed for this head (see `EmbeddingSpec`); defaults for a head fitted bare."""
        return EmbeddingSpec(**self.meta.get("embedding", {}))

    def probability(self, features: Any) -> Any:
        import numpy as np

        z = ((np.asarray(features, np.float64) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    def save(self, path: Path | str) -> Path:
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle, weights=self.weights.astype(np.float32), bias=np.float64(self.bias),
                mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                threshold=np.float64(self.threshold),
                meta=np.frombuffer(json.dumps({"format": FORMAT, **self.meta}).encode(), np.uint8),
            )
        return path

    @classmethod
    def load(cls, path: Path | str) -> Head:
        import numpy as np

        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode())
            head = cls(weights=data["weights"].astype(np.float64), bias=float(data["bias"]),
                       mean=data["mean"].astype(np.float64),
                       scale=data["scale"].astype(np.float64),
                       threshold=float(data["threshold"]), meta=meta)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not an offline-judge weights file ({exc})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r} "
                             "(train it again with `siegeflow judges train`)")
        try:
            width = len(HAND_FEATURES) + len(head.embedding.columns)
        except TypeError as exc:
            raise ValueError(f"{path}: bad embedding spec in its metadata ({exc})") from None
        if head.weights.shape != (width,):
            raise ValueError(f"{path}: {head.weights.shape[0]} weights, expected {width} "
                             "(hand features + embedding cosines)")
        return head


def fit(features: Any, labels: Any, *, l2: float = 10.0, threshold: float = 0.5,
        meta: dict[str, Any] | None = None, iterations: int = 100) -> Head:
    """Fit the head (Newton-Raphson on the penalised log-likelihood; the bias is not penalised).

    Features are standardised first, so one `l2` suits every feature.
    """
    import numpy as np

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.float64)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], float(l2))
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return Head(weights=w[:-1], bias=float(w[-1]), mean=mean, scale=scale, threshold=threshold,
                meta=dict(meta or {}))
