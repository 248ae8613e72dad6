"""spectrotomo.spectra stage."""

__all__: list[str] = []
