"""docs/masking_rendering.png: one real ORL face, masked, as the server sees it and as the key holder sees it.

Columns: the original; the server's view without the key (masked channels as they are in the kept frequency
slots, inverse DCT, contrast-stretched); the client's view with the key (kept frequencies restored, inverse
DCT) at true pixel scale, mid-gray = 0; the same contrast-stretched. Rows: masking ratios. The masker is fitted
on all 400 ORL faces (gray, 112x112) with the public demonstration key, so the figure is reproducible.

    python -m benchmarks.masking_rendering [--out docs/masking_rendering.png] [--person s1] [--image 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.faces import DEMO_KEY, ORL_DIR, REPO_ROOT, load_faces
from masking.masker import FrequencyMasker
from masking.ppfr import DEFAULT_MASKING_RATIO
from masking.render import render_client_view, render_server_view, stretch_contrast

RATIOS = (0.2, DEFAULT_MASKING_RATIO, 0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "masking_rendering.png")
    parser.add_argument("--person", default="s1", help="ORL folder of the person shown (default: %(default)s)")
    parser.add_argument(
        "--image", type=int, default=1, help="which of the person's images, 1-10 (default: %(default)s)"
    )
    args = parser.parse_args()

    faces, identities = load_faces(ORL_DIR)
    index = [i for i, name in enumerate(identities) if name == args.person][args.image - 1]
    face = faces[index : index + 1]
    figure, axes = plt.subplots(len(RATIOS), 4, figsize=(10, 2.8 * len(RATIOS)), squeeze=False)
    for row, ratio in zip(axes, RATIOS):
        masker = FrequencyMasker.fit(faces, DEMO_KEY, ratio)
        masked = masker.mask(face)
        client = render_client_view(masked, masker)
        panels = [
            (face, "original", (0, 1)),
            (render_server_view(masked, masker.selection, (112, 112)), "server view, no key\n(stretched)", (0, 1)),
            (client, "client view, with key\n(true scale, gray = 0)", (-0.5, 0.5)),
            (stretch_contrast(client), "client view, with key\n(stretched)", (0, 1)),
        ]
        for axis, (image, title, (low, high)) in zip(row, panels):
            axis.imshow(image[0, 0].numpy(), cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(title, fontsize=9)
        row[0].set_ylabel(
            f"ratio {ratio:g}: {masker.num_kept}/64 kept\n{100 * masker.selection.energy_removed:.2f}% energy removed",
            fontsize=9,
        )
    figure.suptitle(f"PPFR-FD masking + keyed shuffle-and-mix of ORL {args.person}/{args.image}.pgm (112x112 gray)")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
