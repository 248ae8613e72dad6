"""spectrotomo.io stage."""

__all__: list[str] = []
