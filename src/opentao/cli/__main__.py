"""``python -m opentao.cli`` is ``tao``: what ``accelerate launch -m opentao.cli train ...`` runs on every rank."""

from opentao.cli import main

main()
