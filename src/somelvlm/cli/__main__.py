"""``python -m somelvlm.cli``: the ``somelvlm`` command."""

from somelvlm.cli import main

main()
