"""Launch the PyQt5 client GUI from demos/ (``python client_gui.py``), as the seed README says."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from client_gui.app import main

raise SystemExit(main())
