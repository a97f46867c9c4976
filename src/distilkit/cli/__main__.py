"""`python -m distilkit.cli ...` (what torchrun and accelerate launch run)."""

from distilkit.cli.app import main

main()
