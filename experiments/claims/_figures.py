"""Writing a claim's matplotlib figure next to its results."""

import pathlib


def save_figure(fig, out_dir: pathlib.Path, file_name: str, *, dpi: float | None = None) -> str:
    """Lays out ``fig``, writes it to ``out_dir / file_name``, closes it; returns the name."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out_dir / file_name, dpi=dpi)
    plt.close(fig)
    return file_name
