"""Turns the repeated measurements into medians, a plain-text table and callplane's ratios."""

from __future__ import annotations

from typing import Any

from bench.common import median
from bench.workloads import Metric, Row, Workload

CALLPLANE = "callplane"
NAME_WIDTH = 24
CELL_WIDTH = 14
ERROR_CHARS = 160
NOT_APPLICABLE = "-"  # the cell of a metric a row does not have


def summarize(workload: Workload, runs: list[Row]) -> Row:
    """Each metric's median over the repeats that finished; the first error if any failed.

    A metric is None (deadlock) only if every repeat deadlocked; `deadlocked` counts those
    that did, so a sometimes-deadlocking system is visible. A metric no repeat has (one that
    does not apply to the system) stays out of the summary.
    """
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        return {"error": errors[0]}
    summary: Row = {"repeats": len(runs)}
    for metric in (m for m in workload.metrics if any(m.key in run for run in runs)):
        values = [run[metric.key] for run in runs if run.get(metric.key) is not None]
        summary[metric.key] = median(values) if values else None
    summary["deadlocked"] = sum(any(m.key in run and run[m.key] is None for m in workload.metrics)
                                for run in runs)
    return summary


def render(workloads: list[Workload], medians: dict[str, dict[str, Row]]) -> str:
    """One block per workload: a row per system or variant, then callplane's ratio lines."""
    blocks = []
    for workload in workloads:
        rows = medians.get(workload.key, {})
        if not rows:
            blocks.append(f"{workload.title}\n  (no results: no system ran it)")
            continue
        lines = [workload.title, _line("system", [m.label for m in workload.metrics])]
        lines += [_row_line(name, row, workload.metrics) for name, row in rows.items()]
        lines += _ratio_lines(workload.metrics, rows)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _row_line(name: str, row: Row, metrics: tuple[Metric, ...]) -> str:
    if "error" in row:
        return f"  {name:<{NAME_WIDTH}}error: {row['error'][:ERROR_CHARS]}"
    line = _line(name, [_format(row[metric.key]) if metric.key in row else NOT_APPLICABLE
                        for metric in metrics])
    if 0 < row["deadlocked"] < row["repeats"]:
        line += f"   (deadlocked in {row['deadlocked']}/{row['repeats']} runs)"
    return line


def _ratio_lines(metrics: tuple[Metric, ...], rows: dict[str, Row]) -> list[str]:
    """callplane / best peer per compared metric; above 1 is better only where higher is."""
    ours = {name: row for name, row in rows.items() if name.startswith(CALLPLANE)}
    peers = {name: row for name, row in rows.items() if not name.startswith(CALLPLANE)}
    if not ours:
        return ["  ratio callplane / best peer: n/a (callplane not run)"]
    lines = []
    for metric in (m for m in metrics if m.compare):
        best = _best_peer(metric, peers)
        for name, row in ours.items():
            value = row.get(metric.key)
            prefix = f"  ratio {name} / best peer, {metric.label}: "
            if best is None:
                lines.append(prefix + "n/a (no peer finished)")
            elif value is None:
                lines.append(prefix + f"n/a ({name} has no value)")
            else:
                peer_name, peer_value = best
                lines.append(prefix + f"{value / peer_value:.2f}x "
                                      f"(vs {peer_name} {_format(peer_value).strip()}, "
                                      f"{'higher' if metric.higher_is_better else 'lower'} "
                                      f"is better)")
    return lines


def _best_peer(metric: Metric, peers: dict[str, Row]) -> tuple[str, float] | None:
    values = [(name, row[metric.key]) for name, row in peers.items()
              if row.get(metric.key) is not None]
    if not values:
        return None
    pick = max if metric.higher_is_better else min
    return pick(values, key=lambda pair: pair[1])


def _line(name: str, cells: list[str]) -> str:
    return f"  {name:<{NAME_WIDTH}}" + "".join(f"{cell:>{CELL_WIDTH}}" for cell in cells)


def _format(value: Any) -> str:
    if value is None:
        return "deadlock"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
