"""`python -m cli ...` is `devicemon ...`."""

from cli.main import main

raise SystemExit(main())
