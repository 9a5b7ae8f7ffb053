"""``python -m commands ...``: the ``nftgan`` command line (what ``torchrun -m commands`` runs)."""

from commands import main

main()
