"""`python -m gateway` is the `pbxgw` command."""

from gateway.cli import main

raise SystemExit(main())
