"""Command line: ``spectrotomo {simulate,info,demo,check,init,run,center,<step>,export,batch}``.

``_parser`` holds the options and help texts, ``_commands`` the command functions (thin
wiring to the library); ``python -m spectrotomo.cli`` runs :func:`main`.
"""

from ._commands import build_parser, main

__all__ = ["main", "build_parser"]
