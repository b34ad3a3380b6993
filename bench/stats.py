"""Percentiles of latencies, in milliseconds."""

import math


def percentile(ordered_seconds: list[float], rank: float) -> float | None:
    """The nearest-rank percentile of sorted durations (seconds), in ms with two decimals."""
    if not ordered_seconds:
        return None
    index = max(0, min(len(ordered_seconds) - 1, math.ceil(rank / 100 * len(ordered_seconds)) - 1))
    return round(ordered_seconds[index] * 1000, 2)


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "requests": len(ordered),
        "p50_ms": percentile(ordered, 50),
        "p95_ms": percentile(ordered, 95),
        "p99_ms": percentile(ordered, 99),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 2) if ordered else None,
    }
