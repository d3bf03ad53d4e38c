"""`python -m npvae ...` runs the npvae command line."""
import sys

from .app.cli import main

sys.exit(main())
