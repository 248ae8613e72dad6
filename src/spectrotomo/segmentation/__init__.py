"""spectrotomo.segmentation stage."""

__all__: list[str] = []
