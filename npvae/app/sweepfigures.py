"""The figures of a sweep (npvae.app.sweep), drawn from its results' ok rows.

rate_distortion.png, when beta takes two values or more: the KL against the
reconstruction term, one faint point per run, and per beta the mean over seeds with the
standard deviation as error bars, one curve per value of the other varied settings.
<setting>.png for each other varied setting that takes two values or more: every metric
against it (MIG and the FactorVAE score too, for data with known factors), mean and
standard deviation over seeds. Drawn with the run figures' Agg
canvas and written atomically (npvae.app.plots).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .plots import _new_figure, _save
from .sweep import METRICS, format_value

METRIC_LABELS = {
    "negative_elbo": "held-out negative ELBO (nats)",
    "reconstruction": "reconstruction -E log p(x|z) (nats)",
    "kl": "KL(q(z|x) || p(z)) (nats)",
    "log_likelihood": "log p(x), importance weighted (nats)",
    "active_units": "active units",
    "mig": "mutual information gap (MIG)",
    "factor_vae_score": "FactorVAE score",
}


def _key(value):
    return json.dumps(value, sort_keys=True)


def _numeric(values):
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _positions(values):
    """x positions of a setting's values: the numbers themselves, or 0, 1, ... in order of
    first appearance for values that are not numbers (lists, text); tick labels."""
    distinct = []
    for v in values:
        if _key(v) not in [_key(d) for d in distinct]:
            distinct.append(v)
    if _numeric(distinct):
        return {_key(v): float(v) for v in distinct}, None
    pos = {_key(v): float(i) for i, v in enumerate(distinct)}
    return pos, [format_value(v) for v in distinct]


def _mean_sd(values):
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _groups(rows, x_key, line_keys):
    """{line: {x: [rows]}}: rows of one line share the line_keys' values; rows at one x of
    a line differ only in the seed (and settings not varied)."""
    lines = {}
    for row in rows:
        line = tuple((k, _key(row[k])) for k in line_keys)
        lines.setdefault(line, {}).setdefault(_key(row[x_key]), []).append(row)
    return lines


def _line_label(line, rows_by_x):
    some = next(iter(rows_by_x.values()))[0]
    return ", ".join(f"{k}={format_value(some[k])}" for k, _ in line) or None


def draw_sweep_figures(rows, varied, folder, k=None):
    """The sweep's figures from its ok rows; returns the paths written.

    rate_distortion.png (when beta takes two values or more): KL against reconstruction,
    one faint point per run, and per beta the mean over seeds with the standard deviation
    as error bars, one curve per value of the other varied settings. <setting>.png for
    each varied setting but the seed that takes two values or more: each metric against
    it, mean and standard deviation over seeds.
    """
    folder = Path(folder)
    swept = [s for s in varied if s != "seed" and len({_key(r[s]) for r in rows}) > 1]
    written = []
    seeds = len({_key(r["seed"]) for r in rows}) if "seed" in varied else 1
    spread = f"mean ± sd over {seeds} seeds" if seeds > 1 else "one run per point"
    if "beta" in swept:
        fig = _new_figure(7, 5.5)
        ax = fig.subplots()
        ax.scatter([r["kl"] for r in rows], [r["reconstruction"] for r in rows], s=12,
                   color="0.6", alpha=0.6, label="each run", zorder=1)
        others = [s for s in varied if s not in ("beta", "seed")]
        for i, (line, by_beta) in enumerate(_groups(rows, "beta", others).items()):
            points = sorted(by_beta.values(), key=lambda rs: rs[0]["beta"])
            kl = [_mean_sd([r["kl"] for r in rs]) for rs in points]
            rec = [_mean_sd([r["reconstruction"] for r in rs]) for rs in points]
            ax.errorbar([m for m, _ in kl], [m for m, _ in rec], xerr=[s for _, s in kl],
                        yerr=[s for _, s in rec], marker="o", capsize=3, color=f"C{i % 10}",
                        label=_line_label(line, by_beta) or "mean", zorder=2)
            for rs, (x, _), (y, _) in zip(points, kl, rec):
                ax.annotate(f"β={format_value(rs[0]['beta'])}", (x, y), textcoords="offset points",
                            xytext=(5, 5), fontsize=8)
        ax.set(xlabel="rate: KL(q(z|x) || p(z)) (nats)",
               ylabel="distortion: -E log p(x|z) (nats)",
               title=f"rate-distortion over beta ({spread})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, folder / "rate_distortion.png"))
    for setting in swept:
        written.append(_plot_metrics_against(rows, varied, setting, folder, spread, k,
                                             _new_figure, _save))
    return written


def _plot_metrics_against(rows, varied, setting, folder, spread, k, new_figure, save):
    # the disentanglement metrics exist only for data with known factors
    metrics = [m for m in METRICS if all(r[m] is not None for r in rows)]
    n_cols = 3 if len(metrics) < 6 else 4
    fig = new_figure(5 * n_cols, 8)
    axes = fig.subplots(2, n_cols).ravel()
    pos, labels = _positions([r[setting] for r in rows])
    numbers = [v for v in pos.values()]
    log_x = labels is None and min(numbers) > 0 and max(numbers) / min(numbers) > 10
    others = [s for s in varied if s not in (setting, "seed")]
    lines = list(_groups(rows, setting, others).items())  # in spec order
    for ax, metric in zip(axes, metrics):
        for i, (line, by_x) in enumerate(lines):
            xs = sorted(by_x, key=lambda key: pos[key])
            stats = [_mean_sd([r[metric] for r in by_x[x]]) for x in xs]
            ax.errorbar([pos[x] for x in xs], [m for m, _ in stats], yerr=[s for _, s in stats],
                        marker="o", capsize=3, color=f"C{i % 10}",
                        label=_line_label(line, by_x) or "mean")
            every = [(pos[x], r[metric]) for x in xs for r in by_x[x]]
            ax.scatter([p for p, _ in every], [v for _, v in every], s=10, alpha=0.4,
                       color=f"C{i % 10}")
        label = METRIC_LABELS[metric]
        if metric == "log_likelihood" and k is not None:
            label = f"log p(x), importance weighted, k={k} (nats)"
        ax.set(xlabel=setting, ylabel=label)
        if log_x:
            ax.set_xscale("log")
        if labels is not None:
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, fontsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    if handles:
        axes[-1].legend(handles, names, loc="center", fontsize=9, title=spread)
    fig.suptitle(f"held-out metrics against {setting} ({spread})")
    fig.tight_layout()
    return save(fig, folder / f"{setting}.png")
