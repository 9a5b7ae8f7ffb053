"""The human side of an evaluation: FID/KID (and trait metric) curves, sample grid, memorization panel, report.md.

Every file is written atomically; the report links the pictures by relative path, so the ``eval/``
folder can be copied or served as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from evaluation.memorization import NearestTraining
from evaluation.metrics import FID_UNBIASED_MIN_SAMPLES
from pipeline.atomic import atomic_path, write_text

PANEL_ROWS = 8
PANEL_CELL_PX = 96


def plot_curves(records: Sequence[dict[str, Any]], target: Path, *, title: str, best_step: int | None) -> bool:
    """FID, KID, trait FD and trait match over training steps as one PNG; False (nothing written) when none
    was computed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    named = (("fid", "FID"), ("kid_mean", "KID"), ("trait_fd", "trait FD"), ("trait_match", "trait TV"))
    series = [(key, label) for key, label in named if any(key in r for r in records)]
    if not series:
        return False
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.8 * len(series)), sharex=True, squeeze=False)
    for ax, (key, label) in zip(axes[:, 0], series):
        points = sorted((r["step"], r[key], r.get("kid_std")) for r in records if key in r)
        steps = [p[0] for p in points]
        values = [p[1] for p in points]
        if key == "kid_mean":
            ax.errorbar(steps, values, yerr=[p[2] or 0 for p in points], marker="o", capsize=3)
        else:
            ax.plot(steps, values, marker="o")
        if best_step is not None and best_step in steps:
            ax.axvline(best_step, color="tab:green", linestyle="--", linewidth=1, label=f"best (step {best_step})")
            ax.legend(loc="best", fontsize=8)
        ax.set_ylabel(f"{label} (lower is better)")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("training step")
    axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def save_sample_grid(images_uint8: np.ndarray, target: Path, *, count: int = 64) -> None:
    """The first ``count`` generated images as one grid PNG (training's grid layout)."""
    from training.sampling import grid, save_png

    save_png(grid(images_uint8[:count]), target)


def save_memorization_panel(
    fake_uint8: np.ndarray,
    real_uint8: np.ndarray,
    nearest: NearestTraining,
    target: Path,
    *,
    rows: int = PANEL_ROWS,
) -> list[int]:
    """Generated images beside their nearest training images (by features and by pHash), closest first.

    Each row: generated | nearest by features (d1/d2 ratio) | nearest by pHash (bits). A red label marks a
    near-copy. Returns the generated indices shown.
    """
    order = [int(i) for i in np.argsort(nearest.ratio, kind="stable")[:rows]]
    cell, label_px = PANEL_CELL_PX, 14
    header = 16
    panel = Image.new("RGB", (3 * cell + 4 * 4, header + len(order) * (cell + label_px + 4) + 4), "white")
    draw = ImageDraw.Draw(panel)
    for col, text in enumerate(("generated", "nearest (features)", "nearest (pHash)")):
        draw.text((4 + col * (cell + 4), 2), text, fill="black")
    ratio = nearest.ratio
    for row, i in enumerate(order):
        y = header + row * (cell + label_px + 4)
        f_idx, p_idx = int(nearest.feature_index[i]), int(nearest.phash_index[i])
        cells = (
            (fake_uint8[i], f"#{i}", nearest.near_copy[i]),
            (real_uint8[f_idx], f"ratio {ratio[i]:.2f}", nearest.feature_copy[i]),
            (real_uint8[p_idx], f"{nearest.phash_bits[i]} bits", nearest.phash_copy[i]),
        )
        for col, (chw, text, flagged) in enumerate(cells):
            x = 4 + col * (cell + 4)
            tile = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).resize((cell, cell), Image.NEAREST)
            panel.paste(tile, (x, y))
            draw.text((x, y + cell + 1), text + (" COPY" if flagged else ""), fill="red" if flagged else "black")
    with atomic_path(target, suffix=".png") as tmp:
        panel.save(tmp, format="PNG")
    return order


def save_nearest_table(nearest: NearestTraining, item_ids: Sequence[Any] | None, target: Path) -> None:
    """One CSV row per generated image: its nearest training images and whether it is a near-copy."""
    ratio = nearest.ratio
    lines = ["fake_index,real_index,real_item_id,feature_distance,ratio,phash_real_index,"
             "phash_real_item_id,phash_bits,near_copy"]
    for i in range(len(ratio)):
        f_idx, p_idx = int(nearest.feature_index[i]), int(nearest.phash_index[i])
        lines.append(
            f"{i},{f_idx},{_item(item_ids, f_idx)},{nearest.feature_distance[i]:.6g},{ratio[i]:.4f},"
            f"{p_idx},{_item(item_ids, p_idx)},{nearest.phash_bits[i]},{int(nearest.near_copy[i])}"
        )
    write_text(target, "\n".join(lines) + "\n")


def _item(item_ids: Sequence[Any] | None, index: int) -> str:
    return "" if item_ids is None else str(item_ids[index])


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _spread(std: float | None, scale: float) -> str:
    return "" if std is None else f" ± {std * scale:.3f}"


def trait_section(record: dict[str, Any]) -> list[str]:
    """Markdown lines on the collection's own metric: what trait FD and trait TV are, the classifier's
    held-out accuracy per trait type against the majority baseline, and the sample counts behind them."""
    c = record["trait_classifier"]
    lines = [
        "## The collection's own metric (traits)", "",
        f"A small CNN was trained on this collection's own images to recognise its {len(c['trait_types'])} trait "
        f"types ({c['n_train']} images; {c['n_heldout']} held out). **Trait FD** is the Fréchet distance between "
        "its penultimate features of the real and the generated images (FID's math on features that know this "
        "collection's traits). **Trait TV** labels every generated image with the classifier and compares each "
        "trait type's value frequencies with the collection's own (traits.csv): total variation per type, "
        "averaged (0 = identical frequencies, 1 = disjoint). Both: lower is better.",
        "",
    ]
    if "trait_fd" in record:
        lines.append(f"- Trait FD on {record['trait_fd_n_real']} real and {record['trait_fd_n_fake']} generated "
                     "images (biased upward for small samples: compare at equal counts).")
    if "trait_match" in record:
        rare = record["trait_rare"]
        floor = record.get("trait_match_floor")
        lines.append(f"- Trait TV on {record['trait_match_n_real']} labelled real and {record['trait_match_n_fake']} "
                     "generated images" + ("" if floor is None else
                                           f"; the classifier's own labels of the real images score {floor:.3f} "
                                           "(its error: no generator can be measured below this)") + ".")
        lines.append(f"- Rare traits stay rare (step {record['step']}): {rare['rare_share_real']:.1%} of real and "
                     f"{rare['rare_share_fake']:.1%} of generated images carry one of the {rare['rare_values']} "
                     f"values that fewer than {rare['rare_below']:.0%} of the collection has.")
    if record.get("trait_cond") is not None:
        lines += ["", f"**Conditional accuracy** (step {record['step']}, a trait-conditioned run): how often the "
                  "classifier sees the traits each sample was asked for, beside its own held-out accuracy on real "
                  f"tokens (the ceiling); trait TV of the samples against the asked traits: "
                  f"{record['trait_match_asked']:.3f}.", "",
                  "| trait type | asked and seen | classifier ceiling |", "|---|---:|---:|"]
        for kind, acc in record["trait_cond_per_type"].items():
            ceiling = record["trait_cond_ceiling"].get(kind)
            lines.append(f"| {kind} | {acc:.1%} | {'–' if ceiling is None else f'{ceiling:.1%}'} |")
        lines.append("")
    if c.get("dropped"):
        lines.append("- Trait types not learned: " + "; ".join(f"{k} ({why})" for k, why in c["dropped"].items()))
    lines += ["", "| trait type | values | held-out accuracy | majority baseline |" +
              (f" TV (step {record['step']}) |" if "trait_tv" in record else ""),
              "|---|---:|---:|---:|" + ("---:|" if "trait_tv" in record else "")]
    for kind in c["trait_types"]:
        tv = f" {record['trait_tv'][kind]:.3f} |" if "trait_tv" in record else ""
        lines.append(f"| {kind} | {c['classes'][kind]} | {c['heldout_accuracy'][kind]:.1%} | "
                     f"{c['majority_baseline'][kind]:.1%} |{tv}")
    lines.append("")
    return lines


def write_report(
    target: Path,
    *,
    slug: str,
    run_name: str,
    records: Sequence[dict[str, Any]],
    best: dict[str, Any] | None,
    files: dict[str, str | None],
    trained_on: str | None = None,
) -> None:
    """report.md: what was measured, on how many images, with which network; the table; the pictures."""
    first = records[0]
    lines = [f"# Evaluation of `{slug}` / `{run_name}`", ""]
    network = first["extractor_label"] if first["comparable_to_published"] else "tiny test extractor"
    if not first["comparable_to_published"]:
        lines += [f"> **{first['extractor_label']}.** These numbers only compare with each other.", ""]
    lines += [
        f"- Feature network: {network} (`{first['extractor']}`), "
        f"weights sha256 `{first['weights_sha256'][:16]}…` from {first['weights_source']}",
        f"- Real images: {first['n_real']} from the {first['size_px']} px cache "
        f"(content hash `{first['real_content_hash'][:16]}…`)",
        f"- Generated images: {first['n_fake']} per checkpoint (EMA generator, seed {first['seed']})",
    ]
    if trained_on is not None:
        same = trained_on == first["real_content_hash"]
        lines.append(
            f"- Trained on cache `{trained_on[:16]}…`"
            + (" (the same cache)" if same else " — **a different cache than the real images** (re-prepared since)")
        )
    if any(r.get("fid_biased") for r in records):
        lines.append(
            f"- FID with fewer than {FID_UNBIASED_MIN_SAMPLES} images per side is biased upward; "
            "compare FID only at equal sample counts, and prefer KID (unbiased) for small samples."
        )
    if any("kid_mean" in r and r.get("kid_std") is None for r in records):
        lines.append(
            "- KID without ± : both sides have no more images than a KID subset (1,000), so every subset is the "
            "whole set and there is no spread to report; score more images (`--samples`) for one."
        )
    for name, why in dict(first.get("skipped") or {}).items():
        lines.append(f"- `{name}` not computed: {why}.")
    flagged = [r["step"] for r in records if r.get("collapse_suspected")]
    if flagged:
        lines.append(
            f"- **Collapse suspected** by training's diversity probe at the checkpoint(s) of step "
            f"{', '.join(str(s) for s in flagged)} (its samples have near-copies among themselves); "
            "they are never chosen as the best checkpoint."
        )
    if best is not None:
        lines.append(
            f"- **Best checkpoint: step {best['step']}** by {best['metric']} = {best['value']:.4g}; marked as "
            f"best, so `nftgan sample {slug} {run_name} --checkpoint best` uses it."
        )
    lines.append("")
    if files.get("curves"):
        lines += [f"![metrics over training steps]({files['curves']})", ""]
    has_traits = any("trait_fd" in r or "trait_match" in r for r in records)
    trait_head = " trait FD | trait TV |" if has_traits else ""
    lines += [
        f"| step | FID | KID × 10³ | precision | recall | near-copies |{trait_head} real | generated | seconds |",
        "|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if has_traits else "") + "---:|---:|---:|",
    ]
    for r in records:
        fid = _fmt(r.get("fid"), ".3f") + (" (biased)" if r.get("fid_biased") else "")
        kid = "–" if "kid_mean" not in r else f"{r['kid_mean'] * 1e3:.3f}" + _spread(r.get("kid_std"), 1e3)
        share = "–" if "memorization_share" not in r else f"{r['memorization_share']:.1%}"
        traits = f" {_fmt(r.get('trait_fd'), '.3f')} | {_fmt(r.get('trait_match'), '.3f')} |" if has_traits else ""
        lines.append(
            f"| {r['step']} | {fid} | {kid} | {_fmt(r.get('precision'), '.3f')} | {_fmt(r.get('recall'), '.3f')} "
            f"| {share} |{traits} {r['n_real']} | {r['n_fake']} | {r['seconds']['total']:.1f} |"
        )
    lines.append("")
    if has_traits:
        shown_step = (best or {"step": records[-1]["step"]})["step"]
        with_traits = [r for r in records if "trait_classifier" in r]
        lines += trait_section(next((r for r in with_traits if r["step"] == shown_step), with_traits[0]))
    shown = best or {"step": records[-1]["step"]}
    step_record = next(r for r in records if r["step"] == shown["step"])
    if files.get("samples"):
        lines += [f"## Samples of step {shown['step']}", "", f"![samples]({files['samples']})", ""]
    if "memorization_share" in step_record:
        lines += [
            f"## Memorization (step {shown['step']})", "",
            f"{step_record['memorization_copies']} of {step_record['n_fake']} generated images "
            f"({step_record['memorization_share']:.1%}) are near-copies of a training image: "
            f"{step_record['memorization_share_features']:.1%} by features (nearest / second-nearest distance "
            f"< {step_record['memorization_ratio_max']:.2f}), {step_record['memorization_share_phash']:.1%} by "
            f"pHash (≤ {step_record['memorization_phash_max_bits']} bits). Median ratio "
            f"{step_record['memorization_median_ratio']:.2f} (1.0: no training image stands out).",
            "",
        ]
        if files.get("panel"):
            lines += [f"![generated beside nearest training images]({files['panel']})", ""]
        if files.get("nearest"):
            lines += [f"Every generated image's nearest training images: [{files['nearest']}]({files['nearest']})", ""]
    write_text(target, "\n".join(lines))
