"""Search spaces as data: named spaces (`default`, `paper`, `shapes`, the designed `study`) and user files.

    >>> from spaces import get_space, list_spaces
    >>> space = get_space("default")          # or get_space("my_space.yaml")

A space maps parameter names to Optuna distributions, with conditions (Hurst only for
fBm, a depth range per backbone), constants and starting points. It computes nothing;
`search/` samples it and turns each flat trial config into the nsde configs.
"""

from spaces import builtin as _builtin  # noqa: F401  (registers the named spaces)
from spaces._registry import get_space, list_spaces, load_space, register_space, space_from_dict
from spaces._space import KEYS, NOISE_SHAPES, Param, SearchSpace, replicate

__all__ = [
    "KEYS",
    "NOISE_SHAPES",
    "Param",
    "SearchSpace",
    "get_space",
    "list_spaces",
    "load_space",
    "register_space",
    "replicate",
    "space_from_dict",
]
