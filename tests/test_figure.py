import numpy as np
import pytest

from spectrotomo._figure import PNG_COMPRESS_LEVEL, new_figure, write_png


def _figure(layout, dpi, rng):
    """Two image panels with titles (and one colour bar for both when constrained), as
    the report draws them."""
    fig = new_figure(figsize=(6, 3), layout=layout, dpi=dpi)
    axes = fig.subplots(1, 2)
    for ax in axes:
        im = ax.imshow(rng.random((20, 30)), extent=[0, 600, 400, 0])
        ax.set_title("z = 200 nm")
        ax.set_xlabel("x (nm)")
    fig.suptitle("a map")
    if layout is None:
        fig.tight_layout()
    else:
        fig.colorbar(im, ax=axes.tolist(), label="amount (mol/nm^3)")
    return fig


@pytest.mark.parametrize("layout", ["constrained", None])
def test_write_png_has_the_pixels_savefig_writes_in_one_draw(tmp_path, rng, monkeypatch,
                                                             layout):
    from matplotlib.figure import Figure
    from PIL import Image

    seed = rng.integers(1 << 30)
    saved = tmp_path / "savefig.png"
    _figure(layout, 90, np.random.default_rng(seed)).savefig(saved, dpi=90)
    draws = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, r: (draws.append(1), draw(self, r)))
    written = write_png(_figure(layout, 90, np.random.default_rng(seed)), tmp_path / "w.png",
                        dpi=90)
    assert len(draws) == 1  # savefig draws a laid-out figure twice
    with Image.open(saved) as a, Image.open(written) as b:
        assert a.size == b.size and a.info["dpi"] == pytest.approx(b.info["dpi"])
        assert b.info["Software"].startswith("Matplotlib")
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_write_png_draws_at_the_dpi_asked(tmp_path, rng):
    from PIL import Image

    fig = _figure(None, 100, rng)  # laid out at 100 dpi, written at 50
    path = write_png(fig, tmp_path / "small.png", dpi=50)
    with Image.open(path) as im:
        assert im.size == (300, 150)
    assert fig.dpi == 50
    assert 0 <= PNG_COMPRESS_LEVEL <= 9
