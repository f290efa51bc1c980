import sys

from edgebench.cli.main import main

sys.exit(main())
