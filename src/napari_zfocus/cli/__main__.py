import sys

from napari_zfocus.cli import main

sys.exit(main())
