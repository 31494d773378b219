import sys

from mg.cli import main

sys.exit(main())
