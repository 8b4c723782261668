"""digitctl: handwritten-digit recognition from the command line.

Importing this package is cheap: TensorFlow, Streamlit, matplotlib and scikit-learn are
imported only inside the functions that need them.
"""

from digitctl.config import Settings, load_settings
from digitctl.errors import DigitctlError

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Loaded on first use: importing digitctl stays free of TensorFlow and NumPy.
    if name == "finetune":
        from digitctl.finetuning import finetune

        return finetune
    raise AttributeError(f"module 'digitctl' has no attribute {name!r}")


__all__ = ["DigitctlError", "Settings", "__version__", "finetune", "load_settings"]
