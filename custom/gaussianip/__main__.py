import sys

from gaussianip.cli import main

sys.exit(main())
