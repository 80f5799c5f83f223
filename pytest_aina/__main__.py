import sys

from pytest_aina.cli import main

sys.exit(main())
