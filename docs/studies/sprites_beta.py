"""The sprites study: MIG and the ELBO against beta for the VAE and beta-TCVAE.

Run the sweep, then summarise it:

    npvae sweep docs/studies/sprites-beta.json --out sweeps/sprites-beta --workers 2
    python docs/studies/sprites_beta.py sweeps/sprites-beta

This prints the README's table (mean ± standard deviation over the seeds of each
objective and beta) and writes docs/figures/sprites-beta.png (MIG and the held-out
negative ELBO against beta) and docs/figures/sprites-traversals.png (the latent
traversals of the run of highest MIG).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

FIGURES = Path(__file__).resolve().parents[1] / "figures"
COLUMNS = (("mig", "MIG", 3), ("factor_vae_score", "FactorVAE", 3),
           ("negative_elbo", "-ELBO (nats)", 1), ("kl", "KL (nats)", 1),
           ("active_units", "active units", 1))


def read_rows(sweep_dir):
    """The ok rows of a sweep's results.csv, numbers as floats."""
    with open(Path(sweep_dir) / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]
    for r in rows:
        for key, _, _ in COLUMNS:
            r[key] = float(r[key])
        r["beta"] = float(r["beta"])
    return rows


def groups(rows):
    """{(objective, beta): [rows over the seeds]}, in the order objective, then beta."""
    out = {}
    for r in sorted(rows, key=lambda r: (r["objective"], r["beta"])):
        out.setdefault((r["objective"], r["beta"]), []).append(r)
    return out


def mean_sd(values):
    a = np.asarray(values, dtype=np.float64)
    return a.mean(), a.std(ddof=1) if a.size > 1 else 0.0


def table(rows):
    """The markdown table: one line per objective and beta, mean ± sd over the seeds."""
    head = "| objective | beta | seeds | " + " | ".join(name for _, name, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for (objective, beta), rs in groups(rows).items():
        cells = []
        for key, _, digits in COLUMNS:
            m, s = mean_sd([r[key] for r in rs])
            cells.append(f"{m:.{digits}f} ± {s:.{digits}f}")
        lines.append(f"| {objective} | {beta:g} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_summary(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    by_objective = {}
    for (objective, beta), rs in groups(rows).items():
        by_objective.setdefault(objective, []).append((beta, rs))
    for i, (objective, points) in enumerate(by_objective.items()):
        label = {"elbo": "VAE (beta weighs the KL)",
                 "tcvae": "beta-TCVAE (beta weighs the TC)"}.get(objective, objective)
        for ax, key in zip(axes, ("mig", "negative_elbo")):
            betas = [b for b, _ in points]
            stats = [mean_sd([r[key] for r in rs]) for _, rs in points]
            ax.errorbar(betas, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o",
                        capsize=3, color=f"C{i}", label=label)
            ax.scatter([b for b, rs in points for _ in rs], [r[key] for _, rs in points for r in rs],
                       s=10, alpha=0.4, color=f"C{i}")
    axes[0].set(xscale="log", xlabel="beta", ylabel="MIG (held out)",
                title="mutual information gap")
    axes[1].set(xscale="log", xlabel="beta", ylabel="negative ELBO (nats, held out)",
                title="negative ELBO")
    for ax in axes:
        ax.set_xticks(sorted({r["beta"] for r in rows}))
        ax.set_xticklabels([f"{b:g}" for b in sorted({r["beta"] for r in rows})])
    axes[0].legend(fontsize=8)
    seeds = max(len(rs) for rs in groups(rows).values())
    fig.suptitle(f"sprites, latent_dim 10: mean ± sd over {seeds} seeds (points: each run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_best_traversals(sweep_dir, rows, path):
    """The traversals figure of the run of highest MIG (every run draws its own), copied."""
    import shutil

    best = max(rows, key=lambda r: r["mig"])
    shutil.copyfile(Path(sweep_dir) / "runs" / best["run"] / "figures" / "traversals.png", path)
    return best["run"], path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="the folder `npvae sweep` wrote")
    parser.add_argument("--figures", default=str(FIGURES), help="where the figures go")
    args = parser.parse_args(argv)
    rows = read_rows(args.sweep_dir)
    figures = Path(args.figures)
    print(table(rows))
    print(f"\nwrote {draw_summary(rows, figures / 'sprites-beta.png')}")
    name, path = draw_best_traversals(args.sweep_dir, rows, figures / "sprites-traversals.png")
    print(f"wrote {path} (run {name})")
    spec = json.loads((Path(args.sweep_dir) / "spec.json").read_text())
    print(f"spec: {json.dumps(spec)}")


if __name__ == "__main__":
    main()
