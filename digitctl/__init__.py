"""digitctl: handwritten-digit recognition from the command line.

Importing this package is cheap: TensorFlow, Streamlit, matplotlib and scikit-learn are
imported only inside the functions that need them.
"""

from digitctl.config import Settings, load_settings
from digitctl.errors import DigitctlError

__version__ = "0.1.0"

__all__ = ["DigitctlError", "Settings", "__version__", "load_settings"]
