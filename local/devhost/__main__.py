"""`python -m local.devhost`: see local.devhost.cli."""

from local.devhost.cli import main

raise SystemExit(main())
