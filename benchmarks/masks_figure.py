"""Draw docs/img/masks.png: automatic CoCoNet masks (white = salient) of training images.

Top row: infrared masks (fine-grained saliency rule) of three TNO training scenes. Bottom row: the
MRI mask M_m of two Harvard training slices, from the k-means stand-in (left of each pair) and
the self-organising-map segmentation of Li & Chi 2005 (right). Masks only: no dataset image is
drawn. Run from the repository root: ``python benchmarks/masks_figure.py``.
"""

from pathlib import Path

from contrafuse.bench.plots import plt, save_figure  # Matplotlib with the Agg backend
from contrafuse.data.datasets import load_grey_pair, load_split
from contrafuse.data.masks import infrared_mask, mri_mask

INFRARED = ["Triclobs_soldiers_with_jeep", "Nato_camp_1801", "Athena_APC_1_view_1"]
MRI = [("Harvard_MRI_PET_CDDFuse", "20"), ("Harvard_MRI_SPECT_CDDFuse", "30")]


def main(out: Path = Path("docs/img/masks.png")) -> None:
    tno = {pair.name: pair for pair in load_split("tno")["train"]}
    medical = {(pair.dataset, pair.name): pair for pair in load_split("harvard_medical")["train"]}
    panels = [(f"IR: {name}", infrared_mask(load_grey_pair(tno[name])[0])) for name in INFRARED]
    for dataset, name in MRI:
        mri = load_grey_pair(medical[(dataset, name)])[1]
        modality = dataset.split("_")[2]
        panels += [(f"MRI-{modality} {name}: {rule}", mri_mask(mri, rule)) for rule in ("kmeans", "som")]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    for ax, (title, mask) in zip(axes.flat, panels[:3] + [("", None)] + panels[3:]):  # top row: 3 IR, 1 blank
        ax.axis("off")
        if mask is not None:
            ax.imshow(mask, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out, dpi=72, tight=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
