"""``python -m fastopt bench --plot``: a PNG of GB/s against size, one panel per optimizer, with the
measured ceiling (needs matplotlib)."""
from __future__ import annotations


def plot(rows, path):
    """A PNG of GB/s against size: one panel per optimizer, a line per implementation, and the
    ceiling measured interleaved with that optimizer's cases as a dashed line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["optimizer"] for r in rows if "optimizer" in r))
    impls = list(dict.fromkeys(r["impl"] for r in rows if "optimizer" in r and r["impl"] != "ceiling(update)"))
    colors = {impl: f"C{k}" for k, impl in enumerate(impls)}
    cols = min(3, max(1, len(names)))
    nrows = -(-len(names) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names):
        series = {}
        for r in rows:
            if r.get("optimizer") == name and "gbps" in r:
                series.setdefault(r["impl"], []).append((r["size"], r["gbps"]))
        for impl, pts in series.items():
            pts.sort()
            if impl == "ceiling(update)":
                ax.plot(*zip(*pts), "k--", label="ceiling (update kernel, same bytes)")
            else:
                ax.plot(*zip(*pts), marker="o", color=colors[impl], label=impl)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("elements")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes[0][0].set_ylabel("GB/s (bytes a fused step moves)")
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle("fastopt bench: one optimizer step on one flat buffer (interleaved medians)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
