"""`python -m npvae ...` runs the npvae command line."""
import sys

from .cli import main

sys.exit(main())
