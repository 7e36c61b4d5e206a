"""`python -m logmesh`: the same CLI as the `logmesh` script."""

import sys

from logmesh.cli import main

sys.exit(main())
