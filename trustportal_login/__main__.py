"""`python3 -m trustportal_login`, and the entry point of the one-file build."""

import sys

from trustportal_login.cli import main

sys.exit(main())
