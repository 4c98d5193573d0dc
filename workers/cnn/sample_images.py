"""``python -m workers.cnn.sample_images [N]``: write N of scikit-learn's digits as PNG files into a new
temporary folder (named digit-<label>-<index>.png) and print the folder, for demos of ``kiln predict``."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def write_sample_pngs(n: int = 8) -> Path:
    from PIL import Image  # noqa: PLC0415

    from workers.cnn.formats import read_digits  # noqa: PLC0415

    x, y, _ = read_digits()
    folder = Path(tempfile.mkdtemp(prefix="kiln-digits-"))
    for i in range(len(x) - n, len(x)):
        Image.fromarray(x[i, ..., 0]).save(folder / f"digit-{y[i]}-{i}.png")
    return folder


if __name__ == "__main__":
    print(write_sample_pngs(int(sys.argv[1]) if len(sys.argv) > 1 else 8))
