"""A matplotlib figure on its own Agg canvas, shared by every stage that writes PNGs."""

from __future__ import annotations

__all__ = ["new_figure"]


def new_figure(**kwargs):
    """A matplotlib ``Figure(**kwargs)`` on its own Agg canvas.

    No pyplot state (no global figure list, no backend switch): figures can be drawn
    in threads and on machines without a display, and nothing needs closing; the
    figure is freed with its last reference.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
