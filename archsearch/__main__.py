import sys

from archsearch.cli.main import main

sys.exit(main())
