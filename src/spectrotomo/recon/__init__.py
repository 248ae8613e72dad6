"""spectrotomo.recon stage."""

__all__: list[str] = []
