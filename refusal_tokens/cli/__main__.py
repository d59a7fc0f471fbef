"""`python -m refusal_tokens.cli COMMAND ...`: the same as the `refusal-tokens` command."""

import sys

from .dispatch import main

sys.exit(main())
