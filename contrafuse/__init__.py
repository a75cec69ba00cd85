"""contrafuse: multi-modality image fusion (infrared-visible, medical, multi-focus).

    >>> import contrafuse
    >>> fused = contrafuse.fuse("ir.png", "vis.png", method="gff")   # float32 array in [0, 1]
"""

__version__ = "0.1.0"

from .api import fuse
from .errors import ContrafuseError

__all__ = ["ContrafuseError", "__version__", "fuse"]
