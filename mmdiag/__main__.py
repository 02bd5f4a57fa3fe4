"""``python -m mmdiag`` (also what ``accelerate launch -m mmdiag`` runs)."""

from mmdiag.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
